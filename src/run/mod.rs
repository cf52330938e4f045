//! One run of a plan, end to end: store opened before anything starts (`capture`), what the
//! job file's history says settled into the plan and the executor's options (`history`), the
//! executor on a tokio runtime, its events consumed by one thread (`consume`), signals turned
//! into cancellation (`signals`), and the outcome mapped to an exit code.

mod capture;
mod carry;
mod consume;
mod facts;
mod finish;
mod history;
mod hooks;
mod log;
mod options;
mod signals;
mod survivors;

pub use signals::sweep_orphans;
pub use survivors::{Survivors, settle as settle_survivors};

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::error::exit;
use crate::exec::{self, Cancel, CaptureRoot, Event, ExecOptions, ExecSummary, JobHistory};
use crate::plan::Plan;
use crate::record::CompletedProcess;
use crate::report::{Closing, Reporter};

pub use options::{CapturedBytes, RunError, RunOptions, RunOutcome};

pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs a plan. Nothing is started if the store cannot be opened.
pub fn run_plan(
    plan: Plan,
    opts: RunOptions,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
) -> Result<RunOutcome, RunError> {
    let plan = effective_plan(plan, &opts)?;
    let job_file = plan.source.as_deref().map(absolute_text);
    let mut log_file = opts.log.as_deref().map(log::open).transpose()?;
    let capture::Capture {
        run_id,
        dir,
        db,
        state_root,
        lock: _lock,
        tmp,
        recent,
        started,
    } = capture::prepare(&plan, &opts, SystemTime::now())
        .inspect_err(|e| log::refused(log_file.as_mut(), job_file.as_deref(), e))?;
    let (plan, history) = history::settle(plan, &recent, &opts.notes);
    let plan = Arc::new(plan);
    let files = CaptureRoot(dir.clone());
    let cfg = opts.report.clone();
    let mut reporter = Reporter::new(cfg, plan.clone(), files.clone(), &run_id, out, err);
    if let Some(f) = &mut log_file {
        reporter = log::attach(f, reporter, (&run_id, job_file.as_deref()), &opts, &plan)?;
    }
    let (tx, rx) = exec::event_channel();
    let consumer = start_consumer(&plan, &opts, rx, reporter, db, &run_id, &dir);
    let spill = state_root.clone();
    let ping = plan.notify.as_ref().and_then(crate::notify::start_ping);
    let exec_opts = exec_options(&plan, &opts, dir.clone(), state_root, &run_id, history);
    let (summary, cancel_state) = execute(plan.clone(), &opts, exec_opts, tx, consumer.thread())?;
    let mut consumed = consumer.join().expect("the event thread does not panic");
    let interrupted = interrupted_by(cancel_state);
    if let Some(facts) = consumed.facts.take() {
        let after = hooks::AfterJobs {
            plan: &plan,
            opts: &opts,
            run_id: &run_id,
            dir: &dir,
            job_file: job_file.as_deref(),
            started,
            summary: &summary,
            interrupted,
            facts,
            ping,
        };
        hooks::after_jobs(after, &mut consumed);
    }
    let end = finish::RunEnd {
        run_id: &run_id,
        interrupted: interrupted.is_some(),
        failed: summary.failed() > 0,
        plan: &plan,
        job_file: job_file.as_deref(),
        ended: run_ended(consumed.last_end, started),
    };
    let closing = closing(&opts, &end, started, interrupted);
    let (records, warnings, store_lost) = wind_up(
        consumed,
        &end,
        spill.as_deref(),
        (&summary, &closing),
        log_file.as_mut(),
    );
    let records = with_output(records, opts.keep_output, &files);
    drop(tmp);
    // A run that could not record what happened says so in its exit code, whatever its jobs
    // did: cron must hear of it.
    Ok(RunOutcome {
        run_id: opts.store.then_some(run_id),
        exit_code: exit_code(store_lost, interrupted, &summary),
        summary,
        interrupted,
        records,
        warnings,
    })
}

/// Where the run's duration ends: its last record's end (a run that ran nothing, now).
fn run_ended(last_end: Option<SystemTime>, started: SystemTime) -> SystemTime {
    last_end.unwrap_or_else(SystemTime::now).max(started)
}

/// What the summary line tells of the run's end.
fn closing<'a>(
    opts: &'a RunOptions,
    end: &finish::RunEnd<'a>,
    started: SystemTime,
    interrupted: Option<i32>,
) -> Closing<'a> {
    Closing {
        run_id: opts.store.then_some(end.run_id),
        interrupted,
        // In whole milliseconds, as the store keeps both ends: `runs` says the same.
        elapsed: std::time::Duration::from_millis(
            (crate::record::to_millis(end.ended) - crate::record::to_millis(started)).max(0) as u64,
        ),
        carried: opts
            .resumed
            .as_deref()
            .map(|from| (opts.carried.len(), from)),
    }
}

/// The run's end recorded (or kept elsewhere), the report closed, the log told the
/// warnings: the records, the warnings, and whether anything could not be stored.
fn wind_up(
    consumed: consume::Consumed,
    end: &finish::RunEnd<'_>,
    spill: Option<&std::path::Path>,
    (summary, closing): (&ExecSummary, &Closing<'_>),
    log_file: Option<&mut std::fs::File>,
) -> (Vec<CompletedProcess>, Vec<String>, bool) {
    let lost = finish::Lost {
        unrecorded: consumed.unrecorded,
        output_lost: consumed.output_lost,
    };
    let mut warnings = consumed.warnings;
    let store_lost = finish::record_end(consumed.db, spill, end, lost, &mut warnings);
    let mut reporter = consumed.reporter;
    reporter.finish(summary, closing);
    if let Some(f) = log_file {
        log::warnings(f, &warnings);
    }
    (consumed.records, warnings, store_lost)
}

/// The event thread; with hooks or notifications to run at the end, it gathers what they are
/// told as records come.
fn start_consumer(
    plan: &Plan,
    opts: &RunOptions,
    rx: mpsc::Receiver<Event>,
    reporter: Reporter,
    db: Option<crate::store::RunStore>,
    run_id: &str,
    dir: &std::path::Path,
) -> std::thread::JoinHandle<consume::Consumed> {
    let keep_records = opts.keep_records;
    let run_id = run_id.to_string();
    let gather =
        (!plan.hooks.is_empty() || plan.notify.is_some()).then(|| facts::Gather::new(dir, &run_id));
    std::thread::Builder::new()
        .name("orchestrate-events".into())
        .spawn(move || consume::consume(rx, reporter, db, run_id, keep_records, gather))
        .expect("spawning the event thread")
}

/// The plan as it runs: the options' `on_failure`, `wait` and retention in place of the job
/// file's, settled once before anything runs (the scheduler reads them from the plan).
fn effective_plan(plan: Plan, opts: &RunOptions) -> Result<Plan, RunError> {
    if !opts.store && plan.any_job(|j| j.background) {
        return Err(RunError::Invalid(
            "background jobs need the store to record how they end; drop --no-store".into(),
        ));
    }
    Ok(Plan {
        on_failure: opts.on_failure.unwrap_or(plan.on_failure),
        wait: opts.wait.unwrap_or(plan.wait),
        retention: opts.retention.or(plan.retention),
        ..plan
    })
}

fn exec_options(
    plan: &Plan,
    opts: &RunOptions,
    capture: PathBuf,
    state_root: Option<PathBuf>,
    run_id: &str,
    history: HashMap<usize, JobHistory>,
) -> ExecOptions {
    let concurrency = opts
        .concurrency
        .or(plan.concurrency)
        .unwrap_or_else(default_concurrency)
        .max(1);
    ExecOptions {
        concurrency,
        capture: CaptureRoot(capture),
        forward_output: opts.report.needs_output_lines(),
        launcher: opts.launcher.clone(),
        run_env: vec![("ORCHESTRATE_RUN".to_string(), run_id.to_string())],
        secrets: crate::record::Secrets::new(plan.secrets.clone()),
        background: state_root.map(|state_dir| crate::exec::background::BackgroundCtx {
            exe: supervisor_exe(),
            state_dir,
            run_id: run_id.to_string(),
            wait: plan.wait,
        }),
        backend: None,
        history,
    }
}

/// Runs the jobs to their end on a runtime of their own, with signals handled if the options
/// say so; returns their summary and how far the run was cancelled.
fn execute(
    plan: Arc<Plan>,
    opts: &RunOptions,
    exec_opts: ExecOptions,
    tx: exec::EventSink,
    consumer: &std::thread::Thread,
) -> Result<(ExecSummary, Cancel), RunError> {
    if opts.handle_signals {
        crate::sys::ignore_file_size_signal();
        crate::sys::raise_open_files_limit();
        // Processes a job detaches from its group (setsid, double fork) become our children
        // when their parent dies, so that the sweep below can find them.
        crate::sys::become_subreaper();
    }
    // This runtime only handles signals and passes cancellation on: jobs run on the
    // scheduler's worker threads, each with its own runtime (see `exec::execute`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let (cancel_tx, cancel_rx) = watch::channel(Cancel::None);
    let handle_signals = opts.handle_signals;
    let ignore_hangup = opts.ignore_hangup;
    let cancel_watch = cancel_rx.clone();
    let summary = rt.block_on(async move {
        if handle_signals {
            signals::spawn_signal_handler(cancel_tx.clone(), ignore_hangup);
        }
        let summary = exec::execute(plan, exec_opts, tx, cancel_rx.clone()).await;
        drop(cancel_tx);
        summary
    });
    // Every sender is gone with the jobs: the event thread takes the last events now.
    consumer.unpark();
    let cancel_state = *cancel_watch.borrow();
    let stopped_jobs = summary.get(crate::record::Status::TimedOut) > 0
        || summary.get(crate::record::Status::Cancelled) > 0;
    if opts.handle_signals && (cancel_state != Cancel::None || stopped_jobs) {
        signals::sweep_orphans();
    }
    rt.shutdown_background();
    Ok((summary, cancel_state))
}

/// The signal that interrupted the run, if one did (a hard stop counts as SIGINT).
fn interrupted_by(cancel: Cancel) -> Option<i32> {
    match cancel {
        Cancel::None => None,
        Cancel::Graceful(sig) => Some(sig),
        Cancel::Hard => Some(crate::sys::SIGINT),
    }
}

fn exit_code(store_lost: bool, interrupted: Option<i32>, summary: &ExecSummary) -> i32 {
    if store_lost {
        return exit::SOFTWARE;
    }
    match interrupted {
        Some(sig) if sig == crate::sys::SIGINT => exit::SIGINT,
        Some(sig) => 128 + sig,
        None if summary.failed() > 0 => exit::JOB_FAILED,
        None => exit::OK,
    }
}

/// The records, with their captured bytes read back if `keep_output` (before a temporary
/// capture folder goes away).
fn with_output(
    records: Vec<CompletedProcess>,
    keep_output: bool,
    captures: &CaptureRoot,
) -> Vec<(CompletedProcess, Option<CapturedBytes>)> {
    use std::io::Read;
    let read = |r: &CompletedProcess, stream: exec::Stream| {
        let mut bytes = Vec::new();
        if let Ok(exec::Readback::Captured(Some(mut f))) = captures.read_back(r, stream) {
            let _ = f.read_to_end(&mut bytes);
        }
        bytes
    };
    records
        .into_iter()
        .map(|r| {
            let bytes = keep_output.then(|| {
                (
                    read(&r, exec::Stream::Stdout),
                    read(&r, exec::Stream::Stderr),
                )
            });
            (r, bytes)
        })
        .collect()
}

/// The binary that supervises background jobs: `ORCHESTRATE_EXE`, else this program when it is
/// orchestrate, else `orchestrate` from PATH (for programs using the library).
fn supervisor_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCHESTRATE_EXE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::current_exe() {
        Ok(p)
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("orchestrate")) =>
        {
            p
        }
        _ => PathBuf::from("orchestrate"),
    }
}

/// A path made absolute, as the store names job files.
fn absolute_text(p: &std::path::Path) -> String {
    absolute(p).display().to_string()
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
