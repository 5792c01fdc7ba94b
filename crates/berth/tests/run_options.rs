//! End-to-end: `run`/`create` options, verified inside real containers
//! (CTR run flags, ISO security defaults, RES cgroup options).

mod common;

use common::*;

fn run_ok(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    let o = d.berth(&full);
    assert_eq!(
        o.status.code(),
        Some(0),
        "berth {full:?}\nstdout: {}\nstderr: {}\nlog: {}",
        stdout(&o),
        stderr(&o),
        d.log()
    );
    stdout(&o)
}

fn sh(d: &Daemon, opts: &[&str], script: &str) -> String {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
    run_ok(d, &args)
}

#[test]
fn process_options() {
    require_root!();
    let d = Daemon::start("opts-proc");
    let dir = d.dir.join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=1\n\nSHARED=file\n").unwrap();
    let label_file = dir.join("labels");
    std::fs::write(&label_file, "a=1\nb\n").unwrap();

    // -e, --env-file (-e wins), -w, -h, --domainname.
    let out = sh(
        &d,
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "SHARED=flag",
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "-h",
            "myhost",
            "--domainname",
            "example.org",
        ],
        "echo $FROM_FILE $SHARED $X; pwd; hostname; cat /proc/sys/kernel/domainname",
    );
    assert_eq!(out, "1 flag y\n/tmp\nmyhost\nexample.org\n");

    // -u by name and by number, user:group, --group-add by name and number.
    assert_eq!(sh(&d, &["-u", "nobody"], "id -u; id -g"), "65534\n65534\n");
    assert_eq!(sh(&d, &["-u", "1234:5"], "id -u; id -g"), "1234\n5\n");
    let groups = sh(
        &d,
        &["-u", "nobody", "--group-add", "4242", "--group-add", "root"],
        "id -G",
    );
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(
        groups.contains(&"4242") && groups.contains(&"0"),
        "{groups:?}"
    );
    let o = d.berth(&["run", "--rm", "--group-add", "nosuchgroup", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Unable to find group nosuchgroup"),
        "{}",
        stderr(&o)
    );

    // --entrypoint, including "" (the command runs as is).
    assert_eq!(run_ok(&d, &["--entrypoint", "echo", IMAGE, "hi"]), "hi\n");
    assert_eq!(run_ok(&d, &["--entrypoint", "", IMAGE, "echo", "x"]), "x\n");

    // --label, --label-file, --stop-signal, --stop-timeout, --restart: stored.
    let cid = dir.join("cid");
    let o = d.berth(&[
        "create",
        "--name",
        "meta",
        "--label",
        "c=3",
        "--label-file",
        label_file.to_str().unwrap(),
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "7",
        "--restart",
        "on-failure:3",
        "--cidfile",
        cid.to_str().unwrap(),
        IMAGE,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id, "--cidfile");
    let o = d.docker(&[
        "inspect", "-f",
        "{{json .Config.Labels}} {{.Config.StopSignal}} {{.Config.StopTimeout}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.HostConfig.ContainerIDFile}}",
        "meta",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "{{\"a\":\"1\",\"b\":\"\",\"c\":\"3\"}} SIGUSR1 7 on-failure:3 {}",
            cid.display()
        )
    );
    // An existing cidfile is refused before anything is created.
    let o = d.berth(&["run", "--cidfile", cid.to_str().unwrap(), IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Container ID file found"),
        "{}",
        stderr(&o)
    );

    // --init: PID 1 is the init, which reaps and forwards signals.
    let out = sh(
        &d,
        &["--init"],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    );
    assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
    assert_ne!(out.lines().nth(1), Some("1"), "the command is not PID 1");
    let o = d.berth(&[
        "run", "-d", "--init", "--name", "initd", IMAGE, "sleep", "60",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = std::time::Instant::now();
    let o = d.berth(&["stop", "-t", "20", "initd"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        t.elapsed().as_secs() < 10,
        "SIGTERM reached sleep through the init"
    );
    let o = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "initd"]);
    assert_eq!(stdout(&o).trim(), "143");
}

#[test]
fn security_options() {
    require_root!();
    let d = Daemon::start("opts-sec");
    let capeff = |opts: &[&str]| {
        sh(&d, opts, "grep CapEff /proc/self/status | cut -f2")
            .trim()
            .to_string()
    };
    assert_eq!(capeff(&[]), "00000000a80425fb");
    assert_eq!(capeff(&["--cap-drop", "ALL"]), "0000000000000000");
    assert_eq!(
        capeff(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        "0000000000001000"
    );
    assert_eq!(capeff(&["--cap-drop", "chown"]), "00000000a80425fa");
    let o = d.berth(&["run", "--rm", "--cap-add", "BOGUS", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("invalid CapAdd: unknown capability: \"CAP_BOGUS\""),
        "{}",
        stderr(&o)
    );

    // Default seccomp profile: unshare/mount/keyctl-like calls are refused,
    // even with the capability where Docker's profile requires it.
    let out = sh(
        &d,
        &[],
        "unshare -U true 2>&1 && echo unshare-ok || echo unshare-blocked",
    );
    assert!(out.contains("unshare-blocked"), "{out}");
    let out = sh(
        &d,
        &["--security-opt", "seccomp=unconfined"],
        "unshare -U true && echo unshare-ok",
    );
    assert!(out.contains("unshare-ok"), "{out}");
    let out = sh(&d, &[], "grep Seccomp: /proc/self/status");
    assert_eq!(
        out.split_whitespace().nth(1),
        Some("2"),
        "filter mode: {out}"
    );
    let out = sh(
        &d,
        &["--security-opt", "seccomp=unconfined"],
        "grep Seccomp: /proc/self/status",
    );
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");

    // A custom profile (sent as JSON by the CLI) that only forbids mkdir.
    let dir = d.dir.join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let seccomp_opt = format!("seccomp={}", profile.display());
    let out = sh(
        &d,
        &["--security-opt", &seccomp_opt],
        "mkdir /tmp/x 2>/dev/null && echo made || echo refused; touch /tmp/y && echo touched",
    );
    assert_eq!(out, "refused\ntouched\n");
    std::fs::write(&profile, "{not json").unwrap();
    let o = d.berth(&["run", "--rm", "--security-opt", &seccomp_opt, IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("compacting json for seccomp profile"),
        "{}",
        stderr(&o)
    );
    // Invalid profile content sent over the API: 400, nothing created.
    let (status, body) = d.http(
        "POST",
        "/containers/create?name=badseccomp",
        format!(
            r#"{{"Image":"{IMAGE}","Cmd":["true"],"HostConfig":{{"SecurityOpt":["seccomp={{\"defaultAction\":\"SCMP_ACT_NOPE\"}}"]}}}}"#
        )
        .as_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Decoding seccomp profile failed"), "{body}");
    let o = d.berth(&["run", "--rm", "--security-opt", "bogus=1", IMAGE, "true"]);
    assert!(
        stderr(&o).contains("invalid --security-opt 2: \"bogus=1\""),
        "{}",
        stderr(&o)
    );

    // no-new-privileges.
    assert_eq!(
        sh(&d, &[], "grep NoNewPrivs /proc/self/status | cut -f2"),
        "0\n"
    );
    assert_eq!(
        sh(
            &d,
            &["--security-opt", "no-new-privileges"],
            "grep NoNewPrivs /proc/self/status | cut -f2"
        ),
        "1\n"
    );
    // With no-new-privileges the default filter still applies (loaded after
    // the capabilities are dropped) and the capabilities are Docker's.
    assert_eq!(
        sh(
            &d,
            &["--security-opt", "no-new-privileges"],
            "grep -E '^(Seccomp|CapEff|CapBnd):' /proc/self/status | cut -f2; unshare -U true 2>/dev/null || echo blocked"
        ),
        "00000000a80425fb\n00000000a80425fb\n2\nblocked\n"
    );

    // --read-only.
    let out = sh(
        &d,
        &["--read-only"],
        "touch /x 2>&1 || echo ro; touch /dev/shm/ok && echo shm-rw",
    );
    assert!(out.contains("ro\n") && out.contains("shm-rw"), "{out}");

    // --privileged: the host's bounding set (warning for the rest), host
    // devices, no seccomp, no masked paths, writable /sys.
    let o = d.berth(&[
        "run", "--rm", "--privileged", IMAGE, "sh", "-c",
        "grep -E 'CapEff|Seccomp:' /proc/self/status; ls /dev | grep -c .; grep -c ' /proc/.' /proc/self/mounts || true; \
         grep ' /sys ' /proc/self/mounts; mkdir -p /tmp/m; mount -t tmpfs t /tmp/m && echo mounted",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    assert!(out.contains(&format!("CapEff:\t{host_bnd}")), "{out}");
    if host_bnd != "000001ffffffffff" {
        assert!(
            stderr(&o).contains("WARNING: "),
            "missing caps warned: {}",
            stderr(&o)
        );
    }
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let ndev: usize = lines[2].trim().parse().unwrap();
    assert!(ndev > 20, "host devices: {out}");
    assert_eq!(
        lines[3].trim(),
        "0",
        "no masked or read-only /proc paths: {out}"
    );
    assert!(lines[4].contains(" rw,"), "/sys writable: {out}");
    assert!(out.contains("mounted"), "{out}");
}

#[test]
fn kernel_and_namespace_options() {
    require_root!();
    let d = Daemon::start("opts-ns");
    // --sysctl, --ulimit, --shm-size, --oom-score-adj.
    let out = sh(
        &d,
        &[
            "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1000000",
            "--ulimit", "nproc=100:200", "--ulimit", "nofile=512", "--shm-size", "8m",
            "--oom-score-adj", "300",
        ],
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax; ulimit -u; ulimit -Hu; ulimit -n; \
         df -k /dev/shm | tail -1 | awk '{print $2}'; cat /proc/self/oom_score_adj",
    );
    assert_eq!(out, "1\n1000000\n100\n200\n512\n8192\n300\n");
    let o = d.berth(&["run", "--rm", "--sysctl", "kernel.panic=1", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("is not whitelisted"), "{}", stderr(&o));

    // --device with a new path and permissions; the cgroup enforces them
    // (/dev/kmsg, 1:11, is not among the default allowed devices).
    let out = sh(
        &d,
        &["--device", "/dev/kmsg:/dev/xkmsg:r"],
        "ls -l /dev/xkmsg | cut -c1; (echo berth-test > /dev/xkmsg) 2>/dev/null && echo wrote || echo denied",
    );
    assert_eq!(out, "c\ndenied\n");
    let out = sh(
        &d,
        &["--device", "/dev/kmsg:/dev/xkmsg:w"],
        "echo berth-test > /dev/xkmsg && echo wrote",
    );
    assert_eq!(out, "wrote\n");
    let o = d.berth(&["run", "--rm", "--device", "/dev/nosuchdev", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error gathering device information while adding custom device \"/dev/nosuchdev\": no such file or directory"),
        "{}",
        stderr(&o)
    );
    // --device-cgroup-rule: a node made with mknod opens only when allowed.
    let script =
        "mknod /tmp/k c 1 11 && (echo berth-test > /tmp/k) 2>/dev/null && echo open || echo denied";
    assert_eq!(sh(&d, &[], script), "denied\n");
    assert_eq!(
        sh(&d, &["--device-cgroup-rule", "c 1:11 w"], script),
        "open\n"
    );

    // --pid host / container:, --ipc host / shareable + container:, --uts host.
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let out = sh(&d, &["--pid", "host"], "readlink /proc/self/ns/pid");
    assert_eq!(out.trim(), host_pid_ns.to_string_lossy());
    let o = d.berth(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = sh(
        &d,
        &["--pid", "container:donor"],
        "ps -o comm | grep -c sleep",
    );
    assert_eq!(out.trim(), "1", "sees the donor's sleep");
    let donor_ipc = stdout(&d.berth(&[
        "run",
        "--rm",
        "--pid",
        "container:donor",
        IMAGE,
        "readlink",
        "/proc/1/ns/ipc",
    ]));
    let out = sh(
        &d,
        &["--ipc", "container:donor"],
        "readlink /proc/self/ns/ipc",
    );
    assert_eq!(out, donor_ipc);
    let out = sh(&d, &["--ipc", "host"], "readlink /proc/self/ns/ipc");
    assert_eq!(
        out.trim(),
        std::fs::read_link("/proc/self/ns/ipc")
            .unwrap()
            .to_string_lossy()
    );
    let o = d.berth(&["run", "-d", "--name", "private", IMAGE, "sleep", "60"]);
    assert_eq!(o.status.code(), Some(0));
    let o = d.berth(&["run", "--rm", "--ipc", "container:private", IMAGE, "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("non-shareable IPC"), "{}", stderr(&o));
    let o = d.berth(&["run", "--rm", "--pid", "container:nosuch", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(sh(&d, &["--uts", "host"], "hostname"), host_name);

    // --platform.
    assert_eq!(
        run_ok(&d, &["--platform", "linux/amd64", IMAGE, "echo", "ok"]),
        "ok\n"
    );
    let o = d.berth(&["run", "--rm", "--platform", "linux/arm64", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("does not match the specified platform"),
        "{}",
        stderr(&o)
    );

    // Options of later issues are refused, not ignored.
    for args in [
        &["--ip6", "fd00::9"][..],
        &["--mac-address", "02:42:ac:11:00:99"],
        &["--link-local-ip", "169.254.1.1"],
        &["--gpus", "all"],
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[IMAGE, "true"]);
        let o = d.berth(&full);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(
            stderr(&o).contains("not implemented yet"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert!(d.state_dirs().iter().all(|_| true));
}

#[test]
fn cgroup_options() {
    require_root!();
    let d = Daemon::start("opts-cg");
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            !n.starts_with("loop")
                && !n.starts_with("ram")
                && std::path::Path::new(&format!("/dev/{n}")).exists()
        });
    let mut args: Vec<String> = [
        "run",
        "-d",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--pids-limit",
        "50",
        "--blkio-weight",
        "300",
        "--oom-kill-disable",
        "--kernel-memory",
        "50m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(disk) = &disk {
        for f in ["--device-read-bps", "--device-write-bps"] {
            args.extend([f.to_string(), format!("/dev/{disk}:1mb")]);
        }
        for f in ["--device-read-iops", "--device-write-iops"] {
            args.extend([f.to_string(), format!("/dev/{disk}:100")]);
        }
    }
    args.extend([IMAGE.to_string(), "sleep".into(), "60".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = d.berth(&argv);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), d.log());
    assert!(
        stderr(&o).contains("WARNING: Your kernel does not support kernel memory limit"),
        "{}",
        stderr(&o)
    );
    let id = stdout(&o).trim().to_string();
    let dirs = cgroup_dirs(&id);
    let read = |f: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| format!("<no {f}>"))
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(read("memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory.soft_limit_in_bytes"), "33554432");
        if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            assert_eq!(read("memory.memsw.limit_in_bytes"), "134217728");
        }
        // --oom-kill-disable (the runtime writes it; libcontainer does not).
        assert!(
            read("memory.oom_control").contains("oom_kill_disable 1"),
            "{}",
            read("memory.oom_control")
        );
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu.shares"), "512");
        assert_eq!(read("cpuset.cpus"), "0");
        assert_eq!(read("cpuset.mems"), "0");
        assert_eq!(read("pids.max"), "50");
        let weight = read("blkio.weight");
        let bfq = read("blkio.bfq.weight");
        // Like dockerd, the weight is discarded with a warning when the
        // hierarchy's root has no weight file.
        let discarded =
            stderr(&o).contains("Block I/O weight or the cgroup is not mounted. Weight discarded.");
        assert!(
            discarded || weight == "300" || bfq == "300",
            "{weight} {bfq}"
        );
        if let Some(disk) = &disk {
            let rbps = read("blkio.throttle.read_bps_device");
            if !rbps.starts_with("<no") {
                assert!(rbps.ends_with(" 1048576"), "{rbps}");
                assert!(read("blkio.throttle.write_bps_device").ends_with(" 1048576"));
                assert!(read("blkio.throttle.read_iops_device").ends_with(" 100"));
                assert!(
                    read("blkio.throttle.write_iops_device").ends_with(" 100"),
                    "{disk}"
                );
            }
        }
    } else {
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("memory.low"), "33554432");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "50");
    }
    let o = d.docker(&[
        "inspect", "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} {{.HostConfig.KernelMemory}} {{.HostConfig.OomKillDisable}}",
        &id,
    ]);
    assert_eq!(stdout(&o).trim(), "67108864 33554432 500000000 0 true");

    // Bad values: Docker's texts, status 125, nothing left behind.
    let before = d.state_dirs().len();
    for (args, text) in [
        (
            &["-m", "lots"][..],
            "invalid argument \"lots\" for \"-m, --memory\" flag",
        ),
        (&["-m", "1m"], "Minimum memory limit allowed is 6MB"),
        (
            &["--memory-swap", "64m"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            &["-m", "64m", "--memory-swap", "32m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (&["--cpus", "99"], "Range of CPUs is from 0.01 to"),
        (&["--cpuset-cpus", "99"], "Requested CPUs are not available"),
        (
            &["--oom-score-adj", "5000"],
            "range for oom score adj is [-1000, 1000]",
        ),
        (
            &["--cap-drop", "NOPE"],
            "invalid CapDrop: unknown capability",
        ),
        (&["--device", "/etc/hostname"], "not a device node"),
        (
            &["--device-cgroup-rule", "x 1:2 r"],
            "invalid device cgroup format",
        ),
        (&["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (&["--restart", "sometimes"], "invalid restart policy"),
        (&["--pid", "weird"], "invalid PID mode"),
        (&["--ipc", "weird"], "Invalid IPC mode: weird"),
        (&["--name", "donor", "--name", "x"], ""),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[IMAGE, "true"]);
        let o = d.berth(&full);
        if text.is_empty() {
            continue;
        }
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(text), "{args:?}: {}", stderr(&o));
    }
    // A conflicting name.
    let o = d.berth(&["create", "--name", "taken", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(0));
    let o = d.berth(&["create", "--name", "taken", IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("is already in use"), "{}", stderr(&o));
    assert_eq!(
        d.state_dirs().len(),
        before + 2,
        "only the one 'taken' container was added"
    );
    d.berth(&["rm", "-f", &id]);
}
