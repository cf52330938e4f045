//! Signals: sending them to a process or a process group, and surviving SIGXFSZ.
// unsafe only for sigaction, which nix leaves unsafe because a handler runs at any point.
#![allow(unsafe_code)]

use std::io;

use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGINT: i32 = libc::SIGINT;
pub const SIGHUP: i32 = libc::SIGHUP;

/// The signal a number names; `None` for 0, which only asks whether the target exists. A
/// number nix does not name (a real-time signal, which nothing here sends) is EINVAL, as the
/// kernel answers for a number that is no signal.
fn signal_of(sig: i32) -> io::Result<Option<Signal>> {
    if sig == 0 {
        return Ok(None);
    }
    Ok(Some(Signal::try_from(sig)?))
}

/// Ok(true) once sent, Ok(false) when the target no longer exists.
fn sent(result: nix::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sends `sig` to every process of the process group `pgid`.
/// Returns Ok(false) when the group no longer exists.
pub fn killpg(pgid: u32, sig: i32) -> io::Result<bool> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal group <= 1",
        ));
    }
    let pgid = i32::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "no such process group"))?;
    sent(signal::killpg(Pid::from_raw(pgid), signal_of(sig)?))
}

/// Sends `sig` to one process.
pub fn kill(pid: u32, sig: i32) -> io::Result<bool> {
    if pid <= 1 || pid > i32::MAX as u32 {
        // 0 would mean our own process group, and 1 init: never what a record means.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal pid <= 1",
        ));
    }
    sent(signal::kill(Pid::from_raw(pid as i32), signal_of(sig)?))
}

/// Under a file-size limit (`ulimit -f`), writing past it sends SIGXFSZ, which would kill
/// orchestrate; caught by a handler that does nothing, the write fails with EFBIG instead and
/// the capture is marked truncated, as for a full disk. Caught rather than ignored: an ignored
/// signal stays ignored in every program started from here, a caught one is reset by exec.
pub fn ignore_file_size_signal() {
    extern "C" fn nothing(_: libc::c_int) {}
    let action = SigAction::new(
        SigHandler::Handler(nothing),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler touches no memory, so it is async-signal-safe, and nothing else in
    // this process handles SIGXFSZ, so no handler is replaced under code that counts on it.
    let _ = unsafe { signal::sigaction(Signal::SIGXFSZ, &action) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_zero_only_asks_whether_the_process_is_there() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(kill(child.id(), 0).unwrap());
        assert!(kill(child.id(), SIGKILL).unwrap());
        child.wait().unwrap();
        assert!(!kill(child.id(), 0).unwrap());
        assert!(killpg(1, SIGTERM).is_err());
        assert!(killpg(u32::MAX, SIGTERM).is_err());
    }
}
