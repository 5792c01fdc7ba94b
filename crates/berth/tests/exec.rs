//! End-to-end: `berth exec` / `docker exec` against real containers
//! (exit codes, -u/-w/-e, -d, -i with stdin, --privileged, exec inspect),
//! with berth-runtime in-process shims and with runc.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    let o = d.berth(&a);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

fn with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
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

/// The checks every runtime must pass.
/// `runc`: the runtime is runc (whose exec'd processes inherit its ignored
/// signal 32).
fn exec_suite(d: &Daemon, runc: bool) {
    run_d(d, &["--name", "ex", IMAGE, "sleep", "120"]);

    let o = d.berth(&["exec", "ex", "echo", "hi"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hi\n"),
        "{}",
        stderr(&o)
    );

    // Exit code and stream separation.
    let o = d.berth(&["exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(code(&o), 7);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");

    // Not found or not executable: 126 (dockerd's exec start failure),
    // message like dockerd's.
    let o = d.berth(&["exec", "ex", "nonexistent-cmd"]);
    assert_eq!(code(&o), 126, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("executable file not found in $PATH"),
        "{}",
        stdout(&o)
    );
    let o = d.berth(&["exec", "ex", "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}{}", stdout(&o), stderr(&o));

    // The container's seccomp filter applies to exec'd processes too, and
    // no fd of the shim or runtime leaks in (only ls's own directory fd 3).
    let o = d.berth(&["exec", "ex", "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(
        stdout(&o).split_whitespace().nth(1),
        Some("2"),
        "{}",
        stdout(&o)
    );
    // Nothing blocked or ignored is inherited from the shim.
    let o = d.berth(&[
        "exec",
        "ex",
        "grep",
        "-E",
        "^Sig(Blk|Ign):",
        "/proc/self/status",
    ]);
    let ign = if runc {
        "0000000080000000"
    } else {
        "0000000000000000"
    };
    assert_eq!(
        stdout(&o),
        format!("SigBlk:\t0000000000000000\nSigIgn:\t{ign}\n"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["exec", "ex", "ls", "/proc/self/fd"]);
    assert_eq!(stdout(&o), "0\n1\n2\n3\n", "{}", stderr(&o));
    // A missing working directory: runc's error, exit 126.
    let o = d.berth(&["exec", "-w", "/nonexistent-dir", "ex", "true"]);
    assert_eq!(code(&o), 126, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(r#"chdir to cwd ("/nonexistent-dir") set in config.json failed: no such file or directory"#),
        "{}",
        stdout(&o)
    );

    // -u / -w / -e (a missing working directory is created? no: docker fails).
    let o = d.berth(&[
        "exec",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "ex",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO",
    ]);
    assert_eq!(stdout(&o), "1000\n1000\n/tmp\nbar\n", "{}", stderr(&o));
    let o = d.berth(&["exec", "-u", "nobody", "ex", "id", "-un"]);
    assert_eq!(stdout(&o), "nobody\n", "{}", stderr(&o));

    // -i: stdin reaches the process and EOF ends it.
    let o = with_stdin(
        &mut berth_cmd(d, &["exec", "-i", "ex", "cat"]),
        b"hello\nworld\n",
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hello\nworld\n"),
        "{}",
        stderr(&o)
    );
    let o = with_stdin(
        &mut berth_cmd(d, &["exec", "-i", "ex", "sh", "-c", "wc -c; exit 3"]),
        &vec![b'x'; 200_000],
    );
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (3, "200000"),
        "{}",
        stderr(&o)
    );
    // Without -i the process sees EOF at once.
    let o = with_stdin(&mut berth_cmd(d, &["exec", "ex", "cat"]), b"ignored\n");
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));

    // -d: runs in the background.
    let o = d.berth(&["exec", "-d", "ex", "sleep", "31"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""), "{}", stderr(&o));
    let o = d.berth(&["exec", "ex", "ps"]);
    assert!(stdout(&o).contains("sleep 31"), "{}", stdout(&o));
    // The running exec shows in the container's ExecIDs.
    let o = d.berth(&["inspect", "-f", "{{len .ExecIDs}}", "ex"]);
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));

    // --privileged gets every capability.
    let caps = |args: &[&str]| {
        let o = d.berth(args);
        stdout(&o)
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let plain = caps(&["exec", "ex", "grep", "CapEff", "/proc/self/status"]);
    let privileged = caps(&[
        "exec",
        "--privileged",
        "ex",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(plain, "00000000a80425fb");
    assert_ne!(privileged, plain);

    // API: create, detached start, inspect.
    let (st, body) = d.http(
        "POST",
        "/containers/ex/exec",
        br#"{"Cmd":["sh","-c","exit 5"],"AttachStdout":true}"#,
    );
    assert_eq!(st, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = d.http("GET", &format!("/exec/{id}/json"), b"");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], false);
    assert!(v["ExitCode"].is_null());
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
    let (st, _) = d.http("POST", &format!("/exec/{id}/start"), br#"{"Detach":true}"#);
    assert_eq!(st, 200);
    assert!(eventually(5, || {
        let (_, body) = d.http("GET", &format!("/exec/{id}/json"), b"");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["ExitCode"] == 5 && v["Running"] == false && v["Pid"].as_u64().unwrap_or(0) > 0
    }));
    // An exec runs once.
    let (st, _) = d.http("POST", &format!("/exec/{id}/start"), br#"{"Detach":true}"#);
    assert_eq!(st, 409);
    let (st, _) = d.http("GET", "/exec/nope/json", b"");
    assert_eq!(st, 404);
    let (st, _) = d.http("POST", "/containers/ex/exec", br#"{"Cmd":[]}"#);
    assert_eq!(st, 400);

    // The failed execs left nothing behind: the container stops promptly.
    let t = std::time::Instant::now();
    let o = d.berth(&["rm", "-f", "ex"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));

    // A stopped container: error, exit 1.
    let o = d.berth(&["create", "--name", "stopped", IMAGE, "true"]);
    assert!(o.status.success());
    let o = d.berth(&["exec", "stopped", "true"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    let o = d.berth(&["exec", "missing", "true"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
}

#[test]
fn exec_berth_runtime() {
    require_root!();
    let d = Daemon::start("exec");
    exec_suite(&d, false);
}

#[test]
fn exec_runc() {
    require_root!();
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!("skipping: runc not installed");
        return;
    }
    let d = Daemon::start_with("exec-runc", &["--default-runtime", "runc"]);
    exec_suite(&d, true);
}

#[test]
fn exec_docker_cli() {
    require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("skipping: docker CLI not installed");
        return;
    }
    let d = Daemon::start("exec-docker");
    run_d(&d, &["--name", "dx", IMAGE, "sleep", "60"]);
    let o = d.docker(&["exec", "dx", "echo", "hi"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hi\n"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["exec", "dx", "sh", "-c", "echo e >&2; exit 4"]);
    assert_eq!((code(&o), stderr(&o).as_str()), (4, "e\n"));
    let mut c = Command::new("docker");
    c.args(["-H", &d.host(), "exec", "-i", "dx", "cat"]);
    let o = with_stdin(&mut c, b"from stdin\n");
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "from stdin\n"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["exec", "dx", "nonexistent-cmd"]);
    assert_eq!(code(&o), 126, "{}{}", stdout(&o), stderr(&o));
    let o = d.docker(&["exec", "-d", "dx", "sleep", "5"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = d.docker(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "dx",
        "sh",
        "-c",
        "id -un; pwd; echo $X",
    ]);
    assert_eq!(stdout(&o), "nobody\n/tmp\ny\n", "{}", stderr(&o));
}
