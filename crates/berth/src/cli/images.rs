//! `images`, `load`, `import` (IMG-xx, SAMPLE-02, SAMPLE-17).

use berth_api::client::{reader, Client};
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;

use super::{q, CliResult, Failure};

/// Print a JSON-lines progress stream: `stream` and `status` lines, and
/// fail on `error`.
async fn print_stream(resp: hyper::Response<hyper::body::Incoming>) -> CliResult {
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?
        .to_bytes();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(Failure {
                code: 1,
                message: e.to_string(),
            });
        }
        if let Some(s) = v.get("stream").and_then(|s| s.as_str()) {
            print!("{s}");
        } else if let Some(s) = v.get("status").and_then(|s| s.as_str()) {
            println!("{s}");
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

async fn open_input(path: Option<&str>) -> Result<berth_api::client::ReqBody, Failure> {
    match path {
        None | Some("-") => Ok(reader(tokio::io::stdin())),
        Some(p) => {
            let f = tokio::fs::File::open(p).await.map_err(|e| Failure {
                code: 1,
                message: format!("open {p}: {e}"),
            })?;
            Ok(reader(f))
        }
    }
}

pub async fn load(client: &Client, a: LoadArgs) -> CliResult {
    let body = open_input(a.input.as_deref()).await?;
    let resp = client
        .stream(
            Method::POST,
            &format!("/images/load?quiet={}", a.quiet as u8),
            body,
            Some("application/x-tar"),
        )
        .await?;
    // -q only hides progress; "Loaded image:" lines and errors still show.
    print_stream(resp).await
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// File (or - for STDIN)
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub async fn import(client: &Client, a: ImportArgs) -> CliResult {
    // IMG-17: a URL is fetched by the daemon, anything else is sent.
    let url = a.file.starts_with("http://") || a.file.starts_with("https://");
    let mut path = if url {
        format!("/images/create?fromSrc={}", q(&a.file))
    } else {
        "/images/create?fromSrc=-".to_string()
    };
    if let Some(r) = &a.reference {
        let (repo, tag) = match r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((repo, tag)) => (repo, Some(tag)),
            None => (r.as_str(), None),
        };
        path.push_str(&format!("&repo={}", q(repo)));
        if let Some(t) = tag {
            path.push_str(&format!("&tag={}", q(t)));
        }
    }
    if let Some(m) = &a.message {
        path.push_str(&format!("&message={}", q(m)));
    }
    for c in &a.change {
        path.push_str(&format!("&changes={}", q(c)));
    }
    let body = if url {
        berth_api::client::empty()
    } else {
        open_input(Some(&a.file)).await?
    };
    let resp = client
        .stream(Method::POST, &path, body, Some("application/x-tar"))
        .await?;
    print_stream(resp).await
}

// ---------- registries: pull, push, tag, rmi, login, logout ----------

use base64::Engine as _;

/// `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`), shared with
/// the docker CLI.
fn docker_config_path() -> std::path::PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d).join("config.json"),
        None => {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".docker/config.json")
        }
    }
}

fn read_docker_config() -> serde_json::Value {
    std::fs::read(docker_config_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|v: &serde_json::Value| v.is_object())
        .unwrap_or_else(|| serde_json::json!({}))
}

fn write_docker_config(v: &serde_json::Value) -> Result<(), Failure> {
    let p = docker_config_path();
    let err = |e: std::io::Error| Failure {
        code: 1,
        message: format!("Error saving credentials: {}: {e}", p.display()),
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = p.with_extension(format!("json.tmp-{}", std::process::id()));
    let data = serde_json::to_vec_pretty(v).expect("json");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(&data).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
    }
    std::fs::rename(&tmp, &p).map_err(err)
}

const DEFAULT_INDEX: &str = "https://index.docker.io/v1/";

/// Registry host of a reference ("docker.io" for Docker Hub names).
fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            match first {
                "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
                f => f.to_string(),
            }
        }
        _ => "docker.io".into(),
    }
}

/// The config.json key of a server: docker.io → `https://index.docker.io/v1/`.
fn config_key(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match s.split('/').next().unwrap_or(s) {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DEFAULT_INDEX.into(),
        h => h.to_string(),
    }
}

/// `X-Registry-Auth` for the registry of `reference`, from config.json
/// (`auths` or a credential helper).
fn auth_header(reference: &str) -> Vec<(&'static str, String)> {
    let key = config_key(&registry_of(reference));
    let cfg = read_docker_config();
    match super::credentials::lookup(&cfg, &key) {
        Ok(Some(c)) => vec![(
            "x-registry-auth",
            base64::engine::general_purpose::URL_SAFE
                .encode(super::credentials::registry_auth_json(&c, &key).to_string()),
        )],
        Ok(None) => vec![],
        Err(e) => {
            eprintln!("WARNING: {e}");
            vec![]
        }
    }
}

/// Print a pull/push progress stream as docker does without a terminal:
/// byte-progress messages are skipped, others print as `id: status`.
async fn print_progress(resp: hyper::Response<hyper::body::Incoming>, quiet: bool) -> CliResult {
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut shown = super::progress::Progress::stdout();
    let mut handle = |line: &[u8]| -> Result<(), Failure> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(());
        }
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(Failure {
                code: 1,
                message: e.to_string(),
            });
        }
        if !quiet {
            shown.show(&v);
        }
        Ok(())
    };
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(Failure {
                    code: 1,
                    message: e.to_string(),
                })
            }
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    buf.extend_from_slice(d);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        handle(&line[..line.len() - 1])?;
                    }
                }
            }
        }
    }
    if !buf.is_empty() {
        let rest = std::mem::take(&mut buf);
        handle(&rest)?;
    }
    Ok(0)
}

/// Split `name[:tag|@digest]` into (name, tag-or-digest).
fn split_ref(r: &str) -> (String, Option<String>) {
    if let Some((n, d)) = r.split_once('@') {
        return (n.to_string(), Some(d.to_string()));
    }
    match r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((n, t)) => (n.to_string(), Some(t.to_string())),
        None => (r.to_string(), None),
    }
}

/// Docker's fully qualified form, printed after a pull.
fn qualified(r: &str) -> String {
    let (name, tag) = split_ref(r);
    let sep = if tag.as_deref().is_some_and(|t| t.starts_with("sha256:")) {
        "@"
    } else {
        ":"
    };
    let tag = tag.unwrap_or_else(|| "latest".into());
    let full = if registry_of(&name) != "docker.io" || name.starts_with("docker.io/") {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{sep}{tag}")
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Download all tagged images in the repository (not supported)
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    image: String,
}

/// `POST /images/create?fromImage=`, progress on stdout unless `quiet`;
/// also used by `run`/`create` for a missing image.
pub async fn pull_silently(client: &Client, image: &str, quiet: bool) -> CliResult {
    pull_platform(client, image, None, quiet).await
}

/// The pull, for `platform` when given (`--platform`).
pub async fn pull_platform(
    client: &Client,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
) -> CliResult {
    let (name, tag) = split_ref(image);
    let mut path = format!("/images/create?fromImage={}", q(&name));
    path.push_str(&format!("&tag={}", q(tag.as_deref().unwrap_or("latest"))));
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        path.push_str(&format!("&platform={}", q(p)));
    }
    let resp = client
        .stream_with_headers(
            Method::POST,
            &path,
            berth_api::client::empty(),
            &auth_header(image),
        )
        .await?;
    print_progress(resp, quiet).await?;
    Ok(0)
}

pub async fn pull(client: &Client, a: PullArgs) -> CliResult {
    if a.all_tags {
        return Err(Failure {
            code: 1,
            message: "berth pull --all-tags is not supported".into(),
        });
    }
    if !a.quiet && tag_missing(&a.image) {
        println!("Using default tag: latest");
    }
    pull_platform(client, &a.image, a.platform.as_deref(), a.quiet).await?;
    println!("{}", qualified(&a.image));
    Ok(0)
}

fn tag_missing(r: &str) -> bool {
    split_ref(r).1.is_none()
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tagged images in the repository (not supported)
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// NAME[:TAG]
    image: String,
}

pub async fn push(client: &Client, a: PushArgs) -> CliResult {
    let (name, tag) = split_ref(&a.image);
    if !a.quiet && tag.is_none() {
        println!("Using default tag: latest");
    }
    let path = format!(
        "/images/{name}/push?tag={}",
        q(tag.as_deref().unwrap_or("latest"))
    );
    let resp = client
        .stream_with_headers(
            Method::POST,
            &path,
            berth_api::client::empty(),
            &auth_header(&a.image),
        )
        .await?;
    print_progress(resp, a.quiet).await?;
    if a.quiet {
        println!("{}", a.image);
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    source: String,
    /// TARGET_IMAGE[:TAG]
    target: String,
}

pub async fn tag(client: &Client, a: TagArgs) -> CliResult {
    let (repo, tag) = split_ref(&a.target);
    let mut path = format!("/images/{}/tag?repo={}", a.source, q(&repo));
    if let Some(t) = tag {
        path.push_str(&format!("&tag={}", q(&t)));
    }
    client
        .call(Method::POST, &path, berth_api::client::empty(), None)
        .await?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    /// IMAGE
    #[arg(required = true)]
    images: Vec<String>,
}

pub async fn rmi(client: &Client, a: RmiArgs) -> CliResult {
    let mut errors = Vec::new();
    for img in &a.images {
        let path = format!(
            "/images/{img}?force={}&noprune={}",
            a.force as u8, a.no_prune as u8
        );
        match client
            .call(Method::DELETE, &path, berth_api::client::empty(), None)
            .await
        {
            Ok((_, body)) => {
                let items: Vec<serde_json::Value> =
                    serde_json::from_slice(&body).unwrap_or_default();
                for it in items {
                    if let Some(u) = it.get("Untagged").and_then(|v| v.as_str()) {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = it.get("Deleted").and_then(|v| v.as_str()) {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => errors.push(Failure::from(e).message),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure {
            code: 1,
            message: errors.join("\n"),
        })
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// SERVER (default: Docker Hub)
    server: Option<String>,
}

pub async fn login(client: &Client, a: LoginArgs) -> CliResult {
    let usage = |m: &str| Failure {
        code: 1,
        message: m.to_string(),
    };
    let server = a.server.clone().unwrap_or_else(|| DEFAULT_INDEX.into());
    let key = config_key(&server);
    let mut password = a.password.clone();
    if a.password_stdin {
        if password.is_some() {
            return Err(usage(
                "--password and --password-stdin are mutually exclusive",
            ));
        }
        if a.username.is_none() {
            return Err(usage("Must provide --username with --password-stdin"));
        }
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        password = Some(s.trim_end_matches(['\n', '\r']).to_string());
    } else if password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    // Reuse stored credentials when none are given.
    let (username, password) = match (a.username.clone(), password) {
        (Some(u), Some(p)) => (u, p),
        (u, None) => {
            let stored = auth_header(&format!("{key}/x"));
            if u.is_none() && !stored.is_empty() {
                let raw = base64::engine::general_purpose::URL_SAFE
                    .decode(&stored[0].1)
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                (
                    v["username"].as_str().unwrap_or("").to_string(),
                    v["password"].as_str().unwrap_or("").to_string(),
                )
            } else {
                return Err(usage(
                    "Error: Cannot perform an interactive login from a non TTY device",
                ));
            }
        }
        (None, Some(_)) => {
            return Err(usage(
                "Error: Cannot perform an interactive login from a non TTY device",
            ))
        }
    };
    let body = serde_json::json!({
        "username": username, "password": password, "serveraddress": key,
    });
    let _: serde_json::Value = client.post_json("/auth", &body).await?;
    let mut cfg = read_docker_config();
    if !cfg.get("auths").is_some_and(|a| a.is_object()) {
        cfg["auths"] = serde_json::json!({});
    }
    if let Some(helper) = super::credentials::helper_for(&cfg, &key) {
        // Like the docker CLI: the secret goes to the helper, config.json
        // keeps an empty entry for the server.
        let stored = super::credentials::Stored {
            username: username.clone(),
            secret: password.clone(),
        };
        super::credentials::helper_store(&helper, &key, &stored).map_err(|m| Failure {
            code: 1,
            message: format!("Error saving credentials: {m}"),
        })?;
        cfg["auths"][&key] = serde_json::json!({});
        write_docker_config(&cfg)?;
    } else {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        cfg["auths"][&key] = serde_json::json!({"auth": auth});
        write_docker_config(&cfg)?;
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
            docker_config_path().display()
        );
    }
    println!("Login Succeeded");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// SERVER (default: Docker Hub)
    server: Option<String>,
}

pub async fn logout(a: LogoutArgs) -> CliResult {
    let server = a.server.clone().unwrap_or_else(|| DEFAULT_INDEX.into());
    let key = config_key(&server);
    let mut cfg = read_docker_config();
    if let Some(helper) = super::credentials::helper_for(&cfg, &key) {
        let known = super::credentials::helper_get(&helper, &key)
            .ok()
            .flatten()
            .is_some();
        if known {
            if let Err(m) = super::credentials::helper_erase(&helper, &key) {
                eprintln!("WARNING: could not erase credentials: {key}: {m}");
            }
        }
        let had_entry = cfg
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
            .map(|a| a.remove(&key).is_some())
            .unwrap_or(false);
        if !known && !had_entry {
            println!("Not logged in to {key}");
            return Ok(0);
        }
        write_docker_config(&cfg)?;
        println!("Removing login credentials for {key}");
        return Ok(0);
    }
    let removed = cfg
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .map(|a| {
            let keys: Vec<String> = a.keys().filter(|k| config_key(k) == key).cloned().collect();
            for k in &keys {
                a.remove(k);
            }
            !keys.is_empty()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    write_docker_config(&cfg)?;
    println!("Removing login credentials for {key}");
    Ok(0)
}
