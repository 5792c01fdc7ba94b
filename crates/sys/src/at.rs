//! File descriptor based path resolution: `openat2(RESOLVE_IN_ROOT)` and
//! `openat` returning owned descriptors. Callers that walk a container's
//! filesystem (copy-up, `cp`, `export`) resolve every path through these so
//! a symlink planted in the container (absolute, `../..`, or swapped in
//! while we work) is resolved as if the container root were `/` and can
//! never lead outside it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Open a host directory (O_PATH|O_DIRECTORY|O_CLOEXEC): a root for
/// [`open_in_root`].
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
/// `path` (absolute or relative) is resolved inside `root`; `..` and
/// absolute symlinks stop at `root`. With `follow_last == false` the last
/// component is not followed (`O_NOFOLLOW`; with `O_PATH` that opens a
/// symlink itself). O_CLOEXEC is always added.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    follow_last: bool,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstr(rel)?;
    let mut flags = flags | libc::O_CLOEXEC;
    if !follow_last {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid directory descriptor, a NUL-terminated path and a
    // correctly sized open_how, all alive for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW, mode)` for one path
/// component: never follows a symlink.
pub fn open_child(dir: BorrowedFd<'_>, name: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid directory descriptor and NUL-terminated name alive for
    // the call; `mode` is only read with O_CREAT.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N`: a path naming exactly the open file, for APIs that
/// need a path (mount targets, std::fs on an already resolved file).
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether the kernel has openat2 (Linux 5.6+).
pub fn has_openat2() -> bool {
    open_dir(Path::new("/"))
        .and_then(|r| {
            use std::os::fd::AsFd;
            open_in_root(r.as_fd(), Path::new("."), libc::O_PATH, 0, true)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("berth-sys-at-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/etc")).unwrap();
        std::fs::write(dir.join("root/etc/passwd"), b"inside").unwrap();
        std::fs::write(dir.join("outside"), b"outside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("root/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", dir.join("root/up")).unwrap();
        let root = open_dir(&dir.join("root")).unwrap();
        let read = |p: &str| {
            let fd = open_in_root(root.as_fd(), Path::new(p), libc::O_RDONLY, 0, true)?;
            std::fs::read(fd_path(fd.as_fd()))
        };
        assert_eq!(read("/abs").unwrap(), b"inside");
        assert!(read("/up").is_err(), "../ must not leave the root");
        assert!(read("../outside").is_err());
        // Without following, O_PATH opens the link itself.
        let l = open_in_root(root.as_fd(), Path::new("abs"), libc::O_PATH, 0, false).unwrap();
        let m = std::fs::symlink_metadata(fd_path(l.as_fd())).unwrap();
        assert!(m.file_type().is_symlink() || m.is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `lgetxattr(path, name)`: the value, or None when the attribute is absent
/// (or the filesystem has no xattrs). Never follows a final symlink.
pub fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cstr(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid NUL-terminated path and name; `buf` is writable for
        // `buf.len()` bytes for the duration of the call.
        let r = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                n.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < (1 << 16) => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}
