//! What `--help` and the manual say beyond each flag's own line: the exit codes, where the
//! state directory is, and the command as shown (built when it is shown, so that the default
//! state directory printed is the one this process would use).

use clap::CommandFactory;

use super::args::Cli;
use crate::error::exit;

/// Every exit code of `orchestrate`, with what it means: `--help`, the manual and the README
/// say these.
pub(super) const EXIT_CODES: &[(&[i32], &str)] = &[
    (
        &[exit::OK],
        "every job succeeded; for runs, status and wait also when there is nothing to list",
    ),
    (
        &[exit::JOB_FAILED],
        "a job failed, timed out, could not start, was skipped or cancelled; diff found a change; cron status found a missed run or a failed last run",
    ),
    (
        &[exit::USAGE],
        "usage error or invalid job file: no job was started",
    ),
    (
        &[exit::NOT_FOUND],
        "the run or job named (show, logs, history, diff, kill, wait) is not in the history",
    ),
    (
        &[exit::SOFTWARE],
        "orchestrate could not do its own work (state directory unusable, database damaged) or could not record all of a run",
    ),
    (
        &[exit::LOCKED],
        "another run of the job file holds the lock, or jobs of an earlier run of it still run (--survivors)",
    ),
    (&[exit::WAIT_TIMEOUT], "wait --timeout ran out"),
    (
        &[exit::SIGHUP, exit::SIGINT, exit::SIGTERM],
        "interrupted by SIGHUP, SIGINT, SIGTERM (running jobs were stopped and recorded as cancelled)",
    ),
];

/// `0`, `129, 130, 143`.
pub(super) fn codes(codes: &[i32]) -> String {
    codes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the state directory is looked for, in order (`store::default_state_dir`).
pub(super) const STATE_DIR_ORDER: &str = "--state-dir, else $ORCHESTRATE_STATE_DIR, else $XDG_STATE_HOME/orchestrate, else ~/.local/state/orchestrate";

/// What flags before a command do (`cli::parse`).
pub(super) const LEADING_FLAGS: &str = "Flags of a run go with a job file (orchestrate [FLAGS] JOBFILE, or orchestrate run [FLAGS] JOBFILE). Before another command, --json and --color count for the commands that have them; any other run flag, or a job file, there is a usage error.";

/// The command line as `--help` and parsing see it.
pub fn command() -> clap::Command {
    without_state_dir(Cli::command().after_help(after_help()))
}

/// The commands that have no state directory.
pub(super) const NO_STATE_DIR: [&str; 2] = ["completions", "man"];

/// `cmd` with a hidden `--state-dir` of their own on the commands that have no state
/// directory: clap gives a global flag to every command that has none of that name, and
/// `cli::parse` refuses this one.
pub(super) fn without_state_dir(mut cmd: clap::Command) -> clap::Command {
    for name in NO_STATE_DIR {
        cmd = cmd.mut_subcommand(name, |sub| {
            sub.arg(
                clap::Arg::new("state_dir")
                    .long("state-dir")
                    .value_name("DIR")
                    .value_parser(clap::value_parser!(std::path::PathBuf))
                    .hide(true),
            )
        });
    }
    cmd
}

/// The command line as completion scripts offer it: `--state-dir` only where it is used (the
/// generators offer hidden flags too, so it is given to those commands alone, not global).
pub(super) fn completion_command() -> clap::Command {
    fn offer(cmd: clap::Command, flag: &clap::Arg) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| !NO_STATE_DIR.contains(&n.as_str()))
            .collect();
        names.iter().fold(cmd, |cmd, name| {
            cmd.mut_subcommand(name, |sub| offer(sub.arg(flag.clone()), flag))
        })
    }
    let cmd = Cli::command().mut_arg("state_dir", |a| a.global(false));
    let flag = cmd
        .get_arguments()
        .find(|a| a.get_id() == "state_dir")
        .expect("--state-dir is defined")
        .clone();
    offer(cmd, &flag)
}

fn after_help() -> String {
    let mut text = String::from("Exit status:\n");
    for (nums, meaning) in EXIT_CODES {
        text.push_str(&hanging(&format!("  {:<14}", codes(nums)), meaning));
    }
    let here = match crate::store::default_state_dir(None) {
        Ok(dir) => dir.display().to_string(),
        Err(e) => format!("none: {e}"),
    };
    text.push_str(&format!(
        "\nRecords and output are kept in the state directory: {STATE_DIR_ORDER} (here: {here}).\n\n{LEADING_FLAGS}"
    ));
    text
}

/// `lead` then `text`, wrapped at 80 columns under its first line (clap wraps only lines too
/// long for the terminal, and without the indent).
fn hanging(lead: &str, text: &str) -> String {
    let indent = " ".repeat(lead.len());
    let mut out = String::new();
    let mut line = lead.to_string();
    for word in text.split(' ') {
        if line.len() + 1 + word.len() > 80 && line.len() > indent.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.clone();
        } else if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_is_listed_once() {
        let listed: Vec<i32> = EXIT_CODES
            .iter()
            .flat_map(|(c, _)| c.iter().copied())
            .collect();
        let all = [
            exit::OK,
            exit::JOB_FAILED,
            exit::USAGE,
            exit::NOT_FOUND,
            exit::SOFTWARE,
            exit::LOCKED,
            exit::WAIT_TIMEOUT,
            exit::SIGHUP,
            exit::SIGINT,
            exit::SIGTERM,
        ];
        assert_eq!(listed.len(), all.len());
        for code in all {
            assert!(listed.contains(&code), "exit code {code} is not documented");
        }
    }

    /// Every argument a person can see, of every command, says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "orchestrate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
