//! One run of a plan, end to end: store opened before anything starts, the executor on a tokio
//! runtime, its events consumed by one thread (reporter and store), signals turned into
//! cancellation, and the outcome mapped to an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::error::exit;
use crate::exec::{self, Cancel, CaptureRoot, Event, ExecOptions, ExecSummary, Launcher, Local};
use crate::plan::Plan;
use crate::record::CompletedProcess;
use crate::report::{ReportConfig, Reporter};
use crate::store::{self, NewRun, RunStore, StoreError};

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
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Lock(crate::lock::LockError::Busy { .. }) => exit::LOCKED,
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
    let plan = Arc::new(plan);
    let mut started = SystemTime::now();
    let retention = plan.retention;
    let job_file = plan
        .source
        .as_ref()
        .map(|p| absolute(p).display().to_string());
    let mut run_id = store::new_run_id(started);

    // Where captured output goes: the store's run folder, or a temporary one.
    let mut tmp = None;
    let mut db = None;
    if !opts.store && plan.jobs.iter().any(|j| j.background) {
        return Err(RunError::Invalid(
            "background jobs need the store to record how they end; drop --no-store".into(),
        ));
    }
    let mut _lock = None;
    let mut state_root = None;
    let capture = if opts.store {
        let root = store::default_state_dir(opts.state_dir.as_deref());
        let mut s = RunStore::open(&root)?;
        if let Some(src) = &plan.source {
            _lock = crate::lock::acquire(&root, src, opts.lock)?;
            // The run starts once it holds the lock (--wait-lock may have waited).
            started = SystemTime::now();
            run_id = store::new_run_id(started);
        }
        s.begin_run(&NewRun {
            id: run_id.clone(),
            job_file: plan
                .source
                .as_ref()
                .map(|p| absolute(p).display().to_string()),
            job_file_hash: (!plan.source_hash.is_empty()).then(|| plan.source_hash.clone()),
            started,
            total: plan.jobs.len(),
        })?;
        if !opts.carried.is_empty() {
            s.record_batch(&run_id, &opts.carried)?;
        }
        let dir = s.run_dir(&run_id);
        db = Some(s);
        state_root = Some(root);
        dir
    } else {
        let t = tempfile::Builder::new()
            .prefix("orchestrate-")
            .tempdir()
            .map_err(RunError::Temp)?;
        let dir = t.path().to_path_buf();
        tmp = Some(t);
        dir
    };

    let concurrency = opts
        .concurrency
        .or(plan.concurrency)
        .unwrap_or_else(default_concurrency)
        .max(1);
    let forward_output = opts.report.needs_output_lines();
    let reporter = Reporter::new(opts.report.clone(), plan.clone(), out, err);

    let (tx, rx) = mpsc::channel::<Event>();
    let keep_records = opts.keep_records;
    let consumer_run_id = run_id.clone();
    let consumer = std::thread::Builder::new()
        .name("orchestrate-events".into())
        .spawn(move || consume(rx, reporter, db, consumer_run_id, keep_records))
        .expect("spawning the event thread");

    if opts.handle_signals {
        crate::sys::ignore_file_size_signal();
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
    let exec_opts = ExecOptions {
        concurrency,
        capture: CaptureRoot(capture),
        forward_output,
        launcher: opts.launcher.clone(),
        run_env: vec![("ORCHESTRATE_RUN".to_string(), run_id.clone())],
        secrets: crate::record::Secrets::new(plan.secrets.clone()),
        background: state_root.map(|state_dir| crate::exec::background::BackgroundCtx {
            exe: supervisor_exe(),
            state_dir,
            run_id: run_id.clone(),
            wait: plan.wait,
        }),
    };
    let handle_signals = opts.handle_signals;
    let ignore_hangup = opts.ignore_hangup;
    let cancel_watch = cancel_rx.clone();
    let summary = rt.block_on(async move {
        if handle_signals {
            spawn_signal_handler(cancel_tx.clone(), ignore_hangup);
        }
        let summary = exec::execute(plan, exec_opts, tx, cancel_rx.clone()).await;
        drop(cancel_tx);
        summary
    });
    // Every sender is gone with the jobs: the event thread takes the last events now.
    consumer.thread().unpark();
    let cancel_state = *cancel_watch.borrow();
    let stopped_jobs = summary.get(crate::record::Status::TimedOut) > 0
        || summary.get(crate::record::Status::Cancelled) > 0;
    if opts.handle_signals && (cancel_state != Cancel::None || stopped_jobs) {
        sweep_orphans();
    }
    rt.shutdown_background();

    let Consumed {
        mut reporter,
        db,
        records,
        warnings,
    } = consumer.join().expect("the event thread does not panic");
    let interrupted = match cancel_state {
        Cancel::None => None,
        Cancel::Graceful(sig) => Some(sig),
        Cancel::Hard => Some(crate::sys::SIGINT),
    };
    let exit_code = match interrupted {
        Some(sig) if sig == crate::sys::SIGINT => exit::SIGINT,
        Some(sig) => 128 + sig,
        None if summary.failed() > 0 => exit::JOB_FAILED,
        None => exit::OK,
    };
    let mut warnings = warnings;
    if let Some(mut s) = db {
        let status = if interrupted.is_some() {
            "interrupted"
        } else if summary.failed() > 0 {
            "failed"
        } else {
            "succeeded"
        };
        if let Err(e) = s.finish_run(&run_id, status, SystemTime::now()) {
            warnings.push(format!("could not record the end of the run: {e}"));
        }
        // Retention: this job file's history, by its own limits or the default.
        let keep = retention.unwrap_or(store::DEFAULT_RETENTION);
        if let Err(e) = s.gc(&keep, job_file.as_deref()) {
            warnings.push(format!("could not prune old runs: {e}"));
        }
    }
    reporter.finish(&summary, opts.store.then_some(run_id.as_str()), interrupted);
    let records = records
        .into_iter()
        .map(|r| {
            let bytes = opts.keep_output.then(|| {
                let read = |o: &crate::record::StoredOutput| match (&o.path, o.captured) {
                    (Some(p), true) => std::fs::read(p).unwrap_or_default(),
                    _ => Vec::new(),
                };
                (read(&r.stdout), read(&r.stderr))
            });
            (r, bytes)
        })
        .collect();
    drop(tmp);
    Ok(RunOutcome {
        run_id: opts.store.then_some(run_id),
        summary,
        interrupted,
        exit_code,
        records,
        warnings,
    })
}

struct Consumed {
    reporter: Reporter,
    db: Option<RunStore>,
    records: Vec<CompletedProcess>,
    warnings: Vec<String>,
}

/// Records committed per transaction at most.
const MAX_BATCH: usize = 2048;

/// How long a finished record may wait for others to share its transaction.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(25);

/// The one consumer of events: reports them and commits finished records in batches (every
/// event that arrived while the previous batch was written goes into the next transaction).
fn consume(
    rx: mpsc::Receiver<Event>,
    mut reporter: Reporter,
    mut db: Option<RunStore>,
    run_id: String,
    keep_records: bool,
) -> Consumed {
    let mut batch: Vec<CompletedProcess> = Vec::new();
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut store_failed = false;
    let has_db = db.is_some();
    let mut handle = |ev: Event, batch: &mut Vec<CompletedProcess>| {
        reporter.event(&ev);
        if let Event::JobFinished(rec) = ev {
            if keep_records {
                records.push(rec.as_ref().clone().into_inner());
            }
            if has_db {
                batch.push(rec.into_inner());
            }
        }
    };
    // A batch that could not be committed (the store busy past its timeout, say) is kept and
    // tried again with the next; after three failures in a row the store is given up for the
    // rest of the run, with a warning.
    let mut failures = 0;
    let mut flush = |db: &mut Option<RunStore>, batch: &mut Vec<CompletedProcess>| {
        let Some(s) = db.as_mut() else {
            batch.clear();
            return;
        };
        if store_failed || batch.is_empty() {
            batch.clear();
            return;
        }
        match s.record_batch(&run_id, batch) {
            Ok(()) => {
                failures = 0;
                batch.clear();
            }
            Err(e) => {
                failures += 1;
                if failures >= 3 {
                    warnings.push(format!(
                        "could not record {} finished jobs in the store: {e}",
                        batch.len()
                    ));
                    store_failed = true;
                    batch.clear();
                }
            }
        }
    };
    // Idle, the thread blocks on the channel. Once an event came, it sleeps a window at a time
    // and takes what arrived meanwhile: jobs sending events then never wake it (a wakeup costs
    // the sender a futex call and an interrupt to the other CPU), and a window's records share
    // one transaction. A window that brought nothing returns it to blocking.
    'run: while let Ok(ev) = rx.recv() {
        handle(ev, &mut batch);
        loop {
            // Whatever is there, for at most one window: records are committed every window
            // even while a chatty job's output lines keep coming.
            let start = std::time::Instant::now();
            let (mut closed, mut caught_up) = (false, false);
            while batch.len() < MAX_BATCH && start.elapsed() < BATCH_WINDOW {
                match rx.try_recv() {
                    Ok(ev) => handle(ev, &mut batch),
                    Err(mpsc::TryRecvError::Empty) => {
                        caught_up = true;
                        break;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            flush(&mut db, &mut batch);
            if closed {
                break 'run;
            }
            if !caught_up {
                continue;
            }
            // The run unparks this thread when its jobs are done: the last window is not
            // waited out.
            std::thread::park_timeout(BATCH_WINDOW);
            match rx.try_recv() {
                Ok(ev) => handle(ev, &mut batch),
                Err(mpsc::TryRecvError::Empty) => continue 'run,
                Err(mpsc::TryRecvError::Disconnected) => break 'run,
            }
        }
    }
    // The last batch, and one kept after a failure: tried until committed or given up.
    for _ in 0..3 {
        if batch.is_empty() {
            break;
        }
        flush(&mut db, &mut batch);
    }
    records.sort_by_key(|r| r.index);
    Consumed {
        reporter,
        db,
        records,
        warnings,
    }
}

/// The first SIGINT or SIGTERM stops the jobs gracefully; a second SIGINT kills them at once.
/// SIGHUP is ignored under cron (no terminal to lose); on a terminal it stops the run like
/// SIGTERM.
fn spawn_signal_handler(tx: watch::Sender<Cancel>, ignore_hangup: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if !ignore_hangup && *tx.borrow() == Cancel::None && tx.send(Cancel::Graceful(crate::sys::SIGHUP)).is_err() {
                        break;
                    }
                }
                _ = int.recv() => {
                    let now = *tx.borrow();
                    let next = if now == Cancel::None { Cancel::Graceful(crate::sys::SIGINT) } else { Cancel::Hard };
                    if tx.send(next).is_err() { break; }
                }
                _ = term.recv() => {
                    if *tx.borrow() == Cancel::None && tx.send(Cancel::Graceful(crate::sys::SIGTERM)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Stops what stopped jobs left behind outside their process groups: our reparented
/// children, except the supervisors of background jobs.
fn sweep_orphans() {
    let me = std::process::id();
    let my_group = crate::sys::process_group_of(me);
    // Killing an orphan reparents its children to us in turn: a few rounds catch them.
    for _ in 0..5 {
        let orphans: Vec<u32> = crate::sys::children_of(me)
            .into_iter()
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                !cmdline.split(|b| *b == 0).any(|arg| arg == b"__supervise")
            })
            .collect();
        if orphans.is_empty() {
            return;
        }
        for &pid in &orphans {
            // Its whole group: a detached process usually leads one (setsid).
            if let Some(g) = crate::sys::process_group_of(pid)
                && Some(g) != my_group
            {
                let _ = crate::sys::killpg(g, crate::sys::SIGTERM);
            }
            let _ = crate::sys::kill(pid, crate::sys::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline
            && orphans.iter().any(|&p| !crate::sys::process_gone(p))
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for &pid in &orphans {
            if !crate::sys::process_gone(pid) {
                if let Some(g) = crate::sys::process_group_of(pid)
                    && Some(g) != my_group
                {
                    let _ = crate::sys::killpg(g, crate::sys::SIGKILL);
                }
                let _ = crate::sys::kill(pid, crate::sys::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
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
