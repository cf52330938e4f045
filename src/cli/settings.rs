//! The settings of one run of a job file, resolved once from the flags, the job file's own
//! settings and the terminal: after this, nothing reads the flags or patches the plan.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::args::{OnFailure, RunArgs, When};
use crate::lock::LockMode;
use crate::plan::{HaltSpec, Plan, Retention};
use crate::report::ReportConfig;
use crate::run::{RunOptions, Survivors, default_concurrency};

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

/// Which jobs of the job file run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--only`: these jobs (all if empty).
    pub only: Vec<String>,
    /// `--skip`: not these.
    pub skip: Vec<String>,
    /// Follow `needs` from the chosen and the skipped jobs (no `--no-deps`).
    pub with_deps: bool,
    /// `--resume RUN`: leave out what succeeded in that run.
    pub resume: Option<String>,
}

/// Everything one run of a job file goes by, each value settled.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Jobs in flight at once (at least 1).
    pub concurrency: usize,
    pub on_failure: HaltSpec,
    /// Wait for background jobs before the run ends.
    pub wait: bool,
    /// What to keep of the job file's history; `None`: the store's default.
    pub retention: Option<Retention>,
    pub lock: LockMode,
    /// `--survivors`: what to do about jobs still running from an earlier run.
    pub survivors: Survivors,
    /// `--log FILE`: the full report appended there too.
    pub log: Option<PathBuf>,
    pub report: ReportConfig,
    /// Keep the run in the store (no `--no-store`).
    pub store: bool,
    /// `--state-dir`; `None` resolves as the store documents (env var, XDG, home).
    pub state_dir: Option<PathBuf>,
    /// Ignore SIGHUP: there is no terminal to lose (cron, pipes).
    pub ignore_hangup: bool,
    pub selection: Selection,
    /// Notes for the records of the jobs they name (`rerun`).
    pub notes: Vec<(String, String)>,
}

impl RunSettings {
    /// Flags that would be accepted and do nothing together: refused, as clap refuses its
    /// conflicts, rather than ignored.
    pub fn refused(args: &RunArgs) -> Option<String> {
        use crate::report::OutputMode;
        let mode = clap::ValueEnum::to_possible_value(&args.output)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        let printed = matches!(
            args.output,
            OutputMode::All | OutputMode::Ordered | OutputMode::Stream
        );
        if args.json && !matches!(args.output, OutputMode::Failed | OutputMode::Ordered) {
            return Some(format!(
                "--json records hold each job's output, so --output {mode} would do nothing; leave it out (--output ordered puts the records in job-file order)"
            ));
        }
        (args.tag && (args.json || !printed)).then(|| {
            format!(
                "--tag labels printed job output, which {} does not print; give --output all or ordered with it",
                if args.json { "--json".to_string() } else { format!("--output {mode}") }
            )
        })
    }

    /// Resolves the settings of a run, each by this precedence:
    ///
    /// - concurrency: `-j N`, else the job file's `concurrency`, else the number of CPUs;
    /// - on_failure: `--on-failure POLICY` or `--fail-fast` (= `stop`; clap refuses the two
    ///   together), else the job file's `on_failure`;
    /// - wait: `--wait`, else the job file's `wait`;
    /// - retention: any of `--keep-runs`, `--max-age`, `--max-bytes` replaces the job file's
    ///   `retention` as a whole (a limit not given is no limit), else the job file's, else the
    ///   store's default (its last 500 runs);
    /// - lock: `--no-lock` none, `--wait-lock [D]` wait (for at most D), else refuse to overlap;
    /// - progress and color: `always`/`never`, or with `auto` when stderr is a terminal (and,
    ///   for color, NO_COLOR is unset); timestamps in the report when stderr is not one;
    /// - SIGHUP is ignored when stderr is not a terminal.
    pub fn resolve(
        args: RunArgs,
        state_dir: Option<PathBuf>,
        plan: &Plan,
        term: Terminal,
    ) -> RunSettings {
        RunSettings {
            concurrency: args
                .jobs
                .map(|j| j as usize)
                .or(plan.concurrency)
                .unwrap_or_else(default_concurrency)
                .max(1),
            on_failure: on_failure(&args, plan.on_failure),
            wait: args.wait || plan.wait,
            retention: retention(&args).or(plan.retention),
            lock: lock_mode(&args),
            survivors: args.survivors,
            log: args.log.clone(),
            report: report_config(&args, term),
            store: !args.no_store,
            state_dir,
            ignore_hangup: !term.stderr_is_tty,
            selection: Selection {
                only: args.only,
                skip: args.skip,
                with_deps: !args.no_deps,
                resume: args.resume,
            },
            notes: Vec::new(),
        }
    }

    /// The options `run_plan` takes, with the records a resumed run carries over and the run
    /// they come from.
    pub fn run_options(
        self,
        carried: crate::plan::resume::Carried,
        resumed: Option<String>,
    ) -> RunOptions {
        RunOptions {
            concurrency: Some(self.concurrency),
            report: self.report,
            store: self.store,
            state_dir: self.state_dir,
            handle_signals: true,
            lock: self.lock,
            ignore_hangup: self.ignore_hangup,
            carried,
            resumed,
            survivors: self.survivors,
            log: self.log,
            on_failure: Some(self.on_failure),
            wait: Some(self.wait),
            retention: self.retention,
            notes: self.notes,
            ..Default::default()
        }
    }
}

fn on_failure(args: &RunArgs, job_file: HaltSpec) -> HaltSpec {
    match args.on_failure {
        Some(OnFailure::Continue) => HaltSpec::Continue,
        Some(OnFailure::Stop) => HaltSpec::Stop,
        Some(OnFailure::Kill) => HaltSpec::Kill,
        None if args.fail_fast => HaltSpec::Stop,
        None => job_file,
    }
}

/// The limits the flags give, if they give any.
fn retention(args: &RunArgs) -> Option<Retention> {
    let given = Retention {
        max_runs: args.keep_runs,
        max_age: args.max_age,
        max_bytes: args.max_bytes,
    };
    (given.max_runs.is_some() || given.max_age.is_some() || given.max_bytes.is_some())
        .then_some(given)
}

fn lock_mode(args: &RunArgs) -> LockMode {
    if args.no_lock {
        LockMode::Off
    } else if let Some(w) = args.wait_lock {
        LockMode::Wait(w.0)
    } else {
        LockMode::NoWait
    }
}

fn report_config(args: &RunArgs, term: Terminal) -> ReportConfig {
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
    ReportConfig {
        output: args.output,
        tag: args.tag,
        json: args.json,
        quiet: args.quiet,
        progress,
        color,
        timestamps: !term.stderr_is_tty,
        tail_lines: 10,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    const CRON: Terminal = Terminal {
        stderr_is_tty: false,
        no_color: false,
    };

    fn args(flags: &[&str]) -> RunArgs {
        let argv = ["orchestrate"].iter().chain(flags).chain(&["jobs.yaml"]);
        Cli::try_parse_from(argv).expect("flags parse").run
    }

    fn plan() -> Plan {
        Plan::from_argvs([vec!["true".to_string()]])
    }

    #[test]
    fn flags_win_over_the_job_file() {
        let file = Plan {
            on_failure: HaltSpec::Kill,
            concurrency: Some(3),
            retention: Some(Retention {
                max_runs: Some(7),
                ..Default::default()
            }),
            ..plan()
        };
        let s = RunSettings::resolve(
            args(&["--on-failure", "continue", "-j", "5", "--max-age", "1d"]),
            None,
            &file,
            CRON,
        );
        assert_eq!(s.on_failure, HaltSpec::Continue);
        assert_eq!(s.concurrency, 5);
        let kept = s.retention.expect("the flags' retention");
        assert_eq!(kept.max_runs, None);
        assert_eq!(kept.max_age, Some(Duration::from_secs(86400)));
        let s = RunSettings::resolve(args(&["--fail-fast"]), None, &file, CRON);
        assert_eq!(s.on_failure, HaltSpec::Stop);
    }

    #[test]
    fn the_job_file_counts_when_no_flag_is_given() {
        let file = Plan {
            on_failure: HaltSpec::Kill,
            wait: true,
            concurrency: Some(3),
            ..plan()
        };
        let s = RunSettings::resolve(args(&[]), None, &file, CRON);
        assert_eq!(s.on_failure, HaltSpec::Kill);
        assert!(s.wait);
        assert_eq!(s.concurrency, 3);
        assert!(s.retention.is_none());
        assert_eq!(s.lock, LockMode::NoWait);
        assert!(s.ignore_hangup && s.report.timestamps && !s.report.progress);
    }

    #[test]
    fn fail_fast_and_on_failure_conflict() {
        let argv = [
            "orchestrate",
            "--fail-fast",
            "--on-failure",
            "kill",
            "jobs.yaml",
        ];
        let err = Cli::try_parse_from(argv).expect_err("the flags conflict");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
