//! Real containers through `berth-runtime run` and `runc run` with the same
//! bundle; results must match (RES-01..RES-18). Needs root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const PROBE: &str = r#"
echo pid=$$
echo host=$(hostname)
echo cwd=$(pwd)
echo foo=$FOO
echo uid=$(id -u)
echo gid=$(id -g)
echo capeff=$(grep CapEff /proc/self/status | cut -f2)
echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)
echo sigign=$(grep SigIgn /proc/self/status | cut -f2)
echo net=$(ls /sys/class/net | tr '\n' ' ')
echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c)
if echo x 2>/dev/null > /proc/sys/kernel/domainname; then echo procsys=rw; else echo procsys=ro; fi
echo hostmounts=$(grep -c -E ' /work| /home' /proc/self/mountinfo)
echo rootmnt=$(awk '$5 == "/" {print $4}' /proc/self/mountinfo)
echo nofile=$(ulimit -n)
echo nprocs=$(ls -d /proc/[0-9]* | wc -l)
"#;

/// RES-02 PID 1, RES-05 mounts, RES-06 hostname, RES-03 net, RES-17 caps,
/// RES-18 masked/read-only paths; cwd/env/user/rlimit/noNewPrivileges.
#[test]
fn isolation_matches_runc() {
    require_root!();
    let b = Bundle::new("iso", &["sh", "-c", PROBE]);
    let mut results = Vec::new();
    for rt in runtimes() {
        let out = b.run(rt, Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "{rt}: {out:?}");
        let m = kv(&out.stdout);
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        assert_eq!(get("pid"), "1", "{rt}: {out:?}");
        assert_eq!(get("host"), format!("h-{}", b.id), "{rt}");
        assert_eq!(get("cwd"), "/work-dir", "{rt}");
        assert_eq!(get("foo"), "bar", "{rt}");
        assert_eq!((get("uid"), get("gid")), ("0".into(), "0".into()), "{rt}");
        assert_eq!(get("capeff"), DOCKER_CAPEFF, "{rt}");
        assert_eq!(get("nnp"), "1", "{rt}");
        assert_eq!(get("net"), "lo", "{rt}");
        assert_eq!(get("kcore"), "0", "{rt}");
        assert_eq!(get("procsys"), "ro", "{rt}");
        assert_eq!(get("hostmounts"), "0", "{rt}");
        let rootmnt = get("rootmnt");
        let rootfs = b.dir.join("rootfs");
        assert!(
            rootmnt.ends_with("/rootfs") && rootfs.to_str().unwrap().ends_with(&rootmnt),
            "{rt}: root mount {rootmnt:?} is not {rootfs:?}"
        );
        assert_eq!(get("nofile"), "1024", "{rt}");
        // We reset inherited ignored signals; runc passes them through, so
        // compare only ours.
        let mut m = m;
        // RES-02: only the probe's own processes are visible (count racy).
        let nprocs: u32 = m.remove("nprocs").unwrap_or_default().parse().unwrap();
        assert!(nprocs < 10, "{rt}: sees {nprocs} processes");
        let ign = m.remove("sigign").unwrap_or_default();
        if rt == BIN {
            assert_eq!(ign, "0000000000000000", "{rt}");
        }
        results.push(m);
    }
    if results.len() == 2 {
        assert_eq!(results[0], results[1], "berth-runtime vs runc");
    }
}

/// User and group from process.user are applied (non-root: no caps).
#[test]
fn user_applied() {
    require_root!();
    let script = "echo uid=$(id -u); echo gid=$(id -g); echo capeff=$(grep CapEff /proc/self/status | cut -f2)";
    let b = Bundle::new("user", &["sh", "-c", script]);
    b.edit(|c| c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1001}));
    let mut results = Vec::new();
    for rt in runtimes() {
        let out = b.run(rt, Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "{rt}: {out:?}");
        let m = kv(&out.stdout);
        assert_eq!(m["uid"], "1000", "{rt}");
        assert_eq!(m["gid"], "1001", "{rt}");
        results.push(m);
    }
    if results.len() == 2 {
        assert_eq!(results[0], results[1]);
    }
}

/// Exit codes pass through `run` (signals: see memory_limit_oom_kills).
#[test]
fn exit_codes() {
    require_root!();
    let b = Bundle::new("exit", &["sh", "-c", "exit 42"]);
    for rt in runtimes() {
        let out = b.run(rt, Duration::from_secs(30));
        assert_eq!(out.code, Some(42), "{rt}: {out:?}");
    }
}

/// RES-14: 32m memory limit; allocating ~100 MB gets the process OOM-killed.
#[test]
fn memory_limit_oom_kills() {
    require_root!();
    let script = r#"x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}"#;
    let b = Bundle::new("oom", &["sh", "-c", script]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 32 << 20, "swap": 32 << 20})
    });
    for rt in runtimes() {
        let out = b.run(rt, Duration::from_secs(60));
        assert_eq!(out.code, Some(137), "{rt}: {out:?}");
    }
}

/// RES-14: pids limit 10 makes a fork bomb fail instead of hang.
#[test]
fn pids_limit_stops_fork_bomb() {
    require_root!();
    let script = "for i in $(seq 1 40); do sleep 2 & done; echo spawned; wait; echo done";
    let b = Bundle::new("pids", &["sh", "-c", script]);
    b.edit(|c| c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 10}));
    for rt in runtimes() {
        let out = b.run(rt, Duration::from_secs(60));
        assert!(!out.timed_out, "{rt}: hung");
        // busybox sh gives up with "can't fork" (exit 2) instead of hanging.
        assert!(
            out.stderr.contains("can't fork"),
            "{rt}: no fork failure: {out:?}"
        );
        assert!(
            !out.stdout.contains("done"),
            "{rt}: all forks worked: {out:?}"
        );
    }
}

/// RES-10/RES-12: v1 limit files hold the values while running; the cgroup
/// dirs are gone after delete. Uses create/start/state/kill/delete.
#[test]
fn cgroup_files_and_lifecycle() {
    require_root!();
    let b = Bundle::new("cg", &["sleep", "30"]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] =
            serde_json::json!({"limit": 48 << 20, "swap": 48 << 20});
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 17});
    });
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for rt in runtimes() {
        let root = b.root_for(rt);
        let cli = |args: &[&str]| b.cli(rt, args);
        let bundle = b.dir.to_str().unwrap().to_string();
        let pidfile = b.dir.join("pid").to_str().unwrap().to_string();
        let st = b.create(rt, &["--pid-file", &pidfile]);
        assert!(st.success(), "{rt} create: {st}");
        let st: serde_json::Value = serde_json::from_str(&cli(&["state", &b.id]).stdout).unwrap();
        assert_eq!(st["status"], "created", "{rt}");
        let pid: i64 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(st["pid"].as_i64(), Some(pid), "{rt}");
        assert_eq!(st["id"], b.id.as_str());
        assert_eq!(st["bundle"], bundle.as_str());
        assert_eq!(st["rootfs"], format!("{bundle}/rootfs"));
        for k in ["ociVersion", "created", "owner"] {
            assert!(st.get(k).is_some(), "{rt}: state lacks {k}: {st}");
        }
        assert_eq!(cli(&["start", &b.id]).code, Some(0), "{rt} start");
        let st: serde_json::Value = serde_json::from_str(&cli(&["state", &b.id]).stdout).unwrap();
        assert_eq!(st["status"], "running", "{rt}");
        let rel = b.cgroup_rel();
        if v2 {
            let d = std::path::Path::new("/sys/fs/cgroup").join(&rel);
            let mem = std::fs::read_to_string(d.join("memory.max")).unwrap();
            assert_eq!(mem.trim(), (48u64 << 20).to_string());
            assert_eq!(
                std::fs::read_to_string(d.join("pids.max")).unwrap().trim(),
                "17"
            );
        } else {
            let mem = std::path::Path::new("/sys/fs/cgroup/memory").join(&rel);
            let lim = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
            assert_eq!(lim.trim(), (48u64 << 20).to_string(), "{rt}");
            let pids = std::path::Path::new("/sys/fs/cgroup/pids").join(&rel);
            let max = std::fs::read_to_string(pids.join("pids.max")).unwrap();
            assert_eq!(max.trim(), "17", "{rt}");
            let procs = std::fs::read_to_string(pids.join("cgroup.procs")).unwrap();
            assert!(
                procs.lines().any(|l| l.trim() == pid.to_string()),
                "{rt}: {procs}"
            );
        }
        assert_eq!(cli(&["kill", &b.id, "KILL"]).code, Some(0), "{rt} kill");
        let t = std::time::Instant::now();
        loop {
            let st: serde_json::Value =
                serde_json::from_str(&cli(&["state", &b.id]).stdout).unwrap();
            if st["status"] == "stopped" {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{rt}: not stopped: {st}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(cli(&["delete", &b.id]).code, Some(0), "{rt} delete");
        assert!(
            cgroup_dirs(&rel).is_empty(),
            "{rt}: left {:?}",
            cgroup_dirs(&rel)
        );
        assert!(!root.join(&b.id).exists(), "{rt}: state dir remains");
        // Unknown container: error, exit 1 (like runc).
        let out = cli(&["state", &b.id]);
        assert_eq!(out.code, Some(1), "{rt}: {out:?}");
    }
}

/// `spec` writes a loadable config and refuses to overwrite it.
#[test]
fn spec_command() {
    let dir = std::env::temp_dir().join(unique("spec"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = || {
        Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["terminal"], true);
    assert!(!run().status.success(), "overwrote config.json");
    let _ = std::fs::remove_dir_all(&dir);
}

/// CTR-10 `exec --process`: the process joins the container (pid namespace,
/// cgroups), gets the container's seccomp filter, the process file's user,
/// cwd and env, and its exit code comes back; `-d --pid-file` returns once
/// it runs. Same results from runc.
#[test]
fn exec_process_matches_runc() {
    require_root!();
    let b = Bundle::new("exec", &["sleep", "30"]);
    // mkdir fails with ENOSYS under the filter, so its effect is visible.
    b.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    for rt in runtimes() {
        let cli = |args: &[&str]| b.cli(rt, args);
        let st = b.create(rt, &[]);
        assert!(st.success(), "{rt} create: {st}");
        assert_eq!(cli(&["start", &b.id]).code, Some(0), "{rt} start");
        let mut process = b.config()["process"].clone();
        process["args"] = serde_json::json!([
            "sh",
            "-c",
            "echo pid=$$; echo uid=$(id -u); echo cwd=$(pwd); echo foo=$FOO; \
             echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2); \
             mkdir /tmp/x 2>/dev/null; echo mkdir=$?; \
             echo fds=$(ls /proc/self/fd | tr '\\n' ' '); exit 3"
        ]);
        process["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        process["cwd"] = serde_json::json!("/tmp");
        process["env"] = serde_json::json!(["PATH=/bin", "FOO=exec"]);
        process["terminal"] = serde_json::json!(false);
        let pfile = b.dir.join(format!("process-{}.json", rt.replace('/', "_")));
        std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
        let pf = pfile.to_str().unwrap();
        let out = cli(&["exec", "--process", pf, &b.id]);
        assert_eq!(out.code, Some(3), "{rt}: {out:?}");
        let m = kv(&out.stdout);
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        assert_ne!(get("pid"), "1", "{rt}: {out:?}");
        assert!(get("pid").parse::<u32>().unwrap_or(0) > 1, "{rt}: {out:?}");
        assert_eq!(get("uid"), "1000", "{rt}");
        assert_eq!(get("cwd"), "/tmp", "{rt}");
        assert_eq!(get("foo"), "exec", "{rt}");
        assert_eq!(get("seccomp"), "2", "{rt}: {out:?}");
        assert_eq!(get("mkdir"), "1", "{rt}: {out:?}");
        assert_eq!(get("fds"), "0 1 2 3", "{rt}: {out:?}");
        // Detached: returns at once with the pid written.
        process["args"] = serde_json::json!(["sleep", "21"]);
        std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
        let pidfile = b.dir.join("exec.pid");
        let out = cli(&[
            "exec",
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "--process",
            pf,
            &b.id,
        ]);
        assert_eq!(out.code, Some(0), "{rt}: {out:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert_eq!(cmdline, "sleep\x0021\x00", "{rt}");
        // A missing binary fails the exec.
        process["args"] = serde_json::json!(["no-such-binary"]);
        std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
        let out = cli(&["exec", "--process", pf, &b.id]);
        assert_ne!(out.code, Some(0), "{rt}: {out:?}");
        assert!(out.stderr.contains("no-such-binary"), "{rt}: {out:?}");
        let _ = cli(&["kill", &b.id, "KILL"]);
        for _ in 0..100 {
            let st: serde_json::Value =
                serde_json::from_str(&cli(&["state", &b.id]).stdout).unwrap_or_default();
            if st["status"] == "stopped" {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = cli(&["delete", "-f", &b.id]);
    }
}
