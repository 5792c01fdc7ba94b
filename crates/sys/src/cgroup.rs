//! The daemon's reads and writes of a container's cgroup files (`update`,
//! `top`, `pause` checks). Containers live in `/berth/<id>` under each v1
//! controller, or in `/sys/fs/cgroup/berth/<id>` on a unified (v2) host.

use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Whether the host mounts cgroup v2 alone at `/sys/fs/cgroup`.
pub fn is_unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The cgroup of `rel` (e.g. `berth/<id>`): on v2 the one directory, on v1
/// the directory under `controller` (`memory`, `cpu`, `pids`, `freezer`).
pub fn dir(rel: &str, controller: &str) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let p = if is_unified() {
        Path::new(ROOT).join(rel)
    } else {
        Path::new(ROOT).join(controller).join(rel)
    };
    p.is_dir().then_some(p)
}

/// Read a cgroup file, trimmed.
pub fn read(dir: &Path, file: &str) -> io::Result<String> {
    std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_string())
}

/// Write a value to a cgroup file (no truncation or creation: cgroupfs).
pub fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))?;
    f.write_all(value.as_bytes())
}

/// All process ids in the cgroup of `rel` (host pid namespace), sorted.
pub fn pids(rel: &str) -> io::Result<Vec<u32>> {
    let d = ["pids", "memory", "freezer", "cpu"]
        .iter()
        .find_map(|c| dir(rel, c))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cgroup {rel}")))?;
    let mut v: Vec<u32> = read(&d, "cgroup.procs")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Freezer state: "FROZEN", "THAWED", "FREEZING" (v1), or from v2's
/// `cgroup.freeze` ("1" → FROZEN).
pub fn freezer_state(rel: &str) -> Option<String> {
    let d = dir(rel, "freezer")?;
    if is_unified() {
        return read(&d, "cgroup.freeze")
            .ok()
            .map(|v| if v == "1" { "FROZEN" } else { "THAWED" }.to_string());
    }
    read(&d, "freezer.state").ok()
}
