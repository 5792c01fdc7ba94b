//! Safe tar extraction into a layer directory.
//!
//! Every entry is checked before anything is written: the path is resolved
//! lexically (leading `/` re-rooted, `..` that escapes rejected), every parent
//! component is walked with lstat and a symlink in the parent chain must
//! resolve inside the root, the final component is never followed (an
//! existing non-directory is replaced), and hardlink targets must resolve
//! inside the root. Optionally converts AUFS/Docker whiteouts to overlayfs
//! form (IMG-15, STO-01, STO-05).

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::error::{Error, IoContext, Result};
use crate::util::remove_all;

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone, Copy)]
pub(crate) struct UnpackOptions {
    /// Convert `.wh.*` entries to overlayfs whiteouts / opaque dirs.
    pub overlay_whiteouts: bool,
    /// Apply uid/gid, create device nodes, apply PAX xattrs.
    pub preserve_owner: bool,
}

impl UnpackOptions {
    pub(crate) const LAYER: UnpackOptions = UnpackOptions {
        overlay_whiteouts: true,
        preserve_owner: true,
    };
    /// For the outer `docker save` archive: plain files only.
    pub(crate) const PLAIN: UnpackOptions = UnpackOptions {
        overlay_whiteouts: false,
        preserve_owner: false,
    };
}

fn unsafe_entry(path: &Path, reason: &str) -> Error {
    Error::UnsafeEntry {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Lexically resolve an entry path into normal components relative to the
/// root. Absolute paths are re-rooted (as Docker does); `..` must not climb
/// above the root.
pub(crate) fn sanitize(path: &Path) -> Result<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(unsafe_entry(path, "path escapes the root via '..'"));
                }
            }
            Component::Normal(n) => out.push(n.to_os_string()),
        }
    }
    Ok(out)
}

/// Walk `comps` below `root` (canonical), creating missing directories if
/// `create`. Symlinks in the chain are followed only if they resolve inside
/// `root`. Returns the real directory path.
pub(crate) fn resolve_dir(
    root: &Path,
    comps: &[OsString],
    create: bool,
    entry: &Path,
) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in comps {
        let next = cur.join(c);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => cur = next,
            Ok(m) if m.file_type().is_symlink() => {
                let canon = next.canonicalize().map_err(|_| {
                    unsafe_entry(entry, "path goes through a dangling or looping symlink")
                })?;
                if !canon.starts_with(root) {
                    return Err(unsafe_entry(
                        entry,
                        "path goes through a symlink pointing outside the root",
                    ));
                }
                if !canon.is_dir() {
                    return Err(Error::archive(format!(
                        "invalid tar entry {}: parent is not a directory",
                        entry.display()
                    )));
                }
                cur = canon;
            }
            Ok(_) => {
                return Err(Error::archive(format!(
                    "invalid tar entry {}: parent is not a directory",
                    entry.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&next).ctx(|| format!("mkdir {}", next.display()))?;
                fs::set_permissions(&next, fs::Permissions::from_mode(0o755))
                    .ctx(|| format!("chmod {}", next.display()))?;
                cur = next;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::archive(format!(
                    "invalid tar entry {}: {} does not exist",
                    entry.display(),
                    next.strip_prefix(root).unwrap_or(&next).display()
                )))
            }
            Err(e) => return Err(Error::io(format!("stat {}", next.display()), e)),
        }
    }
    Ok(cur)
}

/// Extract the tar stream `reader` into `dest` (an existing directory).
/// Returns the layer's content size (regular file bytes + symlink lengths).
pub(crate) fn unpack(reader: &mut dyn Read, dest: &Path, opts: UnpackOptions) -> Result<u64> {
    let root = dest
        .canonicalize()
        .ctx(|| format!("resolve {}", dest.display()))?;
    let mut archive = tar::Archive::new(reader);
    let mut size = 0u64;
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let bad = |e: io::Error| {
        let msg = e.to_string();
        if msg.contains("cksum") || msg.contains("checksum") {
            Error::archive("invalid tar archive: bad header (not a tar file?)")
        } else {
            Error::archive(format!("invalid tar archive: {msg}"))
        }
    };

    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let comps = sanitize(&path)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): keep the layer root as created.
            continue;
        };
        let name_str = name.to_string_lossy();

        if opts.overlay_whiteouts && name_str.starts_with(WHITEOUT_PREFIX) {
            let parent = resolve_dir(&root, parent_comps, true, &path)?;
            if name_str == WHITEOUT_OPAQUE {
                xattr::set(&parent, OPAQUE_XATTR, b"y")
                    .ctx(|| format!("set opaque xattr on {}", parent.display()))?;
            } else if name_str.starts_with(WHITEOUT_META_PREFIX) {
                // Other AUFS metadata (.wh..wh.plnk, ...): not needed.
            } else {
                let orig = &name_str[WHITEOUT_PREFIX.len()..];
                if orig.is_empty() || orig == "." || orig == ".." || orig.contains('/') {
                    return Err(unsafe_entry(&path, "invalid whiteout name"));
                }
                let target = parent.join(orig);
                remove_all(&target).ctx(|| format!("remove {}", target.display()))?;
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| {
                    Error::io(format!("mknod whiteout {}", target.display()), e.into())
                })?;
                let h = entry.header();
                let (uid, gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
                std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                    .ctx(|| format!("chown {}", target.display()))?;
            }
            continue;
        }

        let parent = resolve_dir(&root, parent_comps, true, &path)?;
        let target = parent.join(name);
        let is_dir = kind == EntryType::Directory;

        // Never follow or write through whatever is at the final component.
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() && is_dir => {}
            Ok(_) => remove_all(&target).ctx(|| format!("replace {}", target.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("stat {}", target.display()), e)),
        }

        let header = entry.header().clone();
        let mode = header.mode().map_err(bad)? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        match kind {
            EntryType::Directory => {
                if !target.exists() {
                    fs::create_dir(&target).ctx(|| format!("mkdir {}", target.display()))?;
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .ctx(|| format!("create {}", target.display()))?;
                // Read errors are archive errors; write errors (ENOSPC) are ours.
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(bad(e)),
                    };
                    f.write_all(&buf[..n])
                        .ctx(|| format!("write {}", target.display()))?;
                    size += n as u64;
                }
            }
            EntryType::Symlink => {
                let link = entry.link_name().map_err(bad)?.ok_or_else(|| {
                    Error::archive(format!("symlink {} has no target", path.display()))
                })?;
                size += link.as_os_str().len() as u64;
                std::os::unix::fs::symlink(&link, &target)
                    .ctx(|| format!("symlink {}", target.display()))?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| {
                        Error::archive(format!("hardlink {} has no target", path.display()))
                    })?
                    .into_owned();
                let lcomps = sanitize(&link)
                    .map_err(|_| unsafe_entry(&path, "hardlink target escapes the root"))?;
                let Some((lname, lparent)) = lcomps.split_last() else {
                    return Err(unsafe_entry(&path, "hardlink to the root directory"));
                };
                let src_dir = resolve_dir(&root, lparent, false, &path).map_err(|e| match e {
                    Error::UnsafeEntry { .. } => {
                        unsafe_entry(&path, "hardlink target escapes the root")
                    }
                    e => e,
                })?;
                let src = src_dir.join(lname);
                match fs::symlink_metadata(&src) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => return Err(unsafe_entry(&path, "hardlink to a directory")),
                    Err(_) => {
                        return Err(Error::archive(format!(
                            "invalid tar entry {}: hardlink target {} not found",
                            path.display(),
                            link.display()
                        )))
                    }
                }
                fs::hard_link(&src, &target).ctx(|| format!("link {}", target.display()))?;
                // Metadata belongs to the shared inode; already applied.
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !opts.preserve_owner {
                    continue;
                }
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                mknod(
                    &target,
                    sflag,
                    Mode::from_bits_truncate(mode),
                    makedev(major as u64, minor as u64),
                )
                .map_err(|e| Error::io(format!("mknod {}", target.display()), e.into()))?;
            }
            EntryType::GNUSparse => {
                return Err(Error::archive(format!(
                    "unsupported sparse tar entry {}",
                    path.display()
                )))
            }
            other => {
                tracing::warn!(path = %path.display(), kind = ?other, "skipping unsupported tar entry");
                continue;
            }
        }

        // Metadata: owner first (chown clears setuid), then mode, xattrs, times.
        let is_symlink = kind == EntryType::Symlink;
        if opts.preserve_owner {
            let uid = header.uid().unwrap_or(0) as u32;
            let gid = header.gid().unwrap_or(0) as u32;
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
                .ctx(|| format!("chown {}", target.display()))?;
        }
        if !is_symlink {
            let m = if opts.preserve_owner {
                mode
            } else {
                mode & 0o777
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(m))
                .ctx(|| format!("chmod {}", target.display()))?;
        }
        if opts.preserve_owner {
            let mut xattrs = Vec::new();
            if let Some(exts) = entry.pax_extensions().map_err(bad)? {
                for ext in exts {
                    let ext = ext.map_err(bad)?;
                    if let Ok(k) = ext.key() {
                        if let Some(n) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((n.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
            for (n, v) in xattrs {
                if let Err(e) = xattr::set(&target, &n, &v) {
                    tracing::warn!(path = %path.display(), xattr = %n, error = %e, "cannot set xattr");
                }
            }
        }
        if is_dir {
            dir_times.push((target, mtime));
        } else {
            set_mtime(&target, mtime);
        }
    }
    // Directory times last: creating children changes them.
    for (d, t) in dir_times.into_iter().rev() {
        set_mtime(&d, t);
    }
    Ok(size)
}

fn set_mtime(p: &Path, secs: u64) {
    let ts = TimeSpec::new(secs as i64, 0);
    if let Err(e) = utimensat(None, p, &ts, &ts, UtimensatFlags::NoFollowSymlink) {
        tracing::debug!(path = %p.display(), error = %e, "utimensat");
    }
}
