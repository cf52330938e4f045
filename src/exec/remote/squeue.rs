//! What Slurm says of batch jobs (a job alone or an array's task): one `squeue` for many
//! (`poll_all`), `scontrol show job`, else `sacct`, for one it no longer lists, and the record
//! of a job filled in from it.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::record::{CompletedProcess, Status};

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
    keep_ended_tasks(&listed, recs);
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

/// The ended tasks of arrays that a sweep saw before their job took its task (with `wait:
/// true` a job takes it once it has a slot, and Slurm may run the task first), by
/// `ARRAY_TASK`: that job ends as soon as it takes its task, not a sweep later, nor lost
/// because Slurm forgot the task in between (MinJobAge).
static SEEN: std::sync::LazyLock<Mutex<HashMap<String, Word>>> =
    std::sync::LazyLock::new(Default::default);

fn keep_ended_tasks(listed: &HashMap<String, Word>, recs: &[CompletedProcess]) {
    let asked: std::collections::HashSet<&str> = recs
        .iter()
        .filter_map(|r| r.slurm_job_id.as_deref())
        .collect();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    for (id, word) in listed {
        if id.contains('_') && !asked.contains(id.as_str()) && ended(&word.0) {
            seen.insert(id.clone(), word.clone());
        }
    }
}

/// Settles `rec` from what a sweep saw of its task before the job took it; true if it ended.
pub fn seen_ended(rec: &mut CompletedProcess) -> bool {
    let Some(id) = rec.slurm_job_id.clone() else {
        return false;
    };
    let word = SEEN.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    word.is_some_and(|w| settle(rec, &id, Some(w)))
}

/// Whether a job in Slurm's `state` has ended.
fn ended(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
            | "STAGE_OUT"
            | "SIGNALING"
    )
}

/// What Slurm says of a job: state, exit code, signal, node.
type Word = (String, i32, i32, String);

/// The `Word` on each job squeue lists, by id (`ARRAY_TASK` for an array's task), from one
/// `squeue` call.
fn squeue_states(ids: &[String]) -> HashMap<String, Word> {
    let mut found = HashMap::new();
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
    if !ended(&state) {
        return false;
    }
    let status = match state.as_str() {
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
