//! Mount table queries and unmounting.

use std::io;
use std::path::Path;

use nix::mount::{umount2, MntFlags};

/// Mount points (field 5 of /proc/self/mountinfo) at or below `prefix`,
/// deepest first.
pub fn mounts_under(prefix: &Path) -> io::Result<Vec<String>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = prefix.to_string_lossy();
    let mut found: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_octal)
        .filter(|m| m == prefix.as_ref() || m.starts_with(&format!("{prefix}/")))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    Ok(found)
}

/// Lazily unmount everything at or below `prefix`. Missing mounts are fine.
pub fn unmount_all(prefix: &Path) -> io::Result<()> {
    for m in mounts_under(prefix)? {
        match umount2(m.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_octal(r"/a\040b"), "/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }

    #[test]
    fn root_is_mounted() {
        assert!(mounts_under(Path::new("/"))
            .unwrap()
            .iter()
            .any(|m| m == "/"));
    }
}

/// Bind-mount the file `src` read-only at `dst` (created if missing),
/// replacing whatever was mounted there before. Processes exec'd from
/// `dst` cannot have their binary rewritten through `/proc/<pid>/exe`
/// (CVE-2019-5736): writes fail with EROFS.
pub fn bind_file_readonly(src: &Path, dst: &Path) -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    unmount_all(dst)?;
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dst)?;
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Err(e) = mount(None::<&str>, dst, None::<&str>, ro, None::<&str>) {
        let _ = umount2(dst, MntFlags::MNT_DETACH);
        return Err(io::Error::from(e));
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Whether `path` is the root of a mount (statx `STATX_ATTR_MOUNT_ROOT`).
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let c = c_path(path)?;
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` outlives the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            0,
            &mut st,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 == 0 {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0)
}

/// Make the directory `dir` a mount point (a bind mount onto itself) so its
/// submounts can be dropped as one subtree in a private mount namespace
/// (see [`enter_pruned_namespace`]). Nothing is done when it already is one,
/// or when it holds mounts: a bind over them would hide them.
pub fn ensure_mount_point(dir: &Path) -> io::Result<bool> {
    use nix::mount::{mount, MsFlags};
    if is_mount_point(dir)? {
        return Ok(true);
    }
    if mounts_under(dir)?.iter().any(|m| Path::new(m) != dir) {
        return Ok(false);
    }
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)?;
    Ok(true)
}

/// Put a tmpfs (mode 0755, nosuid, nodev) on `dir` for state that must
/// not outlive a reboot (like a distribution's `/run`), unless `dir` is on
/// a tmpfs already (a restarted daemon finds its own) or holds anything (state
/// of an earlier daemon on disk, which a mount would hide). Returns whether
/// it mounted.
pub fn ensure_tmpfs(dir: &Path) -> io::Result<bool> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(dir)?;
    let st = nix::sys::statfs::statfs(dir).map_err(io::Error::from)?;
    if st.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        return Ok(false);
    }
    if std::fs::read_dir(dir)?.next().is_some() || !mounts_under(dir)?.is_empty() {
        return Ok(false);
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(io::Error::from)?;
    Ok(true)
}

/// Move the calling thread (with `CLONE_FS` unshared: a fresh thread or a
/// single-threaded process) into a new mount namespace whose `/` is a
/// recursive slave: host mounts still arrive, nothing mounted here leaves.
pub fn enter_private_namespace() -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Move the calling process into a new mount namespace that lacks every
/// mount below the mount points `prune` except those at `keep` (each
/// with what is mounted below it). `/` becomes a recursive slave first, so
/// nothing done here reaches the host. The process must be single-threaded.
///
/// A runtime create reads /proc/self/mountinfo several times (libcontainer
/// up to ~16 times on a cgroup v1 host) and its init copies the namespace:
/// without the rootfs and netns mounts of every other container that is
/// O(1) per container instead of O(containers).
pub fn enter_pruned_namespace(prune: &[&Path], keep: &[&Path]) -> io::Result<()> {
    let mut trees = Vec::new();
    for k in keep {
        if prune.iter().any(|p| k.starts_with(p)) && is_mount_point(k)? {
            trees.push((open_tree_clone(k, true)?, *k));
        }
    }
    enter_private_namespace()?;
    for p in prune {
        if is_mount_point(p)? {
            umount2(*p, MntFlags::MNT_DETACH).map_err(io::Error::from)?;
        }
    }
    for (tree, target) in trees {
        move_tree(&tree, target)?;
    }
    Ok(())
}

/// A detached copy (`open_tree(OPEN_TREE_CLONE)`) of the mount at `path`,
/// with everything below it when `recursive`.
pub fn open_tree_clone(path: &Path, recursive: bool) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = c_path(path)?;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `c` is NUL-terminated; open_tree returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach a detached mount tree (from [`open_tree_clone`]) at `target`.
pub fn move_tree(tree: &std::os::fd::OwnedFd, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let c = c_path(target)?;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // SAFETY: both strings are NUL-terminated, the fd is open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kernel `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(MOUNT_ATTR_RDONLY)` on a detached tree: only the
/// read-only flag changes (the source mount's atime and other flags stay).
pub fn set_tree_readonly(tree: &std::os::fd::OwnedFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our descriptor with a valid, correctly sized
    // `struct mount_attr` that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` inside the mount namespace `ns`, then return to ours and to our
/// working directory (`setns` moves both root and cwd). The process must
/// be single-threaded. `Err` if joining or returning failed; `f`'s own
/// result is inside `Ok`.
pub fn in_mount_namespace<T>(ns: &std::fs::File, f: impl FnOnce() -> T) -> io::Result<T> {
    use nix::sched::{setns, CloneFlags};
    use std::os::fd::AsRawFd;
    let own = std::fs::File::open("/proc/self/ns/mnt")?;
    let cwd = std::fs::File::open(".")?;
    setns(ns, CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    let out = f();
    setns(&own, CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    nix::unistd::fchdir(cwd.as_raw_fd()).map_err(io::Error::from)?;
    Ok(out)
}

#[cfg(test)]
mod mount_point_tests {
    use super::*;

    #[test]
    fn mount_points_are_told_apart() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        assert!(!is_mount_point(Path::new("/proc/self/fd")).unwrap());
    }
}
