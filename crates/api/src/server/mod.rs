//! HTTP server for the Docker Engine API (ARCH-04, ARCH-05).
//!
//! Requests may carry a `/v1.NN` prefix; versions from
//! [`MIN_API_VERSION`] to [`API_VERSION`] are accepted and the version is
//! handed to handlers as [`ApiVersion`].

mod archive;
mod body;
mod containers;
mod error;
mod exec;
mod image_more;
mod images;
mod networks;
mod system;
mod volumes;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use berth_engine::Engine;
use berth_types::api::{parse_api_version, API_VERSION, MIN_API_VERSION};

pub use error::ApiError;

/// The API version a request was made with (the advertised one when the
/// path has no version prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion(major, minor)
    }
}

pub fn router(engine: Arc<Engine>) -> Router {
    let api = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/create", post(images::create))
        .route("/images/get", get(image_more::save_many))
        .route("/images/prune", post(image_more::prune))
        .route("/images/search", get(image_more::search))
        .route("/commit", post(image_more::commit))
        .route(
            "/images/{*rest}",
            get(images::get_by_name)
                .post(images::post_by_name)
                .delete(images::delete_by_name),
        )
        .route("/auth", post(images::auth))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}/resize", post(exec::container_resize))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}", delete(containers::remove))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/changes", get(archive::changes))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/system/df", get(volumes::system_df))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .fallback(not_found)
        .with_state(engine);
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(versioned))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "page not found: {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Strip and check a `/vX.Y` prefix.
async fn versioned(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut version = parse_api_version(API_VERSION)
        .map(|(a, b)| ApiVersion(a, b))
        .unwrap();
    if let Some(rest) = path.strip_prefix("/v") {
        let (v, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((a, b)) = parse_api_version(v) {
            let asked = ApiVersion(a, b);
            let max = version;
            let (ma, mb) = parse_api_version(MIN_API_VERSION).unwrap();
            if asked > max {
                return ApiError::bad_request(format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                ))
                .into_response();
            }
            if asked < ApiVersion(ma, mb) {
                return ApiError::bad_request(format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response();
            }
            version = asked;
            let new_path = if tail.is_empty() { "/" } else { tail };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_string(),
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = pq.parse().ok();
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(version);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("api-version", API_VERSION.parse().unwrap());
    h.insert(
        "server",
        format!("Docker/{} (linux)", system::ENGINE_VERSION)
            .parse()
            .unwrap(),
    );
    h.insert("ostype", "linux".parse().unwrap());
    resp
}

/// Serve on every listener until the process ends.
pub async fn serve_unix(listener: tokio::net::UnixListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

pub async fn serve_tcp(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}
