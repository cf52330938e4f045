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

/// `orchestrate history JOB`: with a JOB FILE column when the runs listed are of more than
/// one job file, since a job is known by its job file and its name.
pub(super) fn history(
    db: &mut RunStore,
    job: &str,
    job_file: Option<&str>,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let rows = db.job_history(job, job_file, limit)?;
    if json {
        // The records in full, as `show --json` gives them.
        let root = db.root().to_path_buf();
        for h in &rows {
            let inherited = db.run_env_keys(&h.run)?;
            let outputs = super::read_back_both(&root, &h.run, &h.record)?;
            crate::report::write_json_record(out, &h.run, &h.record, &inherited, outputs)?;
        }
        return Ok(exit::OK);
    }
    let files: std::collections::HashSet<_> = rows.iter().map(|h| &h.job_file).collect();
    let with_file = files.len() > 1;
    let mut head = vec!["RUN".to_string()];
    if with_file {
        head.push("JOB FILE".into());
    }
    head.extend(["STARTED", "STATUS", "OUTCOME", "DURATION"].map(String::from));
    let mut table = vec![head];
    for h in &rows {
        let r = &h.record;
        let mut row = vec![h.run.clone()];
        if with_file {
            row.push(h.job_file.as_deref().map_or("-".into(), short_path));
        }
        row.extend([
            humantime::format_rfc3339_seconds(r.started).to_string(),
            r.status.to_string(),
            r.outcome(),
            format_duration(r.duration),
        ]);
        table.push(row);
    }
    write_table(out, &table)?;
    Ok(exit::OK)
}
