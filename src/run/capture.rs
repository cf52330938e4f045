//! Where a run's records and captured output go, settled before any job starts: the store's
//! run folder (under the job file's overlap lock), or a temporary folder; and the job file's
//! history, read from the store before the run begins.

use std::path::PathBuf;
use std::time::SystemTime;

use super::history::Recent;
use super::{RunError, RunOptions, absolute};
use crate::lock::RunLock;
use crate::plan::Plan;
use crate::store::{self, NewRun, RunStore};

/// The run's id and its place for output; the lock and the temporary folder last as long as
/// this value does.
pub(super) struct Capture {
    pub run_id: String,
    pub dir: PathBuf,
    pub db: Option<RunStore>,
    /// The store's root, for background jobs to record how they end.
    pub state_root: Option<PathBuf>,
    pub lock: Option<RunLock>,
    pub tmp: Option<tempfile::TempDir>,
    /// The job file's history, read before the run begins (none without the store).
    pub recent: Recent,
    /// When the run began (once it held the lock): where its duration starts.
    pub started: SystemTime,
}

/// Opens the store and begins the run there, or makes a temporary folder with `--no-store`.
pub(super) fn prepare(
    plan: &Plan,
    opts: &RunOptions,
    started: SystemTime,
) -> Result<Capture, RunError> {
    if opts.store {
        in_store(plan, opts, started)
    } else {
        in_temp(started)
    }
}

fn in_store(plan: &Plan, opts: &RunOptions, started: SystemTime) -> Result<Capture, RunError> {
    let mut started = started;
    let mut run_id = store::new_run_id(started);
    let root = store::default_state_dir(opts.state_dir.as_deref())?;
    let mut s = RunStore::open(&root)?;
    let mut lock = None;
    let mut recent = Recent::default();
    if let Some(src) = &plan.source {
        lock = crate::lock::acquire(&root, src, opts.lock)?;
        // The run starts once it holds the lock (--wait-lock may have waited).
        let job_file = absolute(src).display().to_string();
        let quiet = opts.report.quiet || opts.report.json;
        super::survivors::settle(
            &mut s,
            &job_file,
            opts.resumed.as_deref(),
            opts.survivors,
            quiet,
        )?;
        recent = Recent::read(&mut s, plan, &job_file)?;
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
        // A stream's jobs are counted as they end; the records carried over are jobs of this
        // run too.
        total: plan.len_hint().unwrap_or(plan.jobs.len()) + opts.carried.len(),
    })?;
    if !opts.carried.is_empty() {
        super::carry::write(&mut s, &opts.carried, &run_id)?;
    }
    Ok(Capture {
        dir: s.run_dir(&run_id),
        run_id,
        db: Some(s),
        state_root: Some(root),
        lock,
        tmp: None,
        recent,
        started,
    })
}

fn in_temp(started: SystemTime) -> Result<Capture, RunError> {
    let t = tempfile::Builder::new()
        .prefix("orchestrate-")
        .tempdir()
        .map_err(RunError::Temp)?;
    Ok(Capture {
        run_id: store::new_run_id(started),
        // A folder inside the temporary one: the run's pack goes beside it (`<dir>.pack`),
        // and so inside the temporary folder too.
        dir: t.path().join("run"),
        db: None,
        state_root: None,
        lock: None,
        tmp: Some(t),
        recent: Recent::default(),
        started,
    })
}
