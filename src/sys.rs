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
/// orchestrate; caught by a handler that does nothing, the write fails with EFBIG instead and
/// the capture is marked truncated, as for a full disk. Caught rather than ignored: an ignored
/// signal stays ignored in every program started from here, a caught one is reset by exec.
pub fn ignore_file_size_signal() {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: the handler touches no memory, so it is async-signal-safe; sigaction copies the
    // struct, which is fully initialised (zeroed, then its handler and an empty mask).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGXFSZ, &sa, std::ptr::null_mut());
    }
}

/// What `spawn` starts: a program by path, its arguments and whole environment, and the
/// descriptors that become its standard streams.
pub struct Spawn<'a> {
    /// The program's path (no PATH lookup here).
    pub path: &'a std::ffi::CStr,
    /// Every argument, the program's name first.
    pub argv: &'a [&'a std::ffi::CStr],
    /// Every `KEY=value` of the environment.
    pub envp: &'a [&'a std::ffi::CStr],
    /// The directory the program starts in (`None`: this process's).
    pub cwd: Option<&'a std::ffi::CStr>,
    /// For stdin, stdout and stderr: the descriptor to give, or `None` to pass ours on.
    pub stdio: [Option<std::os::fd::RawFd>; 3],
}

type AddChdir =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;

/// posix_spawn_file_actions_addchdir_np, looked up when first needed rather than linked: it
/// came with glibc 2.29, and a binary linked against it would not start on older systems
/// (RHEL 8, common on clusters).
fn addchdir() -> Option<AddChdir> {
    static FUNC: std::sync::OnceLock<Option<AddChdir>> = std::sync::OnceLock::new();
    *FUNC.get_or_init(|| {
        let name = c"posix_spawn_file_actions_addchdir_np";
        // SAFETY: dlsym with a NUL-terminated name only looks the symbol up.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        // SAFETY: when present, the symbol is that function, with this signature.
        (!sym.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, AddChdir>(sym) })
    })
}

/// Whether `spawn` can start a program in another directory (glibc 2.29 and later).
pub fn can_spawn_in_dir() -> bool {
    addchdir().is_some()
}

/// Starts a program in a new process group of its own (`posix_spawn`, which uses vfork, with
/// the signal mask emptied and SIGPIPE and SIGXFSZ reset, as the standard library does for
/// SIGPIPE), with an environment built by the caller: `std::process::Command` copies this
/// process's whole environment at every spawn that sets a variable, and every job sets some.
/// Returns the pid.
pub fn spawn(s: &Spawn<'_>) -> io::Result<u32> {
    use std::mem::MaybeUninit;
    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
    // Destroy the objects where they were initialised (they are opaque: never moved).
    struct Actions(*mut libc::posix_spawn_file_actions_t);
    impl Drop for Actions {
        fn drop(&mut self) {
            // SAFETY: points to an object initialised before this guard was made, which
            // outlives the guard.
            unsafe { libc::posix_spawn_file_actions_destroy(self.0) };
        }
    }
    struct Attr(*mut libc::posix_spawnattr_t);
    impl Drop for Attr {
        fn drop(&mut self) {
            // SAFETY: as above.
            unsafe { libc::posix_spawnattr_destroy(self.0) };
        }
    }
    let chdir = match s.cwd {
        Some(dir) => Some((
            dir,
            addchdir().ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?,
        )),
        None => None,
    };
    let mut argv: Vec<*mut libc::c_char> = Vec::with_capacity(s.argv.len() + 1);
    argv.extend(s.argv.iter().map(|a| a.as_ptr().cast_mut()));
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = Vec::with_capacity(s.envp.len() + 1);
    envp.extend(s.envp.iter().map(|a| a.as_ptr().cast_mut()));
    envp.push(std::ptr::null_mut());
    let mut fa = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: the file actions and attributes are initialised in place before use and
    // destroyed once, by the guards, which are dropped before the objects; every pointer
    // handed to posix_spawn (path, argv, envp, cwd) points to a NUL-terminated string borrowed
    // for this call, and argv and envp end with a null pointer. posix_spawn copies what it
    // needs before returning; the child only execs or exits.
    unsafe {
        check(libc::posix_spawn_file_actions_init(fa.as_mut_ptr()))?;
        let fa = Actions(fa.as_mut_ptr());
        for (target, fd) in s.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                check(libc::posix_spawn_file_actions_adddup2(
                    fa.0,
                    *fd,
                    target as libc::c_int,
                ))?;
            }
        }
        if let Some((dir, addchdir)) = chdir {
            check(addchdir(fa.0, dir.as_ptr()))?;
        }
        check(libc::posix_spawnattr_init(attr.as_mut_ptr()))?;
        let attr = Attr(attr.as_mut_ptr());
        let mut none = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(none.as_mut_ptr());
        check(libc::posix_spawnattr_setsigmask(attr.0, none.as_ptr()))?;
        let mut reset = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(reset.as_mut_ptr());
        libc::sigaddset(reset.as_mut_ptr(), libc::SIGPIPE);
        libc::sigaddset(reset.as_mut_ptr(), libc::SIGXFSZ);
        check(libc::posix_spawnattr_setsigdefault(attr.0, reset.as_ptr()))?;
        check(libc::posix_spawnattr_setpgroup(attr.0, 0))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            attr.0,
            flags as libc::c_short,
        ))?;
        let mut pid: libc::pid_t = 0;
        check(libc::posix_spawn(
            &mut pid,
            s.path.as_ptr(),
            fa.0,
            attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        ))?;
        Ok(pid as u32)
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own; each is then owned once.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// Makes reads and writes on `fd` non-blocking. The flags are set outright (one call, not a
/// read and a write of them): meant for a pipe end just made, whose only flag is its mode.
pub fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) with F_SETFL takes an integer argument and keeps no pointer.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A descriptor that becomes readable when the process `pid` (our child) ends (pidfd_open,
/// Linux 5.3 and later), registered with the current tokio runtime.
pub fn pidfd_open(pid: u32) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes two integers and returns a new descriptor, owned here once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) };
    // SAFETY: an OwnedFd stays open, and is the same descriptor, until it is dropped, which
    // only the AsyncFd that owns it does.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    Ok(registered?)
}

/// One read(2) from `fd` into the capacity of `buf` (cleared first); on a non-blocking
/// descriptor, `WouldBlock` when nothing is there yet.
pub fn read_into(fd: std::os::fd::RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    loop {
        // SAFETY: read(2) writes at most capacity bytes into the vector's own allocation; the
        // length is set to what the kernel reports it wrote.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.capacity()) };
        if n >= 0 {
            // SAFETY: the kernel initialised the first n bytes, n <= capacity.
            unsafe { buf.set_len(n as usize) };
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits for our child `pid` to end and reaps it.
pub fn wait_blocking(pid: u32) -> io::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer we own.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if rc > 0 {
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The status of our child `pid` if it has ended (and reaps it), `None` if it runs.
pub fn try_wait(pid: u32) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer we own.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        match rc {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(std::process::ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
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
