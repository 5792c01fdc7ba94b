//! `berth-runtime shim --config FILE`: the per-container supervisor
//! (ARCH-13). Protocol in `berth_types::shim` and docs/shim-protocol.md.
//!
//! Process tree: the daemon spawns us; we fork at once. The parent prints one
//! `ShimReady` line and exits; the child (the shim) detaches (setsid,
//! subreaper, stdio to /dev/null), mounts the rootfs, runs `runtime create`,
//! owns the container's stdio pipes, serves the socket, reaps init, writes
//! the exit file and cleans up. Threads are used only after the fork.
//!
//! When the configured runtime is this very binary on a read-only mount
//! (berthd's `<exec-root>/bin/berth-runtime`), create/start/kill/delete run
//! in-process through the `berth_runtime` library instead of exec'ing it:
//! `create` forks without exec, so it runs in `setup` while we are still
//! single-threaded; start/kill/delete never fork and run on any thread.
//! Other runtimes (runc, crun, or berth-runtime from a writable path, which
//! must re-exec from a sealed copy) are exec'd.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_types::shim::{
    frame_header, parse_frame_header, ExitStatus, FrameKind, Request, Response, ShimConfig,
    ShimReady,
};
use berth_types::Mount;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Docker's json-file logger splits lines longer than this.
const MAX_LOG_LINE: usize = 16 * 1024;

pub fn main(config_path: &Path) -> ! {
    // Nothing ignored passes on to the runtimes we exec (runc hands ignored
    // signals down to the container's processes); we ignore SIGPIPE only,
    // which std resets in the children it spawns.
    berth_sys::signal::reset_ignored();
    berth_sys::signal::ignore(libc::SIGPIPE);
    let cfg = match read_config(config_path) {
        Ok(c) => c,
        Err(e) => fail_early(e),
    };
    let (ready_r, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail_early(format!("pipe: {e}")),
    };
    // SAFETY: no threads exist yet (called straight from main), so the child
    // may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail_early(format!("fork: {e}")),
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            warm_cgroup_migration();
            // One line, not EOF: with an in-process create the container's
            // init holds a copy of the write end until it execs.
            let mut line = String::new();
            let _ = io::BufReader::new(File::from(ready_r)).read_line(&mut line);
            match serde_json::from_str::<ShimReady>(line.trim()) {
                Ok(r) => print_ready(&r),
                Err(_) => print_ready(&ShimReady {
                    shim_pid: child.as_raw() as u32,
                    pid: 0,
                    error: Some("shim exited before the container was created".into()),
                }),
            }
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            run_detached(&cfg, ready_w)
        }
    }
}

fn read_config(path: &Path) -> std::result::Result<ShimConfig, String> {
    std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(serde_json::from_slice(&b)?))
        .map_err(|e| format!("read shim config {}: {e}", path.display()))
}

/// The shim proper, in the process that stays: detach, log, supervise.
/// `ready` gets the one `ShimReady` line.
fn run_detached(cfg: &ShimConfig, ready: OwnedFd) -> ! {
    detach(ready.as_raw_fd());
    init_log(&cfg.bundle);
    let code = match shim(cfg, File::from(ready)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("shim: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// `berth-runtime shim-launcher`: berthd's shim launcher (ARCH-13). Started
/// once by berthd with a `SOCK_SEQPACKET` socket on stdin; each packet is a
/// shim config path with a reply socket attached. The launcher forks; the
/// child becomes that container's shim (as `shim --config` would, without
/// exec'ing and relocating this binary again) and writes its `ShimReady`
/// line to the reply socket. Exits when berthd closes its end; the shims
/// live on. Single-threaded: it only receives and forks.
pub fn launcher() -> ! {
    berth_sys::signal::reset_ignored();
    berth_sys::signal::ignore(libc::SIGPIPE);
    // The shims are our children until they exit: let the kernel reap them.
    berth_sys::signal::ignore(libc::SIGCHLD);
    // SAFETY: fd 0 is the control socket berthd gave us; we own it from here.
    let control = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) };
    if nix::sys::socket::send(
        control.as_raw_fd(),
        berth_types::shim::LAUNCHER_HELLO.as_bytes(),
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )
    .is_err()
    {
        std::process::exit(1);
    }
    loop {
        let (path, reply) =
            match berth_sys::fdpass::recv_with_fd(std::os::fd::AsFd::as_fd(&control), 8192) {
                Ok(Some((path, Some(reply)))) => (path, reply),
                // A packet without a reply socket: nobody to answer.
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => std::process::exit(0),
            };
        let path =
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(path));
        // SAFETY: single-threaded (we never start a thread), so the child
        // may run arbitrary code.
        match unsafe { nix::unistd::fork() } {
            Err(e) => {
                write_ready(&reply, &not_created(format!("fork: {e}")));
            }
            Ok(ForkResult::Parent { .. }) => {
                drop(reply);
                warm_cgroup_migration();
            }
            Ok(ForkResult::Child) => {
                // fd 0 (the control socket) becomes /dev/null: never leave
                // 0-2 closed, or the next open takes them.
                let _ = std::os::fd::IntoRawFd::into_raw_fd(control);
                stdio_to_null();
                berth_sys::signal::reset_ignored();
                berth_sys::signal::ignore(libc::SIGPIPE);
                // What `ps` and `pgrep -f` show for the container's shim.
                let argv0 = std::env::args_os().next().unwrap_or_default();
                berth_sys::process::rewrite_cmdline(&[
                    argv0.as_os_str(),
                    std::ffi::OsStr::new("shim"),
                    std::ffi::OsStr::new("--config"),
                    path.as_os_str(),
                ]);
                match read_config(&path) {
                    Ok(cfg) => run_detached(&cfg, reply),
                    Err(e) => {
                        write_ready(&reply, &not_created(e));
                        std::process::exit(1);
                    }
                }
            }
        }
    }
}

fn write_ready(to: &OwnedFd, r: &ShimReady) {
    let line = format!("{}\n", serde_json::to_string(r).unwrap_or_default());
    let _ = nix::unistd::write(to, line.as_bytes());
}

/// Start the RCU grace period that every cgroup migration waits for, while
/// the shim mounts the rootfs: the first write to a `cgroup.procs` after a
/// quiet spell blocks for a grace period (`cgroup_threadgroup_rwsem`, ~5-10 ms
/// on a small VM), later ones within about a grace period do not. We "move"
/// ourselves into the cgroup we are already in (a no-op that still takes the
/// lock), so the runtime's move of the container's init right after is fast.
/// Best effort; the caller only waits for the shim afterwards.
fn warm_cgroup_migration() {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let root = Path::new("/sys/fs/cgroup");
    let file = own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let rel = path.trim_start_matches('/');
        let dir = if ctrls.is_empty() {
            // v2 (unified, or the hybrid's empty v2 tree: also the lock).
            root.join("cgroup.controllers")
                .exists()
                .then(|| root.join(rel))?
        } else {
            // v1: the hierarchy's mount is named after its controllers.
            root.join(ctrls.trim_start_matches("name=")).join(rel)
        };
        let f = dir.join("cgroup.procs");
        f.exists().then_some(f)
    });
    if let Some(f) = file {
        let _ = OpenOptions::new()
            .write(true)
            .open(f)
            .and_then(|mut f| f.write_all(b"0"));
    }
}

fn fail_early(msg: String) -> ! {
    print_ready(&not_created(msg));
    std::process::exit(1);
}

/// The reply for a shim that failed before it existed.
fn not_created(msg: String) -> ShimReady {
    ShimReady {
        shim_pid: 0,
        pid: 0,
        error: Some(msg),
    }
}

fn print_ready(r: &ShimReady) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
    let _ = out.flush();
}

/// New session, child subreaper, stdio on /dev/null, no stray fds.
fn detach(keep_fd: i32) {
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    stdio_to_null();
    close_fds_except(keep_fd);
    // Keep RSS small: one malloc arena for all threads.
    // SAFETY: mallopt only tunes glibc's allocator.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Point fds 0-2 at /dev/null (open; the descriptor used for it is kept
/// when it is itself one of 0-2).
fn stdio_to_null() {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        let raw = null.as_raw_fd();
        for fd in 0..3 {
            if fd != raw {
                let _ = nix::unistd::dup2(raw, fd);
            }
        }
        if raw <= 2 {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
        }
    }
}

/// Close every fd above 2 but `keep_fd`: `close_range(2)` (Linux 5.9), else
/// via /proc/self/fd.
fn close_fds_except(keep_fd: i32) {
    let close_range = |first: i32, last: u32| -> bool {
        if first as u32 > last {
            return true;
        }
        // SAFETY: close_range only closes descriptors; nothing in this
        // single-threaded process uses the ones above 2 except `keep_fd`.
        unsafe { libc::syscall(libc::SYS_close_range, first as u32, last, 0u32) == 0 }
    };
    if keep_fd > 2 && close_range(3, keep_fd as u32 - 1) && close_range(keep_fd + 1, u32::MAX) {
        return;
    }
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2 && fd != keep_fd)
            .collect();
        for fd in fds {
            let _ = nix::unistd::close(fd);
        }
    }
}

fn init_log(bundle: &Path) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(bundle.join("shim.log"));
    if let Ok(f) = file {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("BERTH_SHIM_LOG")
                    .unwrap_or_else(|_| "warn,libcgroups=error".into()),
            )
            .with_ansi(false)
            .with_writer(Mutex::new(f))
            .try_init();
    }
}

/// Shared state between the socket, output and reaper threads.
struct Shim {
    cfg: ShimConfig,
    runner: Runner,
    spec: SpecInfo,
    pid: u32,
    st: Mutex<State>,
    stdin: Mutex<Option<File>>,
    log: Mutex<JsonLog>,
    /// Signalled when an output stream reaches EOF.
    eof: Condvar,
    /// The container's pty master (for resize), if it has a terminal.
    console: Option<File>,
    /// Pty masters of running exec processes, by exec id.
    exec_consoles: Mutex<std::collections::HashMap<String, File>>,
    /// Pids of running exec processes (each has a thread waiting for it).
    /// Held while an exec starts: execs start one at a time.
    execs: Mutex<std::collections::HashSet<u32>>,
    /// The container as the direct exec path sees it (loaded at first exec).
    enter: Mutex<Option<Arc<berth_runtime::enter::Target>>>,
}

#[derive(Default)]
struct State {
    started: bool,
    exit: Option<ExitStatus>,
    subs: Vec<Sub>,
    open_streams: usize,
}

/// A connection that wants output frames and/or the final `Exited`.
struct Sub {
    conn: u64,
    w: Arc<Mutex<UnixStream>>,
    stdout: bool,
    stderr: bool,
}

fn shim(cfg: &ShimConfig, mut ready: File) -> Result<()> {
    let t0 = Instant::now();
    let runner = Runner::for_config(cfg);
    let spec = SpecInfo::read(&cfg.bundle);
    let mut mounted = 0;
    let res = setup(cfg, &runner, &spec, &mut mounted);
    tracing::debug!(in_process = runner.in_process(), elapsed = ?t0.elapsed(), "created");
    let (pid, out, err, stdin, listener, console) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(
                ready,
                "{}",
                serde_json::to_string(&ShimReady {
                    shim_pid: std::process::id(),
                    pid: 0,
                    error: Some(format!("{e:#}")),
                })?
            );
            drop(ready);
            let _ = runner.delete(cfg);
            unmount_rootfs(cfg, mounted);
            let _ = std::fs::remove_file(&cfg.socket);
            return Err(e);
        }
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.log_path)
        .with_context(|| format!("open log {}", cfg.log_path.display()));
    let log = match log {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("{e:#}");
            None
        }
    };
    let shim = Arc::new(Shim {
        enter: Mutex::new(None),
        cfg: cfg.clone(),
        runner,
        spec,
        pid,
        st: Mutex::new(State {
            open_streams: 2,
            ..Default::default()
        }),
        stdin: Mutex::new(stdin),
        log: Mutex::new(JsonLog {
            file: log,
            partial: [Vec::new(), Vec::new()],
        }),
        eof: Condvar::new(),
        execs: Mutex::new(Default::default()),
        console,
        exec_consoles: Mutex::new(Default::default()),
    });
    writeln!(
        ready,
        "{}",
        serde_json::to_string(&ShimReady {
            shim_pid: std::process::id(),
            pid,
            error: None,
        })?
    )?;
    drop(ready);

    spawn("out", {
        let s = shim.clone();
        move || pump(&s, out, FrameKind::Stdout)
    });
    spawn("err", {
        let s = shim.clone();
        move || pump(&s, err, FrameKind::Stderr)
    });
    spawn("accept", {
        let s = shim.clone();
        move || accept_loop(&s, listener)
    });

    let exit_code = reap(pid);
    // Let the output threads drain (all writers are gone once init and its
    // pid namespace are); bounded in case a host process holds the pipe.
    {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut st = lock(&shim.st);
        while st.open_streams > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = shim
                .eof
                .wait_timeout(st, left)
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
    lock(&shim.log).flush_partial();
    let status = ExitStatus {
        exit_code,
        finished_at: berth_runtime::rfc3339_nano(chrono::Utc::now()),
        oom_killed: oom_killed(shim.spec.cgroups_path.as_deref()),
    };
    let t_exit = Instant::now();
    if let Err(e) = write_atomic(&cfg.exit_file, &serde_json::to_vec(&status)?) {
        tracing::error!("write exit file: {e:#}");
    }
    // Clean up before announcing the exit so the daemon may at once reuse the
    // id and rootfs (e.g. restart policies).
    // Delete (cgroups, runtime state) and unmount are independent: overlap
    // them. A process still using the rootfs (no pid namespace) makes the
    // unmount fall back to a detach, which takes the mount away at once.
    let t_del = std::thread::scope(|sc| {
        let del = sc.spawn(|| {
            // libcgroups gives up on a cgroup it cannot rmdir within ~0.1 s
            // (and skips the controllers after it); try again for a while.
            for attempt in 1..=5 {
                match shim.runner.delete(cfg) {
                    Ok(()) => break,
                    Err(e) => tracing::warn!("runtime delete (attempt {attempt}): {e:#}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            t_exit.elapsed()
        });
        unmount_rootfs(cfg, mounted);
        del.join().unwrap_or_default()
    });
    reap_strays();
    tracing::debug!(delete = ?t_del, cleanup = ?t_exit.elapsed(), "cleaned up");
    let subs = {
        let mut st = lock(&shim.st);
        st.exit = Some(status.clone());
        std::mem::take(&mut st.subs)
    };
    for s in subs {
        let _ = send_control(&s.w, &Response::Exited(status.clone()));
        let _ = lock(&s.w).shutdown(std::net::Shutdown::Both);
    }
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

type Setup = (u32, File, File, Option<File>, UnixListener, Option<File>);

/// Mount the rootfs, create the container with pipes for stdio, listen.
/// Runs single-threaded (an in-process create forks without exec).
fn setup(cfg: &ShimConfig, runner: &Runner, spec: &SpecInfo, mounted: &mut usize) -> Result<Setup> {
    let rootfs = cfg.bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).with_context(|| format!("mkdir {}", rootfs.display()))?;
    for m in &cfg.rootfs_mounts {
        mount_one(m, &rootfs)
            .with_context(|| format!("mount {} on {}", m.source, rootfs.display()))?;
        *mounted += 1;
    }
    if let Some(cwd) = &spec.cwd {
        if let Err(e) = ensure_dir_in_root(&spec.rootfs, cwd) {
            // The runtime reports the failed chdir.
            tracing::warn!("create working directory {}: {e:#}", cwd.display());
        }
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // A terminal: the runtime sends the pty master to this socket; it then
    // is the container's stdin and (only) output stream.
    let console = if spec.terminal {
        Some(console_socket()?)
    } else {
        None
    };
    let console_path = console.as_ref().map(|c| c.1.clone());
    let (stdin_child, stdin_ours) = if cfg.open_stdin && !spec.terminal {
        let (r, w) = pipe()?;
        (Some(r), Some(File::from(w)))
    } else {
        (None, None)
    };
    let pid_file = cfg.bundle.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut out = File::from(out_r);
    let mut err = File::from(err_r);
    let pid = match runner {
        Runner::InProcess(rt) => {
            let opts = berth_runtime::CreateOptions {
                pid_file: Some(pid_file),
                console_socket: console_path.clone(),
                seccomp_cache: Some(cfg.runtime_root.join(".seccomp")),
            };
            let stdio = berth_runtime::Stdio {
                stdin: stdin_child,
                stdout: Some(out_w),
                stderr: Some(err_w),
            };
            let mut keep = vec![spec.rootfs.clone()];
            keep.extend(spec.namespace_paths.iter().cloned());
            let prune = Prune {
                dirs: &cfg.prune_mounts,
                keep: &keep,
            };
            create_forked(rt, &cfg.id, &cfg.bundle, &opts, stdio, &prune)?
        }
        Runner::Exec => {
            let stdin_child = match stdin_child {
                Some(fd) => Stdio::from(fd),
                None => Stdio::null(),
            };
            let mut cmd = Command::new(&cfg.runtime);
            cmd.arg("--root")
                .arg(&cfg.runtime_root)
                .arg("--log")
                .arg(cfg.bundle.join("runtime.log"))
                .args(["--log-format", "json", "create", "--bundle"])
                .arg(&cfg.bundle)
                .arg("--pid-file")
                .arg(&pid_file);
            if let Some(p) = &console_path {
                cmd.arg("--console-socket").arg(p);
            }
            let status = cmd
                .arg(&cfg.id)
                .stdin(stdin_child)
                .stdout(Stdio::from(out_w))
                .stderr(Stdio::from(err_w))
                .status()
                .with_context(|| format!("exec {}", cfg.runtime.display()))?;
            if !status.success() {
                let mut msg = drain_nonblocking(&mut err);
                msg.push_str(&drain_nonblocking(&mut out));
                bail!(
                    "{} create failed ({status}): {}",
                    cfg.runtime.display(),
                    msg.trim()
                );
            }
            std::fs::read_to_string(&pid_file)
                .with_context(|| format!("read {}", pid_file.display()))?
                .trim()
                .parse()
                .context("parse init pid")?
        }
    };
    let _ = std::fs::remove_file(&cfg.socket);
    if let Some(dir) = cfg.socket.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = UnixListener::bind(&cfg.socket)
        .with_context(|| format!("listen on {}", cfg.socket.display()))?;
    if let Some((l, path)) = console {
        let master = recv_master(&l, || false);
        let _ = std::fs::remove_file(&path);
        let master = master.context("receive the container's pty")?;
        if let Some((h, w)) = spec.console_size {
            set_winsize(&master, h, w);
        }
        let stdin = if cfg.open_stdin {
            Some(master.try_clone()?)
        } else {
            None
        };
        let console = master.try_clone()?;
        return Ok((pid, master, err, stdin, listener, Some(console)));
    }
    Ok((pid, out, err, stdin_ours, listener, None))
}

/// A listening console socket at a short path (`sun_path` holds 108 bytes;
/// bundle paths are longer): `/run/berth-pty/<shim pid>-<n>`.
fn console_socket() -> Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new("/run/berth-pty");
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let path = dir.join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).with_context(|| format!("listen on {}", path.display()))?;
    Ok((l, path))
}

/// Accept the runtime's connection on a console socket and receive the pty
/// master (runc's protocol: one message, the fd in SCM_RIGHTS).
/// `gone` says the sender can no longer connect (checked while waiting).
fn recv_master(l: &UnixListener, mut gone: impl FnMut() -> bool) -> Result<File> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_try = false;
    let conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && Instant::now() < deadline
                    && !last_try =>
            {
                last_try = gone();
                if !last_try {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Err(e) => return Err(e).context("accept on the console socket"),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("recvmsg on the console socket")?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &other in &fds[1..] {
                    let _ = nix::unistd::close(other);
                }
                // SAFETY: SCM_RIGHTS just gave us this descriptor.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
    }
    bail!("no pty master received on the console socket")
}

/// TIOCSWINSZ on a pty master.
fn set_winsize(master: &File, height: u16, width: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
}

/// `create` in a forked child, without exec (a fork of this small process
/// costs far less than exec'ing and relocating the runtime binary). The
/// child resets ignored signals (init is cloned from it) and takes
/// libcontainer's side effects on the calling process (non-dumpable,
/// `oom_score_adj`) and the pages its code touches with it when it exits;
/// init is then re-parented to us, the subreaper. Returns init's pid.
fn create_forked(
    rt: &berth_runtime::Runtime,
    id: &str,
    bundle: &Path,
    opts: &berth_runtime::CreateOptions,
    stdio: berth_runtime::Stdio,
    prune: &Prune,
) -> Result<u32> {
    let (r, w) = pipe()?;
    // SAFETY: called from `setup`, before the shim spawns any thread, so the
    // child may run arbitrary code (allocate, lock).
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Child => {
            drop(r);
            berth_sys::signal::reset_ignored();
            let res: std::result::Result<i32, String> = prune
                .enter()
                .map_err(|e| format!("prepare the mount namespace of the runtime: {e}"))
                .and_then(|()| {
                    rt.create_with_stdio(id, bundle, opts, stdio)
                        .map(|pid| pid.as_raw())
                        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
                });
            let code = i32::from(res.is_err());
            let line = serde_json::to_string(&res).unwrap_or_default();
            let _ = File::from(w).write_all(line.as_bytes());
            // SAFETY: _exit ends the child at once; nothing of the parent's
            // state (buffers, atexit handlers) is run or flushed twice.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            drop(stdio);
            // Wait for the child first: init holds a copy of the pipe until
            // it execs, so EOF would not come; the child's one write is
            // buffered in the pipe by the time it has exited.
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::Error::EINTR) => continue,
                    r => break r,
                }
            };
            let mut r = File::from(r);
            let msg = drain_nonblocking(&mut r);
            match serde_json::from_str::<std::result::Result<i32, String>>(&msg) {
                Ok(Ok(pid)) if pid > 0 => Ok(pid as u32),
                Ok(Err(e)) => Err(anyhow::anyhow!(e)),
                _ => bail!("create: child {child} ended without a result ({status:?})"),
            }
        }
    }
}

/// Mounts the runtime create does not need (`ShimConfig::prune_mounts`),
/// and this container's own below them.
struct Prune<'a> {
    dirs: &'a [PathBuf],
    keep: &'a [PathBuf],
}

impl Prune<'_> {
    /// In the forked create child (single-threaded): a mount namespace
    /// without the other containers' mounts.
    fn enter(&self) -> std::io::Result<()> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        let dirs: Vec<&Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        let keep: Vec<&Path> = self.keep.iter().map(PathBuf::as_path).collect();
        berth_sys::mount::enter_pruned_namespace(&dirs, &keep)
    }
}

/// How the shim drives the OCI runtime.
enum Runner {
    /// The `berth_runtime` library, in this process.
    InProcess(berth_runtime::Runtime),
    /// `<runtime> --root R <command>` as a child process.
    Exec,
}

impl Runner {
    /// In-process when `cfg.runtime` is the file we run from and that sits on
    /// a read-only mount (CVE-2019-5736: init is a clone of us, so
    /// `/proc/<init>/exe` must not be writable; berthd runs us from a
    /// read-only bind mount). `BERTH_SHIM_EXEC_RUNTIME=1` forces exec.
    fn for_config(cfg: &ShimConfig) -> Runner {
        use std::os::unix::fs::MetadataExt;
        if std::env::var_os("BERTH_SHIM_EXEC_RUNTIME").is_some_and(|v| v != "0") {
            return Runner::Exec;
        }
        let same = match (
            std::fs::metadata(&cfg.runtime),
            std::fs::metadata("/proc/self/exe"),
        ) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        let readonly = || {
            nix::sys::statvfs::statvfs("/proc/self/exe")
                .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
                .unwrap_or(false)
        };
        if same && readonly() {
            Runner::InProcess(berth_runtime::Runtime::new(&cfg.runtime_root))
        } else {
            Runner::Exec
        }
    }

    fn in_process(&self) -> bool {
        matches!(self, Runner::InProcess(_))
    }

    fn start(&self, cfg: &ShimConfig) -> Result<()> {
        match self {
            Runner::InProcess(rt) => Ok(rt.start(&cfg.id)?),
            Runner::Exec => runtime_cmd(cfg, &["start", &cfg.id]),
        }
    }

    fn kill(&self, cfg: &ShimConfig, signal: i32) -> Result<()> {
        let sig = signal.to_string();
        match self {
            Runner::InProcess(rt) => Ok(rt.kill(&cfg.id, &sig, false)?),
            Runner::Exec => runtime_cmd(cfg, &["kill", &cfg.id, &sig]),
        }
    }

    /// `delete --force`; a missing container is not an error.
    fn delete(&self, cfg: &ShimConfig) -> Result<()> {
        match self {
            Runner::InProcess(rt) => match rt.delete(&cfg.id, true) {
                Err(berth_runtime::Error::NotFound(_)) => Ok(()),
                r => Ok(r?),
            },
            Runner::Exec => runtime_cmd(cfg, &["delete", "--force", &cfg.id]),
        }
    }
}

/// What the shim needs from the bundle's `config.json`.
struct SpecInfo {
    /// `root.path`, resolved against the bundle.
    rootfs: PathBuf,
    /// `process.cwd`.
    cwd: Option<PathBuf>,
    /// `linux.cgroupsPath`.
    cgroups_path: Option<String>,
    /// `process.terminal`.
    terminal: bool,
    /// `process.consoleSize` (height, width).
    console_size: Option<(u16, u16)>,
    /// `linux.namespaces[].path`: namespaces to join (pinned files).
    namespace_paths: Vec<PathBuf>,
}

impl SpecInfo {
    /// Best effort: an unreadable config is the runtime's to report.
    /// Only these fields are read; the rest (most of it the seccomp
    /// profile) is skipped without being built.
    fn read(bundle: &Path) -> SpecInfo {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Raw {
            root: RawRoot,
            process: serde_json::Map<String, serde_json::Value>,
            linux: RawLinux,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct RawRoot {
            path: Option<String>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct RawLinux {
            #[serde(rename = "cgroupsPath")]
            cgroups_path: Option<String>,
            namespaces: Vec<RawNamespace>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct RawNamespace {
            path: Option<String>,
        }
        let raw: Raw = std::fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let process = serde_json::Value::Object(raw.process);
        let root = raw.root.path.unwrap_or_else(|| "rootfs".into());
        SpecInfo {
            rootfs: bundle.join(root),
            cwd: process["cwd"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(PathBuf::from),
            cgroups_path: raw.linux.cgroups_path,
            terminal: process["terminal"].as_bool().unwrap_or(false),
            console_size: console_size(&process),
            namespace_paths: raw
                .linux
                .namespaces
                .into_iter()
                .filter_map(|n| n.path)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// `consoleSize` of an OCI process as (height, width), if set.
fn console_size(p: &serde_json::Value) -> Option<(u16, u16)> {
    let h = p["consoleSize"]["height"].as_u64()?;
    let w = p["consoleSize"]["width"].as_u64()?;
    (h > 0 && w > 0).then_some((h as u16, w as u16))
}

/// Create `dir` (absolute, as seen inside `root`) and missing parents, mode
/// 0755, like Docker does for the working directory. Symlinks resolve as if
/// `root` were `/` (openat2 `RESOLVE_IN_ROOT`), so nothing is created outside
/// `root`.
fn ensure_dir_in_root(root: &Path, dir: &Path) -> Result<()> {
    use std::path::Component;
    let rootfd = open_dir(root).with_context(|| format!("open {}", root.display()))?;
    if open_in_root(&rootfd, Path::new(dir)).is_ok() {
        return Ok(()); // the common case: it exists
    }
    let mut prefix = PathBuf::from("/");
    for c in dir.components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::ParentDir => {
                prefix.pop();
                continue;
            }
            _ => continue,
        };
        let parent =
            open_in_root(&rootfd, &prefix).with_context(|| format!("open {}", prefix.display()))?;
        match nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) => {
                // Exactly 0755 whatever our umask; O_NOFOLLOW: it is the
                // directory we just made.
                let fd = nix::fcntl::openat(
                    Some(parent.as_raw_fd()),
                    name,
                    nix::fcntl::OFlag::O_RDONLY
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_NOFOLLOW
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )?;
                // SAFETY: openat returned a fresh fd that we now own.
                let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                nix::sys::stat::fchmod(
                    fd.as_raw_fd(),
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                )?;
            }
            Err(nix::Error::EEXIST) => {}
            Err(e) => bail!("mkdir {}: {e}", prefix.join(name).display()),
        }
        prefix.push(name);
    }
    open_in_root(&rootfd, dir).with_context(|| format!("open {}", dir.display()))?;
    Ok(())
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(path)?;
    Ok(OwnedFd::from(f))
}

/// openat2(root, path, O_PATH|O_DIRECTORY, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS).
fn open_in_root(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = std::ffi::CString::new(rel.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: open_how is plain data; zeroed is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid dirfd, NUL-terminated path and a correctly sized
    // open_how that outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a fresh fd that we now own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn drain_nonblocking(f: &mut File) -> String {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let _ = fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let _ = fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()));
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount one `Mount` onto `target` (bind/rbind or a filesystem such as overlay).
fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut bind = m.kind == "bind" || m.kind == "rbind";
    let mut recursive = m.kind == "rbind";
    for o in &m.options {
        match o.as_str() {
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                recursive = true
            }
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            other => data.push(other),
        }
    }
    let data = data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    if bind {
        let mut bf = MsFlags::MS_BIND;
        if recursive {
            bf |= MsFlags::MS_REC;
        }
        mount(
            Some(m.source.as_str()),
            target,
            None::<&str>,
            bf,
            None::<&str>,
        )?;
        if !flags.is_empty() {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None::<&str>,
            )?;
        }
    } else if let Some((base, rel)) = data.and_then(overlay_relative) {
        // Layer paths relative to the snapshot dir: /proc/*/mountinfo shows
        // them as given, and every runtime create reads mountinfo (often
        // whole, several times) while it lists every container's rootfs.
        // ~420 bytes of options per container become ~100.
        let back = std::env::current_dir().unwrap_or_else(|_| "/".into());
        std::env::set_current_dir(&base).with_context(|| format!("chdir {}", base.display()))?;
        let res = mount(
            Some(m.source.as_str()),
            target,
            Some(m.kind.as_str()),
            flags,
            Some(rel.as_str()),
        );
        let _ = std::env::set_current_dir(&back);
        res?;
    } else {
        mount(
            Some(m.source.as_str()),
            target,
            Some(m.kind.as_str()),
            flags,
            data,
        )?;
    }
    Ok(())
}

/// Overlay options with `lowerdir`, `upperdir` and `workdir` made relative
/// to the directory holding the upper dir; `None` when there is no absolute
/// upper dir or some layer path is not absolute.
fn overlay_relative(data: &str) -> Option<(PathBuf, String)> {
    let upper = data.split(',').find_map(|o| o.strip_prefix("upperdir="))?;
    let base = Path::new(upper).parent()?.to_path_buf();
    if !base.is_absolute() {
        return None;
    }
    let mut out = Vec::new();
    for o in data.split(',') {
        let rewritten = match o.split_once('=') {
            Some((k @ ("upperdir" | "workdir"), v)) => format!("{k}={}", relative_to(&base, v)?),
            Some(("lowerdir", v)) => {
                let parts: Option<Vec<String>> =
                    v.split(':').map(|l| relative_to(&base, l)).collect();
                format!("lowerdir={}", parts?.join(":"))
            }
            _ => o.to_string(),
        };
        out.push(rewritten);
    }
    Some((base, out.join(",")))
}

/// `path` relative to the absolute dir `base` (`..` steps as needed).
fn relative_to(base: &Path, path: &str) -> Option<String> {
    use std::path::Component;
    let path = Path::new(path);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return None;
    }
    let b: Vec<_> = base.components().collect();
    let p: Vec<_> = path.components().collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    let s = rel.to_str()?.to_string();
    Some(if s.is_empty() { ".".into() } else { s })
}

fn unmount_rootfs(cfg: &ShimConfig, mounted: usize) {
    use nix::mount::{umount2, MntFlags};
    let rootfs = cfg.bundle.join("rootfs");
    for _ in 0..mounted {
        if let Err(e) = umount2(&rootfs, MntFlags::empty()) {
            tracing::warn!("umount {}: {e}; detaching", rootfs.display());
            let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
        }
    }
}

/// Run `runtime --root R <args>`; error with its stderr on failure.
fn runtime_cmd(cfg: &ShimConfig, args: &[&str]) -> Result<()> {
    let out = Command::new(&cfg.runtime)
        .arg("--root")
        .arg(&cfg.runtime_root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("exec {}", cfg.runtime.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            cfg.runtime.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Wait for init; exit code or 128+signal.
fn reap(pid: u32) -> i32 {
    let pid = Pid::from_raw(pid as i32);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                // Not our child (should not happen: we are the subreaper).
                tracing::warn!("waitpid {pid}: {e}; polling");
                while nix::sys::signal::kill(pid, None).is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return 255;
            }
        }
    }
}

/// Reap orphans re-parented to us (we are a subreaper).
fn reap_strays() {
    use nix::sys::wait::WaitPidFlag;
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// OOM kills recorded in the container's memory cgroup (v2 `memory.events`,
/// v1 `memory.oom_control`); false if unknown.
fn oom_killed(cgroups_path: Option<&str>) -> bool {
    let Some(cg) = cgroups_path else {
        return false;
    };
    if cg.contains(':') {
        return false; // systemd slice:prefix:name
    }
    let file = oom_file(Path::new("/sys/fs/cgroup"), cg);
    parse_oom_kill(&std::fs::read_to_string(file).unwrap_or_default()) > 0
}

/// The OOM counter file for `cgroups_path` under a cgroup mount: v2 (unified,
/// `cgroup.controllers` at the root) `memory.events`, else v1
/// `memory/<path>/memory.oom_control`. Both have an `oom_kill N` line.
fn oom_file(cgroup_root: &Path, cgroups_path: &str) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    if cgroup_root.join("cgroup.controllers").exists() {
        cgroup_root.join(rel).join("memory.events")
    } else {
        cgroup_root
            .join("memory")
            .join(rel)
            .join("memory.oom_control")
    }
}

fn parse_oom_kill(s: &str) -> u64 {
    s.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Temp file + rename: readers never see a partial file. No fsync: the exit
/// file only has to outlive a daemon restart, not a host crash (which ends
/// the container anyway), and fsync costs milliseconds per exit on a busy disk.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name(name.into())
        .stack_size(128 * 1024)
        .spawn(f);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Copy one output stream to the json-file log and to attached clients.
fn pump(shim: &Shim, mut src: File, kind: FrameKind) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let data = &buf[..n];
        lock(&shim.log).write(kind, data);
        let mut st = lock(&shim.st);
        st.subs.retain(|s| {
            let want = match kind {
                FrameKind::Stdout => s.stdout,
                _ => s.stderr,
            };
            !want || send_frame(&s.w, kind, data).is_ok()
        });
    }
    lock(&shim.log).flush_stream(kind);
    lock(&shim.st).open_streams -= 1;
    shim.eof.notify_all();
}

fn accept_loop(shim: &Arc<Shim>, listener: UnixListener) {
    let mut next = 0u64;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        next += 1;
        let id = next;
        let s = shim.clone();
        spawn("conn", move || {
            if let Err(e) = serve(&s, conn, id) {
                tracing::debug!("connection {id}: {e:#}");
            }
            lock(&s.st).subs.retain(|x| x.conn != id);
        });
    }
}

fn send_frame(w: &Mutex<UnixStream>, kind: FrameKind, data: &[u8]) -> io::Result<()> {
    let mut w = lock(w);
    w.write_all(&frame_header(kind, data.len() as u32))?;
    w.write_all(data)
}

fn send_control(w: &Mutex<UnixStream>, r: &Response) -> io::Result<()> {
    let b = serde_json::to_vec(r).map_err(io::Error::other)?;
    send_frame(w, FrameKind::Control, &b)
}

/// Serve one connection's frames until EOF.
fn serve(shim: &Arc<Shim>, mut conn: UnixStream, id: u64) -> Result<()> {
    let w = Arc::new(Mutex::new(conn.try_clone()?));
    // A stuck client must not block the container's output for long.
    lock(&w).set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut stdin_ok = false;
    // The stdin pipe of this connection's exec process, if any.
    let mut exec_stdin: Option<Arc<Mutex<Option<File>>>> = None;
    loop {
        let mut h = [0u8; 5];
        if conn.read_exact(&mut h).is_err() {
            return Ok(());
        }
        let Some((kind, len)) = parse_frame_header(&h) else {
            bail!("bad frame header {h:?}");
        };
        let mut payload = vec![0u8; len as usize];
        conn.read_exact(&mut payload)?;
        match kind {
            FrameKind::Control => {
                let reply = match serde_json::from_slice::<Request>(&payload) {
                    Ok(Request::Exec {
                        exec_id,
                        process,
                        stdin,
                    }) => Some(if exec_stdin.is_some() {
                        Response::Error {
                            message: "one exec per connection".into(),
                        }
                    } else {
                        match exec(shim, &exec_id, &process, stdin, &w) {
                            Ok(si) => {
                                // `exec` sent `ExecStarted` itself, before
                                // any output or `ExecExited`.
                                exec_stdin = Some(si);
                                continue;
                            }
                            Err(e) => Response::Error {
                                message: format!("{e:#}"),
                            },
                        }
                    }),
                    Ok(req) => handle(shim, req, &w, id, &mut stdin_ok),
                    Err(e) => Some(Response::Error {
                        message: format!("bad request: {e}"),
                    }),
                };
                if let Some(r) = reply {
                    send_control(&w, &r)?;
                }
            }
            FrameKind::Stdin if exec_stdin.is_some() => {
                if let Some(si) = &exec_stdin {
                    let mut g = lock(si);
                    if let Some(f) = g.as_mut() {
                        if f.write_all(&payload).is_err() {
                            *g = None;
                        }
                    }
                }
            }
            FrameKind::StdinClose if exec_stdin.is_some() => {
                if let Some(si) = &exec_stdin {
                    *lock(si) = None;
                }
            }
            FrameKind::Stdin if stdin_ok => {
                let mut g = lock(&shim.stdin);
                if let Some(f) = g.as_mut() {
                    if f.write_all(&payload).is_err() {
                        *g = None;
                    }
                }
            }
            FrameKind::StdinClose if stdin_ok => *lock(&shim.stdin) = None,
            _ => {} // output frames or stdin without attach: ignored
        }
    }
}

fn handle(
    shim: &Shim,
    req: Request,
    w: &Arc<Mutex<UnixStream>>,
    conn: u64,
    stdin_ok: &mut bool,
) -> Option<Response> {
    let cfg = &shim.cfg;
    let err = |e: anyhow::Error| Response::Error {
        message: format!("{e:#}"),
    };
    Some(match req {
        Request::Start => {
            if lock(&shim.st).started {
                return Some(Response::Error {
                    message: "container already started".into(),
                });
            }
            match shim.runner.start(cfg) {
                Ok(()) => {
                    lock(&shim.st).started = true;
                    Response::Started { pid: shim.pid }
                }
                Err(e) => err(e),
            }
        }
        Request::Attach {
            stdout,
            stderr,
            stdin,
        } => {
            *stdin_ok = stdin && cfg.open_stdin;
            let mut st = lock(&shim.st);
            match &st.exit {
                Some(x) => Response::Exited(x.clone()),
                None => {
                    st.subs.push(Sub {
                        conn,
                        w: w.clone(),
                        stdout,
                        stderr,
                    });
                    return None; // no reply: frames follow, then Exited
                }
            }
        }
        Request::Wait => {
            let mut st = lock(&shim.st);
            match &st.exit {
                Some(x) => Response::Exited(x.clone()),
                None => {
                    st.subs.push(Sub {
                        conn,
                        w: w.clone(),
                        stdout: false,
                        stderr: false,
                    });
                    return None;
                }
            }
        }
        Request::Kill { signal } => {
            if lock(&shim.st).exit.is_some() {
                return Some(Response::Error {
                    message: "container is not running".into(),
                });
            }
            match shim.runner.kill(cfg, signal) {
                Ok(()) => Response::Ok,
                Err(e) => err(e),
            }
        }
        Request::State => {
            let st = lock(&shim.st);
            Response::State {
                pid: shim.pid,
                running: st.started && st.exit.is_none(),
            }
        }
        Request::Resize {
            exec_id,
            width,
            height,
        } => {
            match exec_id {
                None => {
                    if let Some(c) = &shim.console {
                        set_winsize(c, height, width);
                    }
                }
                Some(e) => {
                    if let Some(c) = lock(&shim.exec_consoles).get(&e) {
                        set_winsize(c, height, width);
                    }
                }
            }
            Response::Ok
        }
        Request::Exec { .. } => unreachable!("handled in serve"),
    })
}

/// Start an exec process (`<runtime> exec -d --process P`; the runtime
/// exits once the process runs, which is then re-parented to us, the
/// subreaper), stream its output on `w`, reap it and send `ExecExited`.
/// Always exec'd, also for the in-process runtime: the shim has threads by
/// now and libcontainer forks without exec. Sends `ExecStarted` and returns
/// the handle of the process's stdin pipe.
fn exec(
    shim: &Arc<Shim>,
    exec_id: &str,
    process: &serde_json::Value,
    want_stdin: bool,
    w: &Arc<Mutex<UnixStream>>,
) -> Result<Arc<Mutex<Option<File>>>> {
    let cfg = &shim.cfg;
    if exec_id.is_empty() || !exec_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("invalid exec id {exec_id:?}");
    }
    {
        let st = lock(&shim.st);
        if !st.started || st.exit.is_some() {
            bail!("container {} is not running", cfg.id);
        }
    }
    if shim.runner.in_process() {
        match direct_plan(shim, process) {
            Ok((target, plan)) => return exec_direct(shim, exec_id, &target, &plan, want_stdin, w),
            Err(e) => tracing::debug!(exec_id, "exec through the runtime: {e}"),
        }
    }
    let proc_file = cfg.bundle.join(format!("exec-{exec_id}.json"));
    let pid_file = cfg.bundle.join(format!("exec-{exec_id}.pid"));
    std::fs::write(&proc_file, serde_json::to_vec(process)?)
        .with_context(|| format!("write {}", proc_file.display()))?;
    let _ = std::fs::remove_file(&pid_file);
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let terminal = process["terminal"].as_bool().unwrap_or(false);
    let console = if terminal {
        Some(console_socket()?)
    } else {
        None
    };
    let (stdin_child, stdin_ours) = if want_stdin && !terminal {
        let (r, w) = pipe()?;
        (Stdio::from(r), Some(File::from(w)))
    } else {
        (Stdio::null(), None)
    };
    let mut out = File::from(out_r);
    let mut err = File::from(err_r);
    let t0 = Instant::now();
    let mut claimed = lock(&shim.execs);
    let mut cmd = Command::new(&cfg.runtime);
    cmd.arg("--root")
        .arg(&cfg.runtime_root)
        .arg("--log")
        .arg(cfg.bundle.join("runtime.log"))
        .args(["--log-format", "json", "exec", "--process"])
        .arg(&proc_file)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("-d");
    if let Some((_, p)) = &console {
        cmd.arg("--console-socket").arg(p);
    }
    let child = cmd
        .arg(&cfg.id)
        .stdin(stdin_child)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .spawn()
        .with_context(|| format!("exec {}", cfg.runtime.display()));
    // With a pty: take the master while the runtime runs and size it at
    // once, so the process (already running: libcontainer does not apply
    // consoleSize) almost always starts with the right size.
    let mut master = None;
    let status = child.and_then(|mut child| {
        // The runtime joins the container's cgroups; start that grace
        // period while it is still starting up (see warm_cgroup_migration).
        if console.is_none() {
            warm_cgroup_migration();
        }
        if let Some((l, path)) = &console {
            let m = recv_master(l, || !matches!(child.try_wait(), Ok(None)));
            let _ = std::fs::remove_file(path);
            if let Ok(m) = &m {
                if let Some((h, w)) = console_size(process) {
                    set_winsize(m, h, w);
                }
            }
            master = Some(m);
        }
        child.wait().context("wait for the runtime")
    });
    let _ = std::fs::remove_file(&proc_file);
    let status = status?;
    let pid_text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = std::fs::remove_file(&pid_file);
    if !status.success() {
        // A process that failed to exec is left to us (re-parented): reap it.
        // Usually one process in the namespace; wait a little for it.
        for _ in 0..50 {
            if reap_exec_zombies(shim.pid, &claimed) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(claimed);
        // It may exit only just after the runtime did.
        let sh = shim.clone();
        spawn("exec-reap", move || {
            std::thread::sleep(Duration::from_millis(200));
            reap_exec_zombies(sh.pid, &lock(&sh.execs));
        });
        let mut msg = drain_nonblocking(&mut err);
        msg.push_str(&drain_nonblocking(&mut out));
        let msg = msg.trim().trim_start_matches("ERRO[0000] ").to_string();
        bail!(
            "{}",
            if msg.is_empty() {
                format!("{} exec failed ({status})", cfg.runtime.display())
            } else {
                msg
            }
        );
    }
    let pid: u32 = pid_text.trim().parse().context("read exec pid")?;
    claimed.insert(pid);
    drop(claimed);
    let master = master.transpose().context("receive the exec's pty")?;
    tracing::debug!(exec_id, pid, elapsed = ?t0.elapsed(), "exec started");
    exec_running(
        shim, exec_id, pid, out, err, stdin_ours, master, want_stdin, w,
    )
}

/// The container and the exec, prepared for the direct path; an error means
/// the runtime's `exec` must run it (a feature the direct path lacks).
fn direct_plan(
    shim: &Arc<Shim>,
    process: &serde_json::Value,
) -> Result<(
    Arc<berth_runtime::enter::Target>,
    berth_runtime::enter::Plan,
)> {
    let plan = berth_runtime::enter::Plan::new(process)?;
    let mut cached = lock(&shim.enter);
    let target = match &*cached {
        Some(t) => t.clone(),
        None => {
            let t = Arc::new(berth_runtime::enter::Target::load(
                &shim.cfg.bundle.join("config.json"),
                shim.pid as i32,
                Some(&shim.cfg.runtime_root.join(".seccomp")),
            )?);
            *cached = Some(t.clone());
            t
        }
    };
    Ok((target, plan))
}

/// `exec` without the runtime (CTR-10): the shim forks the process into the
/// container itself (berth_runtime::enter), which saves exec'ing and
/// relocating the runtime binary and its libcontainer set-up.
fn exec_direct(
    shim: &Arc<Shim>,
    exec_id: &str,
    target: &berth_runtime::enter::Target,
    plan: &berth_runtime::enter::Plan,
    want_stdin: bool,
    w: &Arc<Mutex<UnixStream>>,
) -> Result<Arc<Mutex<Option<File>>>> {
    let t0 = Instant::now();
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let terminal = plan.terminal();
    let (stdin_r, stdin_ours) = if want_stdin && !terminal {
        let (r, w) = pipe()?;
        (Some(r), Some(File::from(w)))
    } else {
        (None, None)
    };
    let null = File::open("/dev/null").context("open /dev/null")?;
    let stdin_fd = stdin_r
        .as_ref()
        .map(|f| f.as_raw_fd())
        .unwrap_or(null.as_raw_fd());
    let console = if terminal {
        Some(UnixStream::pair().context("console socketpair")?)
    } else {
        None
    };
    let mut claimed = lock(&shim.execs);
    let res = berth_runtime::enter::spawn(
        target,
        plan,
        [stdin_fd, out_w.as_raw_fd(), err_w.as_raw_fd()],
        console.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
    );
    drop((out_w, err_w, stdin_r, null));
    let pid = match res {
        Ok(p) => p as u32,
        Err(e) => bail!("{e}"),
    };
    claimed.insert(pid);
    drop(claimed);
    let master = match console {
        Some((ours, theirs)) => {
            drop(theirs);
            let m = File::from(
                berth_runtime::enter::recv_fd(ours.as_raw_fd())
                    .context("receive the exec's pty")?,
            );
            Some(m)
        }
        None => None,
    };
    tracing::debug!(exec_id, pid, elapsed = ?t0.elapsed(), "exec started (direct)");
    exec_running(
        shim,
        exec_id,
        pid,
        File::from(out_r),
        File::from(err_r),
        stdin_ours,
        master,
        want_stdin,
        w,
    )
}

/// A started exec: send `ExecStarted`, stream its output, reap it and send
/// `ExecExited`. Returns the handle of its stdin.
#[allow(clippy::too_many_arguments)]
fn exec_running(
    shim: &Arc<Shim>,
    exec_id: &str,
    pid: u32,
    mut out: File,
    err: File,
    mut stdin_ours: Option<File>,
    master: Option<File>,
    want_stdin: bool,
    w: &Arc<Mutex<UnixStream>>,
) -> Result<Arc<Mutex<Option<File>>>> {
    if let Some(master) = master {
        if want_stdin {
            stdin_ours = Some(master.try_clone()?);
        }
        lock(&shim.exec_consoles).insert(exec_id.to_string(), master.try_clone()?);
        out = master;
    }
    send_control(w, &Response::ExecStarted { pid })?;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    for (src, kind) in [(out, FrameKind::Stdout), (err, FrameKind::Stderr)] {
        let w = w.clone();
        let tx = done_tx.clone();
        spawn("exec-out", move || {
            pump_to(src, kind, &w);
            let _ = tx.send(());
        });
    }
    drop(done_tx);
    let stdin = Arc::new(Mutex::new(stdin_ours));
    let w = w.clone();
    let stdin2 = stdin.clone();
    let sh = shim.clone();
    let exec_id = exec_id.to_string();
    spawn("exec-wait", move || {
        let code = reap(pid);
        lock(&sh.execs).remove(&pid);
        lock(&sh.exec_consoles).remove(&exec_id);
        // Nobody can write to the process any more.
        *lock(&stdin2) = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        let _ = send_control(&w, &Response::ExecExited { exit_code: code });
    });
    Ok(stdin)
}

/// Reap zombie children inside the container's pid namespace (more pid
/// levels than ours) that are neither init nor a claimed exec process: what
/// a failed `runtime exec` leaves behind. Without this, init's exit would
/// hang (the kernel waits for every process of the namespace to be reaped).
/// Also reaps libcontainer's leftover intermediate processes (`youki:...`).
/// Returns how many in-namespace zombies were reaped.
fn reap_exec_zombies(init: u32, claimed: &std::collections::HashSet<u32>) -> usize {
    let mut reaped = 0;
    let levels = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|v| v.split_whitespace().count())
            .unwrap_or(1)
    };
    let me = std::process::id();
    let mine = levels(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == init || claimed.contains(&pid) {
            continue;
        }
        let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("PPid:") != me.to_string() || !field("State:").starts_with('Z') {
            continue;
        }
        let inside = levels(&st) > mine;
        if inside || field("Name:").starts_with("youki:") {
            let _ = waitpid(
                Pid::from_raw(pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            reaped += usize::from(inside);
        }
    }
    reaped
}

/// Copy an exec's output stream to its one connection.
fn pump_to(mut src: File, kind: FrameKind, w: &Mutex<UnixStream>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut ok = true;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Keep draining after the client is gone so the process never
        // blocks on a full pipe.
        if ok {
            ok = send_frame(w, kind, &buf[..n]).is_ok();
        }
    }
}

/// Docker json-file writer: one JSON object per line of output.
struct JsonLog {
    file: Option<File>,
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    fn idx(kind: FrameKind) -> usize {
        usize::from(kind != FrameKind::Stdout)
    }

    fn write(&mut self, kind: FrameKind, mut data: &[u8]) {
        let i = Self::idx(kind);
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[i]);
            line.extend_from_slice(&data[..=nl]);
            self.entry(kind, &line);
            data = &data[nl + 1..];
        }
        self.partial[i].extend_from_slice(data);
        if self.partial[i].len() >= MAX_LOG_LINE {
            let line = std::mem::take(&mut self.partial[i]);
            self.entry(kind, &line);
        }
    }

    fn flush_stream(&mut self, kind: FrameKind) {
        let line = std::mem::take(&mut self.partial[Self::idx(kind)]);
        if !line.is_empty() {
            self.entry(kind, &line);
        }
    }

    fn flush_partial(&mut self) {
        self.flush_stream(FrameKind::Stdout);
        self.flush_stream(FrameKind::Stderr);
    }

    fn entry(&mut self, kind: FrameKind, line: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let stream = if kind == FrameKind::Stdout {
            "stdout"
        } else {
            "stderr"
        };
        let rec = json_file_line(
            line,
            stream,
            &berth_runtime::rfc3339_nano(chrono::Utc::now()),
        );
        if let Err(e) = f.write_all(rec.as_bytes()) {
            tracing::warn!("write log: {e}");
        }
    }
}

/// `{"log":..,"stream":..,"time":..}\n` escaped like Go's encoding/json.
fn json_file_line(line: &[u8], stream: &str, time: &str) -> String {
    let log = serde_json::to_string(&String::from_utf8_lossy(line)).unwrap_or_default();
    let log = log
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    format!("{{\"log\":{log},\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_info_reads_its_fields_only() {
        let dir = std::env::temp_dir().join(format!("berth-specinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"ociVersion":"1.0.2","root":{"path":"rfs","readonly":false},
                "process":{"terminal":true,"cwd":"/work","consoleSize":{"height":24,"width":80},"args":["sh"]},
                "linux":{"cgroupsPath":"/berth/x","seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},
                         "namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/x"},{"type":"ipc","path":""}]}}"#,
        )
        .unwrap();
        let s = SpecInfo::read(&dir);
        assert_eq!(s.rootfs, dir.join("rfs"));
        assert_eq!(s.cwd.as_deref(), Some(Path::new("/work")));
        assert_eq!(s.cgroups_path.as_deref(), Some("/berth/x"));
        assert!(s.terminal);
        assert_eq!(s.console_size, Some((24, 80)));
        assert_eq!(s.namespace_paths, vec![PathBuf::from("/run/netns/x")]);
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let s = SpecInfo::read(&dir);
        assert_eq!(s.rootfs, dir.join("rootfs"));
        assert!(!s.terminal && s.cwd.is_none() && s.namespace_paths.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overlay_options_relative_to_the_snapshot_dir() {
        let (base, rel) = overlay_relative(
            "lowerdir=/d/image/layers/aa/diff:/d/image/layers/bb/diff,upperdir=/d/image/snapshots/c1/upper,workdir=/d/image/snapshots/c1/work,index=off",
        )
        .unwrap();
        assert_eq!(base, Path::new("/d/image/snapshots/c1"));
        assert_eq!(
            rel,
            "lowerdir=../../layers/aa/diff:../../layers/bb/diff,upperdir=upper,workdir=work,index=off"
        );
        // Anything odd keeps the absolute form.
        assert!(overlay_relative("lowerdir=/a:/b").is_none());
        assert!(overlay_relative("lowerdir=/a/../b,upperdir=/s/u,workdir=/s/w").is_none());
        assert!(overlay_relative("lowerdir=a,upperdir=/s/u,workdir=/s/w").is_none());
        assert_eq!(relative_to(Path::new("/s"), "/s").as_deref(), Some("."));
    }

    #[test]
    fn json_file_format() {
        // LOG-01: Docker json-file line shape.
        let l = json_file_line(b"hello <b>\n", "stdout", "2026-11-22T11:28:14.123456789Z");
        assert_eq!(
            l,
            "{\"log\":\"hello \\u003cb\\u003e\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T11:28:14.123456789Z\"}\n"
        );
    }

    #[test]
    fn log_splits_lines_and_keeps_partials() {
        let dir = std::env::temp_dir().join(format!("berth-jsonlog-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut log = JsonLog {
            file: Some(File::create(&dir).unwrap()),
            partial: [Vec::new(), Vec::new()],
        };
        log.write(FrameKind::Stdout, b"a\nb");
        log.write(FrameKind::Stderr, b"err\n");
        log.write(FrameKind::Stdout, b"c\nd");
        log.flush_partial();
        let text = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        let logs: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["log"].as_str().unwrap().into(),
                    v["stream"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("a\n", "stdout"),
            ("err\n", "stderr"),
            ("bc\n", "stdout"),
            ("d", "stdout"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(logs, want);
    }

    #[test]
    fn oom_file_v1_and_v2() {
        // RES-11 / RES-12: pick the file by layout, not by assuming v1.
        let root = std::env::temp_dir().join(format!("berth-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(
            oom_file(&root, "/berth/c1"),
            root.join("memory/berth/c1/memory.oom_control")
        );
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert_eq!(
            oom_file(&root, "/berth/c1"),
            root.join("berth/c1/memory.events")
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn oom_kill_counter() {
        // v1 memory.oom_control and v2 memory.events share the line format.
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
            1
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), 0);
    }
}
