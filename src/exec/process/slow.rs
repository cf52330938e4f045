//! The slow warning of one attempt: a job running well over its usual time (what its history
//! says, `JobHistory::slow`) is told to the run once, and its record says so.

use tokio::time::Instant;

use super::JobCtx;
use crate::exec::{Event, Slow};
use crate::record::format_tenths;

/// Whether and when an attempt turns slow.
pub(super) struct SlowWatch {
    slow: Option<Slow>,
    started: Instant,
    /// This attempt ran past the threshold.
    passed: bool,
}

impl SlowWatch {
    pub(super) fn start(ctx: &JobCtx) -> SlowWatch {
        SlowWatch {
            slow: ctx.history.slow,
            started: Instant::now(),
            passed: false,
        }
    }

    /// When the attempt turns slow, while it has not yet.
    pub(super) fn at(&self) -> Option<Instant> {
        match self.slow {
            Some(s) if !self.passed => Some(self.started + s.after),
            _ => None,
        }
    }

    /// The threshold passed: the run hears of it, once per job (a retry that is slow again
    /// is only noted in its record).
    pub(super) fn passed(&mut self, index: usize, ctx: &mut JobCtx) {
        self.passed = true;
        let Some(s) = self.slow else { return };
        if std::mem::replace(&mut ctx.slow_told, true) {
            return;
        }
        let _ = ctx.events.send(Event::JobSlow {
            index,
            running_for: self.started.elapsed(),
            usual: s.usual,
            runs: s.runs,
        });
    }

    /// The record's note, for an attempt that ran slow.
    pub(super) fn note(&self) -> Option<String> {
        let s = self.slow.filter(|_| self.passed)?;
        Some(format!(
            "ran slow: {}, usually {}",
            format_tenths(self.started.elapsed()),
            format_tenths(s.usual)
        ))
    }
}
