//! Packet filtering and NAT in one nftables table that berth owns
//! (`ip <table>`), rebuilt from the daemon's state as a whole in one
//! atomic `nft -f` transaction on every change and at start-up (so rules
//! are reconciled after a restart and nothing stale survives).
//!
//! What Docker does with iptables chains (NET-03, NET-04, NET-19):
//! - `prerouting`/`output` (nat): traffic for a local address goes to the
//!   `ports` chain, which DNATs published ports to containers. 127.0.0.1
//!   works too (route_localnet on the bridge + masquerade of 127/8).
//! - `postrouting` (nat): masquerade a network's traffic leaving through
//!   another interface (not for `--internal`), plus hairpin masquerade.
//! - `forward` (filter): isolation between berth networks, `--internal`,
//!   and `icc=false` (same-bridge traffic is seen here via br_netfilter).
//!
//! Coexistence with dockerd: dockerd sets the iptables FORWARD policy to
//! DROP. A packet must be accepted by every base chain on a hook, so when
//! that policy is DROP berth inserts `-i <bridge> -j ACCEPT` and
//! `-o <bridge> -j ACCEPT` into iptables' FORWARD for its bridges
//! ([`iptables_accept`]). No other iptables-visible chains are created.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    pub icc: bool,
    pub masquerade: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPort {
    pub proto: String,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The full ruleset of the table, as an `nft -f` script that replaces any
/// previous version atomically.
pub fn script(table: &str, nets: &[FwNetwork], ports: &[FwPort]) -> String {
    let mut s = String::new();
    // "add" makes the delete succeed when the table does not exist yet.
    let _ = writeln!(s, "add table ip {table}");
    let _ = writeln!(s, "delete table ip {table}");
    let _ = writeln!(s, "table ip {table} {{");
    let _ = writeln!(s, "  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump ports\n  }}");
    let _ = writeln!(s, "  chain output {{\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump ports\n  }}");
    let _ = writeln!(s, "  chain ports {{");
    for p in ports {
        let daddr = p
            .host_ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| format!("ip daddr {ip} "))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "    {daddr}{} dport {} dnat to {}:{}",
            p.proto, p.host_port, p.container_ip, p.container_port
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;"
    );
    for n in nets {
        if n.masquerade && !n.internal {
            let _ = writeln!(
                s,
                "    ip saddr {} oifname != \"{}\" masquerade",
                n.subnet, n.bridge
            );
        }
        let _ = writeln!(
            s,
            "    oifname \"{}\" ip saddr 127.0.0.0/8 masquerade",
            n.bridge
        );
        let _ = writeln!(
            s,
            "    oifname \"{}\" ct status dnat ip saddr {} masquerade",
            n.bridge, n.subnet
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority filter; policy accept;"
    );
    for n in nets {
        let b = &n.bridge;
        if n.internal {
            let _ = writeln!(s, "    iifname \"{b}\" oifname != \"{b}\" drop");
            let _ = writeln!(s, "    oifname \"{b}\" iifname != \"{b}\" drop");
        }
    }
    // Published ports stay reachable across networks and with icc=false.
    let _ = writeln!(s, "    ct status dnat accept");
    for n in nets {
        let b = &n.bridge;
        let others: Vec<String> = nets
            .iter()
            .filter(|o| o.bridge != n.bridge)
            .map(|o| format!("\"{}\"", o.bridge))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                s,
                "    iifname \"{b}\" oifname {{ {} }} drop",
                others.join(", ")
            );
        }
        if !n.icc {
            let _ = writeln!(s, "    iifname \"{b}\" oifname \"{b}\" drop");
        }
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// Run an nft script in one transaction.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Internal(format!("run nft: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|e| Error::Internal(format!("write to nft: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Internal(format!("run nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Remove the table (daemon-owned state only).
pub fn delete_table(table: &str) -> Result<()> {
    apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
}

fn iptables(args: &[&str]) -> Option<bool> {
    Command::new("iptables")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .map(|s| s.success())
}

/// Whether iptables' FORWARD chain drops by default (dockerd beside us).
pub fn forward_policy_drop() -> bool {
    Command::new("iptables")
        .args(["-S", "FORWARD"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("-P FORWARD DROP"))
        .unwrap_or(false)
}

/// Make iptables' FORWARD accept traffic of `bridge` (when `add`), or
/// remove those rules. Idempotent; a missing iptables binary is fine.
pub fn iptables_accept(bridge: &str, add: bool) {
    for dir in ["-i", "-o"] {
        let rule = ["FORWARD", dir, bridge, "-j", "ACCEPT"];
        let present = iptables(&[&["-C"][..], &rule[..]].concat()) == Some(true);
        if add && !present {
            let _ = iptables(&[&["-I"][..], &rule[..]].concat());
        } else if !add && present {
            let _ = iptables(&[&["-D"][..], &rule[..]].concat());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_nat_isolation_and_ports() {
        let nets = vec![
            FwNetwork {
                bridge: "b0".into(),
                subnet: "10.1.0.0/24".parse().unwrap(),
                internal: false,
                icc: false,
                masquerade: true,
            },
            FwNetwork {
                bridge: "b1".into(),
                subnet: "10.2.0.0/24".parse().unwrap(),
                internal: true,
                icc: true,
                masquerade: true,
            },
        ];
        let ports = vec![FwPort {
            proto: "tcp".into(),
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 8080,
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
        }];
        let s = script("berth-t", &nets, &ports);
        assert!(s.starts_with("add table ip berth-t\ndelete table ip berth-t\n"));
        assert!(s.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.1.0.2:80"));
        assert!(s.contains("ip saddr 10.1.0.0/24 oifname != \"b0\" masquerade"));
        assert!(!s.contains("ip saddr 10.2.0.0/24 oifname != \"b1\" masquerade"));
        assert!(s.contains("iifname \"b0\" oifname { \"b1\" } drop"));
        assert!(s.contains("iifname \"b0\" oifname \"b0\" drop"));
        assert!(!s.contains("iifname \"b1\" oifname \"b1\" drop"));
        assert!(s.contains("iifname \"b1\" oifname != \"b1\" drop"));
    }
}
