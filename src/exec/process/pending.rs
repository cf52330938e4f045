//! A wrapped job's wait before it starts (a Slurm job in the queue, or srun waiting for the
//! controller to take it): when it started, why it waited (asked once, after `ASK_AFTER`), and
//! the note that tells the wait.

use std::time::Duration;

use tokio::time::Instant;

use super::Launcher;
use crate::exec::remote::wrap::Control;

/// A job still waiting this long after its client started is asked about (`squeue`).
const ASK_AFTER: Duration = Duration::from_secs(3);
/// Most time the question may take.
const ASK_LIMIT: Duration = Duration::from_secs(10);

pub(super) struct Pending {
    spawned: Instant,
    /// When the wrapper's start line came.
    pub(super) started: Option<Instant>,
    ask_at: Option<Instant>,
    reason: Option<String>,
}

impl Pending {
    pub(super) fn new(wrapped: bool) -> Pending {
        let now = Instant::now();
        Pending {
            spawned: now,
            started: None,
            ask_at: wrapped.then_some(now + ASK_AFTER),
            reason: None,
        }
    }

    /// When to ask why the job waits, while it has not started.
    pub(super) fn ask_at(&self) -> Option<Instant> {
        if self.started.is_some() {
            None
        } else {
            self.ask_at
        }
    }

    /// Notes the start line; true the first time it is seen.
    pub(super) fn saw_start(&mut self, control: Option<&Control>) -> bool {
        if self.started.is_none() && control.is_some_and(|c| c.started) {
            self.started = Some(Instant::now());
            return true;
        }
        false
    }

    /// Asks the back end why the job waits (once it knows the job's id; until then, again
    /// after `ASK_AFTER`).
    pub(super) async fn ask(&mut self, launcher: &dyn Launcher, control: Option<&Control>) {
        let Some(cmd) = control.and_then(|c| launcher.queue_reason(c)) else {
            self.ask_at = Some(Instant::now() + ASK_AFTER);
            return;
        };
        self.ask_at = None;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Ok(Ok(out)) = tokio::time::timeout(ASK_LIMIT, cmd.output()).await {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !text.is_empty() {
                self.reason = Some(text);
            }
        }
    }

    /// "pending 12s in Slurm's queue: Resources", for a job that waited to start.
    pub(super) fn note(&self, control: Option<&Control>) -> Option<String> {
        let c = control?;
        let retrying =
            crate::exec::remote::slurm::controller_refused(&String::from_utf8_lossy(&c.early));
        if c.queued.is_none() && !retrying {
            return None;
        }
        let waited = self.started.unwrap_or_else(Instant::now) - self.spawned;
        let secs = humantime::format_duration(Duration::from_secs(waited.as_secs().max(1)));
        let mut note = if retrying {
            format!("waited {secs} for the Slurm controller to accept the job")
        } else {
            format!("pending {secs} in Slurm's queue")
        };
        if let Some(r) = &self.reason {
            note.push_str(&format!(": {r}"));
        }
        if self.started.is_none() {
            note.push_str("; it never started");
        }
        Some(note)
    }
}
