//! Our children's end: a pidfd for the runtime to watch, and waitpid to reap them.
// unsafe only to register the pidfd with tokio, whose contract the OwnedFd keeps.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use rustix::process::{Pid, PidfdFlags, WaitOptions};
use tokio::io::unix::AsyncFd;

/// A descriptor that becomes readable when the process `pid` (our child) ends (pidfd_open,
/// Linux 5.3 and later), registered with the current tokio runtime.
pub fn pidfd_open(pid: u32) -> io::Result<AsyncFd<OwnedFd>> {
    // 0 and numbers past i32::MAX name no process: the kernel's EINVAL, without asking it.
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
    // SAFETY: an OwnedFd stays open, and is the same descriptor, until it is dropped, which
    // only the AsyncFd that owns it does.
    let registered = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
    Ok(registered?)
}

/// waitpid(2) for our child `pid`, again when a signal interrupts it: its status once it has
/// ended (and is reaped), `None` while it runs (with NOHANG). The status is kept raw, as the
/// kernel gave it; rustix, unlike nix, does not decode it (nix fails on a real-time signal).
fn reap(pid: u32, options: WaitOptions) -> io::Result<Option<ExitStatus>> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        match rustix::process::waitpid(Pid::from_raw(raw), options) {
            Ok(found) => return Ok(found.map(|(_, st)| ExitStatus::from_raw(st.as_raw()))),
            Err(e) if e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for our child `pid` to end and reaps it.
pub fn wait_blocking(pid: u32) -> io::Result<ExitStatus> {
    loop {
        // Without NOHANG the kernel reports a child only once it has ended.
        if let Some(status) = reap(pid, WaitOptions::empty())? {
            return Ok(status);
        }
    }
}

/// The status of our child `pid` if it has ended (and reaps it), `None` if it runs.
pub fn try_wait(pid: u32) -> io::Result<Option<ExitStatus>> {
    reap(pid, WaitOptions::NOHANG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Reaped by wait_blocking, the function under test, not by Child::wait.
    #[allow(clippy::zombie_processes)]
    fn a_child_ended_by_a_real_time_signal_keeps_its_raw_status() {
        let child = std::process::Command::new("sh")
            .args(["-c", "kill -s RTMIN $$"])
            .spawn()
            .unwrap();
        let status = wait_blocking(child.id()).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGRTMIN()));
        assert!(matches!(try_wait(child.id()), Err(e) if e.raw_os_error() == Some(libc::ECHILD)));
    }
}
