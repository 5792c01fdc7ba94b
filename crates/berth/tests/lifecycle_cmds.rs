//! End-to-end: lifecycle commands (start -a, restart, pause/unpause, rename,
//! wait, update, port, top, container prune) and listing (ps filters,
//! --format, -s) and inspect, against real containers.

mod common;

use common::*;

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    let o = d.berth(&a);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

fn inspect_f(d: &Daemon, name: &str, f: &str) -> String {
    ok(&d.berth(&["inspect", "-f", f, name])).trim().to_string()
}

fn freezer_state(id: &str) -> Option<String> {
    let v1 = std::path::Path::new("/sys/fs/cgroup/freezer/berth")
        .join(id)
        .join("freezer.state");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return Some(s.trim().to_string());
    }
    let v2 = std::path::Path::new("/sys/fs/cgroup/berth")
        .join(id)
        .join("cgroup.freeze");
    std::fs::read_to_string(v2)
        .ok()
        .map(|s| if s.trim() == "1" { "FROZEN" } else { "THAWED" }.to_string())
}

fn pause_cycle(d: &Daemon) {
    let id = run_d(d, &["--name", "pz", IMAGE, "sleep", "60"]);
    assert_eq!(ok(&d.berth(&["pause", "pz"])).trim(), "pz");
    assert_eq!(freezer_state(&id).as_deref(), Some("FROZEN"));
    assert_eq!(
        inspect_f(d, "pz", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let ps = ok(&d.berth(&["ps"]));
    assert!(ps.contains("(Paused)"), "{ps}");
    // pausing twice is a conflict
    let o = d.berth(&["pause", "pz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    assert_eq!(ok(&d.berth(&["unpause", "pz"])).trim(), "pz");
    assert_eq!(freezer_state(&id).as_deref(), Some("THAWED"));
    assert_eq!(inspect_f(d, "pz", "{{.State.Status}}"), "running");
    let o = d.berth(&["unpause", "pz"]);
    assert!(stderr(&o).contains("is not paused"), "{}", stderr(&o));
    // a paused container can be killed / removed
    ok(&d.berth(&["pause", "pz"]));
    ok(&d.berth(&["rm", "-f", "pz"]));
    assert!(eventually(10, || cgroup_dirs(&id).is_empty()));
}

#[test]
fn pause_unpause_berth_runtime() {
    require_root!();
    let d = Daemon::start("pause");
    pause_cycle(&d);
}

#[test]
fn pause_unpause_runc() {
    require_root!();
    if !std::path::Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipping: no runc");
        return;
    }
    let d = Daemon::start_with(
        "pause-runc",
        &[
            "--add-runtime",
            "runc=/usr/sbin/runc",
            "--default-runtime",
            "runc",
        ],
    );
    pause_cycle(&d);
}

#[test]
fn start_attach_restart_rename_wait() {
    require_root!();
    let d = Daemon::start("lc");
    // start -a prints output and exits with the container's code
    let o = d.berth(&[
        "run",
        "--name",
        "once",
        IMAGE,
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let o = d.berth(&["start", "-a", "once"]);
    assert_eq!(stdout(&o), "hi\n");
    assert_eq!(o.status.code(), Some(3));
    // start without -a prints the name
    let o = d.berth(&["start", "once"]);
    assert_eq!(ok(&o).trim(), "once");
    // wait prints the exit code
    assert_eq!(ok(&d.berth(&["wait", "once"])).trim(), "3");

    // restart changes StartedAt and keeps the container running
    run_d(&d, &["--name", "rr", IMAGE, "sleep", "60"]);
    let before = inspect_f(&d, "rr", "{{.State.StartedAt}} {{.State.Pid}}");
    assert_eq!(ok(&d.berth(&["restart", "-t", "1", "rr"])).trim(), "rr");
    let after = inspect_f(&d, "rr", "{{.State.StartedAt}} {{.State.Pid}}");
    assert_ne!(before, after);
    assert_eq!(inspect_f(&d, "rr", "{{.State.Running}}"), "true");
    // restart of a stopped container starts it
    ok(&d.berth(&["stop", "-t", "0", "rr"]));
    ok(&d.berth(&["container", "restart", "rr"]));
    assert_eq!(inspect_f(&d, "rr", "{{.State.Status}}"), "running");

    // rename
    let o = d.berth(&["rename", "rr", "r2"]);
    assert_eq!(ok(&o), "");
    assert_eq!(inspect_f(&d, "r2", "{{.Name}}"), "/r2");
    assert_eq!(d.berth(&["inspect", "rr"]).status.code(), Some(1));
    let o = d.berth(&["rename", "r2", "once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already in use"), "{}", stderr(&o));
    // the new name survives a daemon restart? (persisted record)
    let names = ok(&d.berth(&["ps", "--format", "{{.Names}}"]));
    assert_eq!(names.trim(), "r2");
}

#[test]
fn update_changes_cgroup() {
    require_root!();
    let d = Daemon::start("update");
    let id = run_d(&d, &["--name", "uu", "-m", "64m", IMAGE, "sleep", "60"]);
    let o = d.berth(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:3",
        "uu",
    ]);
    assert_eq!(ok(&o).trim(), "uu");
    let read = |ctrl: &str, file: &str| -> String {
        let v1 = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("berth")
            .join(&id)
            .join(file);
        std::fs::read_to_string(v1)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let v2 = std::path::Path::new("/sys/fs/cgroup/berth").join(&id);
        let r = |f: &str| {
            std::fs::read_to_string(v2.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        assert_eq!(r("memory.max"), "134217728");
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("pids.max"), "50");
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "134217728");
        if std::path::Path::new("/sys/fs/cgroup/memory/berth")
            .join(&id)
            .join("memory.memsw.limit_in_bytes")
            .exists()
        {
            assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "268435456");
        }
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("pids", "pids.max"), "50");
    }
    assert_eq!(
        inspect_f(&d, "uu", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"),
        "134217728 268435456 500000000 512 50 on-failure:3"
    );
    // no flags: usage error
    let o = d.berth(&["update", "uu"]);
    assert_eq!(o.status.code(), Some(1));
    // an update below the 6MB minimum is refused
    let o = d.berth(&["update", "-m", "1m", "uu"]);
    assert!(
        stderr(&o).contains("Minimum memory limit"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn top_port_prune() {
    require_root!();
    let d = Daemon::start("top");
    run_d(&d, &["--name", "tt", IMAGE, "sleep", "60"]);
    let out = ok(&d.berth(&["top", "tt"]));
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].ends_with("sleep 60"), "{out}");
    assert!(rows[0].starts_with("root "), "{out}");
    let out = ok(&d.berth(&["top", "tt", "-o", "pid,comm"]));
    assert!(out.starts_with("PID"), "{out}");
    assert!(out.contains("sleep"), "{out}");
    // top of a stopped container
    run_d(&d, &["--name", "done", IMAGE, "true"]);
    assert!(eventually(10, || inspect_f(
        &d,
        "done",
        "{{.State.Status}}"
    ) == "exited"));
    let o = d.berth(&["top", "done"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));

    // port: nothing published
    assert_eq!(ok(&d.berth(&["port", "tt"])), "");
    let o = d.berth(&["port", "tt", "80"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "Error: No public port '80/tcp' published for tt"
    );

    // prune removes stopped containers only, honours label filters
    run_d(&d, &["--name", "keep", "--label", "keep=1", IMAGE, "true"]);
    assert!(eventually(10, || inspect_f(
        &d,
        "keep",
        "{{.State.Status}}"
    ) == "exited"));
    let out = ok(&d.berth(&["container", "prune", "-f", "--filter", "label!=keep"]));
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let all = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"]));
    let mut names: Vec<&str> = all.lines().collect();
    names.sort();
    assert_eq!(names, ["keep", "tt"]);
    let out = ok(&d.berth(&["container", "prune", "-f", "--filter", "until=1h"]));
    assert_eq!(out, "Total reclaimed space: 0B\n");
    ok(&d.berth(&["container", "prune", "-f"]));
    assert_eq!(ok(&d.berth(&["ps", "-aq"])).lines().count(), 1);
}

#[test]
fn ps_filters_format_size() {
    require_root!();
    let d = Daemon::start("psf");
    let a = run_d(
        &d,
        &[
            "--name", "alpha", "--label", "tier=web", IMAGE, "sleep", "60",
        ],
    );
    let b = run_d(
        &d,
        &["--name", "beta", IMAGE, "sh", "-c", "echo x > /f; exit 2"],
    );
    assert!(eventually(10, || inspect_f(
        &d,
        "beta",
        "{{.State.Status}}"
    ) == "exited"));
    let c = stdout(&d.berth(&["create", "--name", "gamma", IMAGE, "true"]))
        .trim()
        .to_string();
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ps", "--format", "{{.Names}}"];
        v.extend_from_slice(args);
        let mut n: Vec<String> = ok(&d.berth(&v)).lines().map(String::from).collect();
        n.sort();
        n
    };
    assert_eq!(names(&[]), ["alpha"]);
    assert_eq!(names(&["-a"]), ["alpha", "beta", "gamma"]);
    assert_eq!(names(&["--filter", "status=exited"]), ["beta"]);
    assert_eq!(names(&["--filter", "status=created"]), ["gamma"]);
    assert_eq!(names(&["-a", "--filter", "name=alp"]), ["alpha"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=web"]), ["alpha"]);
    assert_eq!(names(&["-a", "--filter", "label=tier"]), ["alpha"]);
    assert_eq!(names(&["-a", "--filter", "exited=2"]), ["beta"]);
    assert_eq!(
        names(&["-a", "--filter", &format!("id={}", &b[..8])]),
        ["beta"]
    );
    assert_eq!(
        names(&["-a", "--filter", &format!("ancestor={IMAGE}")]),
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(
        names(&["-a", "--filter", "ancestor=nope"]),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&["-a", "--filter", "before=gamma"]),
        ["alpha", "beta"]
    );
    assert_eq!(names(&["-a", "--filter", "since=alpha"]), ["beta", "gamma"]);
    let o = d.berth(&["ps", "--filter", "status=bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Invalid filter 'status=bogus'"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["ps", "--filter", "nope=1"]);
    assert!(
        stderr(&o).contains("Invalid filter 'nope'"),
        "{}",
        stderr(&o)
    );

    // -n / -l
    assert_eq!(
        ok(&d.berth(&["ps", "-n", "2", "--format", "{{.Names}}"])),
        "gamma\nbeta\n"
    );
    assert_eq!(ok(&d.berth(&["ps", "-l", "-q"])).trim(), &c[..12]);
    // --no-trunc / -q
    assert_eq!(ok(&d.berth(&["ps", "-q", "--no-trunc"])).trim(), a);

    // --format placeholders, funcs, table, json
    let out = ok(&d.berth(&["ps", "--format", "{{.ID}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Label \"tier\"}}|{{upper .Names}}|{{truncate .Names 2}}|{{.Labels}}"]));
    assert_eq!(
        out,
        format!(
            "{}|{IMAGE}|\"sleep 60\"|running|web|ALPHA|al|tier=web\n",
            &a[..12]
        )
    );
    let out = ok(&d.berth(&["ps", "--format", "table {{.Names}}\\t{{.Status}}"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAMES     STATUS"), "{out}");
    assert!(lines[1].starts_with("alpha     Up "), "{out}");
    let out = ok(&d.berth(&["ps", "--format", "{{json .}}"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Names"], "alpha");
    assert_eq!(v["State"], "running");
    let out = ok(&d.berth(&[
        "ps",
        "-a",
        "--filter",
        "name=beta",
        "--format",
        "{{join (split .Names \"t\") \"-\"}}",
    ]));
    assert_eq!(out, "be-a\n");

    // -s: SIZE column with the rw layer (beta wrote 2 bytes)
    let out = ok(&d.berth(&["ps", "-a", "-s", "--filter", "name=beta"]));
    let head = out.lines().next().unwrap();
    assert!(head.ends_with("SIZE"), "{out}");
    let row = out.lines().nth(1).unwrap();
    assert!(row.contains("B (virtual "), "{out}");
    let (code, body) = d.http(
        "GET",
        "/containers/json?all=1&size=1&filters=%7B%22name%22%3A%5B%22beta%22%5D%7D",
        b"",
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v[0]["SizeRw"].as_i64().unwrap() >= 2, "{body}");
    assert!(v[0]["SizeRootFs"].as_i64().unwrap() > v[0]["SizeRw"].as_i64().unwrap());
}

#[test]
fn inspect_cli() {
    require_root!();
    let d = Daemon::start("insp");
    let id = run_d(
        &d,
        &["--name", "ii", "--label", "a=b", IMAGE, "sleep", "60"],
    );
    let out = ok(&d.berth(&["inspect", "ii"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert!(out.starts_with("[\n    {\n        \"Id\""), "{out}");
    for k in [
        "State",
        "Config",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "NetworkSettings",
    ] {
        assert!(v[0].get(k).is_some(), "missing {k}");
    }
    assert_eq!(
        inspect_f(
            &d,
            "ii",
            "{{.State.Running}} {{.Config.Labels.a}} {{.Name}}"
        ),
        "true b /ii"
    );
    assert_eq!(
        inspect_f(&d, "ii", "{{json .Config.Labels}}"),
        r#"{"a":"b"}"#
    );
    let pid = inspect_f(&d, "ii", "{{.State.Pid}}");
    assert!(pid.parse::<u32>().unwrap() > 1);
    // --size
    let out = ok(&d.berth(&[
        "inspect",
        "-s",
        "-f",
        "{{.SizeRw}} {{gt .SizeRootFs 0}}",
        "ii",
    ]));
    assert_eq!(out.trim().split(' ').nth(1), Some("true"));
    // images and --type
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.Os}}", IMAGE])).trim(),
        "linux"
    );
    let o = d.berth(&["inspect", "--type", "container", IMAGE]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
    let o = d.berth(&["inspect", "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), "Error: No such object: nothing");
    assert_eq!(stdout(&o).trim(), "[]");
    assert_eq!(
        ok(&d.berth(&["container", "inspect", "-f", "{{.Name}}", "ii"])).trim(),
        "/ii"
    );
    let ls = ok(&d.berth(&["container", "ls", "-q"]));
    assert_eq!(ls.trim(), &id[..12]);
}
