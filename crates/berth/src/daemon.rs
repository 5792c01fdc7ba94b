//! `berthd`: dockerd's flags and daemon.json keys (DMN-xx), the engine and
//! the API server on every `-H` address.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "A self-sufficient runtime for containers (berth daemon)"
)]
pub struct DaemonArgs {
    /// Daemon socket(s) to connect to
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state files
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    /// Specify network bridge IP
    #[arg(long)]
    pub bip: Option<String>,
    #[command(flatten)]
    pub net: crate::daemon_net::NetArgs,
    /// Daemon configuration file
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    pub config_file: PathBuf,
    /// Default OCI runtime for containers
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// Register an additional OCI runtime (name=path)
    #[arg(long = "add-runtime")]
    pub add_runtime: Vec<String>,
    /// Path to use for daemon PID file
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Set the logging level
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    /// Enable insecure registry communication
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Preferred registry mirror
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Set the max concurrent downloads
    #[arg(long)]
    pub max_concurrent_downloads: Option<usize>,
    /// Set the max concurrent uploads
    #[arg(long)]
    pub max_concurrent_uploads: Option<usize>,
    /// Directory of per-registry TLS files (<host:port>/ca.crt, client.cert, client.key)
    #[arg(long, default_value = "/etc/berth/certs.d")]
    pub certs_dir: PathBuf,
}

/// daemon.json, Docker's key names.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
struct FileConfig {
    hosts: Vec<String>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    bip: Option<String>,
    bridge: Option<String>,
    fixed_cidr: Option<String>,
    mtu: Option<u32>,
    icc: Option<bool>,
    iptables: Option<bool>,
    ip_forward: Option<bool>,
    default_address_pools: Vec<crate::daemon_net::PoolEntry>,
    default_runtime: Option<String>,
    runtimes: HashMap<String, RuntimeEntry>,
    pidfile: Option<PathBuf>,
    debug: Option<bool>,
    log_level: Option<String>,
    live_restore: Option<bool>,
    insecure_registries: Vec<String>,
    registry_mirrors: Vec<String>,
    max_concurrent_downloads: Option<usize>,
    max_concurrent_uploads: Option<usize>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct RuntimeEntry {
    path: PathBuf,
}

pub fn main() -> i32 {
    // Two arenas: with one per worker and blocking thread, berthd's RSS after
    // a load + push + pull was 53 MiB instead of 28 MiB, at the same speed.
    berth_sys::process::limit_malloc_arenas(2);
    let args = DaemonArgs::parse();
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            1
        }
    }
}

fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(args: DaemonArgs) -> Result<()> {
    let mut file: FileConfig = match std::fs::read(&args.config_file) {
        Ok(data) => serde_json::from_slice(&data).with_context(|| {
            format!(
                "unable to configure the daemon with file {}",
                args.config_file.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
        Err(e) => return Err(e).context(format!("read {}", args.config_file.display())),
    };
    let level = args
        .log_level
        .clone()
        .or(file.log_level.clone())
        .unwrap_or_else(|| {
            if args.debug || file.debug == Some(true) {
                "debug".into()
            } else {
                "info".into()
            }
        });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| level.as_str().into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let args_registry = (
        args.insecure_registries.clone(),
        args.registry_mirrors.clone(),
        args.max_concurrent_downloads,
        args.max_concurrent_uploads,
        args.certs_dir.clone(),
    );
    let file_registry = (
        std::mem::take(&mut file.insecure_registries),
        std::mem::take(&mut file.registry_mirrors),
        file.max_concurrent_downloads,
        file.max_concurrent_uploads,
    );
    let data_root = args
        .data_root
        .or(file.data_root)
        .unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = args
        .exec_root
        .or(file.exec_root)
        .unwrap_or_else(|| "/run/berth".into());
    let mut hosts = if args.hosts.is_empty() {
        file.hosts
    } else {
        args.hosts
    };
    if hosts.is_empty() {
        hosts.push(format!("unix://{}", exec_root.join("berth.sock").display()));
    }
    let mut runtimes: HashMap<String, PathBuf> = HashMap::new();
    runtimes.insert("berth-runtime".into(), sibling_binary("berth-runtime"));
    runtimes.insert("runc".into(), PathBuf::from("runc"));
    for (name, r) in file.runtimes {
        runtimes.insert(name, r.path);
    }
    for spec in &args.add_runtime {
        let (name, path) = spec
            .split_once('=')
            .context("--add-runtime expects name=path")?;
        runtimes.insert(name.into(), path.into());
    }
    let rt_name = args
        .default_runtime
        .or(file.default_runtime)
        .unwrap_or_else(|| "berth-runtime".into());
    let runtime = runtimes
        .get(&rt_name)
        .cloned()
        .with_context(|| format!("default runtime {rt_name} is not registered"))?;
    let net_file = crate::daemon_net::NetFile {
        bridge: file.bridge.take(),
        fixed_cidr: file.fixed_cidr.take(),
        mtu: file.mtu,
        icc: file.icc,
        iptables: file.iptables,
        ip_forward: file.ip_forward,
        default_address_pools: std::mem::take(&mut file.default_address_pools),
    };
    let bip = args.bip.clone().or(file.bip.clone());
    let network =
        crate::daemon_net::network_config(&args.net, net_file, bip, &data_root, &exec_root)?;
    let cfg = berth_engine::Config {
        network,
        data_root,
        exec_root: exec_root.clone(),
        shim_binary: sibling_binary("berth-runtime"),
        runtime,
        bip: args.bip.or(file.bip),
        runtime_name: rt_name,
        registry: registry_config(&args_registry, file_registry)?,
    };
    let pidfile = args
        .pidfile
        .or(file.pidfile)
        .unwrap_or_else(|| exec_root.join("berthd.pid"));

    // Request handlers still make short blocking calls (state files are
    // fsynced, mounts, netlink): more workers than cores keep one blocked
    // worker from idling a core while other requests wait.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores * 4).max(8))
        .enable_all()
        .build()?;
    let res = rt.block_on(serve(cfg, hosts, pidfile));
    // Open attach/exec streams and blocking tasks must not keep a stopping
    // daemon alive (containers keep running under their shims).
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    res
}

async fn serve(cfg: berth_engine::Config, hosts: Vec<String>, pidfile: PathBuf) -> Result<()> {
    std::fs::create_dir_all(&cfg.exec_root)?;
    // The exec root holds per-container state that a reboot must drop
    // (bundles, sockets, runtime state, netns pins, the default pidfile):
    // on a tmpfs, as dockerd's /run/docker on most hosts. Where it is on a
    // disk file system (this VM's /run is ext4, 30-200 us per mkdir), mount
    // one first; a restarted daemon finds its own.
    match berth_sys::mount::ensure_tmpfs(&cfg.exec_root) {
        Ok(true) => tracing::info!("mounted a tmpfs on {}", cfg.exec_root.display()),
        Ok(false) => {}
        Err(e) => tracing::warn!("no tmpfs on {}: {e}", cfg.exec_root.display()),
    }
    std::fs::create_dir_all(&cfg.data_root)?;
    std::fs::set_permissions(&cfg.data_root, std::fs::Permissions::from_mode(0o710))?;
    let _pid_lock = write_pidfile(&pidfile)?;
    let engine = berth_engine::Engine::new(cfg)
        .await
        .context("start engine")?;
    let app = berth_api::server::router(engine);
    let mut tasks = tokio::task::JoinSet::new();
    for h in &hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            let path = Path::new(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(format!("remove stale socket {}", path.display())),
            }
            let l =
                tokio::net::UnixListener::bind(path).with_context(|| format!("listen on {h}"))?;
            // ARCH-05 / security: the API socket is root-only.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            info!("API listen on {}", path.display());
            let app = app.clone();
            tasks.spawn(async move { berth_api::server::serve_unix(l, app).await });
        } else if let Some(addr) = h.strip_prefix("tcp://") {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {h}"))?;
            warn!("API listen on {addr} without TLS: anyone who can reach it controls the host");
            let app = app.clone();
            tasks.spawn(async move { berth_api::server::serve_tcp(l, app).await });
        } else {
            bail!("invalid host address {h}: use unix:///path or tcp://addr:port");
        }
    }
    info!("daemon has completed initialization");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tasks.join_next() => {
            if let Some(Ok(Err(e))) = r { return Err(e.into()); }
        }
        _ = tokio::signal::ctrl_c() => info!("interrupted; containers keep running"),
        _ = term.recv() => info!("terminated; containers keep running"),
    }
    let _ = std::fs::remove_file(&pidfile);
    Ok(())
}

/// Refuse to start twice on one exec-root: the pid file stays locked for
/// the daemon's lifetime (the kernel drops the lock when it dies, even by
/// SIGKILL).
fn write_pidfile(path: &Path) -> Result<std::fs::File> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open pid file {}", path.display()))?;
    if let Err(e) = f.try_lock() {
        bail!(
            "pid file found, ensure berthd is not running or delete {} ({e})",
            path.display()
        );
    }
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

type ArgsRegistry = (
    Vec<String>,
    Vec<String>,
    Option<usize>,
    Option<usize>,
    PathBuf,
);
type FileRegistry = (Vec<String>, Vec<String>, Option<usize>, Option<usize>);

/// Registry settings from flags and daemon.json (CFG: insecure-registries,
/// registry-mirrors, max-concurrent-downloads/uploads). Like dockerd, a key
/// given both ways is an error; lists from both are merged.
fn registry_config(
    args: &ArgsRegistry,
    file: FileRegistry,
) -> Result<berth_engine::images::RegistryConfig> {
    let (a_insecure, a_mirrors, a_down, a_up, certs_dir) = args;
    let (f_insecure, f_mirrors, f_down, f_up) = file;
    for (flag, both) in [
        (
            "max-concurrent-downloads",
            a_down.is_some() && f_down.is_some(),
        ),
        ("max-concurrent-uploads", a_up.is_some() && f_up.is_some()),
    ] {
        if both {
            bail!("the following directives are specified both as a flag and in the configuration file: {flag}");
        }
    }
    let mut mirrors = Vec::new();
    for m in a_mirrors.iter().chain(f_mirrors.iter()) {
        mirrors.push(berth_engine::images::validate_mirror(m).map_err(anyhow::Error::msg)?);
    }
    let mut insecure: Vec<String> = a_insecure
        .iter()
        .chain(f_insecure.iter())
        .cloned()
        .collect();
    insecure.dedup();
    let downloads = a_down.or(f_down).unwrap_or(3);
    let uploads = a_up.or(f_up).unwrap_or(5);
    if downloads == 0 || uploads == 0 {
        bail!("invalid max concurrent downloads/uploads: must be at least 1");
    }
    Ok(berth_engine::images::RegistryConfig {
        insecure_registries: insecure,
        mirrors,
        max_concurrent_downloads: downloads,
        max_concurrent_uploads: uploads,
        certs_dirs: vec![certs_dir.clone(), PathBuf::from("/etc/docker/certs.d")],
    })
}
