//! A filesystem mount described as data. `image` produces these for a
//! container's root filesystem; the shim performs them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type, e.g. `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    /// Mount options, e.g. `lowerdir=...`, `upperdir=...`, `workdir=...`, `rbind`.
    #[serde(default)]
    pub options: Vec<String>,
}
