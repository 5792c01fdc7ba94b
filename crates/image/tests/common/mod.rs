//! Test helpers: hand-built layer tarballs and `docker save` archives.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip (return early) when not root: unpacking needs chown/mknod/xattrs.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipping: needs root");
            return;
        }
    };
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One tar entry for `layer()`.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str, u32, u32),
    /// Name written raw into the header (bypasses the tar crate's checks).
    RawFile(&'a [u8], &'a [u8]),
}

fn raw_name(h: &mut tar::Header, name: &[u8]) {
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
}

/// Build a tar stream from entries (uid/gid 0 unless given otherwise).
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                raw_name(&mut h, p.as_bytes());
                h.set_mode(*m);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::File(p, data, m) => {
                h.set_entry_type(tar::EntryType::Regular);
                raw_name(&mut h, p.as_bytes());
                h.set_mode(*m);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::RawFile(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                raw_name(&mut h, p);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Sym(p, target) | E::Hard(p, target) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                raw_name(&mut h, p.as_bytes());
                h.set_link_name_literal(target.as_bytes()).unwrap();
                h.set_mode(0o777);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(p, maj, min) => {
                h.set_entry_type(tar::EntryType::Char);
                raw_name(&mut h, p.as_bytes());
                h.set_mode(0o666);
                h.set_size(0);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// An image for `save_archive`: tags and layer tarballs (base first).
pub struct Img {
    pub tags: Vec<String>,
    pub layers: Vec<Vec<u8>>,
    pub cmd: Vec<String>,
}

pub fn img(tags: &[&str], layers: Vec<Vec<u8>>) -> Img {
    Img {
        tags: tags.iter().map(|s| s.to_string()).collect(),
        layers,
        cmd: vec!["sh".into()],
    }
}

pub fn config_for(i: &Img) -> Vec<u8> {
    let diff_ids: Vec<String> = i
        .layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00.123456789Z",
        "config": {"Cmd": i.cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Legacy-layout `docker save` archive; returns (tar bytes, image ids).
pub fn save_archive(images: &[Img]) -> (Vec<u8>, Vec<String>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut ids = Vec::new();
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    for i in images {
        let cfg = config_for(i);
        let hexid = sha256_hex(&cfg);
        add(&mut b, &format!("{hexid}.json"), &cfg);
        let mut layer_paths = Vec::new();
        for l in &i.layers {
            let p = format!("{}/layer.tar", sha256_hex(l));
            add(&mut b, &p, l);
            layer_paths.push(p);
        }
        manifest.push(serde_json::json!({
            "Config": format!("{hexid}.json"), "RepoTags": i.tags, "Layers": layer_paths
        }));
        ids.push(format!("sha256:{hexid}"));
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    (b.into_inner().unwrap(), ids)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Run scripts/mkimage.sh into `dir`; returns the image id it printed.
pub fn mkimage(dir: &Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mkimage.sh");
    let out = Command::new("bash").arg(script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "mkimage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Entries of a directory (names), sorted.
pub fn ls(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Mount an overlay `Mount` on `target`; returns a guard that unmounts.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn mount(m: &berth_types::Mount, target: &Path) -> Mounted {
    std::fs::create_dir_all(target).unwrap();
    let st = Command::new("mount")
        .args(["-t", &m.kind, &m.source, "-o", &m.options.join(",")])
        .arg(target)
        .status()
        .unwrap();
    assert!(st.success(), "mount failed: {:?}", m);
    Mounted(target.to_path_buf())
}

/// A fresh image store in a temp dir (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, berth_image::ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = berth_image::ImageStore::open(&dir.path().join("image")).unwrap();
    (dir, s)
}

/// No temp file under `image/tmp` and no temp layer dir left in `dir`.
pub fn no_leftovers(dir: &Path) {
    let tmp = ls(&dir.join("image/tmp"));
    assert!(tmp.is_empty(), "tmp not empty: {tmp:?}");
    let layers = ls(&dir.join("image/layers"));
    assert!(
        layers.iter().all(|l| !l.starts_with(".tmp")),
        "temp layer dirs left: {layers:?}"
    );
}
