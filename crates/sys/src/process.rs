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

/// Replace this process's command line (`/proc/self/cmdline`, what `ps`
/// and `pgrep -f` show) in place: the new arguments, NUL separated, are
/// written over the original argv area and the rest of it is zeroed. The
/// area cannot grow (`PR_SET_MM` needs CAP_SYS_RESOURCE), so the process
/// must have been started with enough room; returns false, changing
/// nothing, when the new line does not fit.
pub fn rewrite_cmdline(args: &[&std::ffi::OsStr]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some((start, end)) = argv_area() else {
        return false;
    };
    let mut line = Vec::new();
    for a in args {
        line.extend_from_slice(a.as_bytes());
        line.push(0);
    }
    let room = end.saturating_sub(start);
    if line.is_empty() || line.len() > room {
        return false;
    }
    line.resize(room, 0);
    // SAFETY: [start, end) is this process's argv string area on its
    // initial stack (from /proc/self/stat), mapped read-write for the
    // process's whole life; only the raw argv pointers refer to it, and we
    // write exactly `room` bytes inside it.
    unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), start as *mut u8, room) };
    true
}

/// `arg_start` and `arg_end` of this process (fields 48 and 49 of
/// /proc/self/stat).
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: field 3 first.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

#[cfg(test)]
mod cmdline_tests {
    #[test]
    fn argv_area_holds_this_processes_arguments() {
        let (start, end) = super::argv_area().expect("argv area");
        let on_file = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(end - start, on_file.len());
    }
}
