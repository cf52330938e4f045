//! One ssh job to its end: a slot on a host, the host's master, the job run there. A lost
//! master is reopened (once, for every job on the host) and a job that had not started yet
//! runs on it; a host that failed is down, and with `on_host_failure: retry_elsewhere` the job
//! moves to another of its hosts, as a new attempt when it had started.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use super::super::moves::Moves;
use super::Ssh;
use super::pool::{NoHost, Pool};
use crate::exec::Cancel;
use crate::exec::process::{JobCtx, run_job, wait_cancel};
use crate::plan::{PlannedJob, SshOptions};
use crate::record::CompletedProcess;

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
    // After a move, with the retries its attempts before used taken off, as on Slurm.
    let mut this = Cow::Borrowed(job);
    let mut cancel = ctx.cancel.clone();
    let mut again = 0;
    loop {
        let acquired = tokio::select! {
            a = pool.acquire(opts, &tried) => a,
            _ = wait_cancel(&mut cancel) => {
                return moves.interrupted(job, ctx.slot);
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
        let mut rec = run_job(&this, job_ctx).await;
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
                moves.go_on(&mut this, rec, (&ctx, false), said(&host, why));
            }
        }
    }
}

/// What a job's record and the live report say of its attempt on `host`, cut short as the
/// host failed (`why`).
fn said(host: &str, why: String) -> (impl FnOnce(u32) -> String, String) {
    let outcome = format!("ssh host `{host}` failed under it, on to another host");
    let host = host.to_string();
    let note = move |n| {
        format!(
            "attempt {n} on `{host}` ended as its host failed ({why}); run again on another host"
        )
    };
    (note, outcome)
}
