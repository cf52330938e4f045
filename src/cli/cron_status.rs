//! `orchestrate cron status`: each installed line checked against what happened. Cron says
//! nothing when it does not run a job (the machine was off, the daemon stopped, the line was
//! broken): the line's log has a line for every time cron started the job file, so a due
//! time without one is a missed run.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::table::write_table;
use crate::cron::{Installed, Schedule};
use crate::error::exit;
use crate::record::RunStatus;
use crate::store::{self, RunFilter, RunStore};

/// How late cron may start a job and still count as having started it.
const LATE: Duration = Duration::from_secs(600);
/// How early a start may be logged before its due time (clocks drift).
const EARLY: Duration = Duration::from_secs(5);
/// Due times this recent are not judged yet.
const SETTLING: Duration = Duration::from_secs(90);
/// How far back missed runs are looked for.
const LOOK_BACK: Duration = Duration::from_secs(31 * 24 * 3600);
/// How much of a log's end is read.
const LOG_TAIL: u64 = 4 << 20;

#[derive(Serialize)]
struct LineStatus {
    job_file: String,
    schedule: String,
    log: Option<String>,
    last_run: Option<String>,
    #[serde(with = "opt_time")]
    last_started: Option<SystemTime>,
    last_status: Option<RunStatus>,
    #[serde(with = "opt_time")]
    next_due: Option<SystemTime>,
    #[serde(serialize_with = "times")]
    missed: Vec<SystemTime>,
    refused: usize,
    failing_runs: usize,
    problems: Vec<String>,
}

pub(super) fn cmd_cron_status(json: bool, out: &mut dyn Write) -> i32 {
    let text = match crate::cron::read_crontab() {
        Ok(t) => t,
        Err(e) => return super::report_error(&e, exit::SOFTWARE),
    };
    let lines = crate::cron::parse_all(&text);
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "no orchestrate line in your crontab (add one with `orchestrate cron FILE --schedule ... --install`)"
        );
        return exit::OK;
    }
    let now = SystemTime::now();
    let all: Vec<LineStatus> = lines.iter().map(|l| line_status(l, now)).collect();
    let shown = if json {
        all.iter()
            .try_for_each(|s| {
                serde_json::to_writer(&mut *out, s)?;
                writeln!(out).map_err(serde_json::Error::io)
            })
            .map_err(std::io::Error::from)
    } else {
        show(&all, out)
    };
    if let Err(e) = shown {
        return super::report_error(&e, exit::SOFTWARE);
    }
    if all.iter().any(|s| !s.problems.is_empty()) {
        exit::JOB_FAILED
    } else {
        exit::OK
    }
}

fn line_status(l: &Installed, now: SystemTime) -> LineStatus {
    let mut s = LineStatus {
        job_file: l.job_file.display().to_string(),
        schedule: l.schedule.clone(),
        log: l.log.as_ref().map(|p| p.display().to_string()),
        last_run: None,
        last_started: None,
        last_status: None,
        next_due: None,
        missed: Vec::new(),
        refused: 0,
        failing_runs: 0,
        problems: Vec::new(),
    };
    let schedule = match Schedule::parse(&l.schedule) {
        Ok(sch) => sch,
        Err(e) => {
            s.problems.push(format!("the schedule cannot be read: {e}"));
            return s;
        }
    };
    s.next_due = schedule.next_after(now);
    if !l.job_file.exists() {
        s.problems.push(format!(
            "the job file is gone: every start fails; remove the line with `orchestrate cron {} --remove`",
            l.job_file.display()
        ));
    }
    history(l, &mut s);
    match l.log.as_deref().map(log_starts) {
        Some(Some(starts)) => missed(&schedule, &starts, now, &mut s),
        _ => s.problems.push(
            "the line has no log to tell when cron started it; reinstall it with `orchestrate cron --install`".into(),
        ),
    }
    s
}

/// The last run of the job file in its store, and how many runs in a row have failed.
fn history(l: &Installed, s: &mut LineStatus) {
    let runs = store::default_state_dir(l.state_dir.as_deref())
        .and_then(|root| RunStore::open_existing(&root))
        .and_then(|mut db| {
            db.list_runs(&RunFilter {
                job_file: Some(l.job_file.display().to_string()),
                limit: Some(100),
                ..Default::default()
            })
        });
    let runs = match runs {
        Ok(r) => r,
        Err(store::StoreError::Empty(_)) => Vec::new(),
        Err(e) => {
            s.problems.push(format!("its history cannot be read: {e}"));
            return;
        }
    };
    let ended: Vec<_> = runs
        .iter()
        .filter(|r| r.status != RunStatus::Running)
        .collect();
    if let Some(last) = runs.first() {
        s.last_run = Some(last.id.clone());
        s.last_started = Some(last.started);
        s.last_status = Some(last.status);
    }
    s.failing_runs = ended
        .iter()
        .take_while(|r| r.status != RunStatus::Succeeded)
        .count();
    if let Some(first_bad) = ended.get(s.failing_runs.saturating_sub(1))
        && s.failing_runs > 0
    {
        s.problems.push(format!(
            "failing for {} run{} in a row, since {}",
            s.failing_runs,
            if s.failing_runs == 1 { "" } else { "s" },
            humantime::format_rfc3339_seconds(first_bad.started)
        ));
    }
}

/// When cron started the job file, from its log: `(time, refused)` for each start, and when
/// the log was made (the line's installation).
struct Starts {
    created: Option<SystemTime>,
    times: Vec<(SystemTime, bool)>,
}

fn log_starts(path: &Path) -> Option<Starts> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    let from = meta.len().saturating_sub(LOG_TAIL);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.take(LOG_TAIL).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let times = text
        .lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            let rest = rest.strip_prefix("orchestrate: run ")?;
            let t = humantime::parse_rfc3339(stamp).ok()?;
            Some((t, rest.contains(" refused (exit ")))
        })
        .collect();
    Some(Starts {
        created: meta.created().ok(),
        times,
    })
}

/// Due times since the line was installed (at most `LOOK_BACK`) that cron never started.
fn missed(schedule: &Schedule, starts: &Starts, now: SystemTime, s: &mut LineStatus) {
    let first_seen = starts.times.first().map(|(t, _)| *t);
    let since = [starts.created, first_seen].into_iter().flatten().min();
    let Some(since) = since.map(|t| t.max(now - LOOK_BACK)) else {
        return;
    };
    s.refused = starts
        .times
        .iter()
        .filter(|(t, refused)| *refused && *t >= since)
        .count();
    // A start belongs to a due time if it came at most a few seconds before it (clocks) and
    // before the next one (or `LATE` after it, whichever is first).
    let started = |due: SystemTime, next: Option<SystemTime>| {
        let until = next.map_or(due + LATE, |n| n.min(due + LATE));
        starts
            .times
            .iter()
            .any(|(t, _)| *t + EARLY >= due && *t < until)
    };
    let due = schedule.due_between(since, now - SETTLING);
    let next = schedule.due_between(since, now);
    s.missed = due
        .iter()
        .enumerate()
        .filter(|(i, d)| !started(**d, next.get(i + 1).copied()))
        .map(|(_, d)| *d)
        .collect();
    if let Some(last) = s.missed.last() {
        s.problems.push(format!(
            "{} missed run{}, the last due {}: cron did not start it (was the machine off, or cron stopped?)",
            s.missed.len(),
            if s.missed.len() == 1 { "" } else { "s" },
            humantime::format_rfc3339_seconds(*last)
        ));
    }
    if s.refused > 0 {
        s.problems.push(format!(
            "{} start{} refused (exit 75: the previous run still held the lock, or its jobs still ran)",
            s.refused,
            if s.refused == 1 { "" } else { "s" }
        ));
    }
}

fn show(all: &[LineStatus], out: &mut dyn Write) -> std::io::Result<()> {
    let time = |t: Option<SystemTime>| {
        t.map_or("-".to_string(), |t| {
            humantime::format_rfc3339_seconds(t).to_string()
        })
    };
    let mut table = vec![
        [
            "JOB FILE", "SCHEDULE", "LAST RUN", "STATUS", "NEXT DUE", "MISSED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in all {
        table.push(vec![
            s.job_file.clone(),
            s.schedule.clone(),
            time(s.last_started),
            s.last_status
                .map_or("never ran".into(), |st| st.to_string()),
            time(s.next_due),
            s.missed.len().to_string(),
        ]);
    }
    write_table(out, &table)?;
    for s in all.iter().filter(|s| !s.problems.is_empty()) {
        writeln!(out, "\n{}:", s.job_file)?;
        for p in &s.problems {
            writeln!(out, "  - {p}")?;
        }
    }
    Ok(())
}

fn times<S: serde::Serializer>(ts: &[SystemTime], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        ts.iter()
            .map(|t| humantime::format_rfc3339_seconds(*t).to_string()),
    )
}

mod opt_time {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
            None => s.serialize_none(),
        }
    }
}
