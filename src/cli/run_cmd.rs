//! `orchestrate FILE` (and `orchestrate run FILE`): the job file loaded, the settings resolved,
//! the jobs chosen (`--only`, `--skip`, `--resume`), and the plan run.

use std::path::{Path, PathBuf};

use super::args::RunArgs;
use super::settings::{RunSettings, Terminal};
use super::{report_error, report_warning};
use crate::error::exit;
use crate::plan::Plan;
use crate::plan::resume::{Carried, Succeeded};
use crate::run::{self, RunError};
use crate::store::{self, RunFilter, RunStore};

pub(super) fn cmd_run(args: RunArgs, state_dir: Option<PathBuf>, term: Terminal) -> i32 {
    let Some(path) = args.job_file.clone() else {
        return report_error(
            &"give a job file to run: orchestrate run [FLAGS] JOBFILE",
            exit::USAGE,
        );
    };
    if let Some(msg) = RunSettings::refused(&args) {
        return report_error(&msg, exit::USAGE);
    }
    if let Some(cmd) = mistyped_command(&path) {
        let msg = format!(
            "no job file `{}`; did you mean `orchestrate {cmd}`?",
            path.display()
        );
        return report_error(&msg, exit::USAGE);
    }
    let plan = match Plan::load(&path) {
        Ok(p) => p,
        Err(e) => return report_error(&e, exit::USAGE),
    };
    if let Some(w) = unsafe_job_file(&path) {
        report_warning(&w);
    }
    let settings = RunSettings::resolve(args, state_dir, &plan, term);
    match choose_jobs(plan, &path, &settings) {
        Ok(Some(chosen)) => run_chosen(chosen, settings),
        Ok(None) => exit::OK,
        Err(e) => report_error(&e, e.exit_code()),
    }
}

/// Runs the chosen jobs of the job file the plan came from (`rerun` too); returns the exit code.
pub(super) fn run_chosen((plan, carried, resumed): Chosen, settings: RunSettings) -> i32 {
    match run::run_plan(
        plan,
        settings.run_options(carried, resumed),
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    ) {
        Ok(outcome) => {
            outcome.warnings.iter().for_each(|w| report_warning(w));
            outcome.exit_code
        }
        Err(e) => report_error(&format_args!("{e}; no job was started"), e.exit_code()),
    }
}

/// The command a job file that does not exist was probably meant to be (`orchestrate rnus`).
fn mistyped_command(path: &Path) -> Option<String> {
    if std::fs::symlink_metadata(path).is_ok() {
        return None;
    }
    let word = path.to_str()?;
    let names: Vec<String> = super::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    crate::error::suggest(word, &names)
}

/// Says what `--skip` left out beyond the jobs it named, which would otherwise vanish unsaid.
fn skip_note(names: &[String]) {
    if !names.is_empty() {
        eprintln!(
            "orchestrate: --skip also leaves out what needs the skipped jobs: {} (--no-deps runs them)",
            names.join(", ")
        );
    }
}

/// The jobs this run starts, the records it carries over, and the run they come from.
pub(super) type Chosen = (Plan, Carried, Option<String>);

/// The plan narrowed to the jobs this run starts, with the records it carries over from the
/// run it resumes; `None` when `--resume` found every job already succeeded.
fn choose_jobs(
    plan: Plan,
    path: &Path,
    settings: &RunSettings,
) -> Result<Option<Chosen>, RunError> {
    let s = &settings.selection;
    if s.with_deps && s.only.is_empty() {
        skip_note(&plan.skipped_dependents(&s.skip));
    }
    let mut plan = plan
        .select(&s.only, &s.skip, s.with_deps)
        .map_err(RunError::Invalid)?;
    let Some(from) = &s.resume else {
        return Ok(Some((plan, Default::default(), None)));
    };
    let (id, mut db) = resume_run(settings, from, path)?;
    // A pipe's items cannot be read again to compare them: they are kept on disk first.
    let root = store::default_state_dir(settings.state_dir.as_deref()).map_err(invalid)?;
    for fan in &mut plan.fans {
        fan.spool(&root).map_err(RunError::Invalid)?;
    }
    let mut succeeded = Succeeded::new(&plan);
    let mut after = None;
    loop {
        let (page, last) = db
            .succeeded_page(&id, after.as_ref(), 2048)
            .map_err(invalid)?;
        page.iter().for_each(|r| succeeded.add(r));
        match last {
            Some(l) => after = Some(l),
            None => break,
        }
    }
    let done = succeeded.done();
    let skipped = done.len();
    let carried = plan.resume_with(done, &id);
    if plan.jobs.is_empty() && plan.fans.is_empty() {
        // Nothing starts, so no run is recorded: `last` stays the run resumed.
        if !settings.report.quiet {
            let chosen = if s.only.is_empty() && s.skip.is_empty() {
                ""
            } else {
                " (of those --only/--skip chose)"
            };
            eprintln!(
                "orchestrate: nothing to do: every job of run {id} succeeded{chosen}; no new run recorded"
            );
        }
        return Ok(None);
    }
    if !settings.report.quiet && !settings.report.json {
        let left = plan
            .len_hint()
            .map_or("the rest".to_string(), |n| n.to_string());
        eprintln!(
            "orchestrate: resuming run {id}: {skipped} job{} already succeeded, {left} to run",
            if skipped == 1 { "" } else { "s" },
        );
    }
    Ok(Some((plan, carried, Some(id))))
}

/// The run to resume, and the store to read what succeeded in it from; it must be a run of
/// the same job file. Its jobs still running are dealt with first (`--survivors`), so that a
/// job waited for and succeeded is not run again.
fn resume_run(
    settings: &RunSettings,
    from: &str,
    job_file: &Path,
) -> Result<(String, RunStore), RunError> {
    let root = store::default_state_dir(settings.state_dir.as_deref()).map_err(invalid)?;
    let mut db = RunStore::open_existing_writable(&root, "a run").map_err(invalid)?;
    let abs = std::path::absolute(job_file).unwrap_or_else(|_| job_file.to_path_buf());
    let abs = abs.display().to_string();
    let id = match store::runs_back(from) {
        // `last~N` counts the runs of this job file, not of any.
        Some(n) => db
            .list_runs(&RunFilter {
                job_file: Some(abs.clone()),
                limit: Some(n + 1),
                ..Default::default()
            })
            .map_err(invalid)?
            .into_iter()
            .nth(n)
            .map(|r| r.id)
            .ok_or_else(|| {
                RunError::Invalid(match n {
                    0 => format!("no earlier run of {} to resume", job_file.display()),
                    _ => format!(
                        "there is no run {from} of {} (fewer runs of it recorded; `orchestrate runs --job-file {}` lists them)",
                        job_file.display(),
                        job_file.display()
                    ),
                })
            })?,
        None => db.resolve_run(from).map_err(invalid)?,
    };
    let run = db.run(&id).map_err(invalid)?;
    if run.job_file.as_deref() != Some(abs.as_str()) {
        let hint = match &run.job_file {
            Some(f) => format!("; to resume it: orchestrate {f} --resume {id}"),
            None => String::new(),
        };
        return Err(RunError::Invalid(format!(
            "run {id} is a run of {}, not of {}{hint}",
            run.job_file.as_deref().unwrap_or("(no job file)"),
            job_file.display()
        )));
    }
    let quiet = settings.report.quiet || settings.report.json;
    run::settle_survivors(&mut db, &abs, Some(&id), settings.survivors, quiet)?;
    Ok((id, db))
}

/// A store error while choosing jobs: no such run (or no history) is a usage error; a
/// store that cannot be read is the store's (exit 70).
fn invalid(e: store::StoreError) -> RunError {
    match e {
        store::StoreError::NotFound(_)
        | store::StoreError::Empty(_)
        | store::StoreError::Ambiguous(_) => RunError::Invalid(e.to_string()),
        e => RunError::Store(e),
    }
}

/// Like cron and sudo with their files: a job file that others can change, run as root, runs
/// their commands as root.
pub(super) fn unsafe_job_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !crate::sys::is_root() {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    if meta.mode() & 0o002 != 0 {
        Some(format!(
            "{} is writable by every user, and you run it as root: anyone can make it run commands as root (chmod o-w it)",
            path.display()
        ))
    } else if meta.uid() != 0 {
        Some(format!(
            "{} belongs to uid {}, and you run it as root: that user can make it run commands as root",
            path.display(),
            meta.uid()
        ))
    } else {
        None
    }
}
