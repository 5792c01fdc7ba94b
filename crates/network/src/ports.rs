//! Published ports (NET-17..NET-19): which host ports a container gets,
//! and holding them. The traffic itself goes through kernel DNAT (see
//! `firewall`); berth still binds each IPv4 host port so that no other
//! process (or container) can take it and so that a port in use is
//! reported the way Docker does. For a port published on all addresses a
//! small userland proxy listens on `[::]` as well: the bridges are
//! IPv4-only, so the kernel cannot DNAT IPv6 to a container.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::firewall::FwPort;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: String,
    pub container_port: u16,
    /// "" for all addresses.
    pub host_ip: String,
    pub host_port: u16,
    /// Host port range to pick from when `host_port` is 0 (`8000-8010`).
    #[serde(default)]
    pub range: Option<(u16, u16)>,
    pub container_ip: Ipv4Addr,
}

impl PortMapping {
    pub fn fw(&self) -> Option<FwPort> {
        let host_ip = if self.host_ip.is_empty() {
            None
        } else {
            match self.host_ip.parse::<IpAddr>().ok()? {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => return None,
            }
        };
        Some(FwPort {
            proto: self.proto.clone(),
            host_ip,
            host_port: self.host_port,
            container_ip: self.container_ip,
            container_port: self.container_port,
        })
    }

    /// The v4 address to bind ("" means all).
    fn bind_v4(&self) -> Option<Ipv4Addr> {
        if self.host_ip.is_empty() {
            Some(Ipv4Addr::UNSPECIFIED)
        } else {
            self.host_ip.parse().ok()
        }
    }

    fn shown_ip(&self) -> String {
        if self.host_ip.is_empty() {
            "0.0.0.0".into()
        } else {
            self.host_ip.clone()
        }
    }
}

fn parse_port(s: &str) -> Result<(u16, u16)> {
    let bad = || Error::InvalidArgument(format!("invalid port specification: \"{s}\""));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None if s.is_empty() => Ok((0, 0)),
        None => {
            let p = s.parse().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

/// Mappings from HostConfig.PortBindings plus, with `-P`, every exposed
/// port without a binding (random host port).
pub fn plan(
    bindings: Option<&Value>,
    publish_all: Option<&Value>,
    container_ip: Ipv4Addr,
) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let mut keys: Vec<(String, Vec<Value>)> = Vec::new();
    if let Some(Value::Object(m)) = bindings {
        for (k, v) in m {
            keys.push((k.clone(), v.as_array().cloned().unwrap_or_default()));
        }
    }
    if let Some(Value::Object(m)) = publish_all {
        for k in m.keys() {
            if !keys.iter().any(|(kk, _)| kk == k) {
                keys.push((k.clone(), vec![Value::Null]));
            }
        }
    }
    for (key, list) in keys {
        let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        let proto = proto.to_ascii_lowercase();
        if proto != "tcp" && proto != "udp" {
            return Err(Error::InvalidArgument(format!(
                "invalid protocol {proto} for port {port}: berth publishes tcp and udp"
            )));
        }
        let (cp, cp_end) = parse_port(port)?;
        let list = if list.is_empty() {
            vec![Value::Null]
        } else {
            list
        };
        for b in list {
            let host_ip = b["HostIp"].as_str().unwrap_or("").to_string();
            if !host_ip.is_empty() && host_ip.parse::<IpAddr>().is_err() {
                return Err(Error::InvalidArgument(format!(
                    "invalid host IP address: {host_ip}"
                )));
            }
            let host_ip = if host_ip == "0.0.0.0" {
                String::new()
            } else {
                host_ip
            };
            let (hp, hp_end) = parse_port(b["HostPort"].as_str().unwrap_or(""))?;
            for (i, c) in (cp..=cp_end).enumerate() {
                let (host_port, range) = if hp == 0 {
                    (0, None)
                } else if hp == hp_end {
                    (hp + i as u16, None)
                } else if cp == cp_end {
                    (0, Some((hp, hp_end)))
                } else {
                    (hp + i as u16, None)
                };
                out.push(PortMapping {
                    proto: proto.clone(),
                    container_port: c,
                    host_ip: host_ip.clone(),
                    host_port,
                    range,
                    container_ip,
                });
            }
        }
    }
    Ok(out)
}

/// What holds a host port (kept open, never read).
#[allow(dead_code)]
enum Holder {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

struct Held {
    owner: String,
    _sock: Holder,
    proxy: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct Ports {
    held: Mutex<HashMap<(String, Ipv4Addr, u16), Held>>,
}

fn bind(proto: &str, ip: Ipv4Addr, port: u16) -> std::io::Result<Holder> {
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    Ok(if proto == "udp" {
        Holder::Udp(std::net::UdpSocket::bind(addr)?)
    } else {
        Holder::Tcp(std::net::TcpListener::bind(addr)?)
    })
}

fn v6_listener(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrIn6,
    };
    let fd: OwnedFd = socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(
        Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    tokio::net::TcpListener::from_std(std::net::TcpListener::from(fd))
}

async fn proxy(l: tokio::net::TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut c, _)) = l.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut s) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
            }
        });
    }
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

impl Ports {
    /// Bind the mapping's host port, picking one if it is 0. The error
    /// text is Docker's (without the "driver failed" prefix).
    pub fn reserve_new(&self, owner: &str, p: &mut PortMapping) -> std::result::Result<(), String> {
        let ip = p
            .bind_v4()
            .ok_or_else(|| format!("IPv6 host address {} is not supported", p.host_ip))?;
        if p.host_port != 0 {
            return self.hold(owner, p, ip);
        }
        let (lo, hi) = p.range.unwrap_or_else(ephemeral_range);
        for port in lo..=hi {
            if self
                .held
                .lock()
                .unwrap()
                .contains_key(&(p.proto.clone(), ip, port))
            {
                continue;
            }
            let mut trial = p.clone();
            trial.host_port = port;
            if self.hold(owner, &trial, ip).is_ok() {
                p.host_port = port;
                p.range = None;
                return Ok(());
            }
        }
        Err(format!(
            "Bind for {}:{lo}-{hi} failed: port is already allocated",
            p.shown_ip()
        ))
    }

    /// Re-bind a known mapping (after a daemon restart).
    pub fn reserve(&self, owner: &str, p: &PortMapping) -> std::result::Result<(), String> {
        let ip = p.bind_v4().ok_or("IPv6 host address")?;
        self.hold(owner, p, ip)
    }

    fn hold(&self, owner: &str, p: &PortMapping, ip: Ipv4Addr) -> std::result::Result<(), String> {
        let mut held = self.held.lock().unwrap();
        let conflict = held.keys().any(|(proto, hip, port)| {
            *proto == p.proto
                && *port == p.host_port
                && (*hip == ip || hip.is_unspecified() || ip.is_unspecified())
        });
        if conflict {
            return Err(format!(
                "Bind for {}:{} failed: port is already allocated",
                p.shown_ip(),
                p.host_port
            ));
        }
        let sock = bind(&p.proto, ip, p.host_port).map_err(|e| {
            format!(
                "Error starting userland proxy: listen {}4 {}:{}: bind: {}",
                p.proto,
                p.shown_ip(),
                p.host_port,
                io_text(&e)
            )
        })?;
        let proxy = (p.proto == "tcp" && p.host_ip.is_empty())
            .then(|| v6_listener(p.host_port).ok())
            .flatten()
            .map(|l| {
                tokio::spawn(proxy(
                    l,
                    SocketAddr::new(IpAddr::V4(p.container_ip), p.container_port),
                ))
            });
        held.insert(
            (p.proto.clone(), ip, p.host_port),
            Held {
                owner: owner.to_string(),
                _sock: sock,
                proxy,
            },
        );
        Ok(())
    }

    pub fn release(&self, owner: &str, p: &PortMapping) {
        let Some(ip) = p.bind_v4() else { return };
        let mut held = self.held.lock().unwrap();
        let key = (p.proto.clone(), ip, p.host_port);
        if held.get(&key).is_some_and(|h| h.owner == owner) {
            if let Some(h) = held.remove(&key) {
                if let Some(t) = h.proxy {
                    t.abort();
                }
            }
        }
    }

    pub fn release_all(&self, owner: &str) {
        self.held.lock().unwrap().retain(|_, h| {
            if h.owner == owner {
                if let Some(t) = h.proxy.take() {
                    t.abort();
                }
                false
            } else {
                true
            }
        });
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `NetworkSettings.Ports`: every exposed or published port, with its
/// IPv4 binding (as dockerd 20.10 reports it; the `[::]` proxy of an
/// all-address TCP port is not listed).
pub fn settings_ports(exposed: Option<&Value>, mappings: &[PortMapping]) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(Value::Object(e)) = exposed {
        for k in e.keys() {
            let k = if k.contains('/') {
                k.clone()
            } else {
                format!("{k}/tcp")
            };
            m.insert(k, Value::Null);
        }
    }
    for p in mappings {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = m.entry(key).or_insert(Value::Array(vec![]));
        if entry.is_null() {
            *entry = Value::Array(vec![]);
        }
        let arr = entry.as_array_mut().unwrap();
        arr.push(serde_json::json!({"HostIp": p.shown_ip(), "HostPort": p.host_port.to_string()}));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_bindings_ranges_and_publish_all() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let b = json!({
            "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            "7000-7001/tcp": [{"HostIp": "", "HostPort": "9000-9001"}],
            "6000/tcp": [{"HostIp": "", "HostPort": "6100-6110"}],
        });
        let exposed = json!({"80/tcp": {}, "443/tcp": {}});
        let p = plan(Some(&b), Some(&exposed), ip).unwrap();
        let find = |port: u16| {
            p.iter()
                .filter(|m| m.container_port == port)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(find(80)[0].host_port, 8080);
        assert_eq!(find(53)[0].proto, "udp");
        assert_eq!(find(53)[0].host_ip, "127.0.0.1");
        assert_eq!(find(53)[0].host_port, 0);
        assert_eq!(find(7001)[0].host_port, 9001);
        assert_eq!(find(6000)[0].range, Some((6100, 6110)));
        assert_eq!(find(443)[0].host_port, 0);
        assert!(plan(Some(&json!({"x/tcp": []})), None, ip).is_err());
        let shown = settings_ports(
            Some(&json!({"9/tcp": {}})),
            &[PortMapping {
                proto: "tcp".into(),
                container_port: 80,
                host_ip: String::new(),
                host_port: 8080,
                range: None,
                container_ip: ip,
            }],
        );
        assert_eq!(shown["9/tcp"], Value::Null);
        assert_eq!(shown["80/tcp"].as_array().unwrap().len(), 1);
    }
}
