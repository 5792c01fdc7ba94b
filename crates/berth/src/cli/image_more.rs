//! `images`/`image ls`, `history`, `save`, `commit`, `search`,
//! `image prune` and the `image` command group (IMG-01/02, IMG-06, IMG-08,
//! IMG-13, IMG-14, IMG-18), with the docker CLI's output.

use std::io::Write;

use berth_api::client::Client;
use berth_types::api::ImageSummary;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use hyper::Method;

use super::{containers, images, q, CliResult, Failure};
use crate::format::{ago, ellipsis, go_time, human_size, table, tv_map, tv_s, Format};
use gotmpl::Value as TV;

fn fail(m: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: m.into(),
    }
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `--filter k=v` list → Docker's filters JSON (`{"k":{"v":true}}`).
fn filters_json(filters: &[String]) -> Result<Option<String>, Failure> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut m = serde_json::Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| fail(format!("bad format of filter (expected name=value)")))?;
        let e = m
            .entry(k.trim().to_lowercase())
            .or_insert_with(|| serde_json::json!({}));
        e[v] = serde_json::json!(true);
    }
    Ok(Some(serde_json::Value::Object(m).to_string()))
}

fn parse_format(f: &Option<String>) -> Result<Option<Format>, Failure> {
    match f.as_deref() {
        None | Some("") => Ok(None),
        Some(f) => Format::parse(f).map(Some).map_err(fail),
    }
}

// ---------------------------------------------------------------- images

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// REPOSITORY[:TAG]
    repository: Option<String>,
}

/// One listing row: an image under one of its names.
struct ImageRow {
    repo: String,
    tag: String,
    digest: String,
    img: ImageSummary,
}

fn image_rows(list: Vec<ImageSummary>) -> Vec<ImageRow> {
    let mut rows = Vec::new();
    for img in list {
        let digests: Vec<String> = img
            .repo_digests
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d != "<none>@<none>")
            .collect();
        let tags: Vec<String> = img
            .repo_tags
            .iter()
            .filter(|t| *t != "<none>:<none>")
            .cloned()
            .collect();
        let digest_of = |repo: &str| {
            digests
                .iter()
                .find_map(|d| {
                    d.split_once('@')
                        .filter(|(r, _)| *r == repo)
                        .map(|(_, h)| h)
                })
                .unwrap_or("<none>")
                .to_string()
        };
        let mut pushed = false;
        for t in &tags {
            let (repo, tag) = match t.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                Some((r, tag)) => (r.to_string(), tag.to_string()),
                None => (t.clone(), "<none>".into()),
            };
            rows.push(ImageRow {
                digest: digest_of(&repo),
                repo,
                tag,
                img: img.clone(),
            });
            pushed = true;
        }
        // Repositories known only by digest.
        for d in &digests {
            let Some((repo, h)) = d.split_once('@') else {
                continue;
            };
            if tags
                .iter()
                .any(|t| t.rsplit_once(':').map(|(r, _)| r) == Some(repo))
            {
                continue;
            }
            rows.push(ImageRow {
                repo: repo.to_string(),
                tag: "<none>".into(),
                digest: h.to_string(),
                img: img.clone(),
            });
            pushed = true;
        }
        if !pushed {
            rows.push(ImageRow {
                repo: "<none>".into(),
                tag: "<none>".into(),
                digest: "<none>".into(),
                img,
            });
        }
    }
    rows
}

pub async fn images(client: &Client, a: ImagesArgs) -> CliResult {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let mut path = format!("/images/json?all={}", a.all as u8);
    if let Some(f) = filters_json(&filters)? {
        path.push_str(&format!("&filters={}", q(&f)));
    }
    let list: Vec<ImageSummary> = client.get_json(&path).await?;
    let rows = image_rows(list);
    let id = |i: &str| {
        if a.no_trunc {
            i.to_string()
        } else {
            short_id(i)
        }
    };
    if a.quiet {
        for r in &rows {
            println!("{}", id(&r.img.id));
        }
        return Ok(0);
    }
    if let Some(f) = parse_format(&a.format)? {
        let tv = |r: &ImageRow| {
            tv_map(vec![
                ("ID", tv_s(id(&r.img.id))),
                ("Repository", tv_s(r.repo.clone())),
                ("Tag", tv_s(r.tag.clone())),
                ("Digest", tv_s(r.digest.clone())),
                ("CreatedSince", tv_s(ago(r.img.created))),
                ("CreatedAt", tv_s(go_time(r.img.created))),
                ("Size", tv_s(human_size(r.img.size as f64))),
                ("Containers", tv_s("N/A")),
                ("SharedSize", tv_s("N/A")),
                ("UniqueSize", tv_s("N/A")),
                ("VirtualSize", tv_s(human_size(r.img.size as f64))),
            ])
        };
        let header = tv_map(vec![
            ("ID", tv_s("IMAGE ID")),
            ("Repository", tv_s("REPOSITORY")),
            ("Tag", tv_s("TAG")),
            ("Digest", tv_s("DIGEST")),
            ("CreatedSince", tv_s("CREATED")),
            ("CreatedAt", tv_s("CREATED AT")),
            ("Size", tv_s("SIZE")),
            ("Containers", tv_s("CONTAINERS")),
            ("SharedSize", tv_s("SHARED SIZE")),
            ("UniqueSize", tv_s("UNIQUE SIZE")),
            ("VirtualSize", tv_s("VIRTUAL SIZE")),
        ]);
        let tvs: Vec<TV> = rows.iter().map(tv).collect();
        print!("{}", f.render_all(Some(&header), &tvs).map_err(fail)?);
        return Ok(0);
    }
    let mut head = vec!["REPOSITORY", "TAG"];
    if a.digests {
        head.push("DIGEST");
    }
    head.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut out = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for r in &rows {
        let mut line = vec![r.repo.clone(), r.tag.clone()];
        if a.digests {
            line.push(r.digest.clone());
        }
        line.extend([
            id(&r.img.id),
            ago(r.img.created),
            human_size(r.img.size as f64),
        ]);
        out.push(line);
    }
    print!("{}", table(&out));
    Ok(0)
}

// ---------------------------------------------------------------- history

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// IMAGE
    image: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HistoryRow {
    id: String,
    created: i64,
    created_by: String,
    #[allow(dead_code)]
    tags: Option<Vec<String>>,
    size: i64,
    comment: String,
}

pub async fn history(client: &Client, a: HistoryArgs) -> CliResult {
    let rows: Vec<HistoryRow> = client
        .get_json(&format!("/images/{}/history", a.image))
        .await?;
    let id = |i: &str| {
        if a.no_trunc || i == "<missing>" {
            i.to_string()
        } else {
            short_id(i)
        }
    };
    if a.quiet {
        for r in &rows {
            println!("{}", id(&r.id));
        }
        return Ok(0);
    }
    let created = |r: &HistoryRow| {
        if a.human {
            ago(r.created)
        } else {
            chrono::DateTime::from_timestamp(r.created, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
    };
    let created_by = |r: &HistoryRow| {
        let s = r.created_by.replace('\t', " ");
        if a.no_trunc {
            s
        } else {
            ellipsis(&s, 45)
        }
    };
    let size = |r: &HistoryRow| {
        if a.human {
            human_size(r.size as f64)
        } else {
            r.size.to_string()
        }
    };
    if let Some(f) = parse_format(&a.format)? {
        let header = tv_map(vec![
            ("ID", tv_s("IMAGE")),
            ("CreatedSince", tv_s("CREATED")),
            ("CreatedAt", tv_s("CREATED AT")),
            ("CreatedBy", tv_s("CREATED BY")),
            ("Size", tv_s("SIZE")),
            ("Comment", tv_s("COMMENT")),
        ]);
        let tvs: Vec<TV> = rows
            .iter()
            .map(|r| {
                tv_map(vec![
                    ("ID", tv_s(id(&r.id))),
                    ("CreatedSince", tv_s(ago(r.created))),
                    (
                        "CreatedAt",
                        tv_s(
                            chrono::DateTime::from_timestamp(r.created, 0)
                                .unwrap_or_default()
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ),
                    ),
                    ("CreatedBy", tv_s(created_by(r))),
                    ("Size", tv_s(size(r))),
                    ("Comment", tv_s(r.comment.clone())),
                ])
            })
            .collect();
        print!("{}", f.render_all(Some(&header), &tvs).map_err(fail)?);
        return Ok(0);
    }
    let mut out = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(String::from)
        .to_vec()];
    for r in &rows {
        out.push(vec![
            id(&r.id),
            created(r),
            created_by(r),
            size(r),
            r.comment.clone(),
        ]);
    }
    print!("{}", table(&out));
    Ok(0)
}

// ---------------------------------------------------------------- save

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// IMAGE
    #[arg(required = true)]
    images: Vec<String>,
}

pub async fn save(client: &Client, a: SaveArgs) -> CliResult {
    use std::io::IsTerminal;
    let to_stdout = a.output.as_deref().is_none_or(|o| o == "-");
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(fail(
            "Cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let names: Vec<String> = a.images.iter().map(|n| format!("names={}", q(n))).collect();
    let resp = client
        .stream(
            Method::GET,
            &format!("/images/get?{}", names.join("&")),
            berth_api::client::empty(),
            None,
        )
        .await?;
    let mut body = resp.into_body();
    // A file is written next to its final name and renamed when complete.
    let (mut out, tmp): (
        Box<dyn Write>,
        Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) = if to_stdout {
        (Box::new(std::io::stdout().lock()), None)
    } else {
        let dest = std::path::PathBuf::from(a.output.as_deref().unwrap_or_default());
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        if !dir.is_dir() {
            return Err(fail(format!(
                "failed to save image: invalid output path: directory \"{}\" does not exist",
                dir.display()
            )));
        }
        let t = dir.join(format!(".docker_temp_{}", std::process::id()));
        let f =
            std::fs::File::create(&t).map_err(|e| fail(format!("failed to save image: {e}")))?;
        (Box::new(std::io::BufWriter::new(f)), Some((t, dest)))
    };
    let res: Result<(), Failure> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail(format!("failed to save image: {e}")))?;
            if let Some(d) = frame.data_ref() {
                out.write_all(d)
                    .map_err(|e| fail(format!("failed to save image: {e}")))?;
            }
        }
        out.flush()
            .map_err(|e| fail(format!("failed to save image: {e}")))
    }
    .await;
    drop(out);
    match (res, tmp) {
        (Ok(()), Some((t, dest))) => {
            std::fs::rename(&t, &dest).map_err(|e| {
                let _ = std::fs::remove_file(&t);
                fail(format!("failed to save image: {e}"))
            })?;
            Ok(0)
        }
        (Ok(()), None) => Ok(0),
        (Err(e), tmp) => {
            if let Some((t, _)) = tmp {
                let _ = std::fs::remove_file(t);
            }
            Err(e)
        }
    }
}

// ---------------------------------------------------------------- commit

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pause: bool,
    /// CONTAINER
    container: String,
    /// [REPOSITORY[:TAG]]
    reference: Option<String>,
}

pub async fn commit(client: &Client, a: CommitArgs) -> CliResult {
    let mut path = format!(
        "/commit?container={}&pause={}",
        q(&a.container),
        a.pause as u8
    );
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
        path.push_str(&format!("&comment={}", q(m)));
    }
    if let Some(au) = &a.author {
        path.push_str(&format!("&author={}", q(au)));
    }
    for c in &a.change {
        path.push_str(&format!("&changes={}", q(c)));
    }
    let v: serde_json::Value = client.post_json(&path, &serde_json::json!({})).await?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

// ---------------------------------------------------------------- search

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results
    #[arg(long)]
    limit: Option<i64>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// TERM
    term: String,
}

#[derive(serde::Deserialize)]
struct SearchRow {
    #[serde(default)]
    star_count: i64,
    #[serde(default)]
    is_official: bool,
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn search(client: &Client, a: SearchArgs) -> CliResult {
    let mut path = format!("/images/search?term={}", q(&a.term));
    if let Some(l) = a.limit {
        path.push_str(&format!("&limit={l}"));
    }
    if let Some(f) = filters_json(&a.filter)? {
        path.push_str(&format!("&filters={}", q(&f)));
    }
    let rows: Vec<SearchRow> = client.get_json(&path).await?;
    let desc = |r: &SearchRow| {
        let d = r.description.replace('\n', " ");
        if a.no_trunc {
            d
        } else {
            ellipsis(&d, 45)
        }
    };
    let official = |r: &SearchRow| if r.is_official { "[OK]" } else { "" }.to_string();
    if let Some(f) = parse_format(&a.format)? {
        let header = tv_map(vec![
            ("Name", tv_s("NAME")),
            ("Description", tv_s("DESCRIPTION")),
            ("StarCount", tv_s("STARS")),
            ("IsOfficial", tv_s("OFFICIAL")),
        ]);
        let tvs: Vec<TV> = rows
            .iter()
            .map(|r| {
                tv_map(vec![
                    ("Name", tv_s(r.name.clone())),
                    ("Description", tv_s(desc(r))),
                    ("StarCount", tv_s(r.star_count.to_string())),
                    ("IsOfficial", tv_s(official(r))),
                ])
            })
            .collect();
        print!("{}", f.render_all(Some(&header), &tvs).map_err(fail)?);
        return Ok(0);
    }
    let mut out = vec![["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
        .map(String::from)
        .to_vec()];
    for r in &rows {
        out.push(vec![
            r.name.clone(),
            desc(r),
            r.star_count.to_string(),
            official(r),
        ]);
    }
    print!("{}", table(&out));
    Ok(0)
}

// ---------------------------------------------------------------- prune

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

pub async fn prune(client: &Client, a: ImagePruneArgs) -> CliResult {
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{warning}\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim().to_lowercase().as_str(), "y" | "yes") {
            return Ok(0);
        }
    }
    let f = filters_json(&filters)?.unwrap_or_default();
    let (_, body) = client
        .call(
            Method::POST,
            &format!("/images/prune?filters={}", q(&f)),
            berth_api::client::empty(),
            None,
        )
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for d in &deleted {
            if let Some(u) = d["Untagged"].as_str() {
                println!("untagged: {u}");
            }
            if let Some(x) = d["Deleted"].as_str() {
                println!("deleted: {x}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

// ---------------------------------------------------------------- `image`

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(containers::InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(images::RmiArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
}

pub async fn image(client: &Client, cmd: ImageCmd) -> CliResult {
    match cmd {
        ImageCmd::Ls(a) => images(client, a).await,
        ImageCmd::Inspect(a) => containers::inspect(client, a, Some("image")).await,
        ImageCmd::History(a) => history(client, a).await,
        ImageCmd::Rm(a) => images::rmi(client, a).await,
        ImageCmd::Prune(a) => prune(client, a).await,
        ImageCmd::Save(a) => save(client, a).await,
        ImageCmd::Load(a) => images::load(client, a).await,
        ImageCmd::Import(a) => images::import(client, a).await,
        ImageCmd::Tag(a) => images::tag(client, a).await,
        ImageCmd::Pull(a) => images::pull(client, a).await,
        ImageCmd::Push(a) => images::push(client, a).await,
    }
}
