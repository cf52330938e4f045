//! The process layer: one job on this machine's process table (its own, or a remote
//! client's). Split by action: `launch` (the back ends' seam), `stdio` (where the streams go),
//! `spawn` (starting the process), `delegated` (a job started by a process that already runs), `drain` and `pipe` (reading its output), `readback`
//! (reading it again later), `attempt` (one run under its timeout and cancellation), `slow`
//! (the slow warning), `stop` (signals), `path` (finding programs).

mod attempt;
mod delegated;
mod drain;
pub(crate) use drain::open_capture;
mod launch;
mod outcome;
mod pack;
mod path;
mod pending;
mod pipe;
mod readback;
mod slow;
mod spawn;
mod stdio;
mod stop;

use std::time::Duration;

use tokio::sync::watch;

pub use launch::{Delegate, Delegated, JobEnd, Launch, Launcher, Local, Sweep};
pub use readback::Readback;
pub(crate) use spawn::argv_for_slot;
pub use stdio::{CaptureRoot, FileDest, file_dest, job_dir_name};
pub use stop::{run_stop_command, spawn_stop_command};

use super::{Cancel, Event, EventSink, JobHistory};
use crate::plan::PlannedJob;
use crate::record::{Attempt, CompletedProcess, Secrets, Status};

/// Where a bare program name is found on orchestrate's own PATH, as execvp looks.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let search = std::env::var_os("PATH")?;
    path::find_in_path(std::ffi::OsStr::new(program), &search, None)
}

/// How long to keep reading a pipe after the job's own process exited: a process the job left
/// behind (`sleep 60 &`) may hold it open, and the run must not hang on it.
pub const PIPE_GRACE: Duration = Duration::from_millis(300);

/// What one job's execution needs from the scheduler.
#[derive(Clone)]
pub struct JobCtx {
    pub slot: usize,
    pub capture: CaptureRoot,
    pub events: EventSink,
    pub forward_output: bool,
    pub cancel: watch::Receiver<Cancel>,
    pub launcher: std::sync::Arc<dyn Launcher>,
    /// Variables of the run for every job (`ORCHESTRATE_RUN`).
    pub run_env: Vec<(String, String)>,
    /// Values redacted from captured output (records are sealed by the scheduler).
    pub secrets: Secrets,
    /// What the job's history says (empty for a job without one).
    pub history: JobHistory,
    /// The run heard that this job runs slow (once per job, whatever its attempts).
    pub slow_told: bool,
}

/// Runs one job to its end, with its retries, and returns its record. Never fails: a job that
/// cannot start is a record with status `spawn_error`.
pub async fn run_job(job: &PlannedJob, mut ctx: JobCtx) -> CompletedProcess {
    let mut earlier: Vec<Attempt> = Vec::new();
    let mut attempt = 1u32;
    let total = job.retry.retries + 1;
    loop {
        let mut rec = attempt::run_attempt(job, &mut ctx).await;
        rec.attempts = attempt;
        if rec.host_failed && ctx.launcher.moves_on_host_failure() {
            // Its back end runs it again elsewhere: not here, where its host just failed.
            return last_attempt(rec, earlier, &ctx);
        }
        let again = attempt < total
            && matches!(rec.status, Status::Failed | Status::TimedOut)
            && (job.retry.on.is_empty()
                || rec.returncode.is_some_and(|c| job.retry.on.contains(&c)))
            && *ctx.cancel.borrow() == Cancel::None;
        if !again {
            return last_attempt(rec, earlier, &ctx);
        }
        earlier.push(Attempt::of(&rec, attempt, rec.host_failed));
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
            return last_attempt(rec, earlier, &ctx);
        }
    }
}

/// The job's record: its last attempt, with the ones before it and what its history said.
fn last_attempt(
    mut rec: CompletedProcess,
    earlier: Vec<Attempt>,
    ctx: &JobCtx,
) -> CompletedProcess {
    rec.earlier_attempts = earlier;
    rec.notes.extend(ctx.history.notes.iter().cloned());
    rec.settle_flaky();
    rec
}

/// Returns once the run is being stopped.
pub async fn wait_cancel(rx: &mut watch::Receiver<Cancel>) {
    loop {
        if *rx.borrow_and_update() != Cancel::None {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
