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
