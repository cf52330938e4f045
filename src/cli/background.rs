//! Background jobs as the store knows them, settled against their supervisors (or Slurm), and
//! the commands `wait` and `kill`.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use super::inspect::InspectError;
use crate::error::exit;
use crate::record::{CompletedProcess, Sealed, Status};
use crate::store::{BackgroundOf, RunStore, StoreError, Viewer};

/// A background job: its run and its record.
type Background = (String, CompletedProcess);

/// The recent background jobs: what `status --all` shows, and where a name given to `wait`
/// that names nothing finds its closest.
pub(super) const RECENT: usize = 1000;

/// Background jobs from the store, those `which` says, with vanished supervisors settled as
/// lost and Slurm's jobs as Slurm says.
pub(super) fn background_now(
    db: &mut RunStore,
    which: BackgroundOf<'_>,
) -> Result<Vec<Background>, InspectError> {
    let mut jobs = db.background_jobs(which)?;
    settle_slurm(db, &mut jobs)?;
    for (run, rec) in &mut jobs {
        settle_local(db, run, rec)?;
    }
    Ok(jobs)
}

/// Slurm's running jobs in `jobs`, settled with one question to Slurm for all of them.
fn settle_slurm(db: &mut RunStore, jobs: &mut [Background]) -> Result<(), InspectError> {
    let at: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].1.status == Status::Background && jobs[i].1.slurm_job_id.is_some())
        .collect();
    if at.is_empty() {
        return Ok(());
    }
    let mut recs: Vec<CompletedProcess> = at.iter().map(|&i| jobs[i].1.clone()).collect();
    let ended = crate::exec::sbatch::poll_all(&mut recs);
    for ((&i, rec), ended) in at.iter().zip(recs).zip(ended) {
        if ended {
            db.put_background(&jobs[i].0, &Sealed::trusted(rec.clone()))?;
        }
        jobs[i].1 = rec;
    }
    Ok(())
}

/// A running job's record settled against its supervisor: when the supervisor is dead, what
/// it recorded before it died, or else the record says the job is lost. Slurm's jobs and
/// ended ones are left as they are.
fn settle_local(
    db: &mut RunStore,
    run: &str,
    rec: &mut CompletedProcess,
) -> Result<(), InspectError> {
    if rec.slurm_job_id.is_some()
        || rec.status != Status::Background
        || rec.supervisor.as_ref().is_some_and(|s| s.may_live())
    {
        return Ok(());
    }
    *rec = db.record_at(run, rec.index, &rec.job)?;
    if rec.status != Status::Background {
        return Ok(());
    }
    rec.status = Status::Lost;
    // What was said of it while it ran ("running in the background") no longer holds.
    rec.notes.clear();
    rec.error = Some(if orphaned(rec) {
        format!(
            "its supervisor is gone (killed) while the job still runs (pid {}): nobody will record how it ends; `orchestrate kill {}` stops it",
            rec.pid.unwrap_or(0),
            rec.job
        )
    } else {
        "its supervisor is gone (killed, or the machine restarted) without recording how the job ended".into()
    });
    rec.finished = SystemTime::now();
    db.put_background(run, &Sealed::trusted(rec.clone()))?;
    Ok(())
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
    let mut chosen = wait_targets(db, targets)?;
    let t0 = Instant::now();
    // Slurm is asked after 0.25 s, then twice as late each time, at most every 5 s.
    let (mut slurm_at, mut slurm_gap) = (t0 + SLURM_FIRST, SLURM_FIRST);
    loop {
        let pending = chosen
            .iter()
            .filter(|(_, r)| r.status == Status::Background)
            .count();
        if pending == 0 {
            let mut failed = false;
            for (run, r) in &chosen {
                writeln!(out, "{run} {} {} {}", r.job, r.status, r.outcome())?;
                failed |= r.status.is_failure();
            }
            let seen: Vec<(String, usize, String)> = chosen
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
        let ask = Instant::now() >= slurm_at;
        if ask {
            slurm_gap = (slurm_gap * 2).min(SLURM_MAX_GAP);
            slurm_at = Instant::now() + slurm_gap;
        }
        // A look at many jobs takes its own time again as a pause, at least 100 ms: `wait`
        // never takes more than half a core however many jobs it waits for.
        let looked = Instant::now();
        refresh(db, &mut chosen, ask)?;
        std::thread::sleep(looked.elapsed().max(Duration::from_millis(100)));
    }
}

/// The chosen jobs still running, looked at again: each one's status in the store, by its key
/// (however many other background jobs the store holds), then its supervisor; Slurm's jobs
/// with one question for all of them when `ask_slurm`.
fn refresh(
    db: &mut RunStore,
    chosen: &mut [Background],
    ask_slurm: bool,
) -> Result<(), InspectError> {
    for (run, rec) in chosen.iter_mut() {
        if rec.status != Status::Background {
            continue;
        }
        match db.status_at(run, rec.index, &rec.job)? {
            Some(Status::Background) => settle_local(db, run, rec)?,
            Some(_) => *rec = db.record_at(run, rec.index, &rec.job)?,
            None => {
                rec.status = Status::Lost;
                rec.error = Some(format!(
                    "its record left the store while `wait` waited (run {run} was pruned)"
                ));
            }
        }
    }
    if ask_slurm {
        settle_slurm(db, chosen)?;
    }
    Ok(())
}

/// What to wait for, with each job's record as it is now: every running job and those that
/// ended unseen, or those the targets name (a job name: its newest background job; or a run:
/// all its background jobs).
fn wait_targets(db: &mut RunStore, targets: &[String]) -> Result<Vec<Background>, InspectError> {
    if targets.is_empty() {
        // The running jobs, and those that ended since anyone last looked: a job that failed
        // before `wait` was asked fails `wait` as one that fails while it waits.
        return background_now(db, BackgroundOf::Unseen(Viewer::Wait));
    }
    let mut chosen: Vec<Background> = Vec::new();
    for t in targets {
        let found = match background_now(db, BackgroundOf::Named(t))?
            .into_iter()
            .next()
        {
            Some(newest) => vec![newest],
            None => match db.resolve_run(t) {
                Ok(id) => {
                    let of_run = background_now(db, BackgroundOf::OfRun(&id))?;
                    if of_run.is_empty() {
                        return Err(InspectError::Usage(format!(
                            "run {id} has no background jobs"
                        )));
                    }
                    of_run
                }
                Err(_) => return Err(not_a_target(db, t)),
            },
        };
        for (run, rec) in found {
            let same = |(r, c): &Background| *r == run && c.index == rec.index && c.job == rec.job;
            if !chosen.iter().any(same) {
                chosen.push((run, rec));
            }
        }
    }
    Ok(chosen)
}

/// A target of `wait` that names no background job and no run, with the closest name of the
/// recent background jobs.
fn not_a_target(db: &mut RunStore, t: &str) -> InspectError {
    let mut msg = format!("`{t}` is neither a background job nor a run");
    let names: Vec<String> = db
        .background_jobs(BackgroundOf::Newest(RECENT))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, r)| r.job)
        .collect();
    if let Some(s) = crate::error::suggest(t, &names) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    InspectError::Store(StoreError::NotFound(msg))
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
    // Every background job of that name, however many newer ones the store holds.
    let all = background_now(db, BackgroundOf::Named(job))?;
    let Some((run, rec)) = all.into_iter().find(|(r, rec)| {
        (rec.status == Status::Background || (rec.status == Status::Lost && orphaned(rec)))
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
