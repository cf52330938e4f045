//! Where a job's standard streams go: each `Target` of the plan (capture, file, append,
//! inherit, null, stderr into stdout) becomes what the child is given and what this process
//! reads, in one function, `open_streams`, that local, background and remote jobs all use.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::JobCtx;
use super::drain::{Drain, Sink};
use super::spawn::ChildIo;
use crate::exec::Stream;
use crate::exec::remote::wrap;
use crate::plan::{Input, PlannedJob, Target};
use crate::record::StoredOutput;
use crate::text::os_text;

/// Where capture files go: `<root>/<job dir>/stdout|stderr`, created only when a job writes.
#[derive(Debug, Clone)]
pub struct CaptureRoot(pub PathBuf);

impl CaptureRoot {
    pub fn path(&self, job: &str, stream: Stream) -> PathBuf {
        self.0.join(job_dir_name(job)).join(stream.as_str())
    }
}

pub use crate::text::job_dir_name;

/// Resolves a path of the job file against the job's working directory.
pub fn resolve(cwd: Option<&Path>, p: &Path) -> PathBuf {
    match cwd {
        Some(c) if p.is_relative() => c.join(p),
        _ => p.to_path_buf(),
    }
}

/// Opens a job's own output file as `>` or `>>` would, without ever blocking the run: a FIFO
/// with no reader would block open(2) forever (and no timeout or signal could end it), so the
/// file is opened non-blocking, and then handed to the job blocking, as a shell gives it.
fn open_target(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o644).custom_flags(libc::O_NONBLOCK);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    let f = o.open(path).map_err(|e| no_reader(e, path))?;
    crate::sys::clear_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&f))?;
    Ok(f)
}

/// A job's input file, opened without blocking (a FIFO with no writer would block open(2)),
/// then handed to the job blocking: it reads the FIFO once a writer comes, under its timeout.
fn open_input(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    crate::sys::clear_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&f))?;
    Ok(f)
}

/// ENXIO from a non-blocking open for writing means a FIFO nobody reads.
fn no_reader(e: std::io::Error, path: &Path) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ENXIO) {
        std::io::Error::other(format!(
            "{} is a FIFO that nobody reads (a job writing to it would wait forever)",
            path.display()
        ))
    } else {
        e
    }
}

/// A file the job writes to itself; its growth is the job's byte count.
pub(super) struct FileTarget {
    path: PathBuf,
    start_len: u64,
}

impl FileTarget {
    pub(super) fn stored(&self) -> StoredOutput {
        let now = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        StoredOutput {
            path: Some(self.path.clone()),
            bytes: now.saturating_sub(self.start_len),
            captured: false,
            ..StoredOutput::default()
        }
    }
}

/// Where a stream goes when another program writes it (sbatch writes a batch job's output
/// itself): the capture file, the job's own file, or nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDest {
    Capture(PathBuf),
    File {
        path: PathBuf,
        append: bool,
    },
    Null,
    /// stderr only: into stdout's file (`2>&1`).
    SameAsStdout,
}

impl FileDest {
    /// What the record says of this stream before anything was written.
    pub fn stored(&self) -> StoredOutput {
        match self {
            FileDest::Capture(p) => StoredOutput {
                path: Some(p.clone()),
                bytes: 0,
                captured: true,
                ..StoredOutput::default()
            },
            FileDest::File { path, .. } => StoredOutput {
                path: Some(path.clone()),
                bytes: 0,
                captured: false,
                ..StoredOutput::default()
            },
            FileDest::Null | FileDest::SameAsStdout => StoredOutput::default(),
        }
    }
}

/// A stream's `Target` as a file for another program to write; a batch job has no terminal,
/// so `inherit` is captured. Relative paths are taken from the job's directory.
pub fn file_dest(job: &PlannedJob, capture: &CaptureRoot, stream: Stream) -> FileDest {
    let target = match stream {
        Stream::Stdout => &job.stdout,
        Stream::Stderr => &job.stderr,
    };
    match target {
        Target::Capture | Target::Inherit => FileDest::Capture(capture.path(&job.name, stream)),
        Target::Null => FileDest::Null,
        Target::Stdout => FileDest::SameAsStdout,
        Target::File { path, append } => {
            let p = resolve(job.cwd.as_deref(), path);
            FileDest::File {
                path: std::path::absolute(&p).unwrap_or(p),
                append: *append,
            }
        }
    }
}

/// A job's streams, ready for the spawn: what the child gets, and what is read or measured
/// here afterwards.
pub(super) struct Streams {
    /// stdin, stdout, stderr as the child gets them.
    pub io: [ChildIo; 3],
    /// What is written to the job's stdin pipe here.
    pub stdin_feed: Option<StdinFeed>,
    pub stdout_drain: Option<Drain>,
    pub stderr_drain: Option<Drain>,
    /// For stderr merged into a captured stdout: the read end of the shared pipe.
    pub merged_reader: Option<std::io::PipeReader>,
    pub stdout_file: Option<FileTarget>,
    pub stderr_file: Option<FileTarget>,
}

/// What a task writes to a job's stdin: bytes (its `stdin:` text, or a remote wrapper's
/// script), then, for an input file behind a script, the file's contents.
pub(super) struct StdinFeed {
    pub bytes: Vec<u8>,
    pub then: Option<File>,
}

/// What one stream is connected to: the child's end, what drains it here, and the job's own
/// file whose growth is its byte count.
struct End {
    io: ChildIo,
    drain: Option<Drain>,
    measured: Option<FileTarget>,
}

impl End {
    fn io(io: ChildIo) -> End {
        End {
            io,
            drain: None,
            measured: None,
        }
    }
}

/// Opens everything a job's streams need. `cwd` is the directory relative paths of the job
/// file are taken from (the job's own, when it starts here); `marker` is set for a job run
/// under the remote wrapper, whose stderr is always read here to take its control lines out.
pub(super) fn open_streams(
    job: &PlannedJob,
    ctx: &JobCtx,
    cwd: Option<&Path>,
    launch: &super::Launch,
) -> Result<Streams, String> {
    let marker = launch.marker.as_deref();
    let (stdin, stdin_feed) = open_stdin(&job.stdin, cwd, launch.stdin_prefix.as_deref())?;
    let mut out = open_end(job, ctx, cwd, Stream::Stdout, &job.stdout)?;
    let mut merged_reader = None;
    let err = match (&job.stderr, marker) {
        (target, Some(marker)) => wrapped_stderr(job, ctx, cwd, target, marker)?,
        (Target::Stdout, None) => {
            let (end, reader) = same_as_stdout(&mut out)?;
            merged_reader = reader;
            end
        }
        (target, None) => open_end(job, ctx, cwd, Stream::Stderr, target)?,
    };
    Ok(Streams {
        io: [stdin, out.io, err.io],
        stdin_feed,
        stdout_drain: out.drain,
        stderr_drain: err.drain,
        merged_reader,
        stdout_file: out.measured,
        stderr_file: err.measured,
    })
}

/// The job's stdin: /dev/null, a pipe fed here, or its input file. With a `prefix` (a remote
/// wrapper's script) it is always a pipe: the prefix first, then the job's own input.
fn open_stdin(
    input: &Input,
    cwd: Option<&Path>,
    prefix: Option<&[u8]>,
) -> Result<(ChildIo, Option<StdinFeed>), String> {
    let feed = |bytes: Vec<u8>, then: Option<File>| Some(StdinFeed { bytes, then });
    let mut bytes = prefix.map(<[u8]>::to_vec).unwrap_or_default();
    Ok(match input {
        Input::Null if prefix.is_none() => (ChildIo::Null, None),
        Input::Null => (ChildIo::Piped, feed(bytes, None)),
        Input::Text(t) => {
            bytes.extend_from_slice(t.as_bytes());
            (ChildIo::Piped, feed(bytes, None))
        }
        Input::File(p) => {
            let p = resolve(cwd, p);
            let f = open_input(&p)
                .map_err(|e| format!("cannot open stdin file {}: {}", p.display(), os_text(&e)))?;
            match prefix {
                None => (ChildIo::Fd(f.into()), None),
                Some(_) => (ChildIo::Piped, feed(bytes, Some(f))),
            }
        }
    })
}

/// One output stream going where its target says (`Target::Stdout` is handled by the caller).
fn open_end(
    job: &PlannedJob,
    ctx: &JobCtx,
    cwd: Option<&Path>,
    stream: Stream,
    target: &Target,
) -> Result<End, String> {
    Ok(match target {
        Target::Capture => End {
            io: ChildIo::Piped,
            drain: Some(capture_drain(job, ctx, stream)),
            measured: None,
        },
        Target::Inherit => End::io(ChildIo::Inherit),
        Target::Null | Target::Stdout => End::io(ChildIo::Null),
        Target::File { path, append } => {
            let (f, t) = open_file(cwd, path, *append, stream)?;
            End {
                io: ChildIo::Fd(f.into()),
                drain: None,
                measured: Some(t),
            }
        }
    })
}

fn capture_drain(job: &PlannedJob, ctx: &JobCtx, stream: Stream) -> Drain {
    let mut d = Drain::new(
        stream,
        ctx.capture.path(&job.name, stream),
        &ctx.secrets,
        job.max_output,
    );
    d.pack = Some(ctx.capture.pack_path());
    d
}

/// stderr to wherever stdout goes (`2>&1`). A captured stdout then reads one pipe that both
/// streams write, so their order is kept.
fn same_as_stdout(out: &mut End) -> Result<(End, Option<std::io::PipeReader>), String> {
    if out.drain.is_some() {
        let (r, w) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
        let w2 = w
            .try_clone()
            .map_err(|e| format!("cannot duplicate a pipe: {e}"))?;
        out.io = ChildIo::Fd(w.into());
        return Ok((End::io(ChildIo::Fd(w2.into())), Some(r)));
    }
    let io = match &out.io {
        ChildIo::Fd(f) => ChildIo::Fd(dup_own(f.as_fd(), "a file")?),
        ChildIo::Inherit => ChildIo::Fd(dup_own(std::io::stdout().as_fd(), "stdout")?),
        _ => ChildIo::Null,
    };
    Ok((End::io(io), None))
}

/// A wrapped job's stderr: always a pipe read here, its control lines taken out, the rest
/// going to the job's stderr target (merging and discarding are done on the remote side).
fn wrapped_stderr(
    job: &PlannedJob,
    ctx: &JobCtx,
    cwd: Option<&Path>,
    target: &Target,
    marker: &str,
) -> Result<End, String> {
    let mut drain = capture_drain(job, ctx, Stream::Stderr);
    drain.filter = Some(wrap::ControlFilter::new(marker));
    let mut measured = None;
    match target {
        Target::Capture => {}
        Target::Null | Target::Stdout => drain.sink = Sink::Discard,
        Target::Inherit => {
            drain.sink = Sink::Own(File::from(dup_own(std::io::stderr().as_fd(), "stderr")?));
        }
        Target::File { path, append } => {
            let (f, t) = open_file(cwd, path, *append, Stream::Stderr)?;
            drain.path = t.path.clone();
            drain.sink = Sink::Own(f);
            measured = Some(t);
        }
    }
    Ok(End {
        io: ChildIo::Piped,
        drain: Some(drain),
        measured,
    })
}

fn dup_own(fd: std::os::fd::BorrowedFd<'_>, what: &str) -> Result<std::os::fd::OwnedFd, String> {
    fd.try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate {what}: {e}"))
}

/// Opens a job's own output file, as `>` or `>>` would, and notes its length so that what the
/// job wrote can be counted.
fn open_file(
    cwd: Option<&Path>,
    path: &Path,
    append: bool,
    stream: Stream,
) -> Result<(File, FileTarget), String> {
    let p = resolve(cwd, path);
    let start_len = if append {
        std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let f = open_target(&p, append).map_err(|e| {
        format!(
            "cannot open {} file {}: {}",
            stream.as_str(),
            p.display(),
            os_text(&e)
        )
    })?;
    Ok((f, FileTarget { path: p, start_len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_dir_names_are_safe() {
        assert_eq!(job_dir_name("df-h-home"), "df-h-home");
        assert_eq!(job_dir_name("../x"), "%2E.%2Fx");
        assert_eq!(job_dir_name("a/b"), "a%2Fb");
        assert_eq!(job_dir_name("a\nb"), "a%0Ab");
        assert_eq!(job_dir_name("sq[3]"), "sq[3]");
    }
}
