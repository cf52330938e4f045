//! Starting programs: posix_spawn into a process group of their own with an environment built
//! by the caller, and a new session for those started through `std::process::Command`.
// unsafe for the pre_exec hook, and for the one spawn call nix does not wrap (addchdir_np,
// found with dlsym).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

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

type AddChdir =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;

/// posix_spawn_file_actions_addchdir_np, which nix does not wrap, looked up when first needed
/// rather than linked: it came with glibc 2.29, and a binary linked against it would not start
/// on older systems (RHEL 8, common on clusters).
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

// The cast in `add_chdir` relies on nix's wrapper being the libc object and nothing more.
const _: () = assert!(
    size_of::<PosixSpawnFileActions>() == size_of::<libc::posix_spawn_file_actions_t>()
        && align_of::<PosixSpawnFileActions>() == align_of::<libc::posix_spawn_file_actions_t>()
);

/// Adds "change to `dir`" to nix's file actions, through the libc object they wrap.
fn add_chdir(
    actions: &mut PosixSpawnFileActions,
    dir: &CStr,
    addchdir: AddChdir,
) -> io::Result<()> {
    let raw = (actions as *mut PosixSpawnFileActions).cast::<libc::posix_spawn_file_actions_t>();
    // SAFETY: nix 0.31 declares PosixSpawnFileActions #[repr(transparent)] over an initialised
    // posix_spawn_file_actions_t (same size and alignment, checked above), so `raw` points to
    // that object, borrowed mutably for this call; `dir` is NUL-terminated and glibc copies it.
    let rc = unsafe { addchdir(raw, dir.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// A process group of its own, no signal blocked, and SIGPIPE and SIGXFSZ at their defaults
/// (this process catches SIGXFSZ and the runtime ignores SIGPIPE).
fn attributes() -> io::Result<PosixSpawnAttr> {
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut reset = SigSet::empty();
    reset.add(Signal::SIGPIPE);
    reset.add(Signal::SIGXFSZ);
    attr.set_sigdefault(&reset)?;
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    Ok(attr)
}

/// Starts a program in a new process group of its own (`posix_spawn`, which uses vfork, with
/// the signal mask emptied and SIGPIPE and SIGXFSZ reset, as the standard library does for
/// SIGPIPE), with an environment built by the caller: `std::process::Command` copies this
/// process's whole environment at every spawn that sets a variable, and every job sets some.
/// Returns the pid.
pub fn spawn(s: &Spawn<'_>) -> io::Result<u32> {
    let chdir = match s.cwd {
        Some(dir) => Some((
            dir,
            addchdir().ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?,
        )),
        None => None,
    };
    let mut actions = PosixSpawnFileActions::init()?;
    for (target, fd) in s.stdio.iter().enumerate() {
        if let Some(fd) = *fd {
            actions.add_dup2(fd, target as RawFd)?;
        }
    }
    if let Some((dir, addchdir)) = chdir {
        add_chdir(&mut actions, dir, addchdir)?;
    }
    let attr = attributes()?;
    let pid = posix_spawn(s.path, &actions, &attr, s.argv, s.envp)?;
    Ok(pid.as_raw() as u32)
}
