//! Starting a job's process: posix_spawn with an environment built once, in a process group
//! of its own, and waiting for it through a pidfd.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::sync::oneshot;

use super::path::find_in_path;
use crate::plan::PlannedJob;
use crate::sys;
use crate::text::os_text;

/// What one of a child's standard streams is connected to.
pub(super) enum ChildIo {
    /// This process's own stream.
    Inherit,
    /// /dev/null.
    Null,
    /// A new pipe, whose other end this process keeps (writes for stdin, reads otherwise).
    Piped,
    /// An open file or pipe end, given to the child.
    Fd(std::os::fd::OwnedFd),
}

/// A job's process, just started, with the pipe ends this process keeps.
pub(super) struct Child {
    pub stdin: Option<tokio::net::unix::pipe::Sender>,
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
    pub exit: ChildExit,
}

/// Waits for a child to end and reaps it.
pub(super) struct ChildExit {
    pub pid: u32,
    /// Readable once the child ended (made at the first wait).
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// Without pidfds (Linux before 5.3): how long to sleep before looking again.
    poll_every: Option<Duration>,
    status: Option<std::process::ExitStatus>,
    /// Until then, while the child's pipes are open, their end tells of its end (`wait`).
    watch_pipes_until: std::time::Instant,
    /// A delegated job (`Launch::delegate`): its end comes from the process it runs through,
    /// not from a child of ours.
    ended: Option<oneshot::Receiver<ExitStatus>>,
}

/// How long after its start a job's end is looked for only at the end of its pipes. A pidfd
/// costs a job five system calls and a file (pidfd_open, epoll_ctl twice, close): a tenth of
/// what orchestrate spends on a job that ends at once.
const PIPES_TELL: Duration = Duration::from_millis(20);

impl ChildExit {
    /// The child's exit status, once it ended. Cancel-safe: what it learnt stays here.
    /// `pipes_open`: whether pipes from it are still read; their end (a child that exits
    /// closes them) is then the moment to look, until `PIPES_TELL` after the start (a leftover
    /// may hold them: from then on a pidfd tells).
    pub async fn wait(&mut self, pipes_open: bool) -> std::io::Result<std::process::ExitStatus> {
        if let Some(st) = self.status {
            return Ok(st);
        }
        if let Some(rx) = &mut self.ended {
            // Its sender gone without a word: the worker's task ended (the run is ending).
            let st = rx
                .await
                .unwrap_or(std::process::ExitStatus::from_raw(255 << 8));
            self.status = Some(st);
            return Ok(st);
        }
        if self.pidfd.is_none() && self.poll_every.is_none() {
            if pipes_open && std::time::Instant::now() < self.watch_pipes_until {
                tokio::time::sleep_until(self.watch_pipes_until.into()).await;
            } else if let Some(st) = sys::try_wait(self.pid)? {
                // Usually so once its pipes closed: no pidfd is needed.
                self.status = Some(st);
                return Ok(st);
            }
            match sys::pidfd_open(self.pid) {
                Ok(fd) => self.pidfd = Some(fd),
                Err(_) => self.poll_every = Some(Duration::from_millis(1)),
            }
        }
        loop {
            match &self.pidfd {
                Some(fd) => {
                    let mut ready = fd.readable().await?;
                    if let Some(st) = sys::try_wait(self.pid)? {
                        self.status = Some(st);
                        return Ok(st);
                    }
                    ready.clear_ready();
                }
                None => {
                    if let Some(st) = sys::try_wait(self.pid)? {
                        self.status = Some(st);
                        return Ok(st);
                    }
                    let every = self.poll_every.unwrap_or(Duration::from_millis(1));
                    tokio::time::sleep(every).await;
                    self.poll_every = Some((every * 2).min(Duration::from_millis(50)));
                }
            }
        }
    }
}

impl Drop for ChildExit {
    fn drop(&mut self) {
        // Not waited for to its end (only after an error, or a task given up): reaped by a
        // thread of its own once it ends, so that no zombie stays for the rest of the run.
        if self.status.is_none()
            && self.ended.is_none()
            && self.pid > 0
            && !matches!(sys::try_wait(self.pid), Ok(Some(_)) | Err(_))
        {
            let pid = self.pid;
            let _ = std::thread::Builder::new()
                .name("orchestrate-reap".into())
                .spawn(move || sys::wait_blocking(pid));
        }
    }
}

/// /dev/null, opened once for every job that reads or writes nothing.
fn dev_null() -> std::io::Result<std::os::fd::BorrowedFd<'static>> {
    use std::os::fd::AsFd;
    static NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    if NULL.get().is_none() {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        // Another thread may have set it meanwhile: either file will do.
        let _ = NULL.set(f);
    }
    Ok(NULL.get().expect("set above").as_fd())
}

/// Starts `cmd` (program, arguments, environment changes and directory; its stdio settings
/// are not used) with `io` as its stdin, stdout and stderr, in a new process group. The
/// environment is the inherited one, built once (or none with `env_clear`), with the command's
/// changes applied: `std::process::Command` would copy the whole environment at every spawn.
pub(super) fn spawn_child(
    cmd: &std::process::Command,
    env_clear: bool,
    io: &[ChildIo; 3],
) -> std::io::Result<Child> {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    let changes: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    let path = program_path(cmd, &changes)?;
    let mut args: Vec<CString> = Vec::with_capacity(cmd.get_args().len() + 1);
    args.push(cstr(cmd.get_program())?);
    for a in cmd.get_args() {
        args.push(cstr(a)?);
    }
    let argv: Vec<&CStr> = args.iter().map(CString::as_c_str).collect();
    let set = env_changes(&changes)?;
    let envp = envp(env_clear, &changes, &set);
    // Always a chdir when the job names its directory, also our own: by its path, which a
    // job before it may have removed or made anew.
    let cwd = cmd
        .get_current_dir()
        .map(|d| cstr(d.as_os_str()))
        .transpose()?;

    let (mut child, theirs) = pipes(io)?;
    let null = match io.iter().any(|x| matches!(x, ChildIo::Null)) {
        true => Some(dev_null()?),
        false => None,
    };
    let stdio: [Option<BorrowedFd<'_>>; 3] = std::array::from_fn(|i| match &io[i] {
        ChildIo::Inherit => None,
        ChildIo::Null => null,
        ChildIo::Fd(fd) => Some(fd.as_fd()),
        ChildIo::Piped => theirs[i].as_ref().map(|f| f.as_fd()),
    });
    child.exit.pid = sys::spawn(&sys::Spawn {
        path: &path,
        argv: &argv,
        envp: &envp,
        cwd: cwd.as_deref(),
        stdio: stdio.map(|fd| fd.map(|fd| fd.as_raw_fd())),
    })?;
    // Our copies of the child's ends of new pipes close here (the caller drops the rest), or
    // EOF would never come.
    drop(theirs);
    Ok(child)
}

impl ChildExit {
    /// The job runs through a process that is not its own (`Launch::delegate`).
    pub fn delegated(&self) -> bool {
        self.ended.is_some()
    }

    /// A delegated job's end comes from `ended`; `pid` is the process it runs through.
    pub(super) fn delegate_to(&mut self, pid: u32, ended: oneshot::Receiver<ExitStatus>) {
        self.pid = pid;
        self.ended = Some(ended);
    }
}

/// Why a spawn failed. No exit code goes with it: no process ran to give one (as Python's
/// subprocess raises rather than return a shell's 127).
pub(super) fn spawn_failure(program: &str, cwd: Option<&Path>, e: &std::io::Error) -> String {
    // The directory may have gone since `check_dir` last found it usable.
    if let Some(Err(why)) = cwd.map(check_dir_again) {
        return why;
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("command not found: {program}"),
        std::io::ErrorKind::PermissionDenied => format!("permission denied: {program}"),
        _ => format!("cannot start {program}: {}", crate::text::os_text(e)),
    }
}

fn nul_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "a NUL byte in the command",
    )
}

fn cstr(s: &OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| nul_error())
}

/// The file to execute: the program as given when it has a `/`, else found on the PATH the
/// command sets, else ours (also with `env_clear`, as posix_spawnp would search), else the
/// default one of execvp.
fn program_path(
    cmd: &std::process::Command,
    changes: &[(&OsStr, Option<&OsStr>)],
) -> std::io::Result<CString> {
    let program = cmd.get_program();
    if program.as_bytes().contains(&b'/') {
        return cstr(program);
    }
    static OURS: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    let search = match changes.iter().rev().find(|(k, _)| *k == "PATH") {
        Some((_, Some(v))) => Some(*v),
        Some((_, None)) => None,
        None => OURS.get_or_init(|| std::env::var_os("PATH")).as_deref(),
    };
    let search = search.unwrap_or(OsStr::new("/bin:/usr/bin"));
    match find_in_path(program, search, cmd.get_current_dir()) {
        Some(p) => cstr(p.as_os_str()),
        None => Err(std::io::ErrorKind::NotFound.into()),
    }
}

/// `NAME=value` for each variable the command sets.
fn env_changes(changes: &[(&OsStr, Option<&OsStr>)]) -> std::io::Result<Vec<CString>> {
    let mut set = Vec::with_capacity(changes.len());
    for (k, v) in changes {
        if let Some(v) = v {
            set.push(crate::environ::env_entry(k, v).map_err(|_| nul_error())?);
        }
    }
    Ok(set)
}

/// The child's environment: the inherited one (unless cleared) less what the command changes,
/// then what it sets.
fn envp<'a>(
    env_clear: bool,
    changes: &[(&OsStr, Option<&OsStr>)],
    set: &'a [CString],
) -> Vec<&'a CStr> {
    let inherited: &'static [(std::ffi::OsString, CString)] = if env_clear {
        &[]
    } else {
        crate::environ::inherited_env()
    };
    let mut envp: Vec<&CStr> = Vec::with_capacity(inherited.len() + set.len());
    envp.extend(
        inherited
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .map(|(_, kv)| kv.as_c_str()),
    );
    envp.extend(set.iter().map(CString::as_c_str));
    envp
}

/// New pipes for the `Piped` streams: our ends registered with the runtime before the spawn,
/// so that nothing can fail once the child runs, and the child's ends to give it.
pub(super) fn pipes(io: &[ChildIo; 3]) -> std::io::Result<(Child, [Option<OwnedFd>; 3])> {
    use std::os::fd::AsRawFd;
    use tokio::net::unix::pipe::{Receiver, Sender};
    let mut theirs: [Option<OwnedFd>; 3] = [None, None, None];
    let mut child = Child {
        stdin: None,
        stdout: None,
        stderr: None,
        exit: ChildExit {
            pid: 0,
            pidfd: None,
            poll_every: None,
            status: None,
            watch_pipes_until: std::time::Instant::now() + PIPES_TELL,
            ended: None,
        },
    };
    for (i, io) in io.iter().enumerate() {
        if !matches!(io, ChildIo::Piped) {
            continue;
        }
        let (r, w) = sys::pipe()?;
        let (mine, child_end) = if i == 0 { (w, r) } else { (r, w) };
        sys::set_nonblocking(mine.as_raw_fd())?;
        match i {
            0 => child.stdin = Some(Sender::from_owned_fd_unchecked(mine)?),
            1 => child.stdout = Some(Receiver::from_owned_fd_unchecked(mine)?),
            _ => child.stderr = Some(Receiver::from_owned_fd_unchecked(mine)?),
        }
        theirs[i] = Some(child_end);
    }
    Ok((child, theirs))
}

/// The job's argv with `{slot}` filled in.
pub(crate) fn argv_for_slot(job: &PlannedJob, slot: usize) -> Vec<String> {
    if !job.argv.iter().any(|w| w.contains("{slot}")) {
        return job.argv.clone();
    }
    let slot = slot.to_string();
    job.argv
        .iter()
        .map(|w| w.replace("{slot}", &slot))
        .collect()
}

/// A job's working directory must be a directory it can use. The last one found usable on
/// this thread is not looked at again (most jobs share one): should it have gone since, the
/// spawn fails, and `check_dir_again` then says why.
pub(super) fn check_dir(cwd: Option<&Path>) -> Result<(), String> {
    thread_local! {
        static USABLE: std::cell::RefCell<Option<std::path::PathBuf>> = const {
            std::cell::RefCell::new(None)
        };
    }
    let Some(dir) = cwd else { return Ok(()) };
    if USABLE.with_borrow(|u| u.as_deref() == Some(dir)) {
        return Ok(());
    }
    check_dir_again(dir)?;
    USABLE.set(Some(dir.to_path_buf()));
    Ok(())
}

/// `check_dir` without the memory of a usable one.
fn check_dir_again(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "working directory {} is not a directory",
            dir.display()
        )),
        Err(e) => Err(format!(
            "working directory {} cannot be used: {}",
            dir.display(),
            os_text(&e)
        )),
    }
}
