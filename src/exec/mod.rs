//! The scheduler: runs a `Plan` with bounded concurrency and reports through events. It knows
//! nothing of terminals or SQL; reporters and the store consume its events.

pub mod process;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use process::{CaptureRoot, Launcher, Local, job_dir_name};

use crate::plan::Plan;
use crate::record::{CompletedProcess, Status};

/// Which output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What happens during a run, in the order it happens.
#[derive(Debug, Clone)]
pub enum Event {
    JobStarted {
        index: usize,
        pid: Option<u32>,
        slot: usize,
        started: SystemTime,
    },
    /// A line of a job's output (only with `ExecOptions::forward_output`).
    Output {
        index: usize,
        stream: Stream,
        line: Vec<u8>,
    },
    JobFinished(Box<CompletedProcess>),
}

/// Events go to one consumer thread (reporter and store), so sending never blocks a job.
pub type EventSink = std::sync::mpsc::Sender<Event>;

/// A request to stop the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    None,
    /// TERM to every job's group, KILL after its grace; the number is the signal received.
    Graceful(i32),
    /// KILL at once (a second Ctrl-C).
    Hard,
}

pub struct ExecOptions {
    /// Jobs in flight at once (at least 1).
    pub concurrency: usize,
    pub capture: CaptureRoot,
    /// Send each output line as an `Event::Output` (for live display).
    pub forward_output: bool,
    pub launcher: Arc<dyn Launcher>,
    /// Variables added to every job's environment.
    pub extra_env: Vec<(String, String)>,
}

/// Counts by status, in the order the records were made.
#[derive(Debug, Default, Clone)]
pub struct ExecSummary {
    pub total: usize,
    pub by_status: std::collections::BTreeMap<&'static str, usize>,
    pub failed: usize,
}

impl ExecSummary {
    fn add(&mut self, rec: &CompletedProcess) {
        self.total += 1;
        *self.by_status.entry(rec.status.as_str()).or_default() += 1;
        if rec.status.is_failure() {
            self.failed += 1;
        }
    }
}

/// Runs every job of `plan`, at most `opts.concurrency` at a time, in job-file order as slots
/// free up. Every job ends as exactly one `JobFinished` event, including jobs never started
/// because the run was cancelled.
pub async fn execute(
    plan: Arc<Plan>,
    opts: ExecOptions,
    events: EventSink,
    mut cancel: watch::Receiver<Cancel>,
) -> ExecSummary {
    let n = opts.concurrency.max(1);
    let mut free_slots: Vec<usize> = (0..n).rev().collect();
    let mut next = 0usize;
    let mut running: JoinSet<(usize, CompletedProcess)> = JoinSet::new();
    let mut summary = ExecSummary::default();
    let mut cancelled = *cancel.borrow() != Cancel::None;
    let mut cancel_open = true;
    let mut in_flight: std::collections::HashMap<tokio::task::Id, (usize, usize)> =
        std::collections::HashMap::new();

    loop {
        while !cancelled && next < plan.jobs.len() {
            let Some(slot) = free_slots.pop() else { break };
            let ctx = process::JobCtx {
                slot,
                capture: opts.capture.clone(),
                events: events.clone(),
                forward_output: opts.forward_output,
                cancel: cancel.clone(),
                launcher: opts.launcher.clone(),
                extra_env: opts.extra_env.clone(),
            };
            let plan = plan.clone();
            let index = next;
            let handle = running.spawn(async move {
                let rec = process::run_job(&plan.jobs[index], ctx).await;
                (slot, rec)
            });
            in_flight.insert(handle.id(), (slot, index));
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next_with_id() => {
                let rec = match joined {
                    Some(Ok((id, (slot, rec)))) => {
                        in_flight.remove(&id);
                        free_slots.push(slot);
                        rec
                    }
                    Some(Err(e)) => {
                        // A job task panicked: the job still gets a record saying so.
                        let Some((slot, index)) = in_flight.remove(&e.id()) else { continue };
                        free_slots.push(slot);
                        let job = &plan.jobs[index];
                        CompletedProcess::not_started(
                            &job.name,
                            index,
                            job.argv.clone(),
                            Status::Failed,
                            format!("internal error while running the job: {e}"),
                        )
                    }
                    None => continue,
                };
                summary.add(&rec);
                let _ = events.send(Event::JobFinished(Box::new(rec)));
            }
            r = cancel.changed(), if cancel_open && !cancelled => {
                match r {
                    Ok(()) => cancelled = *cancel.borrow() != Cancel::None,
                    Err(_) => cancel_open = false,
                }
            }
        }
    }

    // Jobs never started because the run was stopped.
    for job in &plan.jobs[next..] {
        let rec = CompletedProcess::not_started(
            &job.name,
            job.index,
            job.argv.clone(),
            Status::Cancelled,
            "not started: the run was interrupted".to_string(),
        );
        summary.add(&rec);
        let _ = events.send(Event::JobFinished(Box::new(rec)));
    }
    summary
}
