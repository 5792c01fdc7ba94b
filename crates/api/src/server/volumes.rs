//! Volume routes (STO-14) and `/system/df`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::lifecycle::parse_filters;
use berth_engine::Engine;
use serde::Deserialize;

use super::error::parse_json;
use super::{ApiError, ApiVersion};

type Q = Query<HashMap<String, String>>;

/// API 1.42+ schemas require objects for a volume's `Labels`/`Options`;
/// dockerd 20.10 (1.41) sends null for empty ones.
fn modernize(v: &mut serde_json::Value, version: ApiVersion) {
    if !version.at_least(1, 42) {
        return;
    }
    for k in ["Labels", "Options"] {
        if v.get(k).is_some_and(|x| x.is_null()) {
            v[k] = serde_json::json!({});
        }
    }
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(ver): Extension<ApiVersion>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        parse_json(&body)?
    };
    let mut v = engine.volume_create(
        b.name.as_deref(),
        b.driver.as_deref().unwrap_or(""),
        b.driver_opts.unwrap_or_default(),
        b.labels.unwrap_or_default(),
    )?;
    modernize(&mut v, ver);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(ver): Extension<ApiVersion>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let filters = parse_filters(q.get("filters").map(String::as_str))?;
    let mut out = engine.volume_list(&filters)?;
    for v in out["Volumes"].as_array_mut().into_iter().flatten() {
        modernize(v, ver);
    }
    Ok(Json(out).into_response())
}

pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    Extension(ver): Extension<ApiVersion>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let mut v = engine.volume_inspect(&name)?;
    modernize(&mut v, ver);
    Ok(Json(v).into_response())
}

pub async fn remove(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    engine.volume_remove(&name, flag(&q, "force"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let filters = parse_filters(q.get("filters").map(String::as_str))?;
    // API 1.42 made prune keep named volumes unless all=true.
    Ok(Json(engine.volume_prune(&filters, v.at_least(1, 42)).await?).into_response())
}

/// `GET /system/df`.
pub async fn system_df(
    State(engine): State<Arc<Engine>>,
    Extension(v): Extension<ApiVersion>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    // `type` may repeat (`?type=image&type=volume`).
    let types: Vec<String> = raw
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "type")
        .map(|(_, v)| v.to_string())
        .collect();
    let mut out = engine.system_df(&types, !v.at_least(1, 44)).await?;
    for vol in out["Volumes"].as_array_mut().into_iter().flatten() {
        modernize(vol, v);
    }
    if v.at_least(1, 42) {
        for img in out["Images"].as_array_mut().into_iter().flatten() {
            if img["Labels"].is_null() {
                img["Labels"] = serde_json::json!({});
            }
            if img["RepoDigests"].is_null() {
                img["RepoDigests"] = serde_json::json!([]);
            }
        }
    } else {
        out["BuilderSize"] = serde_json::json!(0);
    }
    if !v.at_least(1, 42) {
        // dockerd 20.10 has no BuildCache entries for the classic builder: null.
        if out
            .get("BuildCache")
            .is_some_and(|b| b.as_array().is_some_and(|a| a.is_empty()))
        {
            out["BuildCache"] = serde_json::Value::Null;
        }
    }
    Ok(Json(out).into_response())
}
