//! End-to-end: stdin and attach (`run -i`, `start -a -i`, `attach`, several
//! attach clients) with berth and the docker CLI, against real containers.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn with_stdin(mut cmd: Command, input: &[u8], delay: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    std::thread::sleep(delay);
    w.write_all(input).unwrap();
    drop(w);
    child.wait_with_output().unwrap()
}

fn berth_cmd(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new(bin("berth"));
    c.arg("-H").arg(d.host()).args(args);
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn run_interactive_stdin() {
    require_root!();
    let d = Daemon::start("stdin");
    let o = with_stdin(
        berth_cmd(&d, &["run", "-i", "--rm", IMAGE, "cat"]),
        b"hi\n",
        Duration::ZERO,
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hi\n"),
        "{}",
        stderr(&o)
    );
    // Large input, exit code of the container.
    let big = vec![b'y'; 300_000];
    let o = with_stdin(
        berth_cmd(&d, &["run", "-i", IMAGE, "sh", "-c", "wc -c; exit 9"]),
        &big,
        Duration::ZERO,
    );
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (9, "300000"),
        "{}",
        stderr(&o)
    );
    // Without -i the container's stdin is /dev/null.
    let o = with_stdin(
        berth_cmd(&d, &["run", "--rm", IMAGE, "cat"]),
        b"ignored\n",
        Duration::ZERO,
    );
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));
    // start -a -i.
    let o = d.berth(&[
        "create",
        "-i",
        "--name",
        "st",
        IMAGE,
        "sh",
        "-c",
        "read x; echo got $x; exit 2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_stdin(
        berth_cmd(&d, &["start", "-a", "-i", "st"]),
        b"foo\n",
        Duration::ZERO,
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (2, "got foo\n"),
        "{}",
        stderr(&o)
    );
    // The inspect view of -i.
    let o = d.berth(&[
        "inspect",
        "-f",
        "{{.Config.OpenStdin}} {{.Config.StdinOnce}} {{.Config.AttachStdin}}",
        "st",
    ]);
    assert_eq!(stdout(&o).trim(), "true true true");
}

#[test]
fn attach_clients() {
    require_root!();
    let d = Daemon::start("attach");
    let o = d.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "att",
        IMAGE,
        "sh",
        "-c",
        "while read l; do echo got:$l; done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Two watchers without stdin, one writer.
    let watchers: Vec<_> = (0..2)
        .map(|_| {
            berth_cmd(&d, &["attach", "--no-stdin", "att"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut writer = berth_cmd(&d, &["attach", "att"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writer.stdin.as_mut().unwrap().write_all(b"one\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The container ends: every client exits with its code.
    let o = d.berth(&["kill", "att"]);
    assert!(o.status.success());
    for w in watchers {
        let o = w.wait_with_output().unwrap();
        assert_eq!(stdout(&o), "got:one\n");
        assert_eq!(code(&o), 137);
    }
    drop(writer.stdin.take());
    let o = writer.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "got:one\n");

    let o = d.berth(&["attach", "att"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("start it first"), "{}", stderr(&o));
}

#[test]
fn docker_cli_stdin() {
    require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("skipping: docker CLI not installed");
        return;
    }
    let d = Daemon::start("stdin-docker");
    let mut c = Command::new("docker");
    c.args([
        "-H",
        &d.host(),
        "run",
        "-i",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "cat; exit 3",
    ]);
    let o = with_stdin(c, b"via docker\n", Duration::ZERO);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (3, "via docker\n"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "dc",
        IMAGE,
        "sh",
        "-c",
        "read l; echo got:$l",
    ]);
    assert!(o.status.success());
    // The end of stdin ends an attach without StdinOnce (dockerd): keep it
    // open until the output is there.
    let mut child = Command::new("docker")
        .args(["-H", &d.host(), "attach", "dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.stdin.as_mut().unwrap().write_all(b"x\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "got:x\n");
}

/// A CLI process on the slave side of a fresh pty (its controlling
/// terminal), driven through the master.
struct Term {
    master: std::fs::File,
    child: std::process::Child,
    seen: String,
}

fn set_size(fd: i32, rows: u16, cols: u16) {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    unsafe { nix::libc::ioctl(fd, nix::libc::TIOCSWINSZ, &ws) };
}

impl Term {
    fn spawn(program: &std::path::Path, args: &[&str]) -> Term {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).unwrap();
        set_size(pty.master.as_raw_fd(), 30, 90);
        let slave = std::fs::File::from(pty.slave);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::setsid();
                nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let fd = master.as_raw_fd();
        // SAFETY: fcntl on our own fd.
        unsafe {
            let fl = nix::libc::fcntl(fd, nix::libc::F_GETFL);
            nix::libc::fcntl(fd, nix::libc::F_SETFL, fl | nix::libc::O_NONBLOCK);
        }
        Term {
            master,
            child,
            seen: String::new(),
        }
    }

    fn send(&mut self, s: &[u8]) {
        self.master.write_all(s).unwrap();
    }

    /// Read until `needle` shows up after what was already consumed.
    fn expect(&mut self, needle: &str, secs: u64) {
        use std::io::Read;
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.find(needle) {
                self.seen.drain(..i + needle.len());
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {needle:?}; got {:?}",
                self.seen
            );
            match self.master.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        // The kernel sends SIGWINCH to the CLI (the foreground group).
        set_size(self.master.as_raw_fd(), rows, cols);
    }

    fn wait(mut self, secs: u64) -> i32 {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("CLI did not exit; output {:?}", self.seen);
            }
            // Keep draining so the CLI never blocks on output.
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut self.master, &mut buf);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn interactive_session(d: &Daemon, cli: &std::path::Path, name: &str) {
    let host = d.host();
    let mut t = Term::spawn(
        cli,
        &["-H", &host, "run", "-it", "--name", name, IMAGE, "sh"],
    );
    t.send(b"echo $((6*7))\r");
    t.expect("42", 20);
    // The initial size came from the CLI's terminal.
    t.send(b"stty size\r");
    t.expect("30 90", 10);
    t.resize(50, 120);
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"stty size\r");
    t.expect("50 120", 10);
    // ctrl-p ctrl-q: detach, the container keeps running.
    t.send(b"\x10\x11");
    assert_eq!(t.wait(10), 0);
    let o = d.berth(&["inspect", "-f", "{{.State.Running}}", name]);
    assert_eq!(stdout(&o).trim(), "true");
    // Attach again and leave with exit: the CLI exits with the code.
    let mut t = Term::spawn(cli, &["-H", &host, "attach", name]);
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"echo again-$((1+1))\r");
    t.expect("again-2", 10);
    t.send(b"exit 3\r");
    assert_eq!(t.wait(10), 3);
    // exec -it in a running container.
    let o = d.berth(&[
        "run",
        "-d",
        "--name",
        &format!("{name}-x"),
        IMAGE,
        "sleep",
        "60",
    ]);
    assert!(o.status.success());
    let mut t = Term::spawn(
        cli,
        &["-H", &host, "exec", "-it", &format!("{name}-x"), "sh"],
    );
    t.send(b"tty; stty size\r");
    t.expect("/dev/pts/", 10);
    t.expect("30 90", 10);
    t.send(b"exit 4\r");
    assert_eq!(t.wait(10), 4);
    // ctrl-p ctrl-q detaches from an exec too; the exec'd process lives on.
    let mut t = Term::spawn(
        cli,
        &[
            "-H",
            &host,
            "exec",
            "-it",
            &format!("{name}-x"),
            "sh",
            "-c",
            "echo ready; exec sleep 77",
        ],
    );
    t.expect("ready", 10);
    t.send(b"\x10\x11");
    t.wait(10);
    let o = d.berth(&["exec", &format!("{name}-x"), "ps"]);
    assert!(stdout(&o).contains("sleep 77"), "{}", stdout(&o));
}

#[test]
fn interactive_tty_berth() {
    require_root!();
    let d = Daemon::start("tty");
    interactive_session(&d, &bin("berth"), "it");
}

#[test]
fn interactive_tty_docker_cli() {
    require_root!();
    let Ok(docker) = which("docker") else {
        eprintln!("skipping: docker CLI not installed");
        return;
    };
    let d = Daemon::start("tty-docker");
    interactive_session(&d, &docker, "dit");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or(())
}

/// `attach --sig-proxy` (the default without a tty): a signal sent to the
/// CLI reaches the container, and attach exits with the container's code.
#[test]
fn attach_proxies_signals() {
    require_root!();
    let d = Daemon::start("sigproxy");
    let o = d.berth(&[
        "run",
        "-d",
        "--name",
        "sp",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got-term; exit 42' TERM; while true; do sleep 0.1; done",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // `attach` and `start -a` both forward the CLI's SIGTERM.
    for cmd in [&["attach", "sp"][..], &["start", "-a", "sp"][..]] {
        let child = Command::new(bin("berth"))
            .args(["-H", &d.host()])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "got-term\n",
            "{cmd:?}"
        );
        assert_eq!(out.status.code(), Some(42), "{cmd:?}");
    }
}
