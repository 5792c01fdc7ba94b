//! Image commands beyond pull/push/tag/rmi: save (IMG-14), history
//! (IMG-06), image prune (IMG-13), commit (IMG-18), search (IMG-08).
//! The store work runs in `spawn_blocking`.

use std::collections::HashMap;
use std::sync::Arc;

use berth_image::search::SearchResult;
use berth_image::{CommitOptions, HistoryItem};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::images::Credentials;
use crate::{Engine, Error, Result};

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Internal(e.to_string())
}

/// A `Write` that sends 64 KiB chunks into a bounded channel (the HTTP
/// response body); fails once the receiver is gone.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(64 * 1024));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `label=k` / `label=k=v` / `label!=...` of prune filters.
#[derive(Debug, Clone)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
    pub negate: bool,
}

impl LabelFilter {
    pub fn parse(s: &str, negate: bool) -> LabelFilter {
        match s.split_once('=') {
            Some((k, v)) => LabelFilter {
                key: k.to_string(),
                value: Some(v.to_string()),
                negate,
            },
            None => LabelFilter {
                key: s.to_string(),
                value: None,
                negate,
            },
        }
    }

    fn matches(&self, labels: &HashMap<String, String>) -> bool {
        let hit = match (&self.value, labels.get(&self.key)) {
            (None, Some(_)) => true,
            (Some(v), Some(have)) => v == have,
            _ => false,
        };
        hit != self.negate
    }
}

/// Options of `POST /images/prune`.
#[derive(Debug, Clone, Default)]
pub struct PruneImagesQuery {
    /// `dangling=false`: every unused image, not only untagged ones (-a).
    pub all: bool,
    /// `until=`: only images created before this Unix time.
    pub until: Option<i64>,
    pub labels: Vec<LabelFilter>,
}

/// `POST /commit` parameters.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    pub reference: Option<String>,
    pub author: String,
    pub comment: String,
    pub changes: Vec<String>,
    pub pause: bool,
    /// Body: a container config whose set fields override the container's.
    pub config: Option<Value>,
    pub docker_version: String,
}

impl Engine {
    /// `GET /images/get`, `GET /images/{name}/get`: the archive as a stream
    /// of chunks. Name and layer errors are returned before streaming.
    pub async fn save_images(
        &self,
        names: Vec<String>,
    ) -> Result<mpsc::Receiver<std::io::Result<Vec<u8>>>> {
        let images = self.images.clone();
        let plan = tokio::task::spawn_blocking(move || images.prepare_save(&names))
            .await
            .map_err(join_err)??;
        let (tx, rx) = mpsc::channel(8);
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(64 * 1024),
            };
            let res = images.write_save(&plan, &mut w).and_then(|_| {
                std::io::Write::flush(&mut w)
                    .map_err(|e| berth_image::Error::Internal(format!("write archive: {e}")))
            });
            if let Err(e) = res {
                tracing::warn!("save: {e}");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(rx)
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let images = self.images.clone();
        let name = name.to_string();
        Ok(tokio::task::spawn_blocking(move || images.history(&name))
            .await
            .map_err(join_err)??)
    }

    /// Local parent of an image (committed images), for inspect's `Parent`.
    pub async fn image_parent(&self, id: &str) -> Option<String> {
        let images = self.images.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || images.parent_of(&id).ok().flatten())
            .await
            .ok()
            .flatten()
    }

    /// `POST /images/prune` (IMG-13): untagged images (or, with `all`, every
    /// image) that no container uses and that pass the filters; an
    /// untagged image with children is kept. Returns Docker's
    /// `{"ImagesDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_images(&self, q: PruneImagesQuery) -> Result<Value> {
        let images = self.images.clone();
        let list = tokio::task::spawn_blocking(move || images.list())
            .await
            .map_err(join_err)??;
        let used: std::collections::HashSet<String> = self
            .list(true, None)
            .into_iter()
            .map(|c| c.image_id)
            .collect();
        let mut deleted = Vec::new();
        // Unpacked size of every layer (chain id), for SpaceReclaimed.
        let mut layer_size: HashMap<String, i64> = HashMap::new();
        for rec in &list {
            let images = self.images.clone();
            let diffs = rec.rootfs_layers.clone();
            let sizes = tokio::task::spawn_blocking(move || images.layer_sizes(&diffs))
                .await
                .map_err(join_err)??;
            layer_size.extend(
                berth_image_chain_ids(&rec.rootfs_layers)
                    .into_iter()
                    .zip(sizes),
            );
        }
        for rec in list {
            if used.contains(&rec.id) {
                continue;
            }
            if !q.all && !rec.repo_tags.is_empty() {
                continue;
            }
            let created = chrono::DateTime::parse_from_rfc3339(&rec.created)
                .map(|t| t.timestamp())
                .unwrap_or(0);
            if q.until.is_some_and(|u| created >= u) {
                continue;
            }
            let labels = rec.config.labels.clone().unwrap_or_default();
            if !q.labels.iter().all(|l| l.matches(&labels)) {
                continue;
            }
            let images = self.images.clone();
            let rid = rec.id.clone();
            let children = tokio::task::spawn_blocking(move || images.children_of(&rid))
                .await
                .map_err(join_err)??;
            if rec.repo_tags.is_empty() && !children.is_empty() {
                continue;
            }
            if !children.is_empty() {
                // A tagged parent of another image: only its tags go.
                for t in &rec.repo_tags {
                    let images = self.images.clone();
                    let t2 = t.clone();
                    if tokio::task::spawn_blocking(move || images.untag(&t2))
                        .await
                        .map_err(join_err)?
                        .is_ok()
                    {
                        deleted.push(json!({"Untagged": t}));
                    }
                }
                continue;
            }
            let images = self.images.clone();
            let rid = rec.id.clone();
            let parent = self.image_parent(&rid).await;
            match tokio::task::spawn_blocking(move || images.delete(&rid))
                .await
                .map_err(join_err)?
            {
                Ok(layers) => {
                    for t in &rec.repo_tags {
                        deleted.push(json!({"Untagged": t}));
                    }
                    for d in &rec.repo_digests {
                        deleted.push(json!({"Untagged": d}));
                    }
                    deleted.push(json!({"Deleted": rec.id}));
                    deleted.extend(layers.into_iter().map(|l| json!({"Deleted": l})));
                    self.prune_parents(parent, &mut deleted).await;
                }
                // Lost a race with a new container: skip, as dockerd does.
                // (or already gone as a pruned parent).
                Err(e)
                    if matches!(
                        e.kind(),
                        berth_types::ErrorKind::Conflict | berth_types::ErrorKind::NotFound
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        let reclaimed: i64 = deleted
            .iter()
            .filter_map(|d| d.get("Deleted").and_then(|x| x.as_str()))
            .filter_map(|c| layer_size.get(c))
            .sum();
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }

    /// `POST /commit` (IMG-18): the container's writable layer as a new
    /// image. Pauses a running container meanwhile (unless told not to).
    pub async fn commit_container(self: &Arc<Self>, req: CommitRequest) -> Result<String> {
        let rec = self.record(&req.container)?;
        if let Some(r) = &req.reference {
            berth_image::parse_reference(r)?;
        }
        let id = rec.id.clone();
        let mut container_config =
            serde_json::to_value(&rec.config).map_err(|e| Error::Internal(e.to_string()))?;
        if let Value::Object(m) = &mut container_config {
            if !m.contains_key("OnBuild") {
                m.insert("OnBuild".into(), Value::Null);
            }
        }
        let mut config = container_config.clone();
        if let (Some(Value::Object(over)), Value::Object(base)) = (&req.config, &mut config) {
            for (k, v) in over {
                let empty = v.is_null()
                    || v.as_str() == Some("")
                    || v.as_array().is_some_and(|a| a.is_empty())
                    || v.as_object().is_some_and(|o| o.is_empty())
                    || v.as_bool() == Some(false);
                if !empty {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        berth_image::apply_changes_json(&mut config, &req.changes)?;
        let paused_here = req.pause && rec.is_running() && {
            let st = self.record(&id)?.state.status;
            st == crate::container::Status::Running
        };
        if paused_here {
            self.pause(&id).await?;
        }
        let images = self.images.clone();
        let upper = images.root().join("snapshots").join(&id).join("upper");
        let opts = CommitOptions {
            parent: rec.image_id.clone(),
            upper,
            config,
            container_config,
            container_id: id.clone(),
            author: req.author.clone(),
            comment: req.comment.clone(),
            reference: req.reference.clone(),
            docker_version: req.docker_version.clone(),
        };
        let res = tokio::task::spawn_blocking(move || images.commit(&opts))
            .await
            .map_err(join_err);
        if paused_here {
            if let Err(e) = self.unpause(&id).await {
                tracing::warn!(container = %id, "unpause after commit: {e}");
            }
        }
        Ok(res??)
    }

    /// `GET /images/search` (IMG-08).
    pub async fn search_images(
        &self,
        term: String,
        limit: usize,
        creds: Option<Credentials>,
    ) -> Result<Vec<SearchResult>> {
        let cfg = self.registry_config();
        Ok(tokio::task::spawn_blocking(move || {
            berth_image::search::search(&cfg, &term, limit, creds.as_ref())
        })
        .await
        .map_err(join_err)??)
    }
}

/// OCI chain ids of a diff id list (base first).
fn berth_image_chain_ids(diff_ids: &[String]) -> Vec<String> {
    berth_image::chain_ids_of(diff_ids)
}

/// inspect's `Comment`: the config's, else the last history entry's
/// (commit -m puts it there, as dockerd does).
pub(crate) fn inspect_comment(cfg: &Value) -> Value {
    match cfg.get("comment").and_then(|c| c.as_str()) {
        Some(c) if !c.is_empty() => json!(c),
        _ => json!(cfg
            .get("history")
            .and_then(|h| h.as_array())
            .and_then(|h| h.last())
            .and_then(|h| h.get("comment"))
            .and_then(|c| c.as_str())
            .unwrap_or("")),
    }
}

impl Engine {
    /// The part of `GET /images/json` beyond tags (IMG-01/02): hide untagged
    /// images that have children (unless `all`), `label`, `before` and
    /// `since` filters, `ParentId`, and API < 1.43's `<none>:<none>`
    /// placeholders for untagged images.
    pub(crate) async fn refine_image_list(
        &self,
        q: &crate::ImageListQuery,
        out: &mut Vec<berth_types::api::ImageSummary>,
    ) -> Result<()> {
        let images = self.images.clone();
        let ids: Vec<String> = out.iter().map(|s| s.id.clone()).collect();
        let (before, since) = (q.before.clone(), q.since.clone());
        let (family, before_t, since_t) = tokio::task::spawn_blocking(move || {
            let mut family = HashMap::new();
            for id in ids {
                let parent = images.parent_of(&id)?;
                let has_children = !images.children_of(&id)?.is_empty();
                family.insert(id, (parent, has_children));
            }
            let created = |r: &Option<String>| -> berth_image::Result<Option<i64>> {
                match r {
                    None => Ok(None),
                    Some(r) => {
                        let rec = images.resolve(r)?;
                        Ok(Some(
                            chrono::DateTime::parse_from_rfc3339(&rec.created)
                                .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
                                .unwrap_or(0),
                        ))
                    }
                }
            };
            Ok::<_, berth_image::Error>((family, created(&before)?, created(&since)?))
        })
        .await
        .map_err(join_err)??;
        let images = self.images.clone();
        let precise: HashMap<String, i64> = {
            let ids: Vec<String> = out.iter().map(|s| s.id.clone()).collect();
            tokio::task::spawn_blocking(move || {
                ids.into_iter()
                    .filter_map(|id| {
                        let rec = images.resolve(&id).ok()?;
                        let t = chrono::DateTime::parse_from_rfc3339(&rec.created)
                            .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
                            .unwrap_or(0);
                        Some((id, t))
                    })
                    .collect()
            })
            .await
            .map_err(join_err)?
        };
        out.retain(|s| {
            let (_, has_children) = family.get(&s.id).cloned().unwrap_or((None, false));
            let untagged =
                s.repo_tags.is_empty() && s.repo_digests.as_ref().is_none_or(|d| d.is_empty());
            // dangling=true lists only leaf images (dockerd's Heads()).
            if has_children && (q.dangling == Some(true) || (untagged && !q.all)) {
                return false;
            }
            let t = precise.get(&s.id).copied().unwrap_or(0);
            if before_t.is_some_and(|b| t >= b) || since_t.is_some_and(|x| t <= x) {
                return false;
            }
            let labels = s.labels.clone().unwrap_or_default();
            q.labels.iter().all(|l| l.matches(&labels))
        });
        for s in out.iter_mut() {
            if let Some((Some(p), _)) = family.get(&s.id) {
                s.parent_id = p.clone();
            }
            if q.none_placeholders
                && s.repo_tags.is_empty()
                && s.repo_digests.as_ref().is_none_or(|d| d.is_empty())
            {
                s.repo_tags = vec!["<none>:<none>".into()];
                s.repo_digests = Some(vec!["<none>@<none>".into()]);
            }
        }
        Ok(())
    }
}

impl Engine {
    /// `POST /images/create?fromSrc=<url>`: the daemon downloads the rootfs.
    pub async fn import_image_url(
        &self,
        url: String,
        reference: Option<String>,
        message: Option<String>,
        changes: Vec<String>,
    ) -> Result<String> {
        let images = self.images.clone();
        let opts = berth_image::ImportOptions { message, changes };
        Ok(tokio::task::spawn_blocking(move || {
            images.import_url(&url, reference.as_deref(), &opts)
        })
        .await
        .map_err(join_err)??)
    }
}

impl Engine {
    /// After an image was deleted: delete its local parent chain while each
    /// parent has no tags or digests, no children and no container (dockerd
    /// prunes the untagged parents of a committed or built image).
    pub(crate) async fn prune_parents(&self, mut parent: Option<String>, out: &mut Vec<Value>) {
        while let Some(p) = parent.take() {
            let used = self.list(true, None).into_iter().any(|c| c.image_id == p);
            if used {
                return;
            }
            let images = self.images.clone();
            let p2 = p.clone();
            let step = tokio::task::spawn_blocking(move || {
                let rec = images.resolve(&p2)?;
                if !rec.repo_tags.is_empty()
                    || !rec.repo_digests.is_empty()
                    || !images.children_of(&p2)?.is_empty()
                {
                    return Ok(None);
                }
                let next = images.parent_of(&p2)?;
                let layers = images.delete(&p2)?;
                Ok::<_, berth_image::Error>(Some((layers, next)))
            })
            .await;
            match step {
                Ok(Ok(Some((layers, next)))) => {
                    out.push(json!({"Deleted": p}));
                    out.extend(layers.into_iter().map(|l| json!({"Deleted": l})));
                    parent = next;
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(image = %p, "pruning parent: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(image = %p, "pruning parent: {e}");
                    return;
                }
            }
        }
    }
}
