//! What a notification says: the run's summary as JSON (the webhook), as plain text (the mail
//! and the ping's body), and the mail's subject line.

use std::time::SystemTime;

use serde_json::json;

use super::{Change, Summary};
use crate::record::format_time;

/// Failed jobs told of in detail (with their stderr); the others are counted.
pub const MAX_DETAILED: usize = 50;

impl Change {
    /// The `event` of the webhook's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Failed => "failed",
            Change::StillFailing(_) => "still_failing",
            Change::Recovered => "recovered",
            Change::Succeeded => "succeeded",
        }
    }

    /// What happened, in the subject: "failed", "still failing for 4 runs".
    pub fn words(self) -> String {
        match self {
            Change::StillFailing(n) => format!("still failing for {n} runs"),
            other => other.as_str().to_string(),
        }
    }
}

/// Text that goes into a header line: no control character can start another header.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Summary {
    fn file_label(&self) -> &str {
        self.job_file.as_deref().unwrap_or("(no job file)")
    }

    /// `orchestrate: <job file> failed on <host>`.
    pub fn subject(&self) -> String {
        header_safe(&format!(
            "orchestrate: {} {} on {}",
            self.file_label(),
            self.change.words(),
            self.host
        ))
    }

    /// The webhook's body.
    pub fn to_json(&self) -> String {
        let failed: Vec<serde_json::Value> = self
            .failed
            .iter()
            .map(|f| {
                let mut v = json!({
                    "name": f.name,
                    "status": f.status,
                    "outcome": f.outcome,
                    "error": f.error,
                    "stderr_tail": f.stderr_tail,
                });
                if let Some(d) = &f.diff {
                    v["stderr_diff"] = json!(d.text);
                    v["last_good_run"] = json!(d.run);
                }
                v
            })
            .collect();
        let mut body = json!({
            "event": self.change.as_str(),
            "run": self.run_id,
            "job_file": self.job_file,
            "status": self.status,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "started": format_time(self.started),
            "ended": format_time(self.ended),
            "duration": secs(self.started, self.ended),
            "host": self.host,
            "failed_jobs": failed,
            "failed_total": self.failed_total,
        });
        if let Change::StillFailing(n) = self.change {
            body["failing_runs"] = json!(n);
        }
        body.to_string()
    }

    /// The mail's body, and the ping's.
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "Run {} of {} on {}: {} (exit {}).\nStarted {}, ended {}, took {}.\nJobs: {}.\n",
            self.run_id,
            self.file_label(),
            self.host,
            self.status,
            self.exit_code,
            format_time(self.started),
            format_time(self.ended),
            crate::record::format_duration(
                self.ended.duration_since(self.started).unwrap_or_default()
            ),
            self.counts.describe(),
        );
        if let Change::StillFailing(n) = self.change {
            t.push_str(&format!("This job file has failed {n} runs in a row.\n"));
        }
        if !self.failed.is_empty() {
            t.push_str("\nFailed jobs:\n");
        }
        for f in &self.failed {
            t.push_str(&format!(
                "\n  {}: {} ({})\n",
                f.name,
                f.status.label(),
                f.outcome
            ));
            if let Some(e) = &f.error {
                t.push_str(&format!("    {e}\n"));
            }
            for l in &f.stderr_tail {
                t.push_str(&format!("    | {l}\n"));
            }
            if let Some(d) = &f.diff {
                t.push_str(&format!(
                    "    stderr since its last good run ({}):\n",
                    d.run
                ));
                for l in d.text.lines() {
                    t.push_str(&format!("    {l}\n"));
                }
            }
        }
        let more = self.failed_total.saturating_sub(self.failed.len());
        if more > 0 {
            t.push_str(&format!(
                "\n{more} more failed jobs: orchestrate show {}\n",
                self.run_id
            ));
        }
        t
    }

    /// The message sendmail is given (`-t`: the recipients are read from `To:`).
    pub fn mail(&self, to: &str) -> String {
        format!(
            "To: {}\nSubject: {}\nAuto-Submitted: auto-generated\nX-Orchestrate-Run: {}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{}",
            header_safe(to),
            self.subject(),
            header_safe(&self.run_id),
            self.to_text()
        )
    }
}

fn secs(a: SystemTime, b: SystemTime) -> f64 {
    let d = b.duration_since(a).unwrap_or_default();
    (d.as_secs_f64() * 1e3).round() / 1e3
}
