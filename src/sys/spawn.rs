//! Starting programs: a vfork-like clone into a process group of their own with an
//! environment built by the caller, and a new session for those started through
//! `std::process::Command`.
// unsafe for the pre_exec hook, and for the clone and what its child does before exec, which
// no wrapper offers (nix's clone takes no CLONE_VFORK child that may only make system calls).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

/// Makes the child start a new session (no controlling terminal, its own process group), so
/// that it survives its parent, a closed terminal and the parent's process group being killed.
pub fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs between fork and exec, where only async-signal-safe calls may be
    // made: setsid(2) is one, and its error becomes an io::Error without allocating.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
}

/// What `spawn` starts: a program by path, its arguments and whole environment, and the
/// descriptors that become its standard streams.
pub struct Spawn<'a> {
    /// The program's path (no PATH lookup here).
    pub path: &'a CStr,
    /// Every argument, the program's name first.
    pub argv: &'a [&'a CStr],
    /// Every `KEY=value` of the environment.
    pub envp: &'a [&'a CStr],
    /// The directory the program starts in (`None`: this process's).
    pub cwd: Option<&'a CStr>,
    /// For stdin, stdout and stderr: the descriptor to give, or `None` to pass ours on.
    pub stdio: [Option<RawFd>; 3],
}

/// A signal's bit in a mask of signals (bit `n - 1` for signal `n`).
const fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The signals whose handlers this process installs or may install (tokio's for SIGINT,
/// SIGTERM and SIGHUP, and SIGCHLD for `tokio::process`; ours for SIGXFSZ), and SIGPIPE,
/// which the standard library ignores: a child starts with them at their defaults.
const RESET_ALWAYS: u64 = bit(libc::SIGHUP)
    | bit(libc::SIGINT)
    | bit(libc::SIGTERM)
    | bit(libc::SIGCHLD)
    | bit(libc::SIGPIPE)
    | bit(libc::SIGXFSZ);

/// The signals a child resets to their defaults before its exec: `RESET_ALWAYS`, and any other
/// signal that had a handler when the first job started. posix_spawn instead asks about and
/// sets all 64 signals in every child (120 system calls, a tenth of a trivial job's cost here);
/// an ignored signal stays ignored, as it does there.
fn reset_set() -> u64 {
    static SET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        let mut set = RESET_ALWAYS;
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: with a null new action, sigaction only reads the current one into `old`.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            let got = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            if got == 0 && old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                set |= bit(sig);
            }
        }
        set
    })
}

/// The bytes of the kernel's signal set (`rt_sigprocmask` takes its size, not libc's).
const KERNEL_SIGSET: usize = 8;

/// Sets this thread's signal mask through the system call itself: glibc's wrapper leaves its
/// own signals out, and a child sharing our memory must not run any handler before its exec.
fn set_mask(how: libc::c_int, set: &libc::sigset_t, old: *mut libc::sigset_t) -> libc::c_long {
    // SAFETY: `set` is a whole sigset_t and `old` is null or one; the kernel reads and writes
    // only KERNEL_SIGSET bytes of them.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, KERNEL_SIGSET) }
}

/// What the child reads between its clone and its exec, all made by the parent beforehand:
/// the child shares the parent's memory and may only make system calls (no allocation, no
/// lock), and writes nothing but `error`.
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: Option<*const libc::c_char>,
    stdio: [Option<RawFd>; 3],
    reset: u64,
    /// The errno of the step that failed, for the parent (0: the exec happened).
    error: std::sync::atomic::AtomicI32,
}

/// The child's side of `spawn`: its process group, signals, streams and directory, then exec.
/// Runs on its own stack in the parent's memory (CLONE_VM), with every signal blocked.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildArgs, which lives until the exec or the exit (the
    // parent is suspended until then, CLONE_VFORK); each call below is a thin system call.
    unsafe {
        let a = &*(arg as *const ChildArgs);
        let fail = || -> ! {
            let e = *libc::__errno_location();
            a.error
                .store(e.max(1), std::sync::atomic::Ordering::Relaxed);
            libc::_exit(127)
        };
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=64 {
            if a.reset & bit(sig) != 0 {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail();
        }
        for (target, fd) in a.stdio.iter().enumerate() {
            let Some(fd) = *fd else { continue };
            let target = target as RawFd;
            // dup2 onto itself keeps close-on-exec set: cleared instead, as posix_spawn does.
            let done = match fd == target {
                true => libc::fcntl(fd, libc::F_SETFD, 0),
                false => libc::dup2(fd, target),
            };
            if done < 0 {
                fail();
            }
        }
        if let Some(dir) = a.cwd
            && libc::chdir(dir) != 0
        {
            fail();
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        set_mask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        fail()
    }
}

/// The child's stack: one per thread that spawns, reused (the thread waits in `clone` until
/// the child has exec'd or exited, CLONE_VFORK).
const STACK_BYTES: usize = 64 * 1024;

thread_local! {
    static STACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A null-terminated array of the strings' pointers, as execve takes them.
fn pointers(strings: &[&CStr]) -> Vec<*const libc::c_char> {
    let mut v: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

/// Starts a program in a new process group of its own, with the signal mask empty and
/// SIGPIPE and SIGXFSZ (among others, `reset_set`) at their defaults, and an environment built
/// by the caller: `std::process::Command` copies this process's whole environment at every
/// spawn that sets a variable, and every job sets some. Like posix_spawn it clones with
/// CLONE_VM and CLONE_VFORK (no copy of our memory) and reports a failed exec as an error,
/// with the child reaped. Returns the pid.
pub fn spawn(s: &Spawn<'_>) -> io::Result<u32> {
    let argv = pointers(s.argv);
    let envp = pointers(s.envp);
    let args = ChildArgs {
        path: s.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: s.cwd.map(CStr::as_ptr),
        stdio: s.stdio,
        reset: reset_set(),
        error: std::sync::atomic::AtomicI32::new(0),
    };
    let pid = STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        stack.resize(STACK_BYTES, 0);
        // The stack grows down from its end, which must be 16-byte aligned.
        let top = (stack.as_mut_ptr() as usize + STACK_BYTES) & !15;
        // SAFETY: a zeroed sigset_t is a valid one, filled by sigfillset.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigfillset(&mut all) };
        set_mask(libc::SIG_BLOCK, &all, &mut old);
        // SAFETY: the child runs `child_main` on `stack` (ours alone until clone returns)
        // with `args`, which outlive it: clone returns once the child has exec'd or exited.
        let pid = unsafe {
            libc::clone(
                child_main,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &args as *const ChildArgs as *mut libc::c_void,
            )
        };
        let clone_error = io::Error::last_os_error();
        set_mask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            Err(clone_error)
        } else {
            Ok(pid as u32)
        }
    })?;
    match args.error.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Ok(pid),
        e => {
            let _ = super::wait::wait_blocking(pid);
            Err(io::Error::from_raw_os_error(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    /// Runs `sh -c script` through `spawn` in `cwd` with stdout on a pipe: (output, status).
    fn run_sh(script: &CStr, cwd: Option<&CStr>) -> (String, std::process::ExitStatus) {
        let (mut r, w) = std::io::pipe().unwrap();
        let argv = [c"sh", c"-c", script];
        let pid = spawn(&Spawn {
            path: c"/bin/sh",
            argv: &argv,
            envp: &[c"ONLY=me"],
            cwd,
            stdio: [None, Some(w.as_raw_fd()), None],
        })
        .unwrap();
        drop(w);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        (out, super::super::wait::wait_blocking(pid).unwrap())
    }

    #[test]
    fn a_child_starts_in_its_directory_group_and_environment_with_no_signal_blocked_or_ignored() {
        // This test process ignores SIGPIPE (the standard library does), and `spawn` blocks
        // every signal around the clone: neither may reach the child.
        let dir = tempfile::tempdir().unwrap();
        let cdir = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let script = c"pwd; echo \"$ONLY:$HOME\"; echo $(( $$ == $(ps -o pgid= -p $$) )); \
            exec grep -E '^Sig(Blk|Ign)' /proc/self/status";
        let (out, status) = run_sh(script, Some(&cdir));
        let real = dir.path().canonicalize().unwrap();
        let (head, sigs) = out.split_at(out.find("SigBlk").unwrap());
        assert_eq!(head, format!("{}\nme:\n1\n", real.display()));
        // The standard signals (1 to 31); glibc's own (32 and 33) are left as they were.
        let standard = |line: &str| u64::from_str_radix(&line[8..], 16).unwrap() & 0x7fff_ffff;
        let lines: Vec<&str> = sigs.lines().collect();
        assert_eq!(lines.len(), 2, "{sigs}");
        assert_eq!(standard(lines[0]), 0, "blocked: {sigs}");
        assert_eq!(standard(lines[1]), 0, "ignored: {sigs}");
        assert!(status.success());
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_with_no_child_left() {
        let e = spawn(&Spawn {
            path: c"/nonexistent/program",
            argv: &[c"program"],
            envp: &[],
            cwd: None,
            stdio: [None, None, None],
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = run_err(c"/nonexistent/dir");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    fn run_err(cwd: &CStr) -> io::Error {
        spawn(&Spawn {
            path: c"/bin/true",
            argv: &[c"true"],
            envp: &[],
            cwd: Some(cwd),
            stdio: [None, None, None],
        })
        .unwrap_err()
    }
}
