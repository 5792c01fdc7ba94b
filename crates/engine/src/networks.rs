//! Networking of containers, composed over `berth_network`: the network
//! API (NET-09..NET-13), validation of `--network`/`--ip`/aliases/ports at
//! create, the sandbox at start and its teardown at exit, the generated
//! /etc/hosts, /etc/resolv.conf and /etc/hostname (NET-14..NET-16), and
//! `NetworkSettings` of inspect.
//!
//! What a container asks for (network, static IP, aliases, per network)
//! is kept in `<data-root>/containers/<id>/networks.json`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_network::{self as net, EndpointRequest, NetworkRecord, SandboxRequest};
use berth_types::api::ContainerCreateBody;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::IoContext;
use crate::{ContainerRecord, Engine, Error, Result};

impl From<net::Error> for Error {
    fn from(e: net::Error) -> Error {
        match e {
            net::Error::NotFound(m) => Error::NotFound(m),
            net::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            net::Error::Conflict(m) => Error::Conflict(m),
            net::Error::Forbidden(m) => Error::Forbidden(m),
            net::Error::Internal(m) => Error::Internal(m),
        }
    }
}

/// One network a container is attached to (wanted, not necessarily live).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    pub aliases: Vec<String>,
    pub ipv4: Option<String>,
}

/// The network mode with "default" spelled as Docker stores it.
fn mode_of(rec_mode: &str) -> &str {
    match rec_mode {
        "" | "default" => "bridge",
        m => m,
    }
}

/// Nameservers of the host's resolver file (loopback ones are unreachable
/// from a container and dropped, as Docker does).
fn host_resolv() -> (Vec<String>, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (mut ns, mut search, mut opts) = (vec![], vec![], vec![]);
    for l in text.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(ip) = w.next() {
                    ns.push(ip.to_string());
                }
            }
            Some("search") | Some("domain") => search = w.map(str::to_string).collect(),
            Some("options") => opts.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    (ns, search, opts)
}

fn is_loopback(ip: &str) -> bool {
    ip.starts_with("127.") || ip == "::1"
}

impl Engine {
    fn attachments_path(&self, id: &str) -> std::path::PathBuf {
        self.container_dir(id).join("networks.json")
    }

    pub(crate) fn attachments(&self, id: &str) -> Vec<Attachment> {
        std::fs::read(self.attachments_path(id))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    pub(crate) fn save_attachments(&self, id: &str, a: &[Attachment]) -> Result<()> {
        let path = self.attachments_path(id);
        berth_sys::fs::write_atomic(&path, &serde_json::to_vec_pretty(a).unwrap(), 0o600)
            .ctx(|| format!("write {}", path.display()))
    }

    /// Create-time checks of the network options; the attachments to keep.
    pub(crate) fn plan_networks(&self, body: &mut ContainerCreateBody) -> Result<Vec<Attachment>> {
        let h = &mut body.host_config;
        let mode = mode_of(&h.network_mode).to_string();
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.get("EndpointsConfig"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(other) = mode.strip_prefix("container:") {
            // 400, not 404: a 404 makes the docker CLI try to pull the image.
            self.resolve_id(other)
                .map_err(|_| Error::InvalidArgument(format!("No such container: {other}")))?;
            if h.port_bindings
                .as_ref()
                .is_some_and(|p| p.as_object().is_some_and(|m| !m.is_empty()))
                || h.publish_all_ports
            {
                return Err(Error::InvalidArgument(
                    "conflicting options: port publishing and the container type network mode"
                        .into(),
                ));
            }
            if h.dns.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(Error::InvalidArgument(
                    "conflicting options: dns and the network mode".into(),
                ));
            }
            if h.extra_hosts.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(Error::InvalidArgument(
                    "conflicting options: custom host-to-IP mapping and the network mode".into(),
                ));
            }
            if !body.config.hostname.is_empty() {
                return Err(Error::InvalidArgument(
                    "conflicting options: hostname and the network mode".into(),
                ));
            }
            // NET-08: the joining container takes the other's hostname.
            if let Ok(o) = self.record(other) {
                body.config.hostname = o.config.hostname.clone();
                body.config.domainname = o.config.domainname.clone();
            }
            return Ok(vec![]);
        }
        let n = self
            .net
            .resolve(&mode)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let ep = endpoints
            .get(&mode)
            .or_else(|| endpoints.get(&n.name))
            .or_else(|| endpoints.values().next());
        let aliases: Vec<String> = ep
            .and_then(|e| e.get("Aliases"))
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default();
        let ipv4 = ep
            .and_then(|e| e.pointer("/IPAMConfig/IPv4Address"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if n.driver != "bridge" && (ipv4.is_some() || !aliases.is_empty()) {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if n.is_default_bridge() {
            if ipv4.is_some() {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if !aliases.is_empty() {
                return Err(Error::InvalidArgument(
                    "network-scoped alias is supported only for containers in user defined networks"
                        .into(),
                ));
            }
        }
        if let Some(ip) = &ipv4 {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {ip}")))?;
            let subnet = n.ipam.as_ref().map(|i| i.subnet);
            if !subnet.is_some_and(|s| s.contains(&ip)) {
                return Err(Error::InvalidArgument(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
        }
        if n.driver == "host" {
            // dockerd drops published ports in host mode (with a warning).
            h.port_bindings = Some(json!({}));
        }
        if n.driver == "bridge" {
            // Validate -p now so that create reports it.
            net::ports::plan(h.port_bindings.as_ref(), None, Ipv4Addr::UNSPECIFIED)?;
        }
        for l in h.links.iter().flatten() {
            let target = l.split(':').next().unwrap_or(l);
            self.resolve_id(target.trim_start_matches('/'))
                .map_err(|_| {
                    Error::InvalidArgument(format!(
                        "could not get container for {0}: No such container: {0}",
                        target.trim_start_matches('/')
                    ))
                })?;
        }
        for eh in h.extra_hosts.iter().flatten() {
            let Some((_, ip)) = eh.split_once(':') else {
                return Err(Error::InvalidArgument(format!(
                    "invalid extra host entry: {eh}"
                )));
            };
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::InvalidArgument(format!(
                    "invalid IP address in add-host: \"{ip}\""
                )));
            }
        }
        Ok(vec![Attachment {
            network_id: n.id,
            aliases,
            ipv4,
        }])
    }

    /// Start-time: the container's namespace and endpoints (bridge and
    /// user networks, and `none`). Host and container modes need nothing.
    pub(crate) async fn network_setup(&self, rec: &ContainerRecord) -> Result<()> {
        let mode = mode_of(&rec.host_config.network_mode);
        if mode == "host" || mode.starts_with("container:") {
            return Ok(());
        }
        let mut endpoints = Vec::new();
        if mode != "none" {
            for a in self.attachments(&rec.id) {
                let n = self
                    .net
                    .resolve(&a.network_id)
                    .map_err(|_| Error::NotFound(format!("network {} not found", a.network_id)))?;
                endpoints.push(EndpointRequest {
                    network: n.id,
                    ipv4: a.ipv4.clone(),
                    aliases: a.aliases.clone(),
                });
            }
        }
        let upstream = match rec.host_config.dns.as_ref().filter(|d| !d.is_empty()) {
            Some(d) => d.clone(),
            None => host_resolv().0,
        };
        let exposed = if rec.host_config.publish_all_ports {
            rec.config.exposed_ports.clone()
        } else {
            None
        };
        self.net
            .setup(SandboxRequest {
                container_id: rec.id.clone(),
                container_name: rec.name.clone(),
                endpoints,
                port_bindings: rec.host_config.port_bindings.clone(),
                publish_all: exposed,
                dns_upstream: upstream,
            })
            .await?;
        Ok(())
    }

    /// After exit (or a failed start): release everything network-side.
    pub(crate) async fn network_teardown(&self, id: &str) {
        if let Err(e) = self.net.teardown(id).await {
            tracing::warn!(container = %id, "network teardown: {e}");
        }
    }

    /// The network namespace to join (OCI `path`), if not a new one.
    pub(crate) fn network_namespace(
        &self,
        rec: &ContainerRecord,
        starting: bool,
    ) -> Result<Option<String>> {
        let mode = mode_of(&rec.host_config.network_mode);
        if let Some(other) = mode.strip_prefix("container:") {
            let other = self.record(other)?;
            if !starting {
                return Ok(None);
            }
            if !other.is_running() || other.state.pid == 0 {
                return Err(Error::Conflict(format!(
                    "cannot join network of a non running container: {}",
                    other.id
                )));
            }
            return Ok(Some(format!("/proc/{}/ns/net", other.state.pid)));
        }
        if !starting || mode == "host" {
            return Ok(None);
        }
        Ok(self
            .net
            .sandbox(&rec.id)
            .map(|s| s.netns.display().to_string()))
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf of a container.
    pub(crate) fn network_etc_files(&self, rec: &ContainerRecord) -> Result<[String; 3]> {
        let mode = mode_of(&rec.host_config.network_mode);
        let h = &rec.host_config;
        if let Some(other) = mode.strip_prefix("container:") {
            // Share the other container's view (Docker uses its files).
            let o = self.record(other)?;
            let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
            return Ok([
                read(&o.hostname_path),
                read(&o.hosts_path),
                read(&o.resolv_conf_path),
            ]);
        }
        let hostname = format!("{}\n", rec.config.hostname);
        let sb = self.net.sandbox(&rec.id);
        let primary = sb.as_ref().and_then(|s| s.endpoints.first().cloned());
        let mut hosts = String::new();
        if mode == "host" {
            hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        } else {
            hosts.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        }
        let default_gw = self
            .net
            .resolve("bridge")
            .ok()
            .and_then(|n| n.ipam.map(|i| i.gateway));
        for eh in h.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = eh.split_once(':') {
                let ip = if ip == "host-gateway" {
                    default_gw.map(|g| g.to_string()).unwrap_or_default()
                } else {
                    ip.to_string()
                };
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        for l in h.links.iter().flatten() {
            let (target, alias) = match l.split_once(':') {
                Some((t, a)) => (t, Some(a)),
                None => (l.as_str(), None),
            };
            let Ok(t) = self.record(target.trim_start_matches('/')) else {
                continue;
            };
            let Some(ip) = self
                .net
                .sandbox(&t.id)
                .and_then(|s| s.endpoints.first().map(|e| e.ip))
            else {
                continue;
            };
            // dockerd: "<alias> <hostname>", then the name if it differs.
            let alias = alias.unwrap_or(&t.name);
            let mut names = vec![alias.to_string(), t.config.hostname.clone()];
            if alias != t.name {
                names.push(t.name.clone());
            }
            hosts.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
        if let Some(ep) = &primary {
            let name = if rec.config.domainname.is_empty() {
                rec.config.hostname.clone()
            } else {
                format!(
                    "{}.{} {}",
                    rec.config.hostname, rec.config.domainname, rec.config.hostname
                )
            };
            hosts.push_str(&format!("{}\t{name}\n", ep.ip));
        }
        // resolv.conf
        let embedded = sb.as_ref().is_some_and(|s| {
            s.endpoints.iter().any(|e| {
                self.net
                    .resolve(&e.network_id)
                    .is_ok_and(|n: NetworkRecord| n.has_dns())
            })
        });
        let (host_ns, host_search, host_opts) = host_resolv();
        let user_dns = h.dns.clone().filter(|d| !d.is_empty());
        let search = h
            .dns_search
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or(host_search);
        let mut opts = h
            .dns_options
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or(host_opts);
        let ns: Vec<String> = if embedded {
            if !opts.iter().any(|o| o.starts_with("ndots:")) {
                opts.push("ndots:0".into());
            }
            vec!["127.0.0.11".into()]
        } else if let Some(d) = user_dns {
            d
        } else {
            let v: Vec<String> = host_ns.into_iter().filter(|n| !is_loopback(n)).collect();
            if v.is_empty() {
                vec!["8.8.8.8".into(), "8.8.4.4".into()]
            } else {
                v
            }
        };
        let mut resolv = String::new();
        if !search.is_empty() && search != ["."] {
            resolv.push_str(&format!("search {}\n", search.join(" ")));
        }
        for n in &ns {
            resolv.push_str(&format!("nameserver {n}\n"));
        }
        if !opts.is_empty() {
            resolv.push_str(&format!("options {}\n", opts.join(" ")));
        }
        Ok([hostname, hosts, resolv])
    }

    /// After a live connect/disconnect: rewrite /etc/hosts and
    /// /etc/resolv.conf in place (same inode: they are bind-mounted into the
    /// running container), e.g. to switch to the embedded DNS server.
    fn refresh_etc_files(&self, rec: &ContainerRecord) {
        if let Ok([_, hosts, resolv]) = self.network_etc_files(rec) {
            for (path, data) in [(&rec.hosts_path, hosts), (&rec.resolv_conf_path, resolv)] {
                if let Err(e) = std::fs::write(path, data) {
                    tracing::warn!(container = %rec.id, "rewrite {}: {e}", path.display());
                }
            }
        }
    }

    /// Environment variables of `--link` (NET-14): NAME, ENV_*, PORT_*.
    pub(crate) fn link_env(&self, rec: &ContainerRecord) -> Vec<String> {
        let mut env = Vec::new();
        for l in rec.host_config.links.iter().flatten() {
            let (target, alias) = match l.split_once(':') {
                Some((t, a)) => (t.trim_start_matches('/'), a.to_string()),
                None => (
                    l.trim_start_matches('/'),
                    l.trim_start_matches('/').to_string(),
                ),
            };
            let Ok(t) = self.record(target) else { continue };
            let Some(ip) = self
                .net
                .sandbox(&t.id)
                .and_then(|s| s.endpoints.first().map(|e| e.ip))
            else {
                continue;
            };
            let p = alias.to_uppercase().replace('-', "_");
            env.push(format!("{p}_NAME=/{}/{alias}", rec.name));
            let mut ports: Vec<(u16, String)> = t
                .config
                .exposed_ports
                .as_ref()
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| {
                            let (n, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                            Some((n.parse().ok()?, proto.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            ports.sort();
            if let Some((port, proto)) = ports.first() {
                env.push(format!("{p}_PORT={proto}://{ip}:{port}"));
            }
            for (port, proto) in &ports {
                let k = format!("{p}_PORT_{port}_{}", proto.to_uppercase());
                env.push(format!("{k}={proto}://{ip}:{port}"));
                env.push(format!("{k}_ADDR={ip}"));
                env.push(format!("{k}_PORT={port}"));
                env.push(format!("{k}_PROTO={proto}"));
            }
            for e in t.config.env.iter().flatten() {
                if let Some((k, v)) = e.split_once('=') {
                    if k != "HOME" && k != "PATH" && k != "HOSTNAME" {
                        env.push(format!("{p}_ENV_{k}={v}"));
                    }
                }
            }
        }
        env
    }

    /// `NetworkSettings` of container inspect.
    pub(crate) fn network_settings(&self, r: &ContainerRecord) -> Value {
        let sb = self.net.sandbox(&r.id);
        let running = r.is_running() && sb.is_some();
        let mut networks = serde_json::Map::new();
        let mode = mode_of(&r.host_config.network_mode);
        let atts: Vec<(NetworkRecord, Attachment)> = self
            .attachments(&r.id)
            .into_iter()
            .filter_map(|a| self.net.resolve(&a.network_id).ok().map(|n| (n, a)))
            .collect();
        let mut top = json!({
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        });
        for (n, a) in &atts {
            let ep = sb
                .as_ref()
                .and_then(|s| s.endpoints.iter().find(|e| e.network_id == n.id));
            let ipam_cfg = a
                .ipv4
                .as_ref()
                .map(|ip| json!({"IPv4Address": ip}))
                .unwrap_or(Value::Null);
            let aliases = match ep {
                Some(e) if !e.aliases.is_empty() => json!(e.aliases),
                _ if n.has_dns() => {
                    // dockerd lists the short ID as an alias on user networks.
                    let mut a = a.aliases.clone();
                    a.push(r.id[..12].to_string());
                    json!(a)
                }
                _ if !a.aliases.is_empty() => json!(a.aliases),
                _ => Value::Null,
            };
            let mut v = json!({
                "IPAMConfig": ipam_cfg, "Links": null, "Aliases": aliases,
                "NetworkID": n.id, "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null,
            });
            if let Some(e) = ep.filter(|_| running) {
                v["EndpointID"] = json!(e.endpoint_id);
                v["Gateway"] = json!(e.gateway.to_string());
                v["IPAddress"] = json!(e.ip.to_string());
                v["IPPrefixLen"] = json!(e.prefix);
                v["MacAddress"] = json!(e.mac);
                if n.is_default_bridge() {
                    for k in [
                        "EndpointID",
                        "Gateway",
                        "IPAddress",
                        "IPPrefixLen",
                        "MacAddress",
                    ] {
                        top[k] = v[k].clone();
                    }
                }
            }
            if n.is_default_bridge() {
                if let Some(links) = r.host_config.links.as_ref().filter(|l| !l.is_empty()) {
                    v["Links"] = json!(links
                        .iter()
                        .map(|l| {
                            let (t, a) = l.split_once(':').unwrap_or((l, l));
                            format!("/{}:/{}/{}", t.trim_start_matches('/'), r.name, a)
                        })
                        .collect::<Vec<_>>());
                }
            }
            networks.insert(n.name.clone(), v);
        }
        let ports = if running {
            net::settings_ports(
                r.config.exposed_ports.as_ref(),
                &sb.as_ref().map(|s| s.ports.clone()).unwrap_or_default(),
            )
        } else {
            json!({})
        };
        let (sandbox_id, key) = match (&sb, running) {
            (Some(s), true) => (s.sandbox_id.clone(), s.netns.display().to_string()),
            _ => (String::new(), String::new()),
        };
        let mut out = json!({
            "Bridge": "", "SandboxID": sandbox_id, "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports, "SandboxKey": key,
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        });
        for (k, v) in top.as_object().unwrap() {
            out[k] = v.clone();
        }
        let _ = mode;
        out["Networks"] = Value::Object(networks);
        out
    }

    /// The `network`, `publish` and `expose` filters of `ps`.
    pub(crate) fn network_filters_match(
        &self,
        r: &ContainerRecord,
        f: &std::collections::HashMap<String, Vec<String>>,
    ) -> bool {
        if let Some(nets) = f.get("network") {
            let mine: Vec<NetworkRecord> = self
                .attachments(&r.id)
                .iter()
                .filter_map(|a| self.net.resolve(&a.network_id).ok())
                .collect();
            let hit = nets.iter().any(|want| {
                mine.iter().any(|n| {
                    n.name == *want || (!want.is_empty() && n.id.starts_with(want.as_str()))
                })
            });
            if !hit {
                return false;
            }
        }
        // "80", "80/udp", "8000-8010/tcp" against a set of "port/proto" keys.
        let matches = |specs: &Vec<String>, keys: &[String]| {
            specs.iter().any(|spec| {
                let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
                let (lo, hi) = match ports.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap_or(1), b.parse().unwrap_or(0)),
                    None => {
                        let p: u16 = ports.parse().unwrap_or(0);
                        (p, p)
                    }
                };
                (lo..=hi).any(|p: u16| keys.contains(&format!("{p}/{proto}")))
            })
        };
        if let Some(specs) = f.get("publish") {
            let published: Vec<String> = self
                .net
                .sandbox(&r.id)
                .filter(|_| r.is_running())
                .map(|s| {
                    s.ports
                        .iter()
                        .map(|p| format!("{}/{}", p.container_port, p.proto))
                        .collect()
                })
                .unwrap_or_default();
            if !matches(specs, &published) {
                return false;
            }
        }
        if let Some(specs) = f.get("expose") {
            let exposed: Vec<String> = r
                .config
                .exposed_ports
                .as_ref()
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if !matches(specs, &exposed) {
                return false;
            }
        }
        true
    }

    /// `Ports` of a `GET /containers/json` row.
    pub(crate) fn summary_ports(&self, r: &ContainerRecord) -> (Vec<Value>, Value) {
        let mut ports = Vec::new();
        let sb = self.net.sandbox(&r.id).filter(|_| r.is_running());
        if let Some(s) = &sb {
            for p in &s.ports {
                let ip = if p.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &p.host_ip
                };
                ports.push(json!({"IP": ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto}));
            }
        }
        for k in r
            .config
            .exposed_ports
            .as_ref()
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            let (n, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let Ok(n) = n.parse::<u16>() else { continue };
            if !sb.as_ref().is_some_and(|s| {
                s.ports
                    .iter()
                    .any(|p| p.container_port == n && p.proto == proto)
            }) {
                ports.push(json!({"PrivatePort": n, "Type": proto}));
            }
        }
        let mut nets = serde_json::Map::new();
        let settings = self.network_settings(r);
        if let Some(m) = settings["Networks"].as_object() {
            for (k, v) in m {
                nets.insert(k.clone(), v.clone());
            }
        }
        (ports, json!({"Networks": nets}))
    }

    // ---------- the network API ----------

    fn network_view(&self, n: &NetworkRecord, containers: bool) -> Value {
        let mut v = self.net.network_json(n, containers);
        if containers {
            // Names as the engine knows them now.
            if let Some(m) = v["Containers"].as_object_mut() {
                for (cid, c) in m.iter_mut() {
                    if let Ok(r) = self.record(cid) {
                        c["Name"] = json!(r.name);
                    }
                }
            }
        }
        v
    }

    /// `POST /networks/create`.
    pub async fn network_create(&self, body: &Value) -> Result<Value> {
        let s = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let map = |v: Option<&Value>| -> BTreeMap<String, String> {
            v.and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        if body.get("EnableIPv6").and_then(Value::as_bool) == Some(true) {
            return Err(Error::InvalidArgument(
                "berth networks are IPv4-only: EnableIPv6 is not supported".into(),
            ));
        }
        let ipam = body.get("IPAM");
        let configs = ipam
            .and_then(|i| i.get("Config"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| net::IpamConfig {
                subnet: c["Subnet"].as_str().unwrap_or("").into(),
                gateway: c["Gateway"].as_str().unwrap_or("").into(),
                ip_range: c["IPRange"].as_str().unwrap_or("").into(),
            })
            .collect();
        let id = self
            .net
            .create_network(net::CreateRequest {
                name: s("Name"),
                driver: s("Driver"),
                internal: body
                    .get("Internal")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                attachable: body
                    .get("Attachable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                labels: map(body.get("Labels")),
                options: map(body.get("Options")),
                ipam_options: map(ipam.and_then(|i| i.get("Options"))),
                ipam_configs: configs,
            })
            .await?;
        Ok(json!({"Id": id, "Warning": ""}))
    }

    /// `GET /networks` with dockerd's filters.
    pub fn network_list(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<Vec<Value>> {
        for k in filters.keys() {
            if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str())
            {
                return Err(Error::InvalidArgument(format!("Invalid filter '{k}'")));
            }
        }
        let mut out = Vec::new();
        for n in self.net.networks() {
            if !network_matches(&n, filters, || !self.net.endpoints_on(&n.id).is_empty())? {
                continue;
            }
            out.push(self.network_view(&n, false));
        }
        Ok(out)
    }

    pub fn network_inspect(&self, key: &str) -> Result<Value> {
        let n = self.net.resolve(key)?;
        Ok(self.network_view(&n, true))
    }

    pub async fn network_remove(&self, key: &str) -> Result<()> {
        self.net.remove_network(key, false).await?;
        Ok(())
    }

    /// `POST /networks/prune`: unused user networks.
    pub async fn network_prune(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for n in self.net.networks() {
            if n.is_builtin() || !self.net.endpoints_on(&n.id).is_empty() {
                continue;
            }
            let mut f = filters.clone();
            f.remove("until");
            if !network_matches(&n, &f, || false)? {
                continue;
            }
            if self.net.remove_network(&n.id, false).await.is_ok() {
                deleted.push(n.name.clone());
            }
        }
        Ok(deleted)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(&self, key: &str, body: &Value) -> Result<()> {
        let n = self.net.resolve(key)?;
        let cname = body["Container"].as_str().unwrap_or("");
        let id = self.resolve_id(cname)?;
        let rec = self.record(&id)?;
        let mode = mode_of(&rec.host_config.network_mode);
        if n.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if mode == "host" || mode.starts_with("container:") {
            return Err(Error::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if mode == "none" {
            return Err(Error::Forbidden(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
            ));
        }
        let ep = &body["EndpointConfig"];
        let aliases: Vec<String> =
            serde_json::from_value(ep["Aliases"].clone()).unwrap_or_default();
        let ipv4 = ep
            .pointer("/IPAMConfig/IPv4Address")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if n.is_default_bridge() && (ipv4.is_some() || !aliases.is_empty()) {
            return Err(Error::InvalidArgument(if ipv4.is_some() {
                "user specified IP address is supported on user defined networks only".into()
            } else {
                "network-scoped alias is supported only for containers in user defined networks"
                    .into()
            }));
        }
        let mut atts = self.attachments(&id);
        if atts.iter().any(|a| a.network_id == n.id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, n.name
            )));
        }
        if rec.is_running() {
            self.net
                .connect(
                    &id,
                    EndpointRequest {
                        network: n.id.clone(),
                        ipv4: ipv4.clone(),
                        aliases: aliases.clone(),
                    },
                )
                .await?;
        }
        atts.push(Attachment {
            network_id: n.id.clone(),
            aliases,
            ipv4,
        });
        self.save_attachments(&id, &atts)?;
        if rec.is_running() {
            self.refresh_etc_files(&rec);
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(&self, key: &str, body: &Value) -> Result<()> {
        let n = self.net.resolve(key)?;
        let cname = body["Container"].as_str().unwrap_or("");
        let id = self.resolve_id(cname)?;
        let rec = self.record(&id)?;
        if n.driver == "host" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let mut atts = self.attachments(&id);
        let Some(pos) = atts.iter().position(|a| a.network_id == n.id) else {
            return Err(Error::Forbidden(format!(
                "container {id} is not connected to network {}",
                n.name
            )));
        };
        if rec.is_running() {
            self.net.disconnect(&id, &n.id).await?;
        }
        atts.remove(pos);
        self.save_attachments(&id, &atts)?;
        if rec.is_running() {
            self.refresh_etc_files(&rec);
        }
        Ok(())
    }
}

fn network_matches(
    n: &NetworkRecord,
    f: &BTreeMap<String, Vec<String>>,
    in_use: impl Fn() -> bool,
) -> Result<bool> {
    for (k, vals) in f {
        let ok = vals.iter().any(|v| match k.as_str() {
            "name" => n.name.contains(v.as_str()),
            "id" => n.id.starts_with(v.as_str()),
            "driver" => &n.driver == v,
            "scope" => v == "local",
            "type" => {
                if v == "custom" {
                    !n.is_builtin()
                } else {
                    n.is_builtin()
                }
            }
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(v.as_str()),
            },
            "dangling" => {
                let want = v == "true" || v == "1";
                want == (!n.is_builtin() && !in_use())
            }
            _ => false,
        });
        if k == "type" && vals.iter().any(|v| v != "custom" && v != "builtin") {
            return Err(Error::InvalidArgument(format!(
                "invalid filter: 'type'='{}'",
                vals.join(",")
            )));
        }
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Docker merges the image's EXPOSE list into Config.ExposedPorts.
pub(crate) fn merge_exposed(
    body: &mut ContainerCreateBody,
    image: Option<&serde_json::Map<String, Value>>,
) {
    let Some(img) = image.filter(|m| !m.is_empty()) else {
        return;
    };
    let cfg = body.config.exposed_ports.get_or_insert_with(|| json!({}));
    if let Some(m) = cfg.as_object_mut() {
        for (k, v) in img {
            m.entry(k.clone()).or_insert(v.clone());
        }
    }
}

impl Engine {
    /// After restore: drop sandboxes of containers that stopped while the
    /// daemon was down, resume DNS for running ones.
    pub(crate) async fn reconcile_networks(&self) {
        let running: Vec<String> = {
            let inner = self.inner.lock().unwrap();
            inner
                .containers
                .values()
                .filter(|e| e.rec.is_running())
                .map(|e| e.rec.id.clone())
                .collect()
        };
        self.net.reconcile(&running).await;
    }
}
