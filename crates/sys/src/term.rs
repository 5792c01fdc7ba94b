//! Terminal queries for the CLI (`run -t`, `exec -t`, progress bars).

use std::os::fd::AsRawFd;

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// `(rows, columns)` of the terminal on `fd`; None when it is not a
/// terminal or reports a zero size.
pub fn window_size(fd: &impl AsRawFd) -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a `winsize` into `ws`, which lives for
    // the whole call; a bad fd makes it fail with EBADF/ENOTTY.
    let r = unsafe { tiocgwinsz(fd.as_raw_fd(), &mut ws) };
    (r.is_ok() && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_a_terminal() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(super::window_size(&f), None);
    }
}
