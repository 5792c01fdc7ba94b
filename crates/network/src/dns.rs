//! The embedded DNS server of user-defined networks (NET-10, NET-11): one
//! UDP socket per container, bound to 127.0.0.11:53 inside the
//! container's network namespace (the socket is created on a thread that
//! joined the namespace, then served from the daemon's runtime). A, AAAA
//! and ANY questions for container names, network aliases and short IDs
//! on the container's networks are answered locally; everything else is
//! relayed as-is to the upstream servers from the daemon's namespace.
//!
//! Hand-rolled rather than hickory-server: berth needs one question type
//! answered from an in-memory map plus a byte-for-byte relay, which is
//! about 150 lines; hickory's catalog/zone API (0.26, new and changing)
//! would add a large dependency tree for that.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// Answers names for one container.
pub trait Lookup: Send + Sync {
    /// Addresses of `name` (lowercase, no trailing dot) as seen by
    /// container `cid`, or None when the name is not local.
    fn lookup(&self, cid: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;

/// A parsed question: (lowercase name, qtype, end offset of the question).
pub fn parse_question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// The reply to `query` (question ends at `qend`) with `ips` as A records
/// (only for A/ANY questions) and `rcode`.
pub fn answer(query: &[u8], qend: usize, qtype: u16, ips: &[Ipv4Addr], rcode: u8) -> Vec<u8> {
    let ips: &[Ipv4Addr] = if qtype == TYPE_A || qtype == TYPE_ANY {
        ips
    } else {
        &[]
    };
    let mut r = Vec::with_capacity(qend + ips.len() * 16);
    r.extend_from_slice(&query[..2]);
    let rd = query[2] & 0x01;
    r.push(0x80 | 0x04 | rd); // QR, AA, RD copied
    r.push(0x80 | (rcode & 0x0f)); // RA
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&query[12..qend]);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&TYPE_A.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&600u32.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    r
}

/// Serve one container's resolver socket until the task is aborted.
pub async fn serve(
    sock: UdpSocket,
    cid: String,
    upstream: Vec<SocketAddr>,
    lookup: Arc<dyn Lookup>,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        let q = buf[..n].to_vec();
        let Some((name, qtype, qend)) = parse_question(&q) else {
            continue;
        };
        if let Some(ips) = lookup.lookup(&cid, name.trim_end_matches('.')) {
            let reply = if qtype == TYPE_A || qtype == TYPE_AAAA || qtype == TYPE_ANY {
                answer(&q, qend, qtype, &ips, 0)
            } else {
                answer(&q, qend, qtype, &[], 0)
            };
            let _ = sock.send_to(&reply, from).await;
            continue;
        }
        let (sock, upstream) = (sock.clone(), upstream.clone());
        tokio::spawn(async move {
            let reply = match forward(&q, &upstream).await {
                Some(r) => r,
                None => answer(&q, qend, qtype, &[], 2), // SERVFAIL
            };
            let _ = sock.send_to(&reply, from).await;
        });
    }
}

/// Relay a query to the first upstream that answers within 2 seconds.
async fn forward(q: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.send_to(q, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn parses_and_answers() {
        let q = query("Web.Example", TYPE_A);
        let (name, t, end) = parse_question(&q).unwrap();
        assert_eq!((name.as_str(), t, end), ("web.example", TYPE_A, q.len()));
        let r = answer(&q, end, t, &[Ipv4Addr::new(10, 0, 0, 2)], 0);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        let aaaa = answer(&q, end, TYPE_AAAA, &[Ipv4Addr::new(10, 0, 0, 2)], 0);
        assert_eq!(u16::from_be_bytes([aaaa[6], aaaa[7]]), 0);
        assert!(parse_question(&q[..5]).is_none());
    }
}
