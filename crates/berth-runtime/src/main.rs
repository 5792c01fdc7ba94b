//! berth-runtime: a runc-compatible OCI runtime CLI over `berth-runtime`
//! (libcontainer), plus the per-container `shim` subcommand.

mod logging;
mod sealed;
mod shim;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::{CreateOptions, Runtime};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version,
    about = "OCI runtime (runc-compatible CLI)"
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, default_value = berth_runtime::DEFAULT_ROOT)]
    root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
    /// Debug logging.
    #[arg(long)]
    debug: bool,
    /// Accepted for runc compatibility; cgroupfs is always used.
    #[arg(long)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container (init waits for `start`).
    Create {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
    },
    /// Start a created container.
    Start { id: String },
    /// Print the container state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Delete a container.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create, start and (unless -d) wait; exits with the container's code.
    Run {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        id: String,
    },
    /// Run a process in a running container (runc's `exec`).
    Exec {
        /// OCI process JSON; overrides the command and options below.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Accepted for runc compatibility: the process JSON's `terminal`
        /// decides (a console socket is needed for it).
        #[arg(short, long)]
        tty: bool,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(short, long)]
        env: Vec<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Per-container shim (see docs/shim-protocol.md).
    Shim {
        #[arg(long)]
        config: PathBuf,
    },
    /// berthd's shim launcher: forks one shim per request on stdin.
    #[command(hide = true)]
    ShimLauncher {
        /// Empty arguments: room for the shims' rewritten command lines.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        room: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Only create/run fork a process that joins the container; the others
    // skip the copy (the shim would otherwise pin a copy of the binary).
    if args
        .iter()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec")
    {
        if let Err(e) = sealed::ensure_sealed() {
            eprintln!("ERRO[0000] cannot re-exec from a sealed copy: {e}");
            return ExitCode::from(1);
        }
    }
    let cli = Cli::parse();
    if let Cmd::Shim { config } = &cli.cmd {
        // Forks first; never returns.
        shim::main(config);
    }
    if let Cmd::ShimLauncher { .. } = &cli.cmd {
        shim::launcher();
    }
    // Container processes must not inherit ignored signals (our own SIGPIPE
    // or anything our caller ignored), like runc.
    berth_sys::signal::reset_ignored();
    logging::init(cli.log.as_deref(), &cli.log_format, cli.debug);
    if cli.systemd_cgroup {
        tracing::warn!("--systemd-cgroup is not supported; using cgroupfs");
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ERRO[0000] {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let rt = Runtime::new(&cli.root);
    match cli.cmd {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            id,
        } => {
            let opts = CreateOptions {
                pid_file,
                console_socket,
                ..Default::default()
            };
            rt.create(&id, &bundle, &opts)?;
        }
        Cmd::Start { id } => rt.start(&id)?,
        Cmd::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::Kill { all, id, signal } => rt.kill(&id, &signal, all)?,
        Cmd::Pause { id } => rt.pause(&id)?,
        Cmd::Resume { id } => rt.resume(&id)?,
        Cmd::Delete { force, id } => match rt.delete(&id, force) {
            // runc: deleting a missing container with --force is not an error.
            Err(berth_runtime::Error::NotFound(_)) if force => {}
            r => r?,
        },
        Cmd::Run {
            bundle,
            pid_file,
            console_socket,
            detach,
            id,
        } => {
            let opts = CreateOptions {
                pid_file,
                console_socket,
                ..Default::default()
            };
            return Ok(rt.run(&id, &bundle, &opts, detach)?);
        }
        Cmd::Exec {
            process,
            detach,
            pid_file,
            console_socket,
            tty: _,
            cwd,
            env,
            id,
            command,
        } => {
            if process.is_none() && command.is_empty() {
                anyhow::bail!("exec: neither --process nor a command was given");
            }
            let opts = berth_runtime::ExecOptions {
                process,
                args: command,
                env,
                cwd,
                pid_file,
                console_socket,
                detach,
            };
            return Ok(rt.exec(&id, &opts)?);
        }
        Cmd::Spec { bundle } => {
            berth_runtime::write_spec(&bundle, &berth_runtime::default_spec()).context("spec")?;
        }
        Cmd::Shim { .. } | Cmd::ShimLauncher { .. } => unreachable!("handled in main"),
    }
    Ok(0)
}
