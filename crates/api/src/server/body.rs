//! Request bodies read by blocking code (load, import, `cp` into a
//! container): an async task drains the body and hands it over in chunks of
//! up to 1 MiB, so the blocking reader wakes once per chunk instead of once
//! per HTTP frame (per-frame hand-offs made `load` spend most of its time
//! switching threads).

use std::io::{self, Read};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;

const CHUNK: usize = 1 << 20;

/// A blocking `Read` over `body`. Must be created inside the runtime and
/// read from a blocking thread (`spawn_blocking`).
pub fn blocking_reader(body: Body) -> Box<dyn Read + Send> {
    blocking_reader_with_pump(body).0
}

/// `blocking_reader`, and the pump task, which ends when the whole body was
/// read (also when the reader gave up early).
pub fn blocking_reader_with_pump(
    body: Body,
) -> (Box<dyn Read + Send>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let pump = tokio::spawn(async move {
        let mut data = body.into_data_stream();
        let mut buf = BytesMut::with_capacity(CHUNK);
        // Once the reader is gone (it failed early), keep draining: answering
        // while the client still writes would cut it off with EPIPE.
        let mut open = true;
        while let Some(frame) = data.next().await {
            match frame {
                Ok(b) if open => {
                    buf.extend_from_slice(&b);
                    if buf.len() >= CHUNK && tx.send(Ok(buf.split().freeze())).await.is_err() {
                        open = false;
                        buf.clear();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
            }
        }
        if open && !buf.is_empty() {
            let _ = tx.send(Ok(buf.freeze())).await;
        }
    });
    let reader: Box<dyn Read + Send> = Box::new(ChunkReader {
        rx,
        cur: Bytes::new(),
    });
    (reader, pump)
}

struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_the_whole_body_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let body = Body::from(data.clone());
        let mut r = blocking_reader(body);
        let got = tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, data);
    }
}
