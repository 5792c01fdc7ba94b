//! Signal dispositions, set through the raw `rt_sigaction` syscall because
//! glibc refuses its internal real-time signals (32, 33), which a caller may
//! have left ignored.

/// Kernel `struct sigaction` (x86_64/aarch64 layout).
#[repr(C)]
struct KSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

const EMPTY: KSigaction = KSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
};

fn is_ignored(sig: i32) -> bool {
    let mut old = EMPTY;
    // SAFETY: query only; `old` is a valid, writable kernel sigaction and the
    // size argument matches the kernel's sigset (8 bytes).
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            std::ptr::null::<KSigaction>(),
            &mut old as *mut KSigaction,
            8usize,
        )
    };
    r == 0 && old.handler == libc::SIG_IGN
}

fn set(sig: i32, handler: usize) {
    let act = KSigaction { handler, ..EMPTY };
    // SAFETY: installs SIG_DFL or SIG_IGN only, so no handler code ever runs;
    // `act` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &act as *const KSigaction,
            std::ptr::null_mut::<KSigaction>(),
            8usize,
        )
    };
}

/// Set every ignored signal back to SIG_DFL, so processes started from here
/// (container init) do not inherit ignored signals, like runc.
pub fn reset_ignored() {
    for sig in 1..=64 {
        if is_ignored(sig) {
            set(sig, libc::SIG_DFL);
        }
    }
}

/// Ignore `sig` (e.g. SIGPIPE in a process that writes to sockets).
pub fn ignore(sig: i32) {
    set(sig, libc::SIG_IGN);
}

#[cfg(test)]
mod tests {
    #[test]
    fn ignore_then_reset() {
        super::ignore(libc::SIGUSR2);
        assert!(super::is_ignored(libc::SIGUSR2));
        super::reset_ignored();
        assert!(!super::is_ignored(libc::SIGUSR2));
    }
}
