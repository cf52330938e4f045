//! The reporter of a run: consumes exec events as they come, drawing progress bars on a
//! terminal or writing plain (timestamped) lines otherwise, and shows job output in the chosen
//! mode, holding records back in `ordered` mode until their turn.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use super::bars::Bars;
use super::render::{self, Retry, SlowJob};
use super::tag;
use super::{OutputMode, ReportConfig, tail_lines, write_json_record};
use crate::exec::{CaptureRoot, Event, Readback, Stream};
use crate::plan::Plan;
use crate::record::CompletedProcess;

pub struct Reporter {
    pub(super) cfg: ReportConfig,
    plan: Arc<Plan>,
    /// Where this run's output is captured: the only place records' output is read from.
    captures: CaptureRoot,
    /// The run's id, which its JSON records carry.
    run_id: String,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    /// Ordered mode: finished records waiting for their turn.
    pending: BTreeMap<usize, CompletedProcess>,
    next_ordered: usize,
    name_width: usize,
    bars: Option<Bars>,
    failed: usize,
    done: usize,
    /// Jobs that succeeded only after retries, for the summary.
    pub(super) flaky: usize,
    /// A second reporter that writes the full report to a log (`--log`), whatever this one
    /// shows.
    pub(super) log: Option<Box<Reporter>>,
}

/// The first index of a plan: where ordered output starts.
fn plan_start(plan: &Plan) -> usize {
    plan.next_index(0).unwrap_or(0)
}

impl Reporter {
    pub fn new(
        cfg: ReportConfig,
        plan: Arc<Plan>,
        captures: CaptureRoot,
        run_id: &str,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Self {
        let fan_names = plan.fans.iter().map(|f| f.name(f.count.unwrap_or(1) - 1));
        let name_width = plan
            .jobs
            .iter()
            .map(|j| j.name.clone())
            .chain(fan_names)
            .map(|n| n.chars().count())
            .chain(super::hook_widths(&plan))
            .max()
            .unwrap_or(0)
            .min(32);
        let bars = (cfg.progress && !cfg.json && !cfg.quiet).then(|| Bars::new(plan.len_hint()));
        let next_ordered = plan_start(&plan);
        Reporter {
            cfg,
            plan,
            captures,
            run_id: run_id.to_string(),
            out,
            err,
            pending: BTreeMap::new(),
            next_ordered,
            name_width,
            bars,
            failed: 0,
            done: 0,
            flaky: 0,
            log: None,
        }
    }

    /// The run folder this reporter reads outputs back from.
    pub fn files(&self) -> &CaptureRoot {
        &self.captures
    }

    /// This reporter, with `log` given every event too.
    pub fn with_log(mut self, log: Reporter) -> Self {
        self.log = Some(Box::new(log));
        self
    }

    /// A line for the human on stderr, above the bars when they are drawn. Bars forced on a
    /// file or a pipe are lines of their own (`Bars::forced_line`), written after the event's
    /// lines: indicatif's `println` ends its lines by filling the terminal's width, no
    /// newline, so in a log every line ran into the next.
    pub(super) fn say(&mut self, line: &str) {
        match &self.bars {
            Some(b) if !b.forced => {
                let _ = b.multi.println(line);
            }
            Some(b) => b.multi.suspend(|| {
                let _ = writeln!(self.err, "{line}");
                let _ = self.err.flush();
            }),
            None => {
                let _ = writeln!(self.err, "{line}");
            }
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

    pub(super) fn flush_out(&mut self) {
        let _ = self.out.flush();
    }

    pub(super) fn flush_both(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
    }

    pub fn event(&mut self, ev: &Event) {
        if let Some(log) = &mut self.log {
            log.event(ev);
        }
        match ev {
            Event::JobStarted { index, .. } => {
                if let Some(b) = &mut self.bars {
                    b.job_started(*index, self.plan.name_of(*index).into_owned());
                }
            }
            Event::Output {
                index,
                stream,
                line,
            } => self.output_line(*index, *stream, line),
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
                let retry = Retry {
                    job: &self.plan.name_of(*index),
                    attempt: *attempt,
                    of: *of,
                    delay: *delay,
                    outcome,
                };
                let line = render::retry_line(&self.cfg, self.name_width, &retry);
                self.say(&line);
            }
            Event::JobSlow {
                index,
                running_for,
                usual,
                runs,
            } => {
                if self.cfg.json || self.cfg.quiet {
                    return;
                }
                let slow = SlowJob {
                    job: &self.plan.name_of(*index),
                    running_for: *running_for,
                    usual: *usual,
                    runs: *runs,
                };
                let line = render::slow_line(&self.cfg, &slow);
                self.say(&line);
            }
            Event::JobFinished(rec) => self.finished(rec),
            // The log had the event already.
            Event::HookFinished(rec) => self.hook_line(rec),
        }
        if let Some(line) = self.bars.as_mut().and_then(Bars::forced_line) {
            let _ = writeln!(self.err, "{line}");
            let _ = self.err.flush();
        }
    }

    /// A hook's or a notification's record: a JSON line with `--json`, else its status line
    /// and its output as `--output` says (not under `-q`: a failed one is a warning of the
    /// run, which is printed even then). It is no job: the bars and the counts leave it out.
    pub fn hook_finished(&mut self, rec: &CompletedProcess) {
        if let Some(log) = &mut self.log {
            log.hook_line(rec);
        }
        self.hook_line(rec);
    }

    /// A record as its JSON line, with its output read back (the one writer, `--json`).
    fn json_record(&mut self, rec: &CompletedProcess) {
        let outputs = self.outputs(rec);
        let _ = write_json_record(
            &mut self.out,
            &self.run_id,
            rec,
            crate::environ::inherited_env_keys(),
            outputs,
        );
    }

    fn hook_line(&mut self, rec: &CompletedProcess) {
        if self.cfg.json {
            self.json_record(rec);
            self.flush_out();
            return;
        }
        if self.cfg.quiet {
            return;
        }
        let line = self.status_line(rec);
        self.say(&line);
        match self.cfg.output {
            OutputMode::All | OutputMode::Ordered => self.dump(rec),
            OutputMode::Failed if rec.status.is_failure() => self.tail(rec),
            _ => {}
        }
        self.flush_both();
    }

    /// One line of a running job's output: its bar's message, and in `stream` mode our output.
    fn output_line(&mut self, index: usize, stream: Stream, line: &[u8]) {
        if let Some(b) = &self.bars {
            b.job_line(index, line);
        }
        if self.cfg.output == OutputMode::Stream && !self.cfg.json && !self.cfg.quiet {
            let buf = tag::line(&self.plan.name_of(index), line);
            self.raw(stream, &buf);
        }
    }

    fn finished(&mut self, rec: &CompletedProcess) {
        self.done += 1;
        if rec.status.is_failure() {
            self.failed += 1;
        }
        self.flaky += usize::from(rec.flaky);
        // Its place in this run's plan (`rec.index` is the job file's).
        let at = self.plan.position(rec.index).unwrap_or(rec.index);
        if let Some(b) = &mut self.bars {
            b.job_finished(at, self.failed);
        }
        if self.cfg.json {
            if self.cfg.output == OutputMode::Ordered {
                self.pending.insert(at, rec.clone());
                self.flush_ordered();
            } else {
                self.json_record(rec);
            }
            self.flush_out();
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
                self.pending.insert(at, rec.clone());
                self.flush_ordered();
            }
            OutputMode::None | OutputMode::Stream => {}
        }
        self.flush_both();
    }

    fn flush_ordered(&mut self) {
        while let Some(rec) = self.pending.remove(&self.next_ordered) {
            if self.cfg.json {
                self.json_record(&rec);
            } else {
                self.dump(&rec);
            }
            // A narrowed plan with fan-out keeps its jobs' indices: they have gaps.
            let next = self.next_ordered + 1;
            self.next_ordered = self.plan.next_index(next).unwrap_or(next);
        }
    }

    /// At the end of the run: the records still held back, then the bars gone.
    pub(super) fn wind_down(&mut self) {
        self.flush_ordered();
        if let Some(b) = self.bars.take() {
            b.clear();
        }
    }

    /// How one stream of a record of this run reads back; what cannot be read shows nothing.
    fn output(&self, rec: &CompletedProcess, stream: Stream) -> Readback {
        self.captures
            .read_back(rec, stream)
            .unwrap_or(Readback::NotKept)
    }

    fn outputs(&self, rec: &CompletedProcess) -> [Option<File>; 2] {
        [
            self.output(rec, Stream::Stdout).into_file(),
            self.output(rec, Stream::Stderr).into_file(),
        ]
    }

    /// The job's whole stdout to our stdout and stderr to our stderr; with `--tag`, each line
    /// after the job's name and a tab.
    fn dump(&mut self, rec: &CompletedProcess) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let Readback::Captured(Some(mut f)) = self.output(rec, stream) else {
                continue;
            };
            let mut tagger = self.cfg.tag.then(|| tag::Tagger::new(&rec.job));
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => match &mut tagger {
                        Some(t) => self.raw(stream, &t.piece(&buf[..n])),
                        None => self.raw(stream, &buf[..n]),
                    },
                }
            }
            if let Some(t) = &tagger {
                self.raw(stream, t.end());
            }
        }
    }

    /// The last lines of a failed job's stderr, indented; when it has none, those of its
    /// stdout under a line that says so (a job that reports its failure on stdout).
    fn tail(&mut self, rec: &CompletedProcess) {
        let src = [(Stream::Stderr, &rec.stderr), (Stream::Stdout, &rec.stdout)]
            .into_iter()
            .find(|(_, o)| o.captured && o.path.is_some());
        let Some((stream, _)) = src else {
            return;
        };
        let Readback::Captured(Some(f)) = self.output(rec, stream) else {
            return;
        };
        let lines = tail_lines(f, self.cfg.tail_lines);
        if stream == Stream::Stdout && !lines.is_empty() {
            let why = if rec.stderr.captured {
                "stderr is empty"
            } else {
                "stderr is not captured"
            };
            self.say(&format!("    (stdout, as {why})"));
        }
        for l in lines {
            self.say(&format!("    | {l}"));
        }
    }

    /// The line shown when `rec`'s job ends (see [`render::status_line`]).
    pub fn status_line(&self, rec: &CompletedProcess) -> String {
        render::status_line(&self.cfg, self.name_width, rec)
    }
}
