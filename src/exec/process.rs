//! The process layer: start one job, drain its pipes into capture files while waiting for it,
//! enforce its timeout and cancellation on its whole process group, and make its record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Cancel, Event, EventSink, Stream, wrap};
use crate::plan::{Input, PlannedJob, Target};
use crate::record::{CompletedProcess, Status, StoredOutput};
use crate::sys;

/// How long to keep reading a pipe after the job's own process exited: a process the job left
/// behind (`sleep 60 &`) may hold it open, and the run must not hang on it.
pub const PIPE_GRACE: Duration = Duration::from_millis(300);

const READ_BUF: usize = 64 * 1024;

/// Builds the OS command for a job. The seam where other back ends (ssh, Slurm) plug in: they
/// wrap the job's argv in their own client command; the rest of the process layer is shared.
pub trait Launcher: Send + Sync {
    /// `argv` is the job's argv with run-time placeholders (`{slot}`) filled in.
    fn command(&self, job: &PlannedJob, argv: &[String]) -> std::process::Command;
    /// The host the job runs on, for the record.
    fn host(&self) -> Option<String> {
        None
    }
    /// Remote back ends run the job under `exec::wrap`'s script, whose control lines start
    /// with this marker; `None`: the command is the job's own process.
    fn marker(&self) -> Option<&str> {
        None
    }
    /// Whether the job's `cwd` is a directory on the remote side (ssh) rather than the client's
    /// working directory here (Slurm, whose jobs start in the directory `srun` runs in).
    fn remote_cwd(&self) -> bool {
        false
    }
    /// Whether TERM goes to the local client too when the job is stopped. ssh: no, the remote
    /// kill does it, and the client must stay to bring the job's last output back.
    fn term_locally(&self) -> bool {
        true
    }
    /// A command that sends `signal` to the remote job (`ssh host kill`, `scancel`).
    fn stop_command(
        &self,
        _control: &wrap::Control,
        _signal: i32,
    ) -> Option<std::process::Command> {
        None
    }
    /// Why the job has no exit status from the wrapper: the client's own failure.
    fn failure(&self, control: &wrap::Control, status: Option<std::process::ExitStatus>) -> String {
        let early = control.early_text();
        format!(
            "the remote client failed ({}){}",
            status.map_or("no status".into(), |s| s.to_string()),
            if early.is_empty() {
                String::new()
            } else {
                format!(": {early}")
            }
        )
    }
}

/// Runs jobs as child processes of this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Launcher for Local {
    fn command(&self, _job: &PlannedJob, argv: &[String]) -> std::process::Command {
        // A bare name is looked up at spawn, in the PATH the job gets (`spawn_child`).
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// Found programs by PATH value, then by name.
type ProgramCache = std::sync::Mutex<
    std::collections::HashMap<
        std::ffi::OsString,
        std::collections::HashMap<std::ffi::OsString, PathBuf>,
    >,
>;

/// Where a bare program name is found, as execvp looks: in each directory of `search` in turn
/// (an empty entry is the current directory, and relative entries are taken from `cwd`, the
/// child's directory), the first executable file. A found path is remembered per distinct
/// (PATH, program) when every entry is absolute, so that a stream of trivial jobs does not
/// look at each entry for every spawn; a miss is looked up again the next time (an earlier job
/// may install the program).
fn find_in_path(
    program: &std::ffi::OsStr,
    search: &std::ffi::OsStr,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    static CACHE: std::sync::OnceLock<ProgramCache> = std::sync::OnceLock::new();
    if program.is_empty() {
        return None;
    }
    let entries = search.as_bytes().split(|&b| b == b':');
    let cacheable = entries.clone().all(|d| d.first() == Some(&b'/'));
    let cache = CACHE.get_or_init(Default::default);
    if cacheable
        && let Some(hit) = cache
            .lock()
            .expect("cache lock")
            .get(search)
            .and_then(|m| m.get(program))
    {
        return Some(hit.clone());
    }
    let found = entries.into_iter().find_map(|dir| {
        let dir = Path::new(std::ffi::OsStr::from_bytes(if dir.is_empty() {
            b"."
        } else {
            dir
        }));
        let candidate = match cwd {
            Some(cwd) if dir.is_relative() => cwd.join(dir).join(program),
            _ => dir.join(program),
        };
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })?;
    if cacheable {
        cache
            .lock()
            .expect("cache lock")
            .entry(search.to_owned())
            .or_default()
            .insert(program.to_owned(), found.clone());
    }
    Some(found)
}

/// Where capture files go: `<root>/<job dir>/stdout|stderr`, created only when a job writes.
#[derive(Debug, Clone)]
pub struct CaptureRoot(pub PathBuf);

impl CaptureRoot {
    pub fn path(&self, job: &str, stream: Stream) -> PathBuf {
        self.0.join(job_dir_name(job)).join(stream.as_str())
    }
}

/// A job name as one safe path component: no `/`, no leading dot, no control characters.
pub fn job_dir_name(job: &str) -> String {
    let mut out = String::with_capacity(job.len());
    for (i, c) in job.chars().enumerate() {
        match c {
            '/' | '\\' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            '.' if i == 0 => out.push_str("%2E"),
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// What one job's execution needs from the scheduler.
#[derive(Clone)]
pub struct JobCtx {
    pub slot: usize,
    pub capture: CaptureRoot,
    pub events: EventSink,
    pub forward_output: bool,
    pub cancel: watch::Receiver<Cancel>,
    pub launcher: std::sync::Arc<dyn Launcher>,
    /// Extra environment for every job (ORCHESTRATE_RUN and friends).
    pub extra_env: Vec<(String, String)>,
    /// Values redacted from output and records.
    pub secrets: std::sync::Arc<Vec<String>>,
}

/// One output stream being drained into its capture file.
struct Drain {
    stream: Stream,
    path: PathBuf,
    file: Option<File>,
    bytes: u64,
    error: Option<String>,
    partial: Vec<u8>,
    redactor: Option<Redactor>,
    cap: Option<Cap>,
    /// Set when max_output dropped bytes.
    truncated: Option<String>,
    sink: Sink,
    /// Strips a remote wrapper's control lines (stderr of remote jobs).
    filter: Option<wrap::ControlFilter>,
}

/// `max_output`: the head goes to the file as it comes; the tail waits in memory (at most
/// 4 MiB) until the job ends.
struct Cap {
    head_limit: u64,
    head_written: u64,
    tail_limit: usize,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Cap {
    fn new(max: u64) -> Cap {
        let tail_limit = (max / 2).min(4 << 20) as usize;
        Cap {
            head_limit: max - tail_limit as u64,
            head_written: 0,
            tail_limit,
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }
}

/// Where a drain writes.
enum Sink {
    /// A capture file, created on the first byte.
    Capture,
    /// The job's own target (a file, or orchestrate's stderr): remote jobs' stderr passes
    /// through here to have its control lines removed.
    Own(File),
    Discard,
}

/// Replaces secret values in a byte stream, also across chunk boundaries.
struct Redactor {
    secrets: std::sync::Arc<Vec<String>>,
    carry: Vec<u8>,
}

pub const REDACTED: &[u8] = b"[REDACTED]";

impl Redactor {
    fn feed(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut p = 0;
        'scan: while p < buf.len() {
            let rest = &buf[p..];
            for s in self.secrets.iter() {
                let s = s.as_bytes();
                if rest.starts_with(s) {
                    out.extend_from_slice(REDACTED);
                    p += s.len();
                    continue 'scan;
                }
                if !last && rest.len() < s.len() && s.starts_with(rest) {
                    // Maybe the start of a secret that the next chunk completes.
                    self.carry = rest.to_vec();
                    break 'scan;
                }
            }
            out.push(buf[p]);
            p += 1;
        }
        out
    }
}

/// Replaces secret values in text (records, error messages).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        if t.contains(s.as_str()) {
            t = t.replace(s.as_str(), "[REDACTED]");
        }
    }
    t
}

impl Drain {
    fn new(
        stream: Stream,
        path: PathBuf,
        secrets: &std::sync::Arc<Vec<String>>,
        max_output: Option<u64>,
    ) -> Self {
        Drain {
            stream,
            path,
            file: None,
            bytes: 0,
            error: None,
            partial: Vec::new(),
            cap: max_output.map(Cap::new),
            truncated: None,
            redactor: (!secrets.is_empty()).then(|| Redactor {
                secrets: secrets.clone(),
                carry: Vec::new(),
            }),
            sink: Sink::Capture,
            filter: None,
        }
    }

    /// Writes a chunk as it should be kept (control lines removed, secrets redacted); returns
    /// those bytes.
    fn write<'a>(&mut self, chunk: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        let chunk: Cow<'a, [u8]> = match &mut self.filter {
            Some(f) => Cow::Owned(f.feed(chunk, false)),
            None => Cow::Borrowed(chunk),
        };
        self.bytes += chunk.len() as u64;
        let kept: Cow<'a, [u8]> = match &mut self.redactor {
            Some(r) => Cow::Owned(r.feed(&chunk, false)),
            None => chunk,
        };
        self.store(&kept);
        kept
    }

    /// Writes what the filter and the redactor still hold at the end of the stream.
    fn finish(&mut self) -> Vec<u8> {
        let tail = match &mut self.filter {
            Some(f) => f.feed(&[], true),
            None => Vec::new(),
        };
        self.bytes += tail.len() as u64;
        let rest = match &mut self.redactor {
            Some(r) if !r.carry.is_empty() || !tail.is_empty() => r.feed(&tail, true),
            _ => tail,
        };
        self.store(&rest);
        // With max_output: the kept tail goes after the head, behind a marker if bytes were dropped.
        if let Some(cap) = self.cap.take() {
            let kept: Vec<u8> = cap.tail.into_iter().collect();
            if cap.dropped > 0 {
                let marker = format!(
                    "\n[orchestrate: {} bytes left out here by max_output]\n",
                    cap.dropped
                );
                self.write_file(marker.as_bytes());
                self.truncated = Some(format!(
                    "{} truncated by max_output: kept the first {} and the last {} of {} bytes",
                    self.stream.as_str(),
                    cap.head_written,
                    kept.len(),
                    self.bytes
                ));
            }
            self.write_file(&kept);
        }
        rest
    }

    fn store(&mut self, chunk: &[u8]) {
        if self.error.is_some() || chunk.is_empty() {
            return; // keep draining so the job never blocks on a full pipe
        }
        let head_len = match (&mut self.cap, &self.sink) {
            (Some(cap), Sink::Capture) => {
                let room = cap.head_limit.saturating_sub(cap.head_written) as usize;
                let head_len = room.min(chunk.len());
                cap.head_written += head_len as u64;
                cap.tail.extend(&chunk[head_len..]);
                let over = cap.tail.len().saturating_sub(cap.tail_limit);
                if over > 0 {
                    cap.tail.drain(..over);
                    cap.dropped += over as u64;
                }
                head_len
            }
            _ => chunk.len(),
        };
        self.write_file(&chunk[..head_len]);
    }

    fn write_file(&mut self, chunk: &[u8]) {
        if self.error.is_some() || chunk.is_empty() {
            return;
        }
        match &mut self.sink {
            Sink::Capture => {}
            Sink::Discard => return,
            Sink::Own(f) => {
                if let Err(e) = f.write_all(chunk) {
                    self.error = Some(format!(
                        "{} output lost after an error writing {}: {e}",
                        self.stream.as_str(),
                        self.path.display()
                    ));
                }
                return;
            }
        }
        if self.file.is_none() {
            match open_capture(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    self.error = Some(format!(
                        "cannot create capture file {}: {e}",
                        self.path.display()
                    ));
                    return;
                }
            }
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(chunk)
        {
            self.error = Some(format!(
                "{} capture truncated after an error writing {}: {e}",
                self.stream.as_str(),
                self.path.display()
            ));
        }
    }

    /// Splits a chunk into lines for live output (`--output stream`, progress lines).
    fn forward(&mut self, index: usize, chunk: &[u8], events: &EventSink) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > 64 * 1024 {
            let line = std::mem::take(&mut self.partial);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
        }
    }

    fn flush_partial(&mut self, index: usize, events: &EventSink) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
        }
    }

    fn stored(&self) -> StoredOutput {
        if !matches!(self.sink, Sink::Capture) {
            return StoredOutput::default();
        }
        StoredOutput {
            path: self.file.is_some().then(|| self.path.clone()),
            bytes: self.bytes,
            captured: true,
        }
    }
}

fn open_capture(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// A job's output pipe, read here.
struct Pipe {
    rx: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    fd: std::os::fd::RawFd,
    /// Whether growing was tried (it is tried once).
    tried: bool,
    /// Whether this pipe holds part of the growth budget.
    charged: bool,
}

/// What a pipe grows to once a read fills the buffer: a job writing that much blocks less
/// often, and each wakeup here moves more (measured: 200 jobs writing 1 MiB each took about a
/// fifth less time than with the default 64 KiB).
const PIPE_GROWN: usize = 1 << 20;

/// Pipe capacity grown at once in this process, at most: the kernel counts pipe buffers per
/// user, and past its soft limit (64 MiB by default) the user's new pipes get two pages, which
/// would slow the jobs' own pipelines; eight runs at once stay under it.
const PIPE_GROWTH_BUDGET: usize = 8 << 20;

static PIPE_GROWTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Pipe {
    fn new<R>(rx: R) -> Pipe
    where
        R: tokio::io::AsyncRead + std::os::fd::AsRawFd + Send + 'static,
    {
        Pipe {
            fd: rx.as_raw_fd(),
            rx: Box::pin(rx),
            tried: false,
            charged: false,
        }
    }

    /// Grows the pipe, once, within the budget; a failure (a limit) leaves it as it was.
    fn grow(&mut self) {
        use std::sync::atomic::Ordering;
        if std::mem::replace(&mut self.tried, true) {
            return;
        }
        let before = PIPE_GROWTH.fetch_add(PIPE_GROWN, Ordering::Relaxed);
        if before + PIPE_GROWN <= PIPE_GROWTH_BUDGET
            && sys::set_pipe_size(self.fd, PIPE_GROWN).is_ok()
        {
            self.charged = true;
        } else {
            PIPE_GROWTH.fetch_sub(PIPE_GROWN, Ordering::Relaxed);
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.charged {
            PIPE_GROWTH.fetch_sub(PIPE_GROWN, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Resolves a path of the job file against the job's working directory.
fn resolve(cwd: Option<&Path>, p: &Path) -> PathBuf {
    match cwd {
        Some(c) if p.is_relative() => c.join(p),
        _ => p.to_path_buf(),
    }
}

fn open_target(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o644);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

/// A file the job writes to itself; its growth is the job's byte count.
struct FileTarget {
    path: PathBuf,
    start_len: u64,
}

impl FileTarget {
    fn stored(&self) -> StoredOutput {
        let now = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        StoredOutput {
            path: Some(self.path.clone()),
            bytes: now.saturating_sub(self.start_len),
            captured: false,
        }
    }
}

/// What one of a child's standard streams is connected to.
enum ChildIo {
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
struct Child {
    stdin: Option<tokio::net::unix::pipe::Sender>,
    stdout: Option<tokio::net::unix::pipe::Receiver>,
    stderr: Option<tokio::net::unix::pipe::Receiver>,
    exit: ChildExit,
}

/// Waits for a child to end and reaps it.
struct ChildExit {
    pid: u32,
    /// Readable once the child ended (made at the first wait).
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// Without pidfds (Linux before 5.3): how long to sleep before looking again.
    poll_every: Option<Duration>,
    status: Option<std::process::ExitStatus>,
}

impl ChildExit {
    /// The child's exit status, once it ended. Cancel-safe: what it learnt stays here.
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        if let Some(st) = self.status {
            return Ok(st);
        }
        if self.pidfd.is_none() && self.poll_every.is_none() {
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
fn spawn_child(
    cmd: &std::process::Command,
    env_clear: bool,
    io: [ChildIo; 3],
) -> std::io::Result<Child> {
    use std::ffi::{CStr, CString, OsStr};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let nul = |_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a NUL byte in the command",
        )
    };
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).map_err(nul);

    let changes: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    let program = cmd.get_program();
    let path = if program.as_bytes().contains(&b'/') {
        cstr(program)?
    } else {
        // The PATH the command sets, else ours (also with `env_clear`, as posix_spawnp would
        // search), else the default one of execvp.
        static OURS: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
        let search = match changes.iter().rev().find(|(k, _)| *k == "PATH") {
            Some((_, Some(v))) => Some(*v),
            Some((_, None)) => None,
            None => OURS.get_or_init(|| std::env::var_os("PATH")).as_deref(),
        };
        let search = search.unwrap_or(OsStr::new("/bin:/usr/bin"));
        match find_in_path(program, search, cmd.get_current_dir()) {
            Some(p) => cstr(p.as_os_str())?,
            None => return Err(std::io::ErrorKind::NotFound.into()),
        }
    };
    let mut args: Vec<CString> = Vec::with_capacity(cmd.get_args().len() + 1);
    args.push(cstr(program)?);
    for a in cmd.get_args() {
        args.push(cstr(a)?);
    }
    let argv: Vec<&CStr> = args.iter().map(CString::as_c_str).collect();

    let mut set: Vec<CString> = Vec::with_capacity(changes.len());
    for (k, v) in &changes {
        if let Some(v) = v {
            set.push(crate::environ::env_entry(k, v).map_err(nul)?);
        }
    }
    let inherited: &[(std::ffi::OsString, CString)] = if env_clear {
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
    let cwd = cmd
        .get_current_dir()
        .map(|d| cstr(d.as_os_str()))
        .transpose()?;

    // The child's ends of new pipes; ours are registered with the runtime before the spawn,
    // so that nothing can fail once the child runs.
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
        },
    };
    let null = match io.iter().any(|x| matches!(x, ChildIo::Null)) {
        true => Some(dev_null()?),
        false => None,
    };
    for (i, io) in io.iter().enumerate() {
        if !matches!(io, ChildIo::Piped) {
            continue;
        }
        let (r, w) = sys::pipe()?;
        let (mine, child_end) = if i == 0 { (w, r) } else { (r, w) };
        sys::set_nonblocking(mine.as_raw_fd())?;
        use tokio::net::unix::pipe::{Receiver, Sender};
        match i {
            0 => child.stdin = Some(Sender::from_owned_fd_unchecked(mine)?),
            1 => child.stdout = Some(Receiver::from_owned_fd_unchecked(mine)?),
            _ => child.stderr = Some(Receiver::from_owned_fd_unchecked(mine)?),
        }
        theirs[i] = Some(child_end);
    }
    let stdio: [Option<BorrowedFd<'_>>; 3] = std::array::from_fn(|i| match &io[i] {
        ChildIo::Inherit => None,
        ChildIo::Null => null,
        ChildIo::Fd(fd) => Some(fd.as_fd()),
        ChildIo::Piped => theirs[i].as_ref().map(|f| f.as_fd()),
    });
    child.exit.pid = if cwd.is_some() && !sys::can_spawn_in_dir() {
        // A C library older than glibc 2.29 cannot change directory in posix_spawn: the
        // standard library's fork and exec do it (copying the environment, as it does).
        spawn_std(cmd, env_clear, &changes, stdio)?
    } else {
        sys::spawn(&sys::Spawn {
            path: &path,
            argv: &argv,
            envp: &envp,
            cwd: cwd.as_deref(),
            stdio: stdio.map(|fd| fd.map(|fd| fd.as_raw_fd())),
        })?
    };
    // Our copies of the child's ends close here, or EOF would never come.
    drop(theirs);
    drop(io);
    Ok(child)
}

/// Starts `cmd` through `std::process::Command` (in a new process group, with the given
/// descriptors as its stdio) and returns its pid, to be waited for by `ChildExit`.
fn spawn_std(
    cmd: &std::process::Command,
    env_clear: bool,
    changes: &[(&std::ffi::OsStr, Option<&std::ffi::OsStr>)],
    stdio: [Option<std::os::fd::BorrowedFd<'_>>; 3],
) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let mut std_cmd = std::process::Command::new(cmd.get_program());
    std_cmd.args(cmd.get_args()).process_group(0);
    if env_clear {
        std_cmd.env_clear();
    }
    for (k, v) in changes {
        match v {
            Some(v) => std_cmd.env(k, v),
            None => std_cmd.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        std_cmd.current_dir(dir);
    }
    let given = |fd: Option<std::os::fd::BorrowedFd<'_>>| -> std::io::Result<Stdio> {
        match fd {
            None => Ok(Stdio::inherit()),
            Some(fd) => Ok(Stdio::from(fd.try_clone_to_owned()?)),
        }
    };
    std_cmd
        .stdin(given(stdio[0])?)
        .stdout(given(stdio[1])?)
        .stderr(given(stdio[2])?);
    // Dropping std's Child neither waits nor kills: `ChildExit` reaps it by pid.
    Ok(std_cmd.spawn()?.id())
}

/// Everything set up before spawn: the command with its stdio, and what to read afterwards.
struct Prepared {
    /// Program, arguments, environment and directory (its stdio settings are not used).
    cmd: std::process::Command,
    /// Whether the command's environment starts empty (`env_clear`).
    env_clear: bool,
    /// stdin, stdout, stderr.
    io: [ChildIo; 3],
    stdout_drain: Option<Drain>,
    stderr_drain: Option<Drain>,
    /// For stderr merged into a captured stdout: the read end of the shared pipe.
    merged_reader: Option<std::io::PipeReader>,
    stdin_text: Option<String>,
    stdout_file: Option<FileTarget>,
    stderr_file: Option<FileTarget>,
}

fn prepare(job: &PlannedJob, ctx: &JobCtx) -> Result<Prepared, String> {
    let marker = ctx.launcher.marker();
    // A remote job's directory is the wrapper's business; here the client runs where we are.
    let cwd = if ctx.launcher.remote_cwd() {
        None
    } else {
        job.cwd.as_deref()
    };
    if let Some(dir) = cwd {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working directory {} is not a directory",
                    dir.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "working directory {} cannot be used: {}",
                    dir.display(),
                    crate::text::os_text(&e)
                ));
            }
        }
    }
    let argv: std::borrow::Cow<'_, [String]> = if job.argv.iter().any(|w| w.contains("{slot}")) {
        let slot = ctx.slot.to_string();
        job.argv
            .iter()
            .map(|w| w.replace("{slot}", &slot))
            .collect::<Vec<_>>()
            .into()
    } else {
        (&job.argv[..]).into()
    };
    let mut cmd = ctx.launcher.command(job, &argv);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // A remote client needs its own environment (SLURM_CONF, SSH_AUTH_SOCK); the wrapper
    // clears the job's.
    let env_clear = job.env_clear && marker.is_none();
    for (k, v) in &ctx.extra_env {
        cmd.env(k, v);
    }
    cmd.env("ORCHESTRATE_JOB", &job.name);
    cmd.env("ORCHESTRATE_SLOT", ctx.slot.to_string());
    for (k, v) in &job.env {
        cmd.env(k, v);
    }

    let mut stdin_text = None;
    let stdin = match &job.stdin {
        Input::Null => ChildIo::Null,
        Input::Text(t) => {
            stdin_text = Some(t.clone());
            ChildIo::Piped
        }
        Input::File(p) => {
            let p = resolve(cwd, p);
            let f = File::open(&p).map_err(|e| {
                format!(
                    "cannot open stdin file {}: {}",
                    p.display(),
                    crate::text::os_text(&e)
                )
            })?;
            ChildIo::Fd(f.into())
        }
    };

    let mut prepared = Prepared {
        cmd,
        env_clear,
        io: [stdin, ChildIo::Inherit, ChildIo::Inherit],
        stdout_drain: None,
        stderr_drain: None,
        merged_reader: None,
        stdin_text,
        stdout_file: None,
        stderr_file: None,
    };

    // stdout first: stderr may follow it.
    let mut stdout_clone: Option<ChildIo> = None;
    match &job.stdout {
        Target::Capture => {
            prepared.stdout_drain = Some(Drain::new(
                Stream::Stdout,
                ctx.capture.path(&job.name, Stream::Stdout),
                &ctx.secrets,
                job.max_output,
            ));
            if job.stderr == Target::Stdout && marker.is_none() {
                let (r, w) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
                let w2 = w
                    .try_clone()
                    .map_err(|e| format!("cannot duplicate a pipe: {e}"))?;
                prepared.io[1] = ChildIo::Fd(w.into());
                stdout_clone = Some(ChildIo::Fd(w2.into()));
                prepared.merged_reader = Some(r);
            } else {
                prepared.io[1] = ChildIo::Piped;
            }
        }
        Target::Inherit => {
            prepared.io[1] = ChildIo::Inherit;
            if job.stderr == Target::Stdout {
                use std::os::fd::AsFd;
                let fd = std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| format!("cannot duplicate stdout: {e}"))?;
                stdout_clone = Some(ChildIo::Fd(fd));
            }
        }
        Target::Null | Target::Stdout => {
            prepared.io[1] = ChildIo::Null;
            stdout_clone = Some(ChildIo::Null);
        }
        Target::File { path, append } => {
            let p = resolve(cwd, path);
            let start_len = if *append {
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            let f = open_target(&p, *append).map_err(|e| {
                format!(
                    "cannot open stdout file {}: {}",
                    p.display(),
                    crate::text::os_text(&e)
                )
            })?;
            if job.stderr == Target::Stdout {
                stdout_clone = Some(ChildIo::Fd(
                    f.try_clone()
                        .map_err(|e| format!("cannot duplicate a file: {e}"))?
                        .into(),
                ));
            }
            prepared.io[1] = ChildIo::Fd(f.into());
            prepared.stdout_file = Some(FileTarget { path: p, start_len });
        }
    }
    if let Some(marker) = marker {
        // The wrapper's control lines come on stderr, so it is always read here; the job's
        // stderr target gets the rest (merging and discarding are done remotely).
        let mut drain = Drain::new(
            Stream::Stderr,
            ctx.capture.path(&job.name, Stream::Stderr),
            &ctx.secrets,
            job.max_output,
        );
        drain.filter = Some(wrap::ControlFilter::new(marker));
        match &job.stderr {
            Target::Capture => {}
            Target::Null | Target::Stdout => drain.sink = Sink::Discard,
            Target::Inherit => {
                use std::os::fd::AsFd;
                let fd = std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| format!("cannot duplicate stderr: {e}"))?;
                drain.sink = Sink::Own(File::from(fd));
            }
            Target::File { path, append } => {
                let p = resolve(cwd, path);
                let start_len = if *append {
                    std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
                } else {
                    0
                };
                let f = open_target(&p, *append).map_err(|e| {
                    format!(
                        "cannot open stderr file {}: {}",
                        p.display(),
                        crate::text::os_text(&e)
                    )
                })?;
                drain.path = p.clone();
                drain.sink = Sink::Own(f);
                prepared.stderr_file = Some(FileTarget { path: p, start_len });
            }
        }
        prepared.io[2] = ChildIo::Piped;
        prepared.stderr_drain = Some(drain);
        return Ok(prepared);
    }
    match &job.stderr {
        Target::Capture => {
            prepared.stderr_drain = Some(Drain::new(
                Stream::Stderr,
                ctx.capture.path(&job.name, Stream::Stderr),
                &ctx.secrets,
                job.max_output,
            ));
            prepared.io[2] = ChildIo::Piped;
        }
        Target::Inherit => {
            prepared.io[2] = ChildIo::Inherit;
        }
        Target::Null => {
            prepared.io[2] = ChildIo::Null;
        }
        Target::Stdout => {
            prepared.io[2] = stdout_clone.unwrap_or(ChildIo::Null);
        }
        Target::File { path, append } => {
            let p = resolve(cwd, path);
            let start_len = if *append {
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            let f = open_target(&p, *append).map_err(|e| {
                format!(
                    "cannot open stderr file {}: {}",
                    p.display(),
                    crate::text::os_text(&e)
                )
            })?;
            prepared.io[2] = ChildIo::Fd(f.into());
            prepared.stderr_file = Some(FileTarget { path: p, start_len });
        }
    }
    Ok(prepared)
}

/// A read buffer of `READ_BUF` bytes, taken from this thread's spares and given back when
/// dropped: a job's two buffers would otherwise be allocated and freed for every job, and
/// allocations that large make the allocator tidy up its free lists each time (measured: a
/// tenth of a worker's time with 3,000 trivial jobs).
struct ReadBuf(Vec<u8>);

/// Spare buffers kept per thread, at most (two per job a worker runs at once, and some).
const SPARE_BUFS: usize = 16;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ReadBuf {
    /// A buffer, or an empty one (no allocation) when `needed` is false.
    fn take(needed: bool) -> ReadBuf {
        if !needed {
            return ReadBuf(Vec::new());
        }
        let spare = SPARE.with_borrow_mut(Vec::pop);
        ReadBuf(spare.unwrap_or_else(|| Vec::with_capacity(READ_BUF)))
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() == READ_BUF {
            // At thread exit the spares may be gone already; the buffer is then just freed.
            let _ = SPARE.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE_BUFS {
                    s.push(buf);
                }
            });
        }
    }
}

/// Reads into the spare capacity of `buf` (cleared first): no zeroing of a fresh buffer for
/// every job, most of which write little or nothing. Cancel-safe.
async fn read_opt(r: &mut Option<Pipe>, buf: &mut ReadBuf) -> std::io::Result<usize> {
    let buf = &mut buf.0;
    buf.clear();
    match r {
        Some(p) => {
            let n = p.rx.read_buf(buf).await?;
            if n == buf.capacity() {
                p.grow();
            }
            Ok(n)
        }
        None => std::future::pending().await,
    }
}

/// Reads what a pipe holds without waiting, a few times at most (a process the job left may
/// still be writing), and drops it at its end: as the select branch reading it would.
fn read_now(
    pipe: &mut Option<Pipe>,
    buf: &mut ReadBuf,
    drain: &mut Option<Drain>,
    forward: bool,
    index: usize,
    events: &EventSink,
) {
    for _ in 0..4 {
        let Some(p) = pipe else { return };
        match sys::read_into(p.fd, &mut buf.0) {
            Ok(0) => *pipe = None,
            Ok(n) => {
                if let Some(d) = drain {
                    let kept = d.write(&buf.0[..n]);
                    if forward {
                        let kept = kept.into_owned();
                        d.forward(index, &kept, events);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => *pipe = None,
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one job to its end, with its retries, and returns its record. Never fails: a job that
/// cannot start is a record with status `spawn_error`.
pub async fn run_job(job: &PlannedJob, mut ctx: JobCtx) -> CompletedProcess {
    let mut earlier: Vec<crate::record::Attempt> = Vec::new();
    let mut attempt = 1u32;
    let total = job.retry.retries + 1;
    loop {
        let mut rec = run_attempt(job, &mut ctx).await;
        rec.attempts = attempt;
        let again = attempt < total
            && matches!(rec.status, Status::Failed | Status::TimedOut)
            && (job.retry.on.is_empty()
                || rec.returncode.is_some_and(|c| job.retry.on.contains(&c)))
            && *ctx.cancel.borrow() == Cancel::None;
        if !again {
            rec.earlier_attempts = earlier;
            finish_record(&mut rec, job, &ctx);
            return rec;
        }
        earlier.push(crate::record::Attempt {
            attempt,
            status: rec.status,
            returncode: rec.returncode,
            signal: rec.signal,
            started: rec.started,
            finished: rec.finished,
        });
        attempt += 1;
        let delay = job.retry.delay_before(attempt);
        let _ = ctx.events.send(Event::JobRetrying {
            index: job.index,
            attempt,
            of: total,
            delay,
            outcome: rec.outcome(),
        });
        let stopped = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = wait_cancel(&mut ctx.cancel) => true,
        };
        if stopped {
            rec.earlier_attempts = earlier;
            finish_record(&mut rec, job, &ctx);
            return rec;
        }
    }
}

async fn wait_cancel(rx: &mut watch::Receiver<Cancel>) {
    loop {
        if *rx.borrow_and_update() != Cancel::None {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What every record gets whatever the attempt did: environment keys, secrets redacted.
fn finish_record(rec: &mut CompletedProcess, job: &PlannedJob, ctx: &JobCtx) {
    let mut keys: Vec<String> = Vec::with_capacity(ctx.extra_env.len() + job.env.len() + 2);
    keys.extend(ctx.extra_env.iter().map(|(k, _)| k.clone()));
    keys.extend(job.env.iter().map(|(k, _)| k.clone()));
    keys.push("ORCHESTRATE_JOB".into());
    keys.push("ORCHESTRATE_SLOT".into());
    keys.sort_unstable();
    keys.dedup();
    rec.env_keys = keys;
    rec.env_inherited = !job.env_clear;
    rec.def_hash = job.def_hash.clone();
    if !ctx.secrets.is_empty() {
        for a in &mut rec.args {
            *a = redact(a, &ctx.secrets);
        }
        if let Some(e) = &mut rec.error {
            *e = redact(e, &ctx.secrets);
        }
        for n in &mut rec.notes {
            *n = redact(n, &ctx.secrets);
        }
    }
}

/// One attempt of a job.
async fn run_attempt(job: &PlannedJob, ctx: &mut JobCtx) -> CompletedProcess {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let spawn_failed = |msg: String, rc: i32| {
        let mut rec = CompletedProcess::not_started(
            &job.name,
            job.index,
            job.argv.clone(),
            Status::SpawnError,
            msg,
        );
        rec.returncode = Some(rc);
        rec.cwd = job.cwd.clone();
        rec.slot = Some(ctx.slot);
        rec.attempts = 1;
        rec.host = ctx.launcher.host();
        rec
    };

    let prepared = match prepare(job, ctx) {
        Ok(p) => p,
        Err(msg) => return spawn_failed(msg, 126),
    };
    let Prepared {
        cmd,
        env_clear,
        io,
        mut stdout_drain,
        mut stderr_drain,
        merged_reader,
        stdin_text,
        stdout_file,
        stderr_file,
    } = prepared;
    let spawned = spawn_child(&cmd, env_clear, io);
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let (msg, rc) = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    (format!("command not found: {}", job.argv[0]), 127)
                }
                std::io::ErrorKind::PermissionDenied => {
                    (format!("permission denied: {}", job.argv[0]), 126)
                }
                _ => (
                    format!("cannot start {}: {}", job.argv[0], crate::text::os_text(&e)),
                    126,
                ),
            };
            return spawn_failed(msg, rc);
        }
    };
    let pgid = child.exit.pid;
    let pid = Some(pgid);
    let _ = ctx.events.send(Event::JobStarted {
        index: job.index,
        pid,
        slot: ctx.slot,
        started,
    });

    if let (Some(text), Some(mut stdin)) = (stdin_text, child.stdin.take()) {
        tokio::spawn(async move {
            // A job that does not read its input closes the pipe: that is not an error.
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }

    let mut out: Option<Pipe> = None;
    if let Some(r) = merged_reader {
        match tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(r)) {
            Ok(rx) => out = Some(Pipe::new(rx)),
            Err(e) => {
                if let Some(d) = &mut stdout_drain {
                    d.error = Some(format!("cannot read the output pipe: {e}"));
                }
            }
        }
    } else if let Some(s) = child.stdout.take() {
        out = Some(Pipe::new(s));
    }
    let mut err: Option<Pipe> = child.stderr.take().map(Pipe::new);
    let mut child = child.exit;

    let mut buf_o = ReadBuf::take(out.is_some());
    let mut buf_e = ReadBuf::take(err.is_some());
    let mut status: Option<std::process::ExitStatus> = None;
    let mut wait_error: Option<String> = None;
    let timeout_at = job.timeout.map(|t| t0 + t);
    let mut timed_out = false;
    let mut cancelled = false;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut pipe_deadline: Option<Instant> = None;
    let mut cancel_open = true;
    let mut notes = Vec::new();
    let forward = ctx.forward_output;

    // Anything already requested before the job started (a cancel racing with the spawn).
    let launcher = ctx.launcher.clone();
    let stop = |sig: i32, drain: &Option<Drain>| {
        let control = drain
            .as_ref()
            .and_then(|d| d.filter.as_ref())
            .map(|f| &f.control);
        signal_job(&launcher, pgid, sig, control);
    };
    if *ctx.cancel.borrow() != Cancel::None {
        cancelled = true;
        stop(sys::SIGTERM, &stderr_drain);
        kill_at = Some(Instant::now() + job.kill_after);
    }

    loop {
        if status.is_some() && out.is_none() && err.is_none() {
            break;
        }
        tokio::select! {
            r = read_opt(&mut out, &mut buf_o) => match r {
                Ok(0) | Err(_) => out = None,
                Ok(n) => if let Some(d) = &mut stdout_drain {
                    let kept = d.write(&buf_o.0[..n]);
                    if forward { let kept = kept.into_owned(); d.forward(job.index, &kept, &ctx.events); }
                },
            },
            r = read_opt(&mut err, &mut buf_e) => match r {
                Ok(0) | Err(_) => err = None,
                Ok(n) => if let Some(d) = &mut stderr_drain {
                    let kept = d.write(&buf_e.0[..n]);
                    if forward { let kept = kept.into_owned(); d.forward(job.index, &kept, &ctx.events); }
                },
            },
            st = child.wait(), if status.is_none() && wait_error.is_none() => {
                match st {
                    Ok(st) => {
                        status = Some(st);
                        // Its pipes are usually at their end by now: read them there, and
                        // arm the grace timer only for one still open.
                        read_now(&mut out, &mut buf_o, &mut stdout_drain, forward, job.index, &ctx.events);
                        read_now(&mut err, &mut buf_e, &mut stderr_drain, forward, job.index, &ctx.events);
                    }
                    Err(e) => { wait_error = Some(format!("waiting for the process failed: {e}")); }
                }
                if wait_error.is_some() { break; }
                if out.is_some() || err.is_some() {
                    pipe_deadline = Some(Instant::now() + PIPE_GRACE);
                }
            },
            _ = sleep_opt(timeout_at), if status.is_none() && !timed_out && !cancelled => {
                timed_out = true;
                stop(sys::SIGTERM, &stderr_drain);
                kill_at = Some(Instant::now() + job.kill_after);
            },
            _ = sleep_opt(kill_at), if !killed => {
                killed = true;
                stop(sys::SIGKILL, &stderr_drain);
            },
            r = ctx.cancel.changed(), if cancel_open => {
                if r.is_err() {
                    cancel_open = false;
                } else if status.is_none() {
                    let level = *ctx.cancel.borrow_and_update();
                    match level {
                        Cancel::None => {}
                        Cancel::Graceful(_) => if !cancelled {
                            cancelled = true;
                            stop(sys::SIGTERM, &stderr_drain);
                            let at = Instant::now() + job.kill_after;
                            kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
                        },
                        Cancel::Hard => {
                            cancelled = true;
                            killed = true;
                            stop(sys::SIGKILL, &stderr_drain);
                        }
                    }
                }
            },
            _ = sleep_opt(pipe_deadline), if status.is_some() => {
                notes.push(format!(
                    "output still held open by a leftover process {} ms after the job exited; stopped reading",
                    PIPE_GRACE.as_millis()
                ));
                break;
            },
        }
    }
    if timed_out || cancelled {
        // Sweep whatever of the group survived the TERM (children that ignore it, or were
        // spawned after it).
        let _ = sys::killpg(pgid, sys::SIGKILL);
    }
    for d in [&mut stdout_drain, &mut stderr_drain].into_iter().flatten() {
        let rest = d.finish();
        if forward {
            d.forward(job.index, &rest, &ctx.events);
            d.flush_partial(job.index, &ctx.events);
        }
    }
    let control = stderr_drain
        .as_ref()
        .and_then(|d| d.filter.as_ref())
        .map(|f| f.control.clone());
    if (timed_out || cancelled)
        && let Some(c) = &control
        && let Some(cmd) = ctx.launcher.stop_command(c, sys::SIGKILL)
    {
        // Whatever of the remote job outlived the TERM (or was started after it) goes too,
        // before the run reports the job as stopped.
        run_stop_command(cmd).await;
    }

    let finished = SystemTime::now();
    let (mut returncode, mut signal) = match status {
        Some(st) => (st.code(), st.signal()),
        None => (None, None),
    };
    // A remote job's status is the wrapper's word; without it, the client failed.
    let mut client_failure = None;
    if let Some(c) = &control
        && !timed_out
        && !cancelled
        && wait_error.is_none()
    {
        match c.exit {
            Some(code) => {
                returncode = Some(code);
                signal = None;
            }
            None => {
                client_failure = Some(ctx.launcher.failure(c, status));
                returncode = None;
                signal = None;
            }
        }
    }
    let status_kind = if cancelled {
        Status::Cancelled
    } else if timed_out {
        Status::TimedOut
    } else if client_failure.is_some() {
        if control.as_ref().is_some_and(|c| c.started) {
            Status::Failed
        } else {
            Status::SpawnError
        }
    } else if wait_error.is_some() {
        Status::Failed
    } else if returncode.is_some_and(|c| job.is_success(c)) {
        Status::Succeeded
    } else {
        Status::Failed
    };
    let mut error = wait_error.or(client_failure);
    if timed_out {
        error = Some(format!(
            "timed out after {}",
            humantime::format_duration(job.timeout.unwrap_or_default())
        ));
    }
    for d in [&stdout_drain, &stderr_drain].into_iter().flatten() {
        if let Some(e) = &d.error {
            notes.push(e.clone());
        }
        if let Some(t) = &d.truncated {
            notes.push(t.clone());
        }
    }
    let stdout = match (&stdout_drain, &stdout_file) {
        (Some(d), _) => d.stored(),
        (None, Some(f)) => f.stored(),
        _ => StoredOutput::default(),
    };
    let stderr = match (&stderr_drain, &stderr_file) {
        (_, Some(f)) => f.stored(),
        (Some(d), None) => d.stored(),
        _ => StoredOutput::default(),
    };
    CompletedProcess {
        job: job.name.clone(),
        index: job.index,
        args: job.argv.clone(),
        cwd: job.cwd.clone(),
        returncode,
        signal,
        status: status_kind,
        error,
        stdout,
        stderr,
        pid,
        slot: Some(ctx.slot),
        started,
        finished,
        duration: t0.elapsed(),
        attempts: 1,
        host: ctx
            .launcher
            .host()
            .or_else(|| control.as_ref().and_then(|c| c.node.clone())),
        notes,
        earlier_attempts: Vec::new(),
        env_keys: Vec::new(),
        env_inherited: false,
        def_hash: String::new(),
        background: false,
        supervisor: None,
        slurm_job_id: control.and_then(|c| c.slurm_job_id),
    }
}

/// Sends `sig` to a job: to the client's process group here and, through the launcher, to the
/// job on the remote side.
fn signal_job(
    launcher: &std::sync::Arc<dyn Launcher>,
    pgid: u32,
    sig: i32,
    control: Option<&wrap::Control>,
) {
    let remote = control.and_then(|c| launcher.stop_command(c, sig));
    if sig != sys::SIGTERM || launcher.term_locally() || remote.is_none() {
        let _ = sys::killpg(pgid, sig);
    }
    if let Some(cmd) = remote {
        // Not awaited: the job's own loop keeps draining while the remote side stops.
        tokio::spawn(run_stop_command(cmd));
    }
}

/// How long a remote stop (`ssh host kill`, `scancel`) may take before we give up on it.
const STOP_COMMAND_LIMIT: Duration = Duration::from_secs(20);

async fn run_stop_command(cmd: std::process::Command) {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // Best effort: the local client is killed anyway, and a stop that fails (host gone, job
    // already ended) has nothing left to stop.
    if let Ok(mut child) = cmd.spawn() {
        let _ = tokio::time::timeout(STOP_COMMAND_LIMIT, child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        use std::ffi::OsStr;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let tool = dir.path().join("bin/tool");
        let search = OsStr::new("/nonexistent-dir:bin");
        // A relative entry is taken from the child's directory; a miss is not remembered.
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            None
        );
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            Some(dir.path().join("bin/tool"))
        );
        // An empty entry is the (child's) current directory.
        let bin = dir.path().join("bin");
        assert_eq!(
            find_in_path(
                OsStr::new("tool"),
                OsStr::new("/nonexistent-dir:"),
                Some(&bin)
            ),
            Some(bin.join("tool"))
        );
        // A file without an execute bit is passed over.
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            None
        );
    }

    #[test]
    fn the_standard_library_fallback_starts_in_the_directory_with_the_environment() {
        use std::io::Read;
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "pwd; echo \"$ONLY:$HOME\""])
            .current_dir(dir.path())
            .env("ONLY", "me");
        let changes: Vec<_> = cmd.get_envs().collect();
        let (mut r, w) = std::io::pipe().unwrap();
        let pid = spawn_std(&cmd, true, &changes, [None, Some(w.as_fd()), None]).unwrap();
        drop(w);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        // In a process group of its own (read while it is a zombie, before it is reaped).
        assert_eq!(sys::process_group_of(pid), Some(pid));
        assert!(sys::wait_blocking(pid).unwrap().success());
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(out, format!("{}\nme:\n", real.display()));
    }

    #[test]
    fn job_dir_names_are_safe() {
        assert_eq!(job_dir_name("df-h-home"), "df-h-home");
        assert_eq!(job_dir_name("../x"), "%2E.%2Fx");
        assert_eq!(job_dir_name("a/b"), "a%2Fb");
        assert_eq!(job_dir_name("a\nb"), "a%0Ab");
        assert_eq!(job_dir_name("sq[3]"), "sq[3]");
    }
}
