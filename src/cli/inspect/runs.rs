//! `orchestrate runs` (recent runs) and `orchestrate history` (one job across runs): tables, or
//! JSON lines.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::InspectError;
use crate::cli::table::{short_path, write_table};
use crate::error::exit;
use crate::record::{format_duration, format_time};
use crate::store::{RunFilter, RunStore};

/// The flags of `orchestrate runs`.
pub(super) struct RunsQuery {
    pub failed: bool,
    pub job_file: Option<String>,
    pub since: Option<Duration>,
    pub limit: usize,
    pub json: bool,
}

pub(super) fn runs(
    db: &mut RunStore,
    q: RunsQuery,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let rows = db.list_runs(&RunFilter {
        failed_only: q.failed,
        job_file: q.job_file,
        since: q.since.map(|d| SystemTime::now() - d),
        limit: Some(q.limit),
    })?;
    if q.json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r).expect("rows serialize"))?;
        }
        return Ok(exit::OK);
    }
    let mut table = vec![vec![
        "RUN".to_string(),
        "JOB FILE".into(),
        "STARTED".into(),
        "DURATION".into(),
        "STATUS".into(),
        "JOBS".into(),
    ]];
    for r in &rows {
        table.push(vec![
            r.id.clone(),
            r.job_file.as_deref().map_or("-".into(), short_path),
            humantime::format_rfc3339_seconds(r.started).to_string(),
            r.duration().map_or("-".into(), format_duration),
            r.status.to_string(),
            r.counts.describe(),
        ]);
    }
    write_table(out, &table)?;
    Ok(exit::OK)
}

pub(super) fn history(
    db: &mut RunStore,
    job: &str,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let rows = db.history(job, limit)?;
    if json {
        for (id, r) in &rows {
            let v = serde_json::json!({
                "run": id, "job": r.job, "status": r.status, "returncode": r.returncode,
                "signal": r.signal, "start": format_time(r.started),
                "duration": r.duration.as_secs_f64(),
            });
            writeln!(out, "{v}")?;
        }
        return Ok(exit::OK);
    }
    let mut table = vec![vec![
        "RUN".to_string(),
        "STARTED".into(),
        "STATUS".into(),
        "OUTCOME".into(),
        "DURATION".into(),
    ]];
    for (id, r) in &rows {
        table.push(vec![
            id.clone(),
            humantime::format_rfc3339_seconds(r.started).to_string(),
            r.status.to_string(),
            r.outcome(),
            format_duration(r.duration),
        ]);
    }
    write_table(out, &table)?;
    Ok(exit::OK)
}
