//! berth-runtime: a small synchronous wrapper over youki's `libcontainer`.
//!
//! libcontainer forks without exec: call these functions only from a
//! single-threaded process (the `berth-runtime` binary is one).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

mod cgroup_mount;
pub mod enter;
mod init_filter;
mod late_mounts;
pub mod spec;

pub use spec::default_spec;

/// Default state directory, like runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container \"{0}\" already exists")]
    Exists(String),
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    #[error("cannot {op} container \"{id}\" in status {status}")]
    Status {
        op: &'static str,
        id: String,
        status: String,
    },
    #[error("{context}: {source}")]
    Libcontainer {
        context: String,
        #[source]
        source: LibcontainerError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Spec {
        context: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An exec that could not start, in runc's words.
    #[error("{0}")]
    ExecStart(String),
    #[error("wait for container init: {0}")]
    Wait(#[source] nix::Error),
    /// Set-up after libcontainer's create that failed.
    #[error("{0}")]
    Setup(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn lc(context: impl Into<String>) -> impl FnOnce(LibcontainerError) -> Error {
    let context = context.into();
    move |source| Error::Libcontainer { context, source }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Options for `create` / `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Take a root container's seccomp filter from this cache and load it
    /// in init's executor instead of libcontainer compiling it
    /// (`init_filter`; for the shim: it briefly rewrites the bundle's
    /// config.json).
    pub seccomp_cache: Option<PathBuf>,
}

/// The container's stdio for [`Runtime::create_with_stdio`]; `None` means
/// init inherits the caller's descriptor.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Options for [`Runtime::exec`] (runc's `exec`).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// OCI `process` JSON file; when set, `args`/`env`/`cwd` are ignored.
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    /// `KEY=VALUE` overrides of the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs (it is re-parented when the caller
    /// exits); otherwise wait and return its exit code.
    pub detach: bool,
}

/// runc-compatible `state` output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuncState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

/// A runtime state directory (`--root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Load an existing container; `NotFound` if there is no state for it.
    pub fn load(&self, id: &str) -> Result<Container> {
        let dir = self.container_dir(id);
        if id.is_empty() || id.contains('/') || !dir.join("state.json").exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Container::load(dir).map_err(lc(format!("load container {id}")))
    }

    /// `create`: set up the container from `bundle`; init waits for `start`.
    /// The container's stdio is inherited from the caller. Returns init's pid.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<Pid> {
        self.create_with_stdio(id, bundle, opts, Stdio::default())
    }

    /// `create` with the given descriptors as init's stdin/stdout/stderr
    /// (closed in the caller when this returns). Init is a child of the
    /// caller. Forks without exec: the caller must be single-threaded, and
    /// init inherits its signal dispositions and (until it execs) its other
    /// descriptors.
    pub fn create_with_stdio(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        stdio: Stdio,
    ) -> Result<Pid> {
        let c = self.build(id, bundle, opts, true, stdio)?;
        c.pid()
            .ok_or_else(|| Error::NotFound(format!("{id} (no init pid)")))
    }

    fn build(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        detach: bool,
        stdio: Stdio,
    ) -> Result<Container> {
        if self.container_dir(id).exists() {
            return Err(Error::Exists(id.to_string()));
        }
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("create root {}", self.root.display())))?;
        let bundle =
            std::fs::canonicalize(bundle).map_err(io(format!("bundle {}", bundle.display())))?;
        let ctx = format!("create container {id}");
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default());
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        let builder = builder
            .with_root_path(&self.root)
            .map_err(lc(ctx.clone()))?
            .with_pid_file(opts.pid_file.clone())
            .map_err(lc(ctx.clone()))?
            .with_console_socket(opts.console_socket.clone())
            .validate_id()
            .map_err(lc(ctx.clone()))?;
        let prepared = opts
            .seccomp_cache
            .as_deref()
            .and_then(|cache| init_filter::Prepared::new(&bundle, cache));
        let builder = match &prepared {
            Some(p) => builder.with_executor(p.executor.clone()),
            None => builder,
        };
        let built = builder
            .as_init(&bundle)
            .with_systemd(false)
            .as_sibling(false)
            .with_detach(detach)
            .build();
        if let Some(p) = &prepared {
            p.restore()
                .map_err(io(format!("restore {}/config.json", bundle.display())))?;
        }
        let mut c = built.map_err(lc(ctx))?;
        let late = prepared.map(|p| p.late).unwrap_or_default();
        if let Err(e) = after_create(&bundle, &c, &late) {
            let _ = c.delete(true);
            return Err(e);
        }
        Ok(c)
    }

    /// `start`: let a created container's init exec the user process.
    pub fn start(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        if c.status() != ContainerStatus::Created {
            return Err(Error::Status {
                op: "start",
                id: id.into(),
                status: status_name(c.status()).into(),
            });
        }
        c.start().map_err(lc(format!("start container {id}")))
    }

    /// `exec`: run another process in a running container (libcontainer's
    /// tenant builder). Forks without exec: single-threaded callers only.
    /// With `detach` returns 0 once the process runs; otherwise waits
    /// (forwarding signals) and returns its exit code (128+signal).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let c = self.load(id)?;
        if c.status() != ContainerStatus::Running {
            return Err(Error::Status {
                op: "exec in",
                id: id.into(),
                status: status_name(c.status()).into(),
            });
        }
        let ctx = format!("exec in container {id}");
        if let Some(pid) = self.exec_direct(&c, opts)? {
            if opts.detach {
                return Ok(0);
            }
            return wait_forwarding_signals(pid);
        }
        let env: std::collections::HashMap<String, String> = opts
            .env
            .iter()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(lc(ctx.clone()))?
            .with_pid_file(opts.pid_file.clone())
            .map_err(lc(ctx.clone()))?
            .with_console_socket(opts.console_socket.clone())
            .validate_id()
            .map_err(lc(ctx.clone()))?;
        let mut tenant = builder
            .as_tenant()
            .with_detach(opts.detach || opts.console_socket.is_some())
            .as_sibling(false);
        if let Some(p) = &opts.process {
            tenant = tenant.with_process(Some(p.clone()));
        } else {
            tenant = tenant
                .with_container_args(opts.args.clone())
                .with_env(env)
                .with_cwd(opts.cwd.clone());
        }
        let pid = tenant.build().map_err(lc(ctx))?;
        if opts.detach {
            return Ok(0);
        }
        wait_forwarding_signals(pid)
    }

    /// `exec` through [`enter`] (the container's seccomp filter applies,
    /// no libcontainer set-up); None when it cannot run this exec (no
    /// process file, or a feature it lacks), which then takes libcontainer's
    /// tenant path.
    fn exec_direct(&self, c: &Container, opts: &ExecOptions) -> Result<Option<Pid>> {
        let (Some(process), Some(init)) = (&opts.process, c.pid()) else {
            return Ok(None);
        };
        let io = |context: String| move |source| Error::Io { context, source };
        let text = std::fs::read(process).map_err(io(format!("read {}", process.display())))?;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return Ok(None);
        };
        let prepared = enter::Plan::new(&value).and_then(|plan| {
            enter::Target::load(
                &c.bundle().join("config.json"),
                init.as_raw(),
                Some(&self.root.join(".seccomp")),
            )
            .map(|t| (t, plan))
        });
        let (target, plan) = match prepared {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("exec through libcontainer: {e}");
                return Ok(None);
            }
        };
        let console = match (&opts.console_socket, plan.terminal()) {
            (Some(path), true) => Some(
                std::os::unix::net::UnixStream::connect(path)
                    .map_err(io(format!("connect {}", path.display())))?,
            ),
            _ => None,
        };
        use std::os::fd::AsRawFd;
        let pid = enter::spawn(
            &target,
            &plan,
            [0, 1, 2],
            console.as_ref().map(|s| s.as_raw_fd()),
        )
        .map_err(|e| Error::ExecStart(e.message))?;
        if let Some(f) = &opts.pid_file {
            berth_sys::fs::write_atomic(f, pid.to_string().as_bytes(), 0o644)
                .map_err(io(format!("write {}", f.display())))?;
        }
        Ok(Some(Pid::from_raw(pid)))
    }

    /// `state`: runc's JSON state.
    pub fn state(&self, id: &str) -> Result<RuncState> {
        let c = self.load(id)?;
        let status = c.status();
        let bundle = c.bundle().clone();
        let rootfs = Spec::load(bundle.join("config.json"))
            .ok()
            .and_then(|s| s.root().as_ref().map(|r| r.path().clone()))
            .map(|p| if p.is_absolute() { p } else { bundle.join(p) })
            .unwrap_or_else(|| bundle.join("rootfs"));
        let pid = match status {
            ContainerStatus::Stopped => 0,
            _ => c.pid().map(|p| p.as_raw()).unwrap_or(0),
        };
        let owner = c
            .creator()
            .map(|o| o.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(RuncState {
            oci_version: c.state.oci_version.clone(),
            id: id.to_string(),
            pid,
            status: status_name(status).to_string(),
            bundle,
            rootfs,
            created: c.created().map(rfc3339_nano).unwrap_or_default(),
            owner,
            annotations: c.state.annotations.clone().filter(|a| !a.is_empty()),
        })
    }

    /// `kill`: send `signal` (name or number) to init, or to all processes.
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let sig = parse_signal(signal)?;
        let mut c = self.load(id)?;
        let before = c.status();
        c.kill(sig, all)
            .map_err(lc(format!("kill container {id}")))?;
        // libcontainer marks the container stopped after any signal; restore
        // created/paused when init survived a non-fatal one.
        if matches!(before, ContainerStatus::Created | ContainerStatus::Paused) {
            c.refresh_status().ok();
            if c.status() != ContainerStatus::Stopped {
                c.set_status(before).save().ok();
            }
        }
        Ok(())
    }

    /// `pause`: freeze every process of the container (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        c.pause().map_err(lc(format!("pause container {id}")))
    }

    /// `resume`: thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let mut c = self.load(id)?;
        c.resume().map_err(lc(format!("resume container {id}")))
    }

    /// `delete`: remove a stopped (or, with `force`, any) container.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut c = self.load(id)?;
        c.delete(force)
            .map_err(lc(format!("delete container {id}")))
    }

    /// `run`: create + start; unless `detach`, wait for init and delete the
    /// container, returning its exit code (128+signal if signalled).
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
        let mut c = self.build(id, bundle, opts, detach, Stdio::default())?;
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            return Err(lc(format!("start container {id}"))(e));
        }
        if detach {
            return Ok(0);
        }
        let pid = c.pid().ok_or_else(|| Error::NotFound(id.to_string()))?;
        let code = wait_forwarding_signals(pid);
        // Forced: kills leftovers (if init had no pid namespace) and cgroups.
        if let Err(e) = c.delete(true) {
            tracing::warn!(%id, error = %e, "delete after run");
        }
        code
    }
}

/// Signals `run` forwards to the container's init, like runc.
const FORWARDED: &[nix::sys::signal::Signal] = {
    use nix::sys::signal::Signal::*;
    &[SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH]
};

/// Wait for `pid` (a child of the caller), forwarding common signals to it.
/// Blocks those signals in the caller (single-threaded by contract).
fn wait_forwarding_signals(pid: Pid) -> Result<i32> {
    use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal as S};
    let mut set = SigSet::empty();
    set.add(S::SIGCHLD);
    for s in FORWARDED {
        set.add(*s);
    }
    if nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return wait_exit_code(pid);
    }
    loop {
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(Error::Wait(e)),
        }
        match set.wait() {
            Ok(S::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = kill(pid, sig);
            }
        }
    }
}

/// What libcontainer leaves undone at create: a read-only /sys/fs/cgroup,
/// `--oom-kill-disable`.
/// `late`: mounts of the spec that were kept from libcontainer; made here.
fn after_create(
    bundle: &Path,
    c: &libcontainer::container::Container,
    late: &late_mounts::LateMounts,
) -> Result<()> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(io(format!("read {}", path.display())))?;
    // Only the fields used here: the rest (most of it the seccomp profile)
    // is skipped without being built.
    let spec: AfterCreateSpec = serde_json::from_slice(&data)
        .map_err(|e| Error::Setup(format!("parse {}: {e}", path.display())))?;
    if !late.is_empty() {
        if let Some(pid) = c.pid() {
            late_mounts::apply(pid, late).map_err(Error::Setup)?;
        }
    }
    if late.cgroup_v1.is_none() && spec.wants_readonly_cgroups() {
        if let Some(pid) = c.pid() {
            cgroup_mount::make_readonly(pid).map_err(Error::Setup)?;
        }
    }
    disable_oom_killer_if_asked(&spec)
}

/// What [`after_create`] reads of `config.json`.
#[derive(Deserialize, Default)]
struct AfterCreateSpec {
    #[serde(default)]
    mounts: Vec<SpecMount>,
    #[serde(default)]
    linux: Option<SpecLinux>,
}

#[derive(Deserialize, Default)]
struct SpecMount {
    #[serde(default)]
    destination: PathBuf,
    #[serde(default)]
    options: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct SpecLinux {
    #[serde(default, rename = "cgroupsPath")]
    cgroups_path: Option<String>,
    #[serde(default)]
    resources: Option<serde_json::Value>,
}

impl AfterCreateSpec {
    /// Docker's spec mounts `/sys/fs/cgroup` `ro` for unprivileged containers.
    fn wants_readonly_cgroups(&self) -> bool {
        self.mounts.iter().any(|m| {
            cgroup_mount::is_cgroup_root(&m.destination)
                && m.options.iter().flatten().any(|o| o == "ro")
        })
    }
}

/// `linux.resources.memory.disableOOMKiller` (`--oom-kill-disable`):
/// libcontainer 0.7 never writes it, so set `memory.oom_control` on cgroup
/// v1 ourselves. cgroup v2 has no such switch (runc ignores it there too).
fn disable_oom_killer_if_asked(spec: &AfterCreateSpec) -> Result<()> {
    let Some(linux) = &spec.linux else {
        return Ok(());
    };
    let disable = linux
        .resources
        .as_ref()
        .and_then(|r| r["memory"]["disableOOMKiller"].as_bool())
        .unwrap_or(false);
    let Some(cgroup) = linux.cgroups_path.as_ref().filter(|_| disable) else {
        return Ok(());
    };
    let file = Path::new("/sys/fs/cgroup/memory")
        .join(cgroup.strip_prefix("/").unwrap_or(cgroup))
        .join("memory.oom_control");
    if !file.exists() {
        return Ok(());
    }
    std::fs::write(&file, "1").map_err(io(format!("write {}", file.display())))
}

/// Wait for `pid` (a child of the caller) and map its status to a shell-style
/// exit code.
pub fn wait_exit_code(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::Wait(e)),
        }
    }
}

/// Parse a signal given as a number or a name (`KILL`, `SIGKILL`, `9`).
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::InvalidSignal(s.into()));
    }
    Signal::try_from(s).map_err(|_| Error::InvalidSignal(s.into()))
}

/// runc's lower-case status names.
pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// RFC 3339 with nanoseconds in UTC, trailing zeros trimmed like Go's
/// `time.RFC3339Nano`.
pub fn rfc3339_nano<Tz: chrono::TimeZone>(t: chrono::DateTime<Tz>) -> String {
    let t = t.with_timezone(&chrono::Utc);
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

/// Write `spec` as `<bundle>/config.json` (like `runc spec`); fails if it
/// exists.
pub fn write_spec(bundle: &Path, spec: &Spec) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Io {
            context: format!("{}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "File exists"),
        });
    }
    spec.save(&path).map_err(|source| Error::Spec {
        context: format!("write {}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_create_reads_only_what_it_needs() {
        let spec: AfterCreateSpec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},
                "mounts":[{"destination":"/proc","type":"proc"},
                          {"destination":"/sys/fs/cgroup","type":"cgroup","options":["ro","nosuid"]}],
                "linux":{"cgroupsPath":"/berth/x","resources":{"memory":{"disableOOMKiller":true}},
                         "seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}}}"#,
        )
        .unwrap();
        assert!(spec.wants_readonly_cgroups());
        let linux = spec.linux.as_ref().unwrap();
        assert_eq!(linux.cgroups_path.as_deref(), Some("/berth/x"));
        assert_eq!(
            linux.resources.as_ref().unwrap()["memory"]["disableOOMKiller"],
            true
        );
        let privileged: AfterCreateSpec = serde_json::from_str(
            r#"{"mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","options":["rw"]}]}"#,
        )
        .unwrap();
        assert!(!privileged.wants_readonly_cgroups());
        assert!(!AfterCreateSpec::default().wants_readonly_cgroups());
    }

    #[test]
    fn signals_by_name_and_number() {
        assert!(parse_signal("9").is_ok());
        assert!(parse_signal("KILL").is_ok());
        assert!(parse_signal("SIGTERM").is_ok());
        assert!(parse_signal("term").is_ok());
        assert!(parse_signal("BOGUS").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn go_style_timestamps() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.123456789Z");
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 120_000_000)
            .unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        let t = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn missing_container_is_not_found() {
        let rt = Runtime::new("/nonexistent-berth-root");
        assert!(matches!(rt.state("nope"), Err(Error::NotFound(_))));
        assert!(matches!(rt.load("../x"), Err(Error::NotFound(_))));
    }
}
