//! `orchestrate runs` (recent runs) and `orchestrate history` (one job across runs): tables, or
//! JSON lines.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::InspectError;
use crate::cli::table::{short_path, write_table};
use crate::error::exit;
use crate::record::format_duration;
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
        // The records in full, as `show --json` gives them.
        let root = db.root().to_path_buf();
        for (id, r) in &rows {
            let inherited = db.run_env_keys(id)?;
            let outputs = super::read_back_both(&root, id, r)?;
            crate::report::write_json_record(out, id, r, &inherited, outputs)?;
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
