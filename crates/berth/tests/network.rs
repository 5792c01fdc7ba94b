//! Networking end to end (NET-01..NET-21, CFG-13..17), through the
//! official docker CLI against a private berthd. Every test uses its own
//! bridge, subnets and test network namespaces, and removes them even when
//! it fails (Drop guards). Traffic only goes between the host, our
//! containers and namespaces these tests create.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{
    eventually, free_port, http_get, nft_table, rand_u32, run_quiet, stderr, stdout, veths_on,
    Daemon, IMAGE,
};

/// The coexistence test flips the host's iptables FORWARD policy; the
/// other tests of this file must not forward traffic meanwhile.
static FORWARD_POLICY: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn fails(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(
        !o.status.success(),
        "docker {args:?} should fail: {}",
        stdout(&o)
    );
    stderr(&o)
}

/// A /24 nobody else uses: 10.<150..199>.<r>.0.
fn subnet() -> (String, String) {
    let r = rand_u32();
    let base = format!("10.{}.{}", 150 + r % 50, (r >> 8) % 256);
    (format!("{base}.0/24"), base)
}

/// A network namespace acting as an outside client, linked to the host by
/// a veth pair: host side `<base>.1/30`, namespace side `<base>.2/30`.
struct TestNetns {
    name: String,
    host_if: String,
    host_ip: String,
}

impl TestNetns {
    fn new() -> TestNetns {
        let r = rand_u32();
        let name = format!("bnt{:08x}", r);
        let host_if = format!("bnh{:08x}", r);
        let base = format!("10.{}.{}", 100 + r % 50, (r >> 8) % 256);
        let t = TestNetns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: format!("{base}.1"),
        };
        let peer = format!("bnp{:08x}", r);
        assert!(run_quiet("ip", &["netns", "add", &name]));
        assert!(run_quiet(
            "ip",
            &["link", "add", &host_if, "type", "veth", "peer", "name", &peer]
        ));
        assert!(run_quiet("ip", &["link", "set", &peer, "netns", &name]));
        assert!(run_quiet(
            "ip",
            &["addr", "add", &format!("{base}.1/30"), "dev", &host_if]
        ));
        assert!(run_quiet("ip", &["link", "set", &host_if, "up"]));
        let (addr, gw) = (format!("{base}.2/30"), format!("{base}.1"));
        for cmd in [
            vec!["addr", "add", addr.as_str(), "dev", peer.as_str()],
            vec!["link", "set", peer.as_str(), "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", gw.as_str()],
        ] {
            let mut a: Vec<&str> = vec!["netns", "exec", name.as_str(), "ip"];
            a.extend(cmd);
            assert!(run_quiet("ip", &a), "{a:?}");
        }
        t
    }

    fn ns_ip(&self) -> String {
        let (b, _) = self.host_ip.rsplit_once('.').unwrap();
        format!("{b}.2")
    }

    /// An HTTP GET from inside the namespace.
    fn wget(&self, url: &str) -> Option<String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-s", "-m", "3", url])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        run_quiet("ip", &["link", "del", &self.host_if]);
        run_quiet("ip", &["netns", "del", &self.name]);
    }
}

fn httpd(d: &Daemon, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    d.docker_ok(&args);
}

fn gateway(d: &Daemon) -> String {
    d.bip.split('/').next().unwrap().to_string()
}

/// NET-02, NET-03, NET-17, NET-19: default bridge, DNAT from the host
/// (127.0.0.1 and the bridge address) and from another namespace;
/// `port` and inspect; nothing left after rm.
#[test]
fn published_port_answers_from_host_and_other_netns() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-publish");
    let port = free_port();
    httpd(&d, "web", &["-p", &format!("{port}:80")]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "web"]);
    let ip_addr = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    assert!(
        ip_addr.starts_with(&d.bip[..d.bip.rfind('.').unwrap()]),
        "{ip_addr} not in {}",
        d.bip
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "web"]),
        {
            let o: Vec<u8> = ip_addr.split('.').map(|x| x.parse().unwrap()).collect();
            format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
        }
    );
    let expect = format!("hello-{}", &id[..12]);
    assert!(eventually(5, || http_get(&format!("127.0.0.1:{port}"))
        .is_some_and(|b| b.contains(&expect))));
    let via_bridge = http_get(&format!("{}:{port}", gateway(&d))).unwrap_or_default();
    assert!(via_bridge.contains(&expect), "{via_bridge}");
    let outside = TestNetns::new();
    let got = outside
        .wget(&format!("http://{}:{port}/", outside.host_ip))
        .unwrap_or_default();
    assert!(got.contains(&expect), "from the test netns: {got:?}");
    // The container reaches the outside namespace (masquerade, NET-03).
    // Up to three echoes: under parallel tests a single one is at times
    // lost (seen only with other test daemons busy at the same moment).
    let o = d.docker(&["exec", "web", "ping", "-c3", "-W2", &outside.ns_ip()]);
    assert!(o.status.success(), "{}", stdout(&o));
    // Hairpin: containers reach a published port through the host's
    // address, the publishing container itself included.
    d.docker_ok(&["run", "-d", "--name", "client", IMAGE, "sleep", "300"]);
    for who in ["client", "web"] {
        // (busybox's wget crashes in this image; nc speaks HTTP/1.0.)
        let o = d.docker(&[
            "exec",
            who,
            "sh",
            "-c",
            &format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} {port}",
                gateway(&d)
            ),
        ]);
        assert!(
            stdout(&o).contains(&expect),
            "hairpin from {who}: {}",
            stderr(&o)
        );
    }
    d.docker_ok(&["rm", "-f", "client"]);

    assert_eq!(
        d.docker_ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    // IPv6 loopback goes through the userland proxy (no IPv6 on bridges).
    let v6 = http_get(&format!("[::1]:{port}")).unwrap_or_default();
    assert!(v6.contains(&expect), "via [::1]: {v6}");
    assert_eq!(
        d.docker_ok(&["ps", "--filter", "publish=80", "--format", "{{.Names}}"]),
        "web"
    );
    assert_eq!(d.docker_ok(&["ps", "--filter", "publish=81", "-q"]), "");
    let ports = d.docker_ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"]);
    assert!(
        ports.contains(&format!(
            "{{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"{port}\"}}"
        )),
        "{ports}"
    );
    assert!(nft_table(&d).contains(&format!("tcp dport {port} dnat to {ip_addr}:80")));
    assert!(!veths_on(&d.bridge).is_empty());

    // -P with EXPOSE, udp and an address-bound port.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--expose",
        "7000",
        "-P",
        "-p",
        "127.0.0.1::81",
        "-p",
        "9999/udp",
        IMAGE,
        "sleep",
        "300",
    ]);
    let shown = d.docker_ok(&["port", "pub"]);
    assert!(shown.contains("7000/tcp -> 0.0.0.0:"), "{shown}");
    assert!(shown.contains("81/tcp -> 127.0.0.1:"), "{shown}");
    assert!(shown.contains("9999/udp -> 0.0.0.0:"), "{shown}");

    d.docker_ok(&["rm", "-f", "web", "pub"]);
    assert_eq!(veths_on(&d.bridge), "");
    assert!(!nft_table(&d).contains("dnat to"), "{}", nft_table(&d));
    assert!(http_get(&format!("127.0.0.1:{port}")).is_none());
    let netns_left: Vec<_> = std::fs::read_dir(d.exec_root().join("netns"))
        .unwrap()
        .collect();
    assert!(netns_left.is_empty());
    // The host port is free again.
    TcpListener::bind(("0.0.0.0", port)).expect("port released");
}

/// NET-09..NET-12, NET-14: names and aliases on a user network, only IPs
/// (or --link) on the default bridge, isolation between networks.
#[test]
fn user_network_names_aliases_links_and_isolation() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-dns");
    let (sn1, b1) = subnet();
    let (sn2, _) = subnet();
    let br1 = format!("bu{:08x}", rand_u32());
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &sn1,
        "--gateway",
        &format!("{b1}.254"),
        "-o",
        &format!("com.docker.network.bridge.name={br1}"),
        "--label",
        "t=1",
        "n1",
    ]);
    d.docker_ok(&["network", "create", "--subnet", &sn2, "n2"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n1",
        "--network-alias",
        "db",
        "--ip",
        &format!("{b1}.9"),
        IMAGE,
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "n2",
        IMAGE,
        "sleep",
        "300",
    ]);
    let srv_id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "srv"]);
    let ping = |net: &str, target: &str| {
        d.docker(&[
            "run",
            "--rm",
            "--network",
            net,
            IMAGE,
            "ping",
            "-c1",
            "-W2",
            target,
        ])
        .status
        .success()
    };
    assert!(ping("n1", "srv"), "by name: {}", d.log());
    assert!(ping("n1", "db"), "by alias");
    assert!(ping("n1", &srv_id[..12]), "by short id");
    assert!(ping("n1", &format!("{b1}.9")), "static --ip");
    let resolv = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "n1",
        IMAGE,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(
        resolv.contains("nameserver 127.0.0.11") && resolv.contains("ndots:0"),
        "{resolv}"
    );
    // Another network: neither the name nor the address is reachable.
    assert!(!ping("n2", "srv"));
    assert!(!ping("n2", &format!("{b1}.9")), "networks must be isolated");
    // Inspect shows endpoints, IPAM and options.
    let v: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["network", "inspect", "n1"])).unwrap();
    let n = &v[0];
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], sn1.as_str());
    assert_eq!(
        n["IPAM"]["Config"][0]["Gateway"],
        format!("{b1}.254").as_str()
    );
    assert_eq!(n["Options"]["com.docker.network.bridge.name"], br1.as_str());
    assert_eq!(n["Labels"]["t"], "1");
    assert_eq!(
        n["Containers"][&srv_id]["IPv4Address"],
        format!("{b1}.9/24").as_str()
    );
    assert!(run_quiet("ip", &["link", "show", &br1]));
    let aliases = d.docker_ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.n1.Aliases}}",
        "srv",
    ]);
    assert!(
        aliases.contains("\"db\"") && aliases.contains(&srv_id[..12]),
        "{aliases}"
    );

    // Default bridge: by IP yes, by name no, by name with --link yes.
    d.docker_ok(&[
        "run", "-d", "--name", "b1", "-e", "SECRET=x", "--expose", "5000", IMAGE, "sleep", "300",
    ]);
    let b1_ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "b1"]);
    let b1_id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "b1"]);
    // ps filters: network, expose.
    assert_eq!(
        d.docker_ok(&["ps", "--filter", "network=n1", "--format", "{{.Names}}"]),
        "srv"
    );
    assert_eq!(
        d.docker_ok(&["ps", "--filter", "expose=5000", "--format", "{{.Names}}"]),
        "b1"
    );
    assert_eq!(
        d.docker_ok(&[
            "ps",
            "--filter",
            "expose=4990-5010/tcp",
            "--format",
            "{{.Names}}"
        ]),
        "b1"
    );
    assert!(d
        .docker(&["run", "--rm", IMAGE, "ping", "-c1", "-W2", &b1_ip])
        .status
        .success());
    assert!(!d
        .docker(&["run", "--rm", IMAGE, "ping", "-c1", "-W2", "b1"])
        .status
        .success());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--link",
        "b1:alias1",
        IMAGE,
        "sh",
        "-c",
        "ping -c1 -W2 alias1 >/dev/null && ping -c1 -W2 b1 >/dev/null && env && cat /etc/hosts",
    ]);
    assert!(
        out.contains(&format!("{b1_ip}\talias1 {} b1", &b1_id[..12])),
        "{out}"
    );
    assert!(out.contains("ALIAS1_ENV_SECRET=x"), "{out}");
    assert!(
        out.contains(&format!("ALIAS1_PORT_5000_TCP_ADDR={b1_ip}")),
        "{out}"
    );
    assert!(out.contains("ALIAS1_NAME=/"), "{out}");

    // connect / disconnect with --alias and --ip.
    d.docker_ok(&[
        "network",
        "connect",
        "--alias",
        "late",
        "--ip",
        &format!("{b1}.77"),
        "n1",
        "other",
    ]);
    assert!(ping("n1", "late"));
    // The connected container itself now resolves names on n1 (its
    // resolv.conf was rewritten in place to use the embedded server).
    let o = d.docker(&["exec", "other", "ping", "-c1", "-W2", "srv"]);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    assert!(d
        .docker_ok(&["exec", "other", "ip", "addr"])
        .contains(&format!("{b1}.77/24")));
    d.docker_ok(&["network", "disconnect", "n1", "other"]);
    assert!(!ping("n1", "late"));
    assert!(!d
        .docker_ok(&["exec", "other", "ip", "addr"])
        .contains(&format!("{b1}.77")));

    // ls with filters and format.
    assert_eq!(
        d.docker_ok(&[
            "network",
            "ls",
            "--filter",
            "label=t=1",
            "--format",
            "{{.Name}}"
        ]),
        "n1"
    );
    let custom = d.docker_ok(&[
        "network",
        "ls",
        "-f",
        "type=custom",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(custom, "n1 bridge\nn2 bridge");

    // rm of a network in use fails; after the containers go it works.
    let err = fails(&d, &["network", "rm", "n1"]);
    assert!(err.contains("has active endpoints"), "{err}");
    d.docker_ok(&["rm", "-f", "srv", "other", "b1"]);
    d.docker_ok(&["network", "rm", "n1"]);
    assert!(!run_quiet("ip", &["link", "show", &br1]));
    assert_eq!(
        d.docker_ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nn2"
    );
}

/// `--internal` (no way out) and `--icc=false` (NET-04, CFG-16).
#[test]
fn internal_network_and_icc_false() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start_with("net-icc", &["--icc=false"]);
    let outside = TestNetns::new();
    let (sn, _) = subnet();
    d.docker_ok(&["network", "create", "--internal", "--subnet", &sn, "inside"]);
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "inside",
        IMAGE,
        "ping",
        "-c1",
        "-W2",
        &outside.ns_ip(),
    ]);
    assert!(
        !o.status.success(),
        "an internal network must not reach out"
    );
    let routes = d.docker_ok(&["run", "--rm", "--network", "inside", IMAGE, "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    // The default bridge does reach out...
    let o = d.docker(&["run", "--rm", IMAGE, "ping", "-c1", "-W2", &outside.ns_ip()]);
    assert!(o.status.success(), "bridge egress: {}", stdout(&o));
    // ...but with icc=false its containers cannot talk to each other.
    d.docker_ok(&["run", "-d", "--name", "peer", IMAGE, "sleep", "300"]);
    let peer_ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "peer"]);
    let o = d.docker(&["run", "--rm", IMAGE, "ping", "-c1", "-W2", &peer_ip]);
    assert!(!o.status.success(), "icc=false must block {peer_ip}");
    let v: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.name"],
        d.bridge.as_str()
    );
}

/// NET-06..NET-08: host, none and container: modes.
#[test]
fn host_none_and_container_modes() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-modes");
    let host_links = d.docker_ok(&["run", "--rm", "--network", "host", IMAGE, "ip", "link"]);
    assert!(
        host_links.contains(&d.bridge),
        "host mode sees the host's links: {host_links}"
    );
    let none = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    d.docker_ok(&["run", "-d", "--name", "first", IMAGE, "sleep", "300"]);
    let first_ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "first"]);
    let shared = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        IMAGE,
        "ip",
        "addr",
    ]);
    assert!(shared.contains(&format!("{first_ip}/")), "{shared}");
    // The second container talks to the first over 127.0.0.1.
    d.docker_ok(&[
        "exec",
        "-d",
        "first",
        "sh",
        "-c",
        "echo shared-lo | nc -l -p 7777",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let got = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        IMAGE,
        "nc",
        "127.0.0.1",
        "7777",
    ]);
    assert_eq!(got, "shared-lo");
    let err = fails(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:nosuch",
            IMAGE,
            "true",
        ],
    );
    assert!(err.contains("No such container: nosuch"), "{err}");
    let hosts = d.docker_ok(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "db.example:10.1.2.3",
        "-h",
        "myhost",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "a.example",
        "--dns-option",
        "ndots:3",
        IMAGE,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname",
    ]);
    assert!(hosts.contains(&format!("{}\tgw", gateway(&d))), "{hosts}");
    assert!(hosts.contains("10.1.2.3\tdb.example"), "{hosts}");
    assert!(hosts.contains("\tmyhost\n"), "{hosts}");
    assert!(
        hosts.contains("search a.example\nnameserver 10.9.9.9\noptions ndots:3\n"),
        "{hosts}"
    );
    assert!(hosts.trim_end().ends_with("myhost"), "{hosts}");
}

/// Daemon restart: rules are reconciled, and a container removed after
/// the restart leaves no veth, address, rule, namespace or DNS entry.
#[test]
fn cleanup_after_daemon_restart() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let mut d = Daemon::start("net-restart");
    let (sn, b) = subnet();
    d.docker_ok(&["network", "create", "--subnet", &sn, "rn"]);
    let port = free_port();
    httpd(
        &d,
        "keep",
        &["--network", "rn", "-p", &format!("{port}:80")],
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "gone",
        "--network",
        "rn",
        IMAGE,
        "sleep",
        "300",
    ]);
    let gone_ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.rn.IPAddress}}",
        "gone",
    ]);
    assert!(gone_ip.starts_with(&b));
    d.kill9();
    // What a restart must repair: the ruleset is gone meanwhile.
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &format!("berth-{}", d.bridge)])
        .status();
    d.spawn();
    assert!(
        eventually(5, || http_get(&format!("127.0.0.1:{port}"))
            .is_some_and(|b| b.contains("hello-"))),
        "rules reconciled: {}",
        nft_table(&d)
    );
    let before = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "rn",
        IMAGE,
        "nslookup",
        "gone",
        "127.0.0.11",
    ]);
    assert!(before.contains(&gone_ip), "{before}");
    d.docker_ok(&["rm", "-f", "gone", "keep"]);
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "rn",
        IMAGE,
        "nslookup",
        "gone",
        "127.0.0.11",
    ]);
    assert!(
        !stdout(&o).contains(&gone_ip),
        "DNS entry left: {}",
        stdout(&o)
    );
    let br = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        "rn",
    ]);
    let br = if br.is_empty() {
        format!(
            "br-{}",
            &d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "rn"])[..12]
        )
    } else {
        br
    };
    assert_eq!(veths_on(&br), "");
    assert!(!nft_table(&d).contains("dnat to"));
    assert!(std::fs::read_dir(d.exec_root().join("netns"))
        .unwrap()
        .next()
        .is_none());
    assert!(std::fs::read_dir(d.data_root().join("network/sandboxes"))
        .unwrap()
        .next()
        .is_none());
    d.docker_ok(&["network", "rm", "rn"]);
    assert!(!run_quiet("ip", &["link", "show", &br]));
}

/// Bad input gets Docker's error and leaves nothing half-configured.
#[test]
fn bad_input_errors_and_rollback() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-bad");
    let (sn, b) = subnet();
    d.docker_ok(&["network", "create", "--subnet", &sn, "one"]);
    let err = fails(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            &format!("{b}.128/25"),
            "two",
        ],
    );
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );
    let err = fails(
        &d,
        &["network", "create", "--subnet", "10.300.0.0/24", "three"],
    );
    assert!(err.contains("invalid CIDR address: 10.300.0.0/24"), "{err}");
    let err = fails(&d, &["network", "create", "one"]);
    assert!(
        err.contains("network with name one already exists"),
        "{err}"
    );
    let err = fails(
        &d,
        &["run", "--rm", "--network", "nosuchnet", IMAGE, "true"],
    );
    assert!(err.contains("network nosuchnet not found"), "{err}");
    let err = fails(&d, &["network", "rm", "bridge"]);
    assert!(
        err.contains("bridge is a pre-defined network and cannot be removed"),
        "{err}"
    );
    let err = fails(&d, &["run", "--rm", "--ip", "172.17.0.9", IMAGE, "true"]);
    assert!(
        err.contains("user specified IP address is supported on user defined networks only"),
        "{err}"
    );
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names.lines().count(), 4, "{names}");

    // A host port held by someone else: the start fails and rolls back.
    let holder = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = fails(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "clash",
            "-p",
            &format!("{port}:80"),
            IMAGE,
            "sleep",
            "300",
        ],
    );
    assert!(
        err.contains("driver failed programming external connectivity on endpoint clash"),
        "{err}"
    );
    assert!(err.contains("address already in use"), "{err}");
    assert_eq!(veths_on(&d.bridge), "");
    assert!(!nft_table(&d).contains("dnat to"));
    // A port another container holds.
    drop(holder);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "-p",
        &format!("{port}:80"),
        IMAGE,
        "sleep",
        "300",
    ]);
    let err = fails(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "p2",
            "-p",
            &format!("{port}:80"),
            IMAGE,
            "sleep",
            "300",
        ],
    );
    assert!(
        err.contains(&format!(
            "Bind for 0.0.0.0:{port} failed: port is already allocated"
        )),
        "{err}"
    );
    assert_eq!(veths_on(&d.bridge).lines().count(), 1);
}

/// berth's own CLI: the network commands and run flags print what the
/// docker CLI prints against the same daemon.
#[test]
fn berth_cli_network_commands_match_docker_cli() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-cli");
    let b = |args: &[&str]| {
        let o = d.berth(args);
        assert!(o.status.success(), "berth {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let (sn, base) = subnet();
    let id = b(&[
        "network",
        "create",
        "--subnet",
        &sn,
        "--ip-range",
        &format!("{base}.128/25"),
        "--label",
        "k=v",
        "cli",
    ]);
    assert_eq!(id.trim().len(), 64);
    for args in [
        &["network", "ls"][..],
        &["network", "ls", "--no-trunc", "-f", "driver=bridge"],
        &["network", "ls", "-q", "--filter", "name=cli"],
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}}\t{{.Labels}}\t{{.Internal}}",
        ],
        &["network", "inspect", "cli"],
        &[
            "network",
            "inspect",
            "-f",
            "{{json .IPAM}}",
            "cli",
            "bridge",
        ],
    ] {
        assert_eq!(b(args), stdout(&d.docker(args)), "{args:?}");
    }
    let port = free_port();
    b(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "cli",
        "--network-alias",
        "al",
        "-p",
        &format!("127.0.0.1:{port}:80/tcp"),
        "--expose",
        "90-91",
        "--dns-search",
        "x.example",
        IMAGE,
        "sleep",
        "300",
    ]);
    assert_eq!(b(&["port", "c1"]), stdout(&d.docker(&["port", "c1"])));
    assert_eq!(b(&["port", "c1"]), format!("80/tcp -> 127.0.0.1:{port}\n"));
    let ip_addr = b(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.cli.IPAddress}}",
        "c1",
    ]);
    assert!(
        ip_addr.starts_with(&format!("{base}.12")) || ip_addr.starts_with(&format!("{base}.1")),
        "range: {ip_addr}"
    );
    let out = b(&[
        "run",
        "--rm",
        "--network",
        "cli",
        IMAGE,
        "ping",
        "-c1",
        "-W2",
        "al",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    let ps = stdout(&d.docker(&["ps", "--format", "{{.Ports}}"]));
    assert!(
        ps.contains(&format!("127.0.0.1:{port}->80/tcp")) && ps.contains("90-91/tcp"),
        "{ps}"
    );
    let o = d.berth(&["network", "rm", "cli"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("has active endpoints"),
        "{}",
        stderr(&o)
    );
    b(&["rm", "-f", "c1"]);
    b(&["network", "connect", "--alias", "z", "cli", {
        b(&["create", "--name", "c2", IMAGE, "true"]);
        "c2"
    }]);
    let aliases = b(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.cli.Aliases}}",
        "c2",
    ]);
    let c2 = b(&["inspect", "-f", "{{.Id}}", "c2"]);
    // As dockerd: the short ID is an alias on user networks.
    assert_eq!(aliases.trim(), format!("[\"z\",\"{}\"]", &c2[..12]));
    b(&["network", "disconnect", "cli", "c2"]);
    assert_eq!(b(&["network", "rm", "cli"]), "cli\n");
    let o = d.berth(&["network", "rm", "cli"]);
    assert_eq!(stderr(&o), stderr(&d.docker(&["network", "rm", "cli"])));
}

/// daemon.json keys with Docker's names (CFG-15..CFG-17): mtu, icc and
/// default-address-pools (bridge and bip come from the harness's flags).
#[test]
fn daemon_json_network_keys() {
    require_root!();
    let _shared = FORWARD_POLICY.read().unwrap_or_else(|e| e.into_inner());
    let r = rand_u32();
    let pool_base = format!("10.{}.0.0/16", 100 + (r >> 8) % 50);
    let mut d = Daemon::start("net-json");
    d.kill9();
    std::fs::write(
        d.dir.join("daemon.json"),
        format!(
            r#"{{"mtu": 1400, "icc": false,
               "default-address-pools": [{{"base": "{pool_base}", "size": 24}}]}}"#
        ),
    )
    .unwrap();
    d.spawn();
    let v: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.name"],
        d.bridge.as_str()
    );
    assert_eq!(v[0]["Options"]["com.docker.network.driver.mtu"], "1400");
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], gateway(&d).as_str());
    d.docker_ok(&["network", "create", "auto1"]);
    let sub = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "auto1",
    ]);
    let prefix = pool_base.trim_end_matches(".0.0/16");
    assert_eq!(sub, format!("{prefix}.0.0/24"));
    d.docker_ok(&["network", "create", "auto2"]);
    let sub2 = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "auto2",
    ]);
    assert_eq!(sub2, format!("{prefix}.1.0/24"));
    let mtu = d.docker_ok(&["run", "--rm", IMAGE, "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu, "1400");
}

/// Restores the iptables FORWARD policy even if the test fails.
struct ForwardPolicy(String);

impl Drop for ForwardPolicy {
    fn drop(&mut self) {
        let _ = Command::new("iptables")
            .args(["-P", "FORWARD", &self.0])
            .status();
    }
}

/// dockerd beside berth sets the iptables FORWARD policy to DROP: berth
/// adds its own accept rules for its bridges (docs/networking.md), so its
/// containers still talk, and removes them with the network.
///
/// Ignored by default: flipping the host-wide FORWARD policy also drops
/// forwarded traffic of whatever else runs on the host at that moment
/// (other test binaries, other daemons). Run it alone:
/// `cargo test -p berth --test network -- --ignored works_beside`.
#[test]
#[ignore]
fn works_beside_a_forward_drop_policy() {
    require_root!();
    if Command::new("iptables")
        .arg("-S")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipping: no usable iptables");
        return;
    }
    let _only_me = FORWARD_POLICY.write().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("net-fwd");
    let (sn, _) = subnet();
    d.docker_ok(&["run", "-d", "--name", "on-bridge", IMAGE, "sleep", "300"]);
    let before = stdout(
        &Command::new("iptables")
            .args(["-S", "FORWARD"])
            .output()
            .unwrap(),
    );
    let policy = if before.contains("-P FORWARD DROP") {
        "DROP"
    } else {
        "ACCEPT"
    };
    let _restore = ForwardPolicy(policy.to_string());
    assert!(Command::new("iptables")
        .args(["-P", "FORWARD", "DROP"])
        .status()
        .unwrap()
        .success());
    // Any ruleset rebuild (here: a new network) adds the accept rules.
    d.docker_ok(&["network", "create", "--subnet", &sn, "fwdnet"]);
    let rules = stdout(
        &Command::new("iptables")
            .args(["-S", "FORWARD"])
            .output()
            .unwrap(),
    );
    assert!(
        rules.contains(&format!("-A FORWARD -i {} -j ACCEPT", d.bridge)),
        "{rules}"
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "on-user",
        "--network",
        "fwdnet",
        IMAGE,
        "sleep",
        "300",
    ]);
    let peer = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}",
        "on-bridge",
    ]);
    let o = d.docker(&["run", "--rm", IMAGE, "ping", "-c1", "-W2", &peer]);
    assert!(
        o.status.success(),
        "default bridge under FORWARD DROP: {}",
        stdout(&o)
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fwdnet",
        IMAGE,
        "ping",
        "-c1",
        "-W2",
        "on-user",
    ]);
    assert!(
        o.status.success(),
        "user network under FORWARD DROP: {}",
        stdout(&o)
    );
    d.docker_ok(&["rm", "-f", "on-user"]);
    let br = format!(
        "br-{}",
        &d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "fwdnet"])[..12]
    );
    d.docker_ok(&["network", "rm", "fwdnet"]);
    let rules = stdout(
        &Command::new("iptables")
            .args(["-S", "FORWARD"])
            .output()
            .unwrap(),
    );
    assert!(!rules.contains(&br), "{rules}");
    // The default bridge's rules go with this test daemon.
    for dir in ["-i", "-o"] {
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", dir, &d.bridge, "-j", "ACCEPT"])
            .status();
    }
}
