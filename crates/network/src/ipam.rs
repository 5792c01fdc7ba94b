//! IPv4 address management (pure logic): CIDR parsing with Docker's
//! wording, pools for automatic subnets (CFG-17), and per-network
//! allocation of container addresses (NET-02: handed out in order).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Parse "a.b.c.d/n" (the address may have host bits, as `--bip` does).
pub fn parse_cidr(s: &str) -> Result<Ipv4Net> {
    if s.contains(':') {
        return Err(Error::InvalidArgument(format!(
            "IPv6 is not supported by berth: {s}"
        )));
    }
    s.parse::<Ipv4Net>()
        .map_err(|_| Error::InvalidArgument(format!("invalid CIDR address: {s}")))
}

pub fn parse_ip(s: &str) -> Result<Ipv4Addr> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| Error::InvalidArgument(format!("invalid IP address: {s}")))
}

/// MAC address Docker derives from an IPv4 address (02:42 + the 4 bytes).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `default-address-pools` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl Pool {
    /// A `base=CIDR,size=N` pool, validated.
    pub fn parse(base: &str, size: u8) -> Result<Pool> {
        let base = parse_cidr(base)?;
        if size < base.prefix_len() || size > 30 {
            return Err(Error::InvalidArgument(format!(
                "invalid default address pool {base}: size {size} is out of range"
            )));
        }
        Ok(Pool {
            base: base.trunc(),
            size,
        })
    }
}

/// Docker's built-in pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    vec![
        Pool {
            base: "172.17.0.0/16".parse().unwrap(),
            size: 16,
        },
        Pool {
            base: "172.18.0.0/15".parse().unwrap(),
            size: 16,
        },
        Pool {
            base: "172.20.0.0/14".parse().unwrap(),
            size: 16,
        },
        Pool {
            base: "172.24.0.0/14".parse().unwrap(),
            size: 16,
        },
        Pool {
            base: "172.28.0.0/14".parse().unwrap(),
            size: 16,
        },
        Pool {
            base: "192.168.0.0/16".parse().unwrap(),
            size: 20,
        },
    ]
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet of `pools` that overlaps none of `taken`.
pub fn pick_subnet(pools: &[Pool], taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    for p in pools {
        let Ok(subnets) = p.base.subnets(p.size) else {
            continue;
        };
        for s in subnets {
            if !taken.iter().any(|t| overlaps(t, &s)) {
                return Ok(s);
            }
        }
    }
    Err(Error::Forbidden(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
    ))
}

/// Addresses of one network: subnet, gateway, optional allocation range,
/// and what is handed out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ipam {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default)]
    pub range: Option<Ipv4Net>,
    #[serde(skip)]
    pub allocated: BTreeSet<Ipv4Addr>,
}

impl Ipam {
    pub fn new(subnet: Ipv4Net, gateway: Option<Ipv4Addr>, range: Option<Ipv4Net>) -> Result<Ipam> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(Error::InvalidArgument(format!(
                "subnet {subnet} is too small for containers"
            )));
        }
        if let Some(r) = range {
            if !subnet.contains(&r.network()) || r.prefix_len() < subnet.prefix_len() {
                return Err(Error::InvalidArgument(format!(
                    "Invalid address range {r}: it must be a subset of subnet {subnet}"
                )));
            }
        }
        let gateway = match gateway {
            Some(g) => {
                if !subnet.contains(&g) {
                    return Err(Error::InvalidArgument(format!(
                        "Invalid gateway address {g}: it must be in subnet {subnet}"
                    )));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
        };
        Ok(Ipam {
            subnet,
            gateway,
            range: range.map(|r| r.trunc()),
            allocated: BTreeSet::new(),
        })
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        ip != self.subnet.network() && ip != self.subnet.broadcast() && ip != self.gateway
    }

    /// A specific address (`--ip`), or the lowest free one.
    pub fn allocate(&mut self, want: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        if let Some(ip) = want {
            if !self.subnet.contains(&ip) || !self.usable(ip) {
                return Err(Error::InvalidArgument(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            if !self.allocated.insert(ip) {
                return Err(Error::Forbidden(format!("Address already in use: {ip}")));
            }
            return Ok(ip);
        }
        let r = self.range.unwrap_or(self.subnet);
        let (lo, hi) = (u32::from(r.network()), u32::from(r.broadcast()));
        for n in lo..=hi {
            let ip = Ipv4Addr::from(n);
            if self.usable(ip) && !self.allocated.contains(&ip) {
                self.allocated.insert(ip);
                return Ok(ip);
            }
        }
        Err(Error::Forbidden(format!(
            "no available IPv4 addresses on this network's address pools: {}",
            self.subnet
        )))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.allocated.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_order_and_releases() {
        let mut ipam = Ipam::new(parse_cidr("10.9.0.0/29").unwrap(), None, None).unwrap();
        assert_eq!(ipam.gateway, Ipv4Addr::new(10, 9, 0, 1));
        let a = ipam.allocate(None).unwrap();
        let b = ipam.allocate(None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        ipam.release(a);
        assert_eq!(ipam.allocate(None).unwrap(), a);
        for _ in 0..3 {
            ipam.allocate(None).unwrap();
        }
        // .7 is the broadcast address: the /29 is full.
        assert!(ipam.allocate(None).is_err());
    }

    #[test]
    fn static_and_range() {
        let mut ipam = Ipam::new(
            parse_cidr("10.9.0.0/24").unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 254)),
            Some(parse_cidr("10.9.0.128/25").unwrap()),
        )
        .unwrap();
        assert_eq!(ipam.allocate(None).unwrap(), Ipv4Addr::new(10, 9, 0, 128));
        assert_eq!(
            ipam.allocate(Some(Ipv4Addr::new(10, 9, 0, 5))).unwrap(),
            Ipv4Addr::new(10, 9, 0, 5)
        );
        assert!(ipam.allocate(Some(Ipv4Addr::new(10, 9, 0, 5))).is_err());
        assert!(ipam.allocate(Some(Ipv4Addr::new(10, 8, 0, 5))).is_err());
        assert!(Ipam::new(
            parse_cidr("10.9.0.0/24").unwrap(),
            Some(Ipv4Addr::new(10, 8, 0, 1)),
            None
        )
        .is_err());
    }

    #[test]
    fn pools_skip_taken() {
        let taken = vec![
            parse_cidr("172.17.0.0/16").unwrap(),
            parse_cidr("172.18.5.0/24").unwrap(),
        ];
        assert_eq!(
            pick_subnet(&default_pools(), &taken).unwrap(),
            parse_cidr("172.19.0.0/16").unwrap()
        );
        let custom = vec![Pool {
            base: parse_cidr("10.10.0.0/16").unwrap(),
            size: 24,
        }];
        assert_eq!(
            pick_subnet(&custom, &[parse_cidr("10.10.0.0/24").unwrap()]).unwrap(),
            parse_cidr("10.10.1.0/24").unwrap()
        );
        assert_eq!(
            parse_cidr("foo").unwrap_err().to_string(),
            "invalid CIDR address: foo"
        );
        assert_eq!(
            mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
