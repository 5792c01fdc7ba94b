//! Network namespaces the daemon creates itself (NET-21): a namespace is
//! kept alive by a bind mount of its nsfs inode onto a file, so the
//! container's OCI spec can join it by path and the daemon can configure
//! it before the container starts and tear it down after it exits.
//!
//! Every switch of namespace happens on a dedicated short-lived OS thread:
//! `unshare`/`setns` change only the calling thread, and an async worker
//! thread must never end up in another namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Create a new network namespace and pin it at `path` (a regular file is
/// created there). Loopback is down in a fresh namespace.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path)?;
    let target = path.to_path_buf();
    let result = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?;
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Unpin and delete a namespace file made by [`create`]. Missing is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::from(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `path` is a pinned namespace (a mount point of nsfs).
pub fn is_pinned(path: &Path) -> bool {
    crate::mount::mounts_under(path)
        .map(|m| m.iter().any(|p| Path::new(p) == path))
        .unwrap_or(false)
}

/// Run `f` on a fresh thread that has joined the network namespace at
/// `path` (a pinned file or `/proc/<pid>/ns/net`). Sockets created by `f`
/// stay in that namespace after the thread ends.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let ns = File::open(path)?;
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<T> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("join network namespace {}: {e}", path.display()),
            )
        })?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}
