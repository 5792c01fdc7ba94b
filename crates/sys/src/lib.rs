//! Thin, safe wrappers over the Linux facilities the daemon needs directly:
//! atomic file writes, mounts and process checks.

pub mod at;
pub mod cgroup;
pub mod fdpass;
pub mod fs;
pub mod mount;
pub mod netns;
pub mod process;
pub mod signal;
pub mod term;
