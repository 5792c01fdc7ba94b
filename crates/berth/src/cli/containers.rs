//! `ps`, `rm`, `logs`, `stop`, `kill` (CTR-xx, SAMPLE-01).

use berth_api::client::{empty, Client};
use berth_api::stdcopy;
use berth_types::api::ContainerSummary;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use tokio::io::AsyncWriteExt;

use super::{q, CliResult, Failure};
use crate::format::{ago, ellipsis, go_quote, table};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, default_value_t = -1)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
}

pub async fn ps(client: &Client, a: PsArgs) -> CliResult {
    let mut path = format!("/containers/json?all={}", if a.all { 1 } else { 0 });
    let limit = if a.latest { 1 } else { a.last };
    if limit > 0 {
        path.push_str(&format!("&limit={limit}"));
    }
    let list: Vec<ContainerSummary> = client.get_json(&path).await?;
    let id = |s: &str| {
        if a.no_trunc {
            s.to_string()
        } else {
            s.chars().take(12).collect()
        }
    };
    if a.quiet {
        for c in &list {
            println!("{}", id(&c.id));
        }
        return Ok(0);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for c in &list {
        let command = if a.no_trunc {
            c.command.clone()
        } else {
            ellipsis(&c.command, 20)
        };
        let image = if c.image.starts_with("sha256:") && !a.no_trunc {
            c.image[7..19].to_string()
        } else {
            c.image.clone()
        };
        let names: Vec<&str> = c
            .names
            .iter()
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| a.no_trunc || !n.contains('/'))
            .collect();
        rows.push(vec![
            id(&c.id),
            image,
            go_quote(&command),
            ago(c.created),
            c.status.clone(),
            String::new(),
            names.join(","),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}

/// Run `op` for each container argument; print the argument on success and
/// the daemon's error otherwise (exit 1 if any failed), like docker.
async fn for_each<F, Fut>(names: &[String], op: F) -> CliResult
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), berth_api::client::ClientError>>,
{
    let mut failed = false;
    for n in names {
        match op(n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                failed = true;
                eprintln!("{}", Failure::from(e).message);
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn rm(client: &Client, a: RmArgs) -> CliResult {
    let force = a.force;
    let v = a.volumes;
    for_each(&a.containers, |n| async move {
        client
            .call(
                Method::DELETE,
                &format!("/containers/{}?force={}&v={}", q(&n), force as u8, v as u8),
                empty(),
                None,
            )
            .await
            .map(|_| ())
    })
    .await
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time")]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn stop(client: &Client, a: StopArgs) -> CliResult {
    let mut query = String::new();
    if let Some(t) = a.time {
        query.push_str(&format!("t={t}&"));
    }
    if let Some(s) = &a.signal {
        query.push_str(&format!("signal={}&", q(s)));
    }
    let query = &query;
    for_each(&a.containers, |n| async move {
        client
            .call(
                Method::POST,
                &format!("/containers/{}/stop?{query}", q(&n)),
                empty(),
                None,
            )
            .await
            .map(|_| ())
    })
    .await
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn kill(client: &Client, a: KillArgs) -> CliResult {
    let sig = &a.signal;
    for_each(&a.containers, |n| async move {
        client
            .call(
                Method::POST,
                &format!("/containers/{}/kill?signal={}", q(&n), q(sig)),
                empty(),
                None,
            )
            .await
            .map(|_| ())
    })
    .await
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show logs since timestamp (unix seconds)
    #[arg(long)]
    since: Option<String>,
    container: String,
}

pub async fn logs(client: &Client, a: LogsArgs) -> CliResult {
    let inspect: serde_json::Value = client
        .get_json(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    let tty = inspect["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
        q(&a.container),
        a.follow as u8,
        a.timestamps as u8,
        q(&a.tail)
    );
    if let Some(s) = &a.since {
        path.push_str(&format!("&since={}", q(s)));
    }
    let resp = client.stream(Method::GET, &path, empty(), None).await?;
    let mut body = resp.into_body();
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut dec = stdcopy::Decoder::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if tty {
            out.write_all(&data).await?;
            continue;
        }
        dec.push(&data);
        while let Some((stream, payload)) = dec.next_frame() {
            if stream == 2 {
                err.write_all(&payload).await?;
            } else {
                out.write_all(&payload).await?;
            }
        }
        out.flush().await?;
    }
    out.flush().await?;
    Ok(0)
}
