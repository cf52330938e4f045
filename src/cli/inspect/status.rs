//! `orchestrate status`: background jobs that are running or ended since you last looked (or
//! all of them), as a table or JSON lines; the ended ones shown are then marked seen.

use std::io::Write;
use std::time::SystemTime;

use super::InspectError;
use crate::cli::background::{RECENT, background_now};
use crate::cli::table::write_table;
use crate::error::exit;
use crate::record::{CompletedProcess, Status, format_duration, format_time};
use crate::store::{BackgroundOf, RunStore, Viewer};

pub(super) fn status(
    db: &mut RunStore,
    all: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let which = if all {
        BackgroundOf::Newest(RECENT)
    } else {
        BackgroundOf::Unseen(Viewer::Status)
    };
    let jobs = background_now(db, which)?;
    if json {
        for (run, rec) in &jobs {
            let v = serde_json::json!({
                "run": run, "job": rec.job, "pid": rec.pid, "status": rec.status,
                "returncode": rec.returncode, "signal": rec.signal,
                "start": format_time(rec.started),
                "end": (rec.status != Status::Background).then(|| format_time(rec.finished)),
                "error": rec.error,
            });
            writeln!(out, "{v}")?;
        }
    } else if jobs.is_empty() {
        none_to_show(out)?;
    } else {
        write_status_table(&jobs, out)?;
    }
    let ended: Vec<(String, usize, String)> = jobs
        .iter()
        .filter(|(_, r)| r.status != Status::Background)
        .map(|(run, r)| (run.clone(), r.index, r.job.clone()))
        .collect();
    db.mark_seen(&ended, Viewer::Status)?;
    Ok(exit::OK)
}

/// The line `status` prints when it has no job to show.
pub(super) fn none_to_show(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "no background jobs are running, and none ended since you last looked"
    )
}

fn write_status_table(
    jobs: &[(String, CompletedProcess)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut table = vec![vec![
        "RUN".to_string(),
        "JOB".into(),
        "PID".into(),
        "STARTED".into(),
        "STATE".into(),
    ]];
    for (run, r) in jobs {
        let state = match r.status {
            Status::Background => format!(
                "running for {}",
                format_duration(
                    SystemTime::now()
                        .duration_since(r.started)
                        .unwrap_or_default()
                )
            ),
            Status::Lost if r.process.as_ref().is_some_and(|p| p.group_may_live()) => {
                "lost: its supervisor is gone, the job still runs".to_string()
            }
            Status::Lost => "lost (its supervisor is gone)".to_string(),
            st if r.returncode.is_none() && r.signal.is_none() => st.to_string(),
            st => format!("{st}, {}", r.outcome()),
        };
        table.push(vec![
            run.clone(),
            r.job.clone(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            humantime::format_rfc3339_seconds(r.started).to_string(),
            state,
        ]);
    }
    write_table(out, &table)
}
