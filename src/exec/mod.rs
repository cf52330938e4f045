//! The scheduler: runs a `Plan` with bounded concurrency and reports through events. It knows
//! nothing of terminals or SQL; reporters and the store consume its events.

pub mod background;
pub mod process;
pub mod sbatch;
pub mod slurm;
pub mod ssh;
pub mod wrap;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use process::{CaptureRoot, Launcher, Local, job_dir_name};

use crate::plan::{Executor, HaltSpec, Plan};
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
    /// A failed attempt; the job runs again after `delay`.
    JobRetrying {
        index: usize,
        attempt: u32,
        of: u32,
        delay: std::time::Duration,
        outcome: String,
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
    /// Values redacted from captured output and records.
    pub secrets: Arc<Vec<String>>,
    /// How to start background jobs (`None`: they cannot run, e.g. without a store).
    pub background: Option<background::BackgroundCtx>,
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

/// Runs every job of `plan`: a job starts once the jobs it needs succeeded, in job-file order
/// among the ready ones, while fewer than `opts.concurrency` run (and fewer than its group's
/// limit). Every job ends as exactly one `JobFinished` event, including jobs skipped because a
/// job they need failed, and jobs never started because the run was stopped.
pub async fn execute(
    plan: Arc<Plan>,
    opts: ExecOptions,
    events: EventSink,
    mut cancel: watch::Receiver<Cancel>,
) -> ExecSummary {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    let n_jobs = plan.jobs.len();
    let n = opts.concurrency.max(1);
    let mut free_slots: Vec<usize> = (0..n).rev().collect();
    let mut running: JoinSet<(usize, CompletedProcess)> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
    let mut summary = ExecSummary::default();
    let mut cancelled = *cancel.borrow() != Cancel::None;
    let mut cancel_open = true;
    // Jobs see this channel: it carries the user's cancellation and `on_failure: kill`.
    let (stop_tx, stop_rx) = watch::channel(*cancel.borrow());

    let mut waiting_on: Vec<usize> = plan.jobs.iter().map(|j| j.needs.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n_jobs];
    for j in &plan.jobs {
        for &d in &j.needs {
            dependents[d].push(j.index);
        }
    }
    let mut recorded = vec![false; n_jobs];
    // Ready jobs by group, each in job-file order; the earliest startable one goes first.
    let mut ready: BTreeMap<Option<&str>, BTreeSet<usize>> = BTreeMap::new();
    for j in &plan.jobs {
        if j.needs.is_empty() {
            ready.entry(j.group.as_deref()).or_default().insert(j.index);
        }
    }
    let mut group_running: HashMap<&str, usize> = HashMap::new();
    let mut halted: Option<String> = None;
    // Shared by every ssh job: slots per host and one connection each.
    let ssh_pool = Arc::new(ssh::Pool::new());

    let emit = |mut rec: CompletedProcess, summary: &mut ExecSummary, recorded: &mut Vec<bool>| {
        if rec.def_hash.is_empty() {
            rec.def_hash = plan.jobs[rec.index].def_hash.clone();
        }
        recorded[rec.index] = true;
        summary.add(&rec);
        let _ = events.send(Event::JobFinished(Box::new(rec)));
    };

    loop {
        while !cancelled && halted.is_none() && !free_slots.is_empty() {
            let pick = ready
                .iter()
                .filter(|(g, set)| {
                    !set.is_empty()
                        && g.is_none_or(|g| {
                            group_running.get(g).copied().unwrap_or(0)
                                < plan.groups.get(g).copied().unwrap_or(usize::MAX)
                        })
                })
                .filter_map(|(g, set)| set.first().map(|&i| (i, *g)))
                .min();
            let Some((index, group)) = pick else { break };
            if let Some(set) = ready.get_mut(&group) {
                set.remove(&index);
            }
            if let Some(g) = group {
                *group_running.entry(g).or_default() += 1;
            }
            let slot = free_slots.pop().expect("checked non-empty");
            let ctx = process::JobCtx {
                slot,
                capture: opts.capture.clone(),
                events: events.clone(),
                forward_output: opts.forward_output,
                cancel: stop_rx.clone(),
                launcher: opts.launcher.clone(),
                extra_env: opts.extra_env.clone(),
                secrets: opts.secrets.clone(),
            };
            let plan = plan.clone();
            let bg = opts.background.clone();
            let pool = ssh_pool.clone();
            let handle = running.spawn(async move {
                let job = &plan.jobs[index];
                let rec = match (&bg, job.background, &job.executor) {
                    (Some(bg), true, Executor::Slurm(o)) => {
                        sbatch::run_background(job, ctx, o, bg).await
                    }
                    (Some(bg), true, _) => background::run_background(job, ctx, bg).await,
                    (_, _, Executor::Local) => process::run_job(job, ctx).await,
                    (_, _, Executor::Slurm(o)) => {
                        let mut ctx = ctx;
                        ctx.launcher = Arc::new(slurm::Slurm::new(o.clone()));
                        process::run_job(job, ctx).await
                    }
                    (_, _, Executor::Ssh(o)) => ssh::run(job, o, ctx, &pool).await,
                };
                (slot, rec)
            });
            in_flight.insert(handle.id(), (slot, index));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next_with_id() => {
                let (slot, index, rec) = match joined {
                    Some(Ok((id, (slot, rec)))) => {
                        in_flight.remove(&id);
                        (slot, rec.index, rec)
                    }
                    Some(Err(e)) => {
                        // A job task panicked: the job still gets a record saying so.
                        let Some((slot, index)) = in_flight.remove(&e.id()) else { continue };
                        let job = &plan.jobs[index];
                        let rec = CompletedProcess::not_started(
                            &job.name,
                            index,
                            job.argv.clone(),
                            Status::Failed,
                            format!("internal error while running the job: {e}"),
                        );
                        (slot, index, rec)
                    }
                    None => continue,
                };
                free_slots.push(slot);
                if let Some(g) = plan.jobs[index].group.as_deref()
                    && let Some(c) = group_running.get_mut(g) {
                        *c -= 1;
                    }
                let failed = rec.status.is_failure();
                let what = describe(&rec);
                emit(rec, &mut summary, &mut recorded);
                if failed {
                    skip_dependents(&plan, index, &what, &dependents, &mut recorded, &mut summary, &emit);
                    if halted.is_none() && !cancelled && plan.on_failure != HaltSpec::Continue {
                        halted = Some(format!(
                            "not started: `{}` {what} and the run stops on failure",
                            plan.jobs[index].name
                        ));
                        if plan.on_failure == HaltSpec::Kill {
                            let _ = stop_tx.send(Cancel::Graceful(crate::sys::SIGTERM));
                        }
                    }
                } else {
                    for &d in &dependents[index] {
                        if recorded[d] {
                            continue;
                        }
                        waiting_on[d] -= 1;
                        if waiting_on[d] == 0 {
                            ready.entry(plan.jobs[d].group.as_deref()).or_default().insert(d);
                        }
                    }
                }
            }
            r = cancel.changed(), if cancel_open => {
                match r {
                    Ok(()) => {
                        let c = *cancel.borrow();
                        cancelled = c != Cancel::None;
                        let _ = stop_tx.send(c);
                    }
                    Err(_) => cancel_open = false,
                }
            }
        }
    }

    // Jobs that never started: stopped by the user, or by the halt policy.
    for job in &plan.jobs {
        if recorded[job.index] {
            continue;
        }
        let (status, why) = if cancelled {
            (
                Status::Cancelled,
                "not started: the run was interrupted".to_string(),
            )
        } else if let Some(h) = &halted {
            (Status::Skipped, h.clone())
        } else {
            (Status::Skipped, "not started".to_string())
        };
        let rec =
            CompletedProcess::not_started(&job.name, job.index, job.argv.clone(), status, why);
        emit(rec, &mut summary, &mut recorded);
    }
    ssh_pool.close().await;
    summary
}

/// "failed (exit 3)", "timed out", ...: how a job ended, for skip reasons.
fn describe(rec: &CompletedProcess) -> String {
    match rec.status {
        Status::Failed => format!("failed ({})", rec.outcome()),
        Status::TimedOut => "timed out".to_string(),
        Status::Cancelled => "was cancelled".to_string(),
        Status::SpawnError => "could not start".to_string(),
        Status::Skipped => "was skipped".to_string(),
        other => other.to_string(),
    }
}

/// Records every job that (transitively) needs `failed` as skipped, with the reason.
fn skip_dependents(
    plan: &Plan,
    failed: usize,
    what: &str,
    dependents: &[Vec<usize>],
    recorded: &mut Vec<bool>,
    summary: &mut ExecSummary,
    emit: &impl Fn(CompletedProcess, &mut ExecSummary, &mut Vec<bool>),
) {
    let mut queue: std::collections::VecDeque<(usize, String)> = dependents[failed]
        .iter()
        .map(|&d| {
            (
                d,
                format!("needs `{}`, which {what}", plan.jobs[failed].name),
            )
        })
        .collect();
    while let Some((d, why)) = queue.pop_front() {
        if recorded[d] {
            continue;
        }
        let job = &plan.jobs[d];
        let rec =
            CompletedProcess::not_started(&job.name, d, job.argv.clone(), Status::Skipped, why);
        emit(rec, summary, recorded);
        for &dd in &dependents[d] {
            queue.push_back((dd, format!("needs `{}`, which was skipped", job.name)));
        }
    }
}
