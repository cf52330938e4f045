//! Common slips on the command line, caught before clap sees them or given a tip after: `help
//! --help`, and one positional too many where a flag was meant (`show last greet`,
//! `logs last greet`, `history build a.yaml`).

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// `orchestrate help --help` (or `help runs -h`) asks for help twice: it is `help`.
pub(super) fn without_help_of_help(mut argv: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if a == "--state-dir" {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        if a == "help" {
            let rest = argv.split_off(i + 1);
            argv.extend(rest.into_iter().filter(|a| a != "--help" && a != "-h"));
        }
        break;
    }
    argv
}

/// A tip for clap's "unexpected argument" when the command would parse without it and the
/// word fits one of its flags: the command line to type instead.
pub(super) fn tip_for_extra(
    mut err: clap::Error,
    cmd: &mut clap::Command,
    argv: &[OsString],
) -> clap::Error {
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(extra)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    let extra = extra.clone();
    if extra.starts_with('-') {
        return err;
    }
    let Some(at) = argv.iter().rposition(|a| *a == *extra) else {
        return err;
    };
    let mut rest = argv.to_vec();
    rest.remove(at);
    let Ok(matches) = cmd.try_get_matches_from_mut(rest) else {
        return err;
    };
    if let Some(tip) = matches.subcommand().and_then(|(n, m)| tip(n, m, &extra)) {
        err.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![format!("to {tip}").into()]),
        );
    }
    err
}

/// What `name` was given with `extra` too many, written as its flags would take it.
fn tip(name: &str, m: &clap::ArgMatches, extra: &str) -> Option<String> {
    let given = |id: &str| m.try_get_one::<String>(id).ok().flatten().cloned();
    match name {
        "show" if given("job").is_none() => {
            let first = given("run")?;
            let (run, job) = if is_run(extra) && !is_run(&first) {
                (extra.to_string(), first)
            } else {
                (first, extra.to_string())
            };
            Some(format!(
                "show job `{job}` of run {run}: orchestrate show {run} --job {job}"
            ))
        }
        "logs" if given("run").is_none() => {
            let first = given("job")?;
            let (job, run) = if is_run(&first) && !is_run(extra) {
                (extra.to_string(), first)
            } else {
                (first, extra.to_string())
            };
            Some(format!(
                "print the output of `{job}` in run {run}: orchestrate logs {job} --run {run}"
            ))
        }
        "history" | "diff" if is_job_file(extra) && given("job_file").is_none() => {
            let job = given("job")?;
            Some(format!(
                "look at `{job}` in runs of {extra} only: orchestrate {name} {job} --job-file {extra}"
            ))
        }
        _ => None,
    }
}

/// Whether a word reads as a run: `last`, `last~N`, or the start of an id
/// (`20261201-112836-11988aa`).
fn is_run(word: &str) -> bool {
    crate::store::runs_back(word).is_some()
        || word.len() >= 4
            && word.starts_with(|c: char| c.is_ascii_digit())
            && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn is_job_file(word: &str) -> bool {
    word.ends_with(".yaml") || word.ends_with(".yml")
}
