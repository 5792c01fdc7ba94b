//! `docker exec`: exec instances (`POST /containers/{id}/exec`,
//! `/exec/{id}/start|json|resize`). The engine never forks: it asks the
//! container's shim to run the process (shim protocol `Exec`), and one shim
//! connection per running exec carries its stdin, output and exit code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_types::shim::{frame_header, parse_frame_header, FrameKind, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use crate::container::Status;
use crate::error::{Error, Result};
use crate::{spec, user, Engine, Output};

/// `POST /containers/{id}/exec` body (Docker's `ExecConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreateBody {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
    pub detach_keys: String,
    pub console_size: Option<Vec<u16>>,
}

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecEntry {
    pub id: String,
    pub container_id: String,
    pub cfg: ExecCreateBody,
    pub running: bool,
    /// Set once it was started (an exec runs once).
    pub started: bool,
    pub exit_code: Option<i32>,
    pub pid: u32,
}

/// Exec instances, by id.
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, ExecEntry>>,
}

impl Execs {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut ExecEntry) -> T) -> Result<T> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let e = m
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))?;
        Ok(f(e))
    }

    /// Forget the execs of a removed container.
    pub fn remove_container(&self, container_id: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, e| e.container_id != container_id);
    }

    pub fn ids_of(&self, container_id: &str) -> Vec<String> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .filter(|e| e.container_id == container_id && e.running)
            .map(|e| e.id.clone())
            .collect()
    }
}

/// What `exec_start` hands the API layer for an attached exec.
pub struct ExecSession {
    /// Output; closed when the process has exited.
    pub output: mpsc::UnboundedReceiver<Output>,
    /// Bytes for the process's stdin; `None` closes it. Only if AttachStdin.
    pub stdin: Option<mpsc::UnboundedSender<Option<Vec<u8>>>>,
    pub tty: bool,
    /// The exit code once known.
    pub exit: watch::Receiver<Option<i32>>,
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Exit code of an exec that failed to start: dockerd records 126 whatever
/// the cause (also for a command that does not exist; 127 is `run`'s).
pub fn start_error_code(_msg: &str) -> i32 {
    126
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, body: ExecCreateBody) -> Result<String> {
        let id = self.resolve_id(key)?;
        let rec = self.record(&id)?;
        if body.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        match rec.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!(
                    "Container {id} is paused, unpause the container before exec"
                )))
            }
            Status::Restarting => {
                return Err(Error::Conflict(format!(
                    "Container {id} is restarting, wait until the container is running"
                )))
            }
            _ => {
                return Err(Error::Conflict(format!("Container {id} is not running")));
            }
        }
        let exec_id = random_id();
        self.execs
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                exec_id.clone(),
                ExecEntry {
                    id: exec_id.clone(),
                    container_id: id,
                    cfg: body,
                    running: false,
                    started: false,
                    exit_code: None,
                    pid: 0,
                },
            );
        Ok(exec_id)
    }

    /// Check an exec can start (before the API hijacks the connection).
    pub fn exec_check(&self, exec_id: &str) -> Result<ExecEntry> {
        let e = self.execs.with(exec_id, |e| e.clone())?;
        if e.started {
            return Err(Error::Conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        let rec = self.record(&e.container_id)?;
        if !rec.is_running() {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        Ok(e)
    }

    /// The OCI process for an exec: the container's, with the exec's
    /// command, environment, user, working directory and terminal.
    fn exec_process(&self, e: &ExecEntry) -> Result<Value> {
        let rec = self.record(&e.container_id)?;
        let cfg_path = self.bundle_dir(&rec.id).join("config.json");
        let spec: Value = std::fs::read(&cfg_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::Conflict(format!("container {} is not running", rec.id)))?;
        let mut p = spec.get("process").cloned().unwrap_or_else(|| json!({}));
        let c = &e.cfg;
        p["args"] = json!(c.cmd.clone().unwrap_or_default());
        p["terminal"] = json!(c.tty);
        if c.tty {
            let (h, w) = match c.console_size.as_deref() {
                Some([h, w]) if *h > 0 && *w > 0 => (*h, *w),
                _ => (24, 80),
            };
            p["consoleSize"] = json!({"height": h, "width": w});
        } else if let Some(o) = p.as_object_mut() {
            o.remove("consoleSize");
        }
        // Environment: the container's, then the exec's (same key wins).
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut extra: Vec<String> = c.env.clone().unwrap_or_default();
        if c.tty && !extra.iter().any(|x| x.starts_with("TERM=")) {
            extra.push("TERM=xterm".into());
        }
        for kv in extra {
            let key = kv.split('=').next().unwrap_or("").to_string();
            if !kv.contains('=') {
                continue;
            }
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(kv);
        }
        if !c.working_dir.is_empty() {
            if !c.working_dir.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "the working directory '{}' is invalid, it needs to be an absolute path",
                    c.working_dir
                )));
            }
            p["cwd"] = json!(c.working_dir);
        }
        if !c.user.is_empty() {
            let layers: Vec<PathBuf> = rec
                .rootfs_mounts
                .iter()
                .flat_map(|m| m.options.iter())
                .filter_map(|o| o.strip_prefix("lowerdir="))
                .flat_map(|l| l.split(':').map(PathBuf::from).collect::<Vec<_>>())
                .collect();
            // upperdir first: it is the topmost layer.
            let mut ordered: Vec<PathBuf> = rec
                .rootfs_mounts
                .iter()
                .flat_map(|m| m.options.iter())
                .filter_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
                .collect();
            ordered.extend(layers);
            let passwd = user::read_image_file(&ordered, "etc/passwd");
            let group = user::read_image_file(&ordered, "etc/group");
            let u = user::resolve(&c.user, passwd.as_deref(), group.as_deref())?;
            p["user"] = json!({
                "uid": u.uid,
                "gid": u.gid,
                "additionalGids": u.additional_gids,
            });
            if !env.iter().any(|x| x.starts_with("HOME=")) || c.user != rec.config.user {
                env.retain(|x| !x.starts_with("HOME="));
                env.push(format!(
                    "HOME={}",
                    if u.home.is_empty() { "/" } else { &u.home }
                ));
            }
        }
        p["env"] = json!(env);
        if c.privileged {
            let mut h = rec.host_config.clone();
            h.privileged = true;
            let (caps, _) = spec::capabilities(&h)?;
            p["capabilities"] = json!({
                "bounding": caps, "effective": caps, "permitted": caps,
            });
        }
        Ok(p)
    }

    /// `POST /exec/{id}/start`. Starts the process via the shim; with
    /// `detach` the output is discarded. Errors after the check are start
    /// failures (the exec then has exit code 126/127).
    pub async fn exec_start(self: &Arc<Self>, exec_id: &str, detach: bool) -> Result<ExecSession> {
        let e = self.exec_check(exec_id)?;
        self.execs.with(exec_id, |x| x.started = true)?;
        let fail = |msg: String| {
            let code = start_error_code(&msg);
            let _ = self.execs.with(exec_id, |x| {
                x.exit_code = Some(code);
                x.running = false;
            });
            Error::Internal(msg)
        };
        let process = match self.exec_process(&e) {
            Ok(p) => p,
            Err(err) => return Err(fail(err.to_string())),
        };
        let sock = self.shim_socket(&e.container_id);
        let stream = UnixStream::connect(&sock)
            .await
            .map_err(|x| fail(format!("connect to shim: {x}")))?;
        let (mut rd, mut wr) = stream.into_split();
        let want_stdin = e.cfg.attach_stdin && !detach;
        let req = Request::Exec {
            exec_id: exec_id.to_string(),
            process,
            stdin: want_stdin,
        };
        let body = serde_json::to_vec(&req).expect("request serializes");
        send(&mut wr, FrameKind::Control, &body)
            .await
            .map_err(|x| fail(format!("exec: {x}")))?;
        // The first control frame is the reply.
        let pid = loop {
            match recv(&mut rd).await {
                Ok(Some((FrameKind::Control, b))) => match serde_json::from_slice(&b) {
                    Ok(Response::ExecStarted { pid }) => break pid,
                    Ok(Response::Error { message }) => {
                        return Err(fail(format!(
                            "OCI runtime exec failed: {}",
                            docker_exec_error(&message)
                        )))
                    }
                    _ => return Err(fail("unexpected reply from shim".into())),
                },
                Ok(Some(_)) => continue,
                Ok(None) => return Err(fail("shim closed the connection".into())),
                Err(x) => return Err(fail(format!("exec: {x}"))),
            }
        };
        self.execs.with(exec_id, |x| {
            x.running = true;
            x.pid = pid;
        })?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let engine = self.clone();
        let id = exec_id.to_string();
        tokio::spawn(async move {
            let mut code = None;
            loop {
                match recv(&mut rd).await {
                    Ok(Some((FrameKind::Stdout, b))) => {
                        if !detach {
                            let _ = out_tx.send(Output::Stdout(b));
                        }
                    }
                    Ok(Some((FrameKind::Stderr, b))) => {
                        if !detach {
                            let _ = out_tx.send(Output::Stderr(b));
                        }
                    }
                    Ok(Some((FrameKind::Control, b))) => {
                        if let Ok(Response::ExecExited { exit_code }) = serde_json::from_slice(&b) {
                            code = Some(exit_code);
                            break;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // The shim went away first: the container ended, which kills
            // the process.
            let code = code.unwrap_or(137);
            let _ = engine.execs.with(&id, |x| {
                x.running = false;
                x.exit_code = Some(code);
            });
            let _ = exit_tx.send(Some(code));
        });
        let stdin = if want_stdin {
            let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    let r = match m {
                        Some(b) => send(&mut wr, FrameKind::Stdin, &b).await,
                        None => {
                            let _ = send(&mut wr, FrameKind::StdinClose, &[]).await;
                            break;
                        }
                    };
                    if r.is_err() {
                        break;
                    }
                }
                // Keep the write half (and so the connection) open: the
                // shim treats EOF as the end of the connection.
                let _ = rx.recv().await;
                drop(wr);
            });
            Some(tx)
        } else {
            // Keep the write half alive until the reader ends.
            let mut exit = exit_rx.clone();
            tokio::spawn(async move {
                let _ = exit.wait_for(|c| c.is_some()).await;
                drop(wr);
            });
            None
        };
        Ok(ExecSession {
            output: out_rx,
            stdin,
            tty: e.cfg.tty,
            exit: exit_rx,
        })
    }

    /// The stdin side of `POST /containers/{id}/attach?stdin=1` (kept here
    /// with exec's stdin plumbing): `None` unless the container has
    /// OpenStdin. Bytes sent are buffered until the container's shim is up
    /// (attach may come before start), then written as `Stdin` frames on a
    /// shim connection attached with `stdin`; `None` (the client closed its
    /// side) closes the container's stdin when StdinOnce without Tty (like
    /// dockerd; the returned flag says so: otherwise the end of the client's
    /// input ends the attach instead).
    pub fn attach_stdin(
        self: &Arc<Self>,
        key: &str,
    ) -> Result<Option<(mpsc::UnboundedSender<Option<Vec<u8>>>, bool)>> {
        let id = self.resolve_id(key)?;
        let rec = self.record(&id)?;
        if !rec.config.open_stdin {
            return Ok(None);
        }
        let once = rec.config.stdin_once && !rec.config.tty;
        let sock = self.shim_socket(&id);
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
        tokio::spawn(async move {
            let mut pending: Vec<Option<Vec<u8>>> = Vec::new();
            let mut client_done = false;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
            let mut wr = loop {
                if let Ok(s) = UnixStream::connect(&sock).await {
                    let (_rd, mut wr) = s.into_split();
                    let req = Request::Attach {
                        stdout: false,
                        stderr: false,
                        stdin: true,
                    };
                    let body = serde_json::to_vec(&req).expect("request serializes");
                    if send(&mut wr, FrameKind::Control, &body).await.is_ok() {
                        // The read half goes: replies are not needed.
                        break wr;
                    }
                }
                if tokio::time::Instant::now() > deadline || (client_done && pending.is_empty()) {
                    return;
                }
                tokio::select! {
                    m = rx.recv(), if !client_done => match m {
                        Some(m) => pending.push(m),
                        None => client_done = true,
                    },
                    _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
                }
            };
            let mut queue = std::collections::VecDeque::from(pending);
            loop {
                let m = match queue.pop_front() {
                    Some(m) => Some(m),
                    None if client_done => None,
                    None => rx.recv().await,
                };
                match m {
                    Some(Some(b)) => {
                        if send(&mut wr, FrameKind::Stdin, &b).await.is_err() {
                            return;
                        }
                    }
                    // The client closed its side: close stdin if StdinOnce.
                    Some(None) => {
                        if once {
                            let _ = send(&mut wr, FrameKind::StdinClose, &[]).await;
                        }
                        return;
                    }
                    // The attach ended otherwise (detach keys, disconnect):
                    // stdin stays open for the next client.
                    None => return,
                }
            }
        });
        Ok(Some((tx, once)))
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, exec_id: &str) -> Result<Value> {
        let e = self.execs.with(exec_id, |e| e.clone())?;
        let cmd = e.cfg.cmd.clone().unwrap_or_default();
        let mut pc = json!({
            "tty": e.cfg.tty,
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).cloned().collect::<Vec<_>>(),
            "privileged": e.cfg.privileged,
        });
        if !e.cfg.user.is_empty() {
            pc["user"] = json!(e.cfg.user);
        }
        Ok(json!({
            "ID": e.id,
            "Running": e.running,
            "ExitCode": e.exit_code,
            "ProcessConfig": pc,
            "OpenStdin": e.cfg.attach_stdin,
            "OpenStderr": e.cfg.attach_stderr,
            "OpenStdout": e.cfg.attach_stdout,
            "CanRemove": false,
            "ContainerID": e.container_id,
            "DetachKeys": e.cfg.detach_keys,
            "Pid": e.pid,
        }))
    }

    /// `POST /containers/{id}/resize`: the pty of a container with Tty.
    pub async fn container_resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let id = self.resolve_id(key)?;
        let rec = self.record(&id)?;
        if !rec.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let req = Request::Resize {
            exec_id: None,
            width,
            height,
        };
        match crate::shim::call(&self.shim_socket(&id), &req).await {
            Ok(Response::Error { message }) => Err(Error::Internal(message)),
            Ok(_) => Ok(()),
            Err(x) => Err(Error::Internal(format!("resize: {x}"))),
        }
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let e = self.execs.with(exec_id, |e| e.clone())?;
        if !e.running {
            return Err(Error::Conflict(format!("Exec {exec_id} is not running")));
        }
        let req = Request::Resize {
            exec_id: Some(exec_id.to_string()),
            width,
            height,
        };
        match crate::shim::call(&self.shim_socket(&e.container_id), &req).await {
            Ok(Response::Error { message }) => Err(Error::Internal(message)),
            Ok(_) => Ok(()),
            Err(x) => Err(Error::Internal(format!("resize: {x}"))),
        }
    }
}

async fn send(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    kind: FrameKind,
    body: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.extend_from_slice(&frame_header(kind, body.len() as u32));
    buf.extend_from_slice(body);
    w.write_all(&buf).await
}

async fn recv(
    r: &mut tokio::net::unix::OwnedReadHalf,
) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = parse_frame_header(&h).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame from shim")
    })?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(Some((kind, body)))
}

/// The runtime's exec failure in dockerd's words where we know them.
fn docker_exec_error(msg: &str) -> String {
    // libcontainer: "executable 'X' not found in $PATH".
    if let Some(rest) = msg.split("executable '").nth(1) {
        if let Some((name, tail)) = rest.split_once('\'') {
            if tail.starts_with(" not found") {
                return format!(
                    "exec failed: unable to start container process: exec: \"{name}\": executable file not found in $PATH: unknown"
                );
            }
        }
    }
    if let Some(rest) = msg.split("executable '").nth(1) {
        if let Some((name, tail)) = rest.split_once('\'') {
            if tail.contains("does not have correct permissions") {
                return format!(
                    "exec failed: unable to start container process: exec: \"{name}\": permission denied: unknown"
                );
            }
        }
    }
    let first = msg.lines().next().unwrap_or(msg);
    if first.starts_with("exec failed") {
        return format!("{first}: unknown");
    }
    format!("exec failed: unable to start container process: {first}: unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_like_dockerd() {
        let m = "exec in container x: failed to create container: exec process failed with error error in executing process : executable 'nope' not found in $PATH: again";
        assert_eq!(
            docker_exec_error(m),
            "exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown"
        );
        assert_eq!(start_error_code(&docker_exec_error(m)), 126);
    }
}
