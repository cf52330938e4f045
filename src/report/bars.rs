//! The progress bars of a run on a terminal: one for the whole run, one per running job
//! showing its latest output line (escaped).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The progress bars: one for the whole run, one per running job above it.
pub(super) struct Bars {
    pub(super) multi: MultiProgress,
    /// Drawn on stderr although it is no terminal (`--progress always` in CI logs, pipes).
    pub(super) forced: bool,
    overall: ProgressBar,
    running: BTreeMap<usize, ProgressBar>,
    /// A forced bar's last line: when, and what it said (`forced_line`).
    drawn: Option<(Instant, String)>,
}

/// How often a forced bar's line is written again when nothing changed.
const FORCED_EVERY: Duration = Duration::from_secs(1);

impl Bars {
    /// `jobs`: `None` while the count is unknown (items read from a stream): a counter then.
    pub(super) fn new(jobs: Option<usize>) -> Self {
        let (target, forced) = super::term::stderr_target();
        let multi = MultiProgress::with_draw_target(target);
        let overall = match jobs {
            Some(n) => multi.add(ProgressBar::new(n as u64)),
            None => multi.add(ProgressBar::no_length()),
        };
        let template = match jobs {
            Some(_) => "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs {msg} ETA {eta}",
            None => "{spinner} [{elapsed_precise}] {pos} jobs {msg}",
        };
        overall.set_style(
            ProgressStyle::with_template(template)
                .expect("static template is valid")
                .progress_chars("=> "),
        );
        if !forced {
            overall.enable_steady_tick(Duration::from_millis(100));
        }
        Bars {
            multi,
            forced,
            overall,
            running: BTreeMap::new(),
            drawn: None,
        }
    }

    pub(super) fn job_started(&mut self, index: usize, name: String) {
        if self.forced {
            return; // a line per running job in a log would be noise
        }
        let pb = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("  {spinner} {prefix} {elapsed:>4} {wide_msg}")
                .expect("static template is valid"),
        );
        pb.set_prefix(name);
        pb.enable_steady_tick(Duration::from_millis(200));
        self.running.insert(index, pb);
    }

    /// A running job's latest output line, as its bar's message.
    pub(super) fn job_line(&self, index: usize, line: &[u8]) {
        if let Some(pb) = self.running.get(&index) {
            let text = String::from_utf8_lossy(line);
            pb.set_message(super::render::visible(
                &text.trim_end().chars().take(200).collect::<String>(),
            ));
        }
    }

    pub(super) fn job_finished(&mut self, index: usize, failed_so_far: usize) {
        if let Some(pb) = self.running.remove(&index) {
            pb.finish_and_clear();
            self.multi.remove(&pb);
        }
        self.overall.inc(1);
        if failed_so_far > 0 {
            self.overall
                .set_message(format!("({failed_so_far} failed)"));
        }
    }

    /// The bar as one whole line, for a forced bar (no terminal): when its count or message
    /// changed, or a second after the last line, else `None`. The reporter writes it after
    /// the job lines of an event, so that every job line starts a line of the file and the
    /// count already includes the job.
    pub(super) fn forced_line(&mut self) -> Option<String> {
        if !self.forced {
            return None;
        }
        let (pos, len) = (self.overall.position(), self.overall.length().unwrap_or(0));
        let msg = self.overall.message();
        let state = format!(
            "{pos}/{len} jobs{}",
            if msg.is_empty() {
                String::new()
            } else {
                format!(" {msg}")
            }
        );
        let now = Instant::now();
        if let Some((at, last)) = &self.drawn
            && *last == state
            && now.duration_since(*at) < FORCED_EVERY
        {
            return None;
        }
        self.drawn = Some((now, state.clone()));
        let secs = self.overall.elapsed().as_secs();
        let width = 20usize;
        let filled = (pos as usize * width)
            .checked_div(len as usize)
            .unwrap_or(width);
        Some(format!(
            "[{:02}:{:02}:{:02}] [{}{}] {state}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            "=".repeat(filled),
            " ".repeat(width - filled.min(width))
        ))
    }

    pub(super) fn clear(self) {
        for (_, pb) in self.running {
            pb.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}
