//! Consumers of events for people and machines: status lines, job output in the chosen mode,
//! progress bars on a terminal, JSON lines, the summary. Also renders stored records.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Event, ExecSummary, Stream};
use crate::plan::Plan;
use crate::record::{CompletedProcess, Status, format_duration, format_time};

/// How job output is shown during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputMode {
    /// No job output, only status lines.
    None,
    /// The tail of stderr of each failed job (the default).
    #[default]
    Failed,
    /// Each job's stdout and stderr, whole, as each job finishes.
    All,
    /// Each job's stdout and stderr, whole, in job-file order (like Pool.map).
    Ordered,
    /// Live, line by line, each line prefixed with the job name.
    Stream,
}

/// How the reporter behaves; decided once by the caller (terminal detection included).
#[derive(Clone, Debug)]
pub struct ReportConfig {
    pub output: OutputMode,
    pub json: bool,
    pub quiet: bool,
    /// Draw progress bars (only meaningful when stderr is a terminal).
    pub progress: bool,
    pub color: bool,
    /// Prefix status lines with a timestamp (for logs: cron, pipes).
    pub timestamps: bool,
    /// Lines of stderr shown for a failed job in `failed` mode and in quiet mode.
    pub tail_lines: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            output: OutputMode::Failed,
            json: false,
            quiet: false,
            progress: false,
            color: false,
            timestamps: true,
            tail_lines: 10,
        }
    }
}

impl ReportConfig {
    /// Whether the executor must forward output lines as events.
    pub fn needs_output_lines(&self) -> bool {
        !self.json && (self.output == OutputMode::Stream || self.progress)
    }
}

pub struct Reporter {
    cfg: ReportConfig,
    plan: Arc<Plan>,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    /// Ordered mode: finished records waiting for their turn.
    pending: BTreeMap<usize, CompletedProcess>,
    next_ordered: usize,
    name_width: usize,
    bars: Option<Bars>,
    failed: usize,
    done: usize,
    started: Instant,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: BTreeMap<usize, ProgressBar>,
}

impl Reporter {
    pub fn new(
        cfg: ReportConfig,
        plan: Arc<Plan>,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Self {
        let name_width = plan
            .jobs
            .iter()
            .map(|j| j.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(32);
        let bars = (cfg.progress && !cfg.json && !cfg.quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let overall = multi.add(ProgressBar::new(plan.jobs.len() as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs {msg} ETA {eta}",
                )
                .expect("static template is valid")
                .progress_chars("=> "),
            );
            overall.enable_steady_tick(Duration::from_millis(100));
            Bars {
                multi,
                overall,
                running: BTreeMap::new(),
            }
        });
        Reporter {
            cfg,
            plan,
            out,
            err,
            pending: BTreeMap::new(),
            next_ordered: 0,
            name_width,
            bars,
            failed: 0,
            done: 0,
            started: Instant::now(),
        }
    }

    /// A line for the human on stderr, above the bars when they are drawn.
    fn say(&mut self, line: &str) {
        if let Some(b) = &self.bars {
            let _ = b.multi.println(line);
        } else {
            let _ = writeln!(self.err, "{line}");
        }
    }

    /// Raw bytes to one of our streams, with the bars out of the way.
    fn raw(&mut self, stream: Stream, bytes: &[u8]) {
        let w: &mut Box<dyn Write + Send> = match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        match &self.bars {
            Some(b) => b.multi.suspend(|| {
                let _ = w.write_all(bytes);
                let _ = w.flush();
            }),
            None => {
                let _ = w.write_all(bytes);
            }
        }
    }

    pub fn event(&mut self, ev: &Event) {
        match ev {
            Event::JobStarted { index, .. } => {
                if let Some(b) = &mut self.bars {
                    let pb = b
                        .multi
                        .insert_before(&b.overall, ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template(
                            "  {spinner} {prefix} {elapsed:>4} {wide_msg}",
                        )
                        .expect("static template is valid"),
                    );
                    pb.set_prefix(self.plan.jobs[*index].name.clone());
                    pb.enable_steady_tick(Duration::from_millis(200));
                    b.running.insert(*index, pb);
                }
            }
            Event::Output {
                index,
                stream,
                line,
            } => {
                if let Some(b) = &self.bars
                    && let Some(pb) = b.running.get(index)
                {
                    let text = String::from_utf8_lossy(line);
                    pb.set_message(text.trim_end().chars().take(200).collect::<String>());
                }
                if self.cfg.output == OutputMode::Stream && !self.cfg.json && !self.cfg.quiet {
                    let name = self.plan.jobs[*index].name.clone();
                    let mut buf = Vec::with_capacity(line.len() + name.len() + 3);
                    buf.extend_from_slice(name.as_bytes());
                    buf.extend_from_slice(b": ");
                    buf.extend_from_slice(line);
                    buf.push(b'\n');
                    self.raw(*stream, &buf);
                }
            }
            Event::JobRetrying {
                index,
                attempt,
                of,
                delay,
                outcome,
            } => {
                if self.cfg.json || self.cfg.quiet {
                    return;
                }
                let mut line = String::new();
                if self.cfg.timestamps {
                    line.push_str(&format_time_secs(SystemTime::now()));
                    line.push(' ');
                }
                let label = if self.cfg.color {
                    "\x1b[33mRETRY    \x1b[0m".to_string()
                } else {
                    "RETRY    ".to_string()
                };
                line.push_str(&format!(
                    "{label} {:<w$}  {outcome}; attempt {attempt} of {of} in {}",
                    self.plan.jobs[*index].name,
                    format_duration(*delay),
                    w = self.name_width
                ));
                self.say(&line);
            }
            Event::JobFinished(rec) => self.finished(rec),
        }
    }

    fn finished(&mut self, rec: &CompletedProcess) {
        self.done += 1;
        if rec.status.is_failure() {
            self.failed += 1;
        }
        if let Some(b) = &mut self.bars {
            if let Some(pb) = b.running.remove(&rec.index) {
                pb.finish_and_clear();
                b.multi.remove(&pb);
            }
            b.overall.inc(1);
            if self.failed > 0 {
                b.overall.set_message(format!("({} failed)", self.failed));
            }
        }
        if self.cfg.json {
            if self.cfg.output == OutputMode::Ordered {
                self.pending.insert(rec.index, rec.clone());
                self.flush_ordered();
            } else {
                let _ = write_json_record(&mut self.out, rec, crate::environ::inherited_env_keys());
            }
            let _ = self.out.flush();
            return;
        }
        if self.cfg.quiet && !rec.status.is_failure() {
            return;
        }
        let line = self.status_line(rec);
        self.say(&line);
        match self.cfg.output {
            _ if self.cfg.quiet => self.tail(rec),
            OutputMode::Failed => {
                if rec.status.is_failure() {
                    self.tail(rec);
                }
            }
            OutputMode::All => self.dump(rec),
            OutputMode::Ordered => {
                self.pending.insert(rec.index, rec.clone());
                self.flush_ordered();
            }
            OutputMode::None | OutputMode::Stream => {}
        }
        let _ = self.out.flush();
        let _ = self.err.flush();
    }

    fn flush_ordered(&mut self) {
        while let Some(rec) = self.pending.remove(&self.next_ordered) {
            if self.cfg.json {
                let _ =
                    write_json_record(&mut self.out, &rec, crate::environ::inherited_env_keys());
            } else {
                self.dump(&rec);
            }
            self.next_ordered += 1;
        }
    }

    /// The job's whole stdout to our stdout and stderr to our stderr.
    fn dump(&mut self, rec: &CompletedProcess) {
        for (stream, out) in [(Stream::Stdout, &rec.stdout), (Stream::Stderr, &rec.stderr)] {
            if !out.captured {
                continue;
            }
            if let Some(p) = &out.path
                && let Ok(mut f) = File::open(p)
            {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.raw(stream, &buf[..n]),
                    }
                }
            }
        }
    }

    /// The last lines of a failed job's stderr (or stdout, when stderr is empty), indented.
    fn tail(&mut self, rec: &CompletedProcess) {
        let src = [&rec.stderr, &rec.stdout]
            .into_iter()
            .find(|o| o.captured && o.path.is_some());
        let Some(p) = src.and_then(|o| o.path.as_ref()) else {
            return;
        };
        let lines = tail_lines(p, self.cfg.tail_lines);
        for l in lines {
            self.say(&format!("    | {l}"));
        }
    }

    pub fn status_line(&self, rec: &CompletedProcess) -> String {
        let (label, color) = match rec.status {
            Status::Succeeded => ("ok", "32"),
            Status::Failed => ("FAILED", "31"),
            Status::TimedOut => ("TIMEOUT", "31"),
            Status::Cancelled => ("CANCELLED", "33"),
            Status::SpawnError => ("NOSTART", "31"),
            Status::Skipped => ("SKIPPED", "33"),
            Status::Background => ("BG", "36"),
            Status::Lost => ("LOST", "31"),
            Status::Interrupted => ("INTERRUPTED", "33"),
        };
        let label = if self.cfg.color {
            format!("\x1b[{color}m{label:<9}\x1b[0m")
        } else {
            format!("{label:<9}")
        };
        let mut s = String::new();
        if self.cfg.timestamps {
            s.push_str(&format_time_secs(rec.finished));
            s.push(' ');
        }
        let outcome = match (rec.returncode, rec.signal) {
            _ if rec.status == Status::Background => match &rec.slurm_job_id {
                Some(id) => format!("slurm {id}"),
                None => format!("pid {}", rec.pid.map_or("-".to_string(), |p| p.to_string())),
            },
            (_, Some(sig)) => crate::record::signal_name(sig).to_string(),
            (Some(code), None) => format!("exit {code}"),
            (None, None) => "-".to_string(),
        };
        s.push_str(&format!(
            "{label} {:<w$}  {:<8} {:>8}",
            rec.job,
            outcome,
            format_duration(rec.duration),
            w = self.name_width
        ));
        if let Some(e) = &rec.error {
            s.push_str("  ");
            s.push_str(e);
        }
        for n in &rec.notes {
            s.push_str(&format!("  [{n}]"));
        }
        s.trim_end().to_string()
    }

    /// The closing summary; printed unless quiet with nothing failed.
    pub fn finish(
        &mut self,
        summary: &ExecSummary,
        run_id: Option<&str>,
        interrupted: Option<i32>,
    ) {
        self.flush_ordered();
        if let Some(b) = self.bars.take() {
            for (_, pb) in b.running {
                pb.finish_and_clear();
            }
            b.overall.finish_and_clear();
            let _ = b.multi.clear();
        }
        if self.cfg.json || (self.cfg.quiet && summary.failed == 0 && interrupted.is_none()) {
            let _ = self.out.flush();
            return;
        }
        let mut parts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|st| summary.by_status.get(st.as_str()).map(|n| (st, n)))
            .map(|(st, n)| format!("{n} {}", st.as_str().replace('_', " ")))
            .collect();
        if parts.is_empty() {
            parts.push("nothing ran".to_string());
        }
        let mut line = format!(
            "{} job{} in {}: {}",
            summary.total,
            if summary.total == 1 { "" } else { "s" },
            format_duration(self.started.elapsed()),
            parts.join(", ")
        );
        if let Some(sig) = interrupted {
            line.push_str(&format!(
                " (interrupted by {})",
                crate::record::signal_name(sig)
            ));
        }
        if let Some(id) = run_id {
            line.push_str(&format!("; run {id}"));
        }
        self.say(&line);
        let _ = self.out.flush();
        let _ = self.err.flush();
    }
}

fn format_time_secs(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The last `n` lines of a file, reading at most its last 64 KiB.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(500).collect())
        .collect()
}

/// One record as a JSON line: the record's fields, with stdout and stderr inline as text
/// (decoded lossily, `*_lossy` saying so) and their byte counts. Output is streamed from the
/// capture files, so a large output never sits in memory whole.
pub fn write_json_record(
    w: &mut dyn Write,
    rec: &CompletedProcess,
    inherited_env: &[String],
) -> io::Result<()> {
    let mut head = serde_json::json!({
        "job": rec.job,
        "index": rec.index,
        "args": rec.args,
        "cwd": rec.cwd,
        "returncode": rec.returncode,
        "signal": rec.signal,
        "status": rec.status,
        "error": rec.error,
        "pid": rec.pid,
        "slot": rec.slot,
        "start": format_time(rec.started),
        "end": format_time(rec.finished),
        "duration": (rec.duration.as_secs_f64() * 1e6).round() / 1e6,
        "attempts": rec.attempts,
        "host": rec.host,
        "notes": rec.notes,
        "stdout_bytes": rec.stdout.bytes,
        "stderr_bytes": rec.stderr.bytes,
        "stdout_path": rec.stdout.path,
        "stderr_path": rec.stderr.path,
        "earlier_attempts": rec.earlier_attempts,
        "env_keys": rec.all_env_keys(inherited_env),
    });
    if let Some(sig) = rec.signal {
        head["signal_name"] = serde_json::Value::from(crate::record::signal_name(sig));
    }
    if let Some(id) = &rec.slurm_job_id {
        head["slurm_job_id"] = serde_json::Value::from(id.clone());
    }
    let mut text = serde_json::to_string(&head).map_err(io::Error::other)?;
    text.pop(); // the closing brace: the inline outputs follow
    w.write_all(text.as_bytes())?;
    for (name, out) in [("stdout", &rec.stdout), ("stderr", &rec.stderr)] {
        write!(w, ",\"{name}\":")?;
        let lossy = match (&out.path, out.captured) {
            (Some(p), true) => write_json_string_from_file(w, p)?,
            _ => {
                w.write_all(b"\"\"")?;
                false
            }
        };
        write!(w, ",\"{name}_lossy\":{lossy}")?;
    }
    w.write_all(b"}\n")
}

/// Writes a file's bytes as one JSON string, decoding UTF-8 lossily chunk by chunk.
/// Returns whether anything had to be replaced.
fn write_json_string_from_file(w: &mut dyn Write, path: &Path) -> io::Result<bool> {
    w.write_all(b"\"")?;
    let mut lossy = false;
    if let Ok(mut f) = File::open(path) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            // Keep an incomplete UTF-8 sequence at the end for the next chunk.
            let keep = match std::str::from_utf8(&carry) {
                Ok(_) => 0,
                Err(e) if e.error_len().is_none() => carry.len() - e.valid_up_to(),
                Err(_) => {
                    // Invalid somewhere; an incomplete tail may still follow the invalid part.
                    incomplete_tail(&carry)
                }
            };
            let cut = carry.len() - keep;
            let piece = String::from_utf8_lossy(&carry[..cut]);
            if matches!(piece, std::borrow::Cow::Owned(_)) {
                lossy = true;
            }
            write_escaped(w, &piece)?;
            carry.drain(..cut);
        }
        if !carry.is_empty() {
            lossy = true;
            write_escaped(w, &String::from_utf8_lossy(&carry))?;
        }
    }
    w.write_all(b"\"")?;
    Ok(lossy)
}

/// Length of a trailing incomplete (but so far valid) UTF-8 sequence.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let start = b.len() - back;
        let lead = b[start];
        let need = if lead >= 0xF0 {
            4
        } else if lead >= 0xE0 {
            3
        } else if lead >= 0xC0 {
            2
        } else {
            continue;
        };
        return if need > back { back } else { 0 };
    }
    0
}

fn write_escaped(w: &mut dyn Write, s: &str) -> io::Result<()> {
    let quoted = serde_json::to_string(s).map_err(io::Error::other)?;
    w.write_all(&quoted.as_bytes()[1..quoted.len() - 1])
}

/// A whole record for `show --job`: every field on its own line.
pub fn record_detail(rec: &CompletedProcess, inherited_env: &[String]) -> String {
    let mut s = String::new();
    let mut field = |k: &str, v: String| s.push_str(&format!("{k:<11} {v}\n"));
    field("job", rec.job.clone());
    field("status", rec.status.to_string());
    field(
        "args",
        shell_words::join(rec.args.iter().map(String::as_str)),
    );
    field(
        "cwd",
        rec.cwd
            .as_ref()
            .map_or("(inherited)".to_string(), |c| c.display().to_string()),
    );
    field(
        "returncode",
        rec.returncode.map_or("-".to_string(), |c| c.to_string()),
    );
    field(
        "signal",
        rec.signal.map_or("-".to_string(), |s| {
            format!("{s} ({})", crate::record::signal_name(s))
        }),
    );
    if let Some(e) = &rec.error {
        field("error", e.clone());
    }
    field("start", format_time(rec.started));
    field("end", format_time(rec.finished));
    field("duration", format_duration(rec.duration));
    field("attempts", rec.attempts.to_string());
    for a in &rec.earlier_attempts {
        let outcome = match (a.returncode, a.signal) {
            (_, Some(sig)) => crate::record::signal_name(sig).to_string(),
            (Some(c), None) => format!("exit {c}"),
            (None, None) => "-".to_string(),
        };
        field(
            &format!("attempt {}", a.attempt),
            format!(
                "{}, {outcome}, {} .. {}",
                a.status,
                format_time(a.started),
                format_time(a.finished)
            ),
        );
    }
    field("pid", rec.pid.map_or("-".to_string(), |p| p.to_string()));
    field("slot", rec.slot.map_or("-".to_string(), |p| p.to_string()));
    if let Some(h) = &rec.host {
        field("host", h.clone());
    }
    if let Some(id) = &rec.slurm_job_id {
        field("slurm job", id.clone());
    }
    for (name, out) in [("stdout", &rec.stdout), ("stderr", &rec.stderr)] {
        let where_ = match &out.path {
            Some(p) => p.display().to_string(),
            None if out.captured => "(empty)".to_string(),
            None => "(not captured)".to_string(),
        };
        field(name, format!("{} bytes, {where_}", out.bytes));
    }
    let keys = rec.all_env_keys(inherited_env);
    field(
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
    for n in &rec.notes {
        field("note", n.clone());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_tails() {
        assert_eq!(incomplete_tail(b"ab\xE2\x82"), 2);
        assert_eq!(incomplete_tail(b"ab\xE2\x82\xAC"), 0);
        assert_eq!(incomplete_tail(b"ab"), 0);
    }
}
