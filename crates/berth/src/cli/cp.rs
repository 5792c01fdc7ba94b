//! `cp`, `diff`, `export`: a container's files over
//! `/containers/{id}/archive`, `/changes` and `/export`, with the docker
//! CLI's copy rules (a directory destination receives the source by name,
//! `SRC/.` copies the contents, a missing destination is the new name).

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_api::client::{empty, full, Client, ClientError};
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::{q, CliResult, Failure};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    quiet: bool,
    src: String,
    dst: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    container: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    container: String,
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// `CONTAINER:PATH` → (container, path); a local path otherwise. A path
/// starting with `/` or `.` is always local (as the docker CLI).
fn split_spec(s: &str) -> (Option<&str>, &str) {
    if s.starts_with('/') || s.starts_with('.') {
        return (None, s);
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, s),
    }
}

/// The decoded `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, Default)]
struct Stat {
    mode: u32,
    link_target: String,
}

impl Stat {
    fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & (1 << 27) != 0
    }
}

fn decode_stat(h: Option<&hyper::header::HeaderValue>) -> Stat {
    use base64::Engine;
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Stat::default();
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v)
        .unwrap_or_default();
    let j: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Stat {
        mode: j["mode"].as_u64().unwrap_or(0) as u32,
        link_target: j["linkTarget"].as_str().unwrap_or("").to_string(),
    }
}

async fn stat(client: &Client, ctr: &str, path: &str) -> Result<Option<Stat>, Failure> {
    let url = format!("/containers/{}/archive?path={}", q(ctr), q(path));
    match client.stream(Method::HEAD, &url, empty(), None).await {
        Ok(resp) => Ok(Some(decode_stat(
            resp.headers().get("x-docker-container-path-stat"),
        ))),
        Err(ClientError::Api {
            status: 404,
            message,
        }) => {
            if message.contains("No such container") {
                Err(Failure::from(ClientError::Api {
                    status: 404,
                    message,
                }))
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn join_link(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        Path::new(path)
            .parent()
            .unwrap_or(Path::new("/"))
            .join(target)
            .display()
            .to_string()
    }
}

pub async fn cp(client: &Client, a: CpArgs) -> CliResult {
    match (split_spec(&a.src), split_spec(&a.dst)) {
        ((Some(_), _), (Some(_), _)) => Err(fail(1, "copying between containers is not supported")),
        ((None, _), (None, _)) => Err(fail(1, "must specify at least one container source")),
        ((Some(c), p), (None, dst)) => copy_from(client, c, p, dst, a.follow_link).await,
        ((None, src), (Some(c), p)) => copy_to(client, src, c, p, &a).await,
    }
}

async fn copy_from(client: &Client, ctr: &str, path: &str, dst: &str, follow: bool) -> CliResult {
    let mut path = path.to_string();
    if path.is_empty() {
        path = "/".into();
    }
    if follow {
        if let Some(st) = stat(client, ctr, &path).await? {
            if st.is_symlink() {
                path = join_link(&path, &st.link_target);
            }
        }
    }
    let url = format!("/containers/{}/archive?path={}", q(ctr), q(&path));
    let resp = client.stream(Method::GET, &url, empty(), None).await?;
    let st = decode_stat(resp.headers().get("x-docker-container-path-stat"));
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(1, e.to_string()))?
        .to_bytes();
    if dst == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&body)?;
        return Ok(0);
    }
    // Where the top entry goes and under which name.
    let contents = path.ends_with("/.");
    let dst_path = PathBuf::from(dst);
    let (dir, rename): (PathBuf, Option<String>) = match std::fs::metadata(&dst_path) {
        Ok(m) if m.is_dir() => {
            if contents {
                (dst_path.clone(), Some(".".into()))
            } else {
                (dst_path.clone(), None)
            }
        }
        Ok(_) => {
            if st.is_dir() {
                return Err(fail(
                    1,
                    format!("cannot copy directory to existing file {dst}"),
                ));
            }
            (
                dst_path.parent().map(Path::to_path_buf).unwrap_or_default(),
                dst_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
            )
        }
        Err(_) => {
            if dst.ends_with('/') && !st.is_dir() {
                return Err(fail(
                    1,
                    format!("destination directory {dst} does not exist"),
                ));
            }
            let parent = dst_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if !parent.is_dir() {
                return Err(fail(
                    1,
                    format!("destination directory {} does not exist", parent.display()),
                ));
            }
            (
                parent,
                dst_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
            )
        }
    };
    untar_local(&body, &dir, rename.as_deref()).map_err(|e| fail(1, e.to_string()))?;
    Ok(0)
}

/// Extract `data` into `dir`, renaming the archive's top component.
fn untar_local(data: &[u8], dir: &Path, rename: Option<&str>) -> std::io::Result<()> {
    let mut ar = tar::Archive::new(data);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(nix_is_root());
    ar.set_overwrite(true);
    for e in ar.entries()? {
        let mut e = e?;
        let p = e.path()?.into_owned();
        let mut comps = p.components();
        let first = comps.next();
        let rest: PathBuf = comps.collect();
        let top = match (rename, first) {
            (Some(r), _) => PathBuf::from(r),
            (None, Some(f)) => PathBuf::from(f.as_os_str()),
            (None, None) => continue,
        };
        let mut target = dir.join(top);
        if !rest.as_os_str().is_empty() {
            target.push(rest);
        }
        if e.header().entry_type() == tar::EntryType::Link {
            // Hard links name their target from the archive root.
            if let Some(l) = e.link_name()? {
                let mut lc = l.components();
                lc.next();
                let lrest: PathBuf = lc.collect();
                let ltop = rename.map(PathBuf::from).unwrap_or_else(|| {
                    PathBuf::from(
                        l.components()
                            .next()
                            .map(|c| c.as_os_str())
                            .unwrap_or_default(),
                    )
                });
                let mut from = dir.join(ltop);
                if !lrest.as_os_str().is_empty() {
                    from.push(lrest);
                }
                let _ = std::fs::remove_file(&target);
                std::fs::hard_link(from, &target)?;
                continue;
            }
        }
        let kind = e.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block
        ) {
            // The tar crate does not create special files; mknod them.
            use nix::sys::stat::{mknod, Mode, SFlag};
            let h = e.header();
            let flag = match kind {
                tar::EntryType::Fifo => SFlag::S_IFIFO,
                tar::EntryType::Char => SFlag::S_IFCHR,
                _ => SFlag::S_IFBLK,
            };
            let dev = nix::sys::stat::makedev(
                h.device_major().ok().flatten().unwrap_or(0) as u64,
                h.device_minor().ok().flatten().unwrap_or(0) as u64,
            );
            let _ = std::fs::remove_file(&target);
            let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o644));
            mknod(&target, flag, mode, dev).map_err(std::io::Error::from)?;
            if nix_is_root() {
                let _ = std::os::unix::fs::lchown(
                    &target,
                    h.uid().ok().map(|u| u as u32),
                    h.gid().ok().map(|g| g as u32),
                );
            }
            continue;
        }
        e.unpack(&target)?;
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

async fn copy_to(client: &Client, src: &str, ctr: &str, path: &str, a: &CpArgs) -> CliResult {
    let mut path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    let mut dst = stat(client, ctr, &path).await?;
    if let Some(st) = dst.clone().filter(|s| s.is_symlink()) {
        path = join_link(&path, &st.link_target);
        dst = stat(client, ctr, &path).await?;
    }
    let (data, dir, name): (Vec<u8>, String, Option<String>) = if src == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        match &dst {
            Some(s) if s.is_dir() => (buf, path.clone(), None),
            _ => {
                return Err(fail(
                    1,
                    format!("destination \"{ctr}:{path}\" must be a directory"),
                ))
            }
        }
    } else {
        let src_path = Path::new(src);
        let meta = if a.follow_link {
            std::fs::metadata(src_path)
        } else {
            std::fs::symlink_metadata(src_path)
        }
        .map_err(|e| fail(1, format!("lstat {src}: {}", io_text(&e))))?;
        let contents = src.ends_with("/.") && meta.is_dir();
        let base = src_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        let (dir, top) = match &dst {
            Some(s) if s.is_dir() => (path.clone(), if contents { ".".to_string() } else { base }),
            Some(_) if meta.is_dir() => {
                return Err(fail(
                    1,
                    format!("cannot copy directory to existing file {ctr}:{path}"),
                ));
            }
            _ => {
                if path.ends_with('/') && !meta.is_dir() {
                    return Err(fail(1, "no such directory"));
                }
                let p = Path::new(path.trim_end_matches('/'));
                (
                    p.parent().unwrap_or(Path::new("/")).display().to_string(),
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| ".".into()),
                )
            }
        };
        let data = tar_local(src_path, &top, a.follow_link).map_err(|e| fail(1, e.to_string()))?;
        (data, dir, Some(top))
    };
    let _ = name;
    let url = format!(
        "/containers/{}/archive?path={}&noOverwriteDirNonDir=true&copyUIDGID={}",
        q(ctr),
        q(&dir),
        a.archive
    );
    client
        .call(Method::PUT, &url, full(data), Some("application/x-tar"))
        .await?;
    Ok(0)
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A tar of a local file or directory, its top entry named `top`.
fn tar_local(src: &Path, top: &str, follow: bool) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let meta = if follow {
        std::fs::metadata(src)?
    } else {
        std::fs::symlink_metadata(src)?
    };
    let real = if follow {
        std::fs::canonicalize(src)?
    } else {
        src.to_path_buf()
    };
    if meta.is_dir() {
        b.append_dir_all(top, &real)?;
    } else {
        b.append_path_with_name(&real, top)?;
    }
    b.into_inner()
}

pub async fn diff(client: &Client, a: DiffArgs) -> CliResult {
    let v: Value = client
        .get_json(&format!("/containers/{}/changes", q(&a.container)))
        .await?;
    for c in v.as_array().into_iter().flatten() {
        let k = match c["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        println!("{k} {}", c["Path"].as_str().unwrap_or(""));
    }
    Ok(0)
}

pub async fn export(client: &Client, a: ExportArgs) -> CliResult {
    use tokio::io::AsyncWriteExt;
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(fail(
            1,
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let resp = client
        .stream(
            Method::GET,
            &format!("/containers/{}/export", q(&a.container)),
            empty(),
            None,
        )
        .await?;
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &a.output {
        Some(p) => Box::new(tokio::fs::File::create(p).await?),
        None => Box::new(tokio::io::stdout()),
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(1, e.to_string()))?;
        if let Some(d) = frame.data_ref() {
            out.write_all(d).await?;
        }
    }
    out.flush().await?;
    Ok(0)
}
