//! Helpers for the real-container tests: busybox OCI bundles, timed runs,
//! cleanup guards. Tests need root; they skip (pass with a message) if not.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
pub const RUNC: &str = "/usr/sbin/runc";
/// Docker's default CapEff (RES-17).
pub const DOCKER_CAPEFF: &str = "00000000a80425fb";

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "hostname", "ls", "ip", "id", "pwd", "env", "head", "tr", "sleep", "seq",
    "grep", "awk", "wc", "true", "false", "mount", "ps", "cut", "touch", "mkdir", "ulimit",
];

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skip a test that needs root (and busybox/runc) with a clear message.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() || !std::path::Path::new("/bin/busybox").exists() {
            eprintln!("SKIP: this test needs root and /bin/busybox (CI runs as root)");
            return;
        }
    };
}

/// A unique id for this test process and name.
pub fn unique(name: &str) -> String {
    format!("bt-{name}-{}", std::process::id())
}

/// A busybox bundle in a temp dir; removed (with its containers) on drop.
pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    pub root_berth: PathBuf,
    pub root_runc: PathBuf,
}

impl Bundle {
    /// Bundle whose config is our `spec` output made Docker-like.
    pub fn new(name: &str, args: &[&str]) -> Bundle {
        let id = unique(name);
        let dir = PathBuf::from(format!("/tmp/{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        make_rootfs(&dir.join("rootfs"));
        let b = Bundle {
            root_berth: dir.join("state-berth"),
            root_runc: dir.join("state-runc"),
            id,
            dir,
        };
        let mut cfg = serde_json::to_value(berth_runtime::default_spec()).unwrap();
        docker_like(&mut cfg, &b.id, args);
        b.write_config(&cfg);
        b
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("config.json")).unwrap()).unwrap()
    }

    pub fn write_config(&self, cfg: &Value) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(cfg).unwrap(),
        )
        .unwrap();
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        self.write_config(&c);
    }

    pub fn cgroup_rel(&self) -> String {
        format!("berth-test/{}", self.id)
    }

    /// `<runtime> --root R run --bundle B <id>` with a timeout.
    pub fn run(&self, runtime: &str, timeout: Duration) -> Output {
        let root = self.root_for(runtime);
        let mut cmd = Command::new(runtime);
        cmd.arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(&self.id);
        let out = run_timeout(cmd, timeout);
        if out.timed_out {
            force_delete(runtime, &root, &self.id);
        }
        out
    }

    /// `<runtime> --root R ARGS` with a timeout.
    pub fn cli(&self, runtime: &str, args: &[&str]) -> Output {
        let mut c = Command::new(runtime);
        c.arg("--root").arg(self.root_for(runtime)).args(args);
        run_timeout(c, Duration::from_secs(30))
    }

    /// `<runtime> --root R create --bundle B EXTRA ID`. The init inherits
    /// create's stdio: no pipes are left to it.
    pub fn create(&self, runtime: &str, extra: &[&str]) -> std::process::ExitStatus {
        Command::new(runtime)
            .arg("--root")
            .arg(self.root_for(runtime))
            .args(["create", "--bundle"])
            .arg(&self.dir)
            .args(extra)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
    }

    pub fn root_for(&self, runtime: &str) -> PathBuf {
        if runtime == RUNC {
            self.root_runc.clone()
        } else {
            self.root_berth.clone()
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        force_delete(BIN, &self.root_berth, &self.id);
        if Path::new(RUNC).exists() {
            force_delete(RUNC, &self.root_runc, &self.id);
        }
        let rootfs = self.dir.join("rootfs");
        for _ in 0..4 {
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
        for d in cgroup_dirs(&self.cgroup_rel()) {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn force_delete(runtime: &str, root: &Path, id: &str) {
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// All existing v1 controller dirs (or the v2 dir) for a cgroup path.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join(rel);
            if p.exists() {
                v.push(p);
            }
        }
    }
    let p = Path::new("/sys/fs/cgroup").join(rel);
    if p.exists() && !v.contains(&p) {
        v.push(p);
    }
    v
}

pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "work-dir"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in APPLETS {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

/// Turn a default spec into what Docker generates for `docker run`.
pub fn docker_like(cfg: &mut Value, id: &str, args: &[&str]) {
    let caps: Vec<&str> = berth_runtime::spec::DOCKER_CAPABILITIES.to_vec();
    cfg["hostname"] = json!(format!("h-{}", &id[..id.len().min(40)]));
    cfg["process"] = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"],
        "cwd": "/work-dir",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true
    });
    cfg["root"] = json!({"path": "rootfs", "readonly": false});
    cfg["mounts"] = json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
    ]);
    let linux = &mut cfg["linux"];
    linux["cgroupsPath"] = json!(format!("/berth-test/{id}"));
    linux["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
        {"type": "network"}, {"type": "cgroup"}
    ]);
    linux["maskedPaths"] = json!(berth_runtime::spec::DOCKER_MASKED_PATHS);
    linux["readonlyPaths"] = json!(berth_runtime::spec::DOCKER_READONLY_PATHS);
    linux["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 64 << 20, "swap": 64 << 20},
        "pids": {"limit": 100}
    });
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "code={:?} timed_out={} stdout=<<{}>> stderr=<<{}>>",
            self.code, self.timed_out, self.stdout, self.stderr
        )
    }
}

pub fn run_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let (tx_o, rx_o) = std::sync::mpsc::channel();
    let (tx_e, rx_e) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        let _ = tx_o.send(s);
    });
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        let _ = tx_e.send(s);
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    // A process left behind (e.g. a created init) may hold the pipes open.
    let wait = Duration::from_secs(if timed_out { 0 } else { 5 });
    let stdout = rx_o.recv_timeout(wait).unwrap_or_default();
    let stderr = rx_e.recv_timeout(wait).unwrap_or_default();
    Output {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        elapsed,
    }
}

/// `key=value` lines of a probe script's output.
pub fn kv(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub fn runtimes() -> Vec<&'static str> {
    if Path::new(RUNC).exists() {
        vec![BIN, RUNC]
    } else {
        eprintln!("note: {RUNC} missing; testing berth-runtime only");
        vec![BIN]
    }
}
