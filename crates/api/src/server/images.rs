//! Image routes: list, load (IMG-20), import (IMG-22), pull (IMG-09/10),
//! push (REG-02), tag (IMG-11), rmi (IMG-12), `/auth`.

use std::sync::Arc;

use axum::body::Body;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::{Engine, ImageListQuery};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiVersion};
use axum::http::HeaderMap;
use berth_engine::images::Credentials;
use berth_engine::images::{error_json, StreamItem};
use tokio::sync::mpsc;

fn registry_auth(headers: &HeaderMap) -> Option<Credentials> {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_registry_auth)
}

/// Docker's progress stream: an error before the first message is a plain
/// HTTP error (dockerd has not flushed yet); later ones go in the stream.
async fn progress_response(
    mut rx: mpsc::UnboundedReceiver<StreamItem>,
) -> Result<Response, ApiError> {
    let first = match rx.recv().await {
        None => return Ok(json_lines(vec![])),
        Some(StreamItem::Error(e)) => return Err(ApiError::from(e)),
        Some(StreamItem::Json(v)) => v,
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        let v = match first {
            Some(v) => v,
            None => match rx.recv().await {
                None => return None,
                Some(StreamItem::Json(v)) => v,
                Some(StreamItem::Error(e)) => error_json(&e),
            },
        };
        let mut line = v.to_string();
        line.push_str("\r\n");
        Some((
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)),
            (None, rx),
        ))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NameQuery {
    tag: Option<String>,
    repo: Option<String>,
    force: Option<String>,
    noprune: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1") | Some("true") | Some("True"))
}

/// `POST /images/{name}/push` and `POST /images/{name}/tag`.
pub async fn post_by_name(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(q): Query<NameQuery>,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/push") {
        let reference = match q.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        };
        let rx = engine.push_image(reference, registry_auth(&headers));
        return progress_response(rx).await;
    }
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo =
            q.repo.as_deref().filter(|r| !r.is_empty()).ok_or_else(|| {
                ApiError::bad_request("repository name (repo parameter) is required")
            })?;
        engine.tag_image(name, repo, q.tag.as_deref()).await?;
        return Ok((axum::http::StatusCode::CREATED, "").into_response());
    }
    Err(ApiError::not_found(format!(
        "page not found: POST /images/{rest}"
    )))
}

/// `DELETE /images/{name}` (rmi).
pub async fn delete_by_name(
    State(engine): State<Arc<Engine>>,
    Path(rest): Path<String>,
    Query(q): Query<NameQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(
        engine
            .remove_image_opts(&rest, truthy(&q.force), truthy(&q.noprune))
            .await?,
    )
    .into_response())
}

/// `POST /auth`: check credentials against the registry.
pub async fn auth(
    State(engine): State<Arc<Engine>>,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let server = body
        .get("serveraddress")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let creds = Credentials::from_auth_json(&body)
        .ok_or_else(|| ApiError::bad_request("username and password are required"))?;
    match engine.registry_login(server, creds).await {
        Ok(()) => {
            Ok(Json(json!({"Status": "Login Succeeded", "IdentityToken": ""})).into_response())
        }
        Err(berth_engine::Error::Image(berth_image_err))
            if berth_image_err.to_string().contains("unauthorized")
                || berth_image_err.to_string().contains("no basic auth") =>
        {
            Err(ApiError {
                status: axum::http::StatusCode::UNAUTHORIZED,
                message: berth_image_err.to_string(),
            })
        }
        Err(e) => Err(ApiError::from(e)),
    }
}

fn body_reader(body: Body) -> Box<dyn std::io::Read + Send> {
    super::body::blocking_reader(body)
}

fn json_lines(lines: Vec<serde_json::Value>) -> Response {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut query = ImageListQuery {
        legacy_virtual_size: !v.at_least(1, 44),
        null_empty_collections: !v.at_least(1, 42),
        none_placeholders: !v.at_least(1, 43),
        all: truthy(&q.get("all").cloned()),
        ..Default::default()
    };
    if let Some(f) = q.get("filters").filter(|f| !f.is_empty()) {
        let filters = parse_filters(f)?;
        for (key, values) in filters {
            match key.as_str() {
                "reference" => query.references.extend(values),
                "dangling" => query.dangling = values.first().map(|v| v == "true" || v == "1"),
                "label" => query.labels.extend(
                    values
                        .iter()
                        .map(|v| berth_engine::image_cmds::LabelFilter::parse(v, false)),
                ),
                "before" => query.before = values.into_iter().next(),
                "since" => query.since = values.into_iter().next(),
                other => {
                    return Err(ApiError::bad_request(format!("Invalid filter '{other}'")));
                }
            }
        }
    }
    Ok(Json(engine.list_images(query).await?).into_response())
}

/// Docker's `filters` query value: `{"key":{"value":true}}` (or the legacy
/// `{"key":["value"]}`).
pub fn parse_filters(raw: &str) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid filter: not an object"))?;
    Ok(obj
        .iter()
        .map(|(k, vals)| {
            let list = match vals {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            };
            (k.clone(), list)
        })
        .collect())
}

/// `GET /images/{name}/json` (names contain slashes, so this takes the rest
/// of the path).
pub async fn get_by_name(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/history") {
        return super::image_more::history(engine, name).await;
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return super::image_more::save(engine, vec![name.to_string()]).await;
    }
    match rest.strip_suffix("/json") {
        Some(name) => {
            Ok(Json(engine.inspect_image(name, !v.at_least(1, 44)).await?).into_response())
        }
        None => Err(ApiError::not_found(format!(
            "page not found: GET /images/{rest}"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoadQuery {
    quiet: Option<String>,
}

pub async fn load(
    State(engine): State<Arc<Engine>>,
    Query(_q): Query<LoadQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    // dockerd answers 200 and reports a failed load in the JSON stream.
    let loaded = match engine.load_images(body_reader(body)).await {
        Ok(l) => l,
        Err(e) => return Ok(json_lines(vec![error_json(&e)])),
    };
    Ok(json_lines(
        loaded
            .into_iter()
            .map(|l| json!({"stream": format!("{l}\n")}))
            .collect(),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateQuery {
    from_image: Option<String>,
    from_src: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    message: Option<String>,
    platform: Option<String>,
}

/// `POST /images/create`: `fromSrc=-` imports the body; `fromImage` (pull)
/// comes with the registry work.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    // `changes` may repeat, so it is read separately below.
    let single: Vec<(String, String)> = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .into_iter()
        .filter(|(k, _)| k != "changes")
        .collect();
    let single = serde_urlencoded::to_string(&single).unwrap_or_default();
    let q: CreateQuery =
        serde_urlencoded::from_str(&single).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // `changes` may repeat.
    let changes: Vec<String> = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v)
        .collect();
    match (q.from_src.as_deref(), q.from_image.as_deref()) {
        (Some("-"), _) => {
            let reference = match (
                q.repo.filter(|r| !r.is_empty()),
                q.tag.filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r),
                _ => None,
            };
            let id = engine
                .import_image(body_reader(body), reference, q.message, changes)
                .await?;
            Ok(json_lines(vec![json!({"status": id})]))
        }
        (Some(src), _) => {
            // IMG-17: a URL the daemon downloads (docker sends fromSrc=<url>).
            let url = if src.contains("://") {
                src.to_string()
            } else {
                format!("http://{src}")
            };
            let reference = match (
                q.repo.filter(|r| !r.is_empty()),
                q.tag.filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r),
                _ => None,
            };
            let id = engine
                .import_image_url(url, reference, q.message, changes)
                .await?;
            Ok(json_lines(vec![json!({"status": id})]))
        }
        (None, Some(image)) => {
            let reference = match q.tag.as_deref().filter(|t| !t.is_empty()) {
                Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
                Some(t) => format!("{image}:{t}"),
                None => image.to_string(),
            };
            let rx = engine.pull_image(reference, registry_auth(&headers), q.platform.clone());
            progress_response(rx).await
        }
        (None, None) => Err(ApiError::bad_request("fromImage or fromSrc is required")),
    }
}
