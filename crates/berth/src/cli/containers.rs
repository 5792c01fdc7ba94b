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
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print containers using a Go template
    #[arg(long)]
    format: Option<String>,
}

/// The values of Docker's ps placeholders for one container.
fn ps_row(c: &ContainerSummary, trunc: bool) -> Vec<(&'static str, String)> {
    let id = if trunc {
        c.id.chars().take(12).collect()
    } else {
        c.id.clone()
    };
    let command = if trunc {
        ellipsis(&c.command, 20)
    } else {
        c.command.clone()
    };
    let image = if c.image.starts_with("sha256:") && trunc {
        c.image[7..19].to_string()
    } else {
        c.image.clone()
    };
    let names: Vec<&str> = c
        .names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let size = {
        let rw = crate::format::human_size(c.size_rw.unwrap_or(0) as f64);
        match c.size_root_fs.filter(|s| *s > 0) {
            Some(v) => format!("{rw} (virtual {})", crate::format::human_size(v as f64)),
            None => rw,
        }
    };
    vec![
        ("ID", id),
        ("Image", image),
        ("Command", go_quote(&command)),
        ("CreatedAt", crate::format::go_time(c.created)),
        ("RunningFor", ago(c.created)),
        ("Ports", String::new()),
        ("Status", c.status.clone()),
        ("Size", size),
        ("Names", names.join(",")),
        ("Labels", labels.join(",")),
        ("Mounts", String::new()),
        ("Networks", String::new()),
        ("State", c.state.clone()),
        ("LocalVolumes", "0".into()),
    ]
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("State", "STATE"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

pub async fn ps(client: &Client, a: PsArgs) -> CliResult {
    use crate::format::{tv_map, tv_s, Format};
    let mut path = format!("/containers/json?all={}", if a.all { 1 } else { 0 });
    let limit = if a.latest { 1 } else { a.last };
    if limit > 0 {
        path.push_str(&format!("&limit={limit}"));
    }
    let format = a.format.clone().filter(|f| !f.is_empty() && f != "table");
    let wants_size = a.size || format.as_deref().is_some_and(|f| f.contains(".Size"));
    if wants_size {
        path.push_str("&size=1");
    }
    if !a.filter.is_empty() {
        path.push_str(&format!("&filters={}", q(&filters_json(&a.filter)?)));
    }
    let list: Vec<ContainerSummary> = client.get_json(&path).await?;
    let trunc = !a.no_trunc;
    if a.quiet {
        for c in &list {
            let r = ps_row(c, trunc);
            println!("{}", r[0].1);
        }
        return Ok(0);
    }
    if let Some(f) = format {
        let f = Format::parse(&f).map_err(|e| Failure {
            code: 1,
            message: e,
        })?;
        let header = tv_map(PS_HEADERS.iter().map(|(k, h)| (*k, tv_s(*h))).collect());
        let rows: Vec<_> = list
            .iter()
            .map(|c| {
                let mut pairs: Vec<(&str, gotmpl::Value)> = ps_row(c, trunc)
                    .into_iter()
                    .map(|(k, v)| (k, tv_s(v)))
                    .collect();
                let labels = tv_map(
                    c.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), tv_s(v.clone())))
                        .collect(),
                );
                pairs.push(("__labels", labels));
                tv_map(pairs)
            })
            .collect();
        let out = f.render_all(Some(&header), &rows).map_err(|e| Failure {
            code: 1,
            message: e,
        })?;
        print!("{out}");
        return Ok(0);
    }
    let mut cols = vec![
        "ID",
        "Image",
        "Command",
        "RunningFor",
        "Status",
        "Ports",
        "Names",
    ];
    if a.size {
        cols.push("Size");
    }
    let header = |k: &str| {
        PS_HEADERS
            .iter()
            .find(|(n, _)| *n == k)
            .unwrap()
            .1
            .to_string()
    };
    let mut rows = vec![cols.iter().map(|c| header(c)).collect::<Vec<_>>()];
    for c in &list {
        let r = ps_row(c, trunc);
        rows.push(
            cols.iter()
                .map(|k| r.iter().find(|(n, _)| n == k).unwrap().1.clone())
                .collect(),
        );
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

// ---------------------------------------------------------------- lifecycle

fn post<'a>(
    client: &'a Client,
    path: String,
) -> impl std::future::Future<Output = Result<(), berth_api::client::ClientError>> + 'a {
    async move {
        client
            .call(Method::POST, &path, empty(), None)
            .await
            .map(|_| ())
    }
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn start(client: &Client, a: StartArgs) -> CliResult {
    if !(a.attach || a.interactive) {
        return for_each(&a.containers, |n| {
            post(client, format!("/containers/{}/start", q(&n)))
        })
        .await;
    }
    if a.containers.len() > 1 {
        return Err(Failure {
            code: 1,
            message: "you cannot start and attach multiple containers at once".into(),
        });
    }
    let name = &a.containers[0];
    let inspect: serde_json::Value = client
        .get_json(&format!("/containers/{}/json", q(name)))
        .await?;
    let id = inspect["Id"].as_str().unwrap_or(name).to_string();
    let tty = inspect["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && inspect["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let output = super::attach::attach_stream(client, &id, tty, stdin, None).await?;
    let wait = client
        .stream(
            Method::POST,
            &format!("/containers/{id}/wait?condition=next-exit"),
            empty(),
            None,
        )
        .await?;
    client
        .call(
            Method::POST,
            &format!("/containers/{id}/start"),
            empty(),
            None,
        )
        .await?;
    if !tty {
        // `start -a` proxies signals like `attach` (docker's --sig-proxy default).
        super::tty::spawn_sig_proxy(client.clone(), id.clone());
    }
    let body = wait
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?
        .to_bytes();
    let _ = output.await;
    let resp: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(resp["StatusCode"].as_i64().unwrap_or(0) as i32)
}

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time")]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn restart(client: &Client, a: RestartArgs) -> CliResult {
    let mut query = String::new();
    if let Some(t) = a.time {
        query.push_str(&format!("t={t}&"));
    }
    if let Some(s) = &a.signal {
        query.push_str(&format!("signal={}&", q(s)));
    }
    let query = &query;
    for_each(&a.containers, |n| {
        post(client, format!("/containers/{}/restart?{query}", q(&n)))
    })
    .await
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn pause(client: &Client, a: NamesArgs) -> CliResult {
    for_each(&a.containers, |n| {
        post(client, format!("/containers/{}/pause", q(&n)))
    })
    .await
}

pub async fn unpause(client: &Client, a: NamesArgs) -> CliResult {
    for_each(&a.containers, |n| {
        post(client, format!("/containers/{}/unpause", q(&n)))
    })
    .await
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub async fn rename(client: &Client, a: RenameArgs) -> CliResult {
    let old = a.container.trim();
    let new = a.new_name.trim();
    if old.is_empty() || new.is_empty() {
        return Err(Failure {
            code: 1,
            message: "Error: Neither old nor new names may be empty".into(),
        });
    }
    if let Err(e) = post(
        client,
        format!("/containers/{}/rename?name={}", q(old), q(new)),
    )
    .await
    {
        eprintln!("{}", Failure::from(e).message);
        return Err(Failure {
            code: 1,
            message: format!("Error: failed to rename container named {old}"),
        });
    }
    Ok(0)
}

pub async fn wait(client: &Client, a: NamesArgs) -> CliResult {
    let mut failed = false;
    for n in &a.containers {
        let r = client
            .call(
                Method::POST,
                &format!("/containers/{}/wait", q(n)),
                empty(),
                None,
            )
            .await;
        match r {
            Ok((_, body)) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                println!("{}", v["StatusCode"].as_i64().unwrap_or(0));
            }
            Err(e) => {
                failed = true;
                eprintln!("{}", Failure::from(e).message);
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long)]
    memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// Limit CPU CFS period
    #[arg(long)]
    cpu_period: Option<i64>,
    /// Limit CPU CFS quota
    #[arg(long)]
    cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

fn bytes_arg(s: &Option<String>) -> Result<Option<i64>, Failure> {
    match s {
        None => Ok(None),
        Some(v) if v == "-1" => Ok(Some(-1)),
        Some(v) => super::run::parse_bytes(v).map(Some).map_err(|e| Failure {
            code: 125,
            message: format!("invalid argument \"{v}\": {e}"),
        }),
    }
}

pub async fn update(client: &Client, a: UpdateArgs) -> CliResult {
    let mut body = serde_json::Map::new();
    let mut set = |k: &str, v: serde_json::Value| {
        body.insert(k.to_string(), v);
    };
    if let Some(m) = bytes_arg(&a.memory)? {
        set("Memory", m.into());
    }
    if let Some(m) = bytes_arg(&a.memory_swap)? {
        set("MemorySwap", m.into());
    }
    if let Some(m) = bytes_arg(&a.memory_reservation)? {
        set("MemoryReservation", m.into());
    }
    if let Some(c) = a.cpus {
        set("NanoCpus", ((c * 1e9).round() as i64).into());
    }
    if let Some(c) = a.cpu_shares {
        set("CpuShares", c.into());
    }
    if let Some(c) = a.cpu_period {
        set("CpuPeriod", c.into());
    }
    if let Some(c) = a.cpu_quota {
        set("CpuQuota", c.into());
    }
    if let Some(c) = &a.cpuset_cpus {
        set("CpusetCpus", c.clone().into());
    }
    if let Some(c) = &a.cpuset_mems {
        set("CpusetMems", c.clone().into());
    }
    if let Some(p) = a.pids_limit {
        set("PidsLimit", p.into());
    }
    if let Some(w) = a.blkio_weight {
        set("BlkioWeight", w.into());
    }
    if let Some(r) = &a.restart {
        let (name, max) = match r.split_once(':') {
            Some((n, m)) => (n, m.parse::<i64>().unwrap_or(0)),
            None => (r.as_str(), 0),
        };
        if !["no", "always", "on-failure", "unless-stopped"].contains(&name) {
            return Err(Failure {
                code: 125,
                message: format!("invalid argument \"{r}\" for \"--restart\" flag: invalid restart policy {name}"),
            });
        }
        set(
            "RestartPolicy",
            serde_json::json!({"Name": name, "MaximumRetryCount": max}),
        );
    }
    if body.is_empty() {
        return Err(Failure {
            code: 1,
            message: "You must provide one or more flags when using this command.".into(),
        });
    }
    let body = serde_json::Value::Object(body);
    let body = &body;
    for_each(&a.containers, |n| async move {
        client
            .post_json::<serde_json::Value>(&format!("/containers/{}/update", q(&n)), body)
            .await
            .map(|_| ())
    })
    .await
}

#[derive(Args, Debug)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

pub async fn port(client: &Client, a: PortArgs) -> CliResult {
    let inspect: serde_json::Value = client
        .get_json(&format!("/containers/{}/json", q(&a.container)))
        .await?;
    let ports = inspect["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let line = |k: &str, b: &serde_json::Value| {
        let ip = b["HostIp"].as_str().unwrap_or("");
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{k} -> {ip}:{}", b["HostPort"].as_str().unwrap_or(""))
    };
    if let Some(p) = &a.port {
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        if num.parse::<u16>().is_err() {
            return Err(Failure {
                code: 1,
                message: format!("Error: invalid port ({num}): strconv.ParseUint: parsing \"{num}\": invalid syntax"),
            });
        }
        let key = format!("{num}/{proto}");
        if let Some(bs) = ports.get(&key).and_then(|v| v.as_array()) {
            for b in bs {
                let ip = b["HostIp"].as_str().unwrap_or("");
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                println!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            }
            if !bs.is_empty() {
                return Ok(0);
            }
        }
        return Err(Failure {
            code: 1,
            message: format!(
                "Error: No public port '{key}' published for {}",
                a.container
            ),
        });
    }
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort();
    for k in keys {
        for b in ports[k].as_array().into_iter().flatten() {
            println!("{}", line(k, b));
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct TopArgs {
    container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub async fn top(client: &Client, a: TopArgs) -> CliResult {
    let mut path = format!("/containers/{}/top", q(&a.container));
    if !a.ps_args.is_empty() {
        path.push_str(&format!("?ps_args={}", q(&a.ps_args.join(" "))));
    }
    let v: serde_json::Value = client.get_json(&path).await?;
    let strs = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or("").to_string())
            .collect()
    };
    let mut rows = vec![strs(&v["Titles"])];
    for p in v["Processes"].as_array().into_iter().flatten() {
        rows.push(strs(p));
    }
    print!("{}", crate::format::table_min(&rows, 20));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// `--filter k=v` flags to Docker's filters JSON.
fn filters_json(flags: &[String]) -> Result<String, Failure> {
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> =
        Default::default();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(Failure {
                code: 125,
                message: format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"),
            });
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_string(), true);
    }
    Ok(serde_json::to_string(&m).unwrap_or_default())
}

pub async fn prune(client: &Client, a: PruneArgs) -> CliResult {
    if !a.force {
        use std::io::{BufRead, Write};
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim().to_lowercase().as_str(), "y" | "yes") {
            return Ok(0);
        }
    }
    let mut path = "/containers/prune".to_string();
    if !a.filter.is_empty() {
        path.push_str(&format!("?filters={}", q(&filters_json(&a.filter)?)));
    }
    let v: serde_json::Value = client.post_json(&path, &serde_json::json!({})).await?;
    let deleted: Vec<&str> = v["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for d in deleted {
            println!("{d}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

/// `inspect`, `container inspect` (kind "container"), `image inspect`.
pub async fn inspect(client: &Client, a: InspectArgs, forced: Option<&str>) -> CliResult {
    let kind = forced
        .map(str::to_string)
        .or_else(|| a.kind.clone())
        .unwrap_or_default();
    if !["", "container", "image", "volume"].contains(&kind.as_str()) {
        return Err(Failure {
            code: 1,
            message: format!("\"{kind}\" is not a valid value for --type"),
        });
    }
    let fmt = match &a.format {
        Some(f) if !f.is_empty() => Some(crate::format::Format::parse(f).map_err(|e| Failure {
            code: 1,
            message: e,
        })?),
        _ => None,
    };
    let mut found = Vec::new();
    let mut failed = false;
    for n in &a.names {
        let mut got = None;
        if kind != "image" {
            let path = format!(
                "/containers/{}/json{}",
                q(n),
                if a.size { "?size=1" } else { "" }
            );
            match client.get_json::<serde_json::Value>(&path).await {
                Ok(v) => got = Some(v),
                Err(berth_api::client::ClientError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got.is_none() && (kind.is_empty() || kind == "image") {
            match client
                .get_json::<serde_json::Value>(&format!("/images/{}/json", q(n)))
                .await
            {
                Ok(v) => got = Some(v),
                Err(berth_api::client::ClientError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got.is_none() && (kind.is_empty() || kind == "volume") {
            match client
                .get_json::<serde_json::Value>(&format!("/volumes/{}", q(n)))
                .await
            {
                Ok(v) => got = Some(v),
                // `--type volume` shows the daemon's words, as the docker CLI.
                Err(e @ berth_api::client::ClientError::Api { status: 404, .. })
                    if kind == "volume" =>
                {
                    failed = true;
                    eprintln!("{}", Failure::from(e).message);
                    continue;
                }
                Err(berth_api::client::ClientError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            Some(v) => found.push(v),
            None => {
                failed = true;
                let what = match kind.as_str() {
                    "container" => "container",
                    "image" => "image",
                    "volume" => "volume",
                    _ => "object",
                };
                eprintln!("Error: No such {what}: {n}");
            }
        }
    }
    match fmt {
        Some(f) => {
            for v in &found {
                let s = f.render(&crate::format::to_tv(v)).map_err(|e| Failure {
                    code: 1,
                    message: e,
                })?;
                println!("{s}");
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&found, &mut ser).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
            println!("{}", String::from_utf8_lossy(&buf));
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// `container <sub>`: the same commands under the management command.
#[derive(clap::Subcommand, Debug)]
pub enum ContainerCmd {
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(RestartArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(super::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(super::cp::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(super::cp::ExportArgs),
}

pub async fn container(client: &Client, cmd: ContainerCmd) -> CliResult {
    match cmd {
        ContainerCmd::Ls(a) => ps(client, a).await,
        ContainerCmd::Rm(a) => rm(client, a).await,
        ContainerCmd::Start(a) => start(client, a).await,
        ContainerCmd::Stop(a) => stop(client, a).await,
        ContainerCmd::Restart(a) => restart(client, a).await,
        ContainerCmd::Kill(a) => kill(client, a).await,
        ContainerCmd::Pause(a) => pause(client, a).await,
        ContainerCmd::Unpause(a) => unpause(client, a).await,
        ContainerCmd::Rename(a) => rename(client, a).await,
        ContainerCmd::Wait(a) => wait(client, a).await,
        ContainerCmd::Update(a) => update(client, a).await,
        ContainerCmd::Port(a) => port(client, a).await,
        ContainerCmd::Top(a) => top(client, a).await,
        ContainerCmd::Prune(a) => prune(client, a).await,
        ContainerCmd::Inspect(a) => inspect(client, a, Some("container")).await,
        ContainerCmd::Logs(a) => logs(client, a).await,
        ContainerCmd::Cp(a) => super::cp::cp(client, a).await,
        ContainerCmd::Diff(a) => super::cp::diff(client, a).await,
        ContainerCmd::Export(a) => super::cp::export(client, a).await,
    }
}
