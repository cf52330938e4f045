//! `show RUN --junit`: a run as JUnit XML, shaped as cargo-nextest writes it (the Jenkins
//! flavour): one `<testsuite>` named after the job file, a `<testcase>` per job, failures
//! and errors with the tail of stderr, skipped jobs `<skipped/>`, and the failed attempts of
//! a retried job as `<flakyFailure>` (it succeeded in the end) or `<rerunFailure>` (it did
//! not). Output goes in `<system-out>`/`<system-err>` for failed and retried jobs only.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use super::escape::{xml, xml_attr};
use super::shown::Shown;
use crate::record::{Attempt, CompletedProcess, Status, format_time, signal_name};

/// Lines of stderr in a failure's text.
const FAILURE_LINES: usize = 20;

/// The run a report is about.
#[derive(Debug, Clone)]
pub struct JunitRun<'a> {
    pub id: &'a str,
    /// The suite's name: the job file as the run recorded it.
    pub job_file: &'a str,
    pub started: SystemTime,
    pub duration: Duration,
}

/// How a record counts in JUnit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Passed,
    Failure,
    Error,
    Skipped,
}

fn verdict(rec: &CompletedProcess) -> Verdict {
    match rec.status {
        Status::Succeeded => Verdict::Passed,
        Status::Failed | Status::TimedOut => Verdict::Failure,
        Status::SpawnError | Status::Cancelled | Status::Lost | Status::Interrupted => {
            Verdict::Error
        }
        Status::Skipped | Status::NotNeeded | Status::Background | Status::Running => {
            Verdict::Skipped
        }
    }
}

/// Writes the report. `output` gives a job's stdout and stderr, asked only for the jobs whose
/// output the report holds (failed and retried ones). Hooks are not jobs: leave them out.
pub fn write_junit(
    out: &mut dyn Write,
    run: &JunitRun<'_>,
    recs: &[CompletedProcess],
    output: &mut dyn FnMut(&CompletedProcess) -> [Shown; 2],
) -> io::Result<()> {
    let count = |v: Verdict| recs.iter().filter(|r| verdict(r) == v).count();
    let counts = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
        recs.len(),
        count(Verdict::Failure),
        count(Verdict::Error),
        count(Verdict::Skipped)
    );
    let stamp = format!(
        "timestamp=\"{}\" time=\"{:.3}\"",
        format_time(run.started),
        run.duration.as_secs_f64()
    );
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<testsuites name=\"{}\" {counts} {stamp}>",
        xml_attr(run.id)
    )?;
    writeln!(
        out,
        "    <testsuite name=\"{}\" {counts} disabled=\"0\" {stamp}>",
        xml_attr(run.job_file)
    )?;
    for rec in recs {
        write_case(out, run, rec, output)?;
    }
    writeln!(out, "    </testsuite>")?;
    writeln!(out, "</testsuites>")
}

fn write_case(
    out: &mut dyn Write,
    run: &JunitRun<'_>,
    rec: &CompletedProcess,
    output: &mut dyn FnMut(&CompletedProcess) -> [Shown; 2],
) -> io::Result<()> {
    let v = verdict(rec);
    write!(
        out,
        "        <testcase name=\"{}\" classname=\"{}\" timestamp=\"{}\" time=\"{:.3}\">",
        xml_attr(&rec.job),
        xml_attr(run.job_file),
        format_time(rec.started),
        rec.duration.as_secs_f64()
    )?;
    let retried = !rec.earlier_attempts.is_empty();
    let streams = (v != Verdict::Passed && v != Verdict::Skipped || retried).then(|| output(rec));
    // A record `--resume` carried over passed in an earlier run: still a test of this run (the
    // counts are `runs`'s), named as carried the way pytest names a test's properties.
    let carried = rec.carried_from.as_deref().map(|from| {
        format!(
            "\n            <properties><property name=\"carried_from\" value=\"{}\"/></properties>",
            xml_attr(from)
        )
    });
    if let Some(p) = &carried {
        write!(out, "{p}")?;
    }
    match v {
        Verdict::Passed => {}
        Verdict::Skipped => {
            let why = rec.error.clone().or_else(|| rec.notes.first().cloned());
            let why = why.unwrap_or_else(|| rec.status.label().to_string());
            write!(
                out,
                "\n            <skipped message=\"{}\"/>",
                xml_attr(&why)
            )?;
        }
        Verdict::Failure | Verdict::Error => {
            let tag = if v == Verdict::Failure {
                "failure"
            } else {
                "error"
            };
            let stderr = streams
                .as_ref()
                .map_or(String::new(), |s| s[1].last_lines(FAILURE_LINES));
            let mut text = rec.error.clone().map_or(String::new(), |e| e + "\n");
            text.push_str(&stderr);
            write!(
                out,
                "\n            <{tag} message=\"{}\" type=\"{}\">{}</{tag}>",
                xml_attr(&message(rec)),
                xml_attr(&kind(rec.status, rec.returncode, rec.signal)),
                xml(&text)
            )?;
        }
    }
    let rerun = if rec.status == Status::Succeeded {
        "flakyFailure"
    } else {
        "rerunFailure"
    };
    for a in &rec.earlier_attempts {
        write_attempt(out, rerun, a)?;
    }
    if let Some([stdout, stderr]) = &streams {
        for (tag, s) in [("system-out", stdout), ("system-err", stderr)] {
            let mut text = s.text.clone();
            if let Some(r) = s.remark() {
                text = format!("({r})\n{text}");
            }
            write!(out, "\n            <{tag}>{}</{tag}>", xml(&text))?;
        }
    }
    if v == Verdict::Passed && streams.is_none() && carried.is_none() {
        return writeln!(out, "</testcase>");
    }
    writeln!(out, "\n        </testcase>")
}

/// A failed attempt before the last one.
fn write_attempt(out: &mut dyn Write, tag: &str, a: &Attempt) -> io::Result<()> {
    let took = a.finished.duration_since(a.started).unwrap_or_default();
    write!(
        out,
        "\n            <{tag} type=\"{}\" timestamp=\"{}\" time=\"{:.3}\">attempt {}: {}</{tag}>",
        xml_attr(&kind(a.status, a.returncode, a.signal)),
        format_time(a.started),
        took.as_secs_f64(),
        a.attempt,
        xml(&crate::report::outcome_text(a.returncode, a.signal))
    )
}

/// The failure's message: how the job ended, and why when the record says.
fn message(rec: &CompletedProcess) -> String {
    let how = match rec.status {
        Status::Failed => crate::report::outcome_text(rec.returncode, rec.signal),
        other => other.label().to_string(),
    };
    match &rec.error {
        Some(e) => format!("{how}: {e}"),
        None => how,
    }
}

/// The failure's type, in nextest's words where they fit.
fn kind(status: Status, returncode: Option<i32>, signal: Option<i32>) -> String {
    match (status, returncode, signal) {
        (Status::TimedOut, ..) => "job timeout".to_string(),
        (Status::Failed, _, Some(sig)) => {
            format!("job abort with signal {sig} ({})", signal_name(sig))
        }
        (Status::Failed, Some(code), None) => format!("job failure with exit code {code}"),
        (Status::SpawnError, ..) => "job exec failure".to_string(),
        (other, ..) => format!("job {}", other.label()),
    }
}
