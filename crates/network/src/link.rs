//! Links, addresses and routes over rtnetlink (NET-02): the bridge of a
//! network, and per endpoint a veth pair whose peer becomes `eth<N>` in
//! the container's network namespace.
//!
//! Host-side requests use a netlink connection on the caller's runtime.
//! Requests inside a container namespace run on a dedicated thread that
//! joined it (`berth_sys::netns::run_in`) with its own current-thread
//! runtime and netlink socket.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{Error, Result};

fn nl(context: &str, e: rtnetlink::Error) -> Error {
    Error::Internal(format!("{context}: {e}"))
}

fn errno(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    }
}

/// A netlink connection driven on the current tokio runtime.
pub fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::Internal(format!("netlink: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == libc_enodev() => Ok(None),
        Err(e) => Err(nl(&format!("look up link {name}"), e)),
    }
}

const fn libc_enodev() -> i32 {
    19
}

const EEXIST: i32 = 17;

fn write_sysctl(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        tracing::warn!("cannot set {path}: {e}");
    }
}

/// Create the bridge if missing; set MTU, address `gateway/prefix` and up.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<()> {
    let index = match index_of(h, name).await? {
        Some(i) => i,
        None => {
            match h.link().add(LinkBridge::new(name).build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == EEXIST => {}
                Err(e) => return Err(nl(&format!("create bridge {name}"), e)),
            }
            index_of(h, name)
                .await?
                .ok_or_else(|| Error::Internal(format!("bridge {name} vanished")))?
        }
    };
    h.link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(|e| nl(&format!("set up bridge {name}"), e))?;
    match h
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if errno(&e) == EEXIST => {}
        Err(e) => return Err(nl(&format!("add {gateway}/{prefix} to {name}"), e)),
    }
    // DNAT of 127.0.0.1 to containers (published ports from localhost).
    write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
        "1",
    );
    Ok(())
}

/// Delete a link (a bridge, or one end of a veth pair, which removes both).
/// Missing is fine.
pub async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    if let Some(i) = index_of(h, name).await? {
        match h.link().del(i).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == libc_enodev() => {}
            Err(e) => return Err(nl(&format!("delete link {name}"), e)),
        }
    }
    Ok(())
}

/// What the container side of an endpoint gets.
#[derive(Debug, Clone)]
pub struct EndpointAddr {
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Default route (first endpoint of a non-internal network only).
    pub gateway: Option<Ipv4Addr>,
}

/// veth pair `host_veth` (on `bridge`) and its peer moved into `netns` as
/// `addr.ifname`, configured there. With `rps`, the host end's receive
/// queues get RPS over all online CPUs (`--veth-rps`, on by default; see
/// docs/networking.md "Throughput"). On error nothing is left behind.
pub async fn create_endpoint(
    h: &Handle,
    bridge: &str,
    host_veth: &str,
    netns: &Path,
    addr: &EndpointAddr,
    rps: bool,
) -> Result<()> {
    let br = index_of(h, bridge)
        .await?
        .ok_or_else(|| Error::Internal(format!("bridge {bridge} does not exist")))?;
    let ns = std::fs::File::open(netns)
        .map_err(|e| Error::Internal(format!("open {}: {e}", netns.display())))?;
    // One request: the host end joins the bridge and comes up, the peer is
    // born inside the container's namespace under its final name. Moving a
    // link between namespaces afterwards waits for an RCU grace period
    // (~15 ms here, under RTNL), which serialized parallel starts.
    use std::os::fd::AsRawFd;
    let peer = LinkUnspec::new_with_name(&addr.ifname)
        .setns_by_fd(ns.as_raw_fd())
        .address(addr.mac.to_vec())
        .mtu(addr.mtu)
        .build();
    h.link()
        .add(
            LinkVeth::new(host_veth, &addr.ifname)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .mtu(addr.mtu)
                .controller(br)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| nl(&format!("create veth {host_veth} on {bridge}"), e))?;
    drop(ns);
    let result = async {
        // Hairpin: a container reaching its own published port through the
        // host's address gets the DNATed frame back on the same port.
        write_sysctl(
            &format!("/sys/class/net/{host_veth}/brport/hairpin_mode"),
            "1",
        );
        if rps {
            set_rps(host_veth);
        }
        let (path, addr) = (netns.to_path_buf(), addr.clone());
        let r = tokio::task::spawn_blocking(move || {
            berth_sys::netns::run_in(&path, move || in_netns(configure_peer(&addr)))
        })
        .await
        .map_err(|e| Error::Internal(format!("netns task: {e}")))?
        .map_err(|e| Error::Internal(e.to_string()))?;
        r
    }
    .await;
    if result.is_err() {
        let _ = delete_link(h, host_veth).await;
    }
    result
}

/// The CPU mask of `/sys/devices/system/cpu/online` (`0-3,6`) as sysfs
/// `rps_cpus` wants it: hex, 32-bit groups separated by commas, highest
/// first (`4f`; `1,00000000` for CPU 32 alone).
pub fn cpu_mask(online: &str) -> Option<String> {
    let mut words: Vec<u32> = Vec::new();
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let c = part.parse::<usize>().ok()?;
                (c, c)
            }
        };
        if lo > hi || hi >= 8192 {
            return None;
        }
        for cpu in lo..=hi {
            if words.len() <= cpu / 32 {
                words.resize(cpu / 32 + 1, 0);
            }
            words[cpu / 32] |= 1 << (cpu % 32);
        }
    }
    let (last, rest) = words.split_last()?;
    let mut s = format!("{last:x}");
    for w in rest.iter().rev() {
        s.push_str(&format!(",{w:08x}"));
    }
    Some(s)
}

/// RPS on every receive queue of a host-side veth: what the container
/// sends is then received (bridge, conntrack, the host's TCP) on a CPU
/// chosen by flow hash instead of always on the sending CPU. Best effort.
fn set_rps(host_veth: &str) {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let Some(mask) = cpu_mask(&online) else {
        tracing::warn!("cannot parse the online CPUs {online:?}; no RPS on {host_veth}");
        return;
    };
    let dir = format!("/sys/class/net/{host_veth}/queues");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        tracing::warn!("cannot list {dir}; no RPS on {host_veth}");
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("rx-") {
            write_sysctl(
                &format!("{dir}/{}/rps_cpus", e.file_name().to_string_lossy()),
                &mask,
            );
        }
    }
}

/// Bring up `lo` in a namespace.
pub async fn setup_loopback(netns: &Path) -> Result<()> {
    let path = netns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        berth_sys::netns::run_in(&path, || {
            in_netns(async {
                let h = connect()?;
                let lo = index_of(&h, "lo")
                    .await?
                    .ok_or_else(|| Error::Internal("no lo".into()))?;
                h.link()
                    .set(LinkUnspec::new_with_index(lo).up().build())
                    .execute()
                    .await
                    .map_err(|e| nl("set lo up", e))
            })
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("netns task: {e}")))?
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Delete the container-side interface `ifname` in `netns` (disconnect of
/// a running container). Missing is fine.
pub async fn delete_in_netns(netns: &Path, ifname: &str) -> Result<()> {
    let (path, ifname) = (netns.to_path_buf(), ifname.to_string());
    tokio::task::spawn_blocking(move || {
        berth_sys::netns::run_in(&path, move || {
            in_netns(async move {
                let h = connect()?;
                delete_link(&h, &ifname).await
            })
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("netns task: {e}")))?
    .map_err(|e| Error::Internal(e.to_string()))?
}

fn in_netns<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
    rt.block_on(f)
}

async fn configure_peer(a: &EndpointAddr) -> Result<()> {
    let h = connect()?;
    let lo = index_of(&h, "lo").await?;
    if let Some(lo) = lo {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(|e| nl("set lo up", e))?;
    }
    let idx = index_of(&h, &a.ifname)
        .await?
        .ok_or_else(|| Error::Internal(format!("{} not in the container namespace", a.ifname)))?;
    h.address()
        .add(idx, IpAddr::V4(a.ip), a.prefix)
        .execute()
        .await
        .map_err(|e| nl(&format!("add {}/{}", a.ip, a.prefix), e))?;
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(|e| nl(&format!("set {} up", a.ifname), e))?;
    if let Some(gw) = a.gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(idx)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(|e| nl(&format!("default route via {gw}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_mask;

    #[test]
    fn cpu_masks() {
        assert_eq!(cpu_mask("0-1\n").as_deref(), Some("3"));
        assert_eq!(cpu_mask("0").as_deref(), Some("1"));
        assert_eq!(cpu_mask("0-3,6").as_deref(), Some("4f"));
        assert_eq!(cpu_mask("32").as_deref(), Some("1,00000000"));
        assert_eq!(cpu_mask("0-39").as_deref(), Some("ff,ffffffff"));
        assert_eq!(cpu_mask("").as_deref(), None);
        assert_eq!(cpu_mask("x").as_deref(), None);
        assert_eq!(cpu_mask("3-1").as_deref(), None);
    }
}
