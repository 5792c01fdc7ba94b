//! `/containers/{id}/archive` (cp), `/export` and `/changes` (diff).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::archive::{ExtractOptions, PathStat};
use berth_engine::Engine;

use super::ApiError;

type Q = Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

fn path_param(q: &HashMap<String, String>) -> Result<String, ApiError> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("path cannot be empty"))
}

fn stat_header(st: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(st).unwrap_or_default();
    HeaderValue::from_str(&encode(&json)).unwrap_or(HeaderValue::from_static(""))
}

fn tar_body(rx: berth_engine::TarStream) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (chunk.map(bytes::Bytes::from), rx))
    });
    Body::from_stream(stream)
}

pub async fn head(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let st = engine.archive_stat(&id, &path).await?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert("x-docker-container-path-stat", stat_header(&st));
    Ok(r)
}

pub async fn get(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let (st, rx) = engine.archive_get(&id, &path).await?;
    let mut r = Response::new(tar_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    r.headers_mut()
        .insert("x-docker-container-path-stat", stat_header(&st));
    Ok(r)
}

pub async fn put(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    // The body goes through a pump that keeps reading to the end even when
    // the engine stops early (an error before the first byte, or tar's end
    // marker before the client's padding): answering while the client
    // still writes would cut it off with EPIPE.
    let (reader, pump) = super::body::blocking_reader_with_pump(body);
    let opts = ExtractOptions {
        copy_uid_gid: flag(&q, "copyUIDGID"),
        no_overwrite_dir_non_dir: flag(&q, "noOverwriteDirNonDir"),
    };
    let res = engine.archive_put(&id, &path, reader, opts).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), pump).await;
    res?;
    Ok(StatusCode::OK.into_response())
}

pub async fn export(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rx = engine.export(&id).await?;
    let mut r = Response::new(tar_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

pub async fn changes(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = engine.changes(&id).await?;
    if v.is_null() {
        // dockerd's encoder: `null` and a newline.
        return Ok(([(header::CONTENT_TYPE, "application/json")], "null\n").into_response());
    }
    Ok(Json(v).into_response())
}

/// Standard base64 with padding (the stat header).
fn encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::encode(b"fooba"), "Zm9vYmE=");
        assert_eq!(super::encode(b"foob"), "Zm9vYg==");
    }
}
