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
