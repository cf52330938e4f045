//! One job of the run's allocation: on a worker of it, or as a step of its own; again in a
//! new allocation when the one it had is gone, on another worker when its worker ended
//! before it started.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::super::moves::Moves;
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
            () = process::wait_cancel(&mut cancel) => return moves.interrupted(job, ctx.slot),
        };
        let id = match got {
            Ok(id) => id,
            Err(why) => return moves.end(ends::spawn_error(job, ctx.slot, None, None, why)),
        };
        // A job with a `time:` of its own is a step of its own: its limit is the step's.
        let on_worker = match (o.time.is_none(), allocs.workers(key, &id)) {
            (true, Some(pool)) => tokio::select! {
                lease = pool.take() => Some(Arc::new(OnWorker::new(o, id.clone(), lease))),
                () = process::wait_cancel(&mut cancel) => return moves.interrupted(job, ctx.slot),
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
            if moves.moved() < MOVES && *cancel.borrow() == Cancel::None {
                let ran = moves.left(why, &mut rec);
                let retry = &mut this.to_mut().retry;
                retry.retries = retry.retries.saturating_sub(ran);
                continue;
            }
            rec.error = Some(format!(
                "{}; no worker of the run's Slurm allocation could run it ({} tried)",
                rec.error.unwrap_or_default(),
                moves.moved() + 1
            ));
        }
        let stopping = *cancel.borrow() != Cancel::None;
        if rec.host_failed && o.retry_elsewhere && !stopping {
            // Past `MOVES`, a move takes one of the job's retries, while it has any left.
            let free = moves.moved() < MOVES;
            if free || this.retry.retries > rec.earlier_attempts.len() as u32 {
                ctx.launcher = Arc::new(Slurm::step_of(o.clone(), id.clone()));
                let said = said(&rec);
                moves.go_on(&mut this, rec, (&ctx, !free), said);
                continue;
            }
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

/// How often a job whose worker ended (before it started, or under it with
/// `on_host_failure: retry_elsewhere`) runs on another one: past that, its failure is the job's.
const MOVES: usize = 3;

/// What a job's record and the live report say of its attempt `rec`, cut short as its Slurm
/// worker's step or node failed.
fn said(rec: &CompletedProcess) -> (impl FnOnce(u32) -> String + use<>, String) {
    let node = rec.host.clone().unwrap_or_else(|| "a node".into());
    let why = rec.error.clone().unwrap_or_default();
    let outcome = format!("its Slurm worker on `{node}` ended under it, on to another worker");
    let note = move |n| {
        format!(
            "attempt {n} on `{node}` ended as its Slurm step or node failed ({why}); run again on another worker"
        )
    };
    (note, outcome)
}
