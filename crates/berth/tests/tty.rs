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
    assert_eq!((code(&o), stdout(&o).as_str()), (0, "hi\n"), "{}", stderr(&o));
    // Large input, exit code of the container.
    let big = vec![b'y'; 300_000];
    let o = with_stdin(
        berth_cmd(&d, &["run", "-i", IMAGE, "sh", "-c", "wc -c; exit 9"]),
        &big,
        Duration::ZERO,
    );
    assert_eq!((code(&o), stdout(&o).trim()), (9, "300000"), "{}", stderr(&o));
    // Without -i the container's stdin is /dev/null.
    let o = with_stdin(
        berth_cmd(&d, &["run", "--rm", IMAGE, "cat"]),
        b"ignored\n",
        Duration::ZERO,
    );
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));
    // start -a -i.
    let o = d.berth(&["create", "-i", "--name", "st", IMAGE, "sh", "-c", "read x; echo got $x; exit 2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_stdin(berth_cmd(&d, &["start", "-a", "-i", "st"]), b"foo\n", Duration::ZERO);
    assert_eq!((code(&o), stdout(&o).as_str()), (2, "got foo\n"), "{}", stderr(&o));
    // The inspect view of -i.
    let o = d.berth(&["inspect", "-f", "{{.Config.OpenStdin}} {{.Config.StdinOnce}} {{.Config.AttachStdin}}", "st"]);
    assert_eq!(stdout(&o).trim(), "true true true");
}

#[test]
fn attach_clients() {
    require_root!();
    let d = Daemon::start("attach");
    let o = d.berth(&["run", "-d", "-i", "--name", "att", IMAGE, "sh", "-c", "while read l; do echo got:$l; done"]);
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
    c.args(["-H", &d.host(), "run", "-i", "--rm", IMAGE, "sh", "-c", "cat; exit 3"]);
    let o = with_stdin(c, b"via docker\n", Duration::ZERO);
    assert_eq!((code(&o), stdout(&o).as_str()), (3, "via docker\n"), "{}", stderr(&o));
    let o = d.berth(&["run", "-d", "-i", "--name", "dc", IMAGE, "sh", "-c", "read l; echo got:$l"]);
    assert!(o.status.success());
    let mut c = Command::new("docker");
    c.args(["-H", &d.host(), "attach", "dc"]);
    let o = with_stdin(c, b"x\n", Duration::from_millis(300));
    assert_eq!(stdout(&o), "got:x\n", "{}", stderr(&o));
}
