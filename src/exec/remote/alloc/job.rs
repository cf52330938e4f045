//! One job of the run's allocation: on a worker of it, or as a step of its own; again in a
//! new allocation when the one it had is gone, on another worker when its worker ended
//! before it started.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::super::slurm::Slurm;
use super::super::worker::OnWorker;
use super::{Allocations, Key};
use crate::exec::process::{self, JobCtx};
use crate::exec::{Cancel, ends};
use crate::plan::{PlannedJob, SlurmOptions};
use crate::record::{Attempt, CompletedProcess, Status};

/// What srun says of an allocation that has ended (`srun: Check SLURM_JOB_ID environment
/// variable. Expired or invalid job 5`).
const GONE: &str = "Expired or invalid job";

/// Runs `job` as a step of the run's allocation for `key`. A job whose allocation turns out
/// to be gone (past its time limit, cancelled by hand) runs once more, in a new one. A job
/// whose worker ended before it started (its node died) never ran: it runs on another worker
/// (`MOVES` times at most), with the retries its attempts before left, and its record says so.
pub async fn run(
    job: &PlannedJob,
    o: &SlurmOptions,
    key: &Key,
    mut ctx: JobCtx,
    allocs: &Allocations,
) -> CompletedProcess {
    let mut again = true;
    let mut moves = Moves::default();
    let mut this = Cow::Borrowed(job);
    loop {
        let asked = tokio::time::Instant::now();
        let mut cancel = ctx.cancel.clone();
        let got = tokio::select! {
            g = allocs.get(key) => g,
            () = process::wait_cancel(&mut cancel) => return moves.interrupted(job, &ctx),
        };
        let id = match got {
            Ok(id) => id,
            Err(why) => return moves.end(ends::spawn_error(job, ctx.slot, None, None, why)),
        };
        // A job with a `time:` of its own is a step of its own: its limit is the step's.
        let on_worker = match (o.time.is_none(), allocs.workers(key, &id)) {
            (true, Some(pool)) => tokio::select! {
                lease = pool.take() => Some(Arc::new(OnWorker::new(o, id.clone(), lease))),
                () = process::wait_cancel(&mut cancel) => return moves.interrupted(job, &ctx),
            },
            _ => None,
        };
        ctx.launcher = match &on_worker {
            Some(w) => w.clone(),
            None => Arc::new(Slurm::step_of(o.clone(), id.clone())),
        };
        let waited = asked.elapsed();
        let mut rec = process::run_job(&this, ctx.clone()).await;
        let gone = rec.status == Status::SpawnError
            && rec.error.as_deref().is_some_and(|e| e.contains(GONE));
        if gone {
            allocs.lost(key, &id);
            if std::mem::take(&mut again) {
                continue;
            }
        }
        let lost = on_worker.and_then(|w| w.lost());
        if let Some(why) = lost.filter(|_| rec.status == Status::SpawnError && !gone) {
            // Its lease goes first: its dead worker's slot is given up before another is taken.
            ctx.launcher = Arc::new(Slurm::step_of(o.clone(), id.clone()));
            if moves.whys.len() < MOVES && *cancel.borrow() == Cancel::None {
                let ran = moves.left(why, &mut rec);
                let retry = &mut this.to_mut().retry;
                retry.retries = retry.retries.saturating_sub(ran);
                continue;
            }
            rec.error = Some(format!(
                "{}; no worker of the run's Slurm allocation could run it ({} tried)",
                rec.error.unwrap_or_default(),
                moves.whys.len() + 1
            ));
        }
        if waited >= Duration::from_secs(1) {
            rec.notes.push(format!(
                "waited {} for the run's Slurm allocation {id}",
                crate::record::format_duration(waited)
            ));
        }
        return moves.end(rec);
    }
}

/// How often a job whose worker ended before it started runs on another one: past that,
/// its failure is the job's.
const MOVES: usize = 3;

/// The workers a job left before it started there (as an ssh job that moves to another
/// host): not attempts, since the job never ran there; and the attempts it ran before.
#[derive(Default)]
struct Moves {
    whys: Vec<String>,
    earlier: Vec<Attempt>,
}

impl Moves {
    /// The job left its worker (`why`) after `lost`'s attempts ran: they are kept as its
    /// earlier attempts. Returns how many there were.
    fn left(&mut self, why: String, lost: &mut CompletedProcess) -> u32 {
        let n = self.earlier.len() as u32;
        let ran = std::mem::take(&mut lost.earlier_attempts);
        let count = ran.len() as u32;
        self.earlier.extend(ran.into_iter().map(|mut a| {
            a.attempt += n;
            a
        }));
        self.whys.push(why);
        count
    }

    /// The record of a job interrupted before it started.
    fn interrupted(self, job: &PlannedJob, ctx: &JobCtx) -> CompletedProcess {
        let why = "not started: the run was interrupted".to_string();
        self.end(ends::not_run(job, ctx.slot, None, Status::Cancelled, why))
    }

    /// The job's record, with where it went before.
    fn end(self, mut rec: CompletedProcess) -> CompletedProcess {
        if !self.whys.is_empty() {
            let note = format!("moved here after: {}", self.whys.join("; "));
            rec.notes.insert(0, note);
        }
        rec.after_attempts(self.earlier);
        rec
    }
}
