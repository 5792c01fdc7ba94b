//! End-to-end: cleanup after `--rm` and `rm -f`, and containers that
//! survive `kill -9` of the daemon (live restore, DMN/OPS items).

mod common;

use common::*;

fn assert_no_trace(d: &Daemon, id: &str) {
    assert!(
        eventually(10, || !d
            .state_dirs()
            .iter()
            .any(|s| s.starts_with(&id[..12]))),
        "state dirs left: {:?}",
        d.state_dirs()
    );
    let mounts = mounts_under(&d.dir);
    assert!(
        mounts.iter().all(|m| !m.contains(&id[..12])),
        "mounts left: {mounts:?}"
    );
    assert!(
        cgroup_dirs(id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs(id)
    );
    let shims: Vec<String> = processes_matching(&id[..12]);
    assert!(shims.is_empty(), "processes left: {shims:?}");
}

#[test]
fn nothing_left_after_rm() {
    require_root!();
    let d = Daemon::start("cleanup");
    // --rm: find the id through the hostname (= short id).
    let o = d.berth(&["run", "--rm", IMAGE, "hostname"]);
    let short = stdout(&o).trim().to_string();
    assert_eq!(short.len(), 12, "{}", stderr(&o));
    assert_no_trace(&d, &short);

    // rm -f of a running container.
    let o = d.berth(&["run", "-d", IMAGE, "sleep", "60"]);
    let id = stdout(&o).trim().to_string();
    assert!(!cgroup_dirs(&id).is_empty());
    assert!(
        !processes_matching(&id[..12]).is_empty(),
        "shim runs while the container runs"
    );
    let o = d.berth(&["rm", "-f", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_no_trace(&d, &id);

    // rm without -f refuses a running container.
    let id = stdout(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let o = d.berth(&["rm", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("You cannot remove a running container"),
        "{}",
        stderr(&o)
    );
    // stop: SIGTERM, then SIGKILL after -t.
    let o = d.berth(&["stop", "-t", "1", &id]);
    assert_eq!(o.status.code(), Some(0));
    let o = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &id,
    ]);
    assert_eq!(stdout(&o).trim(), "exited 137");
    d.berth(&["rm", &id]);
    assert_no_trace(&d, &id);
}

#[test]
fn containers_survive_daemon_kill_9() {
    require_root!();
    let mut d = Daemon::start("live");
    let o = d.berth(&[
        "run",
        "-d",
        "--name",
        "survivor",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done",
    ]);
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{}", stderr(&o));
    assert!(eventually(10, || stdout(&d.berth(&["logs", "survivor"]))
        .contains("tick")));

    d.kill9();
    let before = std::fs::read_to_string(
        d.data_root()
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let after = std::fs::read_to_string(
        d.data_root()
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    assert!(
        after.len() > before.len(),
        "container kept running and logging without the daemon"
    );

    d.spawn();
    let ps = stdout(&d.berth(&["ps"]));
    assert!(
        ps.contains("survivor") && ps.contains("Up "),
        "restarted daemon lists it: {ps}"
    );
    let o = d.berth(&["stop", "survivor"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "survivor",
    ]);
    assert_eq!(stdout(&o).trim(), "exited 0");

    // A container that exits while the daemon is down is reported on restart.
    let o = d.berth(&[
        "run",
        "-d",
        "--name",
        "quick",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(0));
    d.kill9();
    std::thread::sleep(std::time::Duration::from_millis(1800));
    d.spawn();
    let o = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "quick",
    ]);
    assert_eq!(stdout(&o).trim(), "exited 5", "{}", d.log());
    d.berth(&["rm", "quick", "survivor"]);
    assert_no_trace(&d, &id);
}

/// CVE-2019-5736: a process that can reach `/proc/<pid>/exe` of the shim or
/// runtime must not be able to rewrite the host binary. berthd runs them
/// from a read-only bind mount, so opening the binary for writing fails.
#[test]
fn runtime_binary_cannot_be_rewritten_through_proc_exe() {
    require_root!();
    let d = Daemon::start("cve");
    let o = d.berth(&["run", "-d", IMAGE, "sleep", "60"]);
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{}", stderr(&o));
    let shim = processes_matching(&format!("{}/shim.json", &id))
        .into_iter()
        .next()
        .expect("shim process");
    let pid = shim.split(':').next().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.starts_with(d.exec_root()),
        "shim runs from the read-only copy: {}",
        exe.display()
    );
    // The binary behind /proc/<pid>/exe sits on a read-only mount ...
    let exe_file = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    let vfs = nix::sys::statvfs::fstatvfs(&exe_file).unwrap();
    assert!(vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    // ... so reopening it for writing fails: EROFS (or ETXTBSY while some
    // process still executes it).
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&exe_file)
        ))
        .expect_err("binary must not be writable");
    assert!(
        matches!(err.raw_os_error(), Some(30) | Some(26)),
        "got {err}"
    );
    d.berth(&["rm", "-f", &id]);
}

fn ppid_of(pid: &str) -> Option<String> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(|p| p.trim().to_string())
}

/// ARCH-13: berthd forks shims through one `berth-runtime shim-launcher`
/// (no exec per container). Each shim still shows `shim --config <its
/// bundle>/shim.json` in ps, the launcher ends with the daemon, and the
/// shims outlive both.
#[test]
fn shims_are_forked_by_the_launcher_and_outlive_it() {
    require_root!();
    let mut d = Daemon::start("launch");
    let id = ok(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let shim = processes_matching(&format!("{id}/shim.json"));
    assert_eq!(shim.len(), 1, "{shim:?}");
    assert!(
        shim[0].contains(" shim --config "),
        "command line rewritten: {shim:?}"
    );
    let shim_pid = shim[0].split(':').next().unwrap().to_string();
    for fd in 0..3 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{shim_pid}/fd/{fd}")).ok(),
            Some(std::path::PathBuf::from("/dev/null")),
            "the shim's fd {fd} (not the launcher's socket, never closed)"
        );
    }
    let launcher = ppid_of(&shim_pid).expect("shim's parent");
    let cmd = std::fs::read(format!("/proc/{launcher}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmd).contains("shim-launcher"),
        "the shim's parent is the launcher: {}",
        String::from_utf8_lossy(&cmd)
    );
    assert_eq!(ppid_of(&launcher), Some(d.pid().to_string()));

    d.kill9();
    assert!(
        eventually(5, || !std::path::Path::new(&format!("/proc/{launcher}"))
            .exists()
            || ppid_of(&launcher).is_none()),
        "the launcher exits with the daemon"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{shim_pid}")).exists(),
        "the shim outlives daemon and launcher"
    );
    d.spawn();
    // The exec root is a tmpfs (mounted by the first daemon when it was not
    // on one), found again by the second, not stacked.
    let st = nix::sys::statfs::statfs(&d.exec_root()).unwrap();
    assert_eq!(st.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
    let at_root = mounts_under(&d.exec_root())
        .into_iter()
        .filter(|m| std::path::Path::new(m) == d.exec_root())
        .count();
    assert!(at_root <= 1, "one tmpfs at the exec root, not stacked");
    let o = d.berth(&["exec", &id, "echo", "still here"]);
    assert_eq!(stdout(&o).trim(), "still here", "{}", stderr(&o));
    // The new daemon starts a new launcher.
    let id2 = ok(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let shim2 = processes_matching(&format!("{id2}/shim.json"));
    let launcher2 = ppid_of(shim2[0].split(':').next().unwrap()).unwrap();
    assert_ne!(launcher2, launcher);
    assert_eq!(ppid_of(&launcher2), Some(d.pid().to_string()));
    ok(&d.berth(&["rm", "-f", &id, &id2]));
    assert_no_trace(&d, &id);
    assert_no_trace(&d, &id2);
}

/// Without the launcher (`BERTH_SHIM_LAUNCHER=0`, or a shim binary that has
/// none), berthd spawns `berth-runtime shim --config` per container, which
/// forks the shim and exits after reporting: containers run the same.
#[test]
fn shims_without_the_launcher() {
    require_root!();
    let d = Daemon::start_with_env("nolaunch", &[], &[("BERTH_SHIM_LAUNCHER", "0")]);
    let out = ok(&d.berth(&["run", "--rm", IMAGE, "echo", "exec'd shim"]));
    assert_eq!(out.trim(), "exec'd shim");
    let id = ok(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let shim = processes_matching(&format!("{id}/shim.json"));
    assert_eq!(shim.len(), 1, "{shim:?}");
    let parent = ppid_of(shim[0].split(':').next().unwrap()).unwrap();
    let cmd = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmd).contains("shim-launcher"),
        "no launcher: the shim's parent is {}",
        String::from_utf8_lossy(&cmd)
    );
    assert!(processes_matching("shim-launcher")
        .iter()
        .all(|p| !p.contains(d.dir.to_str().unwrap())));
    ok(&d.berth(&["rm", "-f", &id]));
    assert_no_trace(&d, &id);
}

/// A launcher killed on its own is started again at the next container
/// start (berthd's send fails on the dead socket, it restarts it once).
#[test]
fn a_killed_launcher_is_restarted() {
    require_root!();
    let d = Daemon::start("relaunch");
    let launcher_of = |id: &str| {
        let shim = processes_matching(&format!("{id}/shim.json"));
        ppid_of(shim[0].split(':').next().unwrap()).unwrap()
    };
    let a = ok(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let first = launcher_of(&a);
    assert!(run_quiet("kill", &["-9", &first]));
    // Gone, or a zombie until berthd reaps it.
    assert!(eventually(5, || {
        std::fs::read_to_string(format!("/proc/{first}/stat"))
            .map(|st| {
                st.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }));
    let b = ok(&d.berth(&["run", "-d", IMAGE, "sleep", "60"]))
        .trim()
        .to_string();
    let second = launcher_of(&b);
    assert_ne!(second, first);
    assert_eq!(ppid_of(&second), Some(d.pid().to_string()));
    ok(&d.berth(&["rm", "-f", &a, &b]));
    assert_no_trace(&d, &a);
    assert_no_trace(&d, &b);
}
