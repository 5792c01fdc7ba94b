//! Harness for end-to-end tests: a private berthd per test (own data root,
//! exec root and socket), the offline busybox image, and cleanup of
//! processes, mounts and cgroups even when a test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "berth-test/busybox";

pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|v| v.parse().unwrap_or(1)))
        })
        .unwrap_or(1)
}

/// Skip (pass with a message) when not root: CI runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipping: end-to-end tests need root");
            return;
        }
    };
}

pub fn bin(name: &str) -> PathBuf {
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let p = berth.parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// The offline test images, built once per test binary.
pub fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::temp_dir().join(format!("berth-e2e-images-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(root.join("scripts/mkimage.sh"))
            .arg(&dir)
            .output()
            .expect("run mkimage.sh");
        assert!(
            out.status.success(),
            "mkimage.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

pub struct Daemon {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub extra_args: Vec<String>,
    /// This daemon's default bridge and its --bip (unique per daemon, so
    /// that parallel tests never share a bridge, subnet or nft table).
    pub bridge: String,
    pub bip: String,
    /// Environment variables for berthd.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl Daemon {
    /// A fresh daemon with the busybox image loaded.
    pub fn start(tag: &str) -> Daemon {
        Self::start_with(tag, &[])
    }

    pub fn start_with(tag: &str, extra: &[&str]) -> Daemon {
        Self::start_with_env(tag, extra, &[])
    }

    /// [`Daemon::start_with`], berthd with these environment variables.
    pub fn start_with_env(tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("be-{}", unique(tag)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            sock: dir.join("berth.sock"),
            dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            bridge: format!("bt{:08x}", rand_u32()),
            bip: {
                let r = rand_u32();
                format!("10.{}.{}.1/24", 200 + (r % 50), (r >> 8) % 256)
            },
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        d.spawn();
        let out = d.berth(&[
            "load",
            "-i",
            images_dir().join("busybox.tar").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "load failed: {}", stderr(&out));
        d
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("berthd.log"))
            .unwrap();
        let child = Command::new(bin("berthd"))
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .args(self.network_args())
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not start: {}", self.log());
    }

    /// `--bridge`/`--bip` unless the test passes its own.
    fn network_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self
            .extra_args
            .iter()
            .any(|a| a == "--bridge" || a == "-b" || a.starts_with("--bridge="))
        {
            v.extend(["--bridge".to_string(), self.bridge.clone()]);
        }
        if !self
            .extra_args
            .iter()
            .any(|a| a == "--bip" || a.starts_with("--bip="))
        {
            v.extend(["--bip".to_string(), self.bip.clone()]);
        }
        v
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL the daemon (containers must survive).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("berthd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(bin("berth"))
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap()
    }

    /// `docker ARGS` that must succeed (the daemon log is shown otherwise);
    /// its trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\n{}",
            stderr(&o),
            self.log()
        );
        stdout(&o).trim().to_string()
    }

    /// A raw HTTP/1.1 request on the API socket: (status, body).
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Container ids known to the daemon's state directory.
    pub fn state_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        for d in [
            self.data_root().join("containers"),
            self.exec_root().join("containers"),
            self.data_root().join("image/snapshots"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&d) {
                v.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        v
    }
}

/// Shim processes whose command line mentions `needle`.
pub fn processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                found.push(format!("{name}: {c}"));
            }
        }
    }
    found
}

/// Mount points under `prefix` (from the host's mountinfo).
pub fn mounts_under(prefix: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = prefix.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&p))
        .map(String::from)
        .collect()
}

/// cgroup directories of a container, v1 (per controller) or v2.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join("berth").join(id);
            if p.exists() {
                v.push(p);
            }
        }
    }
    let v2 = Path::new("/sys/fs/cgroup/berth").join(id);
    if v2.exists() && !v.contains(&v2) {
        v.push(v2);
    }
    v
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Kill every container of this daemon, then the daemon, then sweep.
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq", "--no-trunc"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
            let _ = self.berth(&["network", "prune", "-f"]);
        }
        let ids: Vec<String> = std::fs::read_dir(self.data_root().join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        self.kill9();
        // Containers whose shim is gone: kill what is left in their cgroups.
        for id in &ids {
            for dir in cgroup_dirs(id) {
                if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.split_whitespace() {
                        let _ = Command::new("kill").arg("-9").arg(pid).status();
                    }
                }
            }
        }
        let marker = self.dir.to_string_lossy().into_owned();
        for p in processes_matching(&marker) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        for id in &ids {
            for dir in cgroup_dirs(id) {
                let _ = eventually(2, || std::fs::remove_dir(&dir).is_ok() || !dir.exists());
            }
        }
        // The default bridge and the nft table of this daemon.
        let bridge = self
            .extra_args
            .iter()
            .position(|a| a == "--bridge")
            .and_then(|i| self.extra_args.get(i + 1).cloned())
            .unwrap_or_else(|| self.bridge.clone());
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("berth-{bridge}")])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A random u32 from the kernel (no extra test dependency).
pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u32::from_le_bytes(b)
}

/// A free TCP port on the host.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` over HTTP/1.0 to ADDR (host:port), with 3 s timeouts.
pub fn http_get(addr: &str) -> Option<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Run a host command quietly; true if it succeeded.
pub fn run_quiet(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// This daemon's nftables table (`berth-<bridge>`), as `nft list` prints it.
pub fn nft_table(d: &Daemon) -> String {
    let o = Command::new("nft")
        .args(["list", "table", "ip", &format!("berth-{}", d.bridge)])
        .output()
        .unwrap();
    stdout(&o)
}

/// `ip -o link show master BRIDGE`: the links attached to a bridge.
pub fn veths_on(bridge: &str) -> String {
    let o = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    stdout(&o)
}

/// Assert that a command succeeded (printing its output otherwise) and
/// return its stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Wait until `f` holds, up to `secs`.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
