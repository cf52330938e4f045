//! The few libc calls the standard library does not wrap.
// unsafe is needed only for these FFI calls; each is a plain syscall with no pointers kept.
#![allow(unsafe_code)]

use std::io;

/// Sends `sig` to every process of the process group `pgid`.
/// Returns Ok(false) when the group no longer exists.
pub fn killpg(pgid: u32, sig: i32) -> io::Result<bool> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal group <= 1",
        ));
    }
    // SAFETY: kill(2) with a negative pid only sends a signal; no memory is shared.
    let rc = unsafe { libc::kill(-(pgid as libc::pid_t), sig) };
    if rc == 0 {
        Ok(true)
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }
}

/// Sends `sig` to one process.
pub fn kill(pid: u32, sig: i32) -> io::Result<bool> {
    // SAFETY: as above.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(true)
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }
}

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGINT: i32 = libc::SIGINT;
pub const SIGHUP: i32 = libc::SIGHUP;
