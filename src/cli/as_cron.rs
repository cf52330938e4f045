//! `orchestrate check --as-cron FILE`: the job file seen as its crontab line will run it
//! (cron's few variables, the line's PATH and folder, no terminal), and what differs from
//! the shell you are in: programs the line's PATH does not find, variables the jobs use that
//! cron does not set. `--run` runs the line that way, now.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::report_error;
use crate::error::exit;
use crate::plan::{Executor, Plan, PlannedJob};

/// The variables cron gives a command (Vixie cron and cronie), besides the line's own.
const CRON_SETS: [&str; 4] = ["HOME", "LOGNAME", "SHELL", "PATH"];

/// Shell words that are not programs looked up on PATH.
const SHELL_WORDS: &[&str] = &[
    "!", "[", "[[", "]]", "alias", "break", "case", "cd", "command", "continue", "do", "done",
    "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fi", "for",
    "function", "if", "in", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift",
    "source", "test", "then", "trap", "true", "type", "ulimit", "umask", "unset", "until", "wait",
    "while", "{", "}", ".", ":",
];

pub(super) fn cmd_check_as_cron(path: &Path, run: bool, out: &mut dyn Write) -> i32 {
    let plan = match Plan::load(path) {
        Ok(p) => p,
        Err(e) => return report_error(&e, exit::USAGE),
    };
    let abs = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) => return report_error(&format_args!("{}: {e}", path.display()), exit::USAGE),
    };
    let (line, installed) = match the_line(&abs) {
        Ok(l) => l,
        Err(e) => return report_error(&e, exit::SOFTWARE),
    };
    let Some((_, command)) = crate::cron::split_line(&line) else {
        return report_error(
            &format_args!("cannot read the crontab line `{line}`"),
            exit::SOFTWARE,
        );
    };
    if run {
        return run_as_cron(&command);
    }
    let words = shell_words::split(&command).unwrap_or_default();
    let word = |key: &str| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(key).map(str::to_string))
    };
    let cron_path = word("PATH=").unwrap_or_else(|| "/usr/bin:/bin".into());
    let lock = lock_state(word("ORCHESTRATE_STATE_DIR=").map(PathBuf::from), &abs);
    let findings = differences(&plan, &cron_path);
    let _ = writeln!(
        out,
        "{} under cron ({}):\n  PATH    {cron_path}\n  folder  {} (jobs start there, as by hand)\n  lock    {lock}\n  no terminal: no progress bars or colours; only failures are printed (and mailed by cron)",
        abs.display(),
        if installed {
            "its installed line"
        } else {
            "not installed: the line `cron --install` would write"
        },
        abs.parent().unwrap_or(Path::new("/")).display()
    );
    if findings.is_empty() {
        let _ = writeln!(out, "nothing the jobs use differs from this shell");
        return exit::OK;
    }
    for f in &findings {
        let _ = writeln!(out, "  - {f}");
    }
    exit::JOB_FAILED
}

/// Whether a start now would find the job file's lock free (nothing is made to find out).
fn lock_state(state_dir: Option<PathBuf>, abs: &Path) -> String {
    let Ok(root) = crate::store::default_state_dir(state_dir.as_deref()) else {
        return "unknown (no state dir)".into();
    };
    if !crate::lock::lock_path(&root, abs).exists() {
        return "free".into();
    }
    match crate::lock::acquire(&root, abs, crate::lock::LockMode::NoWait) {
        Ok(_) => "free".into(),
        Err(e) => format!("{e}: a start now would exit 75"),
    }
}

/// The installed line of the job file, else the one `--install` would write.
fn the_line(abs: &Path) -> Result<(String, bool), String> {
    if let Ok(Some(l)) = crate::cron::installed_line(abs) {
        return Ok((l, true));
    }
    let planned = super::cron_cmd::planned_line("@daily", abs, None, None)?;
    Ok((planned.line, false))
}

/// Runs the line's command as cron would: `sh -c`, cron's variables only, from `/`, no
/// terminal; its output is what cron would mail.
fn run_as_cron(command: &str) -> i32 {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", command])
        .env_clear()
        .env("SHELL", "/bin/sh")
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null());
    for k in ["HOME", "LOGNAME", "USER"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    match cmd.status() {
        Ok(s) => s.code().unwrap_or(exit::SOFTWARE),
        Err(e) => report_error(&format_args!("cannot run /bin/sh: {e}"), exit::SOFTWARE),
    }
}

/// What the jobs use that cron's environment lacks, one sentence each.
fn differences(plan: &Plan, cron_path: &str) -> Vec<String> {
    let here = std::env::var("PATH").unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for job in plan
        .jobs
        .iter()
        .filter(|j| matches!(j.executor, Executor::Local))
    {
        for prog in programs(job) {
            if !seen.insert(("prog", prog.clone())) {
                continue;
            }
            if let (Some(now), None) = (find(&prog, &here), find(&prog, cron_path)) {
                out.push(format!(
                    "job `{}` runs `{prog}`, found at {} in this shell but not on the line's PATH",
                    job.name,
                    now.display()
                ));
            }
        }
        let given: BTreeSet<&str> = job.env.iter().map(|(k, _)| k.as_str()).collect();
        for var in variables(job) {
            let missing = !given.contains(var.as_str())
                && !CRON_SETS.contains(&var.as_str())
                && !var.starts_with("ORCHESTRATE_")
                && std::env::var_os(&var).is_some();
            if missing && seen.insert(("var", var.clone())) {
                out.push(format!(
                    "job `{}` uses ${var}, which this shell sets and cron does not; give it in `env:` or an `env_file:`",
                    job.name
                ));
            }
        }
    }
    out
}

/// The programs a job starts: its command, and for `sh -c SCRIPT` the first word of each
/// simple command of the script (best effort: plain words only).
fn programs(job: &PlannedJob) -> Vec<String> {
    let mut progs: Vec<String> = job.argv.first().cloned().into_iter().collect();
    if let Some(script) = script_of(job) {
        for part in script.split(['\n', ';', '|', '&', '(', ')', '`']) {
            let Some(word) = part.split_whitespace().find(|w| !w.contains('=')) else {
                continue;
            };
            let plain = word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c));
            if plain && !SHELL_WORDS.contains(&word) && !word.starts_with(['-', '.']) {
                progs.push(word.to_string());
            }
        }
    }
    progs.retain(|p| !p.contains('/'));
    progs
}

/// The variables a job's words refer to (`$NAME`, `${NAME}`).
fn variables(job: &PlannedJob) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let words = job.argv.iter().chain(job.env.iter().map(|(_, v)| v));
    for w in words {
        let mut rest = w.as_str();
        while let Some(i) = rest.find('$') {
            rest = &rest[i + 1..];
            let name: String = rest
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            {
                vars.insert(name);
            }
        }
    }
    vars
}

fn script_of(job: &PlannedJob) -> Option<&str> {
    match job.argv.as_slice() {
        [sh, flag, script, ..] if flag == "-c" && sh.ends_with("sh") => Some(script),
        _ => None,
    }
}

/// Where a program is on a PATH.
fn find(prog: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
