//! The command line: clap definitions, and each command mapped to the library and an exit code.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::exit;
use crate::exec::{Stream, job_dir_name};
use crate::plan::{Input, Plan, Target};
use crate::record::{format_duration, format_time};
use crate::report::{self, OutputMode, ReportConfig};
use crate::run::{self, RunOptions};
use crate::store::{self, Retention, RunFilter, RunStore};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrate",
    version,
    about = "Run the commands of a YAML job file with bounded concurrency, and keep a record of every job.",
    long_about = None,
    after_help = "Exit codes: 0 all jobs succeeded, 1 a job failed, 2 invalid job file or usage, 75 locked, 130/143 interrupted.\nRecords and output are kept under --state-dir (default ~/.local/state/orchestrate)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Where runs and captured output are kept [env: ORCHESTRATE_STATE_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job file (the same as `orchestrate FILE`).
    Run(RunArgs),
    /// Validate a job file and print the plan, without running anything.
    Check {
        job_file: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recent runs.
    Runs {
        /// Only runs with a failed job, or interrupted.
        #[arg(long)]
        failed: bool,
        /// Only runs of this job file (path as given, or its file name).
        #[arg(long, value_name = "FILE")]
        job_file: Option<String>,
        /// Only runs started within this long ago (`1d`, `12h`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one run's records (default: the last run).
    Show {
        /// Run id, unique prefix, `last` or `last~N`.
        #[arg(default_value = "last")]
        run: String,
        /// One job's record in full.
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        /// JSON lines, the same record shape as `orchestrate --json`.
        #[arg(long)]
        json: bool,
    },
    /// Print a job's captured output, bytes exactly as written.
    Logs {
        job: String,
        #[arg(long, default_value = "last")]
        run: String,
        /// stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing while the job runs.
        #[arg(long, short)]
        follow: bool,
    },
    /// One job across runs: when it ran, how it ended.
    History {
        job: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// What changed in a job's stdout between two runs (default: its last two).
    Diff {
        job: String,
        /// The runs to compare (give twice: older, then newer).
        #[arg(long = "run", value_name = "RUN", num_args = 1)]
        runs: Vec<String>,
        #[arg(long)]
        stderr: bool,
    },
    /// Print a crontab line that runs a job file on a schedule; --install adds it to your crontab.
    Cron {
        job_file: PathBuf,
        /// When to run: five cron fields (`*/15 * * * *`) or a nickname (`@daily`).
        #[arg(long, value_name = "CRON", required_unless_present = "remove")]
        schedule: Option<String>,
        /// Add the line to the user's crontab (replacing an earlier one for this job file).
        #[arg(long, conflicts_with = "remove")]
        install: bool,
        /// Remove this job file's line from the user's crontab.
        #[arg(long)]
        remove: bool,
        /// Where the run's report goes (default: <state dir>/cron/<job file>.log).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `orchestrate man | man -l -`.
    Man,
    /// Background jobs that are running, or that ended since you last looked.
    Status {
        /// Every background job on record, not only running and unseen ones.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Wait for background jobs to end (all running ones, those of a RUN, or the named JOBs).
    /// Exit 0 if all succeeded, 1 otherwise, 124 on --timeout.
    Wait {
        /// Run ids (or prefixes, `last`) and/or job names.
        targets: Vec<String>,
        #[arg(long, value_name = "D", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Stop a background job (TERM to its process group, KILL after its grace) and record it as
    /// cancelled.
    Kill {
        job: String,
        /// The run it belongs to (default: its latest running one).
        #[arg(long)]
        run: Option<String>,
    },
    #[command(name = "__supervise", hide = true)]
    Supervise,
    /// Remove old runs and their output.
    Gc {
        /// Keep at most this many runs.
        #[arg(long, value_name = "N")]
        keep_runs: Option<usize>,
        /// Remove runs older than this (`30d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_age: Option<Duration>,
        /// Keep at most this much captured output (`500M`, `2G`).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_bytes: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum When {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// The YAML job file to run.
    #[arg(value_name = "JOBFILE")]
    pub job_file: Option<PathBuf>,
    /// Jobs in flight at once (default: the job file's `concurrency`, else the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub jobs: Option<u32>,
    /// Which job output to show.
    #[arg(long, value_enum, default_value_t = OutputMode::Failed)]
    pub output: OutputMode,
    /// One JSON record per line on stdout instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Print nothing when every job succeeds; on failure, the failed jobs and their stderr tails.
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress bars: auto means when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    pub progress: When,
    /// Colors in the report: auto means when stderr is a terminal and NO_COLOR is unset.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    pub color: When,
    /// Do not keep this run in the store (capture to a temporary folder; no lock either).
    #[arg(long)]
    pub no_store: bool,
    /// If another run of this job file holds the lock, wait for it (for at most D, e.g. `10m`).
    #[arg(long, value_name = "D", num_args = 0..=1, default_missing_value = "forever", value_parser = parse_wait)]
    pub wait_lock: Option<WaitLimit>,
    /// Wait for background jobs before ending the run, and count them in the exit code
    /// (like `wait: true` in the job file).
    #[arg(long)]
    pub wait: bool,
    /// Run only what did not succeed in an earlier run of this job file (`last`, an id or a
    /// prefix): jobs are matched by name and definition, so an edited job runs again.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Do not take the overlap lock: allow this job file to run twice at once.
    #[arg(long, conflicts_with = "wait_lock")]
    pub no_lock: bool,
    /// Run only these jobs (and what they need, unless --no-deps); comma-separated or repeated.
    #[arg(long, value_name = "NAME", value_delimiter = ',', num_args = 1..)]
    pub only: Vec<String>,
    /// Leave these jobs out (and what needs them, unless --no-deps).
    #[arg(long, value_name = "NAME", value_delimiter = ',', num_args = 1..)]
    pub skip: Vec<String>,
    /// With --only/--skip: do not follow `needs`.
    #[arg(long)]
    pub no_deps: bool,
    /// Start no new job after a failure (like `on_failure: stop`).
    #[arg(long)]
    pub fail_fast: bool,
    /// What a failure does to the rest of the run; overrides the job file's `on_failure`.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_failure: Option<OnFailure>,
    /// After the run, keep at most this many runs of this job file (default 500).
    #[arg(long, value_name = "N")]
    pub keep_runs: Option<usize>,
    /// After the run, remove runs of this job file older than this (`30d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// After the run, keep at most this much captured output of this job file (`2G`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Run everything that does not depend on the failure.
    Continue,
    /// Start nothing new; let running jobs finish.
    Stop,
    /// Stop running jobs too.
    Kill,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write it like `30s`, `10m`, `1d`)"))
}

/// How long `--wait-lock` waits: `None` for as long as it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimit(pub Option<Duration>);

fn parse_wait(s: &str) -> Result<WaitLimit, String> {
    if s == "forever" {
        Ok(WaitLimit(None))
    } else {
        parse_duration(s).map(|d| WaitLimit(Some(d)))
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::spec::parse_size(s)
}

/// Facts about where we run, passed in so that behaviour can be tested.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub stderr_is_tty: bool,
    pub no_color: bool,
}

impl Terminal {
    pub fn detect() -> Self {
        Terminal {
            stderr_is_tty: std::io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main_with(cli: Cli, term: Terminal) -> i32 {
    let state_dir = cli.state_dir.clone();
    match cli.command {
        Some(Command::Run(args)) => cmd_run(args, state_dir, term),
        None => {
            if cli.run.job_file.is_none() {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                let _ = cmd.print_help();
                return exit::USAGE;
            }
            cmd_run(cli.run, state_dir, term)
        }
        Some(Command::Check { job_file, json }) => cmd_check(&job_file, json),
        Some(Command::Cron {
            job_file,
            schedule,
            install,
            remove,
            log,
        }) => cmd_cron(
            &job_file,
            schedule.as_deref(),
            install,
            remove,
            log,
            state_dir,
        ),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "orchestrate", &mut std::io::stdout());
            exit::OK
        }
        Some(Command::Supervise) => crate::supervise::supervise(),
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => exit::OK,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
                Err(e) => {
                    eprintln!("orchestrate: {e}");
                    exit::SOFTWARE
                }
            }
        }
        Some(other) => match inspect(other, state_dir) {
            Ok(code) => code,
            // `orchestrate show | head`: the reader had enough.
            Err(InspectError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            Err(e) => {
                eprintln!("orchestrate: {e}");
                match e {
                    InspectError::Store(store::StoreError::NotFound(_))
                    | InspectError::Store(store::StoreError::Empty(_))
                    | InspectError::Usage(_) => exit::USAGE,
                    _ => exit::SOFTWARE,
                }
            }
        },
    }
}

fn cmd_run(args: RunArgs, state_dir: Option<PathBuf>, term: Terminal) -> i32 {
    let Some(path) = args.job_file else {
        eprintln!("orchestrate: error: give a job file to run");
        return exit::USAGE;
    };
    let plan = match Plan::load(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    if let Some(w) = unsafe_job_file(&path) {
        eprintln!("orchestrate: warning: {w}");
    }
    let mut plan = match plan.select(&args.only, &args.skip, !args.no_deps) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("orchestrate: error: {e}");
            return exit::USAGE;
        }
    };
    let mut carried = Vec::new();
    if let Some(from) = &args.resume {
        match resume_set(&state_dir, from, &path) {
            Ok((id, done)) => {
                let keys: std::collections::HashSet<(String, String)> = done
                    .iter()
                    .map(|r| (r.job.clone(), r.def_hash.clone()))
                    .collect();
                let before: std::collections::HashSet<String> =
                    plan.jobs.iter().map(|j| j.name.clone()).collect();
                let skipped = plan.resume_from(&keys);
                let still: std::collections::HashSet<String> =
                    plan.jobs.iter().map(|j| j.name.clone()).collect();
                carried = done
                    .into_iter()
                    .filter(|r| before.contains(&r.job) && !still.contains(&r.job))
                    .map(|mut r| {
                        r.notes
                            .push(format!("succeeded in run {id}; carried over by --resume"));
                        r
                    })
                    .collect();
                if !args.quiet && !args.json {
                    eprintln!(
                        "orchestrate: resuming run {id}: {skipped} job{} already succeeded, {} to run",
                        if skipped == 1 { "" } else { "s" },
                        plan.jobs.len()
                    );
                }
                if plan.jobs.is_empty() {
                    return exit::OK;
                }
            }
            Err(e) => {
                eprintln!("orchestrate: error: {e}");
                return exit::USAGE;
            }
        }
    }
    if args.fail_fast {
        plan.on_failure = crate::plan::HaltSpec::Stop;
    }
    if args.wait {
        plan.wait = true;
    }
    if let Some(p) = args.on_failure {
        plan.on_failure = match p {
            OnFailure::Continue => crate::plan::HaltSpec::Continue,
            OnFailure::Stop => crate::plan::HaltSpec::Stop,
            OnFailure::Kill => crate::plan::HaltSpec::Kill,
        };
    }
    let flags_retention = Retention {
        max_runs: args.keep_runs,
        max_age: args.max_age,
        max_bytes: args.max_bytes,
    };
    if flags_retention.max_runs.is_some()
        || flags_retention.max_age.is_some()
        || flags_retention.max_bytes.is_some()
    {
        plan.retention = Some(flags_retention);
    }
    let progress = match args.progress {
        When::Always => true,
        When::Never => false,
        When::Auto => term.stderr_is_tty,
    };
    let color = match args.color {
        When::Always => true,
        When::Never => false,
        When::Auto => term.stderr_is_tty && !term.no_color,
    };
    let opts = RunOptions {
        concurrency: args.jobs.map(|j| j as usize),
        report: ReportConfig {
            output: args.output,
            json: args.json,
            quiet: args.quiet,
            progress,
            color,
            timestamps: !term.stderr_is_tty,
            tail_lines: 10,
        },
        store: !args.no_store,
        state_dir,
        handle_signals: true,
        lock: if args.no_lock {
            crate::lock::LockMode::Off
        } else if let Some(w) = args.wait_lock {
            crate::lock::LockMode::Wait(w.0)
        } else {
            crate::lock::LockMode::NoWait
        },
        ignore_hangup: !term.stderr_is_tty,
        carried,
        ..Default::default()
    };
    match run::run_plan(
        plan,
        opts,
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    ) {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("orchestrate: warning: {w}");
            }
            outcome.exit_code
        }
        Err(e) => {
            eprintln!("orchestrate: error: {e}; no job was started");
            e.exit_code()
        }
    }
}

/// The run to resume and what succeeded in it; it must be a run of the same job file.
fn resume_set(
    state_dir: &Option<PathBuf>,
    from: &str,
    job_file: &Path,
) -> Result<(String, Vec<crate::record::CompletedProcess>), String> {
    let root = store::default_state_dir(state_dir.as_deref());
    let mut db = RunStore::open_existing(&root).map_err(|e| e.to_string())?;
    let abs = std::path::absolute(job_file).unwrap_or_else(|_| job_file.to_path_buf());
    let abs = abs.display().to_string();
    let id = if from == "last" {
        // The last run of this job file, not of any.
        db.list_runs(&RunFilter {
            job_file: Some(abs.clone()),
            limit: Some(1),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .map(|r| r.id)
        .ok_or_else(|| format!("no earlier run of {} to resume", job_file.display()))?
    } else {
        db.resolve_run(from).map_err(|e| e.to_string())?
    };
    let run = db.run(&id).map_err(|e| e.to_string())?;
    if run.job_file.as_deref() != Some(abs.as_str()) {
        return Err(format!(
            "run {id} is a run of {}, not of {}",
            run.job_file.as_deref().unwrap_or("(no job file)"),
            job_file.display()
        ));
    }
    let done = db.succeeded_jobs(&id).map_err(|e| e.to_string())?;
    Ok((id, done))
}

fn cmd_cron(
    job_file: &Path,
    schedule: Option<&str>,
    install: bool,
    remove: bool,
    log: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> i32 {
    let fail = |msg: String, code: i32| {
        eprintln!("orchestrate: error: {msg}");
        code
    };
    let abs = match std::fs::canonicalize(job_file) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {e}", job_file.display()), exit::USAGE),
    };
    if remove {
        return match crate::cron::remove(&abs) {
            Ok(true) => {
                println!("removed the crontab line of {}", abs.display());
                exit::OK
            }
            Ok(false) => {
                println!("no crontab line for {}", abs.display());
                exit::OK
            }
            Err(e) => fail(e, exit::SOFTWARE),
        };
    }
    let schedule = schedule.unwrap_or_default();
    if let Err(e) = crate::cron::validate(schedule) {
        return fail(format!("invalid schedule: {e}"), exit::USAGE);
    }
    if let Err(e) = Plan::load(&abs) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("orchestrate"));
    let explicit_state = state_dir
        .clone()
        .or_else(|| std::env::var_os("ORCHESTRATE_STATE_DIR").map(PathBuf::from))
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    let root = store::default_state_dir(explicit_state.as_deref());
    let log = match log {
        Some(l) => std::path::absolute(&l).unwrap_or(l),
        None => {
            let stem = crate::text::slug(
                &abs.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            root.join("cron").join(format!("{stem}.log"))
        }
    };
    if let Some(dir) = log.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return fail(
            format!("cannot create {}: {e}", dir.display()),
            exit::SOFTWARE,
        );
    }
    let path_env = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let line = crate::cron::line(
        schedule,
        &abs,
        &exe,
        &path_env,
        explicit_state.as_deref(),
        &log,
    );
    if !install {
        println!("{line}");
        return exit::OK;
    }
    match crate::cron::install(&line, &abs) {
        Ok(replaced) => {
            println!("{line}");
            eprintln!(
                "{} the crontab line of {}",
                if replaced { "replaced" } else { "installed" },
                abs.display()
            );
            exit::OK
        }
        Err(e) => fail(e, exit::SOFTWARE),
    }
}

/// Like cron and sudo with their files: a job file that others can change, run as root, runs
/// their commands as root.
fn unsafe_job_file(path: &Path) -> Option<String> {
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

fn cmd_check(path: &Path, json: bool) -> i32 {
    let plan = match Plan::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        for j in &plan.jobs {
            let v = serde_json::json!({
                "index": j.index,
                "name": j.name,
                "args": j.argv,
                "cwd": j.cwd,
                "env": j.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                "timeout": j.timeout.map(|t| t.as_secs_f64()),
                "stdout": target_text(&j.stdout),
                "stderr": target_text(&j.stderr),
            });
            let _ = writeln!(out, "{v}");
        }
        return exit::OK;
    }
    let conc = plan.concurrency.map_or_else(
        || format!("{} (CPUs)", run::default_concurrency()),
        |c| c.to_string(),
    );
    let _ = writeln!(
        out,
        "{}: {} job{}, concurrency {conc}",
        path.display(),
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" }
    );
    for j in &plan.jobs {
        let mut extra = Vec::new();
        if let Some(c) = &j.cwd {
            extra.push(format!("cwd {}", c.display()));
        }
        if let Some(t) = j.timeout {
            extra.push(format!("timeout {}", humantime::format_duration(t)));
        }
        if !j.env.is_empty() {
            extra.push(format!(
                "env {}",
                j.env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        match &j.stdin {
            Input::Null => {}
            Input::Text(_) => extra.push("stdin text".into()),
            Input::File(p) => extra.push(format!("stdin {}", p.display())),
        }
        if j.stdout != Target::Capture {
            extra.push(format!("stdout {}", target_text(&j.stdout)));
        }
        if j.stderr != Target::Capture {
            extra.push(format!("stderr {}", target_text(&j.stderr)));
        }
        let _ = writeln!(
            out,
            "  {:<24} {}{}",
            j.name,
            shell_words::join(j.argv.iter().map(String::as_str)),
            if extra.is_empty() {
                String::new()
            } else {
                format!("   [{}]", extra.join("; "))
            }
        );
    }
    exit::OK
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Capture => "capture".into(),
        Target::Inherit => "inherit".into(),
        Target::Null => "null".into(),
        Target::Stdout => "stdout".into(),
        Target::File { path, append } => {
            format!("{} {}", if *append { ">>" } else { ">" }, path.display())
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum InspectError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn inspect(cmd: Command, state_dir: Option<PathBuf>) -> Result<i32, InspectError> {
    let root = store::default_state_dir(state_dir.as_deref());
    let mut db = RunStore::open_existing(&root)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Runs {
            failed,
            job_file,
            since,
            limit,
            json,
        } => {
            let rows = db.list_runs(&RunFilter {
                failed_only: failed,
                job_file,
                since: since.map(|d| SystemTime::now() - d),
                limit: Some(limit),
            })?;
            if json {
                for r in &rows {
                    writeln!(out, "{}", serde_json::to_string(r).expect("rows serialize"))?;
                }
                return Ok(exit::OK);
            }
            let mut table = vec![vec![
                "RUN".to_string(),
                "JOB FILE".into(),
                "STARTED".into(),
                "DURATION".into(),
                "OK".into(),
                "FAILED".into(),
                "STATUS".into(),
            ]];
            for r in &rows {
                table.push(vec![
                    r.id.clone(),
                    r.job_file.as_deref().map_or("-".into(), short_path),
                    humantime::format_rfc3339_seconds(r.started).to_string(),
                    r.duration().map_or("-".into(), format_duration),
                    r.succeeded.to_string(),
                    r.failed.to_string(),
                    r.status.clone(),
                ]);
            }
            write_table(&mut out, &table)?;
            Ok(exit::OK)
        }
        Command::Show { run, job, json } => {
            let id = db.resolve_run(&run)?;
            let inherited = db.run_env_keys(&id)?;
            if let Some(job) = job {
                let rec = db.record(&id, &job)?;
                if json {
                    report::write_json_record(&mut out, &rec, &inherited)?;
                } else {
                    write!(
                        out,
                        "run         {id}\n{}",
                        report::record_detail(&rec, &inherited)
                    )?;
                }
                return Ok(exit::OK);
            }
            if json {
                db.each_record(&id, |r| report::write_json_record(&mut out, &r, &inherited))?;
                return Ok(exit::OK);
            }
            let row = db.run(&id)?;
            writeln!(
                out,
                "run {}  {}  started {}  {}  {}",
                row.id,
                row.job_file.as_deref().unwrap_or("-"),
                humantime::format_rfc3339_seconds(row.started),
                row.duration().map_or("-".into(), format_duration),
                row.status
            )?;
            let w = db.widest_job_name(&id)?.max(3);
            let line = |cells: [&str; 7]| {
                format!(
                    "{:<6} {:<w$}  {:<11} {:<20} {:<9} {:<10} {}",
                    cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
                )
                .trim_end()
                .to_string()
            };
            writeln!(
                out,
                "{}",
                line([
                    "#", "JOB", "STATUS", "OUTCOME", "DURATION", "STDOUT", "STDERR"
                ])
            )?;
            let shown = db.each_row(&id, |r| {
                writeln!(
                    out,
                    "{}",
                    line([
                        &r.index.to_string(),
                        &r.job,
                        &r.status,
                        &r.outcome,
                        &format_duration(r.duration),
                        &r.stdout_bytes.to_string(),
                        &r.stderr_bytes.to_string(),
                    ])
                )
            })?;
            let recs_len = shown;
            if (recs_len as u64) < row.total {
                writeln!(
                    out,
                    "({} of {} jobs have no record{})",
                    row.total - recs_len as u64,
                    row.total,
                    if row.status == "running" {
                        ": still running"
                    } else {
                        ": they were in flight when the run ended"
                    }
                )?;
            }
            Ok(exit::OK)
        }
        Command::Logs {
            job,
            run,
            stderr,
            follow,
        } => {
            let id = db.resolve_run(&run)?;
            let stream = if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            logs(&mut db, &id, &job, stream, follow, &mut out)
        }
        Command::History { job, limit, json } => {
            let rows = db.history(&job, limit)?;
            if json {
                for (id, r) in &rows {
                    let v = serde_json::json!({
                        "run": id, "job": r.job, "status": r.status, "returncode": r.returncode,
                        "signal": r.signal, "start": format_time(r.started),
                        "duration": r.duration.as_secs_f64(),
                    });
                    writeln!(out, "{v}")?;
                }
                return Ok(exit::OK);
            }
            let mut table = vec![vec![
                "RUN".to_string(),
                "STARTED".into(),
                "STATUS".into(),
                "OUTCOME".into(),
                "DURATION".into(),
            ]];
            for (id, r) in &rows {
                table.push(vec![
                    id.clone(),
                    humantime::format_rfc3339_seconds(r.started).to_string(),
                    r.status.to_string(),
                    r.outcome(),
                    format_duration(r.duration),
                ]);
            }
            write_table(&mut out, &table)?;
            Ok(exit::OK)
        }
        Command::Diff { job, runs, stderr } => diff(&mut db, &job, &runs, stderr, &mut out),
        Command::Gc {
            keep_runs,
            max_age,
            max_bytes,
        } => {
            if keep_runs.is_none() && max_age.is_none() && max_bytes.is_none() {
                return Err(InspectError::Usage(
                    "say what to keep: --keep-runs N, --max-age DURATION and/or --max-bytes SIZE"
                        .into(),
                ));
            }
            let rep = db.gc(
                &Retention {
                    max_runs: keep_runs,
                    max_age,
                    max_bytes,
                },
                None,
            )?;
            writeln!(
                out,
                "removed {} run{} ({} bytes of output)",
                rep.runs_removed,
                if rep.runs_removed == 1 { "" } else { "s" },
                rep.bytes_removed
            )?;
            Ok(exit::OK)
        }
        Command::Run(_)
        | Command::Check { .. }
        | Command::Cron { .. }
        | Command::Completions { .. }
        | Command::Supervise
        | Command::Man => unreachable!("handled by main_with"),
        Command::Status { all, json } => {
            let jobs = background_now(&mut db, !all)?;
            if json {
                for (run, rec) in &jobs {
                    let v = serde_json::json!({
                        "run": run, "job": rec.job, "pid": rec.pid, "status": rec.status,
                        "returncode": rec.returncode, "signal": rec.signal,
                        "start": format_time(rec.started),
                        "end": (rec.status != crate::record::Status::Background).then(|| format_time(rec.finished)),
                        "error": rec.error,
                    });
                    writeln!(out, "{v}")?;
                }
            } else if jobs.is_empty() {
                writeln!(
                    out,
                    "no background jobs running or ended since last looked at"
                )?;
            } else {
                let mut table = vec![vec![
                    "RUN".to_string(),
                    "JOB".into(),
                    "PID".into(),
                    "STARTED".into(),
                    "STATE".into(),
                ]];
                for (run, r) in &jobs {
                    let state = match r.status {
                        crate::record::Status::Background => format!(
                            "running for {}",
                            format_duration(
                                SystemTime::now()
                                    .duration_since(r.started)
                                    .unwrap_or_default()
                            )
                        ),
                        crate::record::Status::Lost => "lost (its supervisor is gone)".to_string(),
                        st => format!("{st}, {}", r.outcome()),
                    };
                    table.push(vec![
                        run.clone(),
                        r.job.clone(),
                        r.pid.map_or("-".into(), |p| p.to_string()),
                        humantime::format_rfc3339_seconds(r.started).to_string(),
                        state,
                    ]);
                }
                write_table(&mut out, &table)?;
            }
            let ended: Vec<(String, String)> = jobs
                .iter()
                .filter(|(_, r)| r.status != crate::record::Status::Background)
                .map(|(run, r)| (run.clone(), r.job.clone()))
                .collect();
            db.mark_seen(&ended)?;
            Ok(exit::OK)
        }
        Command::Wait { targets, timeout } => wait_background(&mut db, &targets, timeout, &mut out),
        Command::Kill { job, run } => kill_background(&mut db, &job, run.as_deref(), &mut out),
    }
}

/// Background jobs from the store, with vanished supervisors settled as lost.
fn background_now(
    db: &mut RunStore,
    unseen_or_running: bool,
) -> Result<Vec<(String, crate::record::CompletedProcess)>, InspectError> {
    let mut out = Vec::new();
    for (run, mut rec, _) in db.background_jobs(unseen_or_running)? {
        if rec.status == crate::record::Status::Background && rec.slurm_job_id.is_some() {
            // Slurm knows how it is doing.
            if crate::exec::sbatch::poll(&mut rec) {
                db.put_background(&run, &rec)?;
            }
        } else if rec.status == crate::record::Status::Background
            && !rec.supervisor.as_ref().is_some_and(crate::supervise::alive)
        {
            rec.status = crate::record::Status::Lost;
            rec.error = Some(
                "its supervisor is gone (killed, or the machine restarted) without recording how the job ended"
                    .into(),
            );
            rec.finished = SystemTime::now();
            db.put_background(&run, &rec)?;
        }
        out.push((run, rec));
    }
    Ok(out)
}

fn wait_background(
    db: &mut RunStore,
    targets: &[String],
    timeout: Option<Duration>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    // What to wait for: (run, job) pairs.
    let all = background_now(db, false)?;
    let mut chosen: Vec<(String, String)> = Vec::new();
    if targets.is_empty() {
        for (run, r) in &all {
            if r.status == crate::record::Status::Background {
                chosen.push((run.clone(), r.job.clone()));
            }
        }
    }
    for t in targets {
        let by_job: Vec<&(String, crate::record::CompletedProcess)> =
            all.iter().filter(|(_, r)| &r.job == t).collect();
        if let Some((run, r)) = by_job.first() {
            chosen.push((run.clone(), r.job.clone()));
            continue;
        }
        match db.resolve_run(t) {
            Ok(id) => {
                let of_run: Vec<_> = all.iter().filter(|(run, _)| *run == id).collect();
                if of_run.is_empty() {
                    return Err(InspectError::Usage(format!(
                        "run {id} has no background jobs"
                    )));
                }
                chosen.extend(of_run.iter().map(|(run, r)| (run.clone(), r.job.clone())));
            }
            Err(_) => {
                let names: Vec<String> = all.iter().map(|(_, r)| r.job.clone()).collect();
                let mut msg = format!("`{t}` is neither a background job nor a run");
                if let Some(s) = crate::error::suggest(t, &names) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                return Err(InspectError::Usage(msg));
            }
        }
    }
    let t0 = std::time::Instant::now();
    loop {
        let now = background_now(db, false)?;
        let states: Vec<&(String, crate::record::CompletedProcess)> = now
            .iter()
            .filter(|(run, r)| chosen.iter().any(|(cr, cj)| cr == run && *cj == r.job))
            .collect();
        let pending = states
            .iter()
            .filter(|(_, r)| r.status == crate::record::Status::Background)
            .count();
        if pending == 0 {
            let mut failed = false;
            for (run, r) in &states {
                writeln!(out, "{run} {} {} {}", r.job, r.status, r.outcome())?;
                failed |= r.status.is_failure();
            }
            db.mark_seen(&chosen)?;
            return Ok(if failed { exit::JOB_FAILED } else { exit::OK });
        }
        if timeout.is_some_and(|t| t0.elapsed() >= t) {
            writeln!(
                out,
                "{pending} background job(s) still running after the timeout"
            )?;
            return Ok(124);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_background(
    db: &mut RunStore,
    job: &str,
    run: Option<&str>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let run_id = match run {
        Some(r) => Some(db.resolve_run(r)?),
        None => None,
    };
    let all = background_now(db, false)?;
    let Some((run, rec)) = all.into_iter().find(|(r, rec)| {
        rec.job == job
            && rec.status == crate::record::Status::Background
            && run_id.as_ref().is_none_or(|id| id == r)
    }) else {
        return Err(InspectError::Usage(format!(
            "no background job `{job}` is running"
        )));
    };
    if let Some(id) = &rec.slurm_job_id {
        crate::exec::sbatch::scancel(id);
    } else if let Some(sup) = &rec.supervisor {
        // The supervisor stops the job (TERM to its group, KILL after its grace) and records it.
        let _ = crate::sys::kill(sup.pid, crate::sys::SIGTERM);
    }
    let t0 = std::time::Instant::now();
    loop {
        let mut r = db.record(&run, job)?;
        if r.slurm_job_id.is_some()
            && r.status == crate::record::Status::Background
            && crate::exec::sbatch::poll(&mut r)
        {
            db.put_background(&run, &r)?;
        }
        if r.status != crate::record::Status::Background {
            writeln!(out, "{run} {} {} {}", r.job, r.status, r.outcome())?;
            return Ok(exit::OK);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(InspectError::Usage(format!(
                "`{job}` did not stop within 2 minutes"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs(
    db: &mut RunStore,
    run_id: &str,
    job: &str,
    stream: Stream,
    follow: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let path = db
        .run_dir(run_id)
        .join(job_dir_name(job))
        .join(stream.as_str());
    let mut offset = 0u64;
    let copy_new = |offset: &mut u64, out: &mut dyn Write| -> std::io::Result<()> {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(SeekFrom::Start(*offset))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
                *offset += n as u64;
            }
            out.flush()?;
        }
        Ok(())
    };
    match db.record(run_id, job) {
        Ok(rec) => {
            let o = match stream {
                Stream::Stdout => &rec.stdout,
                Stream::Stderr => &rec.stderr,
            };
            if !o.captured
                && let Some(p) = &o.path
            {
                return Err(InspectError::Usage(format!(
                    "the {} of `{job}` was not captured; it went to {}",
                    stream.as_str(),
                    p.display()
                )));
            }
            copy_new(&mut offset, out)?;
            Ok(exit::OK)
        }
        Err(store::StoreError::NotFound(msg)) => {
            // No record yet: the job may still be running, or was when the run died.
            let running = db.run(run_id)?.status == "running";
            if !(path.exists() || follow && running) {
                return Err(InspectError::Store(store::StoreError::NotFound(msg)));
            }
            loop {
                copy_new(&mut offset, out)?;
                if !follow {
                    return Ok(exit::OK);
                }
                let finished = db.record(run_id, job).is_ok();
                let run_over = db.run(run_id)?.status != "running";
                if finished || run_over {
                    copy_new(&mut offset, out)?;
                    return Ok(exit::OK);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn diff(
    db: &mut RunStore,
    job: &str,
    runs: &[String],
    stderr: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let (old_id, new_id) = match runs {
        [] => {
            let hist = db.history(job, 2)?;
            if hist.len() < 2 {
                return Err(InspectError::Usage(format!(
                    "`{job}` has run only once; nothing to compare yet"
                )));
            }
            (hist[1].0.clone(), hist[0].0.clone())
        }
        [a, b] => (db.resolve_run(a)?, db.resolve_run(b)?),
        _ => {
            return Err(InspectError::Usage(
                "give --run twice (older, then newer), or no --run for the last two".into(),
            ));
        }
    };
    let read = |db: &mut RunStore, id: &str| -> Result<Vec<u8>, InspectError> {
        let rec = db.record(id, job)?;
        let o = if stderr { &rec.stderr } else { &rec.stdout };
        Ok(match (&o.path, o.captured) {
            (Some(p), true) => std::fs::read(p)?,
            _ => Vec::new(),
        })
    };
    let a = read(db, &old_id)?;
    let b = read(db, &new_id)?;
    if a == b {
        writeln!(
            out,
            "no change in the {} of `{job}` between runs {old_id} and {new_id}",
            if stderr { "stderr" } else { "stdout" }
        )?;
        return Ok(exit::OK);
    }
    let a = String::from_utf8_lossy(&a);
    let b = String::from_utf8_lossy(&b);
    let d = similar::TextDiff::from_lines(a.as_ref(), b.as_ref());
    write!(
        out,
        "{}",
        d.unified_diff()
            .context_radius(3)
            .header(&format!("{job} @ {old_id}"), &format!("{job} @ {new_id}"))
    )?;
    Ok(exit::JOB_FAILED)
}

fn short_path(p: &str) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = Path::new(p).strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    p.to_string()
}

fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("2X").is_err());
    }
}
