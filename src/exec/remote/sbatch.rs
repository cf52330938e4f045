//! Background jobs on Slurm: submitted with `sbatch` (output to files), then followed through
//! Slurm itself (`squeue` for all of them at once; `scontrol show job`, else `sacct`, for one it
//! no longer lists) rather than a local supervisor, so a job outlives orchestrate, its
//! machine's reboot and its run.
//!
//! How they are submitted, per case:
//! - the background Slurm jobs of one `jobs:` entry with the same settings (a `for_each`
//!   fan-out, made up front, a lazy `range:` or a `file:` read as it goes) go as job arrays
//!   of at most 1000 tasks
//!   (`remote::array`): one sbatch per array, one job in the
//!   controller while its tasks wait (squeue folds them into `123_[4-9]`), one `scancel` for
//!   all, each job still its own record with its task's id (`123_4`), state, exit code, node
//!   and its own files. An array, not steps in one batch allocation: a task is a batch job
//!   as Slurm knows it (its own state and exit code in squeue, scontrol and sacct, its own
//!   node, cancelled alone by `orchestrate kill`), which is what a record of a background job
//!   reads after the run is gone; steps would need a state file per job and a batch job that
//!   holds its CPUs between them. The cost: Slurm (22.05 at least) counts every task against
//!   `MaxJobCount`, so an array does not let a fan-out past a full controller (it is refused
//!   whole, once, and every job of it fails with sbatch's words);
//! - a job alone in its entry (or whose task line would hold a secret) is one plain sbatch.

use std::process::{Command, Stdio};

use super::array::{Arrays, NoTask};
use crate::environ::JobEnv;
use crate::exec::background::BackgroundCtx;
use crate::exec::process::{FileDest, JobCtx, argv_for_slot, file_dest};
use crate::exec::{Cancel, Event, Stream, ends};
use crate::plan::{PlannedJob, SlurmOptions};
use crate::record::{CompletedProcess, Status};

pub use super::squeue::{poll, poll_all, poll_cancelled};

/// sbatch's arguments for a job: options, output files, and the command as `--wrap`.
fn sbatch_command(
    job: &PlannedJob,
    ctx: &JobCtx,
    o: &SlurmOptions,
    env: &JobEnv,
) -> Result<Command, String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--job-name={}", job.name))
        .args(o.args());
    if let Some(dir) = &job.cwd {
        cmd.arg(format!("--chdir={}", dir.display()));
    }
    let mut append = false;
    for stream in [Stream::Stdout, Stream::Stderr] {
        let flag = match stream {
            Stream::Stdout => "--output",
            Stream::Stderr => "--error",
        };
        let path = match file_dest(job, &ctx.capture, stream) {
            FileDest::SameAsStdout => continue,
            FileDest::Null => "/dev/null".into(),
            FileDest::Capture(p) => {
                if let Some(d) = p.parent() {
                    super::array_tasks::private_dir(d)?;
                }
                p
            }
            FileDest::File { path, append: a } => {
                append |= a;
                path
            }
        };
        cmd.arg(format!("{flag}={}", path.display()));
    }
    if append {
        cmd.arg("--open-mode=append");
    }
    cmd.arg(format!(
        "--wrap={}",
        shell_words::join(argv_for_slot(job, ctx.slot).iter().map(String::as_str))
    ));
    // sbatch hands the submitting environment to the job (--export=ALL).
    if job.env_clear {
        cmd.env_clear();
    }
    env.apply(&mut cmd);
    Ok(cmd)
}

/// Runs `cmd`, an sbatch `--parsable`; returns the job id it printed, or sbatch's words.
pub(super) async fn submit(mut cmd: Command) -> Result<String, String> {
    cmd.stdin(Stdio::null());
    match tokio::process::Command::from(cmd).output().await {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let id = text.trim().split(';').next().unwrap_or("").to_string();
            if id.is_empty() {
                Err("sbatch printed no job id".to_string())
            } else {
                Ok(id)
            }
        }
        Ok(o) => {
            let said = String::from_utf8_lossy(&o.stderr);
            let said = said.trim();
            Err(if super::slurm::controller_refused(said) {
                format!(
                    "Slurm did not accept the batch job: {said}. {}",
                    super::slurm::REFUSED_HINT
                )
            } else {
                format!("sbatch failed: {said}")
            })
        }
        Err(e) => Err(format!("cannot run sbatch: {e}")),
    }
}

/// A job alone: one `sbatch` of its own.
async fn submit_alone(job: &PlannedJob, ctx: &JobCtx, o: &SlurmOptions) -> Result<String, String> {
    let env = JobEnv::for_job(job, &ctx.run_env, ctx.slot);
    submit(sbatch_command(job, ctx, o, &env)?).await
}

/// Submits a background job with sbatch (alone, or as its task of its group's array,
/// `remote::array`); with `wait`, follows it to its end.
pub async fn run_background(
    job: &PlannedJob,
    ctx: JobCtx,
    o: &SlurmOptions,
    bg: &BackgroundCtx,
    arrays: &Arrays,
) -> CompletedProcess {
    let mut rec = ends::running_background(job, ctx.slot, None, &ctx.run_env, &ctx.capture);
    let mut task = None;
    let submitted = if arrays.holds(job) {
        match arrays.task(job, &ctx, o).await {
            Ok(t) => {
                let id = t.id.clone();
                task = Some(t);
                Ok(id)
            }
            Err(NoTask::Alone(why)) => {
                rec.notes.push(format!(
                    "not in a job array with the jobs of its entry: {why}"
                ));
                submit_alone(job, &ctx, o).await
            }
            Err(NoTask::Refused(why)) => Err(format!("{why} (the job array of its entry)")),
        }
    } else {
        submit_alone(job, &ctx, o).await
    };
    let id = match submitted {
        Ok(id) => id,
        Err(e) => {
            rec.status = Status::SpawnError;
            rec.error = Some(e);
            return rec;
        }
    };
    rec.slurm_job_id = Some(id.clone());
    rec.notes.push(match &task {
        Some(t) => format!(
            "submitted to Slurm as task {} of job array {} ({} tasks); `orchestrate status` and `orchestrate wait` follow it",
            t.index, t.array, t.of
        ),
        None => format!(
            "submitted to Slurm as job {id}; `orchestrate status` and `orchestrate wait` follow it"
        ),
    });
    if !bg.wait {
        return rec;
    }
    let _ = ctx.events.send(Event::JobStarted {
        index: job.index,
        pid: None,
        slot: ctx.slot,
        started: rec.started,
        running: None,
    });
    let mut cancel = ctx.cancel.clone();
    let end = super::follow::until_end(rec);
    tokio::pin!(end);
    let mut listen = true;
    loop {
        tokio::select! {
            rec = &mut end => return rec,
            r = cancel.changed(), if listen => {
                listen = r.is_ok();
                if listen && *cancel.borrow() != Cancel::None {
                    // With the other jobs stopped now, in one scancel: a task's whole array
                    // (its jobs not yet dispatched will never be).
                    match &task {
                        Some(t) => arrays.cancel(job, t),
                        None => {
                            tokio::spawn(super::scancel::cancel(id.clone()));
                        }
                    }
                }
            }
        }
    }
}

/// `scancel ID...`: one call for every job to stop.
pub fn scancel(ids: &[&str]) {
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("scancel")
        .args(ids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
