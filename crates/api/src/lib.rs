//! The Docker Engine API: the HTTP server over `engine`, and a client for
//! the `berth` CLI.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod client;
pub mod server;
pub mod stdcopy;
