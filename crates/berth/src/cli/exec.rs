//! `berth exec`: run a command in a running container.

use berth_api::client::{full, Client, ClientError};
use clap::{ArgAction, Args};
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{q, CliResult, Failure};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct ExecArgs {
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Container name or id
    container: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn daemon_error(e: ClientError) -> Failure {
    Failure::from(e)
}

pub async fn exec(client: &Client, a: ExecArgs) -> CliResult {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::run::read_kv_file(f, true)?);
    }
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let tty = a.tty && !a.detach;
    let size = if tty { super::tty::size() } else { None };
    let mut body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Env": env,
        "Cmd": a.command,
        "Privileged": a.privileged,
        "User": a.user.clone().unwrap_or_default(),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
    });
    if let Some((h, w)) = size {
        body["ConsoleSize"] = json!([h, w]);
    }
    let created: Value = client
        .post_json(&format!("/containers/{}/exec", q(&a.container)), &body)
        .await
        .map_err(daemon_error)?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    if a.detach {
        client
            .call(
                Method::POST,
                &format!("/exec/{id}/start"),
                full(serde_json::to_vec(&json!({"Detach": true, "Tty": a.tty})).unwrap()),
                Some("application/json"),
            )
            .await
            .map_err(daemon_error)?;
        return Ok(0);
    }
    let conn = client
        .hijack(&format!("/exec/{id}/start"))
        .await
        .map_err(daemon_error)?;
    let (rd, mut wr) = tokio::io::split(conn);
    let raw = if tty {
        super::tty::RawMode::enter()
    } else {
        None
    };
    if tty {
        if let Some((h, w)) = size {
            let _ = client
                .call(
                    Method::POST,
                    &format!("/exec/{id}/resize?h={h}&w={w}"),
                    berth_api::client::empty(),
                    None,
                )
                .await;
        }
    }
    if a.interactive {
        let mut rx = super::tty::stdin_reader();
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
            // Keep the write half: dropping it is fine, but be explicit.
            drop(wr);
        });
    } else {
        // docker closes its side of stdin at once when not interactive.
        let _ = wr.shutdown().await;
    }
    super::attach::copy_output(rd, tty).await;
    drop(raw);
    let info: Value = client
        .get_json(&format!("/exec/{id}/json"))
        .await
        .map_err(daemon_error)?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}
