//! berthd stops on SIGTERM even while clients hold attach streams open;
//! the container keeps running and the restarted daemon still knows it.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_with_open_attach_stream() {
    require_root!();
    let mut d = Daemon::start("shutdown");
    let o = d.berth(&["run", "-d", "--name", "held", IMAGE, "sleep", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut attach = Command::new(bin("berth"))
        .args(["-H", &d.host(), "attach", "held"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.pid();
    unsafe_free_kill(pid, "TERM");
    let t0 = Instant::now();
    let gone = eventually(10, || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    assert!(
        gone,
        "berthd still running {:?} after SIGTERM",
        t0.elapsed()
    );
    let _ = attach.kill();
    let _ = attach.wait();
    d.kill9(); // reap
    d.spawn();
    let ps = d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(stdout(&ps).contains("held Up"), "{}", stdout(&ps));
}

fn unsafe_free_kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}
