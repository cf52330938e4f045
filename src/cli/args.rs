//! The command line as clap parses it: the commands, the flags of a run, and their value
//! parsers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::OutputMode;
use crate::run::Survivors;

#[derive(Debug, Parser)]
#[command(
    name = "orchestrate",
    version,
    about = "Run the commands of a YAML job file with bounded concurrency, and keep a record of every job.",
    long_about = None
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
        /// The YAML job file to check.
        #[arg(value_name = "JOBFILE")]
        job_file: PathBuf,
        /// Print the plan as JSON.
        #[arg(long, conflicts_with = "as_cron")]
        json: bool,
        /// Check the job file as its crontab line will run it (cron's environment, the line's
        /// PATH, no terminal) and report what differs from this shell; exit 1 if something does.
        #[arg(long)]
        as_cron: bool,
        /// With --as-cron: run the line now, as cron would.
        #[arg(long, requires = "as_cron")]
        run: bool,
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
        /// Show at most this many runs, newest first.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// One JSON object per run, per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one run's records (default: the last run).
    Show {
        /// Run id, unique prefix, `last` or `last~N` (default: the last run; with --job, the
        /// job's latest run).
        run: Option<String>,
        /// One job's record in full.
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        /// With --job and no RUN: the job's latest run of this job file (path or file name).
        #[arg(long, value_name = "FILE", requires = "job", conflicts_with = "run")]
        job_file: Option<String>,
        /// JSON lines, the same record shape as `orchestrate --json`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        export: ShowExport,
    },
    /// Write one run as a self-contained HTML page: timeline, records, output, trends.
    Report {
        /// Run id, unique prefix, `last` or `last~N`.
        #[arg(default_value = "last")]
        run: String,
        /// The file to write (default: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a job's captured output, bytes exactly as written.
    Logs {
        /// The job's name, as `show` lists it.
        job: String,
        /// The run: an id, a unique prefix, `last` or `last~N` (default: the job's latest run).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Without --run: the job's latest run of this job file (path or file name).
        #[arg(long, value_name = "FILE", conflicts_with = "run")]
        job_file: Option<String>,
        /// stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing while the job runs.
        #[arg(long, short)]
        follow: bool,
    },
    /// One job across runs: when it ran, how it ended (and in which job file, if several).
    History {
        /// The job's name, as `show` lists it.
        job: String,
        /// Only runs of this job file (path as given, or its file name).
        #[arg(long, value_name = "FILE")]
        job_file: Option<String>,
        /// Show at most this many runs of it, newest first (at least 1).
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = super::parse::limit)]
        limit: usize,
        /// One JSON object per run of the job, per line.
        #[arg(long)]
        json: bool,
    },
    /// What changed in a job's stdout between two runs (default: its last two, of one job file).
    Diff {
        /// The job's name, as `show` lists it.
        job: String,
        /// Without --run: the job's last two runs of this job file (path or file name).
        #[arg(long, value_name = "FILE", conflicts_with = "runs")]
        job_file: Option<String>,
        /// The runs to compare (give twice: older, then newer).
        #[arg(long = "run", value_name = "RUN", num_args = 1)]
        runs: Vec<String>,
        /// Compare stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Color the diff: auto means when stdout is a terminal and NO_COLOR is unset.
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = When::Auto)]
        color: When,
    },
    /// Run one recorded job again, as a new run of its job file.
    ///
    /// The job gets the command line and directory its record holds and the environment its
    /// job file gives it now. Report and exit code as a run's.
    Rerun {
        /// The run that ran it: id, unique prefix; `last`/`last~N`: the job's latest (Nth) run.
        run: String,
        /// The job's name in that run.
        job: String,
        /// Also the jobs that need it, directly or not (after it, in need order).
        #[arg(long)]
        with_dependents: bool,
        /// One JSON record per line on stdout instead of the human report.
        #[arg(long)]
        json: bool,
        /// Print nothing when every job succeeds.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a crontab line that runs a job file on a schedule; --install adds it to your
    /// crontab. `cron status` checks the installed lines.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Cron {
        #[command(subcommand)]
        action: Option<CronAction>,
        /// The YAML job file the line runs.
        #[arg(required = true, value_name = "JOBFILE")]
        job_file: Option<PathBuf>,
        /// When to run: five cron fields (`*/15 * * * *`) or a nickname (`@daily`).
        #[arg(long, value_name = "CRON", required_unless_present = "remove")]
        schedule: Option<String>,
        /// Add the line to the user's crontab (replacing an earlier one for this job file).
        #[arg(long, conflicts_with = "remove")]
        install: bool,
        /// Remove this job file's line from the user's crontab.
        #[arg(long)]
        remove: bool,
        /// The log the installed line appends each run's full report to (default:
        /// <state dir>/cron/<job file's stem>-<hash of its path>.log); cron mails only what failed.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `orchestrate man | man -l -`; with --dir, write it
    /// and a page for each command into a folder.
    Man {
        /// Write orchestrate.1 and orchestrate-<command>.1 for each command into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Background jobs that are running, or that ended since you last looked.
    Status {
        /// Every background job on record, not only running and unseen ones.
        #[arg(long)]
        all: bool,
        /// One JSON object per background job, per line.
        #[arg(long)]
        json: bool,
    },
    /// Wait for background jobs to end (all running ones, those of a RUN, or the named JOBs).
    /// Exit 0 if all succeeded, 1 otherwise, 124 on --timeout.
    Wait {
        /// Run ids (or prefixes, `last`) and/or job names.
        targets: Vec<String>,
        /// Give up after D (`30s`, `10m`) and exit 124 if a job still runs.
        #[arg(long, value_name = "D", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Stop a background job (TERM to its process group, KILL after its grace) and record it as
    /// cancelled.
    Kill {
        /// The background job's name.
        job: String,
        /// The run it belongs to (default: its latest running one).
        #[arg(long)]
        run: Option<String>,
    },
    #[command(name = "__supervise", hide = true)]
    Supervise,
    /// Remove old runs and their output, by at least one of the limits.
    #[command(group(clap::ArgGroup::new("limits").required(true).multiple(true)))]
    Gc {
        /// Keep at most this many runs.
        #[arg(long, value_name = "N", group = "limits")]
        keep_runs: Option<usize>,
        /// Remove runs older than this (`30d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, group = "limits")]
        max_age: Option<Duration>,
        /// Keep at most this much captured output (`500M`, `2G`).
        #[arg(long, value_name = "SIZE", value_parser = parse_size, group = "limits")]
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
    /// Prefix each line of job output with the job's name and a tab, like GNU parallel's
    /// --tag (--output all and ordered; stream always does).
    #[arg(long)]
    pub tag: bool,
    /// One JSON record per line on stdout instead of the human report (each record holds
    /// the job's output; --output ordered puts the records in job-file order).
    #[arg(long)]
    pub json: bool,
    /// Print nothing when every job succeeds; on failure, the failed jobs and their stderr tails
    /// (so not with --output, whose modes it replaces).
    #[arg(short, long, conflicts_with = "output")]
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
    /// Run only what did not succeed in an earlier run of this job file (`last`, `last~N` of its
    /// runs, an id or a prefix): jobs are matched by name and definition, so an edited job runs again.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Jobs still running from an earlier run of this job file (it was killed, or --resume's
    /// run has them in the background): refuse to start (exit 75), wait for them, or stop them.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = Survivors::Refuse)]
    pub survivors: Survivors,
    /// Append the run's full report to FILE (made 0600) as well; with --quiet the terminal
    /// (or cron's mail) gets only failures while the log keeps everything.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
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
    /// Start no new job after a failure (like `on_failure: stop`, or `--on-failure stop`).
    #[arg(long, conflicts_with = "on_failure")]
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

/// The other forms `show` gives a run in: a timeline, JUnit XML, GNU parallel's joblog.
#[derive(Debug, Args, Default, Clone, Copy)]
#[group(multiple = false, conflicts_with_all = ["json", "job"])]
pub struct ShowExport {
    /// The run as a chart: a row per slot (or host), a bar per job, failures and the
    /// critical path of `needs` marked (width: COLUMNS, the terminal's, or 100).
    #[arg(long)]
    pub timeline: bool,
    /// The run as JUnit XML (as cargo-nextest writes it), for CI test reports.
    #[arg(long)]
    pub junit: bool,
    /// The run as CSV with GNU parallel's --joblog columns.
    #[arg(long)]
    pub csv: bool,
}

impl ShowExport {
    pub fn any(&self) -> bool {
        self.timeline || self.junit || self.csv
    }
}

#[derive(Debug, Subcommand)]
pub enum CronAction {
    /// Every installed line: schedule, last run and outcome, next due time, missed runs
    /// (due, but cron never started them), refused overlaps and failing streaks. Exits 1
    /// when a run was missed or the last run failed, so that it can be monitored itself.
    Status {
        /// One JSON object per installed line, per line.
        #[arg(long)]
        json: bool,
    },
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
