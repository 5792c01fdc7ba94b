//! The image store: SQLite metadata + content-addressed blobs + unpacked
//! layers + overlay snapshots. See docs/image-store.md.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use berth_types::Mount;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;

use crate::changes::apply_changes;
use crate::error::{Error, IoContext, Result};
use crate::reference::parse_reference;
use crate::unpack::{resolve_dir, sanitize, unpack, UnpackOptions};
use crate::util::{
    fsync_dir, maybe_gunzip, remove_all, sha256_hex, unique_suffix, write_atomic, HashingReader,
    TempDir,
};
use crate::{ImageConfig, ImageRecord, ImportOptions, LoadedImage};

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS layers (
    chain_id  TEXT PRIMARY KEY,          -- sha256:<hex>
    diff_id   TEXT NOT NULL,
    parent    TEXT,                      -- parent chain id, NULL for base
    diff_size INTEGER NOT NULL,
    created   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id           TEXT PRIMARY KEY,       -- sha256:<hex of config>
    created      TEXT NOT NULL,
    size         INTEGER NOT NULL,
    architecture TEXT NOT NULL,
    os           TEXT NOT NULL,
    config       TEXT NOT NULL,          -- ImageConfig JSON
    diff_ids     TEXT NOT NULL,          -- JSON array, base first
    top_layer    TEXT,                   -- chain id of the top layer
    repo_digests TEXT NOT NULL DEFAULT '[]',
    added        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name     TEXT PRIMARY KEY,           -- familiar repo:tag
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tagged   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
-- Compressed layer blobs kept for push (blobs/sha256/<digest>).
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id    TEXT PRIMARY KEY,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL
);
-- Local parent of a committed image (docker inspect's Parent, history).
CREATE TABLE IF NOT EXISTS image_parents (
    id     TEXT PRIMARY KEY,
    parent TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    key      TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    created  TEXT NOT NULL
);
";

/// The local image store. `Send + Sync`; all methods are blocking.
pub struct ImageStore {
    root: PathBuf,
    db: Mutex<Connection>,
    /// Serializes load/import so layer directories have a single writer.
    write_lock: Mutex<()>,
}

/// `config` file of an image (only what the store needs).
#[derive(Debug, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) architecture: Option<String>,
    #[serde(default)]
    pub(crate) os: Option<String>,
    #[serde(default)]
    pub(crate) created: Option<String>,
    #[serde(default)]
    pub(crate) config: Option<ImageConfig>,
    pub(crate) rootfs: Option<RootFs>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
}

/// One entry of a `docker save` manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// A layer placed on disk by the current operation, not yet in the db.
pub(crate) struct NewLayer {
    pub(crate) chain_id: String,
    pub(crate) diff_id: String,
    pub(crate) parent: Option<String>,
    pub(crate) size: u64,
    pub(crate) dir: PathBuf,
}

/// A copy of a layer's tar written while it was unpacked (plain), or its
/// gzip made at push time; kept as the layer's blob.
pub(crate) struct GzBlob {
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) tmp: PathBuf,
}

/// Writer that hashes and counts what goes through it.
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: sha2::Sha256,
    pub(crate) count: u64,
}

impl<W: std::io::Write> std::io::Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reader that hands a copy of everything it reads (in 256 KiB chunks) to
/// a writer thread that keeps the layer tar, so the copy's writes overlap
/// the unpacking. The channel is bounded: memory stays at a few MiB.
struct GzTee<R> {
    inner: R,
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

const GZ_CHUNK: usize = 256 * 1024;

impl<R> GzTee<R> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(GZ_CHUNK));
        match &self.tx {
            Some(tx) if tx.send(chunk).is_ok() => Ok(()),
            _ => Err(std::io::Error::other("layer blob writer failed")),
        }
    }

    /// Send the rest and close the channel.
    fn close(&mut self) -> std::io::Result<()> {
        let r = self.send();
        self.tx = None;
        r
    }
}

impl<R: Read> Read for GzTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() >= GZ_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
}

/// An image ready to be registered.
pub(crate) struct Plan {
    pub(crate) id: String,
    pub(crate) created: String,
    pub(crate) size: u64,
    pub(crate) architecture: String,
    pub(crate) os: String,
    pub(crate) config: ImageConfig,
    pub(crate) diff_ids: Vec<String>,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl ImageStore {
    /// Run `f` on the metadata database (for registry bookkeeping).
    pub(crate) fn with_db<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        Ok(f(&lock(&self.db))?)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// OCI chain IDs: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{}", sha256_hex(format!("{prev} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

pub(crate) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker's name for the host architecture.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key != "."
        && key != ".."
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidReference(format!(
            "invalid snapshot key {key:?}"
        )))
    }
}

impl ImageStore {
    /// `root` = <data-root>/image. Creates directories and metadata.db, and
    /// removes leftovers of interrupted loads.
    pub fn open(root: &Path) -> Result<ImageStore> {
        for d in ["", "blobs/sha256", "layers", "snapshots", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        for d in ["layers", "snapshots"] {
            let _ = berth_sys::fs::spread_subdirs(&root.join(d));
        }
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", root.display()))?;
        let root = root
            .canonicalize()
            .ctx(|| format!("resolve {}", root.display()))?;
        let conn = Connection::open(root.join("metadata.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v > SCHEMA_VERSION {
            return Err(Error::Internal(format!(
                "metadata.db schema version {v} is newer than supported {SCHEMA_VERSION}"
            )));
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let store = ImageStore {
            root,
            db: Mutex::new(conn),
            write_lock: Mutex::new(()),
        };
        store.recover()?;
        Ok(store)
    }

    /// Remove temp dirs and layer dirs no image row references (a crash
    /// between placing layers and the registering transaction).
    fn recover(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).ctx(|| format!("read {}", tmp.display()))? {
            let e = e.ctx(|| "read tmp".into())?;
            let _ = remove_all(&e.path());
        }
        let known: std::collections::HashSet<String> = {
            let db = lock(&self.db);
            let mut st = db.prepare("SELECT chain_id FROM layers")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.filter_map(|r| r.ok())
                .map(|c| hex_of(&c).to_string())
                .collect()
        };
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers).ctx(|| format!("read {}", layers.display()))? {
            let e = e.ctx(|| "read layers".into())?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                tracing::info!(layer = %name, "removing unregistered layer directory");
                let _ = remove_all(&e.path());
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    pub(crate) fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.root.join("layers").join(hex_of(chain_id))
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    /// Size of a registered layer whose directory exists.
    pub(crate) fn existing_layer(&self, chain_id: &str) -> Result<Option<u64>> {
        let size: Option<i64> = lock(&self.db)
            .query_row(
                "SELECT diff_size FROM layers WHERE chain_id = ?1",
                [chain_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(size
            .filter(|_| self.layer_dir(chain_id).join("diff").is_dir())
            .map(|s| s as u64))
    }

    /// Unpack one layer stream (plain or gzip) into a temp dir under layers/.
    /// Returns (diff id, content size, temp dir holding `diff/`).
    pub(crate) fn extract_layer(&self, reader: &mut dyn Read) -> Result<(String, u64, TempDir)> {
        let (d, s, t, _) = self.extract_layer_opt(reader, false)?;
        Ok((d, s, t))
    }

    /// `extract_layer`, optionally also keeping a copy of the layer tar in
    /// `tmp/` (kept as the layer's blob for push).
    pub(crate) fn extract_layer_opt(
        &self,
        reader: &mut dyn Read,
        keep_gzip: bool,
    ) -> Result<(String, u64, TempDir, Option<GzBlob>)> {
        let tmp = TempDir::new_in(&self.root.join("layers"), ".tmp-")?;
        let diff = tmp.path().join("diff");
        fs::create_dir(&diff).ctx(|| format!("mkdir {}", diff.display()))?;
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("chmod {}", diff.display()))?;
        let decoded =
            maybe_gunzip(reader).map_err(|e| Error::archive(format!("invalid archive: {e}")))?;
        if !keep_gzip {
            let mut hr = HashingReader::new(decoded);
            let size = unpack(&mut hr, &diff, UnpackOptions::LAYER)?;
            let digest = hr
                .finish()
                .map_err(|e| Error::archive(format!("invalid tar archive: {e}")))?;
            return Ok((digest, size, tmp, None));
        }
        let gz_path = self
            .root
            .join("tmp")
            .join(format!("gz-{}", unique_suffix()));
        let file = fs::File::create(&gz_path).ctx(|| format!("create {}", gz_path.display()))?;
        let cleanup = |e| {
            let _ = fs::remove_file(&gz_path);
            e
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        // The layer tar itself is kept (its digest is the diff id); push
        // gzips it the first time it is needed, like dockerd compresses at
        // push time, so load/import/commit pay no compression.
        let writer = std::thread::spawn(move || -> std::io::Result<HashWriter<fs::File>> {
            let mut hw = HashWriter {
                inner: file,
                hasher: <sha2::Sha256 as sha2::Digest>::new(),
                count: 0,
            };
            for chunk in rx {
                std::io::Write::write_all(&mut hw, &chunk)?;
            }
            Ok(hw)
        });
        let mut hr = HashingReader::new(GzTee {
            inner: decoded,
            buf: Vec::with_capacity(GZ_CHUNK),
            tx: Some(tx),
        });
        let res = unpack(&mut hr, &diff, UnpackOptions::LAYER).and_then(|size| {
            let (digest, mut tee) = hr
                .finish_inner()
                .map_err(|e| Error::archive(format!("invalid tar archive: {e}")))?;
            tee.close().ctx(|| format!("write {}", gz_path.display()))?;
            Ok((size, digest))
        });
        // The writer ends once the channel is closed (hr dropped on error).
        let written = writer
            .join()
            .map_err(|_| Error::Internal("layer blob writer panicked".into()));
        let (size, digest) = res.map_err(cleanup)?;
        let hw = written
            .map_err(cleanup)?
            .ctx(|| format!("write {}", gz_path.display()))
            .map_err(cleanup)?;
        let blob = GzBlob {
            digest: format!("sha256:{}", hex::encode(sha2::Digest::finalize(hw.hasher))),
            size: hw.count,
            tmp: gz_path,
        };
        Ok((digest, size, tmp, Some(blob)))
    }

    /// Keep a layer blob (from load/import/commit, or gzipped at push) for
    /// push and save: the plain tar when its digest is the diff id, else gzip.
    pub(crate) fn keep_gz_blob(&self, diff_id: &str, blob: GzBlob) -> Result<()> {
        let target = self.blob_path(&blob.digest);
        fs::rename(&blob.tmp, &target).ctx(|| format!("rename {}", target.display()))?;
        let mt = if blob.digest == diff_id {
            crate::registry::MT_DOCKER_LAYER_TAR
        } else {
            crate::registry::MT_DOCKER_LAYER_GZIP
        };
        let old: Option<String> = lock(&self.db)
            .query_row(
                "SELECT digest FROM layer_blobs WHERE diff_id = ?1",
                [diff_id],
                |r| r.get(0),
            )
            .optional()?;
        lock(&self.db).execute(
            "INSERT OR REPLACE INTO layer_blobs (diff_id, digest, size, media_type) VALUES (?1, ?2, ?3, ?4)",
            params![diff_id, blob.digest, blob.size as i64, mt],
        )?;
        // A plain tar replaced by its gzip copy (first push) goes away.
        if let Some(old) = old.filter(|o| o != &blob.digest && o == diff_id) {
            let _ = fs::remove_file(self.blob_path(&old));
        }
        Ok(())
    }

    pub(crate) fn lock_writes(&self) -> MutexGuard<'_, ()> {
        lock(&self.write_lock)
    }

    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        self.blob_path(digest)
    }

    /// Place a freshly extracted layer at layers/<chain> (replacing a stale
    /// unregistered dir).
    pub(crate) fn place_new_layer(&self, tmp: TempDir, chain_id: &str) -> Result<Option<PathBuf>> {
        let stale = self.layer_dir(chain_id);
        if stale.exists() && self.existing_layer(chain_id)?.is_none() {
            remove_all(&stale).ctx(|| format!("remove {}", stale.display()))?;
        }
        self.place_layer(tmp, chain_id)
    }

    /// Stored compressed blob of a layer: (digest, size, media type).
    pub(crate) fn layer_blob(&self, diff_id: &str) -> Result<Option<(String, u64, String)>> {
        let row: Option<(String, i64, String)> = lock(&self.db)
            .query_row(
                "SELECT digest, size, media_type FROM layer_blobs WHERE diff_id = ?1",
                [diff_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row
            .filter(|(d, _, _)| self.blob_path(d).is_file())
            .map(|(d, s, m)| (d, s as u64, m)))
    }

    /// Register a pulled image: layers, image, tag, repo digest and layer
    /// blobs in one transaction.
    pub(crate) fn register_pulled(
        &self,
        layers: &[NewLayer],
        plan: &Plan,
        repo_digest: &str,
        blobs: &[(String, String, u64, String)],
    ) -> Result<()> {
        self.register(layers, std::slice::from_ref(plan))?;
        let mut db = lock(&self.db);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (diff, digest, size, mt) in blobs {
            tx.execute(
                "INSERT OR REPLACE INTO layer_blobs (diff_id, digest, size, media_type) VALUES (?1, ?2, ?3, ?4)",
                params![diff, digest, *size as i64, mt],
            )?;
        }
        add_repo_digest_tx(&tx, &plan.id, repo_digest)?;
        tx.commit()?;
        Ok(())
    }

    /// Drop the repo digests of repository `name` from an image; returns them.
    pub fn remove_repo_digests(&self, id: &str, name: &str) -> Result<Vec<String>> {
        let db = lock(&self.db);
        let cur: Option<String> = db
            .query_row("SELECT repo_digests FROM images WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(cur) = cur else {
            return Ok(vec![]);
        };
        let list: Vec<String> = serde_json::from_str(&cur).unwrap_or_default();
        let (gone, keep): (Vec<String>, Vec<String>) = list
            .into_iter()
            .partition(|d| d.split('@').next() == Some(name));
        if !gone.is_empty() {
            db.execute(
                "UPDATE images SET repo_digests = ?1 WHERE id = ?2",
                params![
                    serde_json::to_string(&keep).map_err(|e| Error::Internal(e.to_string()))?,
                    id
                ],
            )?;
        }
        Ok(gone)
    }

    /// Record `name@sha256:..` for an image (replacing the same name's old digest).
    pub(crate) fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<()> {
        let mut db = lock(&self.db);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        add_repo_digest_tx(&tx, id, repo_digest)?;
        tx.commit()?;
        Ok(())
    }

    /// Move an extracted layer into layers/<chain>. Returns the final dir if
    /// this call created it, None if it already existed (temp is dropped).
    pub(crate) fn place_layer(&self, tmp: TempDir, chain_id: &str) -> Result<Option<PathBuf>> {
        let target = self.layer_dir(chain_id);
        if target.exists() {
            return Ok(None);
        }
        // Flush file data before the layer becomes visible.
        if let Ok(f) = fs::File::open(tmp.path()) {
            let _ = nix::unistd::syncfs(f.as_raw_fd());
        }
        let src = tmp.keep();
        if let Err(e) = fs::rename(&src, &target) {
            let _ = remove_all(&src);
            return Err(Error::io(
                format!("rename layer into {}", target.display()),
                e,
            ));
        }
        fsync_dir(&self.root.join("layers")).ctx(|| "fsync layers".into())?;
        Ok(Some(target))
    }

    /// Register layers and images in one transaction.
    pub(crate) fn register(&self, layers: &[NewLayer], plans: &[Plan]) -> Result<()> {
        let mut db = lock(&self.db);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ts = now();
        for l in layers {
            tx.execute(
                "INSERT OR REPLACE INTO layers (chain_id, diff_id, parent, diff_size, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![l.chain_id, l.diff_id, l.parent, l.size as i64, ts],
            )?;
        }
        for p in plans {
            let top = chain_ids(&p.diff_ids).last().cloned();
            tx.execute(
                "INSERT OR IGNORE INTO images
                 (id, created, size, architecture, os, config, diff_ids, top_layer, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.id,
                    p.created,
                    p.size as i64,
                    p.architecture,
                    p.os,
                    serde_json::to_string(&p.config).map_err(|e| Error::Internal(e.to_string()))?,
                    serde_json::to_string(&p.diff_ids)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    top,
                    ts
                ],
            )?;
            for t in &p.tags {
                tx.execute(
                    "INSERT OR REPLACE INTO tags (name, image_id, tagged) VALUES (?1, ?2, ?3)",
                    params![t, p.id, ts],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Open `rel` (a path from manifest.json) inside the extracted archive.
    fn open_in_archive(work: &Path, rel: &str) -> Result<fs::File> {
        let missing = || Error::archive(format!("invalid archive: {rel} not found in tarball"));
        let comps = sanitize(Path::new(rel))?;
        let (name, parent) = comps.split_last().ok_or_else(missing)?;
        let dir = resolve_dir(work, parent, false, Path::new(rel)).map_err(|e| match e {
            Error::InvalidArchive(_) => missing(),
            e => e,
        })?;
        let p = dir.join(name);
        let canon = p.canonicalize().map_err(|_| missing())?;
        if !canon.starts_with(work) {
            return Err(Error::UnsafeEntry {
                path: rel.to_string(),
                reason: "archive file is a symlink pointing outside the archive".into(),
            });
        }
        if !canon.is_file() {
            return Err(missing());
        }
        fs::File::open(&canon).ctx(|| format!("open {rel}"))
    }

    /// `docker load` (IMG-15): a `docker save` tarball, plain or gzip, legacy
    /// or OCI layout (both carry manifest.json).
    pub fn load(&self, tarball: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let _w = lock(&self.write_lock);
        let work = TempDir::new_in(&self.root.join("tmp"), "load-")?;
        let mut r =
            maybe_gunzip(tarball).map_err(|e| Error::archive(format!("invalid archive: {e}")))?;
        // dockerd's (chrootarchive) wording for an unreadable outer tar.
        unpack(&mut r, work.path(), UnpackOptions::PLAIN).map_err(|e| match e {
            Error::InvalidArchive(m) => Error::archive(format!(
                "Error processing tar file(exit status 1): {}",
                if ["EOF", "fill whole buffer", "bad header", "entire block"]
                    .iter()
                    .any(|s| m.contains(s))
                {
                    "unexpected EOF".to_string()
                } else {
                    m
                }
            )),
            e => e,
        })?;
        let work_path = work
            .path()
            .canonicalize()
            .ctx(|| "resolve load dir".into())?;

        let manifest: Vec<ManifestEntry> =
            match Self::open_in_archive(&work_path, "manifest.json") {
                Ok(mut mf) => {
                    let mut mbytes = Vec::new();
                    mf.read_to_end(&mut mbytes)
                        .ctx(|| "read manifest.json".into())?;
                    serde_json::from_slice(&mbytes)
                        .map_err(|e| Error::archive(format!("invalid manifest.json: {e}")))?
                }
                // An OCI image layout without manifest.json (skopeo oci-archive).
                Err(_) => {
                    let read = |rel: &str| -> Result<Vec<u8>> {
                        let mut v = Vec::new();
                        Self::open_in_archive(&work_path, rel)?
                            .read_to_end(&mut v)
                            .ctx(|| format!("read {rel}"))?;
                        Ok(v)
                    };
                    match crate::archive::oci_layout_entries(&read)? {
                        Some(list) => list
                            .into_iter()
                            .map(|(config, repo_tags, layers)| ManifestEntry {
                                config,
                                repo_tags,
                                layers,
                            })
                            .collect(),
                        None => return Err(Error::archive(
                            "invalid archive: manifest.json not found (not a docker save tarball?)",
                        )),
                    }
                }
            };
        if manifest.is_empty() {
            return Err(Error::archive("invalid manifest.json: no images"));
        }

        let mut new_layers: Vec<NewLayer> = Vec::new();
        let res = self.load_entries(&work_path, &manifest, &mut new_layers);
        let res = res.and_then(|(plans, mut loaded)| {
            // Tags that will move from another image (dockerd reports them).
            {
                let db = lock(&self.db);
                for l in loaded.iter_mut() {
                    for t in &l.repo_tags {
                        let old: Option<String> = db
                            .query_row("SELECT image_id FROM tags WHERE name = ?1", [t], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        if let Some(old) = old.filter(|o| *o != l.id) {
                            l.replaced.push((t.clone(), old));
                        }
                    }
                }
            }
            self.register(&new_layers, &plans)?;
            Ok(loaded)
        });
        if res.is_err() {
            for l in &new_layers {
                let _ = remove_all(&l.dir);
            }
        }
        let loaded = res?;
        for l in &loaded {
            tracing::info!(id = %l.id, tags = ?l.repo_tags, "loaded image");
        }
        Ok(loaded)
    }

    fn load_entries(
        &self,
        work: &Path,
        manifest: &[ManifestEntry],
        new_layers: &mut Vec<NewLayer>,
    ) -> Result<(Vec<Plan>, Vec<LoadedImage>)> {
        let mut plans = Vec::new();
        let mut loaded = Vec::new();
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for m in manifest {
            let mut cfg_bytes = Vec::new();
            Self::open_in_archive(work, &m.config)?
                .read_to_end(&mut cfg_bytes)
                .ctx(|| format!("read {}", m.config))?;
            let id = format!("sha256:{}", sha256_hex(&cfg_bytes));
            let cfg: ConfigFile = serde_json::from_slice(&cfg_bytes)
                .map_err(|e| Error::archive(format!("invalid image config {}: {e}", m.config)))?;
            let diff_ids = match cfg.rootfs {
                Some(r) if r.kind == "layers" => r.diff_ids,
                _ => {
                    return Err(Error::archive(format!(
                        "invalid image config {}: missing rootfs of type layers",
                        m.config
                    )))
                }
            };
            if diff_ids.len() != m.layers.len() {
                return Err(Error::archive(format!(
                    "invalid manifest.json: {} lists {} layers but its config has {} diff ids",
                    m.config,
                    m.layers.len(),
                    diff_ids.len()
                )));
            }
            if let Some(bad) = diff_ids.iter().find(|d| !valid_digest(d)) {
                return Err(Error::archive(format!("invalid diff id {bad:?}")));
            }
            let tags = m
                .repo_tags
                .iter()
                .flatten()
                .map(|t| {
                    let r = parse_reference(t)?;
                    if r.digest.is_some() {
                        return Err(Error::archive(format!("invalid RepoTags entry {t:?}")));
                    }
                    Ok(r.familiar())
                })
                .collect::<Result<Vec<_>>>()?;

            let chains = chain_ids(&diff_ids);
            let mut size = 0u64;
            for (i, layer_file) in m.layers.iter().enumerate() {
                let chain = &chains[i];
                if let Some(s) = sizes.get(chain) {
                    size += s;
                    continue;
                }
                let s = match self.existing_layer(chain)? {
                    Some(s) => s,
                    None => {
                        let mut f = Self::open_in_archive(work, layer_file)?;
                        let (digest, s, tmp, gz) =
                            self.extract_layer_opt(&mut f, true).map_err(|e| match e {
                                Error::InvalidArchive(m) => {
                                    Error::archive(format!("layer {layer_file}: {m}"))
                                }
                                e => e,
                            })?;
                        let gz_tmp = gz.as_ref().map(|g| g.tmp.clone());
                        let _gz_guard = scopeguard_remove(gz_tmp);
                        if digest != diff_ids[i] {
                            return Err(Error::archive(format!(
                                "invalid archive: layer {layer_file} has digest {digest}, \
                                 config expects {}",
                                diff_ids[i]
                            )));
                        }
                        // A leftover dir without a db row (can't happen after
                        // open's recovery) is replaced.
                        let stale = self.layer_dir(chain);
                        if stale.exists() {
                            remove_all(&stale).ctx(|| format!("remove {}", stale.display()))?;
                        }
                        if let Some(dir) = self.place_layer(tmp, chain)? {
                            new_layers.push(NewLayer {
                                chain_id: chain.clone(),
                                diff_id: diff_ids[i].clone(),
                                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                                size: s,
                                dir,
                            });
                            if let Some(g) = gz {
                                self.keep_gz_blob(&diff_ids[i], g)?;
                            }
                        }
                        s
                    }
                };
                sizes.insert(chain.clone(), s);
                size += s;
            }
            write_atomic(&self.blob_path(&id), &cfg_bytes)?;
            plans.push(Plan {
                id: id.clone(),
                created: cfg.created.unwrap_or_default(),
                size,
                architecture: cfg.architecture.unwrap_or_default(),
                os: cfg.os.unwrap_or_else(|| "linux".into()),
                config: cfg.config.unwrap_or_default(),
                diff_ids,
                tags: tags.clone(),
            });
            loaded.push(LoadedImage {
                id,
                replaced: Vec::new(),
                repo_tags: tags,
            });
        }
        Ok((plans, loaded))
    }

    /// `docker import` (IMG-17): a rootfs tarball as a one-layer image.
    pub fn import(
        &self,
        tarball: &mut dyn Read,
        reference: Option<&str>,
        opts: &ImportOptions,
    ) -> Result<String> {
        self.import_from(tarball, reference, opts, "-")
    }

    /// `import` with the source named in the history (`Imported from <src>`).
    pub fn import_from(
        &self,
        tarball: &mut dyn Read,
        reference: Option<&str>,
        opts: &ImportOptions,
        source: &str,
    ) -> Result<String> {
        let tag = match reference {
            None => None,
            Some(r) => {
                let p = parse_reference(r)?;
                if p.digest.is_some() {
                    return Err(Error::InvalidReference(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                Some(p.familiar())
            }
        };
        let mut config = ImageConfig::default();
        apply_changes(&mut config, &opts.changes)?;

        let _w = lock(&self.write_lock);
        let (diff_id, size, tmp, gz) = self.extract_layer_opt(tarball, true)?;
        let _gz_guard = scopeguard_remove(gz.as_ref().map(|g| g.tmp.clone()));
        let created = now();
        let comment = opts.message.clone().unwrap_or_default();
        let history_comment = if comment.is_empty() {
            format!("Imported from {source}")
        } else {
            comment.clone()
        };
        let cfg_json = serde_json::json!({
            "architecture": host_arch(),
            "comment": comment,
            "config": config,
            "created": created,
            "history": [{"created": created, "comment": history_comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let cfg_bytes =
            serde_json::to_vec(&cfg_json).map_err(|e| Error::Internal(e.to_string()))?;
        let id = format!("sha256:{}", sha256_hex(&cfg_bytes));

        let chain = diff_id.clone();
        let mut new_layers = Vec::new();
        let size = match self.existing_layer(&chain)? {
            Some(s) => s,
            None => {
                let stale = self.layer_dir(&chain);
                if stale.exists() {
                    remove_all(&stale).ctx(|| format!("remove {}", stale.display()))?;
                }
                if let Some(dir) = self.place_layer(tmp, &chain)? {
                    new_layers.push(NewLayer {
                        chain_id: chain.clone(),
                        diff_id: diff_id.clone(),
                        parent: None,
                        size,
                        dir,
                    });
                    if let Some(g) = gz {
                        self.keep_gz_blob(&diff_id, g)?;
                    }
                }
                size
            }
        };
        let plan = Plan {
            id: id.clone(),
            created,
            size,
            architecture: host_arch().into(),
            os: "linux".into(),
            config,
            diff_ids: vec![diff_id],
            tags: tag.into_iter().collect(),
        };
        let res = write_atomic(&self.blob_path(&id), &cfg_bytes)
            .and_then(|_| self.register(&new_layers, std::slice::from_ref(&plan)));
        if let Err(e) = res {
            for l in &new_layers {
                let _ = remove_all(&l.dir);
            }
            return Err(e);
        }
        tracing::info!(id = %id, tags = ?plan.tags, "imported image");
        Ok(id)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let db = lock(&self.db);
        let ids: Vec<String> = {
            let mut st = db.prepare("SELECT id FROM images")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut out = ids
            .iter()
            .map(|id| load_record(&db, id))
            .collect::<Result<Vec<_>>>()?;
        let ts = |r: &ImageRecord| {
            chrono::DateTime::parse_from_rfc3339(&r.created)
                .map(|d| d.timestamp_nanos_opt().unwrap_or(0))
                .unwrap_or(0)
        };
        out.sort_by(|a, b| ts(b).cmp(&ts(a)).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// By "name", "name:tag", "name@digest", "sha256:<hex>" or a unique hex
    /// id prefix. Tag lookup comes first.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        let db = lock(&self.db);
        let id = resolve_id(&db, reference)?;
        load_record(&db, &id)
    }

    /// `docker tag` (IMG-11). `image_id` may be any reference `resolve` takes.
    pub fn tag(&self, image_id: &str, reference: &str) -> Result<()> {
        let r = parse_reference(reference)?;
        if r.digest.is_some() {
            return Err(Error::InvalidReference(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let name = r.familiar();
        let db = lock(&self.db);
        let id = resolve_id(&db, image_id)?;
        db.execute(
            "INSERT OR REPLACE INTO tags (name, image_id, tagged) VALUES (?1, ?2, ?3)",
            params![name, id, now()],
        )?;
        tracing::info!(id = %id, tag = %name, "tagged image");
        Ok(())
    }

    /// Remove one tag (IMG-12 "Untagged: ..."). Returns the image id it
    /// pointed to; the image itself stays (possibly dangling).
    pub fn untag(&self, reference: &str) -> Result<String> {
        let r = parse_reference(reference)?;
        let name = format!("{}:{}", r.name, r.tag.as_deref().unwrap_or("latest"));
        let db = lock(&self.db);
        let id: Option<String> = db
            .query_row("SELECT image_id FROM tags WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()?;
        let id = id.ok_or_else(|| Error::NoSuchImage(name.clone()))?;
        db.execute("DELETE FROM tags WHERE name = ?1", [&name])?;
        tracing::info!(id = %id, tag = %name, "untagged image");
        Ok(id)
    }

    /// Delete an image with all its tags (IMG-12 "Deleted: ..."), then its
    /// layers no other image uses. `Conflict` while a snapshot uses it.
    /// Returns the chain ids of the removed layers, top first (dockerd
    /// reports them as `Deleted:` lines).
    pub fn delete(&self, reference: &str) -> Result<Vec<String>> {
        // No load/import may reuse a layer while we drop it.
        let _w = lock(&self.write_lock);
        let doomed: Vec<String> = {
            let mut db = lock(&self.db);
            let id = resolve_id(&db, reference)?;
            let user: Option<String> = db
                .query_row(
                    "SELECT key FROM snapshots WHERE image_id = ?1 LIMIT 1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(key) = user {
                return Err(Error::InUse(format!(
                    "conflict: unable to delete {} (must be forced) - image is being used by container {}",
                    &hex_of(&id)[..12],
                    key
                )));
            }
            let own_chains: Vec<String> = {
                let diffs: String =
                    db.query_row("SELECT diff_ids FROM images WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })?;
                let diffs: Vec<String> = serde_json::from_str(&diffs).unwrap_or_default();
                chain_ids(&diffs).into_iter().rev().collect()
            };
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM image_parents WHERE id = ?1", [&id])?;
            tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])?;
            tx.execute("DELETE FROM images WHERE id = ?1", [&id])?;
            // Layers still referenced by some image's chain.
            let mut used = std::collections::HashSet::new();
            {
                let mut st = tx.prepare("SELECT diff_ids FROM images")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                for row in rows {
                    let diffs: Vec<String> = serde_json::from_str(&row?)
                        .map_err(|e| Error::Internal(format!("corrupt image row: {e}")))?;
                    used.extend(chain_ids(&diffs));
                }
            }
            let all: Vec<String> = {
                let mut st = tx.prepare("SELECT chain_id FROM layers")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let mut doomed: Vec<String> = all.into_iter().filter(|c| !used.contains(c)).collect();
            doomed.sort_by_key(|c| own_chains.iter().position(|o| o == c).unwrap_or(usize::MAX));
            for c in &doomed {
                tx.execute("DELETE FROM layers WHERE chain_id = ?1", [c])?;
            }
            // Compressed layer blobs no remaining image uses.
            let used_diffs: std::collections::HashSet<String> = {
                let mut st = tx.prepare("SELECT diff_ids FROM images")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                let mut set = std::collections::HashSet::new();
                for row in rows {
                    let diffs: Vec<String> = serde_json::from_str(&row?).unwrap_or_default();
                    set.extend(diffs);
                }
                set
            };
            let blob_rows: Vec<(String, String)> = {
                let mut st = tx.prepare("SELECT diff_id, digest FROM layer_blobs")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let mut doomed_blobs = Vec::new();
            for (diff, digest) in blob_rows {
                if !used_diffs.contains(&diff) {
                    tx.execute("DELETE FROM layer_blobs WHERE diff_id = ?1", [&diff])?;
                    doomed_blobs.push(digest);
                }
            }
            tx.commit()?;
            let _ = fs::remove_file(self.blob_path(&id));
            for d in doomed_blobs {
                let _ = fs::remove_file(self.blob_path(&d));
            }
            tracing::info!(id = %id, layers = doomed.len(), "deleted image");
            doomed
        };
        // Directories go after the commit; a crash here leaves unregistered
        // dirs that `open` removes.
        for c in &doomed {
            let dir = self.layer_dir(c);
            let trash = self
                .root
                .join("tmp")
                .join(format!("layer-{}", unique_suffix()));
            if fs::rename(&dir, &trash).is_ok() {
                remove_all(&trash).ctx(|| format!("remove {}", trash.display()))?;
            }
        }
        Ok(doomed)
    }

    /// Raw image config JSON (for inspect / history / save).
    pub fn config_blob(&self, reference: &str) -> Result<Vec<u8>> {
        let id = resolve_id(&lock(&self.db), reference)?;
        let p = self.blob_path(&id);
        fs::read(&p).ctx(|| format!("read {}", p.display()))
    }

    /// Layer content directories (`layers/<chain>/diff`), base first
    /// (GraphDriver data, STO-06).
    pub fn layer_dirs(&self, reference: &str) -> Result<Vec<PathBuf>> {
        let rec = self.resolve(reference)?;
        Ok(chain_ids(&rec.rootfs_layers)
            .iter()
            .map(|c| self.layer_dir(c).join("diff"))
            .collect())
    }

    /// Overlay snapshot for a container (STO-03, STO-05): creates
    /// snapshots/<key>/{upper,work} and returns one overlay mount. Mounts
    /// nothing. Idempotent for the same key.
    pub fn prepare_snapshot(&self, key: &str, image_id: &str) -> Result<Vec<Mount>> {
        validate_key(key)?;
        let rec = self.resolve(image_id)?;
        let snap = self.root.join("snapshots").join(key);
        let mut lowers: Vec<PathBuf> = chain_ids(&rec.rootfs_layers)
            .iter()
            .rev()
            .map(|c| self.layer_dir(c).join("diff"))
            .collect();
        for l in &lowers {
            if !l.is_dir() {
                return Err(Error::Internal(format!(
                    "layer directory {} of image {} is missing",
                    l.display(),
                    rec.id
                )));
            }
        }
        for d in ["upper", "work"] {
            let p = snap.join(d);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        if lowers.is_empty() {
            // overlayfs needs a lower dir; an image without layers gets an empty one.
            let empty = snap.join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("create {}", empty.display()))?;
            lowers.push(empty);
        }
        let lowerdir = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let upper = snap.join("upper").display().to_string();
        let work = snap.join("work").display().to_string();
        if [&lowerdir, &upper, &work]
            .iter()
            .any(|s| s.contains(',') || upper.contains(':'))
        {
            return Err(Error::Internal(format!(
                "image store root {} contains ',' or ':'; overlay options cannot express it",
                self.root.display()
            )));
        }
        let options = vec![
            format!("lowerdir={lowerdir}"),
            format!("upperdir={upper}"),
            format!("workdir={work}"),
        ];
        if options.iter().map(|o| o.len() + 1).sum::<usize>() > 4000 {
            return Err(Error::Internal(format!(
                "image {} has too many layers ({}) for one overlay mount",
                rec.id,
                rec.rootfs_layers.len()
            )));
        }
        lock(&self.db).execute(
            "INSERT OR REPLACE INTO snapshots (key, image_id, created) VALUES (?1, ?2, ?3)",
            params![key, rec.id, now()],
        )?;
        Ok(vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        }])
    }

    /// Remove snapshots/<key> (must be unmounted). Missing is Ok.
    pub fn remove_snapshot(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let snap = self.root.join("snapshots").join(key);
        // Rename first so a half-deleted snapshot is never reused.
        let doomed = self
            .root
            .join("tmp")
            .join(format!("snap-{key}-{}", unique_suffix()));
        match fs::rename(&snap, &doomed) {
            Ok(()) => remove_all(&doomed).ctx(|| format!("remove {}", doomed.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("remove {}", snap.display()), e)),
        }
        lock(&self.db).execute("DELETE FROM snapshots WHERE key = ?1", [key])?;
        Ok(())
    }
}

/// Resolve a reference to an image id; see `ImageStore::resolve`.
pub(crate) fn resolve_id(db: &Connection, reference: &str) -> Result<String> {
    let parsed = parse_reference(reference);
    if let Ok(p) = &parsed {
        if p.digest.is_none() || p.tag.is_some() {
            let name = format!("{}:{}", p.name, p.tag.as_deref().unwrap_or("latest"));
            let id: Option<String> = db
                .query_row("SELECT image_id FROM tags WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(id) = id {
                return Ok(id);
            }
        }
        if let Some(d) = &p.digest {
            let want = format!("\"{}@{}\"", p.name, d);
            let mut st = db.prepare("SELECT id, repo_digests FROM images")?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, digests) = row?;
                if digests.contains(&want) {
                    return Ok(id);
                }
            }
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let id_like = !hex.is_empty() && hex.len() <= 64 && is_hex(hex);
    if id_like {
        let mut st = db.prepare("SELECT id FROM images WHERE substr(id, 8, ?1) = ?2 LIMIT 2")?;
        let ids: Vec<String> = st
            .query_map(params![hex.len() as i64, hex], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        match ids.len() {
            0 => {}
            1 => return Ok(ids.into_iter().next().unwrap()),
            _ => return Err(Error::AmbiguousId(hex.to_string())),
        }
    }
    match parsed {
        Ok(p) if !id_like || reference.contains(':') => Err(Error::NoSuchImage(p.familiar())),
        Ok(_) => Err(Error::NoSuchImage(reference.to_string())),
        Err(_) if id_like => Err(Error::NoSuchImage(reference.to_string())),
        Err(e) => Err(e),
    }
}

fn load_record(db: &Connection, id: &str) -> Result<ImageRecord> {
    let row = db
        .query_row(
            "SELECT created, size, architecture, os, config, diff_ids, repo_digests
             FROM images WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
    let (created, size, architecture, os, config, diff_ids, digests) = row;
    let bad = |e: serde_json::Error| Error::Internal(format!("corrupt image row {id}: {e}"));
    let mut st = db.prepare("SELECT name FROM tags WHERE image_id = ?1 ORDER BY tagged, name")?;
    let mut repo_tags = st
        .query_map([id], |r| r.get(0))?
        .collect::<std::result::Result<Vec<String>, _>>()?;
    // dockerd lists references sorted by their fully qualified form.
    repo_tags.sort_by_cached_key(|t| crate::archive::qualified(t));
    Ok(ImageRecord {
        id: id.to_string(),
        repo_tags,
        repo_digests: serde_json::from_str(&digests).map_err(bad)?,
        created,
        size,
        architecture,
        os,
        config: serde_json::from_str(&config).map_err(bad)?,
        rootfs_layers: serde_json::from_str(&diff_ids).map_err(bad)?,
    })
}

fn add_repo_digest_tx(tx: &rusqlite::Transaction<'_>, id: &str, repo_digest: &str) -> Result<()> {
    let cur: Option<String> = tx
        .query_row("SELECT repo_digests FROM images WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(cur) = cur else {
        return Ok(());
    };
    let mut list: Vec<String> = serde_json::from_str(&cur).unwrap_or_default();
    let name = repo_digest.split('@').next().unwrap_or("");
    list.retain(|d| d.split('@').next() != Some(name));
    list.push(repo_digest.to_string());
    tx.execute(
        "UPDATE images SET repo_digests = ?1 WHERE id = ?2",
        params![
            serde_json::to_string(&list).map_err(|e| Error::Internal(e.to_string()))?,
            id
        ],
    )?;
    Ok(())
}

/// Removes a temp file on drop (a no-op once it was renamed away).
pub(crate) struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

pub(crate) fn scopeguard_remove(p: Option<PathBuf>) -> RemoveOnDrop {
    RemoveOnDrop(p)
}
