//! The texts printed about jobs: status and retry lines during a run, a stored record field by
//! field for `show --job`, the tail of a job's output, and how a job ended in a few words.

use std::fs::File;
use std::time::{Duration, SystemTime};

use super::ReportConfig;
use crate::record::{
    CompletedProcess, Status, StoredOutput, format_duration, format_tenths, format_time,
};

/// How a process ended, in a few words: the signal's name ("SIGTERM"), "exit 1", or "-" when no
/// process ran. The one place the report builds this text (records and attempts alike).
pub fn outcome_text(returncode: Option<i32>, signal: Option<i32>) -> String {
    match (returncode, signal) {
        (_, Some(sig)) => crate::record::signal_name(sig).to_string(),
        (Some(code), None) => format!("exit {code}"),
        (None, None) => "-".to_string(),
    }
}

/// The outcome column of a status line: a background job has not ended, so where it runs.
fn outcome_column(rec: &CompletedProcess) -> String {
    if !rec.status.is_running() {
        return outcome_text(rec.returncode, rec.signal);
    }
    match &rec.slurm_job_id {
        Some(id) => format!("slurm {id}"),
        None => format!("pid {}", rec.pid.map_or("-".to_string(), |p| p.to_string())),
    }
}

/// The label of a status line and its colour (an SGR code).
fn status_label(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Succeeded => ("ok", "32"),
        Status::Failed => ("FAILED", "31"),
        Status::TimedOut => ("TIMEOUT", "31"),
        Status::Cancelled => ("CANCELLED", "33"),
        Status::SpawnError => ("NOSTART", "31"),
        Status::Skipped => ("SKIPPED", "33"),
        Status::NotNeeded => ("NOTNEEDED", "36"),
        Status::Background => ("BG", "36"),
        Status::Lost => ("LOST", "31"),
        Status::Interrupted => ("INTERRUPTED", "33"),
        Status::Running => ("RUNNING", "36"),
    }
}

/// A record's status as `show` writes it: its name, `(flaky)` after a success that took
/// retries, `(carried)` for a record `--resume` carried over from an earlier run.
pub fn status_text(status: &str, flaky: bool, carried: bool) -> String {
    match (flaky, carried) {
        (false, false) => status.to_string(),
        (true, false) => format!("{status} (flaky)"),
        (false, true) => format!("{status} (carried)"),
        (true, true) => format!("{status} (flaky, carried)"),
    }
}

/// A label padded to the width of the label column, coloured when colours are on.
fn label(cfg: &ReportConfig, text: &str, color: &str) -> String {
    if cfg.color {
        format!("\x1b[{color}m{text:<9}\x1b[0m")
    } else {
        format!("{text:<9}")
    }
}

/// The timestamp a line starts with when timestamps are on (logs), else nothing.
fn line_start(cfg: &ReportConfig, t: SystemTime) -> String {
    if cfg.timestamps {
        format!("{} ", humantime::format_rfc3339_seconds(t))
    } else {
        String::new()
    }
}

/// The line shown when a job ends: label, name, outcome, duration, error and notes.
pub fn status_line(cfg: &ReportConfig, name_width: usize, rec: &CompletedProcess) -> String {
    let (text, color) = if rec.flaky {
        ("FLAKY", "33")
    } else {
        status_label(rec.status)
    };
    let mut s = line_start(cfg, rec.finished);
    s.push_str(&format!(
        "{} {:<w$}  {:<8} {:>8}",
        label(cfg, text, color),
        rec.job,
        outcome_column(rec),
        format_duration(rec.duration),
        w = name_width
    ));
    if let Some(e) = &rec.error {
        s.push_str("  ");
        s.push_str(&visible(e));
    }
    for n in &rec.notes {
        s.push_str(&format!("  [{}]", visible(n)));
    }
    s.trim_end().to_string()
}

/// What a retried job's failed attempt is followed by.
pub(super) struct Retry<'a> {
    pub job: &'a str,
    /// The attempt about to start, and how many there are in all.
    pub attempt: u32,
    pub of: u32,
    pub delay: Duration,
    /// How the failed attempt ended, as the executor describes it.
    pub outcome: &'a str,
}

/// The line shown when a job fails and will be tried again.
pub(super) fn retry_line(cfg: &ReportConfig, name_width: usize, r: &Retry) -> String {
    let mut line = line_start(cfg, SystemTime::now());
    line.push_str(&format!(
        "{} {:<w$}  {}; attempt {} of {} in {}",
        label(cfg, "RETRY", "33"),
        r.job,
        r.outcome,
        r.attempt,
        r.of,
        format_duration(r.delay),
        w = name_width
    ));
    line
}

/// A job running well over its usual time, and what its usual time is.
pub(super) struct SlowJob<'a> {
    pub job: &'a str,
    pub running_for: Duration,
    pub usual: Duration,
    pub runs: usize,
}

/// The line shown once when a running job turns slow.
pub(super) fn slow_line(cfg: &ReportConfig, s: &SlowJob) -> String {
    let mut line = line_start(cfg, SystemTime::now());
    line.push_str(&format!(
        "slow: `{}` running for {}, usually {} (p95 of its last {} runs)",
        s.job,
        format_tenths(s.running_for),
        format_tenths(s.usual),
        s.runs
    ));
    line
}

/// Text from a job made safe to show on a terminal: control characters (escape sequences,
/// carriage returns, bells) and bidirectional overrides are shown as `\xNN` / `\u{NNNN}`
/// instead of acting on the terminal; tabs stay.
pub fn visible(s: &str) -> String {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    out
}

/// The last `n` lines of a file, reading at most its last [`KEPT_BYTES`] as the exports do
/// (`Shown::from_file`), made safe to show.
///
/// [`KEPT_BYTES`]: super::shown::KEPT_BYTES
pub fn tail_lines(f: File, n: usize) -> Vec<String> {
    let shown = super::shown::Shown::from_file(f, super::shown::KEPT_BYTES);
    let lines: Vec<&str> = shown.text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| visible(&l.chars().take(500).collect::<String>()))
        .collect()
}

/// The lines of `show --job`, one field each, names aligned.
struct Fields(String);

impl Fields {
    /// Values come from the job file and the job (names, args, paths, errors): shown with
    /// their control characters escaped.
    fn field(&mut self, k: &str, v: String) {
        self.0.push_str(&format!("{k:<11} {}\n", visible(&v)));
    }
}

/// A whole record for `show --job`: every field on its own line.
pub fn record_detail(rec: &CompletedProcess, inherited_env: &[String]) -> String {
    let mut f = Fields(String::new());
    command_fields(&mut f, rec);
    time_fields(&mut f, rec);
    place_fields(&mut f, rec);
    for (name, out) in [("stdout", &rec.stdout), ("stderr", &rec.stderr)] {
        f.field(name, output_where(out));
    }
    env_field(&mut f, rec, inherited_env);
    for n in &rec.notes {
        f.field("note", n.clone());
    }
    f.0
}

/// What ran, and how it ended.
fn command_fields(f: &mut Fields, rec: &CompletedProcess) {
    f.field("job", rec.job.clone());
    f.field(
        "status",
        status_text(rec.status.as_str(), rec.flaky, rec.carried_from.is_some()),
    );
    f.field(
        "args",
        shell_words::join(rec.args.iter().map(String::as_str)),
    );
    f.field(
        "cwd",
        rec.cwd
            .as_ref()
            .map_or("(inherited)".to_string(), |c| c.display().to_string()),
    );
    f.field(
        "returncode",
        rec.returncode.map_or("-".to_string(), |c| c.to_string()),
    );
    f.field(
        "signal",
        rec.signal.map_or("-".to_string(), |s| {
            format!("{s} ({})", crate::record::signal_name(s))
        }),
    );
    if let Some(e) = &rec.error {
        f.field("error", e.clone());
    }
}

/// When it ran, and the attempts before the last.
fn time_fields(f: &mut Fields, rec: &CompletedProcess) {
    f.field("start", format_time(rec.started));
    f.field("end", format_time(rec.finished));
    f.field("duration", format_duration(rec.duration));
    f.field("attempts", rec.attempts.to_string());
    for a in &rec.earlier_attempts {
        f.field(
            &format!("attempt {}", a.attempt),
            format!(
                "{}, {}, {} .. {}",
                a.status,
                outcome_text(a.returncode, a.signal),
                format_time(a.started),
                format_time(a.finished)
            ),
        );
    }
}

/// Where it ran: process, worker slot, host, Slurm job.
fn place_fields(f: &mut Fields, rec: &CompletedProcess) {
    f.field("pid", rec.pid.map_or("-".to_string(), |p| p.to_string()));
    f.field("slot", rec.slot.map_or("-".to_string(), |p| p.to_string()));
    if let Some(h) = &rec.host {
        f.field("host", h.clone());
    }
    if let Some(id) = &rec.slurm_job_id {
        f.field("slurm job", id.clone());
    }
}

/// An output stream's size and where its bytes are.
fn output_where(out: &StoredOutput) -> String {
    let where_ = match (&out.path, out.packed) {
        (Some(_), Some(_)) => "in the run's pack (orchestrate logs prints it)".to_string(),
        (Some(p), None) => p.display().to_string(),
        (None, _) if out.captured => "(empty)".to_string(),
        (None, _) => "(not captured)".to_string(),
    };
    format!("{} bytes, {where_}", out.bytes)
}

/// The names of the job's environment variables, and whether it inherited ours.
fn env_field(f: &mut Fields, rec: &CompletedProcess, inherited_env: &[String]) {
    let keys = rec.all_env_keys(inherited_env);
    f.field(
        "env",
        format!(
            "{} variables{}: {}",
            keys.len(),
            if rec.env_inherited {
                " (inherited + set)"
            } else {
                " (clean environment)"
            },
            keys.join(" ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_from_jobs_are_shown_not_obeyed() {
        assert_eq!(visible("ok\tdone"), "ok\tdone");
        assert_eq!(visible("\u{1b}]0;pwned\u{7}x"), "\\x1b]0;pwned\\x07x");
        assert_eq!(visible("a\u{202e}b"), "a\\u{202e}b");
    }

    fn plain() -> ReportConfig {
        ReportConfig {
            timestamps: false,
            ..ReportConfig::default()
        }
    }

    #[test]
    fn outcomes_name_the_signal_or_the_exit_code() {
        assert_eq!(outcome_text(None, Some(15)), "SIGTERM");
        assert_eq!(outcome_text(Some(3), None), "exit 3");
        assert_eq!(outcome_text(None, None), "-");
    }

    #[test]
    fn status_lines_align_label_name_and_outcome() {
        let mut rec = CompletedProcess::not_started("a", 0, vec![], Status::Failed, "boom".into());
        rec.returncode = Some(1);
        assert_eq!(
            status_line(&plain(), 4, &rec),
            "FAILED    a     exit 1        0ms  boom"
        );
        rec.status = Status::Background;
        rec.error = None;
        rec.pid = Some(42);
        assert_eq!(
            status_line(&plain(), 1, &rec),
            "BG        a  pid 42        0ms"
        );
    }

    #[test]
    fn earlier_attempts_say_how_they_ended() {
        let mut rec = CompletedProcess::not_started("a", 0, vec![], Status::Failed, "x".into());
        let t = rec.started;
        rec.earlier_attempts.push(crate::record::Attempt {
            attempt: 1,
            status: Status::TimedOut,
            returncode: None,
            signal: Some(9),
            started: t,
            finished: t,
            host_failed: false,
        });
        let text = record_detail(&rec, &[]);
        let want = format!(
            "attempt 1   timed_out, SIGKILL, {} .. {}\n",
            format_time(t),
            format_time(t)
        );
        assert!(text.contains(&want), "{text}");
    }
}
