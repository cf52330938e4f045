//! One run of a plan, end to end: store opened before anything starts (`capture`), what the
//! job file's history says settled into the plan and the executor's options (`history`), the
//! executor on a tokio runtime, its events consumed by one thread (`consume`), signals turned
//! into cancellation (`signals`), and the outcome mapped to an exit code.

mod capture;
mod consume;
mod finish;
mod history;
mod log;
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
use crate::exec::{
    self, Cancel, CaptureRoot, Event, ExecOptions, ExecSummary, JobHistory, Launcher, Local,
};
use crate::plan::{HaltSpec, Plan, Retention};
use crate::record::CompletedProcess;
use crate::report::{ReportConfig, Reporter};
use crate::store::StoreError;

/// Everything a run needs besides its plan.
pub struct RunOptions {
    /// Jobs in flight at once; `None`: the job file's `concurrency`, else the number of CPUs.
    pub concurrency: Option<usize>,
    pub report: ReportConfig,
    /// Keep the run in the store (the default) or capture to a temporary folder.
    pub store: bool,
    /// `--state-dir`; `None` resolves as documented (env var, XDG, home).
    pub state_dir: Option<PathBuf>,
    /// Return every record in `RunOutcome::records` (library use).
    pub keep_records: bool,
    /// Read captured output into memory before a temporary capture folder goes away.
    pub keep_output: bool,
    pub launcher: Arc<dyn Launcher>,
    /// Handle signals (SIGINT/SIGTERM cancel the run). Off for library calls.
    pub handle_signals: bool,
    /// The overlap lock on the job file (only for runs of a job file with the store on).
    pub lock: crate::lock::LockMode,
    /// Ignore SIGHUP (under cron and pipes); otherwise it stops the run like SIGTERM.
    pub ignore_hangup: bool,
    /// Records of jobs that succeeded in the run being resumed: kept in this run as they are,
    /// so that the new run is complete and can itself be resumed.
    pub carried: Vec<CompletedProcess>,
    /// The run `carried` comes from (`--resume`): its jobs still running are survivors too.
    pub resumed: Option<String>,
    /// What to do about jobs still running from an earlier run of the job file.
    pub survivors: Survivors,
    /// Append the full report to this file as well (`--log`).
    pub log: Option<PathBuf>,
    /// What a failure does to the rest of the run; `None`: the plan's `on_failure`.
    pub on_failure: Option<HaltSpec>,
    /// Wait for background jobs before the run ends; `None`: the plan's `wait`.
    pub wait: Option<bool>,
    /// What to keep of the job file's history after the run; `None`: the plan's retention,
    /// else the store's default.
    pub retention: Option<Retention>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: None,
            report: ReportConfig::default(),
            store: true,
            state_dir: None,
            keep_records: false,
            keep_output: false,
            launcher: Arc::new(Local),
            handle_signals: false,
            lock: crate::lock::LockMode::Off,
            ignore_hangup: true,
            carried: Vec::new(),
            resumed: None,
            survivors: Survivors::Refuse,
            log: None,
            on_failure: None,
            wait: None,
            retention: None,
        }
    }
}

/// A job's stdout and stderr, read back into memory.
pub type CapturedBytes = (Vec<u8>, Vec<u8>);

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub run_id: Option<String>,
    pub summary: ExecSummary,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<i32>,
    pub exit_code: i32,
    /// With `keep_records`: every record, in job-file order, and with `keep_output` their bytes.
    pub records: Vec<(CompletedProcess, Option<CapturedBytes>)>,
    /// Problems recording the run that did not stop it (e.g. a full disk under the store).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create a temporary folder for captured output: {0}")]
    Temp(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Survivors(String),
    #[error("{0}")]
    Log(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Lock(crate::lock::LockError::Busy { .. }) | RunError::Survivors(_) => {
                exit::LOCKED
            }
            RunError::Invalid(_) => exit::USAGE,
            _ => exit::SOFTWARE,
        }
    }
}

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
    let started = SystemTime::now();
    check_options(&plan, &opts)?;
    let plan = effective_plan(plan, &opts);
    let job_file = plan
        .source
        .as_ref()
        .map(|p| absolute(p).display().to_string());
    let mut log_file = opts.log.as_deref().map(log::open).transpose()?;
    let capture::Capture {
        run_id,
        dir,
        db,
        state_root,
        lock: _lock,
        tmp,
        recent,
    } = capture::prepare(&plan, &opts, started).inspect_err(|e| {
        if let Some(f) = &mut log_file {
            log::refused(f, job_file.as_deref(), e);
        }
    })?;
    let (plan, history) = history::settle(plan, &recent);
    let plan = Arc::new(plan);

    let files = CaptureRoot(dir.clone());
    let mut reporter = Reporter::new(opts.report.clone(), plan.clone(), files.clone(), out, err);
    if let Some(f) = &mut log_file {
        log::header(f, &run_id, job_file.as_deref());
        reporter = reporter.with_log(log::reporter(f, &opts.report, &plan, &files)?);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let consumer = consume::spawn(rx, reporter, db, run_id.clone(), opts.keep_records);

    let spill_root = state_root.clone();
    let exec_opts = exec_options(&plan, &opts, dir, state_root, &run_id, history);
    let (summary, cancel_state) = execute(plan.clone(), &opts, exec_opts, tx, consumer.thread())?;
    let consume::Consumed {
        mut reporter,
        db,
        records,
        mut warnings,
        unrecorded,
        output_lost,
    } = consumer.join().expect("the event thread does not panic");
    let interrupted = interrupted_by(cancel_state);
    let lost = finish::Lost {
        unrecorded,
        output_lost,
    };
    let end = finish::RunEnd {
        run_id: &run_id,
        interrupted: interrupted.is_some(),
        failed: summary.failed() > 0,
        retention: plan.retention,
        job_file: job_file.as_deref(),
    };
    let store_lost = finish::record_end(db, spill_root.as_deref(), &end, lost, &mut warnings);
    reporter.finish(&summary, opts.store.then_some(run_id.as_str()), interrupted);
    if let Some(f) = &mut log_file {
        log::warnings(f, &warnings);
    }
    let records = with_output(records, opts.keep_output, &files);
    drop(tmp);
    Ok(RunOutcome {
        run_id: opts.store.then_some(run_id),
        // A run that could not record what happened says so in its exit code, whatever its
        // jobs did: cron must hear of it.
        exit_code: exit_code(store_lost, interrupted, &summary),
        summary,
        interrupted,
        records,
        warnings,
    })
}

/// What cannot work whatever the jobs do.
fn check_options(plan: &Plan, opts: &RunOptions) -> Result<(), RunError> {
    if !opts.store && plan.jobs.iter().any(|j| j.background) {
        return Err(RunError::Invalid(
            "background jobs need the store to record how they end; drop --no-store".into(),
        ));
    }
    Ok(())
}

/// The plan as it runs: the options' `on_failure`, `wait` and retention in place of the job
/// file's, settled once before anything runs (the scheduler reads them from the plan).
fn effective_plan(plan: Plan, opts: &RunOptions) -> Plan {
    Plan {
        on_failure: opts.on_failure.unwrap_or(plan.on_failure),
        wait: opts.wait.unwrap_or(plan.wait),
        retention: opts.retention.or(plan.retention),
        ..plan
    }
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
    tx: mpsc::Sender<Event>,
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

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
