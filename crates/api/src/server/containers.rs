//! Container routes (CTR-xx).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::lifecycle::{parse_filters, ListQuery, UpdateBody};
use berth_engine::{Engine, LogEntry, LogOptions, Output, WaitCondition};
use berth_types::api::ContainerCreateBody;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::error::parse_json;
use super::{ApiError, ApiVersion};
use crate::stdcopy;

type Q = Query<HashMap<String, String>>;

/// Docker's boolean query values: "1", "true", "True"; absent = default.
fn flag(q: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => default,
        Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
    }
}

fn int(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}"))),
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub async fn create(
    State(engine): State<Arc<Engine>>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ContainerCreateBody = parse_json(&body)?;
    let resp = engine.create(q.get("name").cloned(), body).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let limit = int(&q, "limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let all = flag(&q, "all", false) || limit.is_some();
    let query = ListQuery {
        all,
        limit,
        size: flag(&q, "size", false),
        filters: parse_filters(q.get("filters").map(String::as_str))?,
    };
    let mut list = engine.list_containers(query).await?;
    if v.at_least(1, 42) {
        // Newer API versions type an endpoint's Aliases and Links as arrays.
        for c in &mut list {
            if let Some(nets) = c.network_settings["Networks"].as_object_mut() {
                for ep in nets.values_mut() {
                    for k in ["Aliases", "Links"] {
                        if ep[k].is_null() {
                            ep[k] = serde_json::json!([]);
                        }
                    }
                }
            }
        }
    }
    Ok(Json(list).into_response())
}

pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    Ok(Json(
        engine
            .inspect_container(&id, flag(&q, "size", false))
            .await?,
    )
    .into_response())
}

pub async fn restart(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    engine
        .restart(
            &id,
            int(&q, "t")?,
            q.get("signal").cloned().filter(|s| !s.is_empty()),
        )
        .await?;
    Ok(no_content())
}

pub async fn pause(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.pause(&id).await?;
    Ok(no_content())
}

pub async fn unpause(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.unpause(&id).await?;
    Ok(no_content())
}

pub async fn rename(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    engine.rename(&id, q.get("name").map(String::as_str).unwrap_or(""))?;
    Ok(no_content())
}

pub async fn update(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: UpdateBody = parse_json(&body)?;
    let warnings = engine.update_container(&id, body).await?;
    // dockerd 20.10 (API 1.41) sends null for no warnings; the newer
    // schemas want an array.
    let warnings = (!warnings.is_empty() || v.at_least(1, 42)).then_some(warnings);
    Ok(Json(serde_json::json!({ "Warnings": warnings })).into_response())
}

pub async fn top(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let resp = engine
        .top(&id, q.get("ps_args").map(String::as_str))
        .await?;
    Ok(Json(resp).into_response())
}

pub async fn prune(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let filters = parse_filters(q.get("filters").map(String::as_str))?;
    let mut resp = engine.prune(&filters).await?;
    if v.at_least(1, 42) && resp.containers_deleted.is_none() {
        resp.containers_deleted = Some(vec![]);
    }
    Ok(Json(resp).into_response())
}

pub async fn start(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.start(&id).await?;
    Ok(no_content())
}

pub async fn stop(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    engine
        .stop(
            &id,
            int(&q, "t")?,
            q.get("signal").cloned().filter(|s| !s.is_empty()),
        )
        .await?;
    Ok(no_content())
}

pub async fn kill(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .unwrap_or("SIGKILL");
    engine.kill(&id, signal).await?;
    Ok(no_content())
}

pub async fn remove(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    engine
        .remove_with(&id, flag(&q, "force", false), flag(&q, "v", false))
        .await?;
    Ok(no_content())
}

/// The status line is sent at once; the body when the condition is met.
pub async fn wait(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let null_error = !v.at_least(1, 42);
    let cond = WaitCondition::parse(q.get("condition").map(String::as_str).unwrap_or(""))?;
    let waiter = engine.waiter(&id, cond)?;
    let body = futures_util::stream::once(async move {
        // dockerd 20.10 (API 1.41) always sends the Error key:
        // `{"Error":null,"StatusCode":0}`; the newer schemas do not allow null.
        let mut v = serde_json::to_value(waiter.await).unwrap_or_default();
        if let Some(obj) = v.as_object_mut().filter(|_| null_error) {
            obj.entry("Error").or_insert(serde_json::Value::Null);
        }
        let mut resp = serde_json::to_vec(&v).unwrap_or_default();
        resp.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(resp))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

fn encode(out: Output, tty: bool, stdout: bool, stderr: bool) -> Option<Vec<u8>> {
    let (stream, data) = match out {
        Output::Stdout(d) if stdout => (1, d),
        Output::Stderr(d) if stderr => (2, d),
        _ => return None,
    };
    Some(if tty {
        data
    } else {
        stdcopy::frame(stream, &data)
    })
}

/// `POST /containers/{id}/attach`: a hijacked connection (101 Upgrade) that
/// carries the container's output in stdcopy frames until it exits.
pub async fn attach(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Q,
    mut req: Request,
) -> Result<Response, ApiError> {
    let (stdout, stderr) = (flag(&q, "stdout", false), flag(&q, "stderr", false));
    let (mut rx, tty) = engine.attach(&id)?;
    let stdin = if flag(&q, "stdin", false) {
        engine.attach_stdin(&id)?
    } else {
        None
    };
    let detach_keys =
        super::exec::parse_detach_keys(q.get("detachKeys").map(String::as_str).unwrap_or(""))?;
    // Before API 1.42 dockerd labels every attach stream raw-stream.
    let content_type = if tty || !v.at_least(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if req.headers().contains_key(header::UPGRADE) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let io = TokioIo::new(upgraded);
            let (mut rd, mut io) = tokio::io::split(io);
            // Client bytes → the container's stdin (exec.rs: attach_stdin);
            // the detach keys end the attach and leave stdin open.
            let (detached_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
            let reader = stdin.map(|(tx, closes_stdin)| {
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut scan = super::exec::DetachScanner::new(detach_keys);
                    let mut detached_tx = Some(detached_tx);
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                if closes_stdin {
                                    let _ = tx.send(None);
                                    return;
                                }
                                // Tty or not StdinOnce: the end of the
                                // client's input ends the attach (dockerd).
                                if let Some(t) = detached_tx.take() {
                                    let _ = t.send(());
                                }
                                std::future::pending::<()>().await;
                            }
                            Ok(n) => {
                                let (data, detach) = scan.feed(&buf[..n]);
                                if !data.is_empty() && tx.send(Some(data)).is_err() {
                                    return;
                                }
                                if detach {
                                    if let Some(t) = detached_tx.take() {
                                        let _ = t.send(());
                                    }
                                    std::future::pending::<()>().await;
                                }
                            }
                        }
                    }
                })
            });
            let mut armed = true;
            loop {
                let out = tokio::select! {
                    o = rx.recv() => o,
                    r = &mut detached, if armed => {
                        armed = false;
                        if r.is_ok() {
                            break; // detach keys
                        }
                        continue; // no stdin reader
                    }
                };
                let Some(out) = out else { break };
                if let Some(bytes) = encode(out, tty, stdout, stderr) {
                    if io.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            }
            let _ = io.shutdown().await;
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
    // Clients that do not ask for an upgrade get a streamed body.
    let stream = async_stream_from(move |tx| async move {
        while let Some(out) = rx.recv().await {
            if let Some(bytes) = encode(out, tty, stdout, stderr) {
                if tx.send(Bytes::from(bytes)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, content_type)], stream).into_response())
}

/// A body fed by a task through a channel.
fn async_stream_from<F, Fut>(f: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(f(tx));
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Body::from_stream(s)
}

fn encode_logs(entries: Vec<LogEntry>, tty: bool, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut line = Vec::new();
        if timestamps {
            line.extend_from_slice(e.time.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&e.line);
        if tty {
            out.extend_from_slice(&line);
        } else {
            out.extend_from_slice(&stdcopy::frame(e.stream, &line));
        }
    }
    out
}

/// `GET /containers/{id}/logs` (LOG-01..LOG-04).
pub async fn logs(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let mut resp = logs_response(engine, id, q).await?;
    // Before API 1.42 dockerd sends logs without a Content-Type.
    if !v.at_least(1, 42) {
        resp.headers_mut().remove(header::CONTENT_TYPE);
    }
    Ok(resp)
}

async fn logs_response(
    engine: Arc<Engine>,
    id: String,
    q: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let (stdout, stderr) = (flag(&q, "stdout", false), flag(&q, "stderr", false));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail: {n}")))?
                .max(0) as usize,
        ),
    };
    let parse_time = |k: &str| -> Result<Option<f64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty() && v.as_str() != "0") {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid {k}: {v}"))),
        }
    };
    let opts = LogOptions {
        stdout,
        stderr,
        tail,
        since: parse_time("since")?,
        until: parse_time("until")?,
    };
    let timestamps = flag(&q, "timestamps", false);
    let follow = flag(&q, "follow", false);
    let id = engine.resolve_id(&id)?;
    let (entries, offset, tty) = engine.read_logs(&id, &opts)?;
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let first = encode_logs(entries, tty, timestamps);
    if !follow {
        return Ok(([(header::CONTENT_TYPE, content_type)], first).into_response());
    }
    let mut opts = opts;
    opts.tail = None;
    let body = async_stream_from(move |tx| async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut offset = offset;
        loop {
            let Ok((entries, next, running)) = engine.read_logs_from(&id, offset, &opts) else {
                return;
            };
            offset = next;
            let had = !entries.is_empty();
            if had
                && tx
                    .send(Bytes::from(encode_logs(entries, tty, timestamps)))
                    .await
                    .is_err()
            {
                return;
            }
            if !running && !had {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
