//! `berth`: Docker's commands, flags, output and exit codes.

mod attach;
mod containers;
mod cp;
mod credentials;
mod exec;
mod image_more;
mod images;
mod network;
mod progress;
mod run;
mod system;
mod tty;
mod volume;

use std::path::PathBuf;
use std::time::Duration;

use berth_api::client::{Client, ClientError, Host, DEFAULT_SOCKET};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A self-sufficient runtime for containers"
)]
pub struct Cli {
    /// Daemon socket to connect to (before the command, as with docker, so
    /// that commands keep their own -H, e.g. `history -H`)
    #[arg(short = 'H', long = "host", env = "BERTH_HOST")]
    pub host: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::RunArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Restart one or more containers
    Restart(containers::RestartArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
    /// Update configuration of one or more containers
    Update(containers::UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port(containers::PortArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Return low-level information on Docker objects
    Inspect(containers::InspectArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: containers::ContainerCmd,
    },
    /// List images
    Images(image_more::ImagesArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: image_more::ImageCmd,
    },
    /// Show the history of an image
    History(image_more::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image_more::SaveArgs),
    /// Create a new image from a container's changes
    Commit(image_more::CommitArgs),
    /// Search Docker Hub (or a registry) for images
    Search(image_more::SearchArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Log in to a registry
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(cp::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(cp::ExportArgs),
    /// Manage networks
    Network {
        #[command(subcommand)]
        cmd: network::NetworkCmd,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        cmd: volume::VolumeCmd,
    },
    /// Manage the engine
    System {
        #[command(subcommand)]
        cmd: system::SystemCmd,
    },
    /// Show the berth version information
    Version,
    /// Display system-wide information
    Info,
}

/// A CLI failure: message for stderr and the exit code.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let message = match &e {
            ClientError::Api { message, .. } => format!("Error response from daemon: {message}"),
            other => other.to_string(),
        };
        Failure { code: 1, message }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

pub type CliResult = Result<i32, Failure>;

pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = quick_parse(&args).unwrap_or_else(|| Cli::parse_from(&args));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        let client = connect(cli.host.as_deref()).await?;
        dispatch(&client, cli.command).await
    });
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            f.code
        }
    }
}

/// The hot commands (`exec`, `run`, `create`) parsed with a command tree
/// that holds only themselves: building clap's tree of every command is
/// most of the CLI's start-up (its allocations and code pages fault in one
/// by one). None (then the full parse, with its errors and help) unless
/// that parse succeeds.
fn quick_parse(args: &[std::ffi::OsString]) -> Option<Cli> {
    use clap::{Args, FromArgMatches};
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "-H" | "--host" => i += 2,
            _ if a.starts_with("--host=") || (a.starts_with("-H") && a.len() > 2) => i += 1,
            _ => break,
        }
    }
    let name = args.get(i)?.to_str()?;
    let sub = match name {
        "exec" => exec::ExecArgs::augment_args(clap::Command::new("exec")),
        "run" => run::RunArgs::augment_args(clap::Command::new("run")),
        "create" => run::RunArgs::augment_args(clap::Command::new("create")),
        _ => return None,
    };
    let m = clap::Command::new("berth")
        .arg(
            clap::Arg::new("host")
                .short('H')
                .long("host")
                .env("BERTH_HOST"),
        )
        .subcommand(sub)
        .try_get_matches_from(args)
        .ok()?;
    let host = m.get_one::<String>("host").cloned();
    let (_, sm) = m.subcommand()?;
    let command = match name {
        "exec" => Command::Exec(exec::ExecArgs::from_arg_matches(sm).ok()?),
        "run" => Command::Run(run::RunArgs::from_arg_matches(sm).ok()?),
        _ => Command::Create(run::RunArgs::from_arg_matches(sm).ok()?),
    };
    Some(Cli { host, command })
}

async fn dispatch(client: &Client, cmd: Command) -> CliResult {
    match cmd {
        Command::Run(a) => run::run(client, a).await,
        Command::Create(a) => run::create(client, a).await,
        Command::Ps(a) => containers::ps(client, a).await,
        Command::Rm(a) => containers::rm(client, a).await,
        Command::Logs(a) => containers::logs(client, a).await,
        Command::Stop(a) => containers::stop(client, a).await,
        Command::Kill(a) => containers::kill(client, a).await,
        Command::Start(a) => containers::start(client, a).await,
        Command::Restart(a) => containers::restart(client, a).await,
        Command::Pause(a) => containers::pause(client, a).await,
        Command::Unpause(a) => containers::unpause(client, a).await,
        Command::Rename(a) => containers::rename(client, a).await,
        Command::Wait(a) => containers::wait(client, a).await,
        Command::Update(a) => containers::update(client, a).await,
        Command::Port(a) => containers::port(client, a).await,
        Command::Top(a) => containers::top(client, a).await,
        Command::Attach(a) => attach::attach(client, a).await,
        Command::Exec(a) => exec::exec(client, a).await,
        Command::Inspect(a) => containers::inspect(client, a, None).await,
        Command::Container { cmd } => containers::container(client, cmd).await,
        Command::Images(a) => image_more::images(client, a).await,
        Command::Image { cmd } => image_more::image(client, cmd).await,
        Command::History(a) => image_more::history(client, a).await,
        Command::Save(a) => image_more::save(client, a).await,
        Command::Commit(a) => image_more::commit(client, a).await,
        Command::Search(a) => image_more::search(client, a).await,
        Command::Load(a) => images::load(client, a).await,
        Command::Import(a) => images::import(client, a).await,
        Command::Pull(a) => images::pull(client, a).await,
        Command::Push(a) => images::push(client, a).await,
        Command::Tag(a) => images::tag(client, a).await,
        Command::Rmi(a) => images::rmi(client, a).await,
        Command::Login(a) => images::login(client, a).await,
        Command::Logout(a) => images::logout(a).await,
        Command::Cp(a) => cp::cp(client, a).await,
        Command::Diff(a) => cp::diff(client, a).await,
        Command::Export(a) => cp::export(client, a).await,
        Command::Network { cmd } => network::network(client, cmd).await,
        Command::Volume { cmd } => volume::volume(client, cmd).await,
        Command::System { cmd } => system::system(client, cmd).await,
        Command::Version => system::version(client).await,
        Command::Info => system::info(client).await,
    }
}

/// The client for `-H`/`BERTH_HOST`, starting a local daemon when none
/// listens on the default socket and we are root. Probing is a bare
/// `connect`, so a running daemon costs no extra request.
async fn connect(host: Option<&str>) -> Result<Client, Failure> {
    let explicit = host.is_some();
    let host =
        Host::parse(host.unwrap_or(&format!("unix://{DEFAULT_SOCKET}"))).map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
    let client = Client::new(host.clone());
    let Host::Unix(path) = &host else {
        return Ok(client);
    };
    if explicit || tokio::net::UnixStream::connect(path).await.is_ok() || !nix_is_root() {
        return Ok(client); // a command against a dead daemon reports it
    }
    start_daemon()?;
    for _ in 0..400 {
        if client
            .get_json::<serde_json::Value>("/version")
            .await
            .is_ok()
        {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(Failure {
        code: 1,
        message: "berthd did not come up; see /run/berth/berthd.log".into(),
    })
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn start_daemon() -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let berthd = exe
        .parent()
        .map(|d| d.join("berthd"))
        .unwrap_or_else(|| PathBuf::from("berthd"));
    std::fs::create_dir_all("/run/berth")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/berth/berthd.log")?;
    std::process::Command::new(&berthd)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure {
            code: 1,
            message: format!("start {}: {e}", berthd.display()),
        })?;
    Ok(())
}

/// Percent-encode a query value.
pub fn q(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick parse of the hot commands equals clap's full parse.
    #[test]
    fn quick_parse_matches_full_parse() {
        let cases: &[&[&str]] = &[
            &["berth", "exec", "ex", "true"],
            &[
                "berth",
                "-H",
                "unix:///x.sock",
                "exec",
                "-it",
                "-u",
                "1:2",
                "-w",
                "/tmp",
                "-e",
                "A=1",
                "ex",
                "sh",
                "-c",
                "echo $A",
            ],
            &[
                "berth",
                "--host=unix:///y",
                "exec",
                "-d",
                "ex",
                "sleep",
                "1",
            ],
            &[
                "berth",
                "-Hunix:///z",
                "run",
                "-d",
                "--name",
                "n",
                "-p",
                "80:80",
                "-v",
                "/a:/b",
                "img",
                "sleep",
                "600",
            ],
            &[
                "berth",
                "run",
                "--rm",
                "-it",
                "--cap-drop",
                "ALL",
                "--memory",
                "10m",
                "img",
            ],
            &["berth", "create", "--name", "c", "img", "echo", "-n", "x"],
        ];
        for argv in cases {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            let quick = quick_parse(&args).unwrap_or_else(|| panic!("no quick parse: {argv:?}"));
            let full = Cli::try_parse_from(&args).unwrap();
            assert_eq!(format!("{quick:?}"), format!("{full:?}"), "{argv:?}");
        }
        // Anything else, or a bad flag, goes to the full parse.
        for argv in [
            &["berth", "ps"][..],
            &["berth", "exec", "--nope", "x", "y"],
            &["berth", "--version"],
        ] {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            assert!(quick_parse(&args).is_none(), "{argv:?}");
        }
    }
}
