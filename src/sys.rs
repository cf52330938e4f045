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
    if pid <= 1 || pid > i32::MAX as u32 {
        // 0 would mean our own process group, and 1 init: never what a record means.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal pid <= 1",
        ));
    }
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

/// Makes the child start a new session (no controlling terminal, its own process group), so
/// that it survives its parent, a closed terminal and the parent's process group being killed.
pub fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Start time of a process in clock ticks since boot, to tell it from a later one with the
/// same pid.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process is a zombie or gone.
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
            matches!(state.as_deref(), Some("Z") | Some("X"))
        }
        Err(_) => true,
    }
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and takes no arguments.
    unsafe { libc::geteuid() == 0 }
}

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), so that
/// processes a job detached from its group still end up as our children, where a sweep finds
/// them.
pub fn become_subreaper() -> bool {
    // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
}

/// Our child processes (from /proc), for sweeping orphans that were reparented to us.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        let state = f.next();
        let ppid = f.next().and_then(|x| x.parse::<u32>().ok());
        if ppid == Some(pid) && state != Some("Z") {
            out.push(p);
        }
    }
    out
}

/// The process group of a process (field 5 of /proc/PID/stat).
pub fn process_group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Under a file-size limit (`ulimit -f`), writing past it sends SIGXFSZ, which would kill
/// orchestrate; ignored, the write fails with EFBIG instead and the capture is marked truncated,
/// as for a full disk.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN involves no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Sets the capacity of a pipe (F_SETPIPE_SZ); the kernel rounds it up to a power of two pages.
pub fn set_pipe_size(fd: std::os::fd::RawFd, size: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pipe size too large"))?;
    // SAFETY: fcntl(2) with F_SETPIPE_SZ takes an integer argument and keeps no pointer.
    if unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
