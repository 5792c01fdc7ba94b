//! Error type of the image store. Messages follow Docker's wording where the
//! CLI shows them to users.

use berth_types::ErrorKind;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown image; `0` is the reference as the user should see it.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// Reference grammar violation; full Docker message in `0`.
    #[error("{0}")]
    InvalidReference(String),
    /// A hex id prefix matching more than one image.
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousId(String),
    /// Bad `docker save` / rootfs tarball, manifest, config or layer.
    #[error("{0}")]
    InvalidArchive(String),
    /// A tar entry that would write outside the layer directory.
    #[error("unsafe tar entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: String },
    /// Bad `--change` instruction for import.
    #[error("{0}")]
    InvalidChange(String),
    /// Image still used (snapshots exist).
    #[error("{0}")]
    InUse(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Internal(String),
    /// A registry refused the credentials (or none were given).
    #[error("{0}")]
    Unauthorized(String),
    /// Any other registry failure.
    #[error("{message}")]
    Registry { kind: ErrorKind, message: String },
    /// The connection to a registry failed (refused, TLS, timeout): the
    /// next endpoint may be tried.
    #[error("{0}")]
    Transport(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchImage(_) => ErrorKind::NotFound,
            Error::InvalidReference(_)
            | Error::AmbiguousId(_)
            | Error::InvalidArchive(_)
            | Error::UnsafeEntry { .. }
            | Error::InvalidChange(_) => ErrorKind::InvalidArgument,
            Error::InUse(_) => ErrorKind::Conflict,
            Error::Io { .. } | Error::Db(_) | Error::Internal(_) | Error::Unauthorized(_) => {
                ErrorKind::Internal
            }
            Error::Registry { kind, .. } => *kind,
            Error::Transport(_) => ErrorKind::Internal,
        }
    }

    /// A connection-level registry failure (see `Transport`).
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_))
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn archive(msg: impl Into<String>) -> Error {
        Error::InvalidArchive(msg.into())
    }
}

/// Attach a context string to io errors: `.ctx(|| format!(...))`.
pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}
