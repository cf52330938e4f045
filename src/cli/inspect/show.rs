//! `orchestrate show`: one run's records as a table, one job's record in full, or JSON lines.

use std::io::Write;

use super::{InspectError, read_back_both};
use crate::cli::table;
use crate::error::exit;
use crate::record::format_duration;
use crate::report;
use crate::store::{RunStore, ShowRow};

pub(super) fn show(
    db: &mut RunStore,
    run: Option<&str>,
    job: Option<&str>,
    job_file: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let id = match job {
        Some(job) => super::run_of_job(db, job, run, job_file)?,
        None => db.resolve_run(run.unwrap_or("last"))?,
    };
    let inherited = db.run_env_keys(&id)?;
    if let Some(job) = job {
        let rec = db.record(&id, job)?;
        if json {
            let outputs = read_back_both(db.root(), &id, &rec)?;
            report::write_json_record(out, &id, &rec, &inherited, outputs)?;
        } else {
            write!(
                out,
                "run         {id}\n{}",
                report::record_detail(&rec, &inherited)
            )?;
        }
        return Ok(exit::OK);
    }
    if json {
        let root = db.root().to_path_buf();
        // `each_record` stops at the first error; one that is not the reader going away (an
        // output that cannot be read back) is the command's error, never a short listing.
        let mut failed = None;
        db.each_record(&id, |r| {
            read_back_both(&root, &id, &r)
                .and_then(|outputs| report::write_json_record(out, &id, &r, &inherited, outputs))
                .map_err(|e| {
                    let kind = e.kind();
                    failed = Some(e);
                    std::io::Error::from(kind)
                })
        })?;
        if let Some(e) = failed {
            return Err(InspectError::Io(e));
        }
        return Ok(exit::OK);
    }
    write_run_table(db, &id, out)?;
    Ok(exit::OK)
}

/// The cells of a record's row in the `show` table.
fn show_cells(r: &ShowRow) -> Vec<String> {
    vec![
        // A hook's record is no job: its place in the run is no job number.
        if r.hook {
            "hook".into()
        } else {
            r.index.to_string()
        },
        r.job.clone(),
        report::status_text(&r.status, r.flaky, r.carried_from.is_some()),
        r.outcome.clone(),
        format_duration(r.duration),
        r.stdout_bytes.to_string(),
        r.stderr_bytes.to_string(),
    ]
}

/// The run's header line, then a row for each job with a record.
fn write_run_table(db: &mut RunStore, id: &str, out: &mut dyn Write) -> Result<(), InspectError> {
    let row = db.run(id)?;
    writeln!(
        out,
        "run {}  {}  started {}  {}  {}",
        row.id,
        row.job_file.as_deref().unwrap_or("-"),
        humantime::format_rfc3339_seconds(row.started),
        row.duration().map_or("-".into(), format_duration),
        row.status
    )?;
    let header: Vec<String> = [
        "#", "JOB", "STATUS", "OUTCOME", "DURATION", "STDOUT", "STDERR",
    ]
    .map(String::from)
    .into();
    // Two passes over the records: the widths of the widest cells, then the rows (a run of
    // 100,000 jobs is never held in memory whole).
    let mut widths = Vec::new();
    table::widen(&mut widths, &header);
    db.each_row(id, |r| {
        table::widen(&mut widths, &show_cells(&r));
        Ok(())
    })?;
    writeln!(out, "{}", table::table_line(&header, &widths))?;
    let mut shown = 0u64;
    db.each_row(id, |r| {
        shown += u64::from(!r.hook);
        writeln!(out, "{}", table::table_line(&show_cells(&r), &widths))
    })?;
    if shown < row.total {
        writeln!(
            out,
            "({} of {} jobs have no record{})",
            row.total - shown,
            row.total,
            if row.status == crate::record::RunStatus::Running {
                ": still running"
            } else {
                ": they were in flight when the run ended"
            }
        )?;
    }
    Ok(())
}
