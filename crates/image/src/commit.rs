//! `docker commit` (IMG-18): a container's writable layer (its overlay
//! upper dir) becomes a new layer on top of the container's image, with a
//! history entry, as dockerd 20.10 writes it. The new image's local parent
//! is the container's image.

use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::layer_tar::write_dir_tar_filtered;
use crate::reference::parse_reference;
use crate::store::{chain_ids, host_arch, now, scopeguard_remove, NewLayer, Plan};
use crate::util::{remove_all, unique_suffix, HashingWriter};
use crate::{ImageConfig, ImageStore};

/// diff id of a tar with no entries (two zero blocks): Docker's empty layer.
pub const EMPTY_LAYER: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// Paths the runtime creates in every container as mount points
/// (Docker keeps them in its "-init" layer, so they never reach a commit).
const MOUNT_POINTS: &[&str] = &[
    ".dockerenv",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "dev/mqueue",
    "proc",
    "sys",
];

pub struct CommitOptions {
    /// Image id of the container.
    pub parent: String,
    /// The container's overlay upper dir.
    pub upper: PathBuf,
    /// `config` of the new image (the container's config after --change).
    pub config: Value,
    /// `container_config`: the container's config as it ran.
    pub container_config: Value,
    pub container_id: String,
    pub author: String,
    pub comment: String,
    /// `repo[:tag]` to tag the result with.
    pub reference: Option<String>,
    /// Reported as `docker_version`.
    pub docker_version: String,
}

/// Layer paths a commit leaves out: empty mount-point files and dirs the
/// runtime made, and directories that only exist in `upper` because of
/// them (same metadata as in the image).
fn keep_entry(lowers: &[PathBuf], rel: &str, meta: &fs::Metadata, has_children: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    if MOUNT_POINTS.contains(&rel) {
        let empty = (meta.is_file() && meta.len() == 0) || (meta.is_dir() && !has_children);
        if empty {
            return false;
        }
    }
    if meta.is_dir() && !has_children {
        for l in lowers {
            if let Ok(lm) = fs::symlink_metadata(l.join(rel)) {
                return !(lm.is_dir()
                    && lm.mode() == meta.mode()
                    && lm.uid() == meta.uid()
                    && lm.gid() == meta.gid());
            }
        }
    }
    true
}

impl ImageStore {
    /// Create an image from a container's upper dir. Returns the image id.
    pub fn commit(&self, o: &CommitOptions) -> Result<String> {
        let tag = match &o.reference {
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
        let parent = self.resolve(&o.parent)?;
        let parent_cfg: Value = serde_json::from_slice(&self.config_blob(&parent.id)?)
            .map_err(|e| Error::Internal(format!("corrupt config of {}: {e}", parent.id)))?;
        // Lower dirs, top first, to compare directory metadata with.
        let lowers: Vec<PathBuf> = chain_ids(&parent.rootfs_layers)
            .iter()
            .rev()
            .map(|c| self.layer_dir(c).join("diff"))
            .collect();

        let _w = self.lock_writes();
        // The layer tar, kept in tmp/ while it is hashed and unpacked.
        let tar_path = self
            .root()
            .join("tmp")
            .join(format!("commit-{}.tar", unique_suffix()));
        let _tar_guard = scopeguard_remove(Some(tar_path.clone()));
        let file = fs::File::create(&tar_path).ctx(|| format!("create {}", tar_path.display()))?;
        let mut hw = HashingWriter::new(std::io::BufWriter::new(file));
        write_dir_tar_filtered(&o.upper, &mut hw, &|rel, meta, has_children| {
            keep_entry(&lowers, rel, meta, has_children)
        })
        .ctx(|| format!("archive {}", o.upper.display()))?;
        hw.flush().ctx(|| "write layer tar".into())?;
        let (digest, _) = hw.finish();
        let empty = digest == EMPTY_LAYER;

        let mut diff_ids = parent.rootfs_layers.clone();
        let mut new_layers = Vec::new();
        let mut size = parent.size as u64;
        if !empty {
            let mut f = fs::File::open(&tar_path).ctx(|| "open layer tar".into())?;
            f.rewind().ctx(|| "rewind layer tar".into())?;
            let (diff_id, s, tmp, gz) = self.extract_layer_opt(&mut f, true)?;
            let _gz_guard = scopeguard_remove(gz.as_ref().map(|g| g.tmp.clone()));
            if diff_id != digest {
                return Err(Error::Internal(format!(
                    "commit: layer changed while it was archived ({digest} vs {diff_id})"
                )));
            }
            diff_ids.push(diff_id.clone());
            let chains = chain_ids(&diff_ids);
            let chain = chains.last().expect("chain").clone();
            match self.existing_layer(&chain)? {
                Some(existing) => size += existing,
                None => {
                    if let Some(dir) = self.place_new_layer(tmp, &chain)? {
                        new_layers.push(NewLayer {
                            chain_id: chain.clone(),
                            diff_id: diff_id.clone(),
                            parent: chains.get(chains.len().wrapping_sub(2)).cloned(),
                            size: s,
                            dir,
                        });
                        if let Some(g) = gz {
                            self.keep_gz_blob(&diff_id, g)?;
                        }
                    }
                    size += s;
                }
            }
        }

        let created = now();
        let cmd = o
            .container_config
            .get("Cmd")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut entry = json!({"created": created, "created_by": cmd});
        if !o.author.is_empty() {
            entry["author"] = json!(o.author);
        }
        if !o.comment.is_empty() {
            entry["comment"] = json!(o.comment);
        }
        if empty {
            entry["empty_layer"] = json!(true);
        }
        let mut history = parent_cfg
            .get("history")
            .and_then(|h| h.as_array())
            .cloned()
            .unwrap_or_default();
        history.push(entry);
        let mut cfg = json!({
            "architecture": parent_cfg.get("architecture").cloned()
                .unwrap_or_else(|| json!(host_arch())),
            "config": o.config,
            "container": o.container_id,
            "container_config": o.container_config,
            "created": created,
            "docker_version": o.docker_version,
            "history": history,
            "os": parent_cfg.get("os").cloned().unwrap_or_else(|| json!("linux")),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if !o.author.is_empty() {
            cfg["author"] = json!(o.author);
        }
        if let Some(v) = parent_cfg.get("variant") {
            cfg["variant"] = v.clone();
        }
        let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| Error::Internal(e.to_string()))?;
        let id = format!("sha256:{}", crate::util::sha256_hex(&cfg_bytes));
        let image_config: ImageConfig =
            serde_json::from_value(o.config.clone()).unwrap_or_default();
        let plan = Plan {
            id: id.clone(),
            created,
            size,
            architecture: parent.architecture.clone(),
            os: parent.os.clone(),
            config: image_config,
            diff_ids,
            tags: tag.into_iter().collect(),
        };
        let res = crate::util::write_atomic(&self.blob_path(&id), &cfg_bytes)
            .and_then(|_| self.register(&new_layers, std::slice::from_ref(&plan)))
            .and_then(|_| self.set_parent(&id, &parent.id));
        if let Err(e) = res {
            for l in &new_layers {
                let _ = remove_all(&l.dir);
            }
            return Err(e);
        }
        tracing::info!(id = %id, parent = %parent.id, tags = ?plan.tags, empty, "committed image");
        Ok(id)
    }
}

/// Used by tests: the entries a commit would archive from `upper`.
#[doc(hidden)]
pub fn commit_entries(upper: &Path, lowers: &[PathBuf]) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    write_dir_tar_filtered(upper, &mut buf, &|rel, meta, has_children| {
        keep_entry(lowers, rel, meta, has_children)
    })?;
    let mut ar = tar::Archive::new(&buf[..]);
    for e in ar.entries()? {
        out.push(e?.path()?.display().to_string());
    }
    Ok(out)
}

/// Apply `--change` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
/// LABEL, EXPOSE, VOLUME, STOPSIGNAL) to a container config in its JSON form.
pub fn apply_changes_json(config: &mut Value, changes: &[String]) -> Result<()> {
    if changes.iter().all(|c| c.trim().is_empty()) {
        return Ok(());
    }
    let mut ic: ImageConfig = serde_json::from_value(config.clone()).unwrap_or_default();
    crate::changes::apply_changes(&mut ic, changes)?;
    let v = serde_json::to_value(&ic).map_err(|e| Error::Internal(e.to_string()))?;
    if let (Some(obj), Value::Object(new)) = (config.as_object_mut(), v) {
        for (k, val) in new {
            if !val.is_null() {
                obj.insert(k, val);
            }
        }
    }
    Ok(())
}
