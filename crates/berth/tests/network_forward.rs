//! A FORWARD DROP policy that appears after berthd started (a dockerd
//! started later sets it) must not cut berth's containers off: berthd
//! re-checks the policy and adds its accept rules (docs/networking.md,
//! "Firewall"). The daemon runs in a network namespace of this test, so
//! the policy flip touches nothing else on the host; the namespace (bridge,
//! veths, nft table, iptables rules) goes at the end.

mod common;

use std::fs::File;
use std::process::Command;

use common::{eventually, rand_u32, run_quiet, stdout, Daemon, IMAGE};
use nix::sched::{setns, CloneFlags};

/// This thread (and what it spawns: berthd, ip, iptables) in a new netns;
/// back to the original one and the namespaces deleted on drop.
struct InNetns {
    name: String,
    outside: String,
    back: File,
}

impl InNetns {
    fn enter(name: &str, outside: &str) -> InNetns {
        let back = File::open("/proc/thread-self/ns/net").unwrap();
        assert!(
            run_quiet("ip", &["netns", "add", name]),
            "ip netns add {name}"
        );
        let g = InNetns {
            name: name.into(),
            outside: outside.into(),
            back,
        };
        let ns = File::open(format!("/run/netns/{name}")).unwrap();
        setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        g
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        let _ = setns(&self.back, CloneFlags::CLONE_NEWNET);
        run_quiet("ip", &["netns", "del", &self.outside]);
        run_quiet("ip", &["netns", "del", &self.name]);
    }
}

fn forward_rules() -> String {
    stdout(
        &Command::new("iptables")
            .args(["-S", "FORWARD"])
            .output()
            .unwrap(),
    )
}

/// NET-03, NET-05: egress through masquerade survives a later FORWARD DROP.
#[test]
fn forward_drop_policy_set_after_start_is_handled() {
    require_root!();
    if !run_quiet("iptables", &["-S"]) || !run_quiet("nft", &["list", "tables"]) {
        eprintln!("skipping: no usable iptables/nft");
        return;
    }
    let r = rand_u32();
    let _ns = InNetns::enter(&format!("bfw{r:08x}"), &format!("bfo{r:08x}"));
    // An outside namespace behind a veth, as in network.rs's TestNetns.
    let (host_if, peer, out) = (
        format!("bfh{r:08x}"),
        format!("bfp{r:08x}"),
        format!("bfo{r:08x}"),
    );
    let base = format!("10.{}.{}", 100 + r % 50, (r >> 8) % 256);
    assert!(run_quiet("ip", &["link", "set", "lo", "up"]));
    assert!(run_quiet("ip", &["netns", "add", &out]));
    assert!(run_quiet(
        "ip",
        &["link", "add", &host_if, "type", "veth", "peer", "name", &peer, "netns", &out]
    ));
    assert!(run_quiet(
        "ip",
        &["addr", "add", &format!("{base}.1/30"), "dev", &host_if]
    ));
    assert!(run_quiet("ip", &["link", "set", &host_if, "up"]));
    let addr = format!("{base}.2/30");
    assert!(run_quiet(
        "ip",
        &["-n", &out, "addr", "add", &addr, "dev", &peer]
    ));
    assert!(run_quiet("ip", &["-n", &out, "link", "set", &peer, "up"]));
    assert!(forward_rules().contains("-P FORWARD ACCEPT"));

    let d = Daemon::start("net-fwdpol");
    d.docker_ok(&["run", "-d", "--name", "egress", IMAGE, "sleep", "300"]);
    let target = format!("{base}.2");
    let ping = || {
        d.docker(&["exec", "egress", "ping", "-c1", "-W1", &target])
            .status
            .success()
    };
    assert!(
        eventually(5, ping),
        "no egress before the flip\n{}",
        d.log()
    );
    assert!(!forward_rules().contains(&d.bridge), "{}", forward_rules());

    // What dockerd does at start, long after berthd built its ruleset.
    assert!(run_quiet("iptables", &["-P", "FORWARD", "DROP"]));
    assert!(
        eventually(15, ping),
        "egress stays cut under a later FORWARD DROP: {}",
        forward_rules()
    );
    let rules = forward_rules();
    assert!(
        rules.contains(&format!("-A FORWARD -i {} -j ACCEPT", d.bridge))
            && rules.contains(&format!("-A FORWARD -o {} -j ACCEPT", d.bridge)),
        "{rules}"
    );
    d.docker_ok(&["rm", "-f", "egress"]);
}
