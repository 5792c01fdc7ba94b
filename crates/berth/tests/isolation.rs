//! End-to-end: what a process sees inside a container, limits, and that
//! the same holds with runc as the runtime (ISO-01..ISO-08, RES-01..).

mod common;

use common::*;

/// Checks shared by the berth-runtime and runc daemons.
fn assert_isolated(d: &Daemon) {
    let o = d.berth(&["run", "-d", IMAGE, "sleep", "60"]);
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{}\n{}", stderr(&o), d.log());
    let probe = d.berth(&[
        "run", "--rm", "--name", "probe", IMAGE, "sh", "-c",
        "echo pid=$$; hostname; echo $(ls /sys/class/net); grep CapEff /proc/self/status; \
         head -c 1 /proc/kcore | wc -c; (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo wrote-proc-sys || echo proc-sys-ro; \
         cat /proc/self/mountinfo",
    ]);
    let out = stdout(&probe);
    assert_eq!(probe.status.code(), Some(0), "{}", stderr(&probe));
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("pid=1"),
        "PID 1 is the container's process:\n{out}"
    );
    let hostname = lines.next().unwrap().to_string();
    assert_eq!(hostname.len(), 12, "hostname is the short id: {out}");
    // A private netns: the default bridge's veth end and lo, none of the host's.
    assert_eq!(
        lines.next(),
        Some("eth0 lo"),
        "interfaces in the netns: {out}"
    );
    let next = lines.next().unwrap();
    assert_eq!(
        next, "CapEff:\t00000000a80425fb",
        "docker's default capabilities"
    );
    assert_eq!(
        lines.next().map(str::trim),
        Some("0"),
        "/proc/kcore is masked"
    );
    assert_eq!(lines.next(), Some("proc-sys-ro"));
    let mountinfo: Vec<&str> = lines.collect();
    let root = mountinfo
        .iter()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("root mount");
    assert!(
        root.contains(" - overlay overlay "),
        "root is the overlay snapshot: {root}"
    );
    // The shim mounts the snapshot with layer paths relative to its dir
    // (short mountinfo lines): <data-root>/image/snapshots/<id>.
    assert!(
        root.contains("lowerdir=../../layers/") && root.contains("upperdir=upper,workdir=work"),
        "{root}"
    );
    for l in &mountinfo {
        let mp = l.split(' ').nth(4).unwrap();
        assert!(
            ["/", "/proc", "/dev", "/sys", "/etc"]
                .iter()
                .any(|p| mp == *p || mp.starts_with(&format!("{p}/"))),
            "unexpected mount inside the container: {l}"
        );
    }

    // The hostname of a container is its own short id.
    let o = d.berth(&["run", "--rm", "--name", "whoami", IMAGE, "hostname"]);
    let h = stdout(&o).trim().to_string();
    let ps = stdout(&d.berth(&["ps", "-a", "--no-trunc"]));
    assert!(!ps.contains("whoami"), "--rm removed it");
    assert_eq!(h.len(), 12);

    let o = d.berth(&["rm", "-f", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn assert_limits(d: &Daemon) {
    // A process that allocates past -m is OOM-killed: 137.
    let o = d.berth(&[
        "run",
        "--name",
        "oom",
        "-m",
        "32m",
        IMAGE,
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.status.code(), Some(137), "{} {}", stdout(&o), stderr(&o));
    let o = d.docker(&[
        "inspect",
        "--format",
        "{{.State.OOMKilled}} {{.State.ExitCode}}",
        "oom",
    ]);
    assert_eq!(stdout(&o).trim(), "true 137");
    d.berth(&["rm", "oom"]);

    // --pids-limit stops a fork bomb; the container still finishes.
    let o = d.berth(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        IMAGE,
        "sh",
        "-c",
        "for i in $(seq 1 40); do sleep 2 & done; wait",
    ]);
    assert!(
        stderr(&o).contains("can't fork"),
        "forks were refused: {}",
        stderr(&o)
    );
    // busybox sh gives up (exit 2) when it cannot fork: the bomb is over.
    assert_eq!(o.status.code(), Some(2));

    // The limits are in the container's cgroup while it runs.
    let o = d.berth(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        IMAGE,
        "sleep",
        "30",
    ]);
    let id = stdout(&o).trim().to_string();
    let dirs = cgroup_dirs(&id);
    assert!(!dirs.is_empty(), "container cgroup exists");
    let read = |f: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .map(|s| s.trim().to_string())
    };
    let mem = read("memory.limit_in_bytes").or_else(|| read("memory.max"));
    assert_eq!(mem.as_deref(), Some("67108864"));
    assert_eq!(read("pids.max").as_deref(), Some("20"));
    // The container sees its cgroups read-only: it cannot raise its own
    // limits (as with runc under dockerd; libcontainer left them writable).
    let o = d.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do \
           [ -e $f ] && { echo 1000 > $f || echo refused; }; done; \
         awk '$5 ~ \"^/sys/fs/cgroup\" { for (i = 7; i <= NF; i++) if ($i == \"-\") t = $(i + 1); \
              print $5, $6, t }' /proc/self/mountinfo",
    ]);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("refused"), "{out} {}", stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // Every cgroup hierarchy (the tmpfs holding them is the container's own).
    let hierarchies: Vec<&str> = lines
        .filter(|m| matches!(m.split(' ').nth(2), Some("cgroup" | "cgroup2")))
        .collect();
    assert!(!hierarchies.is_empty(), "cgroup mounts: {out}");
    for m in hierarchies {
        assert!(
            m.split(' ').nth(1).unwrap_or("").starts_with("ro,"),
            "writable: {m}"
        );
    }
    assert_eq!(read("pids.max").as_deref(), Some("20"));
    d.berth(&["rm", "-f", &id]);
    assert!(
        eventually(10, || cgroup_dirs(&id).is_empty()),
        "cgroup removed: {:?}",
        cgroup_dirs(&id)
    );
}

#[test]
fn isolation_and_limits_with_berth_runtime() {
    require_root!();
    let d = Daemon::start("iso");
    assert_isolated(&d);
    assert_limits(&d);
    // dockerd's default cgroup namespace: the host's on cgroup v1, private
    // on v2 (ARCH-17).
    let o = d.berth(&["create", "--name", "cgns", IMAGE, "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.berth(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", "cgns"]);
    let want = if berth_sys::cgroup::is_unified() {
        "private"
    } else {
        "host"
    };
    assert_eq!(stdout(&o).trim(), want);
    d.berth(&["rm", "cgns"]);
}

#[test]
fn same_results_with_runc_as_the_runtime() {
    require_root!();
    if !std::path::Path::new("/usr/sbin/runc").exists() {
        panic!("runc is required for this test (apt-get install runc)");
    }
    let d = Daemon::start_with(
        "runc",
        &[
            "--add-runtime",
            "runc=/usr/sbin/runc",
            "--default-runtime",
            "runc",
        ],
    );
    let o = d.berth(&["run", "--rm", IMAGE, "echo", "hello"]);
    assert_eq!(stdout(&o), "hello\n", "{}", stderr(&o));
    assert_isolated(&d);
    assert_limits(&d);
}

/// The /etc/hostname, /etc/hosts and /etc/resolv.conf binds are made after
/// create (runtime `late_mounts`), inside the container's root: a missing
/// target is created there, and a symlink in the image, even one climbing
/// out with `..`, resolves inside the container; nothing lands on the host.
#[test]
fn etc_binds_stay_inside_the_rootfs() {
    require_root!();
    let d = Daemon::start("etcbind");
    let marker = format!("/tmp/berth-etc-escape-{}", rand_u32());
    // A rootfs with busybox, /etc/hosts a symlink climbing out, no
    // /etc/hostname, imported as an image.
    let root = std::env::temp_dir().join(format!("berth-etc-root-{}", rand_u32()));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "grep", "readlink"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink(format!("/../../../..{marker}"), root.join("etc/hosts")).unwrap();
    let tar = root.with_extension("tar");
    assert!(run_quiet(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            "."
        ]
    ));
    ok(&d.berth(&["import", tar.to_str().unwrap(), "berth-test/etc-escape"]));
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&tar);
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-h",
        "inner",
        "berth-test/etc-escape",
        "sh",
        "-c",
        &format!("PATH=/bin; cat /etc/hostname; grep -c inner {marker}; readlink /etc/hosts"),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inner", "created /etc/hostname: {out}");
    assert_eq!(
        lines[1], "1",
        "hosts bound at the symlink's target inside: {out}"
    );
    assert!(lines[2].ends_with(&marker), "{out}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "nothing created on the host"
    );
    d.berth(&["rmi", "berth-test/etc-escape"]);
}

/// /dev/shm, /dev/mqueue and /dev/pts are mounted after create (runtime
/// `late_mounts`): same options as libcontainer's, `--shm-size` applied,
/// and the mqueue instance is the container's IPC namespace's (a host
/// queue shows with `--ipc host` only).
#[test]
fn dev_mounts_made_after_create() {
    require_root!();
    let d = Daemon::start("devmnt");
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--shm-size",
        "32m",
        IMAGE,
        "sh",
        "-c",
        "grep -E ' /dev/(shm|mqueue|pts) ' /proc/self/mountinfo | cut -d' ' -f5-; df /dev/shm | tail -1",
    ]));
    assert!(
        out.contains(
            "/dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666"
        ),
        "{out}"
    );
    assert!(
        out.contains("/dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw"),
        "{out}"
    );
    assert!(
        out.contains("/dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=32768k"),
        "{out}"
    );
    let name = format!("/berth-mq-{}", rand_u32());
    // A POSIX message queue in the host's IPC namespace (python3's ctypes:
    // no unsafe code here).
    let mq = |call: &str| {
        let script = format!("import ctypes, os\nrt = ctypes.CDLL('librt.so.1')\n{call}");
        assert!(run_quiet("python3", &["-c", &script]), "{call}");
    };
    mq(&format!(
        "assert rt.mq_open(b'{name}', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0"
    ));
    let private = ok(&d.berth(&["run", "--rm", IMAGE, "ls", "/dev/mqueue"]));
    let host = ok(&d.berth(&["run", "--rm", "--ipc", "host", IMAGE, "ls", "/dev/mqueue"]));
    mq(&format!("rt.mq_unlink(b'{name}')"));
    assert!(!private.contains(&name[1..]), "private IPC: {private}");
    assert!(host.contains(&name[1..]), "--ipc host: {host}");
}
