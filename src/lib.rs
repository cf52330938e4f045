//! `orchestrate` runs external commands described in a YAML job file, with bounded
//! concurrency, and keeps a record of every job: its arguments, return code or signal, output,
//! times and status.
//!
//! The library does from Rust what scripts do with `subprocess.run` and `multiprocessing.Pool`:
//!
//! ```no_run
//! // subprocess.run(["df", "-h", "/home"], stdout=PIPE)
//! let done = orchestrate::run(["df", "-h", "/"]).unwrap();
//! println!("{} -> {:?}", done.record.job, done.record.returncode);
//! print!("{}", String::from_utf8_lossy(&done.stdout));
//!
//! // Pool(5).map(square, dataset): results in input order
//! let results = orchestrate::map("sh -c 'echo $(( {} * {} ))'", [1, 2, 3], 5).unwrap();
//! for r in results {
//!     print!("{}", String::from_utf8_lossy(&r.stdout));
//! }
//! ```
//!
//! The pipeline: `spec` (YAML) → `plan` (validated jobs) → `exec` (events) → `store` and
//! `report`. The binary is a thin layer over [`run::run_plan`].

pub mod cli;
pub mod cron;
pub mod environ;
pub mod error;
pub mod exec;
pub mod lock;
pub mod notify;
pub mod plan;
pub mod record;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod supervise;
mod sys;
pub mod text;

use std::path::Path;

pub use error::SpecError;
pub use plan::{Plan, PlannedJob};
pub use record::{CompletedProcess, Status};
pub use run::{RunOptions, RunOutcome};

/// A finished job with its output in memory, for library callers.
#[derive(Debug, Clone)]
pub struct Completed {
    pub record: CompletedProcess,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Completed {
    pub fn success(&self) -> bool {
        self.record.status == Status::Succeeded
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// An error of the library's convenience functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error("invalid command template `{0}`: a quote is not closed")]
    Template(String),
    #[error("empty command")]
    Empty,
}

fn quiet_options(concurrency: usize) -> RunOptions {
    RunOptions {
        concurrency: Some(concurrency.max(1)),
        report: report::ReportConfig {
            output: report::OutputMode::None,
            quiet: true,
            ..Default::default()
        },
        store: false,
        keep_records: true,
        keep_output: true,
        ..Default::default()
    }
}

fn completed(outcome: RunOutcome) -> Vec<Completed> {
    outcome
        .records
        .into_iter()
        .map(|(record, bytes)| {
            let (stdout, stderr) = bytes.unwrap_or_default();
            Completed {
                record,
                stdout,
                stderr,
            }
        })
        .collect()
}

/// Runs one command (no shell) and waits for it, capturing its output: Python's
/// `subprocess.run(args, stdout=PIPE, stderr=PIPE)`. A command that cannot start is a record
/// with status `SpawnError`, not an `Err`.
pub fn run<I, S>(argv: I) -> Result<Completed, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
    if argv.is_empty() || argv[0].is_empty() {
        return Err(Error::Empty);
    }
    let plan = Plan::from_argvs([argv]);
    let outcome = run::run_plan(
        plan,
        quiet_options(1),
        Box::new(std::io::sink()),
        Box::new(std::io::sink()),
    )?;
    Ok(completed(outcome)
        .into_iter()
        .next()
        .expect("a plan of one job yields one record"))
}

/// Runs a command template once per item, at most `concurrency` at a time, and returns the
/// results in input order: `Pool(concurrency).map(f, items)`. The template is split into words
/// first and `{}` is replaced inside words afterwards, so an item with spaces or quotes stays
/// one argument and never reaches a shell unquoted.
pub fn map<T, I>(template: &str, items: I, concurrency: usize) -> Result<Vec<Completed>, Error>
where
    T: std::fmt::Display,
    I: IntoIterator<Item = T>,
{
    let words = shell_words::split(template).map_err(|_| Error::Template(template.to_string()))?;
    if words.is_empty() {
        return Err(Error::Empty);
    }
    let argvs: Vec<Vec<String>> = items
        .into_iter()
        .map(|item| {
            let item = item.to_string();
            words.iter().map(|w| w.replace("{}", &item)).collect()
        })
        .collect();
    if argvs.is_empty() {
        return Ok(Vec::new());
    }
    let plan = Plan::from_argvs(argvs);
    let outcome = run::run_plan(
        plan,
        quiet_options(concurrency),
        Box::new(std::io::sink()),
        Box::new(std::io::sink()),
    )?;
    Ok(completed(outcome))
}

/// Runs a job file as `orchestrate FILE` would, with the given options, printing nothing unless
/// `opts.report` says so. Returns the outcome with the exit code the command line would use.
pub fn run_file(path: &Path, opts: RunOptions) -> Result<RunOutcome, Error> {
    let plan = Plan::load(path)?;
    Ok(run::run_plan(
        plan,
        opts,
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    )?)
}
