//! Registry client (Distribution API v2, blocking, over `ureq`) and the
//! store's `pull` / `push` / `login`. See docs/image-store.md "Registries".
//!
//! Pull streams every layer once: HTTP body → (progress, sha256 of the
//! compressed bytes, tee into `tmp/blob-*`) → gunzip → (sha256 of the tar =
//! diff id) → safe unpack into `layers/.tmp-*`. Nothing is registered until
//! every digest checked out; on any error the temp files and dirs go away.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use berth_types::ErrorKind;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::reference::parse_reference;
use crate::store::{chain_ids, host_arch, ConfigFile, ImageStore, NewLayer, Plan};
use crate::util::{remove_all, sha256_hex, unique_suffix, write_atomic};

pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A layer kept as its plain tar (load/import/commit), gzipped at push.
pub const MT_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const MT_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Registry credentials (from `X-Registry-Auth` or `~/.docker/config.json`).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// OAuth refresh / identity token (used as password for token requests).
    pub identity_token: Option<String>,
    /// A bearer token to send as is.
    pub registry_token: Option<String>,
}

impl Credentials {
    /// Decode an `X-Registry-Auth` header (base64url JSON of Docker's
    /// AuthConfig). Empty or `{}` means anonymous (None).
    pub fn from_registry_auth(header: &str) -> Option<Credentials> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let h = header.trim();
        if h.is_empty() {
            return None;
        }
        let raw = URL_SAFE
            .decode(h)
            .or_else(|_| URL_SAFE_NO_PAD.decode(h))
            .or_else(|_| STANDARD.decode(h))
            .ok()?;
        Credentials::from_auth_json(&serde_json::from_slice(&raw).ok()?)
    }

    /// From Docker's AuthConfig JSON (`POST /auth` body, decoded header).
    pub fn from_auth_json(v: &serde_json::Value) -> Option<Credentials> {
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty())
                .map(String::from)
        };
        let mut c = Credentials {
            username: s("username").unwrap_or_default(),
            password: s("password").unwrap_or_default(),
            identity_token: s("identitytoken"),
            registry_token: s("registrytoken"),
        };
        if c.username.is_empty() {
            if let Some(auth) = s("auth") {
                let dec = base64::engine::general_purpose::STANDARD
                    .decode(auth)
                    .ok()?;
                let dec = String::from_utf8(dec).ok()?;
                let (u, p) = dec.split_once(':')?;
                c.username = u.into();
                c.password = p.into();
            }
        }
        if c.username.is_empty() && c.identity_token.is_none() && c.registry_token.is_none() {
            return None;
        }
        Some(c)
    }
}

/// Daemon-wide registry settings (CFG: insecure-registries,
/// registry-mirrors, max-concurrent-downloads/uploads, certs.d).
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `insecure-registries`: `host[:port]` entries or CIDRs, reached over
    /// HTTPS without verification, then plain HTTP. Loopback hosts
    /// (localhost, 127.0.0.0/8, ::1) are always insecure, as in Docker.
    pub insecure_registries: Vec<String>,
    /// `registry-mirrors` (`scheme://host[:port]`) for docker.io pulls,
    /// tried in order before the official registry.
    pub mirrors: Vec<String>,
    /// Layers downloaded at once per pull (0 = Docker's default, 3).
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push (0 = Docker's default, 5).
    pub max_concurrent_uploads: usize,
    /// Directories of `<host[:port]>/{ca.crt, client.cert, client.key}`,
    /// like Docker's /etc/docker/certs.d.
    pub certs_dirs: Vec<PathBuf>,
}

impl RegistryConfig {
    pub fn downloads(&self) -> usize {
        if self.max_concurrent_downloads == 0 {
            3
        } else {
            self.max_concurrent_downloads
        }
    }

    pub fn uploads(&self) -> usize {
        if self.max_concurrent_uploads == 0 {
            5
        } else {
            self.max_concurrent_uploads
        }
    }
}

/// Check a `registry-mirrors` entry like dockerd; returns it normalized
/// like dockerd (`scheme://host[:port]/`).
pub fn validate_mirror(m: &str) -> std::result::Result<String, String> {
    let (scheme, rest) = m
        .split_once("://")
        .ok_or_else(|| format!("invalid mirror: unsupported scheme \"\" in \"{m}\""))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "invalid mirror: unsupported scheme \"{scheme}\" in \"{m}\""
        ));
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(format!("invalid mirror: \"{m}\" is not a valid URI"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "invalid mirror: path, query, or fragment at end of the URI \"{m}\""
        ));
    }
    Ok(format!("{scheme}://{rest}/"))
}

/// A progress event, mapped 1:1 to Docker's JSON progress messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// `{"status": status, "id": id}` (id omitted when None).
    Status { id: Option<String>, status: String },
    /// `{"status": status, "progressDetail": {"current", "total"}, "id": id}`.
    Bytes {
        id: String,
        status: String,
        current: u64,
        total: Option<u64>,
    },
    /// Push result: `{"aux": {"Tag", "Digest", "Size"}}`.
    PushAux {
        tag: String,
        digest: String,
        size: u64,
    },
}

fn status(id: Option<&str>, s: impl Into<String>) -> Progress {
    Progress::Status {
        id: id.map(String::from),
        status: s.into(),
    }
}

/// Result of a pull.
#[derive(Debug, Clone)]
pub struct PullResult {
    pub id: String,
    /// Familiar reference as pulled: `127.0.0.1:5000/x:1` or `x@sha256:..`.
    pub reference: String,
    /// Digest of the manifest (or index) the reference resolved to.
    pub digest: String,
    /// False when the image and the tag were already there.
    pub changed: bool,
}

fn reg_err(kind: ErrorKind, msg: impl Into<String>) -> Error {
    Error::Registry {
        kind,
        message: msg.into(),
    }
}

/// Split a familiar repository name into (registry domain, repository path).
pub fn split_name(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ if name.contains('/') => ("docker.io".into(), name.to_string()),
        _ => ("docker.io".into(), format!("library/{name}")),
    }
}

fn host_part(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map(|(h, _)| h).unwrap_or(domain)
}

fn in_cidr(host: &str, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(ip), Ok(net), Ok(bits)) = (
        host.parse::<std::net::IpAddr>(),
        net.parse::<std::net::IpAddr>(),
        bits.parse::<u32>(),
    ) else {
        return false;
    };
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Whether `domain` is insecure: HTTPS without verification, then plain
/// HTTP (Docker's order).
pub fn is_insecure(cfg: &RegistryConfig, domain: &str) -> bool {
    let host = host_part(domain);
    if host == "localhost" || host == "::1" || host.starts_with("127.") {
        return true;
    }
    cfg.insecure_registries
        .iter()
        .any(|r| r == domain || r == host || in_cidr(host, r))
}

/// How one endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// HTTPS, verified against `ca.crt` files (or the built-in roots).
    Verify,
    /// HTTPS without verification (insecure registries).
    SkipVerify,
    /// Plain HTTP.
    Plain,
}

/// One base URL to try for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base: String,
    pub tls: Tls,
    /// A registry mirror (pull only; failures fall back to the next).
    pub mirror: bool,
}

/// The endpoints tried for `domain`, in order: mirrors (docker.io pulls
/// only), then HTTPS, then (insecure registries) plain HTTP.
pub fn endpoints(cfg: &RegistryConfig, domain: &str, pull: bool) -> Vec<Endpoint> {
    let mut out = Vec::new();
    if domain == "docker.io" {
        if pull {
            for m in &cfg.mirrors {
                let m = &m.trim_end_matches('/').to_string();
                let host = m.split("://").nth(1).unwrap_or(m);
                out.push(Endpoint {
                    base: m.clone(),
                    tls: if m.starts_with("http://") {
                        Tls::Plain
                    } else if is_insecure(cfg, host) {
                        Tls::SkipVerify
                    } else {
                        Tls::Verify
                    },
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            base: "https://registry-1.docker.io".into(),
            tls: Tls::Verify,
            mirror: false,
        });
        return out;
    }
    if is_insecure(cfg, domain) {
        out.push(Endpoint {
            base: format!("https://{domain}"),
            tls: Tls::SkipVerify,
            mirror: false,
        });
        out.push(Endpoint {
            base: format!("http://{domain}"),
            tls: Tls::Plain,
            mirror: false,
        });
    } else {
        out.push(Endpoint {
            base: format!("https://{domain}"),
            tls: Tls::Verify,
            mirror: false,
        });
    }
    out
}

/// The first endpoint (for messages and tests).
pub fn endpoint(cfg: &RegistryConfig, domain: &str) -> String {
    endpoints(cfg, domain, false)
        .into_iter()
        .last()
        .map(|e| e.base)
        .unwrap_or_default()
}

/// TLS files for `host[:port]` from the certs dirs: CA certificates
/// (`*.crt`) and a client pair (`*.cert` + `*.key`), as Docker reads them.
fn tls_config(cfg: &RegistryConfig, ep: &Endpoint) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let mut b = TlsConfig::builder();
    if ep.tls == Tls::SkipVerify {
        b = b.disable_verification(true);
    }
    let hostport = ep.base.split("://").nth(1).unwrap_or("");
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let mut client: Option<ClientCert> = None;
    for dir in &cfg.certs_dirs {
        let d = dir.join(hostport);
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in &names {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            let bad = |e: &dyn std::fmt::Display| {
                reg_err(ErrorKind::Internal, format!("{}: {e}", p.display()))
            };
            match ext {
                "crt" => {
                    let pem = fs::read(p).ctx(|| format!("read {}", p.display()))?;
                    for item in ureq::tls::parse_pem(&pem) {
                        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(&e))? {
                            roots.push(c);
                        }
                    }
                }
                "cert" => {
                    let key = p.with_extension("key");
                    let cert_pem = fs::read(p).ctx(|| format!("read {}", p.display()))?;
                    let key_pem = fs::read(&key).map_err(|_| {
                        reg_err(
                            ErrorKind::Internal,
                            format!(
                                "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                                key.file_name().unwrap_or_default().to_string_lossy(),
                                p.file_name().unwrap_or_default().to_string_lossy()
                            ),
                        )
                    })?;
                    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                        .filter_map(|i| match i {
                            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                            _ => None,
                        })
                        .collect();
                    let key = PrivateKey::from_pem(&key_pem).map_err(|e| bad(&e))?;
                    client = Some(ClientCert::new_with_certs(&certs, key));
                }
                _ => {}
            }
        }
    }
    if !roots.is_empty() {
        b = b.root_certs(RootCerts::new_with_certs(&roots));
    }
    Ok(b.client_cert(client).build())
}

fn agent(cfg: &RegistryConfig, ep: &Endpoint) -> Result<ureq::Agent> {
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(format!("berth/{}", env!("CARGO_PKG_VERSION")));
    if ep.tls != Tls::Plain {
        b = b.tls_config(tls_config(cfg, ep)?);
    }
    Ok(b.build().into())
}

fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (q[..i].to_string(), &q[i + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(i) => (v[..i].trim().to_string(), &v[i..]),
                None => (v.trim().to_string(), ""),
            }
        };
        params.push((k, val));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

/// First error message of a registry error body
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`),
/// rendered like Docker: `manifest unknown: manifest unknown`.
fn error_body(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Es {
        errors: Vec<E>,
    }
    let es: Es = serde_json::from_slice(body).ok()?;
    let e = es.errors.first()?;
    let code = e.code.to_ascii_lowercase().replace('_', " ");
    Some(if e.message.is_empty() {
        code
    } else {
        format!("{code}: {}", e.message)
    })
}

type Resp = ureq::http::Response<ureq::Body>;

/// An authenticated connection to one repository.
pub(crate) struct Session {
    agent: ureq::Agent,
    base: String,
    domain: String,
    pub(crate) path: String,
    auth: Option<String>,
}

impl Session {
    /// Ping `/v2/` on the first endpoint that answers, follow a Basic or
    /// Bearer challenge for `actions` ("pull" or "pull,push").
    pub(crate) fn open(
        cfg: &RegistryConfig,
        domain: &str,
        path: &str,
        creds: Option<&Credentials>,
        actions: &str,
    ) -> Result<Session> {
        let eps: Vec<Endpoint> = endpoints(cfg, domain, false);
        let mut last = None;
        for (i, ep) in eps.iter().enumerate() {
            match Session::open_endpoint(cfg, ep, domain, path, creds, actions) {
                Ok(s) => return Ok(s),
                // Docker falls back (HTTPS → HTTP) only when the transport failed.
                Err(e) if i + 1 < eps.len() && e.is_transport() => {
                    tracing::debug!(endpoint = %ep.base, error = %e, "registry endpoint failed, trying next");
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| reg_err(ErrorKind::Internal, "no registry endpoint")))
    }

    pub(crate) fn open_endpoint(
        cfg: &RegistryConfig,
        ep: &Endpoint,
        domain: &str,
        path: &str,
        creds: Option<&Credentials>,
        actions: &str,
    ) -> Result<Session> {
        let mut s = Session {
            agent: agent(cfg, ep)?,
            base: ep.base.clone(),
            domain: domain.to_string(),
            path: path.to_string(),
            auth: None,
        };
        let scope = if path.is_empty() {
            None
        } else {
            Some(format!("repository:{path}:{actions}"))
        };
        s.authenticate(creds, scope.as_deref())?;
        Ok(s)
    }

    fn url_err(&self, method: &str, url: &str, e: impl std::fmt::Display) -> Error {
        let text = e.to_string();
        // dockerd's (Go's) wording for the common network failure.
        let detail = if text.contains("Connection refused") {
            let host = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("");
            format!("dial tcp {host}: connect: connection refused")
        } else {
            text
        };
        Error::Transport(format!("{method} \"{url}\": {detail}"))
    }

    pub(crate) fn authenticate(
        &mut self,
        creds: Option<&Credentials>,
        scope: Option<&str>,
    ) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.url_err("Get", &url, e))?;
        let st = resp.status().as_u16();
        if st != 401 {
            return if (200..300).contains(&st) {
                Ok(())
            } else {
                let body = resp.body_mut().read_to_vec().unwrap_or_default();
                Err(reg_err(
                    ErrorKind::Internal,
                    format!(
                        "Get \"{url}\": {}",
                        error_body(&body).unwrap_or_else(|| format!("unexpected status {st}"))
                    ),
                ))
            };
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (scheme, params) = parse_challenge(&challenge);
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let basic = |c: &Credentials| {
            let pw = c.identity_token.as_deref().unwrap_or(&c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, pw))
            )
        };
        let unauthorized = |detail: &str| Error::Unauthorized(format!("Get \"{url}\": {detail}"));
        if let Some(t) = creds.and_then(|c| c.registry_token.clone()) {
            self.auth = Some(format!("Bearer {t}"));
            return Ok(());
        }
        match scheme.as_str() {
            "basic" => {
                let c = creds
                    .filter(|c| !c.username.is_empty())
                    .ok_or_else(|| unauthorized("no basic auth credentials"))?;
                let auth = basic(c);
                let mut r2 = self
                    .agent
                    .get(&url)
                    .header("Authorization", &auth)
                    .call()
                    .map_err(|e| self.url_err("Get", &url, e))?;
                if r2.status().as_u16() == 401 {
                    let body = r2.body_mut().read_to_vec().unwrap_or_default();
                    return Err(unauthorized(
                        &error_body(&body)
                            .unwrap_or_else(|| "unauthorized: authentication required".into()),
                    ));
                }
                self.auth = Some(auth);
                Ok(())
            }
            "bearer" => {
                let realm = param("realm").ok_or_else(|| {
                    unauthorized(&format!("bearer challenge without realm: {challenge}"))
                })?;
                let mut q = Vec::new();
                if let Some(svc) = param("service") {
                    q.push(("service".to_string(), svc));
                }
                if let Some(sc) = scope {
                    q.push(("scope".to_string(), sc.to_string()));
                }
                if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
                    q.push(("account".to_string(), c.username.clone()));
                }
                let qs: String = q
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                let turl = if qs.is_empty() {
                    realm.clone()
                } else if realm.contains('?') {
                    format!("{realm}&{qs}")
                } else {
                    format!("{realm}?{qs}")
                };
                let mut req = self.agent.get(&turl);
                if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
                    req = req.header("Authorization", basic(c));
                }
                let mut tr = req.call().map_err(|e| self.url_err("Get", &turl, e))?;
                let tst = tr.status().as_u16();
                let body = tr.body_mut().read_to_vec().unwrap_or_default();
                if tst == 401 || tst == 403 {
                    return Err(unauthorized(&format!(
                        "unauthorized: {}",
                        error_body(&body)
                            .unwrap_or_else(|| "incorrect username or password".into())
                    )));
                }
                if !(200..300).contains(&tst) {
                    return Err(reg_err(
                        ErrorKind::Internal,
                        format!("Get \"{turl}\": token server returned status {tst}"),
                    ));
                }
                #[derive(Deserialize)]
                struct Tok {
                    #[serde(default)]
                    token: Option<String>,
                    #[serde(default)]
                    access_token: Option<String>,
                }
                let t: Tok = serde_json::from_slice(&body).map_err(|e| {
                    reg_err(ErrorKind::Internal, format!("invalid token response: {e}"))
                })?;
                let tok = t.token.or(t.access_token).ok_or_else(|| {
                    reg_err(ErrorKind::Internal, "token response without a token")
                })?;
                self.auth = Some(format!("Bearer {tok}"));
                Ok(())
            }
            _ => Err(unauthorized(&format!(
                "unsupported authentication challenge {challenge:?}"
            ))),
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.path, tail)
    }

    /// GET `<base><path_and_query>` with this session's auth (search.rs).
    pub(crate) fn get_raw(&self, path_and_query: &str) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut resp = self.get(&url, Some("application/json"))?;
        let st = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_vec()
            .map_err(|e| self.url_err("Get", &url, e))?;
        Ok((st, body))
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", self.base, location)
        }
    }

    /// `req` with this session's Authorization header, if any.
    fn authed<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// An empty POST (upload session, cross-repository mount).
    fn post_empty(&self, url: &str) -> Result<Resp> {
        self.authed(self.agent.post(url))
            .send_empty()
            .map_err(|e| self.url_err("Post", url, e))
    }

    /// The absolute `Location` of an upload session answer.
    fn upload_location(&self, resp: &Resp) -> Result<String> {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| reg_err(ErrorKind::Internal, "upload without Location"))?;
        Ok(self.absolute(loc))
    }

    fn get(&self, url: &str, accept: Option<&str>) -> Result<Resp> {
        let mut req = self.authed(self.agent.get(url));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        req.call().map_err(|e| self.url_err("Get", url, e))
    }

    fn head(&self, url: &str, accept: Option<&str>) -> Result<Resp> {
        let mut req = self.authed(self.agent.head(url));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        req.call().map_err(|e| self.url_err("Head", url, e))
    }

    /// Map a non-2xx response to an error.
    fn fail(&self, what: &str, url: &str, mut resp: Resp) -> Error {
        let st = resp.status().as_u16();
        let body = resp.body_mut().read_to_vec().unwrap_or_default();
        let detail = error_body(&body).unwrap_or_else(|| match st {
            // HEAD answers have no body; the registry's words for them.
            401 => "unauthorized: authentication required".into(),
            403 => "denied: requested access to the resource is denied".into(),
            _ => format!("unexpected status {st}"),
        });
        let kind = match st {
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        if st == 401 || st == 403 {
            if let Some(name) = what.strip_prefix("manifest for ") {
                // moby's wording for a refused pull.
                let name = familiar_name(name);
                return Error::Unauthorized(format!(
                    "pull access denied for {name}, repository does not exist or may require 'docker login': {detail}"
                ));
            }
            return Error::Unauthorized(format!("{what}: \"{url}\": {detail}"));
        }
        if st == 404 && what.starts_with("manifest") {
            return reg_err(kind, format!("{what} not found: {detail}"));
        }
        reg_err(kind, format!("{what}: \"{url}\": {detail}"))
    }

    /// Manifest bytes, media type, digest (verified when `reference` is one).
    pub(crate) fn manifest(
        &self,
        reference: &str,
        display: &str,
    ) -> Result<(Vec<u8>, String, String)> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = [
            MT_OCI_INDEX,
            MT_DOCKER_LIST,
            MT_DOCKER_MANIFEST,
            MT_OCI_MANIFEST,
        ]
        .join(", ");
        let mut resp = self.get(&url, Some(&accept))?;
        if !resp.status().is_success() {
            return Err(self.fail(&format!("manifest for {display}"), &url, resp));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| self.url_err("Get", &url, e))?;
        let digest = format!("sha256:{}", sha256_hex(&body));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(reg_err(
                ErrorKind::InvalidArgument,
                format!("manifest verification failed for digest {reference}"),
            ));
        }
        #[derive(Deserialize)]
        struct MtOnly {
            #[serde(default, rename = "mediaType")]
            media_type: Option<String>,
            #[serde(default, rename = "schemaVersion")]
            schema_version: Option<u32>,
        }
        let m: MtOnly = serde_json::from_slice(&body).map_err(|e| {
            reg_err(
                ErrorKind::Internal,
                format!("invalid manifest for {display}: {e}"),
            )
        })?;
        let mt = m.media_type.filter(|m| !m.is_empty()).unwrap_or(ct);
        if m.schema_version == Some(1) || mt.starts_with(MT_SCHEMA1) {
            return Err(reg_err(
                ErrorKind::InvalidArgument,
                format!("{display}: schema 1 manifests are not supported"),
            ));
        }
        Ok((body, mt, digest))
    }

    /// Small blob (config), verified.
    pub(crate) fn small_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("blobs/{digest}"));
        let mut resp = self.get(&url, None)?;
        if !resp.status().is_success() {
            return Err(self.fail("fetching blob", &url, resp));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| self.url_err("Get", &url, e))?;
        if format!("sha256:{}", sha256_hex(&body)) != digest {
            return Err(reg_err(
                ErrorKind::InvalidArgument,
                format!("digest mismatch for blob {digest}"),
            ));
        }
        Ok(body)
    }

    pub(crate) fn blob_stream(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.get(&url, None)?;
        if !resp.status().is_success() {
            return Err(self.fail("fetching blob", &url, resp));
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }

    pub(crate) fn blob_exists(&self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.head(&url, None)?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail("checking blob", &url, resp)),
        }
    }

    /// Cross-repository mount: `POST uploads/?mount=<digest>&from=<repo>`.
    pub(crate) fn mount_blob(&self, digest: &str, from: &str) -> Result<Mount> {
        let url = format!(
            "{}?mount={}&from={}",
            self.url("blobs/uploads/"),
            urlencode(digest),
            urlencode(from)
        );
        let resp = self.post_empty(&url)?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(self.upload_location(&resp)?)),
            _ => Err(self.fail("mounting blob", &url, resp)),
        }
    }

    /// Monolithic upload: POST an upload session, PUT the bytes with the digest.
    pub(crate) fn upload_blob(&self, digest: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        self.upload_blob_at(None, digest, size, body)
    }

    /// `upload_blob`, into an upload session already opened at `at`.
    pub(crate) fn upload_blob_at(
        &self,
        at: Option<String>,
        digest: &str,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<()> {
        let loc = match at {
            Some(loc) => loc,
            None => self.start_upload()?,
        };
        let put = if loc.contains('?') {
            format!("{loc}&digest={}", urlencode(digest))
        } else {
            format!("{loc}?digest={}", urlencode(digest))
        };
        let req = self.authed(
            self.agent
                .put(&put)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", size.to_string()),
        );
        let resp = req
            .send(ureq::SendBody::from_reader(body))
            .map_err(|e| self.url_err("Put", &put, e))?;
        if !resp.status().is_success() {
            return Err(self.fail("uploading blob", &put, resp));
        }
        Ok(())
    }

    fn start_upload(&self) -> Result<String> {
        let url = self.url("blobs/uploads/");
        let resp = self.post_empty(&url)?;
        if resp.status().as_u16() != 202 {
            return Err(self.fail("starting upload", &url, resp));
        }
        self.upload_location(&resp)
    }

    pub(crate) fn put_manifest(&self, tag: &str, media_type: &str, body: &[u8]) -> Result<()> {
        let url = self.url(&format!("manifests/{tag}"));
        let req = self.authed(self.agent.put(&url).header("Content-Type", media_type));
        let resp = req.send(body).map_err(|e| self.url_err("Put", &url, e))?;
        if !resp.status().is_success() {
            return Err(self.fail("putting manifest", &url, resp));
        }
        Ok(())
    }

    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }
}

/// `name:tag` / `name@digest` → `name`.
fn familiar_name(r: &str) -> &str {
    let r = r.split('@').next().unwrap_or(r);
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => &r[..i],
        _ => r,
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Check credentials against a registry (`docker login`, `POST /auth`).
pub fn login(cfg: &RegistryConfig, server: &str, creds: &Credentials) -> Result<()> {
    let domain = normalize_server(server);
    // No repository: the ping and the challenge only, on the first
    // endpoint that answers.
    Session::open(cfg, &domain, "", Some(creds), "").map(|_| ())
}

/// `https://index.docker.io/v1/` → `docker.io`; strips scheme and path.
pub fn normalize_server(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: String,
}

/// `--platform` (`os[/arch[/variant]]`, or just an architecture) as
/// (os, architecture, variant), with Docker's architecture aliases.
pub fn parse_platform(p: Option<&str>) -> Result<(String, String, String)> {
    let norm_arch = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" | "i686" => "386".to_string(),
        other => other.to_string(),
    };
    let Some(p) = p.filter(|p| !p.is_empty()) else {
        return Ok(("linux".into(), host_arch().to_string(), String::new()));
    };
    let parts: Vec<String> = p
        .to_ascii_lowercase()
        .split('/')
        .map(String::from)
        .collect();
    let bad = || {
        reg_err(
            ErrorKind::InvalidArgument,
            format!("\"{p}\": unknown operating system or architecture: invalid argument"),
        )
    };
    match parts.as_slice() {
        [one] if one == "linux" => Ok(("linux".into(), host_arch().to_string(), String::new())),
        [one] if !one.is_empty() => Ok(("linux".into(), norm_arch(one), String::new())),
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            Ok((os.clone(), norm_arch(arch), String::new()))
        }
        [os, arch, v] if !os.is_empty() && !arch.is_empty() => {
            Ok((os.clone(), norm_arch(arch), v.clone()))
        }
        _ => Err(bad()),
    }
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn short(d: &str) -> String {
    d.strip_prefix("sha256:")
        .unwrap_or(d)
        .chars()
        .take(12)
        .collect()
}

/// Network side of a layer download, on its own thread so that receiving
/// and hashing the blob overlap with inflating and unpacking it: reads the
/// HTTP body in large chunks, hashes it, tees it to the blob file and hands
/// each chunk (or the read error) to the extractor.
fn receive_blob(
    mut inner: Box<dyn Read + Send>,
    mut file: fs::File,
    abort: &std::sync::atomic::AtomicBool,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    loop {
        let mut buf = vec![0u8; BLOB_CHUNK];
        let n = if abort.load(std::sync::atomic::Ordering::Relaxed) {
            Err(io::Error::other("pull aborted"))
        } else {
            read_full(&mut inner, &mut buf)
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        if n == 0 {
            return Ok((hasher, count));
        }
        buf.truncate(n);
        hasher.update(&buf);
        file.write_all(&buf)?;
        count += n as u64;
        if tx.send(Ok(buf)).is_err() {
            // The extractor stopped (it failed); its error is the one reported.
            return Ok((hasher, count));
        }
    }
}

const BLOB_CHUNK: usize = 256 * 1024;

/// syncfs, on a thread of its own, of the filesystem holding `dir`: the
/// download workers go on while the disk catches up (errors are left to the
/// final flush in place_layer).
fn flush_early(dir: &std::path::Path) {
    if let Ok(f) = fs::File::open(dir) {
        std::thread::spawn(move || {
            let _ = nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f));
        });
    }
}

/// Read until `buf` is full or the stream ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Extractor side: the received chunks as a reader, reporting download
/// progress as they are consumed.
struct ChunkReader<'a> {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    count: u64,
    id: String,
    total: u64,
    last: u64,
    progress: &'a mut dyn FnMut(Progress),
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        self.count += n as u64;
        if n > 0 && (self.count - self.last >= 512 * 1024 || self.count == self.total) {
            self.last = self.count;
            (self.progress)(Progress::Bytes {
                id: self.id.clone(),
                status: "Downloading".into(),
                current: self.count,
                total: Some(self.total),
            });
        }
        Ok(n)
    }
}

/// Reader that counts and reports push progress.
struct PushReader<'a> {
    inner: fs::File,
    count: u64,
    last: u64,
    total: u64,
    id: String,
    progress: &'a mut dyn FnMut(Progress),
}

impl Read for PushReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if n > 0 && (self.count - self.last >= 512 * 1024 || self.count == self.total) {
            self.last = self.count;
            (self.progress)(Progress::Bytes {
                id: self.id.clone(),
                status: "Pushing".into(),
                current: self.count,
                total: Some(self.total),
            });
        }
        Ok(n)
    }
}

/// Files to remove if the operation fails.
struct Cleanup {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            for f in &self.files {
                let _ = fs::remove_file(f);
            }
            for d in &self.dirs {
                let _ = remove_all(d);
            }
        }
    }
}

const BLOB_SOURCES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL, domain TEXT NOT NULL, repo TEXT NOT NULL,
    PRIMARY KEY (digest, domain, repo));";

/// Answer to a cross-repository mount request.
pub(crate) enum Mount {
    Mounted,
    /// 202: an upload session at this location instead.
    Upload(String),
}

/// A layer downloaded, verified and unpacked into a temp dir.
struct Fetched {
    diff: String,
    size: u64,
    dir: crate::util::TempDir,
    blob_tmp: PathBuf,
    count: u64,
}

enum FetchMsg {
    Progress(Progress),
    Done(usize, Result<Fetched>),
}

/// Layers being fetched by pulls in this process, keyed by store root and
/// chain id.
static INFLIGHT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static INFLIGHT_DONE: std::sync::Condvar = std::sync::Condvar::new();

/// Claimed layers; released (and waiters woken) on drop.
struct Claims(Vec<String>);

impl Drop for Claims {
    fn drop(&mut self) {
        let mut g = INFLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|k| !self.0.contains(k));
        INFLIGHT_DONE.notify_all();
    }
}

/// Claim all of `chains` at once (all or nothing, so two pulls never wait
/// on each other); `waiting` runs once if another pull holds one of them.
fn claim_layers(root: &std::path::Path, chains: &[String], waiting: &mut dyn FnMut()) -> Claims {
    let keys: Vec<String> = chains
        .iter()
        .map(|c| format!("{}\0{c}", root.display()))
        .collect();
    let mut g = INFLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    let mut told = false;
    while keys.iter().any(|k| g.contains(k)) {
        if !told {
            waiting();
            told = true;
        }
        g = INFLIGHT_DONE.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    g.extend(keys.iter().cloned());
    Claims(keys)
}

/// Open a pull session and fetch the top manifest: mirrors first (docker.io,
/// REG: registry-mirrors), falling back to the next endpoint when a mirror
/// fails in any way or an endpoint cannot be reached.
fn open_for_pull(
    cfg: &RegistryConfig,
    domain: &str,
    path: &str,
    creds: Option<&Credentials>,
    want: &str,
    display: &str,
) -> Result<(Session, Vec<u8>, String, String)> {
    let eps = endpoints(cfg, domain, true);
    let mut last = None;
    for (i, ep) in eps.iter().enumerate() {
        let more = i + 1 < eps.len();
        // A mirror gets no credentials of docker.io.
        let c = if ep.mirror { None } else { creds };
        let got = Session::open_endpoint(cfg, ep, domain, path, c, "pull").and_then(|s| {
            let (b, m, d) = s.manifest(want, display)?;
            Ok((s, b, m, d))
        });
        match got {
            Ok(v) => {
                if ep.mirror {
                    tracing::info!(mirror = %ep.base, %path, "pulling from mirror");
                }
                return Ok(v);
            }
            Err(e) if more && (ep.mirror || e.is_transport()) => {
                tracing::info!(endpoint = %ep.base, error = %e, "registry endpoint failed, trying next");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| reg_err(ErrorKind::Internal, "no registry endpoint")))
}

impl ImageStore {
    /// Download one layer blob: stream → sha256 + temp blob file → decompress
    /// → diff id → safe unpack into a temp dir; verified against the
    /// manifest (digest, size) and the config (diff id).
    fn fetch_layer(
        &self,
        session: &Session,
        l: &Descriptor,
        want_diff: &str,
        abort: &std::sync::atomic::AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Fetched> {
        let sid = short(&l.digest);
        let stream = session.blob_stream(&l.digest)?;
        // Never read more than the manifest promised (plus one byte, to
        // notice a longer blob).
        let stream: Box<dyn Read + Send> = if l.size > 0 {
            Box::new(stream.take(l.size + 1))
        } else {
            stream
        };
        let tmpf = self
            .root()
            .join("tmp")
            .join(format!("blob-{}", unique_suffix()));
        let remove_tmp = |e: Error| {
            let _ = fs::remove_file(&tmpf);
            e
        };
        let file = fs::File::create(&tmpf).ctx(|| format!("create {}", tmpf.display()))?;
        // 4 chunks (1 MiB) in flight per layer: enough to decouple the two
        // stages, little memory.
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let (extracted, received) = std::thread::scope(|sc| {
            let net = sc.spawn(move || receive_blob(stream, file, abort, tx));
            let mut cr = ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
                count: 0,
                id: sid.clone(),
                total: l.size,
                last: 0,
                progress: &mut *progress,
            };
            let extracted = self.extract_layer(&mut cr).and_then(|x| {
                // Whatever follows the tar's end still counts for the digest.
                io::copy(&mut cr, &mut io::sink()).map_err(|e| {
                    reg_err(
                        ErrorKind::Internal,
                        format!("reading layer {}: {e}", l.digest),
                    )
                })?;
                Ok(x)
            });
            drop(cr);
            let received = net
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("blob receiver panicked")));
            (extracted, received)
        });
        let (diff, dsize, tmpdir) = extracted
            .map_err(|e| match e {
                Error::InvalidArchive(m) | Error::Io { context: m, .. } => reg_err(
                    ErrorKind::InvalidArgument,
                    format!("layer {}: {m}", l.digest),
                ),
                e => e,
            })
            .map_err(remove_tmp)?;
        let (hasher, count) = received
            .map_err(|e| {
                reg_err(
                    ErrorKind::Internal,
                    format!("reading layer {}: {e}", l.digest),
                )
            })
            .map_err(remove_tmp)?;
        // Start writing the layer back now, while other layers still
        // download, so the flush before it becomes visible (place_layer's
        // syncfs) finds little left to do.
        flush_early(tmpdir.path());
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        // No fsync: like the unpacked layer files (and Docker's), blob content
        // is not forced to disk; registration is atomic, and a blob damaged
        // by a power loss fails the registry's digest check on push.
        progress(status(Some(&sid), "Verifying Checksum"));
        if got != l.digest || (l.size != 0 && count != l.size) {
            return Err(remove_tmp(reg_err(
                ErrorKind::InvalidArgument,
                format!(
                    "filesystem layer verification failed for digest {}",
                    l.digest
                ),
            )));
        }
        progress(status(Some(&sid), "Download complete"));
        if diff != want_diff {
            return Err(remove_tmp(Error::archive(format!(
                "layer {} has diff id {diff}, the image config expects {want_diff}",
                l.digest
            ))));
        }
        progress(Progress::Bytes {
            id: sid.clone(),
            status: "Extracting".into(),
            current: count,
            total: Some(l.size.max(count)),
        });
        Ok(Fetched {
            diff,
            size: dsize,
            dir: tmpdir,
            blob_tmp: tmpf,
            count,
        })
    }

    /// Push one layer blob: already there, mounted from another repository
    /// of the same registry that had it (cross-repository mount), or
    /// uploaded.
    fn push_layer(
        &self,
        session: &Session,
        diff_id: &str,
        digest: &str,
        size: u64,
        media_type: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(String, u64, String)> {
        let sid = short(diff_id);
        let (digest, size, mt) = if media_type == MT_DOCKER_LAYER_TAR {
            self.gzip_layer_blob(diff_id, digest)?
        } else {
            (digest.to_string(), size, media_type.to_string())
        };
        let done = (digest.clone(), size, mt.clone());
        let digest = digest.as_str();
        if session.blob_exists(digest)? {
            progress(status(Some(&sid), "Layer already exists"));
            return Ok(done);
        }
        let mut upload_at = None;
        for from in self.blob_sources(digest, session.domain(), &session.path) {
            match session.mount_blob(digest, &from)? {
                Mount::Mounted => {
                    progress(status(Some(&sid), format!("Mounted from {from}")));
                    return Ok(done);
                }
                // The registry opened a normal upload instead.
                Mount::Upload(loc) => {
                    upload_at = Some(loc);
                    break;
                }
            }
        }
        let p = self.blob_file(digest);
        let f = fs::File::open(&p).ctx(|| format!("open {}", p.display()))?;
        let mut pr = PushReader {
            inner: f,
            count: 0,
            last: 0,
            total: size,
            id: sid.clone(),
            progress: &mut *progress,
        };
        session.upload_blob_at(upload_at, digest, size, &mut pr)?;
        progress(status(Some(&sid), "Pushed"));
        Ok(done)
    }

    /// Gzip a layer kept as its plain tar (first push), keep the gzip as
    /// the layer's blob instead; returns its (digest, size, media type).
    fn gzip_layer_blob(&self, diff_id: &str, tar_digest: &str) -> Result<(String, u64, String)> {
        let src = self.blob_file(tar_digest);
        let tmp = self
            .root()
            .join("tmp")
            .join(format!("gz-{}", unique_suffix()));
        let res = (|| -> io::Result<(String, u64)> {
            let mut input = fs::File::open(&src)?;
            let out = crate::store::HashWriter {
                inner: fs::File::create(&tmp)?,
                hasher: Sha256::new(),
                count: 0,
            };
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            io::copy(&mut input, &mut enc)?;
            let out = enc.finish()?;
            Ok((
                format!("sha256:{}", hex::encode(out.hasher.finalize())),
                out.count,
            ))
        })();
        let (digest, size) = match res {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io(format!("compress layer {diff_id}"), e));
            }
        };
        self.keep_gz_blob(
            diff_id,
            crate::store::GzBlob {
                digest: digest.clone(),
                size,
                tmp: tmp.clone(),
            },
        )
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        Ok((digest, size, MT_DOCKER_LAYER_GZIP.to_string()))
    }

    /// Remember that `digest` lives in `domain/repo` (for cross-repository
    /// mounts on push). Best effort.
    fn record_blob_source(&self, digest: &str, domain: &str, repo: &str) {
        let r = self.with_db(|db| {
            db.execute_batch(BLOB_SOURCES_SCHEMA)?;
            db.execute(
                "INSERT OR IGNORE INTO blob_sources (digest, domain, repo) VALUES (?1, ?2, ?3)",
                [digest, domain, repo],
            )
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording blob source");
        }
    }

    /// Other repositories of `domain` known to hold `digest`.
    fn blob_sources(&self, digest: &str, domain: &str, except: &str) -> Vec<String> {
        self.with_db(|db| {
            db.execute_batch(BLOB_SOURCES_SCHEMA)?;
            let mut st = db.prepare(
                "SELECT repo FROM blob_sources WHERE digest = ?1 AND domain = ?2 AND repo != ?3 ORDER BY rowid DESC LIMIT 3",
            )?;
            let rows = st.query_map([digest, domain, except], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .unwrap_or_default()
    }

    /// `docker pull` (IMG-09/10): by tag (default `latest`) or digest.
    pub fn pull(
        &self,
        reference: &str,
        creds: Option<&Credentials>,
        cfg: &RegistryConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PullResult> {
        self.pull_platform(reference, None, creds, cfg, progress)
    }

    /// `docker pull --platform`: a manifest list / index entry for
    /// `platform` (default: linux and the host's architecture).
    pub fn pull_platform(
        &self,
        reference: &str,
        platform: Option<&str>,
        creds: Option<&Credentials>,
        cfg: &RegistryConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PullResult> {
        let r = parse_reference(reference)?;
        let (domain, path) = split_name(&r.name);
        let want = match (&r.digest, &r.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        let display = if r.digest.is_some() {
            format!("{}@{}", r.name, want)
        } else {
            format!("{}:{}", r.name, want)
        };
        let (session, mut body, mut mt, top_digest) =
            open_for_pull(cfg, &domain, &path, creds, &want, &display)?;
        if mt == MT_DOCKER_LIST || mt == MT_OCI_INDEX {
            let idx: Index = serde_json::from_slice(&body)
                .map_err(|e| reg_err(ErrorKind::Internal, format!("invalid manifest list: {e}")))?;
            let (os, arch, variant) = parse_platform(platform)?;
            // An exact variant first, then any variant of the architecture.
            let matches = |m: &&Descriptor, exact: bool| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os == os
                        && p.architecture == arch
                        && (!exact || variant.is_empty() || p.variant == variant)
                })
            };
            let shown = if variant.is_empty() {
                format!("{os}/{arch}")
            } else {
                format!("{os}/{arch}/{variant}")
            };
            let pick = idx
                .manifests
                .iter()
                .find(|m| matches(m, true))
                .or_else(|| {
                    if variant.is_empty() {
                        None
                    } else {
                        idx.manifests.iter().find(|m| matches(m, false))
                    }
                })
                .ok_or_else(|| {
                    reg_err(
                        ErrorKind::NotFound,
                        format!("no matching manifest for {shown} in the manifest list entries"),
                    )
                })?;
            if !valid_digest(&pick.digest) {
                return Err(reg_err(
                    ErrorKind::Internal,
                    "invalid digest in manifest list",
                ));
            }
            let (b, m, _) = session.manifest(&pick.digest, &display)?;
            body = b;
            mt = m;
            if mt == MT_DOCKER_LIST || mt == MT_OCI_INDEX {
                return Err(reg_err(ErrorKind::Internal, "nested manifest lists"));
            }
        }
        let manifest: Manifest = serde_json::from_slice(&body)
            .map_err(|e| reg_err(ErrorKind::Internal, format!("invalid manifest: {e}")))?;
        // dockerd: the tag, or for digest pulls the whole familiar reference.
        let pulling_id = if r.digest.is_some() {
            display.clone()
        } else {
            want.clone()
        };
        progress(status(Some(&pulling_id), format!("Pulling from {path}")));

        if !valid_digest(&manifest.config.digest)
            || manifest.layers.iter().any(|l| !valid_digest(&l.digest))
        {
            return Err(reg_err(ErrorKind::Internal, "invalid digest in manifest"));
        }
        let cfg_bytes = session.small_blob(&manifest.config.digest)?;
        let id = manifest.config.digest.clone();
        let cfile: ConfigFile = serde_json::from_slice(&cfg_bytes)
            .map_err(|e| Error::archive(format!("invalid image config: {e}")))?;
        let diff_ids = cfile
            .rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::archive(format!(
                "image config has {} diff ids but the manifest {} layers",
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        if let Some(bad) = diff_ids.iter().find(|d| !valid_digest(d)) {
            return Err(Error::archive(format!("invalid diff id {bad:?}")));
        }
        for l in &manifest.layers {
            let ok = l.media_type.is_empty()
                || l.media_type.ends_with("tar.gzip")
                || l.media_type.ends_with("tar+gzip")
                || l.media_type.ends_with("tar+zstd")
                || l.media_type.ends_with(".tar")
                || l.media_type.ends_with("diff.tar");
            if !ok {
                return Err(reg_err(
                    ErrorKind::InvalidArgument,
                    format!("unsupported layer media type {:?}", l.media_type),
                ));
            }
        }
        let tag = if r.digest.is_none() {
            Some(format!("{}:{}", r.name, want))
        } else {
            None
        };
        let repo_digest = format!("{}@{}", r.name, top_digest);

        let already = self.resolve(&id).ok();
        let chains = chain_ids(&diff_ids);
        let mut present = Vec::new();
        for c in &chains {
            present.push(self.existing_layer(c)?.is_some());
        }
        // Like dockerd: an image already stored prints no layer lines.
        let quiet_layers = already.is_some() && present.iter().all(|p| *p);
        for (i, l) in manifest.layers.iter().enumerate() {
            if quiet_layers {
                break;
            }
            let st = if present[i] {
                "Already exists"
            } else {
                "Pulling fs layer"
            };
            progress(status(Some(&short(&l.digest)), st));
        }
        // Concurrent pulls (REG: concurrent downloads): claim every missing
        // layer before downloading; a pull that needs a layer another pull
        // is fetching waits for it, so each blob is downloaded once.
        let missing: Vec<String> = chains
            .iter()
            .zip(&present)
            .filter(|(_, p)| !**p)
            .map(|(c, _)| c.clone())
            .collect();
        let _claims = claim_layers(self.root(), &missing, &mut || {
            for (i, l) in manifest.layers.iter().enumerate() {
                if !present[i] {
                    progress(status(Some(&short(&l.digest)), "Waiting"));
                }
            }
        });
        for (i, c) in chains.iter().enumerate() {
            if !present[i] && self.existing_layer(c)?.is_some() {
                present[i] = true;
                progress(status(
                    Some(&short(&manifest.layers[i].digest)),
                    "Already exists",
                ));
            }
        }
        let mut cleanup = Cleanup {
            files: Vec::new(),
            dirs: Vec::new(),
            armed: true,
        };
        // One job per distinct missing layer, downloaded in parallel
        // (max-concurrent-downloads), each streamed once into its own temp dir.
        let mut jobs: Vec<usize> = Vec::new();
        for i in 0..manifest.layers.len() {
            if !present[i] && !jobs.iter().any(|j| chains[*j] == chains[i]) {
                jobs.push(i);
            }
        }
        let mut fetched: Vec<Option<Fetched>> = (0..manifest.layers.len()).map(|_| None).collect();
        if !jobs.is_empty() {
            let workers = cfg.downloads().min(jobs.len());
            let queue = std::sync::Mutex::new(
                jobs.iter()
                    .copied()
                    .collect::<std::collections::VecDeque<_>>(),
            );
            let abort = std::sync::atomic::AtomicBool::new(false);
            let (tx, rx) = std::sync::mpsc::channel::<FetchMsg>();
            let mut first_err: Option<Error> = None;
            std::thread::scope(|sc| {
                for _ in 0..workers {
                    let tx = tx.clone();
                    let (queue, abort, session, layers, diff_ids) =
                        (&queue, &abort, &session, &manifest.layers, &diff_ids);
                    sc.spawn(move || loop {
                        if abort.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let Some(i) = queue.lock().unwrap().pop_front() else {
                            break;
                        };
                        let mut emit = |p: Progress| {
                            let _ = tx.send(FetchMsg::Progress(p));
                        };
                        let r =
                            self.fetch_layer(session, &layers[i], &diff_ids[i], abort, &mut emit);
                        let _ = tx.send(FetchMsg::Done(i, r));
                    });
                }
                drop(tx);
                for msg in rx {
                    match msg {
                        FetchMsg::Progress(p) => progress(p),
                        FetchMsg::Done(i, Ok(f)) => {
                            cleanup.files.push(f.blob_tmp.clone());
                            fetched[i] = Some(f);
                        }
                        FetchMsg::Done(_, Err(e)) => {
                            abort.store(true, std::sync::atomic::Ordering::Relaxed);
                            if first_err.is_none() {
                                first_err = Some(e);
                            }
                        }
                    }
                }
            });
            if let Some(e) = first_err {
                return Err(e);
            }
        }

        // Place and register under the store's write lock.
        let _w = self.lock_writes();
        let mut new_layers: Vec<NewLayer> = Vec::new();
        let mut blobs: Vec<(String, String, u64, String)> = Vec::new();
        let mut size = 0u64;
        for (i, l) in manifest.layers.iter().enumerate() {
            let chain = &chains[i];
            if let Some(nl) = new_layers.iter().find(|n| &n.chain_id == chain) {
                size += nl.size;
                continue;
            }
            let Some(f) = fetched[i].take() else {
                // Present before the download; it must still be there.
                let s = self.existing_layer(chain)?.ok_or_else(|| {
                    reg_err(
                        ErrorKind::Conflict,
                        format!("layer {} was removed during the pull; pull again", l.digest),
                    )
                })?;
                size += s;
                continue;
            };
            let sid = short(&l.digest);
            if let Some(s) = self.existing_layer(chain)? {
                // Registered meanwhile (a load or import): keep that copy.
                size += s;
                progress(status(Some(&sid), "Pull complete"));
                continue;
            }
            if let Some(dir) = self.place_new_layer(f.dir, chain)? {
                cleanup.dirs.push(dir.clone());
                new_layers.push(NewLayer {
                    chain_id: chain.clone(),
                    diff_id: f.diff.clone(),
                    parent: i.checked_sub(1).map(|p| chains[p].clone()),
                    size: f.size,
                    dir,
                });
            }
            let mt = if l.media_type.is_empty() {
                MT_DOCKER_LAYER_GZIP.to_string()
            } else {
                l.media_type.clone()
            };
            blobs.push((f.diff.clone(), l.digest.clone(), f.count, mt));
            let final_blob = self.blob_file(&l.digest);
            fs::rename(&f.blob_tmp, &final_blob)
                .ctx(|| format!("rename {}", final_blob.display()))?;
            cleanup.files.push(final_blob);
            size += f.size;
            progress(status(Some(&sid), "Pull complete"));
        }
        let cfg_path = self.blob_file(&id);
        if !cfg_path.exists() {
            write_atomic(&cfg_path, &cfg_bytes)?;
        }
        let man_path = self.blob_file(&top_digest);
        if !man_path.exists() {
            let _ = write_atomic(&man_path, &body);
        }
        let plan = Plan {
            id: id.clone(),
            created: cfile.created.clone().unwrap_or_default(),
            size,
            architecture: cfile.architecture.clone().unwrap_or_default(),
            os: cfile.os.clone().unwrap_or_else(|| "linux".into()),
            config: cfile.config.clone().unwrap_or_default(),
            diff_ids: diff_ids.clone(),
            tags: tag.clone().into_iter().collect(),
        };
        self.register_pulled(&new_layers, &plan, &repo_digest, &blobs)?;
        for l in &manifest.layers {
            self.record_blob_source(&l.digest, &domain, &path);
        }
        cleanup.armed = false;
        progress(status(None, format!("Digest: {top_digest}")));
        let shown = tag.clone().unwrap_or_else(|| repo_digest.clone());
        // "Downloaded newer image" when the reference now points elsewhere
        // (a new tag, or a digest reference the image did not have).
        let changed = match &already {
            Some(rec) => match &tag {
                Some(t) => !rec.repo_tags.contains(t),
                None => !rec.repo_digests.contains(&repo_digest),
            },
            None => true,
        };
        if changed {
            progress(status(
                None,
                format!("Status: Downloaded newer image for {shown}"),
            ));
        } else {
            progress(status(
                None,
                format!("Status: Image is up to date for {shown}"),
            ));
        }
        tracing::info!(id = %id, reference = %shown, digest = %top_digest, "pulled image");
        Ok(PullResult {
            id,
            reference: shown,
            digest: top_digest,
            changed,
        })
    }

    /// `docker push` (REG-02): every layer blob, the config, a schema2
    /// manifest under the tag (default `latest`).
    pub fn push(
        &self,
        reference: &str,
        creds: Option<&Credentials>,
        cfg: &RegistryConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<String> {
        let r = parse_reference(reference)?;
        if r.digest.is_some() {
            return Err(Error::InvalidReference(
                "cannot push a digest reference".into(),
            ));
        }
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let full = format!("{}:{}", r.name, tag);
        let (domain, path) = split_name(&r.name);
        let shown_repo = if domain == "docker.io" {
            format!("docker.io/{path}")
        } else {
            r.name.clone()
        };
        // dockerd announces the repository before looking the image up.
        progress(status(
            None,
            format!("The push refers to repository [{shown_repo}]"),
        ));
        let rec = match self.resolve(&full) {
            Ok(rec) => rec,
            Err(Error::NoSuchImage(_)) => {
                return Err(reg_err(
                    ErrorKind::NotFound,
                    format!("An image does not exist locally with the tag: {}", r.name),
                ))
            }
            Err(e) => return Err(e),
        };
        let session = Session::open(cfg, &domain, &path, creds, "pull,push")?;
        let mut layers = Vec::new();
        for d in &rec.rootfs_layers {
            let b = self.layer_blob(d)?.ok_or_else(|| {
                reg_err(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "layer {d} has no stored compressed blob; re-pull or re-load the image"
                    ),
                )
            })?;
            layers.push((d.clone(), b));
        }
        // Docker lists layers top first.
        for (d, _) in layers.iter().rev() {
            progress(status(Some(&short(d)), "Preparing"));
        }
        // max-concurrent-uploads workers; progress comes back over a channel.
        let queue = std::sync::Mutex::new(
            layers
                .iter()
                .rev()
                .cloned()
                .collect::<std::collections::VecDeque<_>>(),
        );
        let abort = std::sync::atomic::AtomicBool::new(false);
        type Pushed = (String, (String, u64, String));
        let (tx, rx) =
            std::sync::mpsc::channel::<(Option<Progress>, Option<Error>, Option<Pushed>)>();
        let mut first_err = None;
        let mut pushed: Vec<Pushed> = Vec::new();
        std::thread::scope(|sc| {
            for _ in 0..cfg.uploads().min(layers.len()) {
                let tx = tx.clone();
                let (queue, abort, session) = (&queue, &abort, &session);
                sc.spawn(move || loop {
                    if abort.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let Some((d, (digest, size, mt))) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let mut emit = |p: Progress| {
                        let _ = tx.send((Some(p), None, None));
                    };
                    match self.push_layer(session, &d, &digest, size, &mt, &mut emit) {
                        Ok(done) => {
                            let _ = tx.send((None, None, Some((d.clone(), done))));
                        }
                        Err(e) => {
                            let _ = tx.send((None, Some(e), None));
                        }
                    }
                });
            }
            drop(tx);
            for (p, e, done) in rx {
                if let Some(p) = p {
                    progress(p);
                }
                if let Some(done) = done {
                    pushed.push(done);
                }
                if let Some(e) = e {
                    abort.store(true, std::sync::atomic::Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
            }
        });
        if let Some(e) = first_err {
            return Err(e);
        }
        // What was pushed (a plain tar blob became gzip on the way).
        for (d, desc) in layers.iter_mut() {
            if let Some((_, done)) = pushed.iter().find(|(pd, _)| pd == d) {
                *desc = done.clone();
            }
        }
        let cfg_bytes = self.config_blob(&rec.id)?;
        if !session.blob_exists(&rec.id)? {
            session.upload_blob(&rec.id, cfg_bytes.len() as u64, &mut &cfg_bytes[..])?;
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_DOCKER_MANIFEST,
            "config": {"mediaType": MT_DOCKER_CONFIG, "size": cfg_bytes.len(), "digest": rec.id},
            "layers": layers.iter().map(|(_, (digest, size, mt))| serde_json::json!({
                "mediaType": mt, "size": size, "digest": digest
            })).collect::<Vec<_>>(),
        });
        // dockerd's encoding (json.MarshalIndent with three spaces).
        let mut mbytes = Vec::new();
        {
            use serde::Serialize;
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            let mut ser = serde_json::Serializer::with_formatter(&mut mbytes, fmt);
            manifest
                .serialize(&mut ser)
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        session.put_manifest(&tag, MT_DOCKER_MANIFEST, &mbytes)?;
        let digest = format!("sha256:{}", sha256_hex(&mbytes));
        let _ = write_atomic(&self.blob_file(&digest), &mbytes);
        self.add_repo_digest(&rec.id, &format!("{}@{}", r.name, digest))?;
        for (_, (d, _, _)) in &layers {
            self.record_blob_source(d, &domain, &path);
        }
        progress(status(
            None,
            format!("{tag}: digest: {digest} size: {}", mbytes.len()),
        ));
        progress(Progress::PushAux {
            tag: tag.clone(),
            digest: digest.clone(),
            size: mbytes.len() as u64,
        });
        tracing::info!(image = %rec.id, reference = %full, digest = %digest, domain = %session.domain(), "pushed image");
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p[0].1, "Registry Realm");
    }

    #[test]
    fn names() {
        assert_eq!(
            split_name("busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(split_name("a/b"), ("docker.io".into(), "a/b".into()));
        assert_eq!(
            split_name("127.0.0.1:5000/x/y"),
            ("127.0.0.1:5000".into(), "x/y".into())
        );
        assert_eq!(split_name("localhost/x"), ("localhost".into(), "x".into()));
        let cfg = RegistryConfig::default();
        assert!(is_insecure(&cfg, "127.0.0.1:5000"));
        assert!(is_insecure(&cfg, "localhost"));
        assert!(!is_insecure(&cfg, "example.com:5000"));
        assert_eq!(endpoint(&cfg, "127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(normalize_server("https://index.docker.io/v1/"), "docker.io");
    }

    #[test]
    fn registry_error_body() {
        assert_eq!(
            error_body(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#)
                .unwrap(),
            "manifest unknown: manifest unknown"
        );
    }
}
