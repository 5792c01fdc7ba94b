//! Write a directory in overlayfs form (an unpacked layer's `diff/` or a
//! container's `upper/`) as a layer tar in the OCI/AUFS form: a whiteout
//! (0:0 char device) becomes an empty `.wh.<name>` file, an opaque directory
//! (`trusted.overlay.opaque=y`) gets a `.wh..wh..opq` entry (STO-01, IMG-18).
//! Entries are sorted by name; hardlinks within the tree become tar links.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Write `dir`'s content as a tar stream (without the root entry itself,
/// like Docker's layer tars) into `out`. Returns the writer.
pub(crate) fn write_dir_tar<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    write_dir_tar_filtered(dir, out, &|_, _, _| true)
}

/// Decides per entry (path relative to the root without trailing `/`, its
/// metadata, whether a directory has kept children) if it is archived.
pub(crate) type Filter<'a> = &'a dyn Fn(&str, &fs::Metadata, bool) -> bool;

/// `write_dir_tar` keeping only the entries `keep` accepts.
pub(crate) fn write_dir_tar_filtered<W: Write>(
    dir: &Path,
    out: W,
    keep: Filter<'_>,
) -> io::Result<W> {
    let mut items = Vec::new();
    collect(dir, "", keep, &mut items)?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for it in &items {
        emit(&mut b, it, &mut links)?;
    }
    b.into_inner()
}

struct Item {
    rel: String,
    path: std::path::PathBuf,
    meta: fs::Metadata,
    opaque: bool,
}

fn collect(dir: &Path, rel: &str, keep: Filter<'_>, out: &mut Vec<Item>) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let Some(name_s) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("non UTF-8 file name in {}", dir.display()),
            ));
        };
        let path = dir.join(&name);
        let entry = format!("{rel}{name_s}");
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            let opaque = is_opaque(&path);
            let mut children = Vec::new();
            collect(&path, &format!("{entry}/"), keep, &mut children)?;
            let has = opaque || !children.is_empty();
            if keep(&entry, &meta, has) {
                out.push(Item {
                    rel: entry,
                    path,
                    meta,
                    opaque,
                });
            }
            out.extend(children);
        } else if keep(&entry, &meta, false) {
            out.push(Item {
                rel: entry,
                path,
                meta,
                opaque: false,
            });
        }
    }
    Ok(())
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn empty_file(mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

fn is_opaque(p: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|x| matches!(xattr::get(p, x), Ok(Some(v)) if v == b"y"))
}

/// `security.capability` is the one xattr images commonly carry.
fn pax_xattrs<W: Write>(b: &mut tar::Builder<W>, p: &Path) -> io::Result<()> {
    if let Ok(Some(v)) = xattr::get(p, "security.capability") {
        let v: &[u8] = &v;
        b.append_pax_extensions([("SCHILY.xattr.security.capability", v)])?;
    }
    Ok(())
}

fn emit<W: Write>(
    b: &mut tar::Builder<W>,
    it: &Item,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let (path, entry, meta) = (&it.path, &it.rel, &it.meta);
    let ft = meta.file_type();
    if ft.is_char_device() && meta.rdev() == 0 {
        // overlayfs whiteout -> AUFS whiteout file
        let (parent, name) = match entry.rsplit_once('/') {
            Some((p, n)) => (format!("{p}/"), n),
            None => (String::new(), entry.as_str()),
        };
        let mut h = empty_file(meta.mtime().max(0) as u64);
        return b.append_data(&mut h, format!("{parent}.wh.{name}"), io::empty());
    }
    if ft.is_dir() {
        pax_xattrs(b, path)?;
        let mut h = header(meta, tar::EntryType::Directory);
        b.append_data(&mut h, format!("{entry}/"), io::empty())?;
        if it.opaque {
            let mut h = empty_file(meta.mtime().max(0) as u64);
            b.append_data(&mut h, format!("{entry}/.wh..wh..opq"), io::empty())?;
        }
        return Ok(());
    }
    if ft.is_symlink() {
        let target = fs::read_link(path)?;
        let mut h = header(meta, tar::EntryType::Symlink);
        return b.append_link(&mut h, entry, &target);
    }
    if ft.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                let mut h = header(meta, tar::EntryType::Link);
                return b.append_link(&mut h, entry, first);
            }
            links.insert(key, entry.clone());
        }
        pax_xattrs(b, path)?;
        let mut h = header(meta, tar::EntryType::Regular);
        h.set_size(meta.len());
        let f = fs::File::open(path)?;
        return b.append_data(&mut h, entry, f);
    }
    let kind = if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else if ft.is_fifo() {
        tar::EntryType::Fifo
    } else {
        // sockets are not archived (Docker skips them too)
        return Ok(());
    };
    let mut h = header(meta, kind);
    let rdev = meta.rdev();
    h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
    h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
    b.append_data(&mut h, entry, io::empty())
}
