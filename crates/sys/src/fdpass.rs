//! One message and one file descriptor over a `SOCK_SEQPACKET` unix socket
//! (SCM_RIGHTS): how berthd hands a reply socket to the shim launcher.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// A connected `SOCK_SEQPACKET` pair, both ends close-on-exec.
pub fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// A connected `SOCK_STREAM` pair, both ends close-on-exec.
pub fn stream_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Send `data` (one packet) with `fd` attached.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let n = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(data)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != data.len() {
        return Err(std::io::Error::other("short send"));
    }
    Ok(())
}

/// Receive one packet and the fd sent with it (close-on-exec). `Ok(None)`
/// at end of stream (the peer closed its end).
pub fn recv_with_fd(
    sock: BorrowedFd<'_>,
    max: usize,
) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; max];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (len, fd, truncated) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fd = None;
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: SCM_RIGHTS installed `raw` in this
                            // process just now; nothing else owns it.
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            if fd.is_none() {
                                fd = Some(owned);
                            }
                        }
                    }
                }
                break (msg.bytes, fd, msg.flags.contains(MsgFlags::MSG_TRUNC));
            }
        }
    };
    if len == 0 && fd.is_none() {
        return Ok(None);
    }
    if truncated {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    buf.truncate(len);
    Ok(Some((buf, fd)))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_message_and_its_fd_cross_the_socket() {
        let (a, b) = super::seqpacket_pair().unwrap();
        let (x, y) = super::stream_pair().unwrap();
        super::send_with_fd(a.as_fd(), b"/some/config.json", y.as_fd()).unwrap();
        drop(y);
        let (msg, fd) = super::recv_with_fd(b.as_fd(), 4096).unwrap().unwrap();
        assert_eq!(msg, b"/some/config.json");
        let mut got = std::fs::File::from(fd.expect("fd"));
        got.write_all(b"ready\n").unwrap();
        drop(got);
        let mut s = String::new();
        std::fs::File::from(x).read_to_string(&mut s).unwrap();
        assert_eq!(s, "ready\n");
        drop(a);
        assert!(
            super::recv_with_fd(b.as_fd(), 4096).unwrap().is_none(),
            "EOF"
        );
    }
}
