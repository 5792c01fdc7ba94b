//! Shared vocabulary of berth: error kinds, mounts, the shim protocol and the
//! Docker Engine API models. No I/O lives here.
#![forbid(unsafe_code)]

pub mod api;
pub mod defaults;
pub mod error;
pub mod mount;
pub mod shim;

pub use error::ErrorKind;
pub use mount::Mount;
