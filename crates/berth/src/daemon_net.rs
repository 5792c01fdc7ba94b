//! berthd's networking flags and daemon.json keys, with dockerd's names
//! (CFG-13..CFG-17): `--bridge`/`-b`, `--bip`, `--fixed-cidr`, `--mtu`,
//! `--icc`, `--iptables`, `--ip-forward`, `--default-address-pool`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

#[derive(Args, Debug, Default)]
pub struct NetArgs {
    /// Attach containers to a network bridge (default berth0)
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// IPv4 subnet for fixed IPs
    #[arg(long)]
    pub fixed_cidr: Option<String>,
    /// Set the containers network MTU
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Enable inter-container communication
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub icc: Option<bool>,
    /// Enable addition of nftables rules
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub iptables: Option<bool>,
    /// Enable net.ipv4.ip_forward
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub ip_forward: Option<bool>,
    /// Default address pools for node specific local networks (base=CIDR,size=N)
    #[arg(long = "default-address-pool")]
    pub default_address_pool: Vec<String>,
    /// Receive packet steering over all CPUs on the host end of each veth
    /// (berth only, default true; --veth-rps=false leaves veths as dockerd does)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub veth_rps: Option<bool>,
}

/// daemon.json `default-address-pools` entry.
#[derive(Deserialize, Debug, Clone)]
pub struct PoolEntry {
    pub base: String,
    pub size: u8,
}

/// The daemon.json keys, read by daemon.rs's FileConfig.
#[derive(Debug, Default)]
pub struct NetFile {
    pub bridge: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: Option<u32>,
    pub icc: Option<bool>,
    pub iptables: Option<bool>,
    pub ip_forward: Option<bool>,
    pub default_address_pools: Vec<PoolEntry>,
}

fn pool(base: &str, size: u8) -> Result<berth_engine::AddressPool> {
    berth_engine::AddressPool::parse(base, size).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Flags win over daemon.json.
pub fn network_config(
    args: &NetArgs,
    file: NetFile,
    bip: Option<String>,
    data_root: &Path,
    exec_root: &Path,
) -> Result<berth_engine::NetworkConfig> {
    let bridge = args
        .bridge
        .clone()
        .or(file.bridge)
        .unwrap_or_else(|| "berth0".into());
    if bridge.is_empty() || bridge.len() > 15 {
        bail!("invalid bridge name {bridge:?}");
    }
    let mut pools = Vec::new();
    for p in &args.default_address_pool {
        let mut base = None;
        let mut size = None;
        for kv in p.split(',') {
            match kv.split_once('=') {
                Some(("base", v)) => base = Some(v.to_string()),
                Some(("size", v)) => size = Some(v.parse::<u8>().context("invalid pool size")?),
                _ => bail!("invalid default address pool {p}: use base=CIDR,size=N"),
            }
        }
        match (base, size) {
            (Some(b), Some(s)) => pools.push(pool(&b, s)?),
            _ => bail!("invalid default address pool {p}: use base=CIDR,size=N"),
        }
    }
    if pools.is_empty() {
        for p in &file.default_address_pools {
            pools.push(pool(&p.base, p.size)?);
        }
    }
    Ok(berth_engine::NetworkConfig {
        state_dir: data_root.join("network"),
        netns_dir: exec_root.join("netns"),
        table: berth_engine::NetworkConfig::table_for(&bridge),
        bridge,
        bip,
        fixed_cidr: args.fixed_cidr.clone().or(file.fixed_cidr),
        mtu: args.mtu.or(file.mtu).unwrap_or(1500),
        icc: args.icc.or(file.icc).unwrap_or(true),
        iptables: args.iptables.or(file.iptables).unwrap_or(true),
        ip_forward: args.ip_forward.or(file.ip_forward).unwrap_or(true),
        default_pools: pools,
        veth_rps: args.veth_rps.unwrap_or(true),
    })
}
