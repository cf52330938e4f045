//! `orchestrate report RUN [-o FILE]`: gathers what the page shows (records, their output
//! through [`read_back`](super::read_back), each job's past durations) and writes it
//! (`report::write_html`).

use std::io::Write;
use std::path::Path;

use super::InspectError;
use super::export::shown;
use crate::error::exit;
use crate::exec::Stream;
use crate::report::{self, PageJob, PageRun, PastRun, Shown};
use crate::store::RunStore;

/// Past runs in a job's sparkline.
const TREND_RUNS: usize = 30;
/// Output the whole page holds at most; jobs past it get a note instead of their output.
const PAGE_OUTPUT: u64 = 32 << 20;

pub(super) fn report(
    db: &mut RunStore,
    run: &str,
    path: Option<&Path>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let id = db.resolve_run(run)?;
    let row = db.run(&id)?;
    let root = db.root().to_path_buf();
    let mut budget = PAGE_OUTPUT;
    let mut jobs = Vec::new();
    for rec in db.records(&id)? {
        let [stdout, stderr] = [Stream::Stdout, Stream::Stderr].map(|s| {
            if budget == 0 {
                return Shown::note(
                    s.of(&rec).bytes,
                    format!("not in this page (it holds {} MiB of output at most): `orchestrate logs` prints it", PAGE_OUTPUT >> 20),
                );
            }
            let got = shown(&root, &id, &rec, s, report::KEPT_BYTES.min(budget));
            budget = budget.saturating_sub(got.text.len() as u64);
            got
        });
        let history = match (&row.job_file, &rec.hook) {
            (Some(jf), None) => db
                .job_trend(jf, (&rec.job, Some(rec.index)), &id, TREND_RUNS)?
                .into_iter()
                .map(|p| PastRun {
                    duration: p.duration,
                    status: p.status,
                    this: p.run_id == id,
                })
                .collect(),
            _ => Vec::new(),
        };
        jobs.push(PageJob {
            rec,
            stdout,
            stderr,
            history,
        });
    }
    let page = PageRun {
        id: id.clone(),
        job_file: row.job_file.clone(),
        started: row.started,
        ended: row.ended,
        status: row.status.to_string(),
        counts: row.counts.describe(),
    };
    match path {
        None => report::write_html(out, &page, &jobs)?,
        Some(p) => write_file(p, &page, &jobs)?,
    }
    Ok(exit::OK)
}

/// Writes the page to `path` (made 0600, as it holds the jobs' output), replacing it whole
/// only once it is written.
fn write_file(path: &Path, page: &PageRun, jobs: &[PageJob]) -> Result<(), InspectError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_else(|| "report".into())));
    let fail = |e: std::io::Error| {
        InspectError::Usage(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let mut w = std::io::BufWriter::new(file);
    report::write_html(&mut w, page, jobs)
        .and_then(|_| w.flush())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
}
