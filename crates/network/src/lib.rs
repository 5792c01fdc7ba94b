//! berth-network: networks (bridge, host, null drivers), IPAM, veth
//! endpoints in per-container network namespaces, the nftables ruleset,
//! published ports and the embedded DNS server (NET-01..NET-21).
//!
//! State: `<data-root>/network/networks/<id>.json` (network records) and
//! `<data-root>/network/sandboxes/<container id>.json` (the live
//! attachment of a running container: namespace, endpoints, ports), both
//! written atomically. What containers *want* (network mode, aliases,
//! static IPs) lives in the container record; the engine passes it in.

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod ports;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_types::ErrorKind;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

pub use ipam::Pool;
pub use ports::{settings_ports, PortMapping};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// dockerd's network flags and daemon.json keys (CFG-13..17).
#[derive(Debug, Clone)]
pub struct Config {
    /// `<data-root>/network`.
    pub state_dir: PathBuf,
    /// Where namespaces are pinned: `<exec-root>/netns`.
    pub netns_dir: PathBuf,
    /// Name of the default bridge (`-b`/`--bridge`; berth0 by default so
    /// that docker0 of a dockerd beside us is left alone).
    pub bridge: String,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: u32,
    pub icc: bool,
    pub iptables: bool,
    pub ip_forward: bool,
    pub default_pools: Vec<Pool>,
    /// `--veth-rps` (berth only, on by default): RPS over all online CPUs
    /// on the host end of every veth (docs/networking.md, "Throughput").
    pub veth_rps: bool,
    /// The nftables table berth owns (`ip <table>`).
    pub table: String,
}

impl Config {
    /// One table per daemon instance: `berth` for the default bridge,
    /// `berth-<bridge>` otherwise (private test daemons).
    pub fn table_for(bridge: &str) -> String {
        if bridge == "berth0" {
            "berth".into()
        } else {
            format!("berth-{bridge}")
        }
    }
}

/// A network as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
    /// Subnet/gateway/range for bridge networks.
    #[serde(default)]
    pub ipam: Option<ipam::Ipam>,
    #[serde(default)]
    pub bridge: String,
    #[serde(default = "yes")]
    pub icc: bool,
    #[serde(default)]
    pub mtu: u32,
    /// dockerd shows the gateway in IPAM.Config only when it chose the
    /// subnet itself or was given the gateway.
    #[serde(default)]
    pub hide_gateway: bool,
}

fn yes() -> bool {
    true
}

impl NetworkRecord {
    pub fn is_default_bridge(&self) -> bool {
        self.name == "bridge" && self.driver == "bridge"
    }
    pub fn is_builtin(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
    /// User-defined bridge networks have the embedded DNS server.
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && !self.is_default_bridge()
    }
}

/// One interface of a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub ifname: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: String,
    pub gateway: Ipv4Addr,
    pub aliases: Vec<String>,
    /// The address asked for with `--ip`, if any.
    #[serde(default)]
    pub requested_ip: Option<Ipv4Addr>,
}

/// The network side of a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub container_id: String,
    pub container_name: String,
    pub sandbox_id: String,
    pub netns: PathBuf,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<PortMapping>,
    /// Upstream servers of the embedded DNS.
    #[serde(default)]
    pub dns_upstream: Vec<String>,
}

/// What a container asks of one network at start or connect.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub network: String,
    pub ipv4: Option<String>,
    pub aliases: Vec<String>,
}

/// Start-time request for a container's private namespace.
#[derive(Debug, Clone, Default)]
pub struct SandboxRequest {
    pub container_id: String,
    pub container_name: String,
    /// Networks to join in order (empty for `--network none`).
    pub endpoints: Vec<EndpointRequest>,
    /// HostConfig.PortBindings.
    pub port_bindings: Option<Value>,
    /// Config.ExposedPorts when `-P`.
    pub publish_all: Option<Value>,
    pub dns_upstream: Vec<String>,
}

struct State {
    networks: BTreeMap<String, NetworkRecord>,
    sandboxes: HashMap<String, Sandbox>,
    dns_tasks: HashMap<String, tokio::task::JoinHandle<()>>,
}

/// How often berthd re-checks iptables' FORWARD policy (see
/// `watch_forward_policy`).
const FORWARD_POLICY_CHECK: std::time::Duration = std::time::Duration::from_secs(3);

pub struct NetworkManager {
    cfg: Config,
    state: Mutex<State>,
    ports: ports::Ports,
    /// Serializes changes to links (sandbox setup/teardown included: run in
    /// parallel, 100 starts took 3.4-3.7 s instead of 2.6-2.8 s, the
    /// kernel's RTNL and netns work contend).
    op: tokio::sync::RwLock<()>,
    /// Ruleset rebuilds: snapshot and apply as one step, so a rebuild from
    /// an older snapshot never lands after a newer one.
    fw: Mutex<()>,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn now() -> String {
    // RFC 3339 with nanoseconds, like dockerd's Created.
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Atomic and fsynced: configuration that must survive a reboot.
fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(v).expect("serializes");
    berth_sys::fs::write_atomic(path, &data, 0o600)
        .map_err(|e| Error::Internal(format!("write {}: {e}", path.display())))
}

/// Atomic, not fsynced: state about kernel objects a reboot removes anyway.
fn write_json_volatile<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(v).expect("serializes");
    berth_sys::fs::write_volatile(path, &data, 0o600)
        .map_err(|e| Error::Internal(format!("write {}: {e}", path.display())))
}

fn read_dir_json<T: for<'de> Deserialize<'de>>(dir: &Path) -> Vec<T> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .ok()
                    .and_then(|d| serde_json::from_slice(&d).ok())
                {
                    Some(v) => out.push(v),
                    None => warn!("skipping unreadable {}", p.display()),
                }
            }
        }
    }
    out
}

/// Host IPv4 routes (destination networks) from /proc/net/route, so that
/// automatic subnets avoid networks the host already uses.
fn host_routes() -> Vec<Ipv4Net> {
    let mut v = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let (Ok(dst), Ok(mask)) =
                (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
            else {
                continue;
            };
            if mask == 0 {
                continue;
            }
            let dst = Ipv4Addr::from(u32::from_be(dst));
            let prefix = u32::from_be(mask).count_ones() as u8;
            if let Ok(n) = Ipv4Net::new(dst, prefix) {
                v.push(n.trunc());
            }
        }
    }
    v
}

impl NetworkManager {
    /// Load state, create the built-in networks, bring bridges up and
    /// apply the ruleset (reconciling whatever a previous run left).
    pub async fn open(cfg: Config) -> Result<Arc<NetworkManager>> {
        for d in [
            cfg.state_dir.join("networks"),
            cfg.state_dir.join("sandboxes"),
            cfg.netns_dir.clone(),
        ] {
            std::fs::create_dir_all(&d)
                .map_err(|e| Error::Internal(format!("create {}: {e}", d.display())))?;
        }
        // Only when off: writing ip_forward (even "1" over "1") resets the
        // per-interface settings of every interface on the host, which
        // disturbs traffic of running containers and other daemons.
        let forwarding =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1");
        if cfg.ip_forward && !forwarding {
            if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                warn!("cannot enable IP forwarding: {e}");
            }
        }
        if !Path::new("/proc/sys/net/bridge").exists() {
            let _ = std::process::Command::new("modprobe")
                .arg("br_netfilter")
                .status();
        }
        let mut networks = BTreeMap::new();
        for n in read_dir_json::<NetworkRecord>(&cfg.state_dir.join("networks")) {
            networks.insert(n.id.clone(), n);
        }
        let mut sandboxes = HashMap::new();
        for s in read_dir_json::<Sandbox>(&cfg.state_dir.join("sandboxes")) {
            sandboxes.insert(s.container_id.clone(), s);
        }
        let nm = Arc::new(NetworkManager {
            cfg,
            state: Mutex::new(State {
                networks,
                sandboxes,
                dns_tasks: HashMap::new(),
            }),
            ports: ports::Ports::default(),
            op: tokio::sync::RwLock::new(()),
            fw: Mutex::new(()),
        });
        nm.init_builtin()?;
        // Addresses and ports of sandboxes that survived a restart.
        {
            let mut st = nm.state.lock().unwrap();
            let State {
                networks,
                sandboxes,
                ..
            } = &mut *st;
            for s in sandboxes.values() {
                for ep in &s.endpoints {
                    if let Some(ipam) = networks
                        .get_mut(&ep.network_id)
                        .and_then(|n| n.ipam.as_mut())
                    {
                        ipam.allocated.insert(ep.ip);
                    }
                }
                for p in &s.ports {
                    if let Err(e) = nm.ports.reserve(&s.container_id, p) {
                        warn!(container = %s.container_id, "cannot re-reserve port {}: {e}", p.host_port);
                    }
                }
            }
        }
        let h = link::connect()?;
        let nets: Vec<NetworkRecord> = nm
            .state
            .lock()
            .unwrap()
            .networks
            .values()
            .cloned()
            .collect();
        for n in nets.iter().filter(|n| n.driver == "bridge") {
            let ipam = n.ipam.as_ref().expect("bridge networks have IPAM");
            link::ensure_bridge(&h, &n.bridge, ipam.gateway, ipam.subnet.prefix_len(), n.mtu)
                .await?;
        }
        if nm.cfg.iptables {
            nm.apply_firewall()?;
            nm.watch_forward_policy();
        } else {
            // --iptables=false: no ruleset at all, not even a stale one.
            let _ = firewall::delete_table(&nm.cfg.table);
        }
        Ok(nm)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// bridge, host and none; the default bridge follows --bip and
    /// --fixed-cidr of this run.
    fn init_builtin(&self) -> Result<()> {
        let bip = self.cfg.bip.as_deref().unwrap_or("172.17.0.1/16");
        let bip_net = ipam::parse_cidr(bip)?;
        let range = self
            .cfg
            .fixed_cidr
            .as_deref()
            .map(ipam::parse_cidr)
            .transpose()?;
        let mut ipam = ipam::Ipam::new(bip_net.trunc(), Some(bip_net.addr()), range)?;
        let mut st = self.state.lock().unwrap();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            let existing = st.networks.values().find(|n| n.name == name).cloned();
            let mut rec = existing.unwrap_or_else(|| NetworkRecord {
                id: random_hex(32),
                name: name.into(),
                driver: driver.into(),
                created: now(),
                internal: false,
                attachable: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                ipam_options: BTreeMap::new(),
                ipam: None,
                bridge: String::new(),
                icc: true,
                mtu: 0,
                hide_gateway: false,
            });
            if name == "bridge" {
                if let Some(old) = &rec.ipam {
                    ipam.allocated = old.allocated.clone();
                }
                rec.ipam = Some(ipam.clone());
                rec.bridge = self.cfg.bridge.clone();
                rec.icc = self.cfg.icc;
                rec.mtu = self.cfg.mtu;
                rec.options = [
                    (
                        "com.docker.network.bridge.default_bridge",
                        "true".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.enable_icc",
                        self.cfg.icc.to_string(),
                    ),
                    (
                        "com.docker.network.bridge.enable_ip_masquerade",
                        "true".into(),
                    ),
                    (
                        "com.docker.network.bridge.host_binding_ipv4",
                        "0.0.0.0".into(),
                    ),
                    ("com.docker.network.bridge.name", self.cfg.bridge.clone()),
                    ("com.docker.network.driver.mtu", self.cfg.mtu.to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            }
            write_json(
                &self
                    .cfg
                    .state_dir
                    .join("networks")
                    .join(format!("{}.json", rec.id)),
                &rec,
            )?;
            st.networks.insert(rec.id.clone(), rec);
        }
        Ok(())
    }

    fn apply_firewall(&self) -> Result<()> {
        if !self.cfg.iptables {
            return Ok(());
        }
        let _fw = self.fw.lock().unwrap_or_else(|e| e.into_inner());
        let (nets, ports) = {
            let st = self.state.lock().unwrap();
            let nets: Vec<firewall::FwNetwork> = st
                .networks
                .values()
                .filter(|n| n.driver == "bridge")
                .map(|n| firewall::FwNetwork {
                    bridge: n.bridge.clone(),
                    subnet: n.ipam.as_ref().unwrap().subnet,
                    internal: n.internal,
                    icc: n.icc,
                    masquerade: n
                        .options
                        .get("com.docker.network.bridge.enable_ip_masquerade")
                        .is_none_or(|v| v != "false"),
                })
                .collect();
            let ports: Vec<firewall::FwPort> = st
                .sandboxes
                .values()
                .flat_map(|s| s.ports.iter())
                .filter_map(|p| p.fw())
                .collect();
            (nets, ports)
        };
        firewall::apply(&firewall::script(&self.cfg.table, &nets, &ports))?;
        if firewall::forward_policy_drop() {
            for n in &nets {
                firewall::iptables_accept(&n.bridge, true);
            }
        }
        Ok(())
    }

    /// iptables' FORWARD policy can turn DROP at any time (a dockerd
    /// started after berthd sets it): every berth container's forwarded
    /// traffic (egress, other networks) would then be dropped until the next
    /// ruleset rebuild. Re-check it every few seconds and add the accept
    /// rules for every bridge network when it is DROP.
    fn watch_forward_policy(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORWARD_POLICY_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(nm) = me.upgrade() else { break };
                let _ = tokio::task::spawn_blocking(move || nm.accept_forward_if_dropped()).await;
            }
        });
    }

    fn accept_forward_if_dropped(&self) {
        // Under the firewall lock: a network removed meanwhile is either
        // gone from the state here or loses its rules after this.
        let _fw = self.fw.lock().unwrap_or_else(|e| e.into_inner());
        if !firewall::forward_policy_drop() {
            return;
        }
        let bridges: Vec<String> = self
            .state
            .lock()
            .unwrap()
            .networks
            .values()
            .filter(|n| n.driver == "bridge")
            .map(|n| n.bridge.clone())
            .collect();
        for b in &bridges {
            firewall::iptables_accept(b, true);
        }
    }

    // ---------- networks ----------

    /// A network by full ID, name, or unique ID prefix (dockerd's order).
    pub fn resolve(&self, key: &str) -> Result<NetworkRecord> {
        let st = self.state.lock().unwrap();
        if let Some(n) = st.networks.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = st.networks.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let found: Vec<&NetworkRecord> = st
            .networks
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match found.len() {
            1 => Ok(found[0].clone()),
            0 => Err(Error::NotFound(format!("network {key} not found"))),
            _ => Err(Error::NotFound(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                found.len()
            ))),
        }
    }

    pub fn networks(&self) -> Vec<NetworkRecord> {
        self.state
            .lock()
            .unwrap()
            .networks
            .values()
            .cloned()
            .collect()
    }

    /// `POST /networks/create`.
    pub async fn create_network(&self, req: CreateRequest) -> Result<String> {
        let _op = self.op.write().await;
        let driver = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        match driver.as_str() {
            "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            other => return Err(Error::NotFound(format!("plugin \"{other}\" not found"))),
        }
        if req.name.is_empty() {
            return Err(Error::InvalidArgument(
                "network name cannot be empty".into(),
            ));
        }
        {
            let st = self.state.lock().unwrap();
            if st.networks.values().any(|n| n.name == req.name) {
                return Err(Error::Conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
        }
        if req.ipam_configs.len() > 1 {
            return Err(Error::InvalidArgument(
                "berth supports one IPv4 subnet per network".into(),
            ));
        }
        let taken: Vec<Ipv4Net> = self
            .state
            .lock()
            .unwrap()
            .networks
            .values()
            .filter_map(|n| n.ipam.as_ref().map(|i| i.subnet))
            .collect();
        let ipam = match req.ipam_configs.first() {
            Some(c) if !c.subnet.is_empty() => {
                let subnet = ipam::parse_cidr(&c.subnet).map_err(|e| {
                    Error::InvalidArgument(format!("Invalid subnet {} : {e}", c.subnet))
                })?;
                if subnet.trunc() != subnet {
                    // Docker accepts host bits only for --bip.
                    return Err(Error::InvalidArgument(format!(
                        "invalid subnet {}: it should be {}",
                        c.subnet,
                        subnet.trunc()
                    )));
                }
                if taken.iter().any(|t| ipam::overlaps(t, &subnet)) {
                    return Err(Error::Forbidden(
                        "Pool overlaps with other one on this address space".into(),
                    ));
                }
                let gw = (!c.gateway.is_empty())
                    .then(|| ipam::parse_ip(&c.gateway))
                    .transpose()?;
                let range = (!c.ip_range.is_empty())
                    .then(|| ipam::parse_cidr(&c.ip_range))
                    .transpose()?;
                ipam::Ipam::new(subnet, gw, range)?
            }
            Some(c) if !c.gateway.is_empty() || !c.ip_range.is_empty() => {
                return Err(Error::InvalidArgument("ipv4 pool is empty".into()))
            }
            _ => {
                let mut avoid = taken.clone();
                avoid.extend(host_routes());
                let pools = if self.cfg.default_pools.is_empty() {
                    ipam::default_pools()
                } else {
                    self.cfg.default_pools.clone()
                };
                ipam::Ipam::new(ipam::pick_subnet(&pools, &avoid)?, None, None)?
            }
        };
        let id = random_hex(32);
        let bridge = req
            .options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.len() > 15 {
            return Err(Error::InvalidArgument(format!(
                "bridge name {bridge} is longer than 15 characters"
            )));
        }
        {
            let st = self.state.lock().unwrap();
            if st.networks.values().any(|n| n.bridge == bridge) {
                return Err(Error::Forbidden(format!(
                    "bridge name {bridge} is already used by another network"
                )));
            }
        }
        let mtu = match req.options.get("com.docker.network.driver.mtu") {
            Some(v) => v
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid MTU value {v}")))?,
            None => self.cfg.mtu,
        };
        let icc = req
            .options
            .get("com.docker.network.bridge.enable_icc")
            .is_none_or(|v| v != "false");
        let rec = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver,
            created: now(),
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.clone(),
            options: req.options.clone(),
            ipam_options: req.ipam_options.clone(),
            ipam: Some(ipam.clone()),
            bridge: bridge.clone(),
            icc,
            mtu,
            hide_gateway: req
                .ipam_configs
                .first()
                .is_some_and(|c| !c.subnet.is_empty() && c.gateway.is_empty()),
        };
        let h = link::connect()?;
        let existed = link::index_of(&h, &bridge).await?.is_some();
        let setup = async {
            link::ensure_bridge(&h, &bridge, ipam.gateway, ipam.subnet.prefix_len(), mtu).await?;
            self.state
                .lock()
                .unwrap()
                .networks
                .insert(id.clone(), rec.clone());
            self.apply_firewall()?;
            write_json(
                &self
                    .cfg
                    .state_dir
                    .join("networks")
                    .join(format!("{id}.json")),
                &rec,
            )
        }
        .await;
        if let Err(e) = setup {
            // Roll back every step.
            self.state.lock().unwrap().networks.remove(&id);
            let _ = self.apply_firewall();
            if !existed {
                let _ = link::delete_link(&h, &bridge).await;
            }
            return Err(e);
        }
        info!(network = %id, name = %req.name, %bridge, "network created");
        Ok(id)
    }

    /// Container IDs with an endpoint on network `id`.
    pub fn endpoints_on(&self, id: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .sandboxes
            .values()
            .filter(|s| s.endpoints.iter().any(|e| e.network_id == id))
            .map(|s| s.container_id.clone())
            .collect()
    }

    /// `DELETE /networks/{id}`; `in_use` lists containers configured to use
    /// it (the engine knows stopped ones too).
    pub async fn remove_network(&self, key: &str, in_use: bool) -> Result<()> {
        let _op = self.op.write().await;
        let n = self.resolve(key)?;
        if n.is_builtin() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if in_use || !self.endpoints_on(&n.id).is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.state.lock().unwrap().networks.remove(&n.id);
        if let Err(e) = self.apply_firewall() {
            self.state.lock().unwrap().networks.insert(n.id.clone(), n);
            return Err(e);
        }
        // Whatever the policy is now, rules added while it was DROP go.
        firewall::iptables_accept(&n.bridge, false);
        let h = link::connect()?;
        link::delete_link(&h, &n.bridge).await?;
        let _ = std::fs::remove_file(
            self.cfg
                .state_dir
                .join("networks")
                .join(format!("{}.json", n.id)),
        );
        info!(network = %n.id, name = %n.name, "network removed");
        Ok(())
    }

    // ---------- sandboxes ----------

    pub fn netns_path(&self, cid: &str) -> PathBuf {
        self.cfg.netns_dir.join(&cid[..12])
    }

    pub fn sandbox(&self, cid: &str) -> Option<Sandbox> {
        self.state.lock().unwrap().sandboxes.get(cid).cloned()
    }

    /// Atomic but not fsynced: a sandbox describes kernel state (a network
    /// namespace, links, rules) that a reboot takes away with it, so only
    /// a daemon restart needs the file, and the page cache survives that.
    /// A file torn by a power loss is skipped at load like any unreadable one.
    fn save_sandbox(&self, s: &Sandbox) -> Result<()> {
        write_json_volatile(
            &self
                .cfg
                .state_dir
                .join("sandboxes")
                .join(format!("{}.json", s.container_id)),
            s,
        )
    }

    /// Create the container's namespace with its endpoints and published
    /// ports. Everything is rolled back on error.
    pub async fn setup(self: &Arc<Self>, req: SandboxRequest) -> Result<Sandbox> {
        let cid = req.container_id.clone();
        if let Some(s) = self.sandbox(&cid) {
            // A stale sandbox (the container died while we were down).
            warn!(container = %cid, "replacing stale network sandbox");
            let _ = s;
            self.teardown(&cid).await?;
        }
        let _op = self.op.write().await;
        let netns = self.netns_path(&cid);
        let _ = berth_sys::netns::remove(&netns);
        berth_sys::netns::create(&netns)
            .map_err(|e| Error::Internal(format!("create network namespace: {e}")))?;
        let mut sb = Sandbox {
            container_id: cid.clone(),
            container_name: req.container_name.clone(),
            sandbox_id: random_hex(32),
            netns: netns.clone(),
            endpoints: vec![],
            ports: vec![],
            dns_upstream: req.dns_upstream.clone(),
        };
        let result = async {
            // configure_peer brings lo up along with the first endpoint.
            if req.endpoints.is_empty() {
                link::setup_loopback(&netns).await?;
            }
            let h = link::connect()?;
            for ep in &req.endpoints {
                let e = self.add_endpoint(&h, &sb, ep).await?;
                sb.endpoints.push(e);
            }
            if let Some(primary) = sb.endpoints.first() {
                sb.ports = ports::plan(
                    req.port_bindings.as_ref(),
                    req.publish_all.as_ref(),
                    primary.ip,
                )?;
                let name = req.container_name.clone();
                let epid = primary.endpoint_id.clone();
                let mut reserved = Vec::new();
                for p in sb.ports.iter_mut() {
                    match self.ports.reserve_new(&cid, p) {
                        Ok(()) => reserved.push(p.clone()),
                        Err(msg) => {
                            for r in &reserved {
                                self.ports.release(&cid, r);
                            }
                            return Err(Error::Internal(format!(
                                "driver failed programming external connectivity on endpoint {name} ({epid}): {msg}"
                            )));
                        }
                    }
                }
            }
            self.state
                .lock()
                .unwrap()
                .sandboxes
                .insert(cid.clone(), sb.clone());
            // The ruleset depends on networks and ports only.
            if !sb.ports.is_empty() {
                self.apply_firewall()?;
            }
            self.save_sandbox(&sb)?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            self.state.lock().unwrap().sandboxes.remove(&cid);
            self.ports.release_all(&cid);
            if !sb.ports.is_empty() {
                let _ = self.apply_firewall();
            }
            let h = link::connect()?;
            self.release_endpoints(&h, &sb.endpoints).await;
            let _ = berth_sys::netns::remove(&netns);
            return Err(e);
        }
        self.start_dns(&sb);
        info!(container = %cid, "network sandbox ready");
        Ok(sb)
    }

    async fn add_endpoint(
        &self,
        h: &rtnetlink::Handle,
        sb: &Sandbox,
        req: &EndpointRequest,
    ) -> Result<Endpoint> {
        let net = self.resolve(&req.network)?;
        if net.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "container cannot be connected to network {}",
                net.name
            )));
        }
        if sb.endpoints.iter().any(|e| e.network_id == net.id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                sb.container_name, net.name
            )));
        }
        let want = req
            .ipv4
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(ipam::parse_ip)
            .transpose()?;
        if want.is_some() && net.is_default_bridge() {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let (ip, gateway, prefix) = {
            let mut st = self.state.lock().unwrap();
            let n = st
                .networks
                .get_mut(&net.id)
                .ok_or_else(|| Error::NotFound(format!("network {} not found", req.network)))?;
            let ipam = n.ipam.as_mut().expect("bridge network has IPAM");
            (ipam.allocate(want)?, ipam.gateway, ipam.subnet.prefix_len())
        };
        let mac = ipam::mac_for(ip);
        let host_veth = format!("veth{}", &random_hex(4)[..7]);
        let addr = link::EndpointAddr {
            ifname: format!("eth{}", sb.endpoints.len()),
            ip,
            prefix,
            mac,
            mtu: net.mtu,
            gateway: (!net.internal && sb.endpoints.is_empty()).then_some(gateway),
        };
        if let Err(e) = link::create_endpoint(
            h,
            &net.bridge,
            &host_veth,
            &sb.netns,
            &addr,
            self.cfg.veth_rps,
        )
        .await
        {
            if let Some(i) = self
                .state
                .lock()
                .unwrap()
                .networks
                .get_mut(&net.id)
                .and_then(|n| n.ipam.as_mut())
            {
                i.release(ip);
            }
            return Err(e);
        }
        let mut aliases = req.aliases.clone();
        if net.has_dns() {
            aliases.push(sb.container_id[..12].to_string());
        }
        Ok(Endpoint {
            network_id: net.id.clone(),
            endpoint_id: random_hex(32),
            ifname: addr.ifname,
            host_veth,
            ip,
            prefix,
            mac: ipam::mac_string(&mac),
            gateway,
            aliases,
            requested_ip: want,
        })
    }

    async fn release_endpoints(&self, h: &rtnetlink::Handle, eps: &[Endpoint]) {
        for ep in eps {
            if let Err(e) = link::delete_link(h, &ep.host_veth).await {
                warn!("delete {}: {e}", ep.host_veth);
            }
            let mut st = self.state.lock().unwrap();
            if let Some(i) = st
                .networks
                .get_mut(&ep.network_id)
                .and_then(|n| n.ipam.as_mut())
            {
                i.release(ep.ip);
            }
        }
    }

    /// Undo [`setup`]: endpoints, addresses, ports, rules, DNS, namespace.
    /// Missing pieces are fine (idempotent).
    pub async fn teardown(&self, cid: &str) -> Result<()> {
        let _op = self.op.write().await;
        let sb = {
            let mut st = self.state.lock().unwrap();
            if let Some(t) = st.dns_tasks.remove(cid) {
                t.abort();
            }
            st.sandboxes.remove(cid)
        };
        let Some(sb) = sb else {
            let _ = berth_sys::netns::remove(&self.netns_path(cid));
            return Ok(());
        };
        self.ports.release_all(cid);
        if !sb.ports.is_empty() {
            // Keep going: the links and the namespace must go regardless.
            if let Err(e) = self.apply_firewall() {
                warn!(container = %cid, "ruleset update: {e}");
            }
        }
        let h = link::connect()?;
        self.release_endpoints(&h, &sb.endpoints).await;
        let _ = berth_sys::netns::remove(&sb.netns);
        let _ = std::fs::remove_file(
            self.cfg
                .state_dir
                .join("sandboxes")
                .join(format!("{cid}.json")),
        );
        info!(container = %cid, "network sandbox removed");
        Ok(())
    }

    /// Connect a running container's sandbox to one more network.
    pub async fn connect(self: &Arc<Self>, cid: &str, req: EndpointRequest) -> Result<Endpoint> {
        let _op = self.op.write().await;
        let Some(mut sb) = self.sandbox(cid) else {
            return Err(Error::Conflict(format!(
                "container {cid} has no network namespace"
            )));
        };
        let h = link::connect()?;
        let ep = self.add_endpoint(&h, &sb, &req).await?;
        sb.endpoints.push(ep.clone());
        self.state
            .lock()
            .unwrap()
            .sandboxes
            .insert(cid.to_string(), sb.clone());
        if let Err(e) = self.save_sandbox(&sb) {
            self.state
                .lock()
                .unwrap()
                .sandboxes
                .get_mut(cid)
                .map(|s| s.endpoints.pop());
            self.release_endpoints(&h, std::slice::from_ref(&ep)).await;
            return Err(e);
        }
        self.start_dns(&sb);
        Ok(ep)
    }

    /// Disconnect a running container from a network.
    pub async fn disconnect(&self, cid: &str, network_id: &str) -> Result<()> {
        let _op = self.op.write().await;
        let Some(mut sb) = self.sandbox(cid) else {
            return Ok(());
        };
        let Some(pos) = sb.endpoints.iter().position(|e| e.network_id == network_id) else {
            return Ok(());
        };
        let ep = sb.endpoints.remove(pos);
        self.state
            .lock()
            .unwrap()
            .sandboxes
            .insert(cid.to_string(), sb.clone());
        self.save_sandbox(&sb)?;
        let h = link::connect()?;
        let _ = link::delete_in_netns(&sb.netns, &ep.ifname).await;
        self.release_endpoints(&h, std::slice::from_ref(&ep)).await;
        Ok(())
    }

    /// After a daemon restart: drop sandboxes of containers that are not
    /// running any more, and serve DNS again for those that are.
    pub async fn reconcile(self: &Arc<Self>, running: &[String]) {
        let known: Vec<String> = self
            .state
            .lock()
            .unwrap()
            .sandboxes
            .keys()
            .cloned()
            .collect();
        for cid in known {
            if running.contains(&cid) {
                if let Some(sb) = self.sandbox(&cid) {
                    self.start_dns(&sb);
                }
            } else if let Err(e) = self.teardown(&cid).await {
                warn!(container = %cid, "network cleanup: {e}");
            }
        }
        // Namespaces pinned by a run whose state was lost.
        if let Ok(rd) = std::fs::read_dir(&self.cfg.netns_dir) {
            let st = self.state.lock().unwrap();
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !st.sandboxes.keys().any(|c| c.starts_with(&name)) {
                    let _ = berth_sys::netns::remove(&e.path());
                }
            }
        }
    }

    /// Remove the ruleset (berthd --iptables=false cleanup, tests).
    pub fn drop_firewall(&self) -> Result<()> {
        firewall::delete_table(&self.cfg.table)
    }

    fn start_dns(self: &Arc<Self>, sb: &Sandbox) {
        let has_dns = {
            let st = self.state.lock().unwrap();
            sb.endpoints
                .iter()
                .any(|e| st.networks.get(&e.network_id).is_some_and(|n| n.has_dns()))
                && !st.dns_tasks.contains_key(&sb.container_id)
        };
        if !has_dns {
            return;
        }
        let sock = berth_sys::netns::run_in(&sb.netns, || {
            std::net::UdpSocket::bind("127.0.0.11:53").and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
        });
        let sock = match sock {
            Ok(Ok(s)) => s,
            Ok(Err(e)) | Err(e) => {
                warn!(container = %sb.container_id, "embedded DNS: {e}");
                return;
            }
        };
        let Ok(sock) = tokio::net::UdpSocket::from_std(sock) else {
            return;
        };
        let upstream: Vec<SocketAddr> = sb
            .dns_upstream
            .iter()
            .filter_map(|s| {
                s.parse::<SocketAddr>().ok().or_else(|| {
                    s.parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
            })
            .collect();
        let lookup: Arc<dyn dns::Lookup> = self.clone();
        let task = tokio::spawn(dns::serve(sock, sb.container_id.clone(), upstream, lookup));
        self.state
            .lock()
            .unwrap()
            .dns_tasks
            .insert(sb.container_id.clone(), task);
    }

    // ---------- views ----------

    /// The `docker network inspect` object (`containers`: with endpoints).
    pub fn network_json(&self, n: &NetworkRecord, containers: bool) -> Value {
        let st = self.state.lock().unwrap();
        let mut eps = serde_json::Map::new();
        if containers {
            for s in st.sandboxes.values() {
                for e in s.endpoints.iter().filter(|e| e.network_id == n.id) {
                    eps.insert(
                        s.container_id.clone(),
                        json!({
                            "Name": s.container_name,
                            "EndpointID": e.endpoint_id,
                            "MacAddress": e.mac,
                            "IPv4Address": format!("{}/{}", e.ip, e.prefix),
                            "IPv6Address": "",
                        }),
                    );
                }
            }
        }
        let config: Vec<Value> = match &n.ipam {
            Some(i) => {
                // dockerd's field order: Subnet, IPRange, Gateway.
                let mut c = serde_json::Map::new();
                c.insert("Subnet".into(), json!(i.subnet.to_string()));
                if let Some(r) = i.range {
                    c.insert("IPRange".into(), json!(r.to_string()));
                }
                if !n.hide_gateway {
                    c.insert("Gateway".into(), json!(i.gateway.to_string()));
                }
                vec![Value::Object(c)]
            }
            None => vec![],
        };
        let ipam_options = if n.is_builtin() {
            Value::Null
        } else {
            json!(n.ipam_options)
        };
        json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": ipam_options, "Config": config},
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": eps,
            "Options": n.options,
            "Labels": n.labels,
        })
    }
}

impl dns::Lookup for NetworkManager {
    fn lookup(&self, cid: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        let st = self.state.lock().unwrap();
        let me = st.sandboxes.get(cid)?;
        let mut found = Vec::new();
        for my in &me.endpoints {
            if !st.networks.get(&my.network_id).is_some_and(|n| n.has_dns()) {
                continue;
            }
            for other in st.sandboxes.values() {
                for e in other
                    .endpoints
                    .iter()
                    .filter(|e| e.network_id == my.network_id)
                {
                    let hit = other.container_name.eq_ignore_ascii_case(name)
                        || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name));
                    if hit && !found.contains(&e.ip) {
                        found.push(e.ip);
                    }
                }
            }
        }
        (!found.is_empty()).then_some(found)
    }
}

/// `POST /networks/create` in berth's terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_options: BTreeMap<String, String>,
    pub ipam_configs: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
}
