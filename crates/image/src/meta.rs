//! Image metadata beyond the rows `store.rs` keeps: the local parent of a
//! committed image and `docker history` (IMG-06).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::error::Result;
use crate::store::{chain_ids, resolve_id};
use crate::ImageStore;

/// One row of `GET /images/{name}/history`, newest first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    /// Familiar `repo:tag` names of the image this row's id names (null when none).
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

#[derive(serde::Deserialize, Default)]
struct HistoryEntry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

#[derive(serde::Deserialize, Default)]
struct ConfigHistory {
    #[serde(default)]
    history: Option<Vec<HistoryEntry>>,
}

impl ImageStore {
    /// The local parent (set by commit), if it is still stored.
    pub fn parent_of(&self, id: &str) -> Result<Option<String>> {
        let db = self.db();
        let p: Option<String> = db
            .query_row(
                "SELECT parent FROM image_parents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match p {
            Some(p) => db
                .query_row("SELECT id FROM images WHERE id = ?1", [&p], |r| r.get(0))
                .optional()?,
            None => None,
        })
    }

    /// Stored images whose local parent is `id`.
    pub fn children_of(&self, id: &str) -> Result<Vec<String>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT p.id FROM image_parents p JOIN images i ON i.id = p.id WHERE p.parent = ?1",
        )?;
        let rows = st.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub(crate) fn set_parent(&self, id: &str, parent: &str) -> Result<()> {
        self.db().execute(
            "INSERT OR REPLACE INTO image_parents (id, parent) VALUES (?1, ?2)",
            params![id, parent],
        )?;
        Ok(())
    }

    /// Unpacked size of each layer of a chain (`diff_ids` base first).
    pub fn layer_sizes(&self, diff_ids: &[String]) -> Result<Vec<i64>> {
        let db = self.db();
        chain_ids(diff_ids)
            .iter()
            .map(|c| {
                Ok(db
                    .query_row(
                        "SELECT diff_size FROM layers WHERE chain_id = ?1",
                        [c],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?
                    .unwrap_or(0))
            })
            .collect()
    }

    /// `docker history`: one row per history entry of the config, newest
    /// first; empty-layer entries have size 0. The first row carries the
    /// image id and tags, the next ones the local parent chain's (commit),
    /// the rest `<missing>` — as dockerd reports it.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryItem>> {
        let id = resolve_id(&self.db(), reference)?;
        let rec = self.resolve(&id)?;
        let cfg = self.config_blob(&id)?;
        let hist: ConfigHistory = serde_json::from_slice(&cfg).unwrap_or_default();
        let sizes = self.layer_sizes(&rec.rootfs_layers)?;
        let mut layer = 0usize;
        let mut rows = Vec::new();
        for h in hist.history.unwrap_or_default() {
            let size = if h.empty_layer {
                0
            } else {
                let s = sizes.get(layer).copied().unwrap_or(0);
                layer += 1;
                s
            };
            rows.push(HistoryItem {
                id: "<missing>".into(),
                created: h
                    .created
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: h.created_by.unwrap_or_default(),
                tags: None,
                size,
                comment: h.comment.unwrap_or_default(),
            });
        }
        rows.reverse();
        let mut cur = Some(rec);
        for row in rows.iter_mut() {
            let Some(r) = cur.take() else { break };
            row.id = r.id.clone();
            row.tags = (!r.repo_tags.is_empty()).then(|| r.repo_tags.clone());
            cur = match self.parent_of(&r.id)? {
                Some(p) => Some(self.resolve(&p)?),
                None => None,
            };
        }
        Ok(rows)
    }
}
