//! The closing summary of a run: how many jobs ended how, how long it took, why it stopped
//! early, and the run's id.

use std::time::Duration;

use super::Reporter;
use crate::exec::ExecSummary;
use crate::record::{Status, format_duration};

/// How a run closes, as its summary line tells it.
pub struct Closing<'a> {
    pub run_id: Option<&'a str>,
    pub interrupted: Option<i32>,
    /// From the run's start to its last record's end: the run's duration as the store keeps
    /// it, so that the summary, `runs` and `show` say the same.
    pub elapsed: Duration,
    /// The records `--resume` carried over, and the run they come from: they are jobs of
    /// this run, counted as `runs` counts them.
    pub carried: Option<(usize, &'a str)>,
}

/// "3 jobs in 1.20s: 2 succeeded (1 flaky), 1 timed out (interrupted by SIGTERM); run ID".
/// `flaky`: jobs that succeeded only after retries (counted among the succeeded).
fn summary_line(summary: &ExecSummary, flaky: usize, c: &Closing<'_>) -> String {
    let (elapsed, run_id, interrupted) = (c.elapsed, c.run_id, c.interrupted);
    let mut summary = *summary;
    if let Some((n, _)) = c.carried {
        summary.add_n(Status::Succeeded, n);
    }
    let parts = if summary.total() == 0 {
        "nothing ran".to_string()
    } else {
        summary.describe_noting(|st| {
            let mut notes = Vec::new();
            if st == Status::Succeeded && flaky > 0 {
                notes.push(format!("{flaky} flaky"));
            }
            if st == Status::Succeeded
                && let Some((n, from)) = c.carried.filter(|(n, _)| *n > 0)
            {
                notes.push(format!("{n} carried from run {from}"));
            }
            (!notes.is_empty()).then(|| notes.join(", "))
        })
    };
    let mut line = format!(
        "{} job{} in {}: {}",
        summary.total(),
        if summary.total() == 1 { "" } else { "s" },
        format_duration(elapsed),
        parts
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
    line
}

impl Reporter {
    /// The closing summary; printed unless quiet with nothing failed.
    pub fn finish(&mut self, summary: &ExecSummary, closing: &Closing<'_>) {
        if let Some(log) = &mut self.log {
            log.finish(summary, closing);
        }
        self.wind_down();
        let quiet_ok = self.cfg.quiet && summary.failed() == 0 && closing.interrupted.is_none();
        if self.cfg.json || quiet_ok {
            self.flush_out();
            return;
        }
        let line = summary_line(summary, self.flaky, closing);
        self.say(&line);
        self.flush_both();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_order_of_statuses() {
        let mut s = ExecSummary::default();
        s.add(Status::TimedOut);
        s.add_n(Status::Succeeded, 2);
        assert_eq!(
            s.nonzero().collect::<Vec<_>>(),
            vec![(Status::Succeeded, 2), (Status::TimedOut, 1)]
        );
    }

    #[test]
    fn summary_lines() {
        let mut s = ExecSummary::default();
        let mut c = Closing {
            run_id: None,
            interrupted: None,
            elapsed: Duration::from_millis(5),
            carried: None,
        };
        assert_eq!(summary_line(&s, 0, &c), "0 jobs in 5ms: nothing ran");
        s.add_n(Status::Succeeded, 2);
        s.add(Status::TimedOut);
        assert_eq!(
            summary_line(&s, 1, &c),
            "3 jobs in 5ms: 2 succeeded (1 flaky), 1 timed out"
        );
        c.run_id = Some("r1");
        c.interrupted = Some(15);
        assert_eq!(
            summary_line(&s, 0, &c),
            "3 jobs in 5ms: 2 succeeded, 1 timed out (interrupted by SIGTERM); run r1"
        );
        c.interrupted = None;
        c.carried = Some((2, "r0"));
        assert_eq!(
            summary_line(&s, 1, &c),
            "5 jobs in 5ms: 4 succeeded (1 flaky, 2 carried from run r0), 1 timed out; run r1"
        );
    }
}
