//! Network routes (NET-13): create, list, inspect, remove, prune,
//! connect, disconnect.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::lifecycle::parse_filters;
use berth_engine::Engine;
use serde_json::{json, Value};

use super::error::parse_json;
use super::ApiError;

type Q = Query<HashMap<String, String>>;

fn filters(q: &HashMap<String, String>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    Ok(parse_filters(q.get("filters").map(String::as_str))?
        .into_iter()
        .collect())
}

pub async fn create(State(engine): State<Arc<Engine>>, body: Bytes) -> Result<Response, ApiError> {
    let b: Value = parse_json(&body)?;
    let v = engine.network_create(&b).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(State(engine): State<Arc<Engine>>, Query(q): Q) -> Result<Response, ApiError> {
    Ok(Json(engine.network_list(&filters(&q)?)?).into_response())
}

pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.network_inspect(&id)?).into_response())
}

pub async fn remove(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.network_remove(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(State(engine): State<Arc<Engine>>, Query(q): Q) -> Result<Response, ApiError> {
    let deleted = engine.network_prune(&filters(&q)?).await?;
    Ok(Json(json!({ "NetworksDeleted": deleted })).into_response())
}

pub async fn connect(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Value = parse_json(&body)?;
    engine.network_connect(&id, &b).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Value = parse_json(&body)?;
    engine.network_disconnect(&id, &b).await?;
    Ok(StatusCode::OK.into_response())
}
