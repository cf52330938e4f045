//! A worker step's streams: each job's part of its stdout and stderr cut out
//! (`control::Frame`) and written, as it comes, where the job's streams go here.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use super::super::wrap::{Frame, FrameState};
use super::{State, lock};
use crate::exec::process::JobEnd;

/// Most bytes kept of what a worker's stderr says outside its jobs' parts (srun's errors).
const CHATTER_MAX: usize = 4096;

/// The job a worker runs: where its streams go, and who waits for their end.
pub(super) struct Current {
    pub(super) out: Option<Sink>,
    pub(super) err: Option<Sink>,
    pub(super) out_frame: Frame,
    pub(super) err_frame: Frame,
    pub(super) ended: oneshot::Sender<ExitStatus>,
}

/// Reads a worker's stdout and stderr to their end, handing each job its part.
pub(super) async fn pump(
    mut child: tokio::process::Child,
    mut out: ChildStdout,
    mut err: ChildStderr,
    mut jobs: mpsc::UnboundedReceiver<Current>,
    state: Arc<State>,
) {
    let mut cur: Option<Current> = None;
    let mut chatter: Vec<u8> = Vec::new();
    // The worker's first line (its node), until it is whole.
    let mut hello: Option<Vec<u8>> = Some(Vec::new());
    let (mut bo, mut be) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut out_open, mut err_open, mut jobs_open) = (true, true, true);
    while out_open || err_open {
        // A job is known before any of its output can come: it was queued before it was sent.
        if cur.is_none() {
            cur = jobs.try_recv().ok();
        }
        tokio::select! {
            r = out.read(&mut bo), if out_open => match r {
                Ok(n) if n > 0 => {
                    let rest = greeted(&mut hello, &bo[..n], &state);
                    feed(&mut cur, rest, true, &mut chatter).await
                }
                _ => out_open = false,
            },
            r = err.read(&mut be), if err_open => match r {
                Ok(n) if n > 0 => feed(&mut cur, &be[..n], false, &mut chatter).await,
                _ => err_open = false,
            },
            c = jobs.recv(), if jobs_open && cur.is_none() => match c {
                Some(c) => cur = Some(c),
                None => jobs_open = false,
            },
        }
        let done = |c: &Current| {
            c.out_frame.state == FrameState::Done && c.err_frame.state == FrameState::Done
        };
        if cur.as_ref().is_some_and(done)
            && let Some(c) = cur.take()
        {
            *lock(&state.current) = None;
            end(c, ExitStatus::from_raw(0));
        }
    }
    state.gone.store(true, Ordering::SeqCst);
    let st = child.wait().await.unwrap_or(ExitStatus::from_raw(255 << 8));
    let Some(mut c) = cur.or_else(|| jobs.try_recv().ok()) else {
        return;
    };
    // What the job's parts still hold, then srun's words for a job that never started.
    let (_, rest) = c.out_frame.feed(&[], true);
    write(&mut c.out, &rest).await;
    let (_, rest) = c.err_frame.feed(&[], true);
    write(&mut c.err, &rest).await;
    if c.err_frame.state == FrameState::Before {
        write(&mut c.err, &chatter).await;
    }
    *lock(&state.current) = None;
    end(c, st);
}

/// The part of a chunk of the worker's stdout after its first line (`node NAME`), which
/// names the worker's node in `state`.
fn greeted<'a>(hello: &mut Option<Vec<u8>>, chunk: &'a [u8], state: &State) -> &'a [u8] {
    let Some(line) = hello else {
        return chunk;
    };
    let Some(nl) = chunk.iter().position(|&b| b == b'\n') else {
        line.extend_from_slice(&chunk[..chunk.len().min(256)]);
        return &[];
    };
    line.extend_from_slice(&chunk[..nl]);
    let text = String::from_utf8_lossy(line);
    let node = text.strip_prefix("node ").unwrap_or(&text).trim();
    *lock(&state.node) = (!node.is_empty()).then(|| node.to_string());
    *hello = None;
    &chunk[nl + 1..]
}

/// The job's streams end (its pipes close), then its end is told: the pipes are at EOF by
/// the time the job's status is known.
fn end(c: Current, st: ExitStatus) {
    let Current {
        out, err, ended, ..
    } = c;
    drop((out, err));
    let _ = ended.send(st);
}

/// A chunk of a worker's stdout (`is_out`) or stderr: the job's part to the job, what is
/// outside its part kept (stderr) or dropped (stdout: what a job left running wrote).
async fn feed(cur: &mut Option<Current>, chunk: &[u8], is_out: bool, chatter: &mut Vec<u8>) {
    let Some(c) = cur else {
        if !is_out {
            keep_chatter(chatter, chunk);
        }
        return;
    };
    let (frame, end) = match is_out {
        true => (&mut c.out_frame, &mut c.out),
        false => (&mut c.err_frame, &mut c.err),
    };
    let before = frame.state;
    let (outside, job) = frame.feed(chunk, false);
    if !is_out {
        if before == FrameState::Before && frame.state != FrameState::Before {
            chatter.clear();
        }
        keep_chatter(chatter, &outside);
    }
    write(end, &job).await;
}

fn keep_chatter(chatter: &mut Vec<u8>, bytes: &[u8]) {
    chatter.extend_from_slice(bytes);
    if chatter.len() > CHATTER_MAX {
        chatter.drain(..chatter.len() - CHATTER_MAX);
    }
}

/// Where a job's stream goes, as the workers' runtime writes it.
pub(super) enum Sink {
    Pipe(tokio::net::unix::pipe::Sender),
    File(std::fs::File),
    /// Not made yet: a pipe is registered with the runtime that writes it (`pump`).
    Given(JobEnd),
}

/// Writes a job's bytes where its stream goes; an end that fails takes no more.
async fn write(end: &mut Option<Sink>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Sink::Given(_)) = end
        && let Some(Sink::Given(given)) = end.take()
    {
        *end = match given {
            JobEnd::Pipe(fd) => tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(fd)
                .ok()
                .map(Sink::Pipe),
            JobEnd::File(f) => Some(Sink::File(f)),
        };
    }
    let ok = match end {
        Some(Sink::Pipe(p)) => p.write_all(bytes).await.is_ok(),
        Some(Sink::File(f)) => std::io::Write::write_all(f, bytes).is_ok(),
        Some(Sink::Given(_)) | None => true,
    };
    if !ok {
        *end = None;
    }
}
