//! `berth run` (CTR-01..CTR-10): create, attach, wait, start.

use berth_api::client::{Client, ClientError};
use berth_types::api::{
    ContainerCreateBody, ContainerCreateResponse, StrOrVec, Ulimit, WaitResponse,
};
use berth_types::defaults::{IPC_SYSCTLS, ULIMIT_TYPES};
use clap::{ArgAction, Args};
use http_body_util::BodyExt;
use hyper::Method;

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
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    sig_proxy: bool,
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
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    cpu_shares: Option<String>,
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
    #[arg(long, allow_hyphen_values = true)]
    stop_timeout: Option<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Add additional groups to join
    #[arg(long)]
    group_add: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    domainname: Option<String>,
    /// Read in a line delimited file of labels
    #[arg(long)]
    label_file: Vec<String>,
    /// Write the container ID to the file
    #[arg(long)]
    cidfile: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Add a host device to the container
    #[arg(long)]
    device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long)]
    device_cgroup_rule: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long)]
    shm_size: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    cgroupns: Option<String>,
    /// Disable OOM Killer
    #[arg(long)]
    oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, allow_hyphen_values = true)]
    oom_score_adj: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Kernel memory limit
    #[arg(long)]
    kernel_memory: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long, allow_hyphen_values = true)]
    memory_swappiness: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// Limit CPU real-time period in microseconds
    #[arg(long)]
    cpu_rt_period: Option<String>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long)]
    cpu_rt_runtime: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// CPU count (Windows only)
    #[arg(long)]
    cpu_count: Option<String>,
    /// CPU percent (Windows only)
    #[arg(long)]
    cpu_percent: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long)]
    blkio_weight: Option<String>,
    /// Block IO weight (relative device weight)
    #[arg(long)]
    blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long)]
    device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long)]
    device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long)]
    device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long)]
    device_write_iops: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Runtime to use for this container
    #[arg(long)]
    runtime: Option<String>,
    /// Container isolation technology
    #[arg(long)]
    isolation: Option<String>,
    /// User namespace to use
    #[arg(long)]
    userns: Option<String>,
    /// Skip image verification (accepted; berth does not verify)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long)]
    pull: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    expose: Vec<String>,
    /// Connect a container to a network
    #[arg(long, visible_alias = "net")]
    network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long, visible_alias = "net-alias")]
    network_alias: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set DNS options
    #[arg(long, visible_alias = "dns-opt")]
    dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    dns_search: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long)]
    add_host: Vec<String>,
    // Options of later issues: parsed, answered with "not implemented yet".
    /// Bind mount a volume
    #[arg(short = 'v', long)]
    volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long)]
    volumes_from: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long)]
    volume_driver: Option<String>,
    /// Add link to another container
    #[arg(long)]
    link: Vec<String>,
    #[arg(long, hide = true)]
    link_local_ip: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    #[arg(long, hide = true)]
    ip6: Option<String>,
    #[arg(long, hide = true)]
    mac_address: Option<String>,
    #[arg(long, hide = true)]
    log_driver: Option<String>,
    #[arg(long, hide = true)]
    log_opt: Vec<String>,
    #[arg(long, hide = true)]
    health_cmd: Option<String>,
    #[arg(long, hide = true)]
    health_interval: Option<String>,
    #[arg(long, hide = true)]
    health_retries: Option<String>,
    #[arg(long, hide = true)]
    health_start_period: Option<String>,
    #[arg(long, hide = true)]
    health_timeout: Option<String>,
    #[arg(long, hide = true)]
    no_healthcheck: bool,
    #[arg(long, hide = true)]
    gpus: Option<String>,
    #[arg(long, hide = true)]
    storage_opt: Vec<String>,
    #[arg(long, hide = true)]
    io_maxbandwidth: Option<String>,
    #[arg(long, hide = true)]
    io_maxiops: Option<String>,
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
        message: format!(
            "berth: {}.\nSee 'berth run --help'.",
            message.trim_end_matches('.')
        ),
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

fn flag_error(value: &str, flag: &str, e: impl std::fmt::Display) -> Failure {
    usage_error(format!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {e}"
    ))
}

fn parse_num<T: std::str::FromStr>(v: &Option<String>, flag: &str) -> Result<Option<T>, Failure> {
    v.as_ref()
        .map(|x| {
            x.parse::<T>().map_err(|_| {
                flag_error(
                    x,
                    flag,
                    format!("strconv.ParseInt: parsing \"{x}\": invalid syntax"),
                )
            })
        })
        .transpose()
}

fn parse_size(v: &Option<String>, flag: &str) -> Result<i64, Failure> {
    match v {
        None => Ok(0),
        Some(x) => parse_bytes(x).map_err(|e| flag_error(x, flag, e)),
    }
}

/// `KEY=value` lines of an --env-file / --label-file (Docker's rules:
/// blank lines and `#` comments skipped; a bare name takes the value of the
/// CLI's environment when `lookup`).
pub(super) fn read_kv_file(path: &str, lookup: bool) -> Result<Vec<String>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage_error(format!("open {path}: {}", io_text(&e))))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (line.trim_end(), None),
        };
        if name.contains(char::is_whitespace) {
            return Err(usage_error(format!(
                "variable '{name}' contains whitespaces"
            )));
        }
        match value {
            Some(_) => out.push(line.to_string()),
            None if lookup => match std::env::var(name) {
                Ok(v) => out.push(format!("{name}={v}")),
                Err(_) => out.push(name.to_string()),
            },
            None => out.push(name.to_string()),
        }
    }
    Ok(out)
}

fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

fn valid_device_mode(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 3
        && m.chars().all(|c| "rwm".contains(c))
        && m.chars().collect::<std::collections::HashSet<_>>().len() == m.len()
}

/// `--device SRC[:DST][:PERMS]` (docker's validateLinuxPath + parseDevice).
fn parse_device(d: &str) -> Result<serde_json::Value, Failure> {
    let err = |m: String| flag_error(d, "--device", m);
    let parts: Vec<&str> = d.split(':').collect();
    if parts.len() > 3 || parts[0].is_empty() {
        return Err(err(format!("bad format for path: {d}")));
    }
    let (src, mut dst, mut perms) = (parts[0], parts[0], "rwm");
    match parts.len() {
        2 if valid_device_mode(parts[1]) => perms = parts[1],
        2 => dst = parts[1],
        3 => {
            dst = parts[1];
            perms = parts[2];
            if !valid_device_mode(perms) {
                return Err(err(format!("bad mode specified: {perms}")));
            }
        }
        _ => {}
    }
    if !dst.starts_with('/') {
        return Err(err(format!("{dst} is not an absolute path")));
    }
    Ok(serde_json::json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

fn parse_cgroup_rule(r: &str) -> Result<String, Failure> {
    let w: Vec<&str> = r.split_whitespace().collect();
    let ok = match w.as_slice() {
        [t, mm, acc] => {
            ["a", "b", "c"].contains(t)
                && mm.split_once(':').is_some_and(|(a, b)| {
                    [a, b].iter().all(|x| {
                        *x == "*" || (!x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
                    })
                })
                && valid_device_mode(acc)
        }
        _ => false,
    };
    if ok {
        Ok(r.to_string())
    } else {
        Err(flag_error(
            r,
            "--device-cgroup-rule",
            format!("invalid device cgroup format '{r}'"),
        ))
    }
}

/// `--device-read-bps /dev/sda:1mb` and friends: {"Path", "Rate"}.
fn parse_throttle(v: &str, flag: &str, bytes: bool) -> Result<serde_json::Value, Failure> {
    let Some((path, rate)) = v.split_once(':').filter(|(p, _)| p.starts_with("/dev/")) else {
        return Err(flag_error(v, flag, format!("bad format: {v}")));
    };
    let rate = if bytes {
        parse_bytes(rate).ok()
    } else {
        rate.parse::<i64>().ok().filter(|r| *r >= 0)
    }
    .ok_or_else(|| {
        flag_error(v, flag, format!(
            "invalid rate for device: {v}. The correct format is <device-path>:<number>{}. Number must be a positive integer.{}",
            if bytes { "[<unit>]" } else { "" },
            if bytes { " Unit is optional and can be kb, mb, or gb" } else { "" }
        ))
    })?;
    Ok(serde_json::json!({"Path": path, "Rate": rate}))
}

/// The first option of a later issue that was given, if any.
fn not_implemented(a: &RunArgs) -> Option<&'static str> {
    [
        (!a.link_local_ip.is_empty(), "--link-local-ip"),
        (a.ip6.is_some(), "--ip6"),
        (a.mac_address.is_some(), "--mac-address"),
        (a.log_driver.is_some(), "--log-driver"),
        (!a.log_opt.is_empty(), "--log-opt"),
        (a.health_cmd.is_some(), "--health-cmd"),
        (a.health_interval.is_some(), "--health-interval"),
        (a.health_retries.is_some(), "--health-retries"),
        (a.health_start_period.is_some(), "--health-start-period"),
        (a.health_timeout.is_some(), "--health-timeout"),
        (a.no_healthcheck, "--no-healthcheck"),
        (a.gpus.is_some(), "--gpus"),
        (!a.storage_opt.is_empty(), "--storage-opt"),
        (
            a.userns
                .as_deref()
                .is_some_and(|u| !u.is_empty() && u != "host"),
            "--userns",
        ),
        (a.cgroup_parent.is_some(), "--cgroup-parent"),
        (
            a.pull
                .as_deref()
                .is_some_and(|p| p != "missing" && p != "never"),
            "--pull",
        ),
    ]
    .into_iter()
    .find_map(|(given, name)| given.then_some(name))
}

fn build_body(a: &RunArgs) -> Result<ContainerCreateBody, Failure> {
    if let Some(flag) = not_implemented(a) {
        return Err(usage_error(format!("{flag} is not implemented yet")));
    }
    for (v, flag) in [
        (&a.io_maxbandwidth, "--io-maxbandwidth"),
        (&a.io_maxiops, "--io-maxiops"),
    ] {
        if v.is_some() {
            return Err(usage_error(format!("{flag} is only supported on Windows")));
        }
    }
    if let Some(p) = &a.platform {
        let norm = p.to_ascii_lowercase();
        if !["linux", "linux/amd64", "amd64", "linux/x86_64", "x86_64"].contains(&norm.as_str()) {
            return Err(usage_error(format!(
                "image with reference {} was found but does not match the specified platform: wanted {p}, actual: linux/amd64",
                a.image_and_command[0]
            )));
        }
    }
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
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(read_kv_file(f, true)?);
    }
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        } else {
            env.push(e.clone());
        }
    }
    c.env = Some(env);
    c.working_dir = a.workdir.clone().unwrap_or_default();
    c.user = a.user.clone().unwrap_or_default();
    c.hostname = a.hostname.clone().unwrap_or_default();
    c.domainname = a.domainname.clone().unwrap_or_default();
    c.attach_stdout = !a.detach;
    c.attach_stderr = !a.detach;
    c.open_stdin = a.interactive;
    c.attach_stdin = a.interactive && !a.detach;
    c.stdin_once = c.attach_stdin;
    c.tty = a.tty;
    c.stop_signal = a.stop_signal.clone();
    c.stop_timeout = parse_num(&a.stop_timeout, "--stop-timeout")?;
    let mut labels = Vec::new();
    for f in &a.label_file {
        labels.extend(read_kv_file(f, false)?);
    }
    labels.extend(a.label.iter().cloned());
    c.labels = Some(
        labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect(),
    );
    super::volume::apply_run_flags(&a.volume, &a.mount, &a.tmpfs, &a.volumes_from, &mut body)
        .map_err(|(v, f, e)| flag_error(&v, f, e))?;
    body.host_config.volume_driver = a.volume_driver.clone().unwrap_or_default();
    let h = &mut body.host_config;
    h.auto_remove = a.rm;
    h.memory = parse_size(&a.memory, "-m, --memory")?;
    if let Some(m) = &a.memory_swap {
        h.memory_swap = if m == "-1" {
            -1
        } else {
            parse_bytes(m).map_err(|e| flag_error(m, "--memory-swap", e))?
        };
    }
    h.memory_reservation = parse_size(&a.memory_reservation, "--memory-reservation")?;
    h.kernel_memory = parse_size(&a.kernel_memory, "--kernel-memory")?;
    h.memory_swappiness =
        Some(parse_num(&a.memory_swappiness, "--memory-swappiness")?.unwrap_or(-1));
    h.shm_size = parse_size(&a.shm_size, "--shm-size")?;
    h.pids_limit = parse_num(&a.pids_limit, "--pids-limit")?;
    if let Some(cpus) = &a.cpus {
        let n: f64 = cpus.parse().map_err(|_| {
            flag_error(
                cpus,
                "--cpus",
                format!("failed to parse {cpus} as a rational number"),
            )
        })?;
        h.nano_cpus = (n * 1e9).round() as i64;
    }
    h.cpu_shares = parse_num(&a.cpu_shares, "-c, --cpu-shares")?.unwrap_or(0);
    h.cpu_period = parse_num(&a.cpu_period, "--cpu-period")?.unwrap_or(0);
    h.cpu_quota = parse_num(&a.cpu_quota, "--cpu-quota")?.unwrap_or(0);
    h.cpu_realtime_period = parse_num(&a.cpu_rt_period, "--cpu-rt-period")?.unwrap_or(0);
    h.cpu_realtime_runtime = parse_num(&a.cpu_rt_runtime, "--cpu-rt-runtime")?.unwrap_or(0);
    h.cpu_count = parse_num(&a.cpu_count, "--cpu-count")?.unwrap_or(0);
    h.cpu_percent = parse_num(&a.cpu_percent, "--cpu-percent")?.unwrap_or(0);
    h.cpuset_cpus = a.cpuset_cpus.clone().unwrap_or_default();
    h.cpuset_mems = a.cpuset_mems.clone().unwrap_or_default();
    h.blkio_weight = parse_num(&a.blkio_weight, "--blkio-weight")?.unwrap_or(0);
    let mut weights = Vec::new();
    for w in &a.blkio_weight_device {
        let bad = || flag_error(w, "--blkio-weight-device", format!("bad format: {w}"));
        let (path, weight) = w
            .split_once(':')
            .filter(|(p, _)| p.starts_with("/dev/"))
            .ok_or_else(bad)?;
        let weight: u16 = weight
            .parse()
            .ok()
            .filter(|n| *n == 0 || (10..=1000).contains(n))
            .ok_or_else(|| {
                flag_error(
                    w,
                    "--blkio-weight-device",
                    format!("invalid weight for device: {w}"),
                )
            })?;
        weights.push(serde_json::json!({"Path": path, "Weight": weight}));
    }
    h.blkio_weight_device = Some(weights);
    let throttles = |list: &[String],
                     flag: &str,
                     bytes: bool|
     -> Result<Option<Vec<serde_json::Value>>, Failure> {
        list.iter()
            .map(|v| parse_throttle(v, flag, bytes))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    h.blkio_device_read_bps = throttles(&a.device_read_bps, "--device-read-bps", true)?;
    h.blkio_device_write_bps = throttles(&a.device_write_bps, "--device-write-bps", true)?;
    h.blkio_device_read_iops = throttles(&a.device_read_iops, "--device-read-iops", false)?;
    h.blkio_device_write_iops = throttles(&a.device_write_iops, "--device-write-iops", false)?;
    h.devices = Some(
        a.device
            .iter()
            .map(|d| parse_device(d))
            .collect::<Result<_, _>>()?,
    );
    h.device_cgroup_rules = Some(
        a.device_cgroup_rule
            .iter()
            .map(|r| parse_cgroup_rule(r))
            .collect::<Result<_, _>>()?,
    );
    h.cap_add = Some(a.cap_add.clone());
    h.cap_drop = Some(a.cap_drop.clone());
    let mut security = Vec::new();
    for o in &a.security_opt {
        // Like the docker CLI: a seccomp profile file is sent as its JSON.
        let file = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
            .filter(|v| *v != "unconfined" && *v != "builtin");
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    usage_error(format!(
                        "opening seccomp profile ({path}) failed: open {path}: {}",
                        io_text(&e)
                    ))
                })?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    usage_error(format!(
                        "compacting json for seccomp profile ({path}) failed: {e}"
                    ))
                })?;
                security.push(format!("seccomp={v}"));
            }
            None => security.push(o.clone()),
        }
    }
    h.security_opt = Some(security);
    h.privileged = a.privileged;
    h.readonly_rootfs = a.read_only;
    h.network_mode = "default".into();
    h.group_add = Some(a.group_add.clone());
    h.container_id_file = a.cidfile.clone().unwrap_or_default();
    if a.init {
        h.init = Some(true);
    }
    h.oom_kill_disable = a.oom_kill_disable;
    h.oom_score_adj = parse_num(&a.oom_score_adj, "--oom-score-adj")?.unwrap_or(0);
    if let Some(p) = &a.pid {
        if p != "host"
            && !p.strip_prefix("container:").is_some_and(|c| !c.is_empty())
            && !p.is_empty()
        {
            return Err(usage_error("--pid: invalid PID mode".into()));
        }
        h.pid_mode = p.clone();
    }
    if let Some(u) = &a.uts {
        if u != "host" && !u.is_empty() {
            return Err(usage_error("--uts: invalid UTS mode".into()));
        }
        h.uts_mode = u.clone();
    }
    h.ipc_mode = a.ipc.clone().unwrap_or_default();
    if let Some(c) = &a.cgroupns {
        if c != "host" && c != "private" {
            return Err(usage_error("--cgroupns: invalid CGROUP mode".into()));
        }
        h.cgroupns_mode = c.clone();
    }
    h.userns_mode = a.userns.clone().unwrap_or_default();
    h.runtime = a.runtime.clone().unwrap_or_default();
    h.isolation = a.isolation.clone().unwrap_or_default();
    if let Some(r) = &a.restart {
        let (name, count) = match r.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (r.as_str(), None),
        };
        match (name, count) {
            ("no" | "always" | "unless-stopped", Some(_)) => {
                return Err(usage_error(format!(
                    "maximum retry count cannot be used with restart policy '{name}'"
                )))
            }
            ("no" | "always" | "unless-stopped" | "on-failure" | "", _) => {}
            _ => return Err(usage_error(format!("invalid restart policy {name}"))),
        }
        if a.rm && !matches!(name, "no" | "") {
            return Err(usage_error(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        h.restart_policy.name = name.to_string();
        h.restart_policy.maximum_retry_count = match count {
            Some(c) => c.parse().map_err(|_| {
                usage_error(format!(
                    "invalid restart policy format: maximum retry count must be an integer: {c}"
                ))
            })?,
            None => 0,
        };
    } else {
        h.restart_policy.name = "no".into();
    }
    let mut sysctls = std::collections::HashMap::new();
    for kv in &a.sysctl {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(flag_error(
                kv,
                "--sysctl",
                format!("sysctl '{kv}' is not whitelisted"),
            ));
        };
        if !(IPC_SYSCTLS.contains(&k) || k.starts_with("fs.mqueue.") || k.starts_with("net.")) {
            return Err(flag_error(
                kv,
                "--sysctl",
                format!("sysctl '{kv}' is not whitelisted"),
            ));
        }
        sysctls.insert(k.to_string(), v.to_string());
    }
    if !sysctls.is_empty() {
        h.sysctls = Some(sysctls);
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let bad = || flag_error(u, "--ulimit", format!("invalid ulimit argument: {u}"));
        let (name, vals) = u.split_once('=').ok_or_else(bad)?;
        if !ULIMIT_TYPES.contains(&name) {
            return Err(flag_error(
                u,
                "--ulimit",
                format!("invalid ulimit type: {name}"),
            ));
        }
        let (soft, hard) = match vals.split_once(':') {
            Some((s, h)) => (s, h),
            None => (vals, vals),
        };
        let (soft, hard): (i64, i64) = (
            soft.parse().map_err(|_| bad())?,
            hard.parse().map_err(|_| bad())?,
        );
        if soft > hard {
            return Err(flag_error(
                u,
                "--ulimit",
                format!(
                    "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
                ),
            ));
        }
        ulimits.push(Ulimit {
            name: name.into(),
            soft,
            hard,
        });
    }
    h.ulimits = Some(ulimits);
    super::network::apply_run_flags(
        &super::network::RunNetFlags {
            publish: &a.publish,
            publish_all: a.publish_all,
            expose: &a.expose,
            network: a.network.as_deref(),
            aliases: &a.network_alias,
            ip: a.ip.as_deref(),
            dns: &a.dns,
            dns_option: &a.dns_option,
            dns_search: &a.dns_search,
            add_host: &a.add_host,
            link: &a.link,
        },
        &mut body,
    )
    .map_err(|(v, f, e)| flag_error(&v, f, e))?;
    Ok(body)
}

/// Create the container (`berth create` and the first step of `run`):
/// its id, after printing the daemon's warnings; writes `--cidfile`.
async fn create_container(client: &Client, a: &RunArgs) -> Result<String, Failure> {
    let body = build_body(a)?;
    if let Some(f) = &a.cidfile {
        if std::path::Path::new(f).exists() {
            return Err(usage_error(format!(
                "Container ID file found, make sure the other container isn't running or delete {f}"
            )));
        }
    }
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
            let last = image.rsplit('/').next().unwrap_or(&image);
            let reference = if last.contains(':') || image.contains('@') {
                image.clone()
            } else {
                format!("{image}:latest")
            };
            if a.pull.as_deref() == Some("never") {
                return Err(daemon_error(ClientError::Api {
                    status: 404,
                    message,
                }));
            }
            eprintln!("Unable to find image '{reference}' locally");
            // Like docker: pull, then create again.
            if let Err(f) = super::images::pull_silently(client, &image, true).await {
                let message = f.message.trim_start_matches("Error response from daemon: ");
                return Err(daemon_error(ClientError::Api {
                    status: 404,
                    message: message.to_string(),
                }));
            }
            match client.post_json(&path, &body).await {
                Ok(c) => c,
                Err(e) => return Err(create_error(e)),
            }
        }
        Err(e) => return Err(create_error(e)),
    };
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &created.id).map_err(|e| {
            usage_error(format!("failed to write the container ID to the file: {e}"))
        })?;
    }
    Ok(created.id)
}

/// Errors of the create step: always 125, like docker.
fn create_error(e: ClientError) -> Failure {
    let mut f = daemon_error(e);
    f.code = 125;
    f
}

/// `berth create`: print the new container's id.
pub async fn create(client: &Client, a: RunArgs) -> CliResult {
    let id = create_container(client, &a).await?;
    println!("{id}");
    Ok(0)
}

pub async fn run(client: &Client, a: RunArgs) -> CliResult {
    let id = create_container(client, &a).await?;
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

    let output =
        super::attach::attach_stream(client, &id, a.tty, a.interactive, a.detach_keys.as_deref())
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
    let raw = if a.tty && a.interactive {
        super::tty::RawMode::enter()
    } else {
        None
    };
    if let Err(e) = client
        .call(
            Method::POST,
            &format!("/containers/{id}/start"),
            berth_api::client::empty(),
            None,
        )
        .await
    {
        drop(raw);
        output.abort();
        return Err(daemon_error(e));
    }
    if a.tty {
        super::tty::spawn_resize(client.clone(), format!("/containers/{id}/resize"));
    } else if a.sig_proxy {
        super::tty::spawn_sig_proxy(client.clone(), id.clone());
    }
    let mut output = output;
    let mut wait_body = Box::pin(wait.into_body().collect());
    let waited = tokio::select! {
        w = &mut wait_body => {
            let _ = (&mut output).await;
            w
        }
        _ = &mut output => {
            // The stream ended: the container exited, or we detached.
            let running = client
                .get_json::<serde_json::Value>(&format!("/containers/{id}/json"))
                .await
                .map(|v| v["State"]["Running"] == true)
                .unwrap_or(false);
            if running && a.interactive {
                drop(raw);
                return Ok(0);
            }
            wait_body.await
        }
    };
    drop(raw);
    let waited = waited.map(|b| b.to_bytes());
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
