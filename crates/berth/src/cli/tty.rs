//! Terminal helpers for attach/exec/run: raw mode, size, stdin reading.

use std::io::Read;
use std::os::fd::AsFd;

use nix::sys::termios::{self, SetArg, Termios};
use tokio::sync::mpsc;

/// The terminal size of stdout (or stdin): `(height, width)`.
pub fn size() -> Option<(u16, u16)> {
    berth_sys::term::window_size(&std::io::stdout())
        .or_else(|| berth_sys::term::window_size(&std::io::stdin()))
}

/// Raw mode on stdin while alive (restored on drop).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// `None` when stdin is not a terminal.
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Read stdin on a plain thread (not tokio's blocking pool, whose shutdown
/// would wait for a read that never returns); the channel closes at EOF.
pub fn stdin_reader() -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
    rx
}

/// Send our terminal size to `resize_path` (`/containers/{id}/resize` or
/// `/exec/{id}/resize`) now and on every SIGWINCH.
pub fn spawn_resize(client: berth_api::client::Client, resize_path: String) {
    tokio::spawn(async move {
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        loop {
            if let Some((h, w)) = size() {
                let _ = client
                    .call(
                        hyper::Method::POST,
                        &format!("{resize_path}?h={h}&w={w}"),
                        berth_api::client::empty(),
                        None,
                    )
                    .await;
            }
            match winch.as_mut() {
                Some(s) => {
                    if s.recv().await.is_none() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
}

/// `--sig-proxy`: forward the usual signals to the container (kill API).
pub fn spawn_sig_proxy(client: berth_api::client::Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, num) in [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = client
                    .call(
                        hyper::Method::POST,
                        &format!("/containers/{id}/kill?signal={num}"),
                        berth_api::client::empty(),
                        None,
                    )
                    .await;
            }
        });
    }
}
