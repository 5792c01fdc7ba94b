//! A read-only `/sys/fs/cgroup` (RES-18, ARCH-17): Docker's spec mounts it
//! `ro` for unprivileged containers and runc honours that; libcontainer 0.7
//! leaves the cgroup v1 hierarchies it mounts there writable, so a
//! container's root could raise its own limits (`pids.max`,
//! `memory.limit_in_bytes`, `cpu.shares`). After create, before start,
//! we remount every mount at or below `/sys/fs/cgroup` in the container's
//! mount namespace read-only (per mount point: `MS_BIND|MS_REMOUNT`, never
//! the shared cgroup superblock).
//!
//! On a cgroup v1 host without a cgroup namespace, [`v1_trees`] and
//! [`attach_v1`] (driven by `late_mounts`) also build
//! the whole `/sys/fs/cgroup` of a container after create, in place of
//! libcontainer (which checks every path of the ten mounts through procfs,
//! ~40% of its init's system calls): a tmpfs with each v1 hierarchy's
//! container cgroup bound below it, as libcontainer and runc lay it out.

use std::path::Path;

use nix::mount::{mount, MsFlags};
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
    berth_sys::mount::in_mount_namespace(&ns, || remount_readonly(&mounts))
        .map_err(|e| format!("join or leave the mount namespace of {init}: {e}"))
        .and_then(|r| r)
        .map_err(|e| format!("cannot make /sys/fs/cgroup read-only: {e}"))
}

/// `MS_BIND|MS_REMOUNT|MS_RDONLY` of each (mount point, options), keeping
/// its atime flags.
fn remount_readonly(mounts: &[(String, String)]) -> Result<(), String> {
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

/// One v1 hierarchy of the container's `/sys/fs/cgroup`: its name (the
/// host mount point's), the host mount's options, and a detached clone
/// (`open_tree`) of init's cgroup in it.
pub(crate) struct V1Bind {
    name: String,
    opts: String,
    tree: std::os::fd::OwnedFd,
}

/// Host side of the container's v1 `/sys/fs/cgroup` (libcontainer's
/// "emulated" layout, for a cgroup v1 host and no cgroup namespace): per v1
/// hierarchy mounted under the host's `/sys/fs/cgroup`, a clone of init's
/// cgroup in it. [`attach_v1`] mounts them in init's mount namespace.
pub(crate) fn v1_trees(init: Pid) -> Result<Vec<V1Bind>, String> {
    let own_info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read our mounts: {e}"))?;
    let init_cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup"))
        .map_err(|e| format!("read the cgroups of {init}: {e}"))?;
    let root_cgroups = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    let mut binds = Vec::new();
    for (point, opts) in v1_hierarchies(&own_info) {
        let Some(name) = point.rsplit('/').next().filter(|n| !n.is_empty()) else {
            continue;
        };
        let key = if name == "systemd" {
            "name=systemd"
        } else {
            name
        };
        let Some(path) = cgroup_path(&init_cgroups, &root_cgroups, key) else {
            tracing::warn!("no {key} cgroup for {init}: /sys/fs/cgroup/{name} left out");
            continue;
        };
        let source = format!("{point}/{}", path.trim_start_matches('/'));
        if source.split('/').any(|c| c == "..") {
            return Err(format!("bad cgroup path {path:?}"));
        }
        let tree = berth_sys::mount::open_tree_clone(Path::new(&source), true)
            .map_err(|e| format!("clone {source}: {e}"))?;
        binds.push(V1Bind {
            name: name.to_string(),
            opts,
            tree,
        });
    }
    Ok(binds)
}

/// In the container's mount namespace (the caller joined it): a tmpfs
/// (`noexec,nosuid,nodev,mode=755`) on `/sys/fs/cgroup`, the [`v1_trees`]
/// below it (slaves, as libcontainer's `rslave` rootfs), `cpu ->
/// cpu,cpuacct` links for co-mounted controllers, then read-only remounts
/// when `readonly` (as [`make_readonly`]).
pub(crate) fn attach_v1(binds: &[V1Bind], readonly: bool) -> Result<(), String> {
    let base = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        CGROUP_ROOT,
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(|e| format!("tmpfs on {CGROUP_ROOT}: {e}"))?;
    let mut mounts = vec![(CGROUP_ROOT.to_string(), "relatime".to_string())];
    for b in binds {
        let target = format!("{CGROUP_ROOT}/{}", b.name);
        nix::unistd::mkdir(
            target.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| format!("mkdir {target}: {e}"))?;
        berth_sys::mount::move_tree(&b.tree, Path::new(&target))
            .map_err(|e| format!("attach {target}: {e}"))?;
        // A clone of a shared host mount joins its peer group: make it a
        // slave, as libcontainer's `rslave` of the whole rootfs does.
        mount(
            None::<&str>,
            target.as_str(),
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("make {target} a slave: {e}"))?;
        if b.name.contains(',') {
            for comount in b.name.split(',') {
                let link = format!("{CGROUP_ROOT}/{comount}");
                std::os::unix::fs::symlink(&b.name, &link)
                    .map_err(|e| format!("symlink {link}: {e}"))?;
            }
        }
        mounts.push((target, b.opts.clone()));
    }
    if readonly {
        remount_readonly(&mounts)?;
    }
    Ok(())
}

/// Mount points and per-mount options of the v1 hierarchies (fs type
/// `cgroup`, not `cgroup2`) directly below `/sys/fs/cgroup`.
fn v1_hierarchies(info: &str) -> Vec<(String, String)> {
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split(' ').next()? != "cgroup" {
                return None;
            }
            let mut f = pre.split(' ');
            let point = f.nth(4)?;
            let opts = f.next()?;
            let rest = point.strip_prefix(CGROUP_ROOT)?.strip_prefix('/')?;
            (!rest.is_empty() && !rest.contains('/')).then(|| (point.to_string(), opts.to_string()))
        })
        .collect()
}

/// Init's path in the hierarchy whose controllers (joined by commas, or
/// `name=...`) are `key`, relative to pid 1's (when we run nested).
fn cgroup_path(init: &str, root: &str, key: &str) -> Option<String> {
    let find = |text: &str| {
        text.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            (ctrls == key).then(|| path.to_string())
        })
    };
    let path = find(init)?;
    let root = find(root).unwrap_or_default();
    Some(match path.strip_prefix(root.as_str()) {
        Some(rest) if !root.is_empty() && root != "/" => {
            if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            }
        }
        _ => path,
    })
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
