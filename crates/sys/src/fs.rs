//! Crash-safe file writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `data` to `path` atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory. Readers see the old or the new
/// content, never a mix, even after a crash.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_replace(path, data, mode, true)
}

/// Like [`write_atomic`] but without fsync: for files that are rebuilt on
/// every start (bundle config, /etc/hosts of a container). A killed process
/// still never leaves a torn file; a power loss may lose the update.
pub fn write_volatile(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_replace(path, data, mode, false)
}

fn write_replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("berth-sys-fs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spread_subdirs_sets_topdir_where_the_filesystem_has_it() {
        // Beside the test binary: a disk filesystem, unlike a tmpfs /tmp.
        let exe = std::env::current_exe().unwrap();
        let dir = exe
            .parent()
            .unwrap()
            .join(format!("spread-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let res = spread_subdirs(&dir);
        let st = nix::sys::statfs::statfs(&dir).unwrap();
        if st.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC {
            res.unwrap();
            let out = std::process::Command::new("lsattr")
                .arg("-d")
                .arg(&dir)
                .output()
                .unwrap();
            let attrs = String::from_utf8_lossy(&out.stdout);
            assert!(
                attrs.split_whitespace().next().unwrap().contains('T'),
                "{attrs}"
            );
            spread_subdirs(&dir).unwrap();
        } else {
            let e = res.unwrap_err();
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                ),
                "{e}"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// Ask ext2/3/4's Orlov allocator to spread the subdirectories of `dir`
/// across block groups (`chattr +T`, FS_TOPDIR_FL), as for /home: each
/// container's directory then gets inodes from its own group. Without it
/// every per-container file shares one group, and on ext4 without a
/// journal each new inode there scans past every inode freed in the last
/// minutes (`recently_deleted`), which grows with every start and rm.
/// Best effort: other filesystems do not have the flag.
pub fn spread_subdirs(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(dir)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int into `flags`, which outlives
    // the call; the fd is open.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(());
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from `flags`; the fd is open.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
