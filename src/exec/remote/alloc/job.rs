//! One job of the run's allocation: on a worker of it, or as a step of its own; again in a
//! new allocation when the one it had is gone, on another worker when its worker ended
//! before it started.

use std::sync::Arc;
use std::time::Duration;

use super::super::slurm::Slurm;
use super::super::worker::OnWorker;
use super::{Allocations, Key};
use crate::exec::process::{self, JobCtx};
use crate::exec::{Cancel, ends};
use crate::plan::{PlannedJob, SlurmOptions};
use crate::record::{CompletedProcess, Status};

/// What srun says of an allocation that has ended (`srun: Check SLURM_JOB_ID environment
/// variable. Expired or invalid job 5`).
const GONE: &str = "Expired or invalid job";

/// Runs `job` as a step of the run's allocation for `key`. A job whose allocation turns out
/// to be gone (past its time limit, cancelled by hand) runs once more, in a new one. A job
/// whose worker ended before it started (its node died) never ran: it runs on another worker
/// (`MOVES` times at most), and its record says so.
pub async fn run(
    job: &PlannedJob,
    o: &SlurmOptions,
    key: &Key,
    mut ctx: JobCtx,
    allocs: &Allocations,
) -> CompletedProcess {
    let mut again = true;
    let mut moves: Vec<String> = Vec::new();
    loop {
        let asked = tokio::time::Instant::now();
        let mut cancel = ctx.cancel.clone();
        let got = tokio::select! {
            g = allocs.get(key) => g,
            () = process::wait_cancel(&mut cancel) => return interrupted(job, &ctx, moves),
        };
        let id = match got {
            Ok(id) => id,
            Err(why) => return moved(ends::spawn_error(job, ctx.slot, None, None, why), moves),
        };
        // A job with a `time:` of its own is a step of its own: its limit is the step's.
        let on_worker = match (o.time.is_none(), allocs.workers(key, &id)) {
            (true, Some(pool)) => tokio::select! {
                lease = pool.take() => Some(Arc::new(OnWorker::new(o, id.clone(), lease))),
                () = process::wait_cancel(&mut cancel) => return interrupted(job, &ctx, moves),
            },
            _ => None,
        };
        ctx.launcher = match &on_worker {
            Some(w) => w.clone(),
            None => Arc::new(Slurm::step_of(o.clone(), id.clone())),
        };
        let waited = asked.elapsed();
        let mut rec = process::run_job(job, ctx.clone()).await;
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
            moves.push(why);
            if moves.len() <= MOVES && *cancel.borrow() == Cancel::None {
                continue;
            }
            rec.error = Some(format!(
                "{}; no worker of the run's Slurm allocation could run it ({} tried)",
                rec.error.unwrap_or_default(),
                moves.len()
            ));
        }
        if waited >= Duration::from_secs(1) {
            rec.notes.push(format!(
                "waited {} for the run's Slurm allocation {id}",
                crate::record::format_duration(waited)
            ));
        }
        return moved(rec, moves);
    }
}

/// How often a job whose worker ended before it started runs on another one: past that,
/// its failure is the job's.
const MOVES: usize = 3;

/// The record of a job interrupted before it started.
fn interrupted(job: &PlannedJob, ctx: &JobCtx, moves: Vec<String>) -> CompletedProcess {
    let why = "not started: the run was interrupted".to_string();
    moved(
        ends::not_run(job, ctx.slot, None, Status::Cancelled, why),
        moves,
    )
}

/// `rec`, with a note of the workers it left before it started (as an ssh job that moved to
/// another host): not attempts, since the job never ran there.
fn moved(mut rec: CompletedProcess, moves: Vec<String>) -> CompletedProcess {
    if !moves.is_empty() {
        rec.notes
            .insert(0, format!("moved here after: {}", moves.join("; ")));
    }
    rec
}
