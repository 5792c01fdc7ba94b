//! A container's filesystem as files and tar streams: the private mount
//! view used by `cp`, `export` and volume copy-up, path stat
//! (`X-Docker-Container-Path-Stat`), tar out, tar in, tree copy and `diff`.
//!
//! Every path inside a container is resolved with openat2
//! `RESOLVE_IN_ROOT` from a descriptor of the container root
//! (`berth_sys::at`), and every later step works on descriptors with
//! `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW`: a symlink the container plants
//! (`/etc/shadow`, `../../..`), or swaps in while we copy, resolves inside
//! the root or is copied as a link, never followed to the host (STO-10, cp).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_sys::at::{fd_path, open_child, open_in_root};
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};

/// The root filesystem of a view.
#[derive(Debug, Clone)]
pub enum RootSource {
    /// Mount this overlay (a stopped container's snapshot).
    Overlay(Vec<berth_types::Mount>),
    /// Bind this directory (a running container's mounted rootfs).
    Bind(PathBuf),
}

/// A bind mount into the view: host source, destination in the container.
#[derive(Debug, Clone)]
pub struct ViewBind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

/// Run `f` on a private mount of a container's filesystem: a fresh thread
/// unshares its mount namespace (slave to the host's, so nothing
/// propagates back), mounts the rootfs and the container's volumes and
/// binds on a temporary directory under `scratch`, and calls `f` with that
/// path and a descriptor of it. When the thread ends its namespace and all
/// its mounts go away, whatever `f` did or however it failed.
pub fn with_view<T: Send + 'static>(
    scratch: &Path,
    root: RootSource,
    binds: Vec<ViewBind>,
    f: impl FnOnce(&Path, BorrowedFd<'_>) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::fs::create_dir_all(scratch)?;
    let dir = scratch.join(format!("view-{:016x}", rand::random::<u64>()));
    std::fs::create_dir(&dir)?;
    let d = dir.clone();
    let res = std::thread::spawn(move || -> io::Result<T> {
        use nix::mount::{mount, MsFlags};
        berth_sys::mount::enter_private_namespace()?;
        match &root {
            RootSource::Overlay(ms) => {
                for m in ms {
                    let data = m.options.join(",");
                    mount(
                        Some(m.source.as_str()),
                        &d,
                        Some(m.kind.as_str()),
                        MsFlags::empty(),
                        Some(data.as_str()),
                    )?;
                }
            }
            RootSource::Bind(p) => {
                mount(
                    Some(p),
                    &d,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
            }
        }
        let rootfd = berth_sys::at::open_dir(&d)?;
        // Parents before children.
        let mut binds = binds;
        binds.sort_by_key(|b| Path::new(&b.destination).components().count());
        for b in &binds {
            let is_dir = std::fs::metadata(&b.source)
                .map(|m| m.is_dir())
                .unwrap_or(true);
            let target = match ensure_mountpoint(rootfd.as_fd(), &b.destination, is_dir) {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("view: skip mount on {}: {e}", b.destination);
                    continue;
                }
            };
            let tp = fd_path(target.as_fd());
            mount(
                Some(&b.source),
                &tp,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            if b.readonly {
                let _ = mount(
                    None::<&str>,
                    &tp,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                );
            }
        }
        // Reopen: the descriptor taken before the binds still sees them
        // (mounts are found per path walk), but be explicit.
        let rootfd = berth_sys::at::open_dir(&d)?;
        f(&d, rootfd.as_fd())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("view thread panicked")));
    let _ = std::fs::remove_dir(&dir);
    res
}

/// Open (creating if missing, like the runtime does) a mount point inside
/// `root`; returns an O_PATH descriptor to mount on.
fn ensure_mountpoint(root: BorrowedFd<'_>, dest: &str, dir: bool) -> io::Result<OwnedFd> {
    match open_in_root(root, Path::new(dest), libc::O_PATH, 0, true) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let p = Path::new(dest);
    let parent = p.parent().unwrap_or(Path::new("/"));
    let name = p
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let pfd = mkdir_all_in_root(root, parent)?;
    if dir {
        match nix::sys::stat::mkdirat(Some(pfd.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
        {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        match open_child(
            pfd.as_fd(),
            Path::new(name),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    open_in_root(root, p, libc::O_PATH, 0, true)
}

/// `mkdir -p` inside `root` (symlinks resolved in the root); returns an
/// O_PATH descriptor of the directory.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, dir: &Path) -> io::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    if let Ok(fd) = open_in_root(root, dir, flags, 0, true) {
        return Ok(fd);
    }
    let mut prefix = PathBuf::from("/");
    for c in dir.components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::ParentDir => {
                prefix.pop();
                continue;
            }
            _ => continue,
        };
        let parent = open_in_root(root, &prefix, flags, 0, true)?;
        match nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        prefix.push(name);
    }
    open_in_root(root, dir, flags, 0, true)
}

// ---------- stat ----------

/// `X-Docker-Container-Path-Stat` (base64 JSON of this).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` for a stat mode.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        libc::S_IFBLK => m |= 1 << 26,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// Go's RFC3339Nano (trailing zeros of the fraction dropped).
fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos as u32).unwrap_or_default();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// `/a/b/` and `/a/b/.` keep their meaning ("the directory itself,
/// followed"); everything else is cleaned lexically and made absolute.
pub fn clean_container_path(p: &str) -> String {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut s = String::from("/");
    s.push_str(
        &parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    if p.ends_with("/.") && s != "/" {
        s.push_str("/.");
    } else if p.ends_with('/') && s != "/" {
        s.push('/');
    }
    s
}

/// The parent directory (resolved, followed) and the last component of a
/// container path, as Docker's `ResolvePath` splits it: the last
/// component is not followed unless the path ends in `/` or `/.`.
pub struct Resolved {
    pub parent: OwnedFd,
    /// `.` for "the parent itself".
    pub base: OsString,
    /// The name Docker reports and rebases to (`filepath.Base(absPath)`).
    pub name: String,
}

pub fn resolve(root: BorrowedFd<'_>, path: &str) -> io::Result<Resolved> {
    let abs = clean_container_path(path);
    let trailing = abs.ends_with('/') || abs.ends_with("/.");
    let clean = abs.trim_end_matches('.').trim_end_matches('/');
    let p = Path::new(if clean.is_empty() { "/" } else { clean });
    let name = if abs.ends_with("/.") {
        ".".to_string()
    } else {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_string())
    };
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    if trailing || p == Path::new("/") {
        let fd = open_in_root(root, p, flags, 0, true)?;
        return Ok(Resolved {
            parent: fd,
            base: ".".into(),
            name,
        });
    }
    let parent = open_in_root(root, p.parent().unwrap_or(Path::new("/")), flags, 0, true)?;
    Ok(Resolved {
        parent,
        base: p.file_name().unwrap_or_default().to_os_string(),
        name,
    })
}

fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileStat> {
    Ok(fstatat(
        Some(dir.as_raw_fd()),
        name,
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

/// Docker's `StatPath`: lstat of the resolved path; a symlink reports
/// where it leads inside the container.
pub fn stat_path(root_path: &Path, root: BorrowedFd<'_>, path: &str) -> io::Result<PathStat> {
    let r = resolve(root, path)?;
    let st = lstat_at(r.parent.as_fd(), &r.base)?;
    let mut link_target = String::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let abs = clean_container_path(path);
        link_target = match open_in_root(root, Path::new(&abs), libc::O_PATH, 0, true) {
            Ok(fd) => {
                let host = std::fs::read_link(fd_path(fd.as_fd()))?;
                let rel = host.strip_prefix(root_path).unwrap_or(Path::new(""));
                format!("/{}", rel.display())
            }
            Err(_) => {
                // Dangling: resolve lexically, as Go's FollowSymlinkInScope.
                let target =
                    nix::fcntl::readlinkat(Some(r.parent.as_raw_fd()), r.base.as_os_str())?;
                let t = Path::new(&target);
                let joined = if t.is_absolute() {
                    t.to_path_buf()
                } else {
                    Path::new(&abs).parent().unwrap_or(Path::new("/")).join(t)
                };
                clean_container_path(&joined.to_string_lossy())
            }
        };
    }
    Ok(PathStat {
        name: r.name,
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: go_time(st.st_mtime, st.st_mtime_nsec),
        link_target,
    })
}

// ---------- tar out ----------

struct TarOut<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), PathBuf>,
}

fn header_for(st: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> TarOut<W> {
    /// Append `name` (in directory `dir`) as `arc` and, for a directory,
    /// everything below it.
    /// A `required` entry that vanished is an error (the path asked for);
    /// entries below it may vanish while we walk.
    fn add(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        arc: &Path,
        required: bool,
    ) -> io::Result<()> {
        let st = match lstat_at(dir, name) {
            Ok(st) => st,
            // Removed while we walk: skip, like a racing `rm`.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => return Ok(()),
            Err(e) => return Err(e),
        };
        // Swapped or removed between the lstat and the open (a racing
        // container): the entry is gone for us.
        let vanished = |e: io::Error| -> io::Result<()> {
            let gone = matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EINVAL)
            );
            if gone && !required {
                Ok(())
            } else if gone {
                Err(io::Error::from(io::ErrorKind::NotFound))
            } else {
                Err(e)
            }
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let fd =
                    match open_child(dir, Path::new(name), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                        Ok(fd) => fd,
                        Err(e) => return vanished(e),
                    };
                let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
                let mut h = header_for(&st, tar::EntryType::Directory);
                let mut p = arc.as_os_str().to_os_string();
                if !p.as_bytes().ends_with(b"/") {
                    p.push("/");
                }
                append_raw(&mut self.b, &mut h, Path::new(&p), None, io::empty())?;
                for child in list_dir(fd.as_fd())? {
                    self.add(fd.as_fd(), &child, &arc.join(&child), false)?;
                }
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = header_for(&st, tar::EntryType::Link);
                        append_raw(&mut self.b, &mut h, arc, Some(&first), io::empty())?;
                        return Ok(());
                    }
                    self.links.insert(key, arc.to_path_buf());
                }
                let fd = match open_child(dir, Path::new(name), libc::O_RDONLY, 0) {
                    Ok(fd) => fd,
                    Err(e) => return vanished(e),
                };
                let f = std::fs::File::from(fd);
                let st2 = nix::sys::stat::fstat(f.as_raw_fd())?;
                if st2.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return vanished(io::Error::from_raw_os_error(libc::ENOENT));
                }
                let mut h = header_for(&st2, tar::EntryType::Regular);
                h.set_size(st2.st_size as u64);
                // A file that shrinks while we read is padded by the tar
                // crate's size check failing; read exactly `size` bytes.
                let reader = PadTo {
                    inner: f.take(st2.st_size as u64),
                    left: st2.st_size as u64,
                };
                append_raw(&mut self.b, &mut h, arc, None, reader)?;
            }
            libc::S_IFLNK => {
                let target = match nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name) {
                    Ok(t) => t,
                    Err(e) => return vanished(e.into()),
                };
                let mut h = header_for(&st, tar::EntryType::Symlink);
                append_raw(
                    &mut self.b,
                    &mut h,
                    arc,
                    Some(Path::new(&target)),
                    io::empty(),
                )?;
            }
            fmt => {
                let kind = match fmt {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    libc::S_IFIFO => tar::EntryType::Fifo,
                    _ => return Ok(()), // sockets are not archived
                };
                let mut h = header_for(&st, kind);
                if kind != tar::EntryType::Fifo {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
                append_raw(&mut self.b, &mut h, arc, None, io::empty())?;
            }
        }
        Ok(())
    }
}

/// Append with the name exactly as given (Docker keeps a leading `./`,
/// which the tar crate's path handling would strip); long names fall back
/// to the crate's GNU long-name support.
fn append_raw<W: Write, R: Read>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &Path,
    link: Option<&Path>,
    data: R,
) -> io::Result<()> {
    let bytes = name.as_os_str().as_bytes();
    let link_ok = link.is_none_or(|l| l.as_os_str().len() <= 100);
    if bytes.len() <= 100 && bytes.starts_with(b"./") && link_ok {
        let old = h.as_old_mut();
        old.name.fill(0);
        old.name[..bytes.len()].copy_from_slice(bytes);
        if let Some(l) = link {
            h.set_link_name(l)?;
        }
        h.set_cksum();
        return b.append(h, data);
    }
    match link {
        Some(l) => b.append_link(h, name, l),
        None => b.append_data(h, name, data),
    }
}

/// A reader that yields exactly `left` bytes: the file's, then zeros.
struct PadTo<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for PadTo<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = (buf.len() as u64).min(self.left) as usize;
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Names in a directory (readable descriptor), without `.` and `..`, sorted.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // The /proc/self/fd link names exactly this open directory.
    let mut out = Vec::new();
    for e in std::fs::read_dir(fd_path(dir))? {
        out.push(e?.file_name());
    }
    out.sort();
    Ok(out)
}

/// Tar of `path` in the container, its top entry named like Docker's
/// `TarResourceRebase` (the path's base name, or `.` for `dir/.`).
pub fn tar_path<W: Write>(root: BorrowedFd<'_>, path: &str, out: W) -> io::Result<W> {
    let r = resolve(root, path)?;
    let mut t = TarOut {
        b: tar::Builder::new(out),
        links: HashMap::new(),
    };
    t.b.follow_symlinks(false);
    t.add(r.parent.as_fd(), &r.base, Path::new(&r.name), true)?;
    t.b.into_inner()
}

/// Tar of the whole filesystem below `root`, names relative (`export`).
pub fn tar_all<W: Write>(root: BorrowedFd<'_>, out: W) -> io::Result<W> {
    let mut t = TarOut {
        b: tar::Builder::new(out),
        links: HashMap::new(),
    };
    let dir = open_child(root, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for child in list_dir(dir.as_fd())? {
        t.add(dir.as_fd(), &child, Path::new(&child), false)?;
    }
    t.b.into_inner()
}

// ---------- tar in ----------

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Keep the archive's uid/gid (`cp -a`); else files belong to root.
    pub copy_uid_gid: bool,
    /// Refuse to replace a directory with a non-directory and vice versa.
    pub no_overwrite_dir_non_dir: bool,
}

/// Why an extraction was refused, for Docker's error texts.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Unpack a tar stream into directory `dest` of the container (which
/// must exist and be a directory, symlinks resolved in the root). Each
/// entry's parent is resolved in the root again and the entry is created
/// relative to that descriptor without following its last component, so a
/// symlink swapped in during the copy cannot redirect a write.
pub fn extract<R: Read>(
    root: BorrowedFd<'_>,
    dest: &str,
    input: R,
    opts: ExtractOptions,
) -> Result<(), ExtractError> {
    let dest = clean_container_path(dest);
    let dest_clean = dest.trim_end_matches('.').trim_end_matches('/');
    let dest_path = PathBuf::from(if dest_clean.is_empty() {
        "/"
    } else {
        dest_clean
    });
    match open_in_root(root, &dest_path, libc::O_PATH, 0, true) {
        Ok(fd) => {
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(ExtractError::NotADirectory);
            }
        }
        Err(e) => return Err(e.into()),
    }
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, i64)> = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let mut target = dest_path.clone();
        for c in rel.components() {
            match c {
                Component::Normal(n) => target.push(n),
                Component::ParentDir => {
                    if target != dest_path {
                        target.pop();
                    }
                }
                _ => {}
            }
        }
        let h = entry.header().clone();
        let kind = h.entry_type();
        if target == dest_path {
            // The archive's "." entry: the destination itself. Keep it.
            continue;
        }
        let parent_path = target.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = target.file_name().unwrap_or_default().to_os_string();
        let parent = mkdir_all_in_root(root, &parent_path)?;
        let pfd = parent.as_fd();
        let (uid, gid) = if opts.copy_uid_gid {
            (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32)
        } else {
            (0, 0)
        };
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let existing = lstat_at(pfd, &name).ok();
        let existing_dir = existing
            .as_ref()
            .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let is_dir = kind == tar::EntryType::Directory;
        if let Some(ed) = existing_dir {
            if opts.no_overwrite_dir_non_dir && ed != is_dir {
                let shown = target.display();
                return Err(ExtractError::Conflict(if ed {
                    format!("cannot overwrite directory \"{shown}\" with non-directory \"{shown}\"")
                } else {
                    format!("cannot overwrite non-directory \"{shown}\" with directory \"{shown}\"")
                }));
            }
            if !(ed && is_dir) {
                remove_at(pfd, &name, ed)?;
            }
        }
        match kind {
            tar::EntryType::Directory => {
                if existing_dir != Some(true) {
                    nix::sys::stat::mkdirat(
                        Some(pfd.as_raw_fd()),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(io::Error::from)?;
                }
                let fd = open_child(pfd, Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                set_owner_mode(fd.as_fd(), uid, gid, mode)?;
                dirs.push((target.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = open_child(
                    pfd,
                    Path::new(&name),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut entry, &mut f)?;
                set_owner_mode(f.as_fd(), uid, gid, mode)?;
                let ts = TimeSpec::new(mtime, 0);
                nix::sys::stat::futimens(f.as_raw_fd(), &ts, &ts).map_err(io::Error::from)?;
            }
            tar::EntryType::Symlink => {
                let link = h
                    .link_name()?
                    .ok_or_else(|| io::Error::other("symlink without target"))?;
                nix::unistd::symlinkat(link.as_os_str(), Some(pfd.as_raw_fd()), name.as_os_str())
                    .map_err(io::Error::from)?;
                nix::unistd::fchownat(
                    Some(pfd.as_raw_fd()),
                    name.as_os_str(),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(io::Error::from)?;
            }
            tar::EntryType::Link => {
                let link = h
                    .link_name()?
                    .ok_or_else(|| io::Error::other("hard link without target"))?;
                let mut src = dest_path.clone();
                for c in link.components() {
                    if let Component::Normal(n) = c {
                        src.push(n);
                    }
                }
                let sfd = open_in_root(root, &src, libc::O_PATH, 0, false)?;
                let from = fd_path(sfd.as_fd());
                nix::unistd::linkat(
                    None,
                    from.as_os_str(),
                    Some(pfd.as_raw_fd()),
                    name.as_os_str(),
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(io::Error::from)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                // Fifos (and some writers' devices) leave the fields blank.
                let dev = libc::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                nix::sys::stat::mknodat(
                    Some(pfd.as_raw_fd()),
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(mode),
                    dev,
                )
                .map_err(io::Error::from)?;
                nix::unistd::fchownat(
                    Some(pfd.as_raw_fd()),
                    name.as_os_str(),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(io::Error::from)?;
            }
            _ => {} // pax/GNU metadata entries are consumed by the tar crate
        }
    }
    // Directory mtimes last: creating entries inside changed them.
    for (d, mtime) in dirs.into_iter().rev() {
        if let Ok(fd) = open_in_root(root, &d, libc::O_RDONLY | libc::O_DIRECTORY, 0, false) {
            let ts = TimeSpec::new(mtime, 0);
            let _ = nix::sys::stat::futimens(fd.as_raw_fd(), &ts, &ts);
        }
    }
    Ok(())
}

fn set_owner_mode(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    nix::unistd::fchown(
        fd.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )?;
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))?;
    Ok(())
}

/// Remove `name` in `dir` (recursively for a directory), never following
/// symlinks.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    if is_dir {
        let fd = open_child(dir, Path::new(name), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        for child in list_dir(fd.as_fd())? {
            let st = lstat_at(fd.as_fd(), &child)?;
            remove_at(
                fd.as_fd(),
                &child,
                st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            )?;
        }
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir)?;
    } else {
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)?;
    }
    Ok(())
}

// ---------- tree copy (volume copy-up) ----------

/// Copy everything below directory `src` into directory `dst` (readable
/// descriptors), keeping owners, modes, times, symlinks (as links),
/// device nodes and fifos. `tick` runs before each entry (tests use it to
/// interrupt a copy).
pub fn copy_contents(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    tick: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<()> {
    for name in list_dir(src)? {
        tick()?;
        let st = lstat_at(src, &name)?;
        let own = |dirfd: BorrowedFd<'_>| {
            nix::unistd::fchownat(
                Some(dirfd.as_raw_fd()),
                name.as_os_str(),
                Some(nix::unistd::Uid::from_raw(st.st_uid)),
                Some(nix::unistd::Gid::from_raw(st.st_gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(io::Error::from)
        };
        let times = [
            TimeSpec::new(st.st_atime, st.st_atime_nsec),
            TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
        ];
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                match nix::sys::stat::mkdirat(
                    Some(dst.as_raw_fd()),
                    name.as_os_str(),
                    Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let s = open_child(src, Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                let d = open_child(dst, Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                copy_contents(s.as_fd(), d.as_fd(), tick)?;
                copy_meta(d.as_fd(), &st)?;
            }
            libc::S_IFREG => {
                let s = open_child(src, Path::new(&name), libc::O_RDONLY, 0)?;
                let d = open_child(
                    dst,
                    Path::new(&name),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                    0o600,
                )?;
                let mut sf = std::fs::File::from(s);
                let mut df = std::fs::File::from(d);
                io::copy(&mut sf, &mut df)?;
                copy_meta(df.as_fd(), &st)?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src.as_raw_fd()), name.as_os_str())?;
                match nix::unistd::symlinkat(
                    target.as_os_str(),
                    Some(dst.as_raw_fd()),
                    name.as_os_str(),
                ) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                own(dst)?;
                let _ = nix::sys::stat::utimensat(
                    Some(dst.as_raw_fd()),
                    name.as_os_str(),
                    &times[0],
                    &times[1],
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                );
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
                match nix::sys::stat::mknodat(
                    Some(dst.as_raw_fd()),
                    name.as_os_str(),
                    kind,
                    Mode::from_bits_truncate(st.st_mode & 0o7777),
                    st.st_rdev,
                ) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                own(dst)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Owner, mode and times of `st` onto an open file or directory.
pub fn copy_meta(fd: BorrowedFd<'_>, st: &FileStat) -> io::Result<()> {
    set_owner_mode(fd, st.st_uid, st.st_gid, st.st_mode & 0o7777)?;
    let a = TimeSpec::new(st.st_atime, st.st_atime_nsec);
    let m = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    nix::sys::stat::futimens(fd.as_raw_fd(), &a, &m)?;
    Ok(())
}

/// Bytes used by regular files below `path` (hard links counted once), as
/// Docker's `directory.Size`. Symlinks are not followed.
pub fn disk_usage(path: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        let mut total = 0;
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                total += walk(&e.path(), seen);
            } else if m.is_file() {
                if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                    continue;
                }
                total += m.size();
            }
        }
        total
    }
    walk(path, &mut std::collections::HashSet::new())
}

// ---------- diff ----------

/// `docker diff` from an overlay upper directory: (kind, path) with kind
/// 0 = changed, 1 = added, 2 = deleted, sorted by path. A whiteout (0:0
/// character device) is a deletion; an entry that exists in a lower layer
/// is a change, else an addition. An opaque directory hides everything
/// below it in the lower layers.
pub fn overlay_changes(upper: &Path, lowers: &[PathBuf]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    fn in_lower(lowers: &[PathBuf], rel: &Path) -> bool {
        // Lower layers are listed top first; a whiteout or opaque dir above
        // would already have been reported, so existence suffices.
        lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
    }
    fn walk(
        dir: &Path,
        rel: &Path,
        lowers: &[PathBuf],
        opaque_above: bool,
        out: &mut Vec<(u8, String)>,
    ) {
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let r = rel.join(&name);
            let shown = format!("/{}", r.display());
            let Ok(m) = e.metadata() else { continue };
            if m.file_type().is_char_device() && m.rdev() == 0 {
                out.push((2, shown));
                continue;
            }
            let lower = !opaque_above && in_lower(lowers, &r);
            out.push((if lower { 0 } else { 1 }, shown));
            if m.is_dir() {
                let opaque = berth_sys::at::lgetxattr(&e.path(), "trusted.overlay.opaque")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
                walk(&e.path(), &r, lowers, opaque_above || opaque || !lower, out);
            }
        }
    }
    walk(upper, Path::new(""), lowers, false, &mut out);
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_container_path("etc/../x"), "/x");
        assert_eq!(clean_container_path("/a/b/"), "/a/b/");
        assert_eq!(clean_container_path("/a/b/."), "/a/b/.");
        assert_eq!(clean_container_path("/../../"), "/");
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 0o644);
    }

    #[test]
    fn go_times() {
        assert_eq!(go_time(1704067200, 0), "2024-01-01T00:00:00Z");
        assert_eq!(go_time(1704067200, 500_000_000), "2024-01-01T00:00:00.5Z");
    }
}
