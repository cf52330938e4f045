//! The command line: each command mapped to the library and an exit code, and the one way its
//! errors and warnings reach stderr.

mod args;
mod as_cron;
mod background;
mod check;
mod cron_cmd;
mod cron_status;
mod help;
mod inspect;
mod man;
mod parse;
mod rerun;
mod run_cmd;
mod settings;
mod slips;
mod table;

use std::fmt::Display;

pub use args::{Cli, Command, OnFailure, RunArgs, WaitLimit, When};
pub use help::command;
pub use parse::{parse, try_parse_from};
pub use settings::{RunSettings, Selection, Terminal};

use crate::error::exit;

/// Prints an error of the binary on stderr, as every error of it is printed (`error: ...`, the
/// shape clap gives its own usage errors), and returns `code` for the caller to exit with.
pub fn report_error(err: &dyn Display, code: i32) -> i32 {
    eprintln!("error: {err}");
    code
}

/// Prints a problem that does not stop the command.
pub fn report_warning(warning: &dyn Display) {
    eprintln!("orchestrate: warning: {warning}");
}

/// Runs a parsed command line; returns the process exit code.
pub fn main_with(cli: Cli, term: Terminal) -> i32 {
    let state_dir = cli.state_dir.clone();
    match cli.command {
        Some(Command::Run(args)) => run_cmd::cmd_run(args, state_dir, term),
        None => {
            if cli.run.job_file.is_none() {
                let _ = command().print_help();
                return exit::USAGE;
            }
            run_cmd::cmd_run(cli.run, state_dir, term)
        }
        Some(Command::Check {
            job_file,
            as_cron: true,
            run,
            ..
        }) => as_cron::cmd_check_as_cron(&job_file, run, &mut std::io::stdout()),
        Some(Command::Check { job_file, json, .. }) => check::cmd_check(&job_file, json),
        Some(Command::Cron {
            action: Some(args::CronAction::Status { json }),
            ..
        }) => cron_status::cmd_cron_status(json, &mut std::io::stdout()),
        Some(Command::Cron {
            action: None,
            job_file,
            schedule,
            install,
            remove,
            log,
        }) => {
            let args = cron_cmd::CronArgs {
                job_file: job_file.unwrap_or_default(),
                schedule,
                install,
                remove,
                log,
            };
            cron_cmd::cmd_cron(args, state_dir)
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = help::completion_command();
            clap_complete::generate(shell, &mut cmd, "orchestrate", &mut std::io::stdout());
            exit::OK
        }
        Some(Command::Rerun {
            run,
            job,
            with_dependents,
            json,
            quiet,
        }) => {
            let a = rerun::Rerun {
                run,
                job,
                with_dependents,
                json,
                quiet,
            };
            rerun::cmd_rerun(a, state_dir, term)
        }
        Some(Command::Supervise) => crate::supervise::supervise(),
        Some(Command::Man { dir }) => man(dir.as_deref()),
        Some(other) => inspect::cmd_inspect(other, state_dir),
    }
}

/// `orchestrate man`: the main manual page in roff on stdout, or with `--dir` every page
/// written there.
fn man(dir: Option<&std::path::Path>) -> i32 {
    let Some(dir) = dir else {
        return match man::main_page(&mut std::io::stdout()) {
            Ok(()) => exit::OK,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            Err(e) => report_error(&e, exit::SOFTWARE),
        };
    };
    match man::write_pages(dir) {
        Ok(pages) => {
            for p in pages {
                println!("{}", p.display());
            }
            exit::OK
        }
        Err(e) => report_error(
            &format_args!(
                "cannot write the manual pages into {}: {}",
                dir.display(),
                crate::text::os_text(&e)
            ),
            exit::SOFTWARE,
        ),
    }
}
