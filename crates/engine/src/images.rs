//! Registry-facing image operations (IMG-09..IMG-12, REG-02..REG-05): pull, push, tag,
//! rmi, auth. The blocking work runs in `spawn_blocking`; pull and push
//! report Docker's JSON progress messages through a channel.

use std::sync::Arc;

pub use berth_image::registry::validate_mirror;
pub use berth_image::{Credentials, Progress, RegistryConfig};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{Engine, Error, Result};

/// One item of a progress stream (`POST /images/create`, `/images/{name}/push`).
#[derive(Debug)]
pub enum StreamItem {
    /// A JSON message to write as is.
    Json(Value),
    /// The operation failed (after zero or more messages).
    Error(Error),
}

/// Docker's JSON form of a progress event.
pub fn progress_json(p: &Progress) -> Value {
    match p {
        Progress::Status {
            id: Some(id),
            status,
        } => {
            if status.starts_with("Pulling from") || status.contains(": digest:") {
                json!({"status": status, "id": id})
            } else {
                json!({"status": status, "progressDetail": {}, "id": id})
            }
        }
        Progress::Status { id: None, status } => json!({"status": status}),
        Progress::Bytes {
            id,
            status,
            current,
            total,
        } => {
            let mut detail = json!({"current": current});
            if let Some(t) = total {
                detail["total"] = json!(t);
            }
            json!({"status": status, "progressDetail": detail, "id": id})
        }
        Progress::PushAux { tag, digest, size } => {
            json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})
        }
    }
}

/// Docker's in-stream error message.
pub fn error_json(e: &Error) -> Value {
    let m = e.to_string();
    json!({"errorDetail": {"message": m}, "error": m})
}

impl Engine {
    /// Registry settings; `BERTH_INSECURE_REGISTRIES=a,b` in berthd's
    /// environment adds insecure registries (tests).
    pub fn registry_config(&self) -> RegistryConfig {
        let mut cfg = self.cfg.registry.clone();
        for r in std::env::var("BERTH_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            cfg.insecure_registries.push(r.to_string());
        }
        cfg
    }

    fn progress_task(
        self: &Arc<Self>,
        op: impl FnOnce(
                &berth_image::ImageStore,
                &RegistryConfig,
                &mut dyn FnMut(Progress),
            ) -> berth_image::Result<()>
            + Send
            + 'static,
    ) -> mpsc::UnboundedReceiver<StreamItem> {
        let (tx, rx) = mpsc::unbounded_channel();
        let images = self.images.clone();
        let cfg = self.registry_config();
        tokio::task::spawn_blocking(move || {
            let mut emit = |p: Progress| {
                let _ = tx.send(StreamItem::Json(progress_json(&p)));
            };
            if let Err(e) = op(&images, &cfg, &mut emit) {
                let _ = tx.send(StreamItem::Error(Error::from(e)));
            }
        });
        rx
    }

    /// `POST /images/create?fromImage=`: pull (IMG-09/10). The stream ends
    /// with `Status: ...` or an error item.
    pub fn pull_image(
        self: &Arc<Self>,
        reference: String,
        creds: Option<Credentials>,
        platform: Option<String>,
    ) -> mpsc::UnboundedReceiver<StreamItem> {
        self.progress_task(move |store, cfg, emit| {
            store
                .pull_platform(&reference, platform.as_deref(), creds.as_ref(), cfg, emit)
                .map(|_| ())
        })
    }

    /// `POST /images/{name}/push` (REG-02).
    pub fn push_image(
        self: &Arc<Self>,
        reference: String,
        creds: Option<Credentials>,
    ) -> mpsc::UnboundedReceiver<StreamItem> {
        self.progress_task(move |store, cfg, emit| {
            store
                .push(&reference, creds.as_ref(), cfg, emit)
                .map(|_| ())
        })
    }

    /// `POST /images/{name}/tag?repo=&tag=` (IMG-11).
    pub async fn tag_image(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let images = self.images.clone();
        let source = source.to_string();
        tokio::task::spawn_blocking(move || images.tag(&source, &target))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// `POST /auth`: check credentials against a registry.
    pub async fn registry_login(&self, server: String, creds: Credentials) -> Result<()> {
        let cfg = self.registry_config();
        tokio::task::spawn_blocking(move || berth_image::registry::login(&cfg, &server, &creds))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// `DELETE /images/{name}?force=&noprune=` (IMG-12): untag a name, and
    /// delete the image once no name is left and no container uses it.
    /// Returns Docker's `[{"Untagged": ..}, {"Deleted": ..}]` list.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Value>> {
        self.remove_image_opts(name, force, false).await
    }

    /// `remove_image`; unless `noprune`, untagged parents left without
    /// children are deleted too (dockerd's prune of parents).
    pub async fn remove_image_opts(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<Value>> {
        let images = self.images.clone();
        let rec = {
            let images = images.clone();
            let n = name.to_string();
            tokio::task::spawn_blocking(move || images.resolve(&n))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        let short =
            |id: &str| -> String { id.trim_start_matches("sha256:").chars().take(12).collect() };
        let users: Vec<(String, bool)> = self
            .list(true, None)
            .into_iter()
            .filter(|c| c.image_id == rec.id)
            .map(|c| (c.id.clone(), c.state == "running" || c.state == "paused"))
            .collect();
        let children = {
            let (i2, id) = (images.clone(), rec.id.clone());
            tokio::task::spawn_blocking(move || i2.children_of(&id))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        let hex = name.trim_start_matches("sha256:");
        let by_id = !hex.is_empty()
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && rec.id.trim_start_matches("sha256:").starts_with(hex)
            && !rec
                .repo_tags
                .iter()
                .any(|t| t == &format!("{name}:latest") || t == name);
        let mut out = Vec::new();
        let by_name_tag = if by_id {
            None
        } else {
            berth_image::parse_reference(name)
                .ok()
                .filter(|r| r.digest.is_none())
                .map(|r| r.familiar())
                .filter(|t| rec.repo_tags.contains(t))
        };
        if let Some(tag) = by_name_tag {
            if rec.repo_tags.len() == 1 && !force {
                if let Some((cid, _)) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short(cid),
                        short(&rec.id)
                    )));
                }
            }
            let t = tag.clone();
            let i2 = images.clone();
            tokio::task::spawn_blocking(move || i2.untag(&t))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            out.push(json!({"Untagged": tag}));
            if rec.repo_tags.len() > 1 || !users.is_empty() || !children.is_empty() {
                // The repository's digest goes with its last tag (dockerd).
                let repo = tag
                    .rsplit_once(':')
                    .map(|(r, _)| r.to_string())
                    .unwrap_or_default();
                let others = rec.repo_tags.iter().any(|t| {
                    t != &tag && t.rsplit_once(':').map(|(r, _)| r) == Some(repo.as_str())
                });
                if !others {
                    let (i2, id) = (images.clone(), rec.id.clone());
                    let gone =
                        tokio::task::spawn_blocking(move || i2.remove_repo_digests(&id, &repo))
                            .await
                            .map_err(|e| Error::Internal(e.to_string()))??;
                    for d in gone {
                        out.push(json!({"Untagged": d}));
                    }
                }
                return Ok(out);
            }
        } else {
            if !children.is_empty() {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    short(&rec.id)
                )));
            }
            if let Some((cid, running)) = users.first() {
                if *running || !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (cannot be forced) - image is being used by {} container {}",
                        short(&rec.id),
                        if *running { "running" } else { "stopped" },
                        short(cid)
                    )
                    .replace(
                        "(cannot be forced)",
                        if *running { "(cannot be forced)" } else { "(must be forced)" },
                    )));
                }
            }
            if rec.repo_tags.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&rec.id)
                )));
            }
            for t in &rec.repo_tags {
                let t2 = t.clone();
                let i2 = images.clone();
                tokio::task::spawn_blocking(move || i2.untag(&t2))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                out.push(json!({"Untagged": t}));
            }
            if !users.is_empty() {
                // Forced while a stopped container uses it: the image stays, untagged.
                return Ok(out);
            }
        }
        for d in &rec.repo_digests {
            out.push(json!({"Untagged": d}));
        }
        let id = rec.id.clone();
        let parent = self.image_parent(&id).await;
        let layers = tokio::task::spawn_blocking(move || images.delete(&id))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        out.push(json!({"Deleted": rec.id}));
        // dockerd also lists the layers it released (chain ids, top first).
        out.extend(layers.into_iter().map(|l| json!({"Deleted": l})));
        if !noprune {
            self.prune_parents(parent, &mut out).await;
        }
        Ok(out)
    }
}
