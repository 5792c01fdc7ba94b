//! A small Docker Engine API client over a unix socket or TCP, for the
//! `berth` CLI.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use berth_types::api::API_VERSION;

pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot connect to the berth daemon at {0}. Is the daemon running?")]
    Connect(String),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ClientError>;
pub type ReqBody = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, Clone)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

impl Host {
    /// `unix:///path`, `tcp://host:port`, or a bare socket path.
    pub fn parse(s: &str) -> Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            Ok(Host::Unix(PathBuf::from(p)))
        } else if let Some(a) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            Ok(Host::Tcp(a.trim_end_matches('/').to_string()))
        } else if s.starts_with('/') {
            Ok(Host::Unix(PathBuf::from(s)))
        } else {
            Err(ClientError::Protocol(format!("invalid host: {s}")))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{}", p.display()),
            Host::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub host: Host,
}

pub fn empty() -> ReqBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Stream a file (or any async reader) as the request body, in frames of
/// up to 256 KiB (the default 4 KiB made `load` of large archives spend its
/// time in per-frame wake-ups).
pub fn reader<R: tokio::io::AsyncRead + Send + Sync + 'static>(r: R) -> ReqBody {
    use futures_util::TryStreamExt;
    let s = tokio_util::io::ReaderStream::with_capacity(r, 256 * 1024).map_ok(Frame::data);
    BodyExt::boxed(StreamBody::new(s))
}

impl Client {
    pub fn new(host: Host) -> Client {
        Client { host }
    }

    fn uri(&self, path: &str) -> String {
        format!("/v{API_VERSION}{path}")
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        macro_rules! go {
            ($stream:expr) => {{
                let io = TokioIo::new($stream);
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))
            }};
        }
        match &self.host {
            Host::Unix(p) => {
                let s = UnixStream::connect(p)
                    .await
                    .map_err(|_| ClientError::Connect(self.host.describe()))?;
                go!(s)
            }
            Host::Tcp(a) => {
                let s = TcpStream::connect(a)
                    .await
                    .map_err(|_| ClientError::Connect(self.host.describe()))?;
                go!(s)
            }
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Request<ReqBody> {
        let mut b = Request::builder()
            .method(method)
            .uri(self.uri(path))
            .header("host", "berth");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(body).expect("valid request")
    }

    /// A request whose response body is read whole; non-2xx becomes an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<(StatusCode, Bytes)> {
        let resp = self
            .send(self.build(method, path, body, content_type))
            .await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if status.is_client_error() || status.is_server_error() {
            return Err(api_error(status, &bytes));
        }
        Ok((status, bytes))
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (_, b) = self.call(Method::GET, path, empty(), None).await?;
        serde_json::from_slice(&b)
            .map_err(|e| ClientError::Protocol(format!("bad response from daemon: {e}")))
    }

    pub async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let data = serde_json::to_vec(body).expect("request serializes");
        let (_, b) = self
            .call(Method::POST, path, full(data), Some("application/json"))
            .await?;
        serde_json::from_slice(&b)
            .map_err(|e| ClientError::Protocol(format!("bad response from daemon: {e}")))
    }

    /// A request whose response body is streamed to the caller.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let resp = self
            .send(self.build(method, path, body, content_type))
            .await?;
        fail_on_error(resp).await
    }

    /// `stream` with extra request headers (e.g. `X-Registry-Auth`).
    pub async fn stream_with_headers(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut req = self.build(method, path, body, None);
        for (k, v) in headers {
            if let (Ok(name), Ok(val)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(v),
            ) {
                req.headers_mut().insert(name, val);
            }
        }
        let resp = self.send(req).await?;
        fail_on_error(resp).await
    }

    /// `POST .../attach` with a protocol upgrade; returns the raw stream.
    pub async fn hijack(&self, path: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri(path))
            .header("host", "berth")
            .header("connection", "Upgrade")
            .header("upgrade", "tcp")
            .body(empty())
            .expect("valid request");
        let mut resp = self.send(req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(api_error(status, &bytes));
        }
        let up = hyper::upgrade::on(&mut resp)
            .await
            .map_err(|e| ClientError::Protocol(format!("attach upgrade failed: {e}")))?;
        Ok(TokioIo::new(up))
    }
}

/// A non-2xx response becomes the daemon's error message.
async fn fail_on_error(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(api_error(status, &bytes));
    }
    Ok(resp)
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}
