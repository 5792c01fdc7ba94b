//! A read-only `/sys/fs/cgroup` (RES-18, ARCH-17): Docker's spec mounts it
//! `ro` for unprivileged containers and runc honours that; libcontainer 0.7
//! leaves the cgroup v1 hierarchies it mounts there writable, so a
//! container's root could raise its own limits (`pids.max`,
//! `memory.limit_in_bytes`, `cpu.shares`). After create, before start,
//! we remount every mount at or below `/sys/fs/cgroup` in the container's
//! mount namespace read-only (per mount point: `MS_BIND|MS_REMOUNT`, never
//! the shared cgroup superblock).

use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Whether `dest` is `/sys/fs/cgroup`.
pub(crate) fn is_cgroup_root(dest: &Path) -> bool {
    dest == Path::new(CGROUP_ROOT)
}

/// Remount `/sys/fs/cgroup` and everything below it read-only inside the
/// mount namespace of `init` (a created, not yet started container): this
/// process joins that namespace for the remounts and then returns to its
/// own, working directory included (no helper process to fork). The
/// caller must be single-threaded (`setns(CLONE_NEWNS)` refuses otherwise).
pub(crate) fn make_readonly(init: Pid) -> Result<(), String> {
    let ns = std::fs::File::open(format!("/proc/{init}/ns/mnt"))
        .map_err(|e| format!("open the mount namespace of {init}: {e}"))?;
    // Read from here: the container's /proc is of its own pid namespace.
    let info = std::fs::read_to_string(format!("/proc/{init}/mountinfo"))
        .map_err(|e| format!("read the mounts of {init}: {e}"))?;
    let mounts = cgroup_mounts(&info);
    if mounts.is_empty() {
        return Ok(());
    }
    let own = std::fs::File::open("/proc/self/ns/mnt")
        .map_err(|e| format!("open our mount namespace: {e}"))?;
    let cwd = std::fs::File::open(".").map_err(|e| format!("open the working directory: {e}"))?;
    let res = remount_in(&ns, &mounts);
    // Back home: our namespace's root, then our working directory.
    let back = setns(&own, CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("return to our mount namespace: {e}"))
        .and_then(|()| nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd)).map_err(|e| format!("fchdir: {e}")));
    match (res, back) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(format!("cannot make /sys/fs/cgroup read-only: {e}")),
        (Ok(()), Ok(())) => Ok(()),
    }
}

fn remount_in(ns: &std::fs::File, mounts: &[(String, String)]) -> Result<(), String> {
    setns(ns, CloneFlags::CLONE_NEWNS).map_err(|e| format!("join mount namespace: {e}"))?;
    for (point, opts) in mounts {
        let mut flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        for o in opts.split(',') {
            match o {
                "relatime" => flags |= MsFlags::MS_RELATIME,
                "noatime" => flags |= MsFlags::MS_NOATIME,
                "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
                "strictatime" => flags |= MsFlags::MS_STRICTATIME,
                _ => {}
            }
        }
        mount(
            None::<&str>,
            point.as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| format!("remount {point} read-only: {e}"))?;
    }
    Ok(())
}

/// (mount point, per-mount options) of the mounts at or below
/// `/sys/fs/cgroup` in a mountinfo text.
fn cgroup_mounts(info: &str) -> Vec<(String, String)> {
    info.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let point = f.nth(4)?;
            let opts = f.next()?;
            let inside = point == CGROUP_ROOT
                || point
                    .strip_prefix(CGROUP_ROOT)
                    .is_some_and(|r| r.starts_with('/'));
            inside.then(|| (point.to_string(), opts.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup_mounts_only() {
        let info = "\
113 112 0:47 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
114 113 0:29 /berth/x /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
115 112 0:30 / /sys/fs/cgroupfoo rw - tmpfs tmpfs rw
116 112 0:31 / /sys rw - sysfs sysfs rw
";
        let got = cgroup_mounts(info);
        assert_eq!(
            got,
            vec![
                (
                    "/sys/fs/cgroup".to_string(),
                    "rw,nosuid,nodev,noexec,relatime".to_string()
                ),
                ("/sys/fs/cgroup/cpu".to_string(), "rw,relatime".to_string()),
            ]
        );
    }
}
