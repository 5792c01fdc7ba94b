//! `berthd --veth-rps` (berth only, on by default; docs/networking.md,
//! "Throughput"): the host end of each container veth gets RPS over all
//! online CPUs, the container keeps Docker's interface (eth0, MTU 1500) and
//! published ports still answer. With `--veth-rps=false` the veth is left
//! as dockerd leaves it. Private daemons, bridges and tables, removed by
//! the Daemon guard.

mod common;

use common::{free_port, http_get, Daemon, IMAGE};

/// The host-side veth of the container's eth0 (its peer's ifindex).
fn host_veth(d: &Daemon, name: &str) -> String {
    let iflink = d.docker_ok(&["exec", name, "cat", "/sys/class/net/eth0/iflink"]);
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let idx = std::fs::read_to_string(e.path().join("ifindex")).unwrap_or_default();
        if idx.trim() == iflink {
            return e.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no host interface with ifindex {iflink}");
}

/// Bits set in a sysfs CPU mask (`3`, `ff,ffffffff`).
fn mask_bits(mask: &str) -> u32 {
    mask.trim()
        .split(',')
        .map(|w| u32::from_str_radix(w, 16).unwrap().count_ones())
        .sum()
}

fn online_cpus() -> u32 {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    s.trim()
        .split(',')
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

fn rps_masks(veth: &str) -> Vec<String> {
    let dir = format!("/sys/class/net/{veth}/queues");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .map(|e| std::fs::read_to_string(e.path().join("rps_cpus")).unwrap())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{dir} has no rx queue");
    v
}

/// NET-02, NET-17: RPS on the host veth by default, none with
/// --veth-rps=false; eth0 keeps MTU 1500 and the published port answers
/// from 127.0.0.1.
#[test]
fn veth_rps_is_set_on_the_host_end_only() {
    require_root!();
    let port = free_port();
    let d = Daemon::start("net-rps");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:80"),
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo rps-ok > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let veth = host_veth(&d, "web");
    let cpus = online_cpus();
    for m in rps_masks(&veth) {
        assert_eq!(mask_bits(&m), cpus, "rps_cpus of {veth} is {m:?}");
    }
    assert_eq!(
        d.docker_ok(&["exec", "web", "cat", "/sys/class/net/eth0/mtu"]),
        "1500"
    );
    // The container side is not touched: RPS is a host-side setting.
    let inner = d.docker_ok(&[
        "exec",
        "web",
        "cat",
        "/sys/class/net/eth0/queues/rx-0/rps_cpus",
    ]);
    assert_eq!(mask_bits(&inner), 0, "container eth0 rps_cpus {inner:?}");
    let got = common::eventually(10, || {
        http_get(&format!("127.0.0.1:{port}")).is_some_and(|r| r.contains("rps-ok"))
    });
    assert!(got, "published port did not answer\n{}", d.log());
    d.docker_ok(&["rm", "-f", "web"]);
    drop(d);

    // Off: dockerd's behaviour, no RPS.
    let d = Daemon::start_with("net-norps", &["--veth-rps=false"]);
    d.docker_ok(&["run", "-d", "--name", "plain", IMAGE, "sleep", "300"]);
    let veth = host_veth(&d, "plain");
    for m in rps_masks(&veth) {
        assert_eq!(mask_bits(&m), 0, "rps_cpus of {veth} is {m:?} when off");
    }
    d.docker_ok(&["rm", "-f", "plain"]);
}
