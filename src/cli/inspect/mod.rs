//! The commands that read the store: `runs`, `show` (and its exports), `report`, `logs`,
//! `history`, `diff`, `status`, `gc`, and the background commands `wait` and `kill`; each one
//! function, on one opened store.

mod diff;
mod export;
mod gc;
mod logs;
mod report;
mod runs;
mod show;
mod status;

use std::path::PathBuf;

use super::args::Command;
use super::background;
use super::report_error;
use crate::error::exit;
use crate::exec::{CaptureRoot, Readback, Stream};
use crate::record::CompletedProcess;
use crate::store::{self, RunStore};

#[derive(Debug, thiserror::Error)]
pub(super) enum InspectError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl InspectError {
    pub(super) fn exit_code(&self) -> i32 {
        match self {
            // What was named (a run, a job) is not in the history, or there is no history.
            InspectError::Store(store::StoreError::NotFound(_))
            | InspectError::Store(store::StoreError::Empty(_)) => exit::NOT_FOUND,
            InspectError::Usage(_) | InspectError::Store(store::StoreError::Ambiguous(_)) => {
                exit::USAGE
            }
            _ => exit::SOFTWARE,
        }
    }
}

/// Runs an inspection command; returns the exit code.
pub(super) fn cmd_inspect(cmd: Command, state_dir: Option<PathBuf>) -> i32 {
    match inspect(cmd, state_dir) {
        Ok(code) => code,
        // `orchestrate show | head`: the reader had enough.
        Err(InspectError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => report_error(&e, e.exit_code()),
    }
}

fn inspect(cmd: Command, state_dir: Option<PathBuf>) -> Result<i32, InspectError> {
    let root = store::default_state_dir(state_dir.as_deref())?;
    let mut out = std::io::stdout().lock();
    let out = &mut out;
    let opened = match &cmd {
        // These write the history; the others read it, and can on a read-only store.
        Command::Gc { .. } => RunStore::open_existing_writable(&root, "`orchestrate gc`"),
        Command::Kill { .. } => RunStore::open_existing_writable(&root, "`orchestrate kill`"),
        _ => RunStore::open_existing(&root),
    };
    let mut db = match opened {
        Err(store::StoreError::Empty(dir)) if lists(&cmd) => return nothing_yet(&cmd, &dir, out),
        opened => opened?,
    };
    let db = &mut db;
    match cmd {
        Command::Runs {
            failed,
            job_file,
            since,
            limit,
            json,
        } => runs::runs(
            db,
            runs::RunsQuery {
                failed,
                job_file,
                since,
                limit,
                json,
            },
            out,
        ),
        Command::Show { run, export, .. } if export.any() => {
            export::show_export(db, run.as_deref().unwrap_or("last"), export, out)
        }
        Command::Report { run, output } => report::report(db, &run, output.as_deref(), out),
        cmd @ (Command::Show { .. }
        | Command::Logs { .. }
        | Command::History { .. }
        | Command::Diff { .. }) => job_views(db, cmd, out),
        Command::Gc {
            keep_runs,
            max_age,
            max_bytes,
        } => gc::gc(db, keep_runs, max_age, max_bytes, out),
        Command::Status { all, json } => status::status(db, all, json, out),
        Command::Wait { targets, timeout } => background::wait(db, &targets, timeout, out),
        Command::Kill { job, run } => background::kill(db, &job, run.as_deref(), out),
        Command::Run(_)
        | Command::Rerun { .. }
        | Command::Check { .. }
        | Command::Cron { .. }
        | Command::Completions { .. }
        | Command::Supervise
        | Command::Man { .. } => unreachable!("handled by main_with"),
    }
}

/// The commands that look at one job (or one run) of the history.
fn job_views(
    db: &mut RunStore,
    cmd: Command,
    out: &mut dyn std::io::Write,
) -> Result<i32, InspectError> {
    match cmd {
        Command::Show {
            run,
            job,
            job_file,
            json,
            ..
        } => show::show(
            db,
            run.as_deref(),
            job.as_deref(),
            job_file.as_deref(),
            json,
            out,
        ),
        Command::Logs {
            job,
            run,
            job_file,
            stderr,
            follow,
        } => {
            let at = logs::At {
                run: run.as_deref(),
                job_file: job_file.as_deref(),
            };
            logs::logs(db, at, &job, stderr, follow, out)
        }
        Command::History {
            job,
            job_file,
            limit,
            json,
        } => runs::history(db, &job, job_file.as_deref(), limit, json, out),
        Command::Diff {
            job,
            job_file,
            runs,
            stderr,
            color,
        } => {
            let which = diff::Which {
                runs: &runs,
                job_file: job_file.as_deref(),
            };
            diff::diff(db, &job, which, stderr, diff::colored(color), out)
        }
        _ => unreachable!("only the commands about a job come here"),
    }
}

/// Whether the command lists what there is (so that no history is an empty list), rather
/// than naming something that must be there (`show RUN`, `logs JOB`: not found, exit 3).
fn lists(cmd: &Command) -> bool {
    match cmd {
        Command::Runs { .. } | Command::Status { .. } | Command::Gc { .. } => true,
        Command::Wait { targets, .. } => targets.is_empty(),
        _ => false,
    }
}

/// What a listing command says on a state directory where nothing has run yet: what it says
/// when there is nothing to list (no JSON lines at all), and exit 0.
fn nothing_yet(
    cmd: &Command,
    dir: &std::path::Path,
    out: &mut dyn std::io::Write,
) -> Result<i32, InspectError> {
    match cmd {
        Command::Runs { json: false, .. } => {
            eprintln!("orchestrate: no runs yet in {}", dir.display());
        }
        Command::Status { json: false, .. } => status::none_to_show(out)?,
        Command::Gc { .. } => gc::removed(0, 0, out)?,
        _ => {}
    }
    Ok(exit::OK)
}

/// The run to look for `job` in: `run` as given, else the job's latest run (of `job_file`,
/// when given), the one `history` lists first (a run of another job file since does not hide
/// it). A job in the last run while it runs may have output and no record yet: then the last
/// run.
fn run_of_job(
    db: &mut RunStore,
    job: &str,
    run: Option<&str>,
    job_file: Option<&str>,
) -> Result<String, InspectError> {
    if let Some(run) = run {
        return Ok(db.resolve_run(run)?);
    }
    let last = db.resolve_run("last")?;
    let row = db.run(&last)?;
    let running = row.status == crate::record::RunStatus::Running
        && job_file.is_none_or(|f| {
            row.job_file
                .as_deref()
                .is_some_and(|p| store::job_file_names(p, f))
        });
    let files = CaptureRoot(db.run_dir(&last));
    if running
        && (files.open(job, Stream::Stdout)?.is_some()
            || files.open(job, Stream::Stderr)?.is_some())
    {
        return Ok(last);
    }
    match db.job_history(job, job_file, 1) {
        Ok(latest) if !latest.is_empty() => Ok(latest[0].run.clone()),
        Err(store::StoreError::NotFound(_)) if running => Ok(last),
        Ok(_) => Ok(last),
        Err(e) => Err(e.into()),
    }
}

/// How `stream` of a record of `run_id` in the store at `root` reads back: from the capture
/// file in its run's folder (`store::capture_dir`, `CaptureRoot::read_back`), never from the
/// path it holds. The one way the commands here read a job's output.
fn read_back(
    root: &std::path::Path,
    run_id: &str,
    rec: &CompletedProcess,
    stream: Stream,
) -> std::io::Result<Readback> {
    CaptureRoot(store::capture_dir(root, run_id, stream.of(rec))).read_back(rec, stream)
}

/// Both streams of a record as they read back (see [`read_back`]), for JSON.
fn read_back_both(
    root: &std::path::Path,
    run_id: &str,
    rec: &CompletedProcess,
) -> std::io::Result<[Option<std::fs::File>; 2]> {
    Ok([
        read_back(root, run_id, rec, Stream::Stdout)?.into_file(),
        read_back(root, run_id, rec, Stream::Stderr)?.into_file(),
    ])
}

/// Where a stream went that orchestrate did not capture: the record names the job's own file,
/// which is never read, since a record read back could name any file.
fn not_captured(job: &str, stream: Stream, path: &std::path::Path) -> String {
    format!(
        "the {} of `{job}` was not captured; it went to {}",
        stream.as_str(),
        crate::report::visible(&path.display().to_string())
    )
}
