//! `docker save` (IMG-14): several images into one tar that is both a
//! docker-archive (`manifest.json`, `repositories`) and an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/`), as Docker 25+ writes it.
//! Config and layer files live once in `blobs/sha256/`; `manifest.json`
//! points at them, so dockerd 20.10's `load` reads the archive too.
//!
//! Layer tars must hash to the config's diff ids, so they are regenerated
//! from the compressed blob kept at load/import/pull/commit time (its
//! uncompressed stream *is* the original tar). A layer without such a blob
//! is rebuilt from its `diff/` directory and accepted only if the result
//! hashes to the diff id.
//!
//! Saving has two phases: [`ImageStore::prepare_save`] resolves the names,
//! measures and verifies every layer (all errors happen here, before the
//! caller has sent anything), [`ImageStore::write_save`] streams the tar.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use rusqlite::OptionalExtension;
use serde_json::json;

use crate::error::{Error, IoContext, Result};
use crate::reference::parse_reference;
use crate::store::{chain_ids, hex_of, resolve_id};
use crate::util::{maybe_gunzip, sha256_hex, HashingReader, TempDir};
use crate::ImageStore;

const TAR_SIZES: &str = "CREATE TABLE IF NOT EXISTS layer_tar_sizes (
    diff_id TEXT PRIMARY KEY, blob TEXT NOT NULL, size INTEGER NOT NULL);";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Where a layer tar comes from.
enum LayerSource {
    /// A compressed (or plain) blob whose decoded stream is the layer tar.
    Blob(PathBuf),
    /// A tar rebuilt into the plan's scratch dir.
    Rebuilt(PathBuf),
}

struct SaveLayer {
    diff_id: String,
    size: u64,
    source: LayerSource,
}

struct SaveImage {
    id: String,
    config: Vec<u8>,
    created: Option<String>,
    tags: Vec<String>,
    diff_ids: Vec<String>,
}

/// Everything `write_save` needs; holds scratch files until dropped.
pub struct SavePlan {
    images: Vec<SaveImage>,
    layers: BTreeMap<String, SaveLayer>,
    _scratch: Option<TempDir>,
}

impl SavePlan {
    /// Image ids in the archive, in order.
    pub fn image_ids(&self) -> Vec<String> {
        self.images.iter().map(|i| i.id.clone()).collect()
    }
}

/// Fully qualified name for the OCI `io.containerd.image.name` annotation.
pub(crate) fn qualified(familiar: &str) -> String {
    let first = familiar.split('/').next().unwrap_or("");
    let has_host = familiar.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        familiar.to_string()
    } else if familiar.contains('/') {
        format!("docker.io/{familiar}")
    } else {
        format!("docker.io/library/{familiar}")
    }
}

fn split_tag(t: &str) -> (&str, &str) {
    t.rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .unwrap_or((t, "latest"))
}

impl ImageStore {
    /// Resolve `names` as `docker save` does (`repo` alone = every tag of
    /// that repository, `repo:tag` = that tag, an id = the image without
    /// tags), then measure and verify every layer.
    pub fn prepare_save(&self, names: &[String]) -> Result<SavePlan> {
        let mut images: Vec<SaveImage> = Vec::new();
        for name in names {
            let mut picked: Vec<(String, Option<String>)> = Vec::new();
            let parsed = parse_reference(name).ok();
            if let Some(p) = parsed
                .as_ref()
                .filter(|p| p.tag.is_none() && p.digest.is_none())
            {
                // Name only: all tags of the repository.
                let db = self.db();
                let mut st = db.prepare(
                    "SELECT name, image_id FROM tags WHERE substr(name, 1, ?1) = ?2 ORDER BY name",
                )?;
                let prefix = format!("{}:", p.name);
                let rows = st.query_map(rusqlite::params![prefix.len() as i64, prefix], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                for row in rows {
                    let (t, id) = row?;
                    if !t[prefix.len()..].contains('/') {
                        picked.push((id, Some(t)));
                    }
                }
            }
            if picked.is_empty() {
                let db = self.db();
                // dockerd 20.10's wording: a missing repository is "No such
                // image: <name>", a missing tag "reference does not exist".
                let id = resolve_id(&db, name).map_err(|e| match (&e, &parsed) {
                    (Error::NoSuchImage(_), Some(p)) if p.tag.is_some() || p.digest.is_some() => {
                        Error::Registry {
                            kind: berth_types::ErrorKind::NotFound,
                            message: "reference does not exist".into(),
                        }
                    }
                    (Error::NoSuchImage(_), _) => Error::NoSuchImage(name.clone()),
                    _ => e,
                })?;
                let tag = parsed
                    .as_ref()
                    .filter(|p| p.digest.is_none())
                    .map(|p| p.familiar())
                    .filter(|t| {
                        db.query_row(
                            "SELECT 1 FROM tags WHERE name = ?1 AND image_id = ?2",
                            [t, &id],
                            |_| Ok(()),
                        )
                        .optional()
                        .ok()
                        .flatten()
                        .is_some()
                    });
                picked.push((id, tag));
            }
            for (id, tag) in picked {
                let pos = match images.iter().position(|i| i.id == id) {
                    Some(p) => p,
                    None => {
                        let rec = self.resolve(&id)?;
                        let p = self.blob_path(&id);
                        let config = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
                        let created = serde_json::from_slice::<serde_json::Value>(&config)
                            .ok()
                            .and_then(|v| v.get("created")?.as_str().map(String::from));
                        images.push(SaveImage {
                            id: id.clone(),
                            config,
                            created,
                            tags: vec![],
                            diff_ids: rec.rootfs_layers,
                        });
                        images.len() - 1
                    }
                };
                if let Some(t) = tag {
                    if !images[pos].tags.contains(&t) {
                        images[pos].tags.push(t);
                    }
                }
            }
        }

        let mut layers: BTreeMap<String, SaveLayer> = BTreeMap::new();
        let mut scratch: Option<TempDir> = None;
        for img in &images {
            let chains = chain_ids(&img.diff_ids);
            for (i, diff) in img.diff_ids.iter().enumerate() {
                if layers.contains_key(diff) {
                    continue;
                }
                let layer = self.save_layer(diff, &chains[i], &mut scratch)?;
                layers.insert(diff.clone(), layer);
            }
        }
        Ok(SavePlan {
            images,
            layers,
            _scratch: scratch,
        })
    }

    /// Find and verify the tar of one layer.
    fn save_layer(
        &self,
        diff_id: &str,
        chain_id: &str,
        scratch: &mut Option<TempDir>,
    ) -> Result<SaveLayer> {
        if let Some((digest, _, _)) = self.layer_blob(diff_id)? {
            let path = self.blob_path(&digest);
            // Measured and verified by an earlier save: stream directly
            // (the digest is still checked while streaming).
            if let Some(size) = self.cached_tar_size(diff_id, &digest) {
                return Ok(SaveLayer {
                    diff_id: diff_id.to_string(),
                    size,
                    source: LayerSource::Blob(path),
                });
            }
            let f = fs::File::open(&path).ctx(|| format!("open {}", path.display()))?;
            let mut hr =
                HashingReader::new(maybe_gunzip(f).ctx(|| format!("read layer blob {digest}"))?);
            io::copy(&mut hr, &mut io::sink()).ctx(|| format!("read layer blob {digest}"))?;
            let size = hr.count;
            let got = hr.finish().ctx(|| format!("read layer blob {digest}"))?;
            if got == diff_id {
                self.cache_tar_size(diff_id, &digest, size);
                return Ok(SaveLayer {
                    diff_id: diff_id.to_string(),
                    size,
                    source: LayerSource::Blob(path),
                });
            }
            tracing::warn!(diff_id, blob = %digest, got = %got, "stored layer blob does not match its diff id");
        }
        // Rebuild from the unpacked directory.
        let dir = self.layer_dir(chain_id).join("diff");
        if !dir.is_dir() {
            return Err(Error::Internal(format!(
                "layer {diff_id} is missing from the image store"
            )));
        }
        if scratch.is_none() {
            *scratch = Some(TempDir::new_in(&self.root().join("tmp"), "save-")?);
        }
        let path = scratch
            .as_ref()
            .expect("scratch")
            .path()
            .join(hex_of(diff_id));
        let f = fs::File::create(&path).ctx(|| format!("create {}", path.display()))?;
        let mut hw = crate::util::HashingWriter::new(io::BufWriter::new(f));
        crate::layer_tar::write_dir_tar(&dir, &mut hw)
            .ctx(|| format!("archive layer {diff_id}"))?;
        hw.flush().ctx(|| format!("write {}", path.display()))?;
        let (got, size) = hw.finish();
        if got != diff_id {
            return Err(Error::Internal(format!(
                "layer {diff_id} cannot be exported: its original tar is not stored and the \
                 rebuilt one differs ({got}); re-load or re-pull the image"
            )));
        }
        Ok(SaveLayer {
            diff_id: diff_id.to_string(),
            size,
            source: LayerSource::Rebuilt(path),
        })
    }

    /// Uncompressed size of a layer blob, remembered after a verified save
    /// (table `layer_tar_sizes`, keyed by diff id and blob digest).
    fn cached_tar_size(&self, diff_id: &str, blob: &str) -> Option<u64> {
        let db = self.db();
        db.execute_batch(TAR_SIZES).ok()?;
        db.query_row(
            "SELECT size FROM layer_tar_sizes WHERE diff_id = ?1 AND blob = ?2",
            [diff_id, blob],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .ok()
        .flatten()
        .map(|s| s as u64)
    }

    fn cache_tar_size(&self, diff_id: &str, blob: &str, size: u64) {
        let db = self.db();
        if db.execute_batch(TAR_SIZES).is_ok() {
            let _ = db.execute(
                "INSERT OR REPLACE INTO layer_tar_sizes (diff_id, blob, size) VALUES (?1, ?2, ?3)",
                rusqlite::params![diff_id, blob, size as i64],
            );
        }
    }

    /// Stream the archive of a prepared plan.
    pub fn write_save(&self, plan: &SavePlan, out: &mut dyn Write) -> Result<()> {
        let werr = |e: io::Error| Error::io("write archive", e);
        let mut b = tar::Builder::new(out);
        let dir = |b: &mut tar::Builder<&mut dyn Write>, name: &str| -> io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            b.append_data(&mut h, name, io::empty())
        };
        let file = |b: &mut tar::Builder<&mut dyn Write>,
                    name: &str,
                    size: u64,
                    mtime: u64,
                    r: &mut dyn Read|
         -> io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(size);
            h.set_mtime(mtime);
            b.append_data(&mut h, name, r)
        };
        dir(&mut b, "blobs/").map_err(werr)?;
        dir(&mut b, "blobs/sha256/").map_err(werr)?;

        let mut written: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for img in &plan.images {
            let mtime = img
                .created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map(|t| t.timestamp().max(0) as u64)
                .unwrap_or(0);
            let mut oci_layers = Vec::new();
            for diff in &img.diff_ids {
                let l = &plan.layers[diff];
                oci_layers
                    .push(json!({"mediaType": MT_OCI_LAYER, "digest": l.diff_id, "size": l.size}));
                if !written.insert(diff.clone()) {
                    continue;
                }
                let name = format!("blobs/sha256/{}", hex_of(diff));
                let mut hr = match &l.source {
                    LayerSource::Blob(p) => {
                        let f = fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
                        HashingReader::new(maybe_gunzip(f).map_err(werr)?)
                    }
                    LayerSource::Rebuilt(p) => {
                        let f = fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
                        HashingReader::new(Box::new(io::BufReader::new(f)) as Box<dyn Read>)
                    }
                };
                file(&mut b, &name, l.size, mtime, &mut hr).map_err(werr)?;
                let got = hr.finish().map_err(werr)?;
                if got != *diff {
                    return Err(Error::Internal(format!(
                        "layer {diff} changed while it was being saved"
                    )));
                }
            }
            if written.insert(img.id.clone()) {
                let name = format!("blobs/sha256/{}", hex_of(&img.id));
                file(
                    &mut b,
                    &name,
                    img.config.len() as u64,
                    mtime,
                    &mut &img.config[..],
                )
                .map_err(werr)?;
            }
            let oci_manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, "digest": img.id, "size": img.config.len()},
                "layers": oci_layers,
            }))
            .map_err(|e| Error::Internal(e.to_string()))?;
            let mdigest = format!("sha256:{}", sha256_hex(&oci_manifest));
            if written.insert(mdigest.clone()) {
                let name = format!("blobs/sha256/{}", hex_of(&mdigest));
                file(
                    &mut b,
                    &name,
                    oci_manifest.len() as u64,
                    mtime,
                    &mut &oci_manifest[..],
                )
                .map_err(werr)?;
            }
            let desc = |annotations: Option<serde_json::Value>| {
                let mut d = json!({"mediaType": MT_OCI_MANIFEST, "digest": mdigest, "size": oci_manifest.len()});
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if img.tags.is_empty() {
                index.push(desc(None));
            }
            for t in &img.tags {
                let (repo, tag) = split_tag(t);
                index.push(desc(Some(json!({
                    "io.containerd.image.name": qualified(t),
                    "org.opencontainers.image.ref.name": tag,
                }))));
                if let Some(top) = img.diff_ids.last() {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), hex_of(top).to_string());
                }
            }
            manifest.push(json!({
                "Config": format!("blobs/sha256/{}", hex_of(&img.id)),
                "RepoTags": if img.tags.is_empty() { serde_json::Value::Null } else { json!(img.tags) },
                "Layers": img.diff_ids.iter().map(|d| format!("blobs/sha256/{}", hex_of(d))).collect::<Vec<_>>(),
            }));
        }
        let jsonb = |v: &serde_json::Value| -> Result<Vec<u8>> {
            serde_json::to_vec(v).map_err(|e| Error::Internal(e.to_string()))
        };
        let index = jsonb(&json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": index,
        }))?;
        let manifest = {
            let mut m = jsonb(&json!(manifest))?;
            m.push(b'\n');
            m
        };
        let layout = jsonb(&json!({"imageLayoutVersion": "1.0.0"}))?;
        file(&mut b, "index.json", index.len() as u64, 0, &mut &index[..]).map_err(werr)?;
        file(
            &mut b,
            "manifest.json",
            manifest.len() as u64,
            0,
            &mut &manifest[..],
        )
        .map_err(werr)?;
        file(
            &mut b,
            "oci-layout",
            layout.len() as u64,
            0,
            &mut &layout[..],
        )
        .map_err(werr)?;
        if !repositories.is_empty() {
            let mut r = jsonb(&json!(repositories))?;
            r.push(b'\n');
            file(&mut b, "repositories", r.len() as u64, 0, &mut &r[..]).map_err(werr)?;
        }
        b.finish().map_err(werr)?;
        Ok(())
    }

    /// `prepare_save` + `write_save`.
    pub fn save(&self, names: &[String], out: &mut dyn Write) -> Result<()> {
        let plan = self.prepare_save(names)?;
        self.write_save(&plan, out)
    }
}

/// One image of an OCI image layout, as `manifest.json` would list it:
/// (config path, tags, layer paths), paths relative to the archive root.
pub(crate) type LayoutEntry = (String, Option<Vec<String>>, Vec<String>);

#[derive(serde::Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
    #[serde(default)]
    platform: Option<OciPlatform>,
}

#[derive(serde::Deserialize)]
struct OciPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(serde::Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

#[derive(serde::Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
}

fn blob_rel(digest: &str) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("blobs/sha256/{h}"))
        }
        _ => Err(Error::archive(format!(
            "invalid digest {digest:?} in index.json"
        ))),
    }
}

/// The images of an OCI image layout (`oci-layout` + `index.json`, as
/// skopeo's oci-archive writes it, without `manifest.json`). Nested
/// indexes pick the host platform. `read` returns a file of the archive.
/// Tags come from `io.containerd.image.name`, else from
/// `org.opencontainers.image.ref.name` when that is a full reference.
pub(crate) fn oci_layout_entries(
    read: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<Option<Vec<LayoutEntry>>> {
    let Ok(index) = read("index.json") else {
        return Ok(None);
    };
    let index: OciIndex = serde_json::from_slice(&index)
        .map_err(|e| Error::archive(format!("invalid index.json: {e}")))?;
    let mut out: Vec<LayoutEntry> = Vec::new();
    let mut queue: Vec<(OciDescriptor, u8)> = index.manifests.into_iter().map(|d| (d, 0)).collect();
    while let Some((d, depth)) = queue.pop() {
        let body = read(&blob_rel(&d.digest)?)?;
        let is_index = d.media_type.contains("index") || d.media_type.contains("manifest.list");
        if is_index {
            if depth > 4 {
                return Err(Error::archive("invalid index.json: nested too deeply"));
            }
            let inner: OciIndex = serde_json::from_slice(&body)
                .map_err(|e| Error::archive(format!("invalid index {}: {e}", d.digest)))?;
            let host = crate::store::host_arch();
            let pick = inner
                .manifests
                .into_iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_none_or(|p| p.os == "linux" && p.architecture == host)
                })
                .ok_or_else(|| {
                    Error::archive(format!("no linux/{host} image in index {}", d.digest))
                })?;
            let mut pick = pick;
            if pick.annotations.is_empty() {
                pick.annotations = d.annotations.clone();
            }
            queue.push((pick, depth + 1));
            continue;
        }
        let m: OciManifest = serde_json::from_slice(&body)
            .map_err(|e| Error::archive(format!("invalid manifest {}: {e}", d.digest)))?;
        let tag = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
            .and_then(|n| {
                parse_reference(n)
                    .ok()
                    .filter(|_| n.contains(':') || n.contains('/'))
                    .map(|r| r.familiar())
            });
        let config = blob_rel(&m.config.digest)?;
        let layers = m
            .layers
            .iter()
            .map(|l| blob_rel(&l.digest))
            .collect::<Result<Vec<_>>>()?;
        match out.iter_mut().find(|(c, _, _)| *c == config) {
            Some((_, tags, _)) => {
                if let Some(t) = tag {
                    tags.get_or_insert_with(Vec::new).push(t);
                }
            }
            None => out.push((config, tag.map(|t| vec![t]), layers)),
        }
    }
    out.reverse();
    Ok(Some(out))
}
