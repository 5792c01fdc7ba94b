//! The `berth` CLI and the `berthd` daemon entry point.

pub mod cli;
pub mod daemon;
pub mod daemon_net;
pub mod format;
