//! `images`, `load`, `import` (IMG-xx, SAMPLE-02, SAMPLE-17).

use berth_api::client::{reader, Client};
use berth_types::api::ImageSummary;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;

use super::{q, CliResult, Failure};
use crate::format::{ago, human_size, table};

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Repository to list
    repository: Option<String>,
}

pub async fn images(client: &Client, a: ImagesArgs) -> CliResult {
    let list: Vec<ImageSummary> = client.get_json("/images/json").await?;
    let short = |id: &str| {
        if a.no_trunc {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    };
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .map(String::from)
        .to_vec()];
    let mut seen = Vec::new();
    for img in &list {
        let tags: Vec<(String, String)> = if img.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.repo_tags
                .iter()
                .map(
                    |t| match t.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                        Some((r, tag)) => (r.to_string(), tag.to_string()),
                        None => (t.clone(), "<none>".into()),
                    },
                )
                .collect()
        };
        for (repo, tag) in tags {
            if let Some(want) = &a.repository {
                if &repo != want {
                    continue;
                }
            }
            if a.quiet {
                let id = short(&img.id);
                if !seen.contains(&id) {
                    println!("{id}");
                    seen.push(id);
                }
                continue;
            }
            rows.push(vec![
                repo,
                tag,
                short(&img.id),
                ago(img.created),
                human_size(img.size as f64),
            ]);
        }
    }
    if !a.quiet {
        print!("{}", table(&rows));
    }
    Ok(0)
}

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
    if a.quiet {
        return Ok(0);
    }
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
    let mut path = "/images/create?fromSrc=-".to_string();
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
    let body = open_input(Some(&a.file)).await?;
    let resp = client
        .stream(Method::POST, &path, body, Some("application/x-tar"))
        .await?;
    print_stream(resp).await
}
