//! What a run is given besides its plan (`RunOptions`), what it gives back (`RunOutcome`),
//! and how it can fail before its jobs run (`RunError`).

use std::path::PathBuf;
use std::sync::Arc;

use super::Survivors;
use crate::error::exit;
use crate::exec::{ExecSummary, Launcher, Local};
use crate::plan::{HaltSpec, Retention};
use crate::record::CompletedProcess;
use crate::report::ReportConfig;
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
    /// The jobs that succeeded in the run being resumed: their records are kept in this run
    /// as they are (read from the store as the run begins), so that the new run is complete
    /// and can itself be resumed.
    pub carried: crate::plan::resume::Carried,
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
    /// Notes for the records of the jobs they name, `(job, note)` (`rerun` says what it ran).
    pub notes: Vec<(String, String)>,
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
            carried: Default::default(),
            resumed: None,
            survivors: Survivors::Refuse,
            log: None,
            on_failure: None,
            wait: None,
            retention: None,
            notes: Vec::new(),
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
