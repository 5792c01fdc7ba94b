//! One error classification shared by every crate. `api` maps it to HTTP
//! status codes in a single function.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Docker's "forbidden" class (403): pre-defined networks, active endpoints.
    Forbidden,
    InvalidArgument,
    Conflict,
    FailedPrecondition,
    Unavailable,
    Unimplemented,
    Internal,
}

impl ErrorKind {
    /// The HTTP status Docker uses for this class of error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Forbidden => 403,
            ErrorKind::AlreadyExists | ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::FailedPrecondition => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Unimplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}
