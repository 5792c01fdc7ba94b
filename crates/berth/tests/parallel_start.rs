//! End-to-end: containers started and removed all at once (issue 4's
//! parallel start). Network sandboxes are set up concurrently, so every
//! container must still get its own address, every published port its DNAT
//! rule (the ruleset is rebuilt by concurrent starts), and nothing may be
//! left behind after a parallel `rm -f` (NET-02, NET-17, CTR-01).

mod common;

use std::collections::HashSet;

use common::*;

#[test]
fn parallel_starts_get_distinct_addresses_and_every_port_rule() {
    require_root!();
    let d = Daemon::start("par");
    const N: u16 = 12;
    let base = 20000 + (rand_u32() % 20000) as u16;
    let names: Vec<String> = (0..N).map(|i| format!("par-{i}")).collect();
    std::thread::scope(|s| {
        for (i, name) in names.iter().enumerate() {
            let d = &d;
            s.spawn(move || {
                let port = format!("{}:80", base + i as u16);
                let o = d.berth(&[
                    "run", "-d", "--name", name, "-p", &port, IMAGE, "sleep", "300",
                ]);
                assert!(o.status.success(), "{name}: {}", stderr(&o));
            });
        }
    });
    let mut ips = HashSet::new();
    for name in &names {
        let o = d.berth(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.NetworkSettings.IPAddress}}",
            name,
        ]);
        let out = stdout(&o);
        let (running, ip) = out.trim().split_once(' ').unwrap();
        assert_eq!(running, "true", "{name}");
        assert!(ips.insert(ip.to_string()), "{name}: duplicate address {ip}");
    }
    let table = nft_table(&d);
    for i in 0..N {
        let port = base + i;
        assert!(
            table.contains(&format!("tcp dport {port} dnat to")),
            "no rule for port {port}:\n{table}"
        );
    }
    assert_eq!(veths_on(&d.bridge).lines().count(), N as usize);
    // Per-container parents are spread over ext4 block groups (chattr +T)
    // where the filesystem has the flag.
    for p in [
        d.data_root().join("containers"),
        d.data_root().join("image/snapshots"),
        d.exec_root().join("containers"),
        d.exec_root().join("runtime"),
    ] {
        let st = nix::sys::statfs::statfs(&p).unwrap();
        if st.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC {
            let o = std::process::Command::new("lsattr")
                .arg("-d")
                .arg(&p)
                .output()
                .unwrap();
            let attrs = String::from_utf8_lossy(&o.stdout).into_owned();
            let flags = attrs.split_whitespace().next().unwrap_or("");
            assert!(flags.contains('T'), "{}: {attrs}", p.display());
        }
    }
    // Creates run without the other containers' mounts: berthd made the
    // dirs holding them mount points of their own, so a shim drops them as
    // one subtree (every container above still got its rootfs and netns).
    for dir in ["containers", "netns"] {
        let p = d.exec_root().join(dir);
        assert!(
            berth_sys::mount::is_mount_point(&p).unwrap(),
            "{}",
            p.display()
        );
    }

    std::thread::scope(|s| {
        for name in &names {
            let d = &d;
            s.spawn(move || {
                let o = d.berth(&["rm", "-f", name]);
                assert!(o.status.success(), "{name}: {}", stderr(&o));
            });
        }
    });
    assert!(
        eventually(10, || !nft_table(&d).contains("dnat to")),
        "{}",
        nft_table(&d)
    );
    assert_eq!(veths_on(&d.bridge).lines().count(), 0);
    let sandboxes = d.data_root().join("network").join("sandboxes");
    let left: Vec<_> = std::fs::read_dir(&sandboxes)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sandbox files left: {left:?}");
}
