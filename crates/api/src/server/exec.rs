//! Exec routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start`,
//! `GET /exec/{id}/json`, `POST /exec/{id}/resize`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::exec::{ExecCreateBody, ExecSession};
use berth_engine::{Engine, Output};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::parse_json;
use super::{ApiError, ApiVersion};
use crate::stdcopy;

type Q = Query<HashMap<String, String>>;

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ExecCreateBody = parse_json(&body)?;
    let exec_id = engine.exec_create(&id, body)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "Id": exec_id })),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

fn encode(out: Output, tty: bool) -> Vec<u8> {
    let (stream, data) = match out {
        Output::Stdout(d) => (1, d),
        Output::Stderr(d) => (2, d),
    };
    if tty {
        data
    } else {
        stdcopy::frame(stream, &data)
    }
}

/// Start failure after the hijack: dockerd writes the error on stdout.
fn error_bytes(msg: &str, tty: bool) -> Vec<u8> {
    encode(Output::Stdout(format!("{msg}\r\n").into_bytes()), tty)
}

/// `POST /exec/{id}/start`: detached (200, empty), or a hijacked
/// bidirectional stream (client bytes → the process's stdin, its output →
/// client) that ends when the process has exited.
pub async fn start(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let b: StartBody = parse_json(&body)?;
    let entry = engine.exec_check(&id)?;
    let tty = entry.cfg.tty;
    let detach_keys = parse_detach_keys(&entry.cfg.detach_keys)?;
    if b.detach {
        engine.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let content_type = if tty || !v.at_least(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if let Some(on_upgrade) = on_upgrade {
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let io = TokioIo::new(upgraded);
            let (mut rd, mut wr) = tokio::io::split(io);
            let session = match engine.exec_start(&id, false).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = wr.write_all(&error_bytes(&e.to_string(), tty)).await;
                    let _ = wr.shutdown().await;
                    return;
                }
            };
            let ExecSession {
                mut output, stdin, ..
            } = session;
            // The detach keys end this stream; the process keeps running.
            let (detached_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
            let reader = stdin.map(|tx| {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    let mut scan = DetachScanner::new(detach_keys);
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(None);
                                break;
                            }
                            Ok(n) => {
                                let (data, detach) = scan.feed(&buf[..n]);
                                if !data.is_empty() && tx.send(Some(data)).is_err() {
                                    break;
                                }
                                if detach {
                                    let _ = detached_tx.send(());
                                    break;
                                }
                            }
                        }
                    }
                    // Keep the sender until the exec ends (dropping it is
                    // harmless, but the shim connection stays until then).
                    std::future::pending::<()>().await;
                })
            });
            let mut armed = true;
            loop {
                tokio::select! {
                    out = output.recv() => match out {
                        Some(out) => {
                            if wr.write_all(&encode(out, tty)).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    r = &mut detached, if armed => {
                        if r.is_ok() {
                            break; // detach keys
                        }
                        armed = false;
                    }
                }
            }
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
            if let Some(r) = reader {
                r.abort();
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .expect("valid response"));
    }
    // No upgrade: output as a streamed body, no stdin.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        match engine.exec_start(&id, false).await {
            Ok(mut s) => {
                drop(s.stdin.take());
                while let Some(out) = s.output.recv().await {
                    if tx.send(Bytes::from(encode(out, tty))).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Bytes::from(error_bytes(&e.to_string(), tty))).await;
            }
        }
    });
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from_stream(s)).into_response())
}

/// `GET /exec/{id}/json`.
pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.exec_inspect(&id)?).into_response())
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let (h, w) = size_query(&q)?;
    engine.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

/// `h` and `w` of a resize request (missing = 0).
fn size_query(q: &std::collections::HashMap<String, String>) -> Result<(u16, u16), ApiError> {
    let num = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .map(|v| v.parse::<u16>())
            .unwrap_or(Ok(0))
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}")))
    };
    Ok((num("h")?, num("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn container_resize(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let (h, w) = size_query(&q)?;
    engine.container_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

/// Docker's `--detach-keys` syntax: comma-separated `ctrl-<x>` or single
/// characters; default ctrl-p,ctrl-q.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let spec = if spec.is_empty() {
        "ctrl-p,ctrl-q"
    } else {
        spec
    };
    let mut out = Vec::new();
    for k in spec.split(',') {
        let b = k.as_bytes();
        if let Some(rest) = k.strip_prefix("ctrl-") {
            let c = rest.as_bytes();
            if c.len() != 1 {
                return Err(ApiError::bad_request(format!("Unknown character: '{k}'")));
            }
            let c = c[0].to_ascii_lowercase();
            let v = match c {
                b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(ApiError::bad_request(format!("Unknown character: '{k}'"))),
            };
            out.push(v);
        } else if b.len() == 1 {
            out.push(b[0]);
        } else {
            return Err(ApiError::bad_request(format!("Unknown character: '{k}'")));
        }
    }
    Ok(out)
}

/// Finds the detach sequence in a client's input stream, holding back a
/// partial match until it is complete or broken (like dockerd's proxy).
pub struct DetachScanner {
    keys: Vec<u8>,
    held: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, held: 0 }
    }

    /// Bytes to pass on, and whether the sequence was completed (the
    /// bytes after it are dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert!(parse_detach_keys("ctrl-aa").is_err());
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"x\x10\x11rest"), (b"x".to_vec(), true));
    }
}
