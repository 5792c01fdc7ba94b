use berth_types::ErrorKind;

pub type Result<T> = std::result::Result<T, Error>;

/// Engine errors. Messages follow Docker's wording where clients show them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotModified(_) => ErrorKind::FailedPrecondition,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Unimplemented(_) => ErrorKind::Unimplemented,
            Error::Image(e) => e.kind(),
            Error::Io { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Docker answers some no-op requests (start of a running container,
    /// stop of a stopped one) with 304 and no body.
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Error::NotModified(_))
    }
}

/// Attach context to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
