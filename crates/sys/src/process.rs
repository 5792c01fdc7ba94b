//! Process liveness checks.

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// True if a process with this pid exists (signal 0 succeeds or is denied).
pub fn is_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match kill(Pid::from_raw(pid as i32), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_is_alive_and_pid_zero_is_not() {
        assert!(super::is_alive(std::process::id()));
        assert!(!super::is_alive(0));
    }
}

/// Cap glibc's malloc arenas (one per thread by default, up to 8 per core):
/// a daemon whose worker and blocking threads each keep an arena of freed
/// buffers grows by megabytes for nothing. Call before threads start.
pub fn limit_malloc_arenas(n: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called from the
    // single-threaded start of main.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = n;
}
