//! The closing summary of a run: how many jobs ended how, how long it took, why it stopped
//! early, and the run's id.

use std::time::Duration;

use super::Reporter;
use crate::exec::ExecSummary;
use crate::record::{Status, format_duration};

/// "3 jobs in 1.20s: 2 succeeded (1 flaky), 1 timed out (interrupted by SIGTERM); run ID".
/// `flaky`: jobs that succeeded only after retries (counted among the succeeded).
fn summary_line(
    summary: &ExecSummary,
    elapsed: Duration,
    flaky: usize,
    run_id: Option<&str>,
    interrupted: Option<i32>,
) -> String {
    let parts = if summary.total() == 0 {
        "nothing ran".to_string()
    } else {
        summary.describe_noting(|st| {
            (st == Status::Succeeded && flaky > 0).then(|| format!("{flaky} flaky"))
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
    pub fn finish(
        &mut self,
        summary: &ExecSummary,
        run_id: Option<&str>,
        interrupted: Option<i32>,
    ) {
        if let Some(log) = &mut self.log {
            log.finish(summary, run_id, interrupted);
        }
        self.wind_down();
        if self.cfg.json || (self.cfg.quiet && summary.failed() == 0 && interrupted.is_none()) {
            self.flush_out();
            return;
        }
        let elapsed = self.started.elapsed();
        let line = summary_line(summary, elapsed, self.flaky, run_id, interrupted);
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
        let d = Duration::from_millis(5);
        assert_eq!(
            summary_line(&s, d, 0, None, None),
            "0 jobs in 5ms: nothing ran"
        );
        s.add_n(Status::Succeeded, 2);
        s.add(Status::TimedOut);
        assert_eq!(
            summary_line(&s, d, 0, Some("r1"), Some(15)),
            "3 jobs in 5ms: 2 succeeded, 1 timed out (interrupted by SIGTERM); run r1"
        );
        assert_eq!(
            summary_line(&s, d, 1, None, None),
            "3 jobs in 5ms: 2 succeeded (1 flaky), 1 timed out"
        );
    }
}
