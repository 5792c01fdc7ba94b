//! Image routes: save (`GET /images/get`, `/images/{name}/get`, IMG-14),
//! history (IMG-06), `POST /images/prune` (IMG-13), `POST /commit`
//! (IMG-18), `GET /images/search` (IMG-08).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::image_cmds::{CommitRequest, LabelFilter, PruneImagesQuery};
use berth_engine::images::Credentials;
use berth_engine::Engine;
use serde_json::json;

use super::images::parse_filters;
use super::ApiError;

/// All `(key, value)` pairs of a query string (keys may repeat).
fn query_pairs(raw: &Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn tar_stream(rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(bytes::Bytes::from), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(
    State(engine): State<Arc<Engine>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let names: Vec<String> = query_pairs(&raw)?
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    save(engine, names).await
}

/// `GET /images/{name}/get`.
pub async fn save(engine: Arc<Engine>, names: Vec<String>) -> Result<Response, ApiError> {
    let rx = engine.save_images(names).await?;
    Ok(tar_stream(rx))
}

/// `GET /images/{name}/history`.
pub async fn history(engine: Arc<Engine>, name: &str) -> Result<Response, ApiError> {
    Ok(Json(engine.image_history(name).await?).into_response())
}

/// Docker's `until` filter value: a Unix timestamp, an RFC 3339 date (or
/// date-time without zone), or a Go duration ago (`24h`, `1h30m`, `10s`).
pub fn parse_until(v: &str, now: i64) -> Option<i64> {
    if let Ok(f) = v.parse::<f64>() {
        return Some(f as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp());
    }
    // Go duration: [number unit]+ with units h, m, s, ms, us, ns.
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(now - total as i64)
}

/// `POST /images/prune?filters=`.
pub async fn prune(
    State(engine): State<Arc<Engine>>,
    axum::Extension(v): axum::Extension<super::ApiVersion>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&raw)?;
    let mut q = PruneImagesQuery::default();
    if let Some(f) = first(&pairs, "filters").filter(|f| !f.is_empty()) {
        for (key, values) in parse_filters(f)? {
            match key.as_str() {
                "dangling" => {
                    for v in &values {
                        match v.as_str() {
                            "true" | "1" => q.all = false,
                            "false" | "0" => q.all = true,
                            _ => {
                                return Err(ApiError::bad_request(format!(
                                    "Invalid filter 'dangling=[{v}]'"
                                )))
                            }
                        }
                    }
                }
                "until" => {
                    let now = chrono::Utc::now().timestamp();
                    for v in &values {
                        let t = parse_until(v, now).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "failed to parse value as time or duration: \"{v}\""
                            ))
                        })?;
                        q.until = Some(q.until.map_or(t, |u: i64| u.min(t)));
                    }
                }
                "label" => q
                    .labels
                    .extend(values.iter().map(|v| LabelFilter::parse(v, false))),
                "label!" => q
                    .labels
                    .extend(values.iter().map(|v| LabelFilter::parse(v, true))),
                other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
            }
        }
    }
    let mut out = engine.prune_images(q).await?;
    // dockerd 20.10 (API 1.41) sends null for an empty list; the newer
    // schema wants an array.
    if v.at_least(1, 42) && out["ImagesDeleted"].is_null() {
        out["ImagesDeleted"] = json!([]);
    }
    Ok(Json(out).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(
    State(engine): State<Arc<Engine>>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&raw)?;
    let container = first(&pairs, "container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::not_found("No such container: "));
    }
    let repo = first(&pairs, "repo").filter(|r| !r.is_empty());
    let tag = first(&pairs, "tag").filter(|t| !t.is_empty());
    let reference = match (repo, tag) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        // dockerd ignores a tag without a repository.
        (None, _) => None,
    };
    let config = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
        )
    };
    let req = CommitRequest {
        container,
        reference,
        author: first(&pairs, "author").unwrap_or("").to_string(),
        comment: first(&pairs, "comment").unwrap_or("").to_string(),
        changes: pairs
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
        pause: !matches!(
            first(&pairs, "pause"),
            Some("0") | Some("false") | Some("False")
        ),
        config,
        docker_version: super::system::ENGINE_VERSION.to_string(),
    };
    let id = engine.commit_container(req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&raw)?;
    let term = first(&pairs, "term").unwrap_or("").to_string();
    let limit = match first(&pairs, "limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => {
            let n: i64 = l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?;
            if n == 0 {
                25
            } else if !(1..=100).contains(&n) {
                return Err(ApiError::bad_request(format!(
                    "Limit {n} is outside the range of [1, 100]"
                )));
            } else {
                n as usize
            }
        }
    };
    let mut stars: Option<i64> = None;
    let mut official: Option<bool> = None;
    let mut automated: Option<bool> = None;
    if let Some(f) = first(&pairs, "filters").filter(|f| !f.is_empty()) {
        for (key, values) in parse_filters(f)? {
            for v in &values {
                let bad = || ApiError::bad_request(format!("Invalid filter '{key}={v}'"));
                match key.as_str() {
                    "stars" => {
                        let n: i64 = v.parse().map_err(|_| bad())?;
                        stars = Some(stars.map_or(n, |s| s.max(n)));
                    }
                    "is-official" | "is-automated" => {
                        let b = match v.as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => return Err(bad()),
                        };
                        if key == "is-official" {
                            official = Some(b);
                        } else {
                            automated = Some(b);
                        }
                    }
                    other => {
                        return Err(ApiError::bad_request(format!("Invalid filter '{other}'")))
                    }
                }
            }
        }
    }
    let creds = headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_registry_auth);
    let mut results = engine.search_images(term, limit, creds).await?;
    results.retain(|r| {
        stars.is_none_or(|s| r.star_count >= s)
            && official.is_none_or(|o| r.is_official == o)
            && automated.is_none_or(|a| r.is_automated == a)
    });
    Ok(Json(results).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_until;

    #[test]
    fn until_values() {
        let now = 1_000_000;
        assert_eq!(parse_until("10", now), Some(10));
        assert_eq!(parse_until("1h", now), Some(now - 3600));
        assert_eq!(parse_until("1h30m", now), Some(now - 5400));
        assert_eq!(parse_until("2024-01-01", now), Some(1_704_067_200));
        assert_eq!(
            parse_until("2024-01-01T00:00:10Z", now),
            Some(1_704_067_210)
        );
        assert_eq!(parse_until("soon", now), None);
        assert_eq!(parse_until("", now), None);
    }
}
