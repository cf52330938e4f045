//! Background jobs as the store knows them, settled against their supervisors (or Slurm), and
//! the commands `wait` and `kill`.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use super::inspect::InspectError;
use crate::error::exit;
use crate::record::{CompletedProcess, Sealed, Status};
use crate::store::{RunStore, StoreError, Viewer};

/// A background job: its run and its record.
type Background = (String, CompletedProcess);

/// Background jobs from the store, with vanished supervisors settled as lost.
pub(super) fn background_now(
    db: &mut RunStore,
    unseen_by: Option<Viewer>,
) -> Result<Vec<Background>, InspectError> {
    background_sweep(db, unseen_by, true)
}

/// Slurm's running jobs in `rows`, settled with one question to Slurm for all of them.
fn settle_slurm(
    db: &mut RunStore,
    rows: &mut [(String, CompletedProcess, bool)],
) -> Result<(), InspectError> {
    let at: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].1.status == Status::Background && rows[i].1.slurm_job_id.is_some())
        .collect();
    let mut recs: Vec<CompletedProcess> = at.iter().map(|&i| rows[i].1.clone()).collect();
    let ended = crate::exec::sbatch::poll_all(&mut recs);
    for ((&i, rec), ended) in at.iter().zip(recs).zip(ended) {
        if ended {
            db.put_background(&rows[i].0, &Sealed::trusted(rec.clone()))?;
        }
        rows[i].1 = rec;
    }
    Ok(())
}

/// `background_now`; Slurm is asked about its jobs only with `ask_slurm` (a question costs
/// the controller RPCs: `wait` asks less and less often).
fn background_sweep(
    db: &mut RunStore,
    unseen_by: Option<Viewer>,
    ask_slurm: bool,
) -> Result<Vec<Background>, InspectError> {
    let mut out = Vec::new();
    let mut rows = db.background_jobs(unseen_by)?;
    if ask_slurm {
        settle_slurm(db, &mut rows)?;
    }
    for (run, mut rec, _) in rows {
        if rec.slurm_job_id.is_some() {
            // Slurm knows how it is doing (asked above).
        } else if rec.status == Status::Background
            && !rec.supervisor.as_ref().is_some_and(|s| s.may_live())
        {
            // The supervisor is dead: what it recorded before it died is in the store now.
            rec = db.record_at(&run, rec.index, &rec.job)?;
            if rec.status != Status::Background {
                out.push((run, rec));
                continue;
            }
            rec.status = Status::Lost;
            // What was said of it while it ran ("running in the background") no longer holds.
            rec.notes.clear();
            rec.error = Some(if orphaned(&rec) {
                format!(
                    "its supervisor is gone (killed) while the job still runs (pid {}): nobody will record how it ends; `orchestrate kill {}` stops it",
                    rec.pid.unwrap_or(0),
                    rec.job
                )
            } else {
                "its supervisor is gone (killed, or the machine restarted) without recording how the job ended".into()
            });
            rec.finished = SystemTime::now();
            db.put_background(&run, &Sealed::trusted(rec.clone()))?;
        }
        out.push((run, rec));
    }
    Ok(out)
}

/// A lost background job whose own process group still runs (its supervisor was killed).
fn orphaned(rec: &CompletedProcess) -> bool {
    rec.process.as_ref().is_some_and(|p| p.group_may_live())
}

/// When `wait` first asks Slurm about its jobs, and its longest gap between two questions.
const SLURM_FIRST: Duration = Duration::from_millis(250);
const SLURM_MAX_GAP: Duration = Duration::from_secs(5);

/// `orchestrate wait`: until the chosen jobs end (0 if all succeeded, 1 if not), or 124 when
/// the timeout comes first.
pub(super) fn wait(
    db: &mut RunStore,
    targets: &[String],
    timeout: Option<Duration>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let chosen = wait_targets(db, targets)?;
    let t0 = Instant::now();
    // Slurm is asked after 0.25 s, then twice as late each time, at most every 5 s.
    let (mut slurm_at, mut slurm_gap) = (t0 + SLURM_FIRST, SLURM_FIRST);
    loop {
        let ask = Instant::now() >= slurm_at;
        if ask {
            slurm_gap = (slurm_gap * 2).min(SLURM_MAX_GAP);
            slurm_at = Instant::now() + slurm_gap;
        }
        let now = background_sweep(db, None, ask)?;
        let states: Vec<&Background> = now
            .iter()
            .filter(|(run, r)| chosen.iter().any(|(cr, cj)| cr == run && *cj == r.job))
            .collect();
        let pending = states
            .iter()
            .filter(|(_, r)| r.status == Status::Background)
            .count();
        if pending == 0 {
            let mut failed = false;
            for (run, r) in &states {
                writeln!(out, "{run} {} {} {}", r.job, r.status, r.outcome())?;
                failed |= r.status.is_failure();
            }
            let seen: Vec<(String, usize, String)> = states
                .iter()
                .map(|(run, r)| (run.clone(), r.index, r.job.clone()))
                .collect();
            db.mark_seen(&seen, Viewer::Wait)?;
            return Ok(if failed { exit::JOB_FAILED } else { exit::OK });
        }
        if timeout.is_some_and(|t| t0.elapsed() >= t) {
            writeln!(
                out,
                "{pending} background job(s) still running after the timeout"
            )?;
            return Ok(exit::WAIT_TIMEOUT);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What to wait for, as (run, job) pairs: every running job, or those the targets name (a job
/// name, or a run and all its background jobs).
fn wait_targets(
    db: &mut RunStore,
    targets: &[String],
) -> Result<Vec<(String, String)>, InspectError> {
    let mut chosen: Vec<(String, String)> = Vec::new();
    if targets.is_empty() {
        // The running jobs, and those that ended since anyone last looked: a job that failed
        // before `wait` was asked fails `wait` as one that fails while it waits.
        for (run, r) in background_now(db, Some(Viewer::Wait))? {
            chosen.push((run, r.job));
        }
        return Ok(chosen);
    }
    let all = background_now(db, None)?;
    for t in targets {
        if let Some((run, r)) = all.iter().find(|(_, r)| &r.job == t) {
            chosen.push((run.clone(), r.job.clone()));
            continue;
        }
        match db.resolve_run(t) {
            Ok(id) => {
                let of_run: Vec<_> = all.iter().filter(|(run, _)| *run == id).collect();
                if of_run.is_empty() {
                    return Err(InspectError::Usage(format!(
                        "run {id} has no background jobs"
                    )));
                }
                chosen.extend(of_run.iter().map(|(run, r)| (run.clone(), r.job.clone())));
            }
            Err(_) => {
                let names: Vec<String> = all.iter().map(|(_, r)| r.job.clone()).collect();
                let mut msg = format!("`{t}` is neither a background job nor a run");
                if let Some(s) = crate::error::suggest(t, &names) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                return Err(InspectError::Store(StoreError::NotFound(msg)));
            }
        }
    }
    Ok(chosen)
}

/// `orchestrate kill`: asks the job's supervisor (or Slurm) to stop it, and waits until it is
/// recorded as ended.
pub(super) fn kill(
    db: &mut RunStore,
    job: &str,
    run: Option<&str>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let run_id = match run {
        Some(r) => Some(db.resolve_run(r)?),
        None => None,
    };
    let all = background_now(db, None)?;
    let Some((run, rec)) = all.into_iter().find(|(r, rec)| {
        rec.job == job
            && (rec.status == Status::Background || (rec.status == Status::Lost && orphaned(rec)))
            && run_id.as_ref().is_none_or(|id| id == r)
    }) else {
        return Err(InspectError::Store(StoreError::NotFound(format!(
            "no background job `{job}` is running"
        ))));
    };
    if rec.status == Status::Lost {
        return stop_orphan(db, &run, rec, out);
    }
    if let Some(id) = &rec.slurm_job_id {
        crate::exec::sbatch::scancel(&[id]);
    } else if let Some(sup) = &rec.supervisor {
        // The supervisor stops the job (TERM to its group, KILL after its grace) and records it.
        let _ = crate::sys::kill(sup.pid, crate::sys::SIGTERM);
    }
    let t0 = Instant::now();
    loop {
        let mut r = db.record_at(&run, rec.index, job)?;
        if r.slurm_job_id.is_some()
            && r.status == Status::Background
            && crate::exec::sbatch::poll_cancelled(&mut r)
        {
            db.put_background(&run, &Sealed::trusted(r.clone()))?;
        }
        if r.status != Status::Background {
            writeln!(out, "{run} {} {} {}", r.job, r.status, r.outcome())?;
            return Ok(exit::OK);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(InspectError::Usage(format!(
                "`{job}` did not stop within 2 minutes"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a background job whose supervisor is gone: TERM to its process group, KILL after
/// 10 s, and its record says it was stopped (its exit status was nobody's to collect).
fn stop_orphan(
    db: &mut RunStore,
    run: &str,
    mut rec: CompletedProcess,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let Some(pgid) = rec.pid.filter(|&p| p > 1) else {
        return Err(InspectError::Usage(format!(
            "`{}` has no process to stop",
            rec.job
        )));
    };
    let gone = |rec: &CompletedProcess| !orphaned(rec);
    let _ = crate::sys::killpg(pgid, crate::sys::SIGTERM);
    let t0 = Instant::now();
    while !gone(&rec) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !gone(&rec) {
        let _ = crate::sys::killpg(pgid, crate::sys::SIGKILL);
    }
    rec.status = Status::Cancelled;
    rec.error = Some(
        "stopped by `orchestrate kill` after its supervisor was gone; its exit status is unknown"
            .into(),
    );
    rec.finished = SystemTime::now();
    db.put_background(run, &Sealed::trusted(rec.clone()))?;
    writeln!(out, "{run} {} {} {}", rec.job, rec.status, rec.outcome())?;
    Ok(exit::OK)
}
