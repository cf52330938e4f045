//! One ssh job to its end: a slot on a host, the host's master, the job run there. A lost
//! master is reopened (once, for every job on the host) and a job that had not started yet
//! runs on it; a host that failed is down, and with `on_host_failure: retry_elsewhere` the job
//! moves to another of its hosts, as a new attempt when it had started.

use std::collections::HashSet;
use std::sync::Arc;

use super::Ssh;
use super::pool::{NoHost, Pool};
use crate::exec::process::{JobCtx, run_job, wait_cancel};
use crate::exec::{Cancel, Event, ends};
use crate::plan::{PlannedJob, SshOptions};
use crate::record::{Attempt, CompletedProcess, Status};

/// How often a job that had not started yet runs again on its host after its master was
/// reopened: past that, its failure is the job's.
const SAME_HOST_AGAIN: u32 = 2;

/// Runs a job on one of its hosts (see the module's line).
pub async fn run(
    job: &PlannedJob,
    opts: &SshOptions,
    ctx: JobCtx,
    pool: &Pool,
) -> CompletedProcess {
    let mut tried: HashSet<String> = HashSet::new();
    let mut moves = Moves::default();
    let mut cancel = ctx.cancel.clone();
    let mut again = 0;
    loop {
        let acquired = tokio::select! {
            a = pool.acquire(opts, &tried) => a,
            _ = wait_cancel(&mut cancel) => {
                let why = "not started: the run was interrupted".to_string();
                return moves.end(ends::not_run(job, ctx.slot, None, Status::Cancelled, why));
            }
        };
        let lease = match acquired {
            Ok(l) => l,
            Err(NoHost::Tried) => return moves.unreached(job, ctx.slot, None, None),
            Err(NoHost::Down(why)) => return moves.unreached(job, ctx.slot, None, Some(why)),
        };
        let host = lease.host().to_string();
        let master = match pool.master(&lease.key).await {
            Ok(m) => m,
            Err(why) => {
                tried.insert(host.clone());
                moves.not_reached.push(why);
                if opts.retry_elsewhere {
                    continue;
                }
                return moves.unreached(job, ctx.slot, Some(host), None);
            }
        };
        let launcher = Arc::new(Ssh::new(host.clone(), master.args));
        let mut job_ctx = ctx.clone();
        job_ctx.launcher = launcher.clone();
        let mut rec = run_job(job, job_ctx).await;
        let Some(lost) = launcher.lost() else {
            return moves.end(rec);
        };
        // The slot is kept until the host's fate is known: no other job is sent there first.
        let down = pool.lost(&lease.key, master.generation).await;
        drop(lease);
        let stopping = *cancel.borrow() != Cancel::None;
        match (lost.started, down) {
            (false, Ok(())) if again < SAME_HOST_AGAIN && !stopping => again += 1,
            (false, Ok(())) => return moves.end(rec),
            (false, Err(why)) => {
                tried.insert(host);
                if opts.retry_elsewhere && !stopping {
                    moves.not_reached.push(why);
                    continue;
                }
                rec.error = Some(why);
                return moves.end(rec);
            }
            (true, down) => {
                tried.insert(host.clone());
                let elsewhere = opts.hosts.iter().any(|h| !tried.contains(h));
                if !(opts.retry_elsewhere && elsewhere) || stopping {
                    // The error says the connection broke; the note, that the host is gone.
                    rec.notes.extend(down.err());
                    return moves.end(rec);
                }
                let why = match down {
                    Ok(()) => lost.why,
                    Err(down) => format!("{}; {down}", lost.why),
                };
                let attempt = moves.broke(&host, rec, why);
                tell_moving(job, &ctx, attempt, &host);
            }
        }
    }
}

/// The live report's line for a job that leaves a host that failed under it.
fn tell_moving(job: &PlannedJob, ctx: &JobCtx, attempt: u32, host: &str) {
    let _ = ctx.events.send(Event::JobRetrying {
        index: job.index,
        attempt,
        of: attempt + job.retry.retries,
        delay: std::time::Duration::ZERO,
        outcome: format!("ssh host `{host}` failed under it, on to another host"),
    });
}

/// Where a job went before its last host: why it could not start on some, and the attempts
/// that ran on hosts that failed under them.
#[derive(Default)]
struct Moves {
    not_reached: Vec<String>,
    earlier: Vec<Attempt>,
    notes: Vec<String>,
}

impl Moves {
    /// An attempt ended by its host's failure: kept as an earlier attempt of the job. Returns
    /// the number of the job's next attempt.
    fn broke(&mut self, host: &str, rec: CompletedProcess, why: String) -> u32 {
        let n = self.earlier.len() as u32;
        let attempt = n + rec.earlier_attempts.len() as u32 + 1;
        let this = Attempt::of(&rec, attempt, true);
        self.earlier
            .extend(rec.earlier_attempts.into_iter().map(|mut a| {
                a.attempt += n;
                a
            }));
        self.earlier.push(this);
        self.notes.push(format!(
            "attempt {attempt} on `{host}` ended as its host failed ({why}); run again on another host"
        ));
        attempt + 1
    }

    /// The job found no host to run on.
    fn unreached(
        mut self,
        job: &PlannedJob,
        slot: usize,
        host: Option<String>,
        why: Option<String>,
    ) -> CompletedProcess {
        self.not_reached.extend(why);
        let why = std::mem::take(&mut self.not_reached).join("; ");
        self.end(ends::not_run(job, slot, host, Status::SpawnError, why))
    }

    /// The job's record, with where it went before.
    fn end(self, mut rec: CompletedProcess) -> CompletedProcess {
        if rec.host.is_some() && !self.not_reached.is_empty() {
            rec.notes.insert(
                0,
                format!("moved here after: {}", self.not_reached.join("; ")),
            );
        }
        if self.earlier.is_empty() {
            return rec;
        }
        rec.after_attempts(self.earlier);
        let mut notes = self.notes;
        notes.append(&mut rec.notes);
        rec.notes = notes;
        rec
    }
}
