//! berth-image: the local image store. Loads `docker save` archives, imports
//! rootfs tarballs, keeps image metadata in SQLite, unpacks layers once per
//! chain ID and prepares overlayfs snapshots for containers. Synchronous; the
//! daemon calls it from `spawn_blocking`. Layout: docs/image-store.md.
#![forbid(unsafe_code)]

mod archive;
mod changes;
mod commit;
mod error;
mod import_url;
mod layer_tar;
mod meta;
mod reference;
pub mod registry;
pub mod search;
mod store;
mod unpack;
mod util;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use archive::SavePlan;
pub use commit::{apply_changes_json, commit_entries, CommitOptions, EMPTY_LAYER};
pub use error::{Error, Result};
pub use meta::HistoryItem;
pub use reference::{normalize_reference, parse_reference, Reference};
pub use registry::{Credentials, Progress, PullResult, RegistryConfig};
pub use store::ImageStore;

/// OCI chain ids of diff ids (base first).
pub fn chain_ids_of(diff_ids: &[String]) -> Vec<String> {
    store::chain_ids(diff_ids)
}

/// One image from a `load`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    /// Tags this load moved away from another image: (tag, old image id).
    pub replaced: Vec<(String, String)>,
}

/// Options for `import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `-m/--message`: image comment and history comment.
    pub message: Option<String>,
    /// `-c/--change` Dockerfile-like instructions.
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// "sha256:<hex of sha256(config json bytes)>"
    pub id: String,
    /// Familiar form: "busybox:latest", "localhost:5000/x/y:1".
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// RFC3339 from the config's "created" (or the import time).
    pub created: String,
    /// Sum of uncompressed layer sizes.
    pub size: i64,
    pub architecture: String,
    pub os: String,
    /// `config` of the image JSON.
    pub config: ImageConfig,
    /// Diff IDs, base first.
    pub rootfs_layers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: Option<HashMap<String, String>>,
    pub exposed_ports: Option<serde_json::Map<String, serde_json::Value>>,
    pub stop_signal: Option<String>,
    pub volumes: Option<serde_json::Map<String, serde_json::Value>>,
}
