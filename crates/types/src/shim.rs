//! The protocol between the daemon (`engine`) and the per-container shim
//! (`berth-runtime shim`). See `docs/shim-protocol.md`.
//!
//! Transport: a unix stream socket at [`ShimConfig::socket`]. Every message is
//! a frame: one byte [`FrameKind`], a big-endian `u32` payload length, then
//! the payload. Control frames carry JSON ([`Request`] / [`Response`]); output
//! frames carry raw bytes of the container's stdout or stderr.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Mount;

/// Version of this protocol; bumped on incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame payload either side accepts.
pub const MAX_FRAME: u32 = 16 << 20;

/// Written by the daemon to `<bundle>/shim.json`; the shim is started as
/// `berth-runtime shim --config <bundle>/shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// OCI bundle: `config.json`, with `root.path` = `rootfs`.
    pub bundle: PathBuf,
    /// Mounted by the shim, in order, onto `<bundle>/rootfs` before `create`,
    /// and unmounted after the container is deleted.
    pub rootfs_mounts: Vec<Mount>,
    /// OCI runtime binary driven through the runc command line
    /// (`berth-runtime`, `runc`, `crun`).
    pub runtime: PathBuf,
    /// `--root` passed to the runtime.
    pub runtime_root: PathBuf,
    /// Docker json-file log the shim appends stdout/stderr to.
    pub log_path: PathBuf,
    /// Written atomically (temp, fsync, rename) with an [`ExitStatus`] when the
    /// container has exited.
    pub exit_file: PathBuf,
    /// Unix socket the shim listens on.
    pub socket: PathBuf,
    /// Keep a pipe on the container's stdin that attach clients may write to.
    #[serde(default)]
    pub open_stdin: bool,
    /// Mount points whose submounts (other containers' rootfs and netns
    /// pins) the runtime create need not see: it runs in a mount namespace
    /// without them, keeping only this container's own.
    #[serde(default)]
    pub prune_mounts: Vec<PathBuf>,
}

/// The shim's first (and only) line on its stdout after `berth-runtime shim`
/// is spawned: the container was created (not yet started), or why not.
/// The spawned process exits right after; the shim itself lives on detached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimReady {
    /// Pid of the long-lived shim process.
    pub shim_pid: u32,
    /// Pid of the container's init process (created, waiting for `Start`).
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// JSON-encoded [`Request`] (to the shim) or [`Response`] (from it).
    Control = 0,
    /// Bytes the container wrote to stdout (shim → daemon).
    Stdout = 1,
    /// Bytes the container wrote to stderr (shim → daemon).
    Stderr = 2,
    /// Bytes for the container's stdin (daemon → shim).
    Stdin = 3,
    /// Close the container's stdin (daemon → shim), empty payload.
    StdinClose = 4,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            0 => FrameKind::Control,
            1 => FrameKind::Stdout,
            2 => FrameKind::Stderr,
            3 => FrameKind::Stdin,
            4 => FrameKind::StdinClose,
            _ => return None,
        })
    }
}

/// Requests, one connection may send several.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start the created container (`runtime start`). Reply: `Started`.
    Start,
    /// Stream output on this connection from now on: `Stdout`/`Stderr`
    /// frames, then a final `Exited` control frame. If `stdin`, the
    /// connection may send `Stdin`/`StdinClose` frames.
    Attach {
        stdout: bool,
        stderr: bool,
        stdin: bool,
    },
    /// Reply `Exited` once the container has exited (at once if it has).
    Wait,
    /// Send a signal (`runtime kill`). Reply: `Ok`.
    Kill { signal: i32 },
    /// Reply: `State`.
    State,
    /// Run an extra process in the running container (`runtime exec`): the
    /// shim writes `process` (an OCI `process` object) to
    /// `<bundle>/exec-<exec_id>.json`, runs it with pipes for its stdio
    /// (stdin a pipe if `stdin`, else `/dev/null`) and reaps it.
    /// Reply: `ExecStarted` (or `Error`); then the process's output as
    /// `Stdout`/`Stderr` frames on this connection only (not logged), and
    /// finally `ExecExited`. `Stdin`/`StdinClose` frames on this connection
    /// go to the process's stdin. One exec per connection.
    Exec {
        exec_id: String,
        process: serde_json::Value,
        #[serde(default)]
        stdin: bool,
    },
    /// Set the terminal size of the container (`exec_id` none) or of an
    /// exec's pty. Reply: `Ok` (also when there is no pty).
    Resize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec_id: Option<String>,
        width: u16,
        height: u16,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Started {
        pid: u32,
    },
    State {
        pid: u32,
        running: bool,
    },
    Exited(ExitStatus),
    Error {
        message: String,
    },
    /// An exec process runs (`pid` as seen from the host).
    ExecStarted {
        pid: u32,
    },
    /// An exec process ended: exit code, or 128 + signal.
    ExecExited {
        exit_code: i32,
    },
}

/// How the container's init process ended; also the exit file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number if killed by a signal.
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
}

/// Encode a frame header.
pub fn frame_header(kind: FrameKind, len: u32) -> [u8; 5] {
    let l = len.to_be_bytes();
    [kind as u8, l[0], l[1], l[2], l[3]]
}

/// Decode a frame header; `None` for an unknown kind or an oversize frame.
pub fn parse_frame_header(h: &[u8; 5]) -> Option<(FrameKind, u32)> {
    let kind = FrameKind::from_u8(h[0])?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    (len <= MAX_FRAME).then_some((kind, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = frame_header(FrameKind::Stderr, 70_000);
        assert_eq!(parse_frame_header(&h), Some((FrameKind::Stderr, 70_000)));
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(parse_frame_header(&[9, 0, 0, 0, 1]), None);
        let h = frame_header(FrameKind::Stdout, MAX_FRAME + 1);
        assert_eq!(parse_frame_header(&h), None);
    }

    #[test]
    fn request_json_shape() {
        let j = serde_json::to_string(&Request::Kill { signal: 9 }).unwrap();
        assert_eq!(j, r#"{"op":"kill","signal":9}"#);
        let r: Response = serde_json::from_str(
            r#"{"op":"exited","exit_code":137,"finished_at":"x","oom_killed":true}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Response::Exited(ExitStatus { exit_code: 137, .. })
        ));
    }

    #[test]
    fn exec_json_shape() {
        let r: Request =
            serde_json::from_str(r#"{"op":"exec","exec_id":"e1","process":{"args":["true"]}}"#)
                .unwrap();
        assert!(matches!(r, Request::Exec { stdin: false, .. }));
        let j = serde_json::to_string(&Response::ExecExited { exit_code: 3 }).unwrap();
        assert_eq!(j, r#"{"op":"exec_exited","exit_code":3}"#);
        let j = serde_json::to_string(&Request::Resize {
            exec_id: None,
            width: 80,
            height: 24,
        })
        .unwrap();
        assert_eq!(j, r#"{"op":"resize","width":80,"height":24}"#);
    }
}

/// The first packet `berth-runtime shim-launcher` sends on its control
/// socket (stdin): it runs and serves requests (one shim config path plus
/// a reply socket per packet).
pub const LAUNCHER_HELLO: &str = "berth-shim-launcher 1";
