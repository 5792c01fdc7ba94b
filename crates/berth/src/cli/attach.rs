//! `berth attach`, and the attach stream shared by `run`/`start -a`.

use berth_api::client::{Client, ClientError};
use berth_api::stdcopy;
use clap::{ArgAction, Args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{q, CliResult, Failure};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct AttachArgs {
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    sig_proxy: bool,
    container: String,
}

/// Hijack `/containers/{id}/attach` (stdout, stderr, and stdin if `stdin`),
/// copy our stdin to it (closing its write side at EOF) and its output to
/// our stdout/stderr. The handle completes when the output ends.
pub async fn attach_stream(
    client: &Client,
    id: &str,
    tty: bool,
    stdin: bool,
    detach_keys: Option<&str>,
) -> Result<JoinHandle<()>, ClientError> {
    let mut path = format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1");
    if stdin {
        path.push_str("&stdin=1");
    }
    if let Some(k) = detach_keys {
        path.push_str(&format!("&detachKeys={}", q(k)));
    }
    let conn = client.hijack(&path).await?;
    let (rd, mut wr) = tokio::io::split(conn);
    if stdin {
        let mut rx = super::tty::stdin_reader();
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
            std::future::pending::<()>().await;
        });
    } else {
        std::mem::forget(wr);
    }
    Ok(tokio::spawn(copy_output(rd, tty)))
}

/// Copy a hijacked stream to our stdout/stderr until it ends: raw with a
/// tty, demultiplexed (stdcopy) without.
pub async fn copy_output<R: tokio::io::AsyncRead + Unpin>(mut rd: R, tty: bool) {
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut dec = stdcopy::Decoder::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tty {
            let _ = out.write_all(&buf[..n]).await;
        } else {
            dec.push(&buf[..n]);
            while let Some((stream, data)) = dec.next_frame() {
                let _ = if stream == 2 {
                    err.write_all(&data).await
                } else {
                    out.write_all(&data).await
                };
            }
        }
        let _ = out.flush().await;
        let _ = err.flush().await;
    }
}

/// `berth attach CONTAINER`: exits with the container's exit code when it
/// ends, 0 when detached.
pub async fn attach(client: &Client, a: AttachArgs) -> CliResult {
    let inspect: serde_json::Value = client
        .get_json(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    let id = inspect["Id"].as_str().unwrap_or(&a.container).to_string();
    if inspect["State"]["Running"] != true {
        return Err(Failure {
            code: 1,
            message: "You cannot attach to a stopped container, start it first".into(),
        });
    }
    if inspect["State"]["Paused"] == true {
        return Err(Failure {
            code: 1,
            message: "You cannot attach to a paused container, unpause it first".into(),
        });
    }
    let tty = inspect["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && inspect["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let raw = if tty && stdin {
        super::tty::RawMode::enter()
    } else {
        None
    };
    let output = attach_stream(client, &id, tty, stdin, a.detach_keys.as_deref()).await?;
    if a.sig_proxy && !tty {
        super::tty::spawn_sig_proxy(client.clone(), id.clone());
    }
    let _ = output.await;
    drop(raw);
    let after: serde_json::Value = client
        .get_json(&format!("/containers/{id}/json"))
        .await
        .unwrap_or_default();
    if after["State"]["Running"] == true {
        return Ok(0); // detached
    }
    Ok(after["State"]["ExitCode"].as_i64().unwrap_or(0) as i32)
}
