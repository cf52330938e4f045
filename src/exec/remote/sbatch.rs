//! Background jobs on Slurm: submitted with `sbatch` (output to files), then followed through
//! Slurm itself (`squeue` for all of them at once; `scontrol show job`, else `sacct`, for one it
//! no longer lists) rather than a local supervisor, so a job outlives orchestrate, its
//! machine's reboot and its run.

use std::process::{Command, Stdio};
use std::time::SystemTime;

use super::array::{Arrays, NoTask};
use crate::environ::JobEnv;
use crate::exec::background::BackgroundCtx;
use crate::exec::process::{FileDest, JobCtx, file_dest};
use crate::exec::{Cancel, Event, Stream, ends};
use crate::plan::{PlannedJob, SlurmOptions};
use crate::record::{CompletedProcess, Status};

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
                    std::fs::create_dir_all(d)
                        .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
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
        shell_words::join(job.argv.iter().map(String::as_str))
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

/// Asks Slurm how a background job is doing; fills in the record and returns true once it
/// has ended (or Slurm no longer knows it: then it is `lost`).
pub fn poll(rec: &mut CompletedProcess) -> bool {
    let Some(id) = rec.slurm_job_id.clone() else {
        return false;
    };
    let state = scontrol_state(&id).or_else(|| sacct_state(&id));
    settle(rec, &id, state)
}

/// `poll` for a job just cancelled: one that Slurm no longer knows was cancelled before it
/// started (a pending task of an array leaves no record when cancelled alone).
pub fn poll_cancelled(rec: &mut CompletedProcess) -> bool {
    let Some(id) = rec.slurm_job_id.clone() else {
        return false;
    };
    match scontrol_state(&id).or_else(|| sacct_state(&id)) {
        Some(state) => settle(rec, &id, Some(state)),
        None => {
            let none = (String::from("CANCELLED"), 0, 0, String::new());
            settle(rec, &id, Some(none));
            rec.returncode = None;
            rec.notes.push(format!(
                "cancelled before it started (Slurm keeps nothing of job {id} once cancelled)"
            ));
            true
        }
    }
}

/// `poll` for many jobs with one question to Slurm (`squeue` with their ids, an array's tasks
/// asked for by the array's id, one line each), not one per job: only a job squeue no longer
/// lists is asked about alone (scontrol, then sacct). Returns, for each record, whether it
/// has ended.
pub fn poll_all(recs: &mut [CompletedProcess]) -> Vec<bool> {
    let mut ids: Vec<String> = recs
        .iter()
        .filter_map(|r| r.slurm_job_id.as_deref())
        .map(|id| id.split('_').next().unwrap_or(id).to_string())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let listed = squeue_states(&ids);
    recs.iter_mut()
        .map(|rec| {
            let Some(id) = rec.slurm_job_id.clone() else {
                return false;
            };
            match listed.get(&id) {
                Some(state) => settle(rec, &id, Some(state.clone())),
                None => poll(rec),
            }
        })
        .collect()
}

/// What Slurm says of a job: state, exit code, signal, node.
type Word = (String, i32, i32, String);

/// The `Word` on each job squeue lists, by id (`ARRAY_TASK` for an array's task), from one
/// `squeue` call.
fn squeue_states(ids: &[String]) -> std::collections::HashMap<String, Word> {
    let mut found = std::collections::HashMap::new();
    if ids.is_empty() {
        return found;
    }
    let list = ids.join(",");
    // -r: an array's pending tasks one per line, not folded into `123_[4-9]`.
    let args = [
        "-h",
        "-r",
        "-t",
        "all",
        "-j",
        &list,
        "-O",
        "JobArrayID:|,State:|,exit_code:|,NodeList:|",
    ];
    let Some(text) = query("squeue", &args) else {
        return found;
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        // exit_code is the raw wait status: the code in the high byte, the signal below.
        if let [id, state, raw, node, ..] = f.as_slice()
            && let Ok(raw) = raw.parse::<i32>()
        {
            let word = (
                state.to_string(),
                (raw >> 8) & 0xff,
                raw & 0x7f,
                node.to_string(),
            );
            found.insert(id.to_string(), word);
        }
    }
    found
}

/// Fills in a background job's record from Slurm's word on it; true once it has ended.
fn settle(rec: &mut CompletedProcess, id: &str, state: Option<Word>) -> bool {
    let Some((state, code, signal, node)) = state else {
        rec.status = Status::Lost;
        rec.error = Some(format!(
            "Slurm no longer knows job {id} (scontrol and sacct have no record of it)"
        ));
        finish(rec);
        return true;
    };
    let status = match state.as_str() {
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        | "RESIZING" | "STAGE_OUT" | "SIGNALING" => return false,
        "COMPLETED" if code == 0 => Status::Succeeded,
        "CANCELLED" => Status::Cancelled,
        "TIMEOUT" => Status::TimedOut,
        _ => Status::Failed,
    };
    rec.status = status;
    if !node.is_empty() && node != "(null)" && node != "None assigned" {
        rec.host = Some(node);
    }
    rec.returncode = (signal == 0).then_some(code);
    rec.signal = (signal != 0).then_some(signal);
    if !matches!(
        state.as_str(),
        "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT"
    ) {
        rec.error = Some(format!("Slurm ended the job as {state}"));
    }
    finish(rec);
    true
}

fn finish(rec: &mut CompletedProcess) {
    rec.finished = SystemTime::now();
    rec.duration = rec.finished.duration_since(rec.started).unwrap_or_default();
    for out in [&mut rec.stdout, &mut rec.stderr] {
        if let Some(p) = &out.path {
            out.bytes = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        }
    }
}

/// The `Word` from `scontrol show job -o ID`.
fn scontrol_state(id: &str) -> Option<Word> {
    let text = query("scontrol", &["show", "job", "-o", id])?;
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    let state = field("JobState=")?;
    let (code, signal) = exit_code(&field("ExitCode=")?)?;
    Some((state, code, signal, field("NodeList=").unwrap_or_default()))
}

/// The same from accounting, for jobs that scontrol has forgotten.
fn sacct_state(id: &str) -> Option<Word> {
    let text = query(
        "sacct",
        &["-j", id, "-n", "-P", "-X", "-o", "State,ExitCode,NodeList"],
    )?;
    let mut f = text.lines().next()?.split('|');
    // "CANCELLED by 0" -> "CANCELLED"
    let state = f.next()?.split_whitespace().next()?.to_string();
    let (code, signal) = exit_code(f.next()?)?;
    Some((
        state,
        code,
        signal,
        f.next().unwrap_or_default().to_string(),
    ))
}

/// The stdout of a Slurm query command, if it ran and succeeded.
fn query(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Slurm's `CODE:SIGNAL`.
fn exit_code(s: &str) -> Option<(i32, i32)> {
    let (c, sig) = s.trim().split_once(':')?;
    Some((c.parse().ok()?, sig.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code("3:0"), Some((3, 0)));
        assert_eq!(exit_code("0:15"), Some((0, 15)));
        assert_eq!(exit_code("x"), None);
    }
}
