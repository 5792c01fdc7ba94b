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

const FAKE_HELPER: &str = r#"#!/usr/bin/env python3
# A docker-credential-helpers protocol peer that keeps secrets in files.
import hashlib, json, os, sys
d = os.environ["BERTH_CRED_DIR"]
act = sys.argv[1]
data = sys.stdin.read()
with open(os.path.join(d, "calls"), "a") as f:
    f.write(act + "\n")
def path(server):
    return os.path.join(d, hashlib.sha1(server.strip().encode()).hexdigest())
if act == "store":
    j = json.loads(data)
    with open(path(j["ServerURL"]), "w") as f:
        f.write(data)
elif act == "get":
    p = path(data)
    if not os.path.exists(p):
        print("credentials not found in native keychain")
        sys.exit(1)
    j = json.loads(open(p).read())
    print(json.dumps({"ServerURL": j["ServerURL"], "Username": j["Username"], "Secret": j["Secret"]}))
elif act == "erase":
    p = path(data)
    if os.path.exists(p):
        os.remove(p)
"#;

/// berth or docker with a private DOCKER_CONFIG and the fake helper on PATH.
fn cli(
    d: &Daemon,
    prog: &str,
    cfg: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let path = format!(
        "{}:{}",
        cfg.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let exe = if prog == "berth" {
        bin("berth")
    } else {
        std::path::PathBuf::from("docker")
    };
    let mut c = Command::new(exe)
        .arg("-H")
        .arg(d.host())
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .env("PATH", path)
        .env("BERTH_CRED_DIR", cfg.join("secrets"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut sin = c.stdin.take().unwrap();
        if let Some(i) = stdin {
            sin.write_all(i.as_bytes()).unwrap();
        }
    }
    c.wait_with_output().unwrap()
}

// REG-04/05: credsStore and credHelpers. berth login stores the secret with
// the helper (config.json keeps an empty entry, no plain-text warning);
// pushes and pulls ask the helper; the docker CLI's login through the same
// helper works for berth; logout erases.
#[test]
fn credential_helpers() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let reg = match Registry::start(Some(("alice", "s3cret"))) {
        Some(r) => r,
        None => return,
    };
    let host = reg.host();
    let d = Daemon::start("creds");
    let cfg = tempfile::tempdir().unwrap();
    let c = cfg.path();
    std::fs::create_dir_all(c.join("bin")).unwrap();
    std::fs::create_dir_all(c.join("secrets")).unwrap();
    let helper = c.join("bin/docker-credential-berthtest");
    std::fs::write(&helper, FAKE_HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let write_cfg = |v: serde_json::Value| {
        std::fs::write(c.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap()
    };
    let read_cfg = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(c.join("config.json")).unwrap()).unwrap()
    };
    let calls = || std::fs::read_to_string(c.join("secrets/calls")).unwrap_or_default();

    write_cfg(serde_json::json!({"credsStore": "berthtest"}));
    let o = cli(
        &d,
        "berth",
        c,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret\n"),
    );
    assert_eq!(ok(&o).trim(), "Login Succeeded");
    assert!(!stderr(&o).contains("unencrypted"), "{}", stderr(&o));
    assert_eq!(read_cfg()["auths"][&host], serde_json::json!({}));
    assert!(!std::fs::read_to_string(c.join("config.json"))
        .unwrap()
        .contains("s3cret"));
    assert!(calls().contains("store"));

    let r = format!("{host}/cred/img:1");
    ok(&d.berth(&["tag", IMAGE, &r]));
    ok(&cli(&d, "berth", c, &["push", &r], None));
    assert!(
        calls().contains("get"),
        "push asked the helper: {}",
        calls()
    );
    // The docker CLI reads the same helper.
    ok(&d.berth(&["rmi", &r]));
    ok(&cli(&d, "docker", c, &["pull", &r], None));

    // berth logout erases; pushes are refused afterwards.
    let o = cli(&d, "berth", c, &["logout", &host], None);
    assert_eq!(
        ok(&o).trim(),
        format!("Removing login credentials for {host}")
    );
    assert!(calls().contains("erase"));
    assert!(read_cfg()["auths"].get(&host).is_none());
    let o = cli(&d, "berth", c, &["push", &r], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no basic auth credentials"),
        "{}",
        stderr(&o)
    );

    // A login by the docker CLI through the helper, then berth pushes; a
    // per-registry credHelpers entry wins over credsStore.
    write_cfg(
        serde_json::json!({"credsStore": "nosuchhelper", "credHelpers": {host.clone(): "berthtest"}}),
    );
    let o = cli(
        &d,
        "docker",
        c,
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret\n"),
    );
    assert!(ok(&o).contains("Login Succeeded"));
    ok(&cli(&d, "berth", c, &["push", &r], None));
}

// IMG-09: on a terminal `berth pull` draws docker's live per-layer lines
// (cursor movement, `[===>  ]` bars with sizes); on a pipe it prints the
// status changes only.
#[test]
fn pull_progress_terminal_and_pipe() {
    require_root!();
    let reg = registry!();
    let host = reg.host();
    let d = Daemon::start("progress");
    let r = format!("{host}/progress/img:1");
    ok(&d.berth(&["tag", IMAGE, &r]));
    ok(&d.berth(&["push", &r]));
    ok(&d.berth(&["rmi", &r, IMAGE]));
    let cmd = format!("{} -H {} pull {r}", bin("berth").display(), d.host());
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{tty}");
    assert!(tty.contains("\x1b[2K"), "lines are redrawn: {tty:?}");
    assert!(
        tty.contains("Downloading [") && tty.contains("=>"),
        "bars: {tty:?}"
    );
    assert!(tty.contains("MB/"), "sizes: {tty:?}");
    assert!(tty.contains("Pull complete"), "{tty:?}");
    ok(&d.berth(&["rmi", &r]));
    let pipe = ok(&d.berth(&["pull", &r]));
    assert!(
        !pipe.contains('\x1b') && !pipe.contains("Downloading"),
        "{pipe}"
    );
    let id = pipe
        .lines()
        .find_map(|l| l.strip_suffix(": Pull complete"))
        .expect("a Pull complete line");
    assert!(
        pipe.contains(&format!("{id}: Pulling fs layer\n")),
        "{pipe}"
    );
    assert!(
        pipe.contains(&format!(
            "{id}: Verifying Checksum\n{id}: Download complete\n"
        )),
        "{pipe}"
    );
    assert!(
        pipe.contains("Digest: sha256:")
            && pipe.contains(&format!("Status: Downloaded newer image for {r}\n{r}\n")),
        "{pipe}"
    );
}
