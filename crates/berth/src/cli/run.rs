//! `berth run` (CTR-01..CTR-10): create, attach, wait, start.

use berth_api::client::{Client, ClientError};
use berth_api::stdcopy;
use berth_types::api::{
    ContainerCreateBody, ContainerCreateResponse, StrOrVec, Ulimit, WaitResponse,
};
use clap::{ArgAction, Args};
use http_body_util::BodyExt;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{q, CliResult, Failure};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Security Options
    #[arg(long)]
    security_opt: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Ulimit options (name=soft[:hard])
    #[arg(long)]
    ulimit: Vec<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// Signal to stop the container
    #[arg(long)]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long)]
    stop_timeout: Option<i64>,
    /// Image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
    image_and_command: Vec<String>,
}

/// Docker's `RAMInBytes`: "32m", "1g", "512k", "100b", "64MB", plain bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix('b')
        .filter(|r| r.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&lower);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    if n < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((n * mult as f64) as i64)
}

fn usage_error(message: String) -> Failure {
    Failure {
        code: 125,
        message: format!("berth: {message}\nSee 'berth run --help'."),
    }
}

fn daemon_error(e: ClientError) -> Failure {
    let message = match &e {
        ClientError::Api { message, .. } => format!("Error response from daemon: {message}"),
        other => other.to_string(),
    };
    let code = if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        125
    };
    Failure {
        code,
        message: format!("berth: {message}"),
    }
}

fn build_body(a: &RunArgs) -> Result<ContainerCreateBody, Failure> {
    let mut body = ContainerCreateBody::default();
    let c = &mut body.config;
    c.image = a.image_and_command[0].clone();
    let cmd = &a.image_and_command[1..];
    if !cmd.is_empty() {
        c.cmd = Some(StrOrVec::Many(cmd.to_vec()));
    }
    if let Some(ep) = &a.entrypoint {
        c.entrypoint = Some(StrOrVec::Many(if ep.is_empty() {
            vec![String::new()]
        } else {
            vec![ep.clone()]
        }));
    }
    c.env = Some(a.env.clone());
    c.working_dir = a.workdir.clone().unwrap_or_default();
    c.user = a.user.clone().unwrap_or_default();
    c.hostname = a.hostname.clone().unwrap_or_default();
    c.attach_stdout = !a.detach;
    c.attach_stderr = !a.detach;
    c.stop_signal = a.stop_signal.clone();
    c.stop_timeout = a.stop_timeout;
    c.labels = Some(
        a.label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect(),
    );
    let h = &mut body.host_config;
    h.auto_remove = a.rm;
    if let Some(m) = &a.memory {
        h.memory = parse_bytes(m).map_err(|e| {
            usage_error(format!(
                "invalid argument \"{m}\" for \"-m, --memory\" flag: {e}"
            ))
        })?;
    }
    if let Some(m) = &a.memory_swap {
        h.memory_swap = if m == "-1" {
            -1
        } else {
            parse_bytes(m).map_err(usage_error)?
        };
    }
    h.pids_limit = a.pids_limit;
    if let Some(cpus) = a.cpus {
        h.nano_cpus = (cpus * 1e9) as i64;
    }
    h.cpu_shares = a.cpu_shares.unwrap_or(0);
    h.cap_add = Some(a.cap_add.clone());
    h.cap_drop = Some(a.cap_drop.clone());
    h.security_opt = Some(a.security_opt.clone());
    h.privileged = a.privileged;
    h.readonly_rootfs = a.read_only;
    h.network_mode = "default".into();
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let (name, vals) = u
            .split_once('=')
            .ok_or_else(|| usage_error(format!("invalid ulimit argument: {u}")))?;
        let (soft, hard) = match vals.split_once(':') {
            Some((s, h)) => (s, h),
            None => (vals, vals),
        };
        let parse = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| usage_error(format!("invalid ulimit argument: {u}")))
        };
        ulimits.push(Ulimit {
            name: name.into(),
            soft: parse(soft)?,
            hard: parse(hard)?,
        });
    }
    h.ulimits = Some(ulimits);
    Ok(body)
}

pub async fn run(client: &Client, a: RunArgs) -> CliResult {
    let body = build_body(&a)?;
    let image = body.config.image.clone();
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", q(n)),
        None => "/containers/create".to_string(),
    };
    let created: ContainerCreateResponse = match client.post_json(&path, &body).await {
        Ok(c) => c,
        Err(ClientError::Api {
            status: 404,
            message,
        }) if message.starts_with("No such image") => {
            let reference = if image.contains(':') || image.contains('@') {
                image.clone()
            } else {
                format!("{image}:latest")
            };
            eprintln!("Unable to find image '{reference}' locally");
            let pull = client
                .call(
                    Method::POST,
                    &format!("/images/create?fromImage={}", q(&image)),
                    berth_api::client::empty(),
                    None,
                )
                .await;
            return Err(match pull {
                Err(e) => daemon_error(e),
                Ok(_) => daemon_error(ClientError::Api {
                    status: 404,
                    message,
                }),
            });
        }
        Err(e) => return Err(daemon_error(e)),
    };
    let id = created.id;
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    if a.detach {
        client
            .call(
                Method::POST,
                &format!("/containers/{id}/start"),
                berth_api::client::empty(),
                None,
            )
            .await
            .map_err(daemon_error)?;
        println!("{id}");
        return Ok(0);
    }

    let mut attach = client
        .hijack(&format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1"
        ))
        .await
        .map_err(daemon_error)?;
    let cond = if a.rm { "removed" } else { "next-exit" };
    let wait = client
        .stream(
            Method::POST,
            &format!("/containers/{id}/wait?condition={cond}"),
            berth_api::client::empty(),
            None,
        )
        .await
        .map_err(daemon_error)?;
    let output = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        let mut err = tokio::io::stderr();
        let mut dec = stdcopy::Decoder::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match attach.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            dec.push(&buf[..n]);
            while let Some((stream, data)) = dec.next_frame() {
                let _ = if stream == 2 {
                    err.write_all(&data).await
                } else {
                    out.write_all(&data).await
                };
            }
            let _ = out.flush().await;
        }
        let _ = out.flush().await;
        let _ = err.flush().await;
    });
    if let Err(e) = client
        .call(
            Method::POST,
            &format!("/containers/{id}/start"),
            berth_api::client::empty(),
            None,
        )
        .await
    {
        output.abort();
        return Err(daemon_error(e));
    }
    let waited = wait.into_body().collect().await.map(|b| b.to_bytes());
    let _ = output.await;
    let waited = waited.map_err(|e| Failure {
        code: 125,
        message: format!("berth: wait: {e}"),
    })?;
    let resp: WaitResponse = serde_json::from_slice(&waited).map_err(|e| Failure {
        code: 125,
        message: format!("berth: bad wait response: {e}"),
    })?;
    if let Some(err) = resp.error {
        eprintln!("berth: {}", err.message);
    }
    Ok(resp.status_code as i32)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("32m").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("32MB").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("100b").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }
}
