//! `network create|ls|inspect|rm|prune|connect|disconnect` (NET-13) and
//! the network flags of `run`/`create`: `-p`, `-P`, `--expose`,
//! `--network`, `--network-alias`, `--ip`, `--dns*`, `--add-host`,
//! `--link` (NET-05..NET-18), sent the way the docker CLI sends them.

use std::collections::BTreeMap;

use berth_api::client::{empty, Client};
use berth_types::api::ContainerCreateBody;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::{q, CliResult, Failure};
use crate::format::{to_tv, tv_map, tv_s, Format};
use gotmpl::Value as TV;

// ---------- run/create flags ----------

/// The network flags of `run`/`create`.
pub struct RunNetFlags<'a> {
    pub publish: &'a [String],
    pub publish_all: bool,
    pub expose: &'a [String],
    pub network: Option<&'a str>,
    pub aliases: &'a [String],
    pub ip: Option<&'a str>,
    pub dns: &'a [String],
    pub dns_option: &'a [String],
    pub dns_search: &'a [String],
    pub add_host: &'a [String],
    pub link: &'a [String],
}

/// (value, flag, message) of a bad flag value.
pub type FlagError = (String, &'static str, String);

fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// One `-p` value: `[ip:][hostPort:]containerPort[/proto]`.
fn parse_publish(spec: &str) -> Result<Vec<(String, String, String)>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    // An IPv6 host address comes in brackets.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once(']')
            .ok_or_else(|| format!("invalid ip address: {spec}"))?;
        (ip.to_string(), r.strip_prefix(':').unwrap_or(r).to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(format!("invalid port format: {spec}")),
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid ip address: {ip}"));
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    let (c0, c1) =
        port_range(&container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let hr = if host.is_empty() {
        None
    } else {
        Some(port_range(&host).ok_or_else(|| format!("invalid hostPort: {host}"))?)
    };
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let hp = match hr {
            None => String::new(),
            Some((h0, h1)) if c0 == c1 && h0 != h1 => format!("{h0}-{h1}"),
            Some((h0, h1)) => {
                if h1 - h0 != c1 - c0 {
                    return Err(format!(
                        "invalid ranges specified for container and host Ports: {container} and {host}"
                    ));
                }
                (h0 + i as u16).to_string()
            }
        };
        out.push((format!("{c}/{proto}"), ip.clone(), hp));
    }
    Ok(out)
}

/// Fill HostConfig/Config/NetworkingConfig from the network flags.
pub fn apply_run_flags(f: &RunNetFlags, body: &mut ContainerCreateBody) -> Result<(), FlagError> {
    let mut exposed = body
        .config
        .exposed_ports
        .take()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in f.publish {
        for (key, ip, hp) in parse_publish(p).map_err(|e| (p.clone(), "-p, --publish", e))? {
            exposed.insert(key.clone(), json!({}));
            bindings
                .entry(key)
                .or_default()
                .push(json!({"HostIp": ip, "HostPort": hp}));
        }
    }
    for e in f.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (a, b) = port_range(port).ok_or_else(|| {
            (
                e.clone(),
                "--expose",
                format!("invalid range format for --expose: {e}"),
            )
        })?;
        for p in a..=b {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
    }
    if !exposed.is_empty() {
        body.config.exposed_ports = Some(Value::Object(exposed));
    }
    let h = &mut body.host_config;
    h.port_bindings = Some(json!(bindings));
    h.publish_all_ports = f.publish_all;
    if let Some(n) = f.network {
        h.network_mode = n.to_string();
    }
    h.dns = Some(f.dns.to_vec());
    h.dns_options = Some(f.dns_option.to_vec());
    h.dns_search = Some(f.dns_search.to_vec());
    let mut hosts = Vec::new();
    for e in f.add_host {
        // The docker CLI accepts host=ip and host:ip and sends host:ip.
        let (name, ip) = e
            .split_once('=')
            .or_else(|| e.split_once(':'))
            .ok_or_else(|| {
                (
                    e.clone(),
                    "--add-host",
                    format!("bad format for add-host: \"{e}\""),
                )
            })?;
        if ip != "host-gateway"
            && ip
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_err()
        {
            return Err((
                e.clone(),
                "--add-host",
                format!("invalid IP address in add-host: \"{ip}\""),
            ));
        }
        hosts.push(format!("{name}:{ip}"));
    }
    h.extra_hosts = Some(hosts);
    if !f.link.is_empty() {
        h.links = Some(f.link.to_vec());
    }
    if !f.aliases.is_empty() || f.ip.is_some() {
        let net = f.network.unwrap_or("default");
        let mut ep = json!({});
        if !f.aliases.is_empty() {
            ep["Aliases"] = json!(f.aliases);
        }
        if let Some(ip) = f.ip {
            ep["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        body.networking_config = Some(json!({"EndpointsConfig": {net: ep}}));
    }
    Ok(())
}

// ---------- docker network ----------

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long)]
    ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// IP Address Management Driver
    #[arg(long, default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long)]
    ipam_opt: Vec<String>,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    verbose: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// Add link to another container
    #[arg(long)]
    link: Vec<String>,
    network: String,
    container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    force: bool,
    network: String,
    container: String,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn kv_map(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn filters_json(flags: &[String]) -> Result<String, Failure> {
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(Failure {
                code: 125,
                message: format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"),
            });
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_string(), true);
    }
    Ok(serde_json::to_string(&m).unwrap_or_default())
}

fn pretty(v: &impl serde::Serialize) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = v.serialize(&mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

/// IPAM configs as the docker CLI pairs them: each gateway and range goes
/// with the subnet that contains it.
fn ipam_configs(a: &CreateArgs) -> Result<Vec<Value>, Failure> {
    let mut configs: Vec<Value> = a
        .subnet
        .iter()
        .map(|s| json!({"Subnet": s, "IPRange": "", "Gateway": "", "AuxiliaryAddresses": {}}))
        .collect();
    let contains = |subnet: &str, ip: &str| -> bool {
        let (Some((net, len)), Some(addr)) = (
            subnet.split_once('/'),
            ip.split('/')
                .next()
                .and_then(|i| i.parse::<std::net::Ipv4Addr>().ok()),
        ) else {
            return false;
        };
        let (Ok(net), Ok(len)) = (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
            return false;
        };
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - len.min(32))
        };
        u32::from(net) & mask == u32::from(addr) & mask
    };
    for (vals, key) in [(&a.ip_range, "IPRange"), (&a.gateway, "Gateway")] {
        for v in vals {
            let Some(c) = configs
                .iter_mut()
                .find(|c| contains(c["Subnet"].as_str().unwrap_or(""), v) || a.subnet.len() == 1)
            else {
                return Err(fail(format!(
                    "no matching subnet for {}",
                    key.to_lowercase()
                )));
            };
            if !c[key].as_str().unwrap_or("").is_empty() {
                return Err(fail(format!(
                    "cannot configure multiple {} for the same subnet",
                    key.to_lowercase()
                )));
            }
            c[key] = json!(v);
        }
    }
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty()) {
        return Err(fail(
            "every ip-range or gateway must have a corresponding subnet",
        ));
    }
    Ok(configs)
}

fn network_row(v: &Value, trunc: bool) -> TV {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let id = s("Id");
    let id = if trunc && id.len() > 12 {
        id[..12].to_string()
    } else {
        id
    };
    let labels = v["Labels"]
        .as_object()
        .map(|m| {
            let mut l: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                .collect();
            l.sort();
            l.join(",")
        })
        .unwrap_or_default();
    let created = chrono::DateTime::parse_from_rfc3339(&s("Created"))
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S%.f %z %Z")
                .to_string()
        })
        .unwrap_or_default();
    tv_map(vec![
        ("ID", tv_s(id)),
        ("Name", tv_s(s("Name"))),
        ("Driver", tv_s(s("Driver"))),
        ("Scope", tv_s(s("Scope"))),
        (
            "IPv6",
            tv_s(v["EnableIPv6"].as_bool().unwrap_or(false).to_string()),
        ),
        (
            "Internal",
            tv_s(v["Internal"].as_bool().unwrap_or(false).to_string()),
        ),
        ("Labels", tv_s(labels)),
        ("CreatedAt", tv_s(created)),
    ])
}

pub async fn network(client: &Client, cmd: NetworkCmd) -> CliResult {
    match cmd {
        NetworkCmd::Create(a) => {
            let body = json!({
                "Name": a.name,
                "CheckDuplicate": true,
                "Driver": a.driver,
                "EnableIPv6": a.ipv6,
                "IPAM": {
                    "Driver": a.ipam_driver,
                    "Config": ipam_configs(&a)?,
                    "Options": kv_map(&a.ipam_opt),
                },
                "Internal": a.internal,
                "Attachable": a.attachable,
                "Ingress": false,
                "ConfigOnly": false,
                "Options": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            let v: Value = client.post_json("/networks/create", &body).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCmd::Ls(a) => {
            let mut path = "/networks".to_string();
            if !a.filter.is_empty() {
                path.push_str(&format!("?filters={}", q(&filters_json(&a.filter)?)));
            }
            let v: Value = client.get_json(&path).await?;
            let mut nets: Vec<Value> = v.as_array().cloned().unwrap_or_default();
            nets.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            let fmt = match a.format.as_deref().filter(|f| !f.is_empty()) {
                Some(f) if a.quiet && f == "table" => "{{.ID}}".to_string(),
                Some(f) => f.to_string(),
                None if a.quiet => "{{.ID}}".to_string(),
                None => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string(),
            };
            let f = Format::parse(&fmt).map_err(fail)?;
            let rows: Vec<TV> = nets.iter().map(|n| network_row(n, !a.no_trunc)).collect();
            let header = tv_map(vec![
                ("ID", tv_s("NETWORK ID")),
                ("Name", tv_s("NAME")),
                ("Driver", tv_s("DRIVER")),
                ("Scope", tv_s("SCOPE")),
                ("IPv6", tv_s("IPV6")),
                ("Internal", tv_s("INTERNAL")),
                ("Labels", tv_s("LABELS")),
                ("CreatedAt", tv_s("CREATED AT")),
            ]);
            print!("{}", f.render_all(Some(&header), &rows).map_err(fail)?);
            Ok(0)
        }
        NetworkCmd::Inspect(a) => {
            let fmt = match a.format.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => Some(Format::parse(f).map_err(fail)?),
                None => None,
            };
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for n in &a.names {
                match client
                    .get_json::<Value>(&format!("/networks/{}", q(n)))
                    .await
                {
                    Ok(v) => found.push(v),
                    Err(e) => errors.push(Failure::from(e).message),
                }
            }
            match fmt {
                Some(f) => {
                    for v in &found {
                        println!("{}", f.render(&to_tv(v)).map_err(fail)?);
                    }
                }
                None => println!("{}", pretty(&found)),
            }
            for e in &errors {
                eprintln!("{e}");
            }
            Ok(if errors.is_empty() { 0 } else { 1 })
        }
        NetworkCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match client
                    .call(
                        Method::DELETE,
                        &format!("/networks/{}", q(n)),
                        empty(),
                        None,
                    )
                    .await
                {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        let msg = Failure::from(e).message;
                        if a.force && msg.contains("not found") {
                            continue;
                        }
                        failed = true;
                        eprintln!("{msg}");
                    }
                }
            }
            if failed {
                // The docker CLI ends with its StatusError text.
                eprintln!("exit status 1");
            }
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCmd::Prune(a) => {
            if !a.force {
                use std::io::{BufRead, Write};
                print!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(0);
                }
            }
            let path = format!("/networks/prune?filters={}", q(&filters_json(&a.filter)?));
            let (_, b) = client.call(Method::POST, &path, empty(), None).await?;
            let v: Value = serde_json::from_slice(&b).unwrap_or_default();
            let deleted = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in &deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect(a) => {
            let mut ep = json!({});
            if !a.alias.is_empty() {
                ep["Aliases"] = json!(a.alias);
            }
            if !a.link.is_empty() {
                ep["Links"] = json!(a.link);
            }
            if let Some(ip) = &a.ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            let body = json!({"Container": a.container, "EndpointConfig": ep});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/connect", q(&a.network)),
                    berth_api::client::full(serde_json::to_vec(&body).unwrap()),
                    Some("application/json"),
                )
                .await?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/disconnect", q(&a.network)),
                    berth_api::client::full(serde_json::to_vec(&body).unwrap()),
                    Some("application/json"),
                )
                .await?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![("80/tcp".into(), "".into(), "".into())]
        );
        assert_eq!(
            parse_publish("127.0.0.1::53/udp").unwrap(),
            vec![("53/udp".into(), "127.0.0.1".into(), "".into())]
        );
        assert_eq!(
            parse_publish("8080-8081:80-81").unwrap(),
            vec![
                ("80/tcp".into(), "".into(), "8080".into()),
                ("81/tcp".into(), "".into(), "8081".into())
            ]
        );
        assert_eq!(
            parse_publish("9000-9010:80").unwrap(),
            vec![("80/tcp".into(), "".into(), "9000-9010".into())]
        );
        assert!(parse_publish("x:80").is_err());
        assert!(parse_publish("80/foo").is_err());
    }
}
