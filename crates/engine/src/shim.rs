//! Daemon side of the shim protocol (`types::shim`, docs/shim-protocol.md).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_types::shim::{
    frame_header, parse_frame_header, FrameKind, Request, Response, ShimConfig, ShimReady,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Spawn `berth-runtime shim` for a bundle whose `shim.json` is written, and
/// wait until the container is created.
pub async fn spawn(shim_binary: &Path, config_path: &Path) -> Result<ShimReady> {
    let mut child = tokio::process::Command::new(shim_binary)
        .arg("shim")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::Internal(format!("start shim {}: {e}", shim_binary.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let status = child.wait().await.ok();
    let mut err_text = String::new();
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        stderr.read_to_string(&mut err_text),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            return Err(Error::Internal(format!(
                "shim exited ({}) without reporting: {}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                err_text.trim()
            )))
        }
    }
    let ready: ShimReady = serde_json::from_str(line.trim())
        .map_err(|e| Error::Internal(format!("bad shim reply {line:?}: {e}")))?;
    if let Some(e) = ready.error {
        return Err(Error::Internal(e));
    }
    Ok(ready)
}

pub fn write_config(path: &Path, cfg: &ShimConfig) -> Result<()> {
    let data = serde_json::to_vec_pretty(cfg).expect("shim config serializes");
    berth_sys::fs::write_volatile(path, &data, 0o600)
        .map_err(|e| Error::Internal(format!("write {}: {e}", path.display())))
}

/// One connection to a shim.
pub struct ShimConn {
    stream: UnixStream,
}

pub enum Frame {
    Control(Response),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

impl ShimConn {
    pub async fn connect(socket: &Path) -> std::io::Result<ShimConn> {
        Ok(ShimConn {
            stream: UnixStream::connect(socket).await?,
        })
    }

    pub async fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let body = serde_json::to_vec(req).expect("request serializes");
        self.send_raw(FrameKind::Control, &body).await
    }

    pub async fn send_raw(&mut self, kind: FrameKind, body: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(5 + body.len());
        buf.extend_from_slice(&frame_header(kind, body.len() as u32));
        buf.extend_from_slice(body);
        self.stream.write_all(&buf).await
    }

    /// Next frame; `None` at end of stream.
    pub async fn recv(&mut self) -> std::io::Result<Option<Frame>> {
        let mut h = [0u8; 5];
        match self.stream.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let (kind, len) = parse_frame_header(&h).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame from shim")
        })?;
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await?;
        Ok(Some(match kind {
            FrameKind::Control => Frame::Control(
                serde_json::from_slice(&body)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            ),
            FrameKind::Stdout => Frame::Stdout(body),
            FrameKind::Stderr => Frame::Stderr(body),
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unexpected frame kind from shim",
                ))
            }
        }))
    }

    /// Send one request and wait for its control reply, skipping output.
    pub async fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        self.send(req).await?;
        loop {
            match self.recv().await? {
                Some(Frame::Control(r)) => return Ok(r),
                Some(_) => continue,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "shim closed the connection",
                    ))
                }
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn call(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let mut c = ShimConn::connect(socket).await?;
    c.call(req).await
}
