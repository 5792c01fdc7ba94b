//! berthd's registry settings end to end (CFG registry-mirrors,
//! insecure-registries, max-concurrent-downloads) with the docker CLI, and a
//! pull interrupted by `kill -9` of the daemon (the store stays consistent,
//! the next pull finishes the job). Registries run on 127.0.0.1 only.

mod common;
#[path = "../../image/tests/support/registry.rs"]
mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use support::Registry;

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

macro_rules! registry {
    () => {
        match Registry::start(None) {
            Some(r) => r,
            None => {
                eprintln!("skipping: docker-registry not installed");
                return;
            }
        }
    };
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// CFG registry-mirrors / insecure-registries: `docker pull NAME` of a
// docker.io name comes from the second mirror (the first is dead), and
// `docker info` lists the settings like dockerd. Settings from daemon.json.
#[test]
fn mirrors_and_insecure_registries_from_daemon_json() {
    require_root!();
    let reg = registry!();
    let host = reg.host();
    let src = Daemon::start("mirror-src");
    ok(&src.berth(&["tag", IMAGE, &format!("{host}/library/mirrored:1")]));
    ok(&src.berth(&["push", &format!("{host}/library/mirrored:1")]));

    let mut d = Daemon::start("mirror");
    let dead = format!("http://127.0.0.1:{}", dead_port());
    std::fs::write(
        d.dir.join("daemon.json"),
        serde_json::to_vec(&serde_json::json!({
            "registry-mirrors": [dead, format!("http://{host}")],
            "insecure-registries": ["myreg.example:5000", "10.99.0.0/16"],
            "max-concurrent-downloads": 2,
        }))
        .unwrap(),
    )
    .unwrap();
    d.kill9();
    d.spawn();
    let info = ok(&d.docker(&["info"]));
    let want = format!(
        " Insecure Registries:\n  myreg.example:5000\n  10.99.0.0/16\n  127.0.0.0/8\n Registry Mirrors:\n  {dead}/\n  http://{host}/\n"
    );
    assert!(info.contains(&want), "docker info:\n{info}");
    let pulled = ok(&d.docker(&["pull", "mirrored:1"]));
    assert!(
        pulled.contains("Status: Downloaded newer image for mirrored:1"),
        "{pulled}"
    );
    assert!(
        pulled.trim_end().ends_with("docker.io/library/mirrored:1"),
        "{pulled}"
    );
    let out = ok(&d.docker(&["run", "--rm", "mirrored:1", "echo", "via mirror"]));
    assert_eq!(out.trim(), "via mirror");
    let digests = ok(&d.berth(&["inspect", "-f", "{{json .RepoDigests}}", "mirrored:1"]));
    assert!(digests.contains("\"mirrored@sha256:"), "{digests}");
}

// Bad configuration is refused at start with dockerd's messages.
#[test]
fn bad_registry_settings_are_refused() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let run = |json: &str, extra: &[&str]| -> Output {
        let cfg = dir.path().join("daemon.json");
        std::fs::write(&cfg, json).unwrap();
        Command::new(bin("berthd"))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("s.sock").display()))
            .arg("--config-file")
            .arg(&cfg)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(r#"{"registry-mirrors": ["ftp://mirror.example"]}"#, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("invalid mirror: unsupported scheme \"ftp\" in \"ftp://mirror.example\""),
        "{}",
        stderr(&o)
    );
    let o = run(r#"{"registry-mirrors": ["https://m.example/v2"]}"#, &[]);
    assert!(
        stderr(&o).contains("invalid mirror: path, query, or fragment at end of the URI"),
        "{}",
        stderr(&o)
    );
    let o = run(
        r#"{"max-concurrent-downloads": 4}"#,
        &["--max-concurrent-downloads", "2"],
    );
    assert!(
        stderr(&o).contains("the following directives are specified both as a flag and in the configuration file: max-concurrent-downloads"),
        "{}",
        stderr(&o)
    );
    let o = run(r#"{"registry-mirror": ["https://m.example"]}"#, &[]);
    assert!(!o.status.success(), "unknown keys are refused");
}

/// A docker-save archive with one 48 MiB incompressible layer.
fn big_archive(dir: &std::path::Path) -> std::path::PathBuf {
    let py = r#"
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
data = os.urandom(48 << 20)
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as t:
    ti = tarfile.TarInfo("big.bin"); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
    t.addfile(ti, io.BytesIO(data))
lb = layer.getvalue()
diff = "sha256:" + hashlib.sha256(lb).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(out, "w") as t:
    def add(name, b):
        ti = tarfile.TarInfo(name); ti.size = len(b); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(b))
    add("layer/layer.tar", lb)
    add(cid + ".json", cfg)
    add("manifest.json", json.dumps([{"Config": cid + ".json", "RepoTags": ["big/img:1"],
                                       "Layers": ["layer/layer.tar"]}]).encode())
"#;
    let out = dir.join("big.tar");
    let o = Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

// Crash safety: berthd killed with -9 while a pull is downloading leaves no
// image, no temp file and no half layer; the next pull completes.
#[test]
fn pull_interrupted_by_kill9_then_completes() {
    require_root!();
    let reg = registry!();
    let host = reg.host();
    let tmp = tempfile::tempdir().unwrap();
    let src = Daemon::start("kill-src");
    ok(&src.berth(&["load", "-i", big_archive(tmp.path()).to_str().unwrap()]));
    let r = format!("{host}/big/img:1");
    ok(&src.berth(&["tag", "big/img:1", &r]));
    ok(&src.berth(&["push", &r]));

    let mut d = Daemon::start("kill-pull");
    let before_layers = std::fs::read_dir(d.data_root().join("image/layers"))
        .unwrap()
        .count();
    let mut pull = Command::new(bin("berth"))
        .args(["-H", &d.host(), "pull", &r])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being downloaded, then kill the daemon.
    let tmpdir = d.data_root().join("image/tmp");
    let t0 = Instant::now();
    let mut seen = false;
    while t0.elapsed() < Duration::from_secs(30) {
        let partial = std::fs::read_dir(&tmpdir)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false);
        if partial {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(seen, "the pull never started downloading");
    d.kill9();
    let _ = pull.wait();
    d.spawn();
    let images = ok(&d.berth(&["images", "-q", &r]));
    assert!(
        images.trim().is_empty(),
        "no half-registered image: {images}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().flatten().collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    let layers: Vec<String> = std::fs::read_dir(d.data_root().join("image/layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(layers.len(), before_layers, "no half layer: {layers:?}");
    let out = ok(&d.berth(&["pull", &r]));
    assert!(out.contains("Pull complete"), "{out}");
    // The layer is complete on disk.
    let big: Vec<u64> = std::fs::read_dir(d.data_root().join("image/layers"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("diff/big.bin")).ok())
        .map(|m| m.len())
        .collect();
    assert_eq!(big, vec![48 << 20]);
    let ids = |dd: &Daemon| ok(&dd.berth(&["inspect", "-f", "{{.Id}} {{.RootFS.Layers}}", &r]));
    assert_eq!(ids(&d), ids(&src));
}
