//! Mounts made after create, before start, in place of libcontainer's.
//!
//! libcontainer resolves and checks every mount of the spec through procfs
//! (pathrs: ~75 system calls a mount); for the mounts taken from the spec
//! here (`init_filter::Prepared`), the process that created the container
//! clones the sources on the host side (`open_tree`), joins init's mount
//! namespace, attaches them (`move_mount`) and returns to its own namespace
//! and working directory. Nothing of the container runs before start, so
//! the container sees what libcontainer would have made:
//! - the v1 `/sys/fs/cgroup` (`cgroup_mount::v1_trees`/`attach_v1`);
//! - `/dev/shm`, `/dev/mqueue` and (without a terminal) `/dev/pts`;
//! - binds of single host files (Docker's `/etc/hostname`, `/etc/hosts`,
//!   `/etc/resolv.conf`): the target is created inside the container's root
//!   if missing (parents 0755, file 0644); as this process's root is then
//!   the container's, any path or symlink in the image resolves inside it.

use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

/// What [`apply`] mounts.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LateMounts {
    /// The v1 `/sys/fs/cgroup`; `Some(readonly)`.
    pub cgroup_v1: Option<bool>,
    pub file_binds: Vec<FileBind>,
    pub dev_mounts: Vec<DevMount>,
}

/// A kernel file system below the container's `/dev` tmpfs: Docker's
/// `/dev/shm` (tmpfs), `/dev/mqueue` (of init's IPC namespace) and
/// `/dev/pts` (a new devpts instance; not with a terminal, which init sets
/// up at create).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DevMount {
    pub destination: PathBuf,
    pub fstype: String,
    pub source: String,
    pub flags: nix::mount::MsFlags,
    pub data: String,
}

/// A bind of one host file into the container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileBind {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
    /// `MS_PRIVATE` (`private`/`rprivate`), else `MS_SLAVE` (the rootfs's).
    pub private: bool,
}

impl LateMounts {
    pub(crate) fn is_empty(&self) -> bool {
        self.cgroup_v1.is_none() && self.file_binds.is_empty() && self.dev_mounts.is_empty()
    }
}

/// Make `late` in the mount namespace of `init` (created, not started).
/// The caller must be single-threaded (`setns(CLONE_NEWNS)`).
pub(crate) fn apply(init: Pid, late: &LateMounts) -> Result<(), String> {
    if late.is_empty() {
        return Ok(());
    }
    let ns = std::fs::File::open(format!("/proc/{init}/ns/mnt"))
        .map_err(|e| format!("open the mount namespace of {init}: {e}"))?;
    let cgroup_trees = match late.cgroup_v1 {
        Some(_) => crate::cgroup_mount::v1_trees(init)?,
        None => Vec::new(),
    };
    let mut file_trees = Vec::new();
    for b in &late.file_binds {
        let tree = berth_sys::mount::open_tree_clone(&b.source, false)
            .map_err(|e| format!("clone {}: {e}", b.source.display()))?;
        if b.readonly {
            berth_sys::mount::set_tree_readonly(&tree)
                .map_err(|e| format!("read-only {}: {e}", b.source.display()))?;
        }
        file_trees.push(tree);
    }
    // (init's IPC namespace, ours) for mqueue, opened here: inside, /proc
    // is the container's.
    let ipc = match late.dev_mounts.iter().any(|m| m.fstype == "mqueue") {
        true => Some((
            std::fs::File::open(format!("/proc/{init}/ns/ipc"))
                .map_err(|e| format!("open the IPC namespace of {init}: {e}"))?,
            std::fs::File::open("/proc/self/ns/ipc")
                .map_err(|e| format!("open our IPC namespace: {e}"))?,
        )),
        false => None,
    };
    berth_sys::mount::in_mount_namespace(&ns, || {
        if let Some(readonly) = late.cgroup_v1 {
            crate::cgroup_mount::attach_v1(&cgroup_trees, readonly)?;
        }
        for (b, tree) in late.file_binds.iter().zip(&file_trees) {
            attach_file(b, tree)?;
        }
        for m in &late.dev_mounts {
            mount_dev(m, ipc.as_ref())?;
        }
        Ok(())
    })
    .map_err(|e| format!("join or leave the mount namespace of {init}: {e}"))?
}

/// In the container's mount namespace: the target file (created if
/// missing), the bind, its propagation. A symlink at the destination is
/// followed (our root is the container's, so it resolves inside), and the
/// bind goes on its target, created if missing, as runc and libcontainer do.
fn attach_file(b: &FileBind, tree: &OwnedFd) -> Result<(), String> {
    let dest = resolve_symlinks(&b.destination)?;
    let what = |e: std::io::Error| format!("{}: {e}", dest.display());
    if std::fs::metadata(&dest).is_err() {
        if let Some(parent) = dest.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(what)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&dest)
            .map_err(what)?;
    }
    berth_sys::mount::move_tree(tree, &dest).map_err(what)?;
    let propagation = if b.private {
        nix::mount::MsFlags::MS_PRIVATE
    } else {
        nix::mount::MsFlags::MS_SLAVE
    };
    nix::mount::mount(
        None::<&str>,
        dest.as_path(),
        None::<&str>,
        propagation | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("propagation of {}: {e}", dest.display()))
}

/// In the container's mount namespace: the mount point inside its `/dev`
/// tmpfs, then the mount; `mqueue` from inside init's IPC namespace (`ipc`:
/// theirs, ours; the instance is the mounting process's), left again.
fn mount_dev(m: &DevMount, ipc: Option<&(std::fs::File, std::fs::File)>) -> Result<(), String> {
    let dest = &m.destination;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dest)
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let ipc = ipc.filter(|_| m.fstype == "mqueue");
    if let Some((theirs, _)) = ipc {
        setns(theirs, CloneFlags::CLONE_NEWIPC).map_err(|e| format!("join IPC namespace: {e}"))?;
    }
    let res = nix::mount::mount(
        Some(m.source.as_str()),
        dest.as_path(),
        Some(m.fstype.as_str()),
        m.flags,
        (!m.data.is_empty()).then_some(m.data.as_str()),
    )
    .map_err(|e| format!("mount {} on {}: {e}", m.fstype, dest.display()));
    if let Some((_, ours)) = ipc {
        setns(ours, CloneFlags::CLONE_NEWIPC)
            .map_err(|e| format!("return to our IPC namespace: {e}"))?;
    }
    res
}

/// Follow symlinks in the last component of `path` (at most 40).
fn resolve_symlinks(path: &Path) -> Result<PathBuf, String> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                p = match p.parent() {
                    Some(parent) if t.is_relative() => parent.join(t),
                    _ => t,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(format!(
        "{}: too many levels of symbolic links",
        path.display()
    ))
}
