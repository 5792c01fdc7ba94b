//! `berth-runtime shim` end to end (ARCH-13, LOG-01), driving both
//! berth-runtime and runc as the OCI runtime. Needs root.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_types::shim::{
    frame_header, parse_frame_header, ExitStatus, FrameKind, Request, Response, ShimConfig,
    ShimReady,
};
use berth_types::Mount;
use common::*;

struct Shim {
    cfg: ShimConfig,
    ready: ShimReady,
}

/// A read-only bind mount of berth-runtime, as berthd runs it
/// (`<exec-root>/bin/berth-runtime`): a shim started from it with itself as
/// the runtime runs create/start/kill/delete in-process. Unmounted on drop.
struct RoBin {
    dir: PathBuf,
    path: String,
}

impl RoBin {
    fn new(b: &Bundle) -> RoBin {
        use nix::mount::{mount, MsFlags};
        let dir = b.dir.join("robin");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("berth-runtime");
        std::fs::write(&path, b"").unwrap();
        mount(
            Some(BIN),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &path, None::<&str>, ro, None::<&str>).unwrap();
        RoBin {
            dir,
            path: path.to_str().unwrap().into(),
        }
    }

    /// berth-runtime exec'd (writable path), in-process (read-only path), runc.
    fn runtimes(&self) -> Vec<&str> {
        let mut v = runtimes();
        v.insert(1, self.path.as_str());
        v
    }
}

impl Drop for RoBin {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(Path::new(&self.path), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Move the rootfs aside and have the shim bind-mount it back.
fn start_shim(b: &Bundle, runtime: &str, open_stdin: bool) -> Shim {
    start_shim_pruning(b, runtime, open_stdin, vec![])
}

fn start_shim_pruning(b: &Bundle, runtime: &str, open_stdin: bool, prune: Vec<PathBuf>) -> Shim {
    let lower = b.dir.join("lower");
    if !lower.exists() {
        std::fs::rename(b.dir.join("rootfs"), &lower).unwrap();
    }
    let tag = if runtime == RUNC {
        "runc"
    } else if runtime == BIN {
        "berth"
    } else {
        "berth-inproc"
    };
    let cfg = ShimConfig {
        id: b.id.clone(),
        bundle: b.dir.clone(),
        rootfs_mounts: vec![Mount {
            kind: "bind".into(),
            source: lower.to_str().unwrap().into(),
            options: vec!["rbind".into()],
        }],
        runtime: runtime.into(),
        runtime_root: b.root_for(runtime),
        log_path: b.dir.join(format!("{tag}-json.log")),
        exit_file: b.dir.join(format!("{tag}-exit.json")),
        socket: b.dir.join(format!("{tag}.sock")),
        open_stdin,
        prune_mounts: prune,
    };
    let path = b.dir.join("shim.json");
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let t = Instant::now();
    // Like berthd: the shim runs from the runtime's binary when that is ours.
    let shim_bin = if runtime == RUNC { BIN } else { runtime };
    let _ = std::fs::remove_file(b.dir.join("shim.log"));
    let mut child = Command::new(shim_bin)
        .args(["shim", "--config"])
        .arg(&path)
        .env("BERTH_SHIM_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "spawned shim process: {st}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let ready: ShimReady = serde_json::from_str(line.trim()).expect(&line);
    assert!(ready.error.is_none(), "{runtime}: {ready:?}");
    assert!(ready.pid > 0 && ready.shim_pid > 0, "{ready:?}");
    // The read-only copy runs the runtime in-process, the others exec it.
    let log = std::fs::read_to_string(b.dir.join("shim.log")).unwrap_or_default();
    let want = format!("in_process={}", shim_bin != BIN);
    assert!(log.contains(&want), "{runtime}: want {want}: {log}");
    Shim { cfg, ready }
}

fn send(s: &mut UnixStream, kind: FrameKind, payload: &[u8]) {
    s.write_all(&frame_header(kind, payload.len() as u32))
        .unwrap();
    s.write_all(payload).unwrap();
}

fn request(s: &mut UnixStream, r: &Request) {
    send(s, FrameKind::Control, &serde_json::to_vec(r).unwrap());
}

/// Attach to stdout and stderr (and stdin if asked), then start.
fn attach_and_start(c: &mut UnixStream, stdin: bool) {
    request(
        c,
        &Request::Attach {
            stdout: true,
            stderr: true,
            stdin,
        },
    );
    request(c, &Request::Start);
}

fn read_frame(s: &mut UnixStream) -> Option<(FrameKind, Vec<u8>)> {
    let mut h = [0u8; 5];
    s.read_exact(&mut h).ok()?;
    let (k, len) = parse_frame_header(&h).expect("valid header");
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p).ok()?;
    Some((k, p))
}

/// Collected frames of one connection until `Exited`.
#[derive(Default, Debug)]
struct Session {
    stdout: String,
    stderr: String,
    responses: Vec<String>,
    exited: Option<ExitStatus>,
}

fn collect(s: &mut UnixStream) -> Session {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Session::default();
    while let Some((k, p)) = read_frame(s) {
        match k {
            FrameKind::Stdout => out.stdout.push_str(&String::from_utf8_lossy(&p)),
            FrameKind::Stderr => out.stderr.push_str(&String::from_utf8_lossy(&p)),
            FrameKind::Control => match serde_json::from_slice::<Response>(&p).unwrap() {
                Response::Exited(x) => {
                    out.exited = Some(x);
                    break;
                }
                r => out.responses.push(serde_json::to_string(&r).unwrap()),
            },
            _ => panic!("unexpected frame {k:?}"),
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32) {
    let t = Instant::now();
    while alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "shim {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_exit(path: &Path) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Ok(b) = std::fs::read(path) {
            return serde_json::from_slice(&b).unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit file {path:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of the container remains: mount, cgroup, runtime state, socket.
fn assert_clean(b: &Bundle, shim: &Shim, runtime: &str) {
    wait_gone(shim.ready.shim_pid);
    let rootfs: PathBuf = b.dir.join("rootfs");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(rootfs.to_str().unwrap()),
        "{runtime}: rootfs still mounted"
    );
    let rel = b.cgroup_rel();
    assert!(
        cgroup_dirs(&rel).is_empty(),
        "{runtime}: {:?}",
        cgroup_dirs(&rel)
    );
    assert!(
        !b.root_for(runtime).join(&b.id).exists(),
        "{runtime}: state dir left"
    );
    assert!(!shim.cfg.socket.exists(), "{runtime}: socket left");
    assert!(!alive(shim.ready.pid), "{runtime}: init alive");
}

/// Unmounts (lazily, deepest first) on drop, even when the test fails.
struct MountGuard(Vec<PathBuf>);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = nix::mount::umount2(p.as_path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// `prune_mounts`: the in-process create (and so its hooks, INTER, init)
/// runs in a mount namespace without the mounts below the pruned dir (as
/// for other containers' rootfs under <exec-root>/containers) but with
/// this container's own rootfs; the host's mounts stay as they were.
#[test]
fn shim_create_without_other_containers_mounts() {
    require_root!();
    use nix::mount::{mount, MsFlags};
    let b = Bundle::new("prune", &["cat", "/marker"]);
    std::fs::write(b.dir.join("rootfs/marker"), "own rootfs\n").unwrap();
    // The bundle dir stands in for <exec-root>/containers (berthd makes
    // that a mount point of its own).
    assert!(berth_sys::mount::ensure_mount_point(&b.dir).unwrap());
    let mut guard = MountGuard(vec![b.dir.clone()]);
    let ro = RoBin::new(&b);
    let foreign = b.dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    mount(
        Some("tmpfs"),
        &foreign,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    guard.0.push(foreign.clone());
    let hook_out = b.dir.join("hook-mountinfo");
    b.edit(|c| {
        c["hooks"] = serde_json::json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat /proc/self/mountinfo > {}", hook_out.display())]
        }]})
    });
    let shim = start_shim_pruning(&b, &ro.path, false, vec![b.dir.clone()]);
    let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
    attach_and_start(&mut c, false);
    let s = collect(&mut c);
    assert_eq!(s.stdout, "own rootfs\n", "{s:?}");
    assert_eq!(s.exited.as_ref().map(|x| x.exit_code), Some(0), "{s:?}");
    let seen = std::fs::read_to_string(&hook_out).unwrap();
    let mount_points: Vec<&str> = seen.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    let dir = b.dir.to_str().unwrap();
    assert!(
        mount_points.contains(&format!("{dir}/rootfs").as_str()),
        "own rootfs kept: {seen}"
    );
    assert!(
        !mount_points
            .iter()
            .any(|m| m.starts_with(foreign.to_str().unwrap())),
        "other mounts pruned: {seen}"
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        host.contains(foreign.to_str().unwrap()),
        "the host keeps its mounts"
    );
    assert_clean(&b, &shim, &ro.path);
    drop(ro);
    drop(guard);
}

/// Attach + Start: output frames, Exited{3}, json-file log, exit file, cleanup.
#[test]
fn shim_attach_start_exit() {
    require_root!();
    let b = Bundle::new(
        "shim",
        &["sh", "-c", "echo hello; echo oops >&2; printf part; exit 3"],
    );
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        request(&mut c, &Request::State);
        let (_, p) = read_frame(&mut c).unwrap();
        match serde_json::from_slice(&p).unwrap() {
            Response::State { pid, running } => {
                assert_eq!(pid, shim.ready.pid);
                assert!(!running);
            }
            r => panic!("{r:?}"),
        }
        attach_and_start(&mut c, false);
        let s = collect(&mut c);
        assert_eq!(s.stdout, "hello\npart", "{rt}: {s:?}");
        assert_eq!(s.stderr, "oops\n", "{rt}: {s:?}");
        assert!(
            s.responses.iter().any(|r| r.contains("started")),
            "{rt}: {s:?}"
        );
        let x = s.exited.expect("Exited");
        assert_eq!(x.exit_code, 3, "{rt}");
        assert!(!x.oom_killed);
        assert_eq!(read_exit(&shim.cfg.exit_file), x);
        chrono::DateTime::parse_from_rfc3339(&x.finished_at).unwrap();

        // LOG-01: Docker json-file lines.
        let log = std::fs::read_to_string(&shim.cfg.log_path).unwrap();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let first = log.lines().find(|l| l.contains("hello")).unwrap();
        assert!(
            first.starts_with(r#"{"log":"hello\n","stream":"stdout","time":""#),
            "{first}"
        );
        let mut got: Vec<(String, String)> = lines
            .iter()
            .map(|v| {
                let t = v["time"].as_str().unwrap();
                assert!(t.ends_with('Z'));
                chrono::DateTime::parse_from_rfc3339(t).unwrap();
                (
                    v["stream"].as_str().unwrap().into(),
                    v["log"].as_str().unwrap().into(),
                )
            })
            .collect();
        got.sort();
        let want = [
            ("stderr", "oops\n"),
            ("stdout", "hello\n"),
            ("stdout", "part"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{rt}");
        assert_clean(&b, &shim, rt);
    }
}

/// A client that disconnects early does not stop the shim.
#[test]
fn shim_survives_client_disconnect() {
    require_root!();
    let b = Bundle::new("shimdc", &["sh", "-c", "sleep 1; echo late; exit 5"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        {
            let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
            attach_and_start(&mut c, false);
            let (k, _) = read_frame(&mut c).unwrap();
            assert_eq!(k, FrameKind::Control);
        } // dropped: disconnect
        let x = read_exit(&shim.cfg.exit_file);
        assert_eq!(x.exit_code, 5, "{rt}");
        let log = std::fs::read_to_string(&shim.cfg.log_path).unwrap();
        assert!(log.contains(r#""log":"late\n""#), "{rt}: {log}");
        assert_clean(&b, &shim, rt);
    }
}

/// open_stdin: Stdin frames reach the container, StdinClose gives EOF.
#[test]
fn shim_stdin() {
    require_root!();
    let b = Bundle::new("shimin", &["sh", "-c", "cat; echo eof"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, true);
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        attach_and_start(&mut c, true);
        send(&mut c, FrameKind::Stdin, b"ping\n");
        send(&mut c, FrameKind::StdinClose, b"");
        let s = collect(&mut c);
        assert_eq!(s.stdout, "ping\neof\n", "{rt}: {s:?}");
        assert_eq!(s.exited.unwrap().exit_code, 0);
        assert_clean(&b, &shim, rt);
    }
}

/// Kill and Wait on separate connections; OOM is detected (RES-14).
#[test]
fn shim_kill_wait_and_oom() {
    require_root!();
    let b = Bundle::new("shimkill", &["sleep", "60"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        request(&mut c, &Request::Start);
        let (_, p) = read_frame(&mut c).unwrap();
        assert!(String::from_utf8_lossy(&p).contains("started"));
        let mut w = UnixStream::connect(&shim.cfg.socket).unwrap();
        request(&mut w, &Request::Wait);
        request(&mut c, &Request::Kill { signal: 9 });
        let (_, p) = read_frame(&mut c).unwrap();
        assert_eq!(String::from_utf8_lossy(&p), r#"{"op":"ok"}"#);
        let s = collect(&mut w);
        assert_eq!(s.exited.unwrap().exit_code, 137, "{rt}");
        assert_clean(&b, &shim, rt);
        let _ = std::fs::remove_file(&shim.cfg.exit_file);
    }
    let script = r#"x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}"#;
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        c["linux"]["resources"]["memory"] =
            serde_json::json!({"limit": 32 << 20, "swap": 32 << 20});
    });
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        request(&mut c, &Request::Wait);
        request(&mut c, &Request::Start);
        let s = collect(&mut c);
        let x = s.exited.unwrap();
        assert_eq!(x.exit_code, 137, "{rt}");
        assert!(x.oom_killed, "{rt}: {x:?}");
        assert_clean(&b, &shim, rt);
    }
}

/// A bad config still yields one ShimReady line with `error`, exec'd or
/// in-process.
#[test]
fn shim_reports_create_error() {
    require_root!();
    let b = Bundle::new("shimerr", &["/nonexistent"]);
    let ro = RoBin::new(&b);
    b.edit(|c| c["root"]["path"] = serde_json::json!("no-such-rootfs-dir/x"));
    let path = b.dir.join("shim.json");
    for bin in [BIN, ro.path.as_str()] {
        let cfg = ShimConfig {
            id: b.id.clone(),
            bundle: b.dir.clone(),
            rootfs_mounts: vec![],
            runtime: bin.into(),
            runtime_root: b.root_berth.clone(),
            log_path: b.dir.join("log.json"),
            exit_file: b.dir.join("exit.json"),
            socket: b.dir.join("s.sock"),
            open_stdin: false,
            prune_mounts: vec![],
        };
        std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let out = Command::new(bin)
            .args(["shim", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let r: ShimReady = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r.error.is_some(), "{bin}: {r:?}");
        wait_gone(r.shim_pid);
        assert!(!cfg.socket.exists());
        assert!(!b.root_berth.join(&b.id).exists(), "{bin}: state left");
    }
}

/// Run `args` with `process.cwd` = `cwd` through a shim; stdout and exit code.
fn run_in_cwd(b: &Bundle, rt: &str, cwd: &str) -> Session {
    b.edit(|c| c["process"]["cwd"] = serde_json::json!(cwd));
    let shim = start_shim(b, rt, false);
    let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
    attach_and_start(&mut c, false);
    let s = collect(&mut c);
    assert_clean(b, &shim, rt);
    let _ = std::fs::remove_file(&shim.cfg.exit_file);
    s
}

/// A missing working directory is created (0755, root) like Docker does.
#[test]
fn shim_creates_missing_cwd() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let b = Bundle::new("shimcwd", &["pwd"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let s = run_in_cwd(&b, rt, "/does/not/exist");
        assert_eq!(s.stdout, "/does/not/exist\n", "{rt}: {s:?}");
        assert_eq!(s.exited.unwrap().exit_code, 0, "{rt}");
        let made = b.dir.join("lower/does/not/exist");
        let m = std::fs::metadata(&made).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o755, "{rt}");
        assert_eq!((m.uid(), m.gid()), (0, 0));
        std::fs::remove_dir_all(b.dir.join("lower/does")).unwrap();
    }
}

/// Creating the working directory never follows a symlink out of the rootfs:
/// `/escape -> /` resolves to the container's root, not the host's.
#[test]
fn shim_cwd_symlink_stays_in_rootfs() {
    require_root!();
    let b = Bundle::new("shimcwdesc", &["pwd"]);
    let ro = RoBin::new(&b);
    std::os::unix::fs::symlink("/", b.dir.join("rootfs/escape")).unwrap();
    let name = format!("berth-cwd-test-{}", std::process::id());
    let host = Path::new("/tmp").join(&name);
    let _ = std::fs::remove_dir(&host);
    for rt in ro.runtimes() {
        let s = run_in_cwd(&b, rt, &format!("/escape/tmp/{name}"));
        assert!(!host.exists(), "{rt}: created {host:?} on the host");
        assert_eq!(s.stdout, format!("/tmp/{name}\n"), "{rt}: {s:?}");
        assert_eq!(s.exited.unwrap().exit_code, 0, "{rt}");
        let inside = b.dir.join("lower/tmp").join(&name);
        assert!(inside.is_dir(), "{rt}: {inside:?}");
        std::fs::remove_dir(&inside).unwrap();
    }
}

/// Init does not inherit the shim's ignored SIGPIPE (in-process create
/// resets it around the clone), and the shim keeps ignoring it.
#[test]
fn shim_signals_not_inherited() {
    require_root!();
    let b = Bundle::new("shimsig", &["grep", "SigIgn", "/proc/self/status"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", shim.ready.shim_pid)).unwrap();
        let ign = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_ne!(ign & (1 << (libc::SIGPIPE - 1)), 0, "{rt}: shim {ign:x}");
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        attach_and_start(&mut c, false);
        let s = collect(&mut c);
        let got = s
            .stdout
            .strip_prefix("SigIgn:")
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap());
        if rt == RUNC {
            // runc passes on whatever its caller ignores beyond SIGPIPE.
            assert_eq!(
                got.map(|v| v & (1 << (libc::SIGPIPE - 1))),
                Some(0),
                "{s:?}"
            );
        } else {
            assert_eq!(got, Some(0), "{rt}: {s:?}");
        }
        assert_clean(&b, &shim, rt);
        let _ = std::fs::remove_file(&shim.cfg.exit_file);
    }
}

/// One exec on its own connection: reply, output frames, `ExecExited`.
#[derive(Default, Debug)]
struct ExecSession {
    started: Option<u32>,
    error: Option<String>,
    stdout: String,
    stderr: String,
    exit_code: Option<i32>,
}

fn exec(
    sock: &Path,
    b: &Bundle,
    args: &[&str],
    terminal: bool,
    input: Option<&[u8]>,
) -> ExecSession {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    let mut p = spec["process"].clone();
    p["args"] = serde_json::json!(args);
    p["terminal"] = serde_json::json!(terminal);
    if terminal {
        p["consoleSize"] = serde_json::json!({"height": 33, "width": 77});
    }
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    request(
        &mut c,
        &Request::Exec {
            exec_id: "e1".into(),
            process: p,
            stdin: input.is_some(),
        },
    );
    if let Some(data) = input {
        send(&mut c, FrameKind::Stdin, data);
        send(&mut c, FrameKind::StdinClose, b"");
    }
    let mut s = ExecSession::default();
    while let Some((k, p)) = read_frame(&mut c) {
        match k {
            FrameKind::Stdout => s.stdout.push_str(&String::from_utf8_lossy(&p)),
            FrameKind::Stderr => s.stderr.push_str(&String::from_utf8_lossy(&p)),
            FrameKind::Control => match serde_json::from_slice::<Response>(&p).unwrap() {
                Response::ExecStarted { pid } => s.started = Some(pid),
                Response::ExecExited { exit_code } => {
                    s.exit_code = Some(exit_code);
                    break;
                }
                Response::Error { message } => {
                    s.error = Some(message);
                    break;
                }
                r => panic!("unexpected {r:?}"),
            },
            _ => panic!("unexpected frame {k:?}"),
        }
    }
    s
}

/// Exec (ARCH-13, CTR-22) with each runtime: output, stdin, exit code, a
/// failed exec leaves nothing that would keep init from exiting, a pty.
#[test]
fn shim_exec() {
    require_root!();
    let b = Bundle::new("shimexec", &["sleep", "60"]);
    let ro = RoBin::new(&b);
    for rt in ro.runtimes() {
        let shim = start_shim(&b, rt, false);
        let mut c = UnixStream::connect(&shim.cfg.socket).unwrap();
        request(&mut c, &Request::Start);
        let (_, p) = read_frame(&mut c).unwrap();
        assert!(matches!(
            serde_json::from_slice::<Response>(&p).unwrap(),
            Response::Started { .. }
        ));
        let sock = shim.cfg.socket.clone();
        let s = exec(
            &sock,
            &b,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
            None,
        );
        assert!(s.started.unwrap_or(0) > 0, "{rt}: {s:?}");
        assert_eq!(
            (s.stdout.as_str(), s.stderr.as_str(), s.exit_code),
            ("out\n", "err\n", Some(3)),
            "{rt}"
        );
        let s = exec(&sock, &b, &["cat"], false, Some(b"piped\n"));
        assert_eq!(
            (s.stdout.as_str(), s.exit_code),
            ("piped\n", Some(0)),
            "{rt}: {s:?}"
        );
        let s = exec(&sock, &b, &["no-such-command"], false, None);
        assert!(
            s.error.as_deref().unwrap_or("").contains("no-such-command"),
            "{rt}: {s:?}"
        );
        let s = exec(&sock, &b, &["sh", "-c", "tty; stty size"], true, None);
        assert!(s.stdout.contains("/dev/pts/"), "{rt}: {s:?}");
        assert!(s.stdout.contains("33 77"), "{rt}: {s:?}");
        assert_eq!(s.exit_code, Some(0));
        // Init exits promptly on SIGKILL: no stray process of a failed exec.
        request(&mut c, &Request::Wait);
        let mut k = UnixStream::connect(&sock).unwrap();
        request(&mut k, &Request::Kill { signal: 9 });
        let w = collect(&mut c);
        assert_eq!(w.exited.unwrap().exit_code, 137, "{rt}");
        assert_clean(&b, &shim, rt);
    }
}
