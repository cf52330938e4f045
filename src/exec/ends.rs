//! Every way a job can end, as its record: ran (the process layer fills in the outcome),
//! could not start, skipped, not needed, cancelled or never started, given up after an
//! internal error, and started in the background. All records of a job start from [`base`], so that name,
//! index, arguments, directory and definition hash are the same whichever way it ended; the
//! scheduler then seals each one (`record::Sealed`: secrets redacted from every text field)
//! before it leaves the executor.

use super::Stream;
use super::process::{CaptureRoot, file_dest};
use crate::environ::JobEnv;
use crate::plan::{Input, PlannedJob};
use crate::record::{CompletedProcess, Status, Stdin};

/// The record of `job` before anything is known of how it ended: no process, no attempt.
pub fn base(job: &PlannedJob) -> CompletedProcess {
    let mut rec = CompletedProcess::not_started(
        &job.name,
        job.file_index,
        job.argv.clone(),
        Status::Skipped,
        String::new(),
    );
    rec.error = None;
    rec.cwd = job.cwd.clone();
    rec.background = job.background;
    rec.def_hash = job.def_hash.clone();
    rec.needs = job
        .needs
        .iter()
        .flat_map(|n| n.jobs.iter().copied())
        .collect();
    rec.needs.sort_unstable();
    rec.needs.dedup();
    rec.stdin = Some(match &job.stdin {
        Input::Null => Stdin::Null,
        Input::Text(t) => Stdin::Text(t.clone()),
        Input::File(p) => Stdin::File(p.clone()),
    });
    rec
}

/// A job that never started a process: skipped (a need failed, the run halted), cancelled
/// before it started, or given up on an internal error.
pub fn not_started(job: &PlannedJob, status: Status, why: String) -> CompletedProcess {
    let mut rec = base(job);
    rec.status = status;
    rec.error = Some(why);
    rec
}

/// A job not run because a condition on how a job it needs ended was not met: not a failure,
/// so the reason is a note, not an error.
pub fn not_needed(job: &PlannedJob, why: String) -> CompletedProcess {
    let mut rec = base(job);
    rec.status = Status::NotNeeded;
    rec.notes.push(why);
    rec
}

/// An attempt that got as far as a slot (and, on a host, a connection) but started nothing.
pub fn not_run(
    job: &PlannedJob,
    slot: usize,
    host: Option<String>,
    status: Status,
    why: String,
) -> CompletedProcess {
    let mut rec = not_started(job, status, why);
    in_slot(&mut rec, job, slot);
    rec.attempts = 1;
    rec.host = host;
    rec
}

/// An attempt whose process could not be started: no exit code (no process ran), `why` says
/// what stopped it.
pub fn spawn_error(
    job: &PlannedJob,
    slot: usize,
    host: Option<String>,
    env: Option<&JobEnv>,
    why: String,
) -> CompletedProcess {
    let mut rec = not_run(job, slot, host, Status::SpawnError, why);
    if let Some(env) = env {
        with_env(&mut rec, env);
    }
    rec
}

/// A job whose process has started and not ended: what the store keeps of it while it runs
/// (the final record replaces it). Its process is named when the store takes it.
pub fn running(
    job: &PlannedJob,
    slot: usize,
    pid: u32,
    host: Option<String>,
    env: &JobEnv,
    capture: &CaptureRoot,
) -> CompletedProcess {
    let mut rec = base(job);
    with_env(&mut rec, env);
    rec.stdout = file_dest(job, capture, Stream::Stdout).stored();
    rec.stderr = file_dest(job, capture, Stream::Stderr).stored();
    rec.status = Status::Running;
    rec.pid = Some(pid);
    in_slot(&mut rec, job, slot);
    rec.attempts = 1;
    rec.host = host;
    rec
}

/// A background job that has started and not ended yet; its final record replaces this one.
/// It says what the final one will of the job's environment and output files, so that
/// `show`, `status` and `logs --follow` know them while it runs.
pub fn running_background(
    job: &PlannedJob,
    slot: usize,
    pid: Option<u32>,
    run_env: &[(String, String)],
    capture: &CaptureRoot,
) -> CompletedProcess {
    let mut rec = base(job);
    with_env(&mut rec, &JobEnv::for_job(job, run_env, slot));
    rec.stdout = file_dest(job, capture, Stream::Stdout).stored();
    rec.stderr = file_dest(job, capture, Stream::Stderr).stored();
    rec.status = Status::Background;
    rec.background = true;
    rec.pid = pid;
    in_slot(&mut rec, job, slot);
    rec.attempts = 1;
    rec
}

/// `rec`'s job ran (or was to run) in `slot`: the slot, and the args as they ran, `{slot}`
/// filled in as the job got it (the job file's words stay in its definition).
pub fn in_slot(rec: &mut CompletedProcess, job: &PlannedJob, slot: usize) {
    rec.slot = Some(slot);
    if job.argv.iter().any(|w| w.contains("{slot}")) {
        rec.args = super::process::argv_for_slot(job, slot);
    }
}

/// The environment the job was given, as the record reports it: names only.
pub fn with_env(rec: &mut CompletedProcess, env: &JobEnv) {
    rec.env_keys = env.keys();
    rec.env_inherited = env.inherited;
}
