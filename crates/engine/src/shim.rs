//! Daemon side of the shim protocol (`types::shim`, docs/shim-protocol.md).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use berth_types::shim::{
    frame_header, parse_frame_header, FrameKind, Request, Response, ShimConfig, ShimReady,
    LAUNCHER_HELLO,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Starts shims by asking `berth-runtime shim-launcher`, a small process
/// berthd starts once, to fork one per container: an exec of the runtime
/// binary per container (dynamic loading, relocation, page faults) costs
/// more than the fork. Falls back to exec'ing `berth-runtime shim` when the
/// launcher cannot be started (another shim binary, or
/// `BERTH_SHIM_LAUNCHER=0`). The launcher exits when berthd closes its
/// socket; the shims it forked live on (docs/shim-protocol.md).
pub struct Launcher {
    binary: PathBuf,
    /// Empty arguments given to the launcher: room for each shim to rewrite
    /// its command line to `berth-runtime shim --config <path>`.
    room: usize,
    state: Mutex<LauncherState>,
}

enum LauncherState {
    NotStarted,
    Running {
        control: OwnedFd,
        _child: tokio::process::Child,
    },
    /// It failed to start or to answer: exec a shim per container.
    Unavailable,
}

impl Launcher {
    pub fn new(binary: &Path, exec_root: &Path) -> Launcher {
        let disabled = std::env::var_os("BERTH_SHIM_LAUNCHER").is_some_and(|v| v == "0");
        Launcher {
            binary: binary.to_path_buf(),
            // `shim --config <exec-root>/containers/<64 hex>/shim.json`.
            room: exec_root.as_os_str().len() + 160,
            state: Mutex::new(if disabled {
                LauncherState::Unavailable
            } else {
                LauncherState::NotStarted
            }),
        }
    }

    /// Start the shim for a bundle whose `shim.json` is written, and wait
    /// until the container is created.
    pub async fn spawn(&self, config_path: &Path) -> Result<ShimReady> {
        use std::os::unix::ffi::OsStrExt;
        // Two tries: a launcher that died (killed) is restarted once.
        for _ in 0..2 {
            let (ours, theirs) = berth_sys::fdpass::stream_pair()
                .map_err(|e| Error::Internal(format!("socketpair: {e}")))?;
            let sent = {
                let mut st = self.state.lock().unwrap();
                if matches!(*st, LauncherState::NotStarted) {
                    *st = self.start();
                }
                match &*st {
                    LauncherState::Running { control, .. } => {
                        let r = berth_sys::fdpass::send_with_fd(
                            control.as_fd(),
                            config_path.as_os_str().as_bytes(),
                            theirs.as_fd(),
                        );
                        if let Err(e) = &r {
                            tracing::warn!("shim launcher: {e}; restarting it");
                            *st = LauncherState::NotStarted;
                        }
                        r.is_ok()
                    }
                    LauncherState::Unavailable => break,
                    LauncherState::NotStarted => false,
                }
            };
            drop(theirs);
            if sent {
                let stream = std::os::unix::net::UnixStream::from(ours);
                stream
                    .set_nonblocking(true)
                    .map_err(|e| Error::Internal(format!("shim reply socket: {e}")))?;
                let stream = UnixStream::from_std(stream)
                    .map_err(|e| Error::Internal(format!("shim reply socket: {e}")))?;
                let mut line = String::new();
                let read = tokio::time::timeout(
                    Duration::from_secs(60),
                    BufReader::new(stream).read_line(&mut line),
                )
                .await;
                return match read {
                    Ok(Ok(n)) if n > 0 => parse_ready(&line),
                    _ => Err(Error::Internal(
                        "shim exited without reporting (see shim.log in the bundle)".into(),
                    )),
                };
            }
        }
        spawn_exec(&self.binary, config_path).await
    }

    /// Start the launcher and wait for its hello packet.
    fn start(&self) -> LauncherState {
        let started = (|| -> std::io::Result<LauncherState> {
            let (control, theirs) = berth_sys::fdpass::seqpacket_pair()?;
            let child = tokio::process::Command::new(&self.binary)
                .arg("shim-launcher")
                .args(std::iter::repeat_n("", self.room))
                .stdin(Stdio::from(theirs))
                .stdout(Stdio::null())
                .kill_on_drop(false)
                .spawn()?;
            // The hello packet (blocks at most 5 s, once per launcher).
            let sock = std::os::unix::net::UnixDatagram::from(control.try_clone()?);
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut hello = [0u8; 64];
            let n = sock.recv(&mut hello)?;
            if &hello[..n] != LAUNCHER_HELLO.as_bytes() {
                return Err(std::io::Error::other("no hello from the launcher"));
            }
            Ok(LauncherState::Running {
                control,
                _child: child,
            })
        })();
        match started {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "shim launcher {} unavailable ({e}); exec'ing a shim per container",
                    self.binary.display()
                );
                LauncherState::Unavailable
            }
        }
    }
}

fn parse_ready(line: &str) -> Result<ShimReady> {
    let ready: ShimReady = serde_json::from_str(line.trim())
        .map_err(|e| Error::Internal(format!("bad shim reply {line:?}: {e}")))?;
    if let Some(e) = ready.error {
        return Err(Error::Internal(e));
    }
    Ok(ready)
}

/// Without the launcher: exec `berth-runtime shim` for a bundle whose
/// `shim.json` is written, and wait until the container is created.
async fn spawn_exec(shim_binary: &Path, config_path: &Path) -> Result<ShimReady> {
    let mut child = tokio::process::Command::new(shim_binary)
        .arg("shim")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::Internal(format!("start shim {}: {e}", shim_binary.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let status = child.wait().await.ok();
    let mut err_text = String::new();
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        stderr.read_to_string(&mut err_text),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            return Err(Error::Internal(format!(
                "shim exited ({}) without reporting: {}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                err_text.trim()
            )))
        }
    }
    parse_ready(&line)
}

pub fn write_config(path: &Path, cfg: &ShimConfig) -> Result<()> {
    let data = serde_json::to_vec_pretty(cfg).expect("shim config serializes");
    berth_sys::fs::write_volatile(path, &data, 0o600)
        .map_err(|e| Error::Internal(format!("write {}: {e}", path.display())))
}

/// One connection to a shim.
pub struct ShimConn {
    stream: UnixStream,
}

pub enum Frame {
    Control(Response),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

impl ShimConn {
    pub async fn connect(socket: &Path) -> std::io::Result<ShimConn> {
        Ok(ShimConn {
            stream: UnixStream::connect(socket).await?,
        })
    }

    pub async fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let body = serde_json::to_vec(req).expect("request serializes");
        self.send_raw(FrameKind::Control, &body).await
    }

    pub async fn send_raw(&mut self, kind: FrameKind, body: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(5 + body.len());
        buf.extend_from_slice(&frame_header(kind, body.len() as u32));
        buf.extend_from_slice(body);
        self.stream.write_all(&buf).await
    }

    /// Next frame; `None` at end of stream.
    pub async fn recv(&mut self) -> std::io::Result<Option<Frame>> {
        let mut h = [0u8; 5];
        match self.stream.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let (kind, len) = parse_frame_header(&h).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame from shim")
        })?;
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await?;
        Ok(Some(match kind {
            FrameKind::Control => Frame::Control(
                serde_json::from_slice(&body)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            ),
            FrameKind::Stdout => Frame::Stdout(body),
            FrameKind::Stderr => Frame::Stderr(body),
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unexpected frame kind from shim",
                ))
            }
        }))
    }

    /// Send one request and wait for its control reply, skipping output.
    pub async fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        self.send(req).await?;
        loop {
            match self.recv().await? {
                Some(Frame::Control(r)) => return Ok(r),
                Some(_) => continue,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "shim closed the connection",
                    ))
                }
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn call(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let mut c = ShimConn::connect(socket).await?;
    c.call(req).await
}
