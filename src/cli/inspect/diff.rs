//! `orchestrate diff`: what changed in a job's output between two runs, as a unified diff.

use std::io::{IsTerminal, Read, Write};

use super::{InspectError, not_captured, read_back};
use crate::cli::When;
use crate::error::exit;
use crate::exec::{Readback, Stream};
use crate::store::RunStore;

/// Which runs `diff` compares: the two given, else the job's last two of one job file.
pub(super) struct Which<'a> {
    pub runs: &'a [String],
    pub job_file: Option<&'a str>,
}

pub(super) fn diff(
    db: &mut RunStore,
    job: &str,
    which: Which,
    stderr: bool,
    color: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let (old_id, new_id) = match which.runs {
        [] => last_two(db, job, which.job_file)?,
        [a, b] => (db.resolve_run(a)?, db.resolve_run(b)?),
        _ => {
            return Err(InspectError::Usage(
                "give --run twice (older, then newer), or no --run for the last two".into(),
            ));
        }
    };
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let read = |db: &mut RunStore, id: &str| -> Result<Vec<u8>, InspectError> {
        let rec = db.record(id, job)?;
        let mut bytes = Vec::new();
        match read_back(db.root(), id, &rec, stream)? {
            Readback::Captured(Some(mut f)) => {
                f.read_to_end(&mut bytes)?;
            }
            Readback::Captured(None) | Readback::NotKept => {}
            Readback::Elsewhere(p) => {
                let msg = not_captured(job, stream, &p);
                return Err(InspectError::Usage(format!("{msg} (run {id})")));
            }
        }
        Ok(bytes)
    };
    let a = read(db, &old_id)?;
    let b = read(db, &new_id)?;
    if a == b {
        writeln!(
            out,
            "no change in the {} of `{job}` between runs {old_id} and {new_id}",
            stream.as_str()
        )?;
        return Ok(exit::OK);
    }
    let a = String::from_utf8_lossy(&a);
    let b = String::from_utf8_lossy(&b);
    let text = crate::text::unified_diff(
        &a,
        &b,
        &format!("{job} @ {old_id}"),
        &format!("{job} @ {new_id}"),
    );
    if color {
        for line in text.split_inclusive('\n') {
            write_colored(line, out)?;
        }
    } else {
        write!(out, "{text}")?;
    }
    Ok(exit::JOB_FAILED)
}

/// The job's last two runs of the job file its latest run ran (of `job_file`, when given):
/// a job of the same name in another job file is another job.
fn last_two(
    db: &mut RunStore,
    job: &str,
    job_file: Option<&str>,
) -> Result<(String, String), InspectError> {
    let latest = db.job_history(job, job_file, 1)?.remove(0);
    let file = latest.job_file.as_deref().or(job_file);
    let hist = db.job_history(job, file, 2)?;
    if hist.len() < 2 {
        let of = file.map(|f| format!(" in runs of {f}")).unwrap_or_default();
        let others: Vec<String> = db
            .job_files_of(job)?
            .into_iter()
            .filter(|f| Some(f.as_str()) != file)
            .collect();
        let hint = match others.first() {
            Some(o) => format!(
                "; it also ran in runs of {}: orchestrate diff {job} --job-file {o}, or compare two runs with --run A --run B",
                others.join(", ")
            ),
            None => String::new(),
        };
        // The earlier run to compare with is not in the history: a thing named that is not there.
        return Err(InspectError::Store(crate::store::StoreError::NotFound(
            format!("`{job}` has run only once{of}; nothing to compare yet{hint}"),
        )));
    }
    Ok((hist[1].run.clone(), hist[0].run.clone()))
}

/// `--color`: always, never, or when stdout is a terminal and NO_COLOR is unset.
pub(super) fn colored(when: When) -> bool {
    match when {
        When::Always => true,
        When::Never => false,
        When::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// One line of a unified diff in git's colors: headers bold, hunks cyan, removed red, added
/// green.
fn write_colored(line: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let code = if line.starts_with("---") || line.starts_with("+++") {
        "1"
    } else if line.starts_with("@@") {
        "36"
    } else if line.starts_with('-') {
        "31"
    } else if line.starts_with('+') {
        "32"
    } else {
        return write!(out, "{line}");
    };
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    write!(out, "\x1b[{code}m{body}\x1b[0m{end}")
}
