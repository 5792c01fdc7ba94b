//! CVE-2019-5736 guard: re-exec from a sealed memfd copy of our binary, so a
//! container process that opens `/proc/<pid>/exe` cannot overwrite the host
//! binary (the same approach as runc's `cloned_binary` / the pentacle crate).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when `/proc/self/exe` already is a sealed memfd.
fn is_sealed() -> bool {
    let Ok(f) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS on an fd we own; no memory is passed.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// True when our binary sits on a read-only mount (berthd runs us from a
/// read-only bind mount): `/proc/self/exe` cannot be opened for writing.
fn on_readonly_mount() -> bool {
    nix::sys::statvfs::statvfs("/proc/self/exe")
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

/// Re-exec from a sealed copy unless already running from one or from a
/// read-only mount. Returns only when protected (or on error).
pub fn ensure_sealed() -> io::Result<()> {
    if is_sealed() || on_readonly_mount() {
        return Ok(());
    }
    let name = CString::new("berth-runtime").expect("no NUL");
    // SAFETY: valid NUL-terminated name; the returned fd is checked below.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh memfd we exclusively own.
    let mut mem = unsafe { File::from_raw_fd(fd) };
    let mut exe = File::open("/proc/self/exe")?;
    io::copy(&mut exe, &mut mem)?;
    // SAFETY: plain fcntl on our own fd.
    if unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())))
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).to_vec();
            b.push(b'=');
            b.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
            CString::new(b).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that
    // outlive the call; fexecve only returns on failure.
    unsafe { libc::fexecve(mem.as_raw_fd(), argv.as_ptr(), envp.as_ptr()) };
    Err(io::Error::last_os_error())
}
