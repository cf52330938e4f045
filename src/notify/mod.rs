//! Telling someone how a run ended (`notify:`): a webhook POSTed the run's summary as JSON, a
//! healthchecks-style ping (`/start` when the run starts, then the URL itself or `/fail`),
//! and a mail through sendmail. `when` picks the runs the webhook and the mail go out for;
//! `change` compares the run with the job file's runs before it (`store::Streak`).
//!
//! A notification is tried three times, each attempt limited to 10 s. One that cannot be sent
//! is a warning and a record of the run (marked `notify.*`, never counted): it never changes
//! the run's status or exit code.

mod http;
mod mail;
mod message;

use std::time::SystemTime;

pub use http::{ATTEMPT_TIMEOUT, BACKOFF, Sent};
pub use mail::Mailer;

use crate::plan::{NOTIFY_CHANNELS, Notify, NotifyWhen, notify_index};
use crate::record::{CompletedProcess, Counts, RunStatus, Sealed, Status};
use crate::store::{RunStore, Streak};

/// Lines of a failed job's stderr told of.
pub const TAIL_LINES: usize = 20;

/// Lines of a digest's diff at most.
const MAX_DIFF_LINES: usize = 200;

/// How this run stands against the job file's runs before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Failed after a run that did not (or as the first run).
    Failed,
    /// Failed, as the runs before it did: `N` runs in a row, this one included.
    StillFailing(u32),
    /// Succeeded after a run that did not.
    Recovered,
    Succeeded,
}

impl Change {
    pub fn of(failed: bool, before: Streak) -> Change {
        let was_failing = before.previous.is_some_and(|s| s != RunStatus::Succeeded);
        match (failed, was_failing) {
            (true, true) => Change::StillFailing(before.failing.max(1) + 1),
            (true, false) => Change::Failed,
            (false, true) => Change::Recovered,
            (false, false) => Change::Succeeded,
        }
    }

    /// Whether the webhook and the mail go out: `change` sends a streak's digest at its 2nd,
    /// 4th, 8th, … failed run, not one per run.
    pub fn worth_sending(self, when: NotifyWhen) -> bool {
        match when {
            NotifyWhen::Always => true,
            NotifyWhen::Failure => matches!(self, Change::Failed | Change::StillFailing(_)),
            NotifyWhen::Change => match self {
                Change::StillFailing(n) => n >= 2 && n.is_power_of_two(),
                Change::Succeeded => false,
                Change::Failed | Change::Recovered => true,
            },
        }
    }
}

/// A job that failed, as the run gathered it.
#[derive(Debug, Clone)]
pub struct FailedJob {
    pub index: usize,
    pub name: String,
    pub status: Status,
    pub outcome: String,
    pub error: Option<String>,
    /// Its captured stderr (redacted as it was drained), if it wrote any.
    pub stderr: Option<StderrOf>,
}

/// Where a failed job's stderr reads back from: its record and its run's capture folder, so
/// that it is read as every output is (`CaptureRoot::read_back`: its file, or the run's pack).
#[derive(Debug, Clone)]
pub struct StderrOf {
    pub files: crate::exec::CaptureRoot,
    pub record: Box<CompletedProcess>,
}

impl StderrOf {
    fn open(&self) -> Option<std::fs::File> {
        self.files
            .read_back(&self.record, crate::exec::Stream::Stderr)
            .ok()?
            .into_file()
    }
}

/// How a run ended, as the run knows it when it is about to end.
pub struct RunEnd<'a> {
    pub run_id: &'a str,
    pub job_file: Option<&'a str>,
    pub status: RunStatus,
    pub exit_code: i32,
    pub counts: &'a Counts,
    pub started: SystemTime,
    pub failed: &'a [FailedJob],
    pub failed_total: usize,
    /// Jobs in the plan: notification records sort after their hooks.
    pub jobs: usize,
}

/// A failed job as a notification tells of it.
pub struct Detail {
    pub name: String,
    pub status: Status,
    pub outcome: String,
    pub error: Option<String>,
    pub stderr_tail: Vec<String>,
    /// A digest's: the stderr against the job's last good run.
    pub diff: Option<Diff>,
}

pub struct Diff {
    pub run: String,
    pub text: String,
}

/// Everything a notification says of a run.
pub struct Summary {
    pub run_id: String,
    pub job_file: Option<String>,
    pub status: RunStatus,
    pub exit_code: i32,
    pub counts: Counts,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub host: String,
    pub change: Change,
    pub failed: Vec<Detail>,
    pub failed_total: usize,
}

/// The ping's `/start`, sent on a thread of its own while the jobs run.
pub fn start_ping(n: &Notify) -> Option<std::thread::JoinHandle<Sent>> {
    let url = http::join(n.ping.as_ref()?, "start");
    std::thread::Builder::new()
        .name("orchestrate-ping".into())
        .spawn(move || {
            http::send(&http::Request {
                method: "GET",
                url,
                body: None,
            })
        })
        .ok()
}

/// Sends what `n` asks for at the run's end and returns their records (sealed): the ping's
/// end always, the webhook and the mail when `when` says so.
pub fn at_end(
    n: &Notify,
    end: &RunEnd<'_>,
    db: Option<&mut RunStore>,
    started_ping: Option<std::thread::JoinHandle<Sent>>,
    mailer: &Mailer,
) -> Vec<Sealed> {
    let summary = summarize(end, db);
    let secrets = &mailer.secrets;
    let record = |channel: &str, sent: &[Sent]| -> Sealed {
        let k = NOTIFY_CHANNELS
            .iter()
            .position(|c| *c == channel)
            .unwrap_or(0);
        Sealed::new(record_of(channel, notify_index(end.jobs, k), sent), secrets)
    };
    let mut out = Vec::new();
    if let Some(url) = &n.ping {
        let mut sent: Vec<Sent> = started_ping
            .and_then(|h| h.join().ok())
            .into_iter()
            .collect();
        let failed = summary.status != RunStatus::Succeeded;
        let text = summary.to_text();
        sent.push(http::send(&http::Request {
            method: "POST",
            url: if failed {
                http::join(url, "fail")
            } else {
                url.clone()
            },
            body: Some(("text/plain; charset=utf-8", &text)),
        }));
        out.push(record("ping", &sent));
    }
    if !summary.change.worth_sending(n.when) {
        return out;
    }
    if let Some(url) = &n.webhook {
        let body = summary.to_json();
        let sent = http::send(&http::Request {
            method: "POST",
            url: url.clone(),
            body: Some(("application/json", &body)),
        });
        out.push(record("webhook", &[sent]));
    }
    if let Some(to) = &n.mail {
        let k = NOTIFY_CHANNELS
            .iter()
            .position(|c| *c == "mail")
            .unwrap_or(2);
        out.push(mailer.send(&summary.mail(to), notify_index(end.jobs, k)));
    }
    out
}

/// The run's summary, its failed jobs with their stderr's tail, and, for a streak's digest,
/// each one's stderr against its last good run.
fn summarize(end: &RunEnd<'_>, mut db: Option<&mut RunStore>) -> Summary {
    let failed = end.status != RunStatus::Succeeded;
    let streak = match (&mut db, end.job_file) {
        (Some(db), Some(jf)) => db.streak_before(jf, end.run_id).unwrap_or_default(),
        _ => Streak::default(),
    };
    let change = Change::of(failed, streak);
    let details = end
        .failed
        .iter()
        .take(message::MAX_DETAILED)
        .map(|f| {
            let tail = f
                .stderr
                .as_ref()
                .and_then(StderrOf::open)
                .map(|f| crate::report::tail_lines(f, TAIL_LINES))
                .unwrap_or_default();
            let diff = match (&mut db, end.job_file, change) {
                (Some(db), Some(jf), Change::StillFailing(_)) => {
                    diff_since_good(db, jf, end.run_id, f)
                }
                _ => None,
            };
            Detail {
                name: f.name.clone(),
                status: f.status,
                outcome: f.outcome.clone(),
                error: f.error.clone(),
                stderr_tail: tail,
                diff,
            }
        })
        .collect();
    Summary {
        run_id: end.run_id.to_string(),
        job_file: end.job_file.map(str::to_string),
        status: end.status,
        exit_code: end.exit_code,
        counts: *end.counts,
        started: end.started,
        ended: SystemTime::now(),
        host: crate::store::hostname().unwrap_or_else(|| "localhost".to_string()),
        change,
        failed: details,
        failed_total: end.failed_total,
    }
}

/// A failed job's stderr against its output in the last run where it succeeded (the
/// `orchestrate diff` of the two), cut to `MAX_DIFF_LINES`.
fn diff_since_good(db: &mut RunStore, job_file: &str, run_id: &str, f: &FailedJob) -> Option<Diff> {
    let (good_run, good) = db
        .last_good(job_file, (&f.name, Some(f.index)), run_id)
        .ok()??;
    let read = |f: Option<std::fs::File>| {
        let mut bytes = Vec::new();
        if let Some(mut f) = f {
            let _ = std::io::Read::read_to_end(&mut f, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    // The good run's record was read back from the store: its output is read only from that
    // run's own folder, whatever path the record names.
    let files = crate::exec::CaptureRoot(db.run_dir(&good_run));
    let old = read(
        files
            .read_back(&good, crate::exec::Stream::Stderr)
            .ok()?
            .into_file(),
    );
    let new = read(f.stderr.as_ref().and_then(StderrOf::open));
    let label = |id: &str| format!("{} @ {id}", f.name);
    let text = crate::text::unified_diff(&old, &new, &label(&good_run), &label(run_id));
    let mut lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() > MAX_DIFF_LINES;
    lines.truncate(MAX_DIFF_LINES);
    let mut text = lines.join("\n");
    if cut {
        text.push_str("\n(diff cut)");
    }
    Some(Diff {
        run: good_run,
        text,
    })
}

/// The record of one channel's requests: succeeded when every request went through.
fn record_of(channel: &str, index: usize, sent: &[Sent]) -> CompletedProcess {
    let name = Notify::record_name(channel);
    let ok = sent.iter().all(|s| s.ok);
    let failed: Vec<String> = sent
        .iter()
        .filter(|s| !s.ok)
        .map(|s| {
            format!(
                "{}: {}",
                s.what,
                s.failures.last().map_or("", String::as_str)
            )
        })
        .collect();
    let mut rec = CompletedProcess::not_started(
        &name,
        index,
        sent.iter().map(|s| s.what.clone()).collect(),
        if ok {
            Status::Succeeded
        } else {
            Status::Failed
        },
        format!("could not be sent: {}", failed.join("; ")),
    );
    if ok {
        rec.error = None;
    }
    rec.hook = Some(name);
    rec.attempts = sent.iter().map(|s| s.attempts).sum();
    if let Some(first) = sent.first() {
        rec.started = first.started;
    }
    rec.duration = sent.iter().map(|s| s.took).sum();
    rec.finished = SystemTime::now();
    for s in sent {
        for (i, why) in s.failures.iter().enumerate() {
            rec.notes
                .push(format!("{} attempt {}: {why}", s.what, i + 1));
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streak(previous: Option<RunStatus>, failing: u32) -> Streak {
        Streak { previous, failing }
    }

    #[test]
    fn a_streak_is_told_at_its_powers_of_two() {
        // A failed run after N - 1 failed ones.
        let sent: Vec<u32> = (1..=20)
            .map(|before| Change::of(true, streak(Some(RunStatus::Failed), before)))
            .filter(|c| c.worth_sending(NotifyWhen::Change))
            .map(|c| match c {
                Change::StillFailing(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, [2, 4, 8, 16]);
        let first = Change::of(true, streak(Some(RunStatus::Succeeded), 0));
        assert_eq!(first, Change::Failed);
        assert!(first.worth_sending(NotifyWhen::Change));
        assert_eq!(Change::of(true, streak(None, 0)), Change::Failed);
        let back = Change::of(false, streak(Some(RunStatus::Interrupted), 3));
        assert_eq!(back, Change::Recovered);
        assert!(back.worth_sending(NotifyWhen::Change) && !back.worth_sending(NotifyWhen::Failure));
        let ok = Change::of(false, streak(Some(RunStatus::Succeeded), 0));
        assert!(!ok.worth_sending(NotifyWhen::Change) && ok.worth_sending(NotifyWhen::Always));
    }
}
