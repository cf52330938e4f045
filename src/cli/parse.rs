//! The command line read: clap's parse, then what was given before a command settled, so that
//! no flag is silently dropped: `--json` and `--color` count for the commands that have them,
//! and any other flag of a run, or a job file, before a command is a usage error.

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};

use super::args::{Cli, Command, CronAction, When};
use super::help::{NO_STATE_DIR, command};

/// Parses the process's arguments; a usage error is printed and exits 2, as clap's own.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `argv` (the program's name first).
pub fn try_parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = super::slips::without_help_of_help(argv.into_iter().map(Into::into).collect());
    let mut cmd = command();
    let matches = match cmd.try_get_matches_from_mut(argv.clone()) {
        Ok(m) => m,
        Err(e) => return Err(super::slips::tip_for_extra(e, &mut command(), &argv)),
    };
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    settle_leading(&mut cli, &matches)
        .map_err(|msg| cmd.error(clap::error::ErrorKind::ArgumentConflict, msg))?;
    Ok(cli)
}

/// Applies the flags given before a command to it, or refuses them.
fn settle_leading(cli: &mut Cli, matches: &ArgMatches) -> Result<(), String> {
    let Some((name, sub)) = matches.subcommand() else {
        return no_job_file(cli, matches);
    };
    let own = sub.try_contains_id("state_dir").unwrap_or(false)
        && sub.value_source("state_dir") == Some(ValueSource::CommandLine);
    if (cli.state_dir.is_some() || own) && NO_STATE_DIR.contains(&name) {
        return Err(format!(
            "`orchestrate {name}` does not use a state directory; leave out --state-dir"
        ));
    }
    // The flags of the top level (not its groups), but --state-dir, which every command has.
    let top = command();
    let given: Vec<&str> = matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| *id != "state_dir" && top.get_arguments().any(|a| a.get_id() == id))
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .collect();
    if given.contains(&"job_file") {
        return Err(job_file_first(cli, name));
    }
    let (color, command) = (cli.run.color, cli.command.as_mut());
    let Some(command) = command else {
        return Ok(());
    };
    for id in given {
        match id {
            "json" if set_json(command)? => {}
            "color" if set_color(command, color, sub)? => {}
            // The command has a flag of that name (`run`: all of them; `gc --keep-runs`,
            // `cron --log`), which it reads after its name only.
            _ if top
                .find_subcommand(name)
                .is_some_and(|c| c.get_arguments().any(|a| a.get_id() == id)) =>
            {
                return Err(format!(
                    "{} comes before `{name}`; give it after the command: orchestrate {name} ... {}",
                    flag(id),
                    as_given(&top, matches, id)
                ));
            }
            _ => {
                return Err(format!(
                    "{} is a flag of a run, and `orchestrate {name}` does not take it; give it with a job file: orchestrate [FLAGS] JOBFILE",
                    flag(id)
                ));
            }
        }
    }
    Ok(())
}

/// A flag of the top level as it was given: its long name, and its value if it takes one
/// (`--jobs 2`), for a hint to type again.
fn as_given(top: &clap::Command, matches: &ArgMatches, id: &str) -> String {
    let name = flag(id).rsplit('/').next().unwrap_or_default().to_string();
    let takes = top
        .get_arguments()
        .find(|a| a.get_id() == id)
        .is_some_and(|a| a.get_action().takes_values());
    let values: Vec<String> = match matches.get_raw(id) {
        Some(v) if takes => v.map(|v| v.to_string_lossy().into_owned()).collect(),
        _ => Vec::new(),
    };
    if values.is_empty() {
        name
    } else {
        format!("{name} {}", values.join(","))
    }
}

/// `orchestrate --resume last`: flags of a run and no job file is a usage error, as
/// `orchestrate run --resume last` is; only bare `orchestrate` (or with --state-dir) prints
/// the help.
fn no_job_file(cli: &Cli, matches: &ArgMatches) -> Result<(), String> {
    let top = command();
    let given: Vec<String> = matches
        .ids()
        .filter(|id| id.as_str() != "state_dir")
        .filter(|id| top.get_arguments().any(|a| a.get_id() == *id))
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| flag(id.as_str()))
        .collect();
    if cli.run.job_file.is_some() || given.is_empty() {
        return Ok(());
    }
    Err(format!(
        "give a job file to run with {}: orchestrate [FLAGS] JOBFILE",
        given.join(", ")
    ))
}

/// `orchestrate FILE runs`: the file is not for the command.
fn job_file_first(cli: &Cli, name: &str) -> String {
    let file = cli.run.job_file.clone().unwrap_or_default();
    let file = file.display();
    let hint = match name {
        "runs" => format!("for its runs: orchestrate runs --job-file {file}"),
        "run" | "check" | "cron" => format!("give it after the command: orchestrate {name} {file}"),
        _ => format!("to run it: orchestrate {file}"),
    };
    format!("the job file `{file}` comes before `{name}`, which does not take it there; {hint}")
}

/// `--json` before a command that has `--json` (a switch: given twice, it is still on);
/// `false` when it has none.
fn set_json(command: &mut Command) -> Result<bool, String> {
    let json = match command {
        Command::Run(args) => &mut args.json,
        Command::Runs { json, .. }
        | Command::Show { json, .. }
        | Command::History { json, .. }
        | Command::Status { json, .. }
        | Command::Rerun { json, .. } => json,
        Command::Check { as_cron: true, .. } => {
            return Err("--json cannot be used with `check --as-cron`".into());
        }
        Command::Check { json, .. } => json,
        Command::Cron {
            action: Some(CronAction::Status { json }),
            ..
        } => json,
        _ => return Ok(false),
    };
    *json = true;
    Ok(true)
}

/// `--color WHEN` before a command that has `--color`; `false` when it has none.
fn set_color(command: &mut Command, when: When, sub: &ArgMatches) -> Result<bool, String> {
    let color = match command {
        Command::Run(args) => &mut args.color,
        Command::Diff { color, .. } => color,
        _ => return Ok(false),
    };
    if sub.value_source("color") == Some(ValueSource::CommandLine) && *color != when {
        return Err(
            "--color is given before and after the command, differently; give it once".into(),
        );
    }
    *color = when;
    Ok(true)
}

/// A `--limit`: 0 would show nothing, which is never what was meant.
pub(super) fn limit(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "give a whole number, at least 1".into())
}

/// How a person writes the flag of `id`.
fn flag(id: &str) -> String {
    let cmd = command();
    match cmd.get_arguments().find(|a| a.get_id() == id) {
        Some(a) => match (a.get_long(), a.get_short()) {
            (Some(long), Some(short)) => format!("-{short}/--{long}"),
            (Some(long), None) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => id.to_uppercase(),
        },
        None => format!("--{}", id.replace('_', "-")),
    }
}
