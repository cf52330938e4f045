//! `orchestrate rerun RUN JOB`: a recorded job run again as a new run of its job file (with
//! `--with-dependents`, what needs it too), with the command line and directory its record
//! holds and the environment the job file gives it now (secret values are never stored).

use std::path::{Path, PathBuf};

use super::args::RunArgs;
use super::inspect::InspectError;
use super::run_cmd::{run_chosen, unsafe_job_file};
use super::settings::{RunSettings, Terminal};
use super::{report_error, report_warning};
use crate::error::exit;
use crate::plan::{Input, Plan, PlannedJob};
use crate::record::{CompletedProcess, REDACTED, Secrets, Stdin};
use crate::store::{self, RunStore};

/// What `orchestrate rerun` was given.
pub(super) struct Rerun {
    pub run: String,
    pub job: String,
    pub with_dependents: bool,
    pub json: bool,
    pub quiet: bool,
}

/// Runs the job again through the normal run path; returns the exit code, as a run's.
pub(super) fn cmd_rerun(a: Rerun, state_dir: Option<PathBuf>, term: Terminal) -> i32 {
    let (id, rec, path) = match recorded(&a, state_dir.as_deref()) {
        Ok(r) => r,
        Err(e) => return report_error(&e, e.exit_code()),
    };
    let what = format!("`{}` of run {id}", a.job);
    if !path.exists() {
        return report_error(
            &format_args!(
                "cannot rerun {what}: its job file {} is gone (its environment is defined there); restore the file, or run `{}` yourself",
                path.display(),
                shell_words::join(rec.args.iter().map(String::as_str))
            ),
            exit::USAGE,
        );
    }
    // One job is picked out by name: of a lazy fan-out, only that job is made.
    let plan = match Plan::load(&path)
        .map_err(|e| e.to_string())
        .and_then(|p| p.with_job_made(&a.job))
    {
        Ok(p) => p,
        Err(e) => return report_error(&format_args!("cannot rerun {what}: {e}"), exit::USAGE),
    };
    let Some(planned) = plan.jobs.iter().find(|j| j.name == a.job) else {
        let names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
        let hint = crate::error::suggest(&a.job, &names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let msg = format!(
            "cannot rerun {what}: its job file {} no longer has a job `{}`{hint}",
            path.display(),
            a.job
        );
        return report_error(&msg, exit::USAGE);
    };
    let (argv, cwd, note) = command_of(&rec, planned, &plan, &what);
    let stdin = stdin_of(&rec, planned);
    let plan = plan
        .rerun_of(&a.job, a.with_dependents)
        .expect("the job is in the plan")
        .with_command(&a.job, (argv, cwd, stdin));
    if let Some(w) = unsafe_job_file(&path) {
        report_warning(&w);
    }
    if let Some(n) = &note {
        report_warning(n);
    }
    if !a.quiet && !a.json {
        let others = plan.len_hint().unwrap_or(plan.jobs.len()) - 1;
        eprintln!(
            "orchestrate: rerunning {what} from {}{}",
            path.display(),
            match others {
                0 => String::new(),
                1 => ", with 1 job that needs it".to_string(),
                n => format!(", with {n} jobs that need it"),
            }
        );
    }
    let args = RunArgs {
        job_file: Some(path),
        json: a.json,
        quiet: a.quiet,
        ..Default::default()
    };
    let mut settings = RunSettings::resolve(args, state_dir, &plan, term);
    // The new record says where it comes from, and what changed since.
    let name = a.job.clone();
    settings.notes = std::iter::once(format!("rerun of run {id}"))
        .chain(note)
        .map(|n| (name.clone(), n))
        .collect();
    run_chosen((plan, Default::default(), None), settings)
}

/// The run, the job's record in it, and the job file the run ran.
fn recorded(
    a: &Rerun,
    state_dir: Option<&Path>,
) -> Result<(String, CompletedProcess, PathBuf), InspectError> {
    let root = store::default_state_dir(state_dir)?;
    let mut db = RunStore::open_existing(&root)?;
    let id = match store::runs_back(&a.run) {
        Some(n) => nth_run_with(&mut db, &a.job, n, &a.run)?,
        None => db.resolve_run(&a.run)?,
    };
    let rec = match db.record(&id, &a.job) {
        Err(store::StoreError::NotFound(msg)) => {
            let latest = db.job_history(&a.job, None, 1).ok();
            let hint = match latest.as_ref().and_then(|l| l.first()) {
                Some(h) => format!(
                    "; the latest run with `{job}` is {run}: orchestrate rerun {run} {job}",
                    job = a.job,
                    run = h.run
                ),
                None => String::new(),
            };
            return Err(store::StoreError::NotFound(format!("{msg}{hint}")).into());
        }
        found => found?,
    };
    if let Some(kind) = &rec.hook {
        return Err(InspectError::Usage(format!(
            "`{}` in run {id} is a hook's record ({kind}), not a job's; rerun the job it belongs to",
            a.job
        )));
    }
    let Some(file) = db.run(&id)?.job_file else {
        return Err(InspectError::Usage(format!(
            "run {id} was not a run of a job file: there is nothing to rerun `{}` from",
            a.job
        )));
    };
    Ok((id, rec, PathBuf::from(file)))
}

/// `last` and `last~N` for a job: its latest run, or the Nth before it, among the runs that
/// have a record of it (as `logs JOB` finds it), not among all runs: a rerun of another job
/// since is a run too.
fn nth_run_with(
    db: &mut RunStore,
    job: &str,
    n: usize,
    spec: &str,
) -> Result<String, InspectError> {
    let hist = db.job_history(job, None, n + 1)?;
    match hist.get(n) {
        Some(h) => Ok(h.run.clone()),
        None => Err(store::StoreError::NotFound(format!(
            "there is no run {spec} with `{job}`: it has run {} time{} (`orchestrate history {job}` lists them)",
            hist.len(),
            if hist.len() == 1 { "" } else { "s" }
        ))
        .into()),
    }
}

/// The command line and directory to run: the record's, with a note when the job file now
/// says otherwise. A record that hides a secret (redacted when it was stored) cannot be run
/// as it stands: then the job file's, with a note.
fn command_of(
    rec: &CompletedProcess,
    planned: &PlannedJob,
    plan: &Plan,
    what: &str,
) -> (Vec<String>, Option<PathBuf>, Option<String>) {
    let secrets = Secrets::new(plan.secrets.clone());
    // The record's args are as they ran, `{slot}` filled in with its slot.
    let ran_as = match rec.slot {
        Some(slot) => crate::exec::process::argv_for_slot(planned, slot),
        None => planned.argv.clone(),
    };
    let now: Vec<String> = ran_as.iter().map(|a| secrets.text(a)).collect();
    let now_cwd = planned
        .cwd
        .as_ref()
        .map(|c| secrets.text(&c.to_string_lossy()));
    let then_cwd = rec.cwd.as_ref().map(|c| c.to_string_lossy().into_owned());
    if rec.args == now && then_cwd == now_cwd {
        return (planned.argv.clone(), planned.cwd.clone(), None);
    }
    let (then, now) = (
        shell_words::join(rec.args.iter().map(String::as_str)),
        shell_words::join(now.iter().map(String::as_str)),
    );
    let hidden = rec.args.iter().any(|a| a.contains(REDACTED))
        || then_cwd.as_deref().is_some_and(|c| c.contains(REDACTED));
    if hidden {
        let note = format!(
            "{what} changed in its job file since, and its record hides a secret: running it as the job file has it now, `{now}` (then: `{then}`)"
        );
        return (planned.argv.clone(), planned.cwd.clone(), Some(note));
    }
    let dir = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
    let note = format!(
        "{what} changed in its job file since: running what it ran then, `{then}` in {} (the job file now has `{now}` in {})",
        dir(&then_cwd),
        dir(&now_cwd)
    );
    (rec.args.clone(), rec.cwd.clone(), Some(note))
}

/// The stdin the record says the job was given; the job file's when the record is older than
/// that, or hides a secret in it.
fn stdin_of(rec: &CompletedProcess, planned: &PlannedJob) -> Input {
    match &rec.stdin {
        Some(Stdin::Null) => Input::Null,
        Some(Stdin::Text(t)) if !t.contains(REDACTED) => Input::Text(t.clone()),
        Some(Stdin::File(p)) if !p.to_string_lossy().contains(REDACTED) => Input::File(p.clone()),
        _ => planned.stdin.clone(),
    }
}
