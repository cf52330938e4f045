//! The end of a run in the store: its status and counts, the job file's history pruned, and
//! what the store could not take kept elsewhere, never dropped.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::plan::Plan;
use crate::record::Sealed;
use crate::store::{self, RunStore};

/// How a run ended, as the store keeps it.
pub(super) struct RunEnd<'a> {
    pub(super) run_id: &'a str,
    /// Stopped by a signal; otherwise the store tells its status from its records' counts.
    pub(super) interrupted: bool,
    /// A job failed, as the run counted them (the store may have missed some records).
    pub(super) failed: bool,
    /// The plan that ran: its retention, and whether its durations are kept.
    pub(super) plan: &'a Plan,
    pub(super) job_file: Option<&'a str>,
    /// Its last record's end: the one end of a run's duration (`RunRow::duration`).
    pub(super) ended: SystemTime,
}

/// What the run could not record while it ran.
pub(super) struct Lost {
    /// Records the store refused.
    pub(super) unrecorded: Vec<Sealed>,
    /// Jobs whose output could not be kept whole.
    pub(super) output_lost: usize,
}

/// Records the run's end and keeps what was lost; true if anything could not be recorded
/// (the run then exits 70).
pub(super) fn record_end(
    db: Option<RunStore>,
    spill_root: Option<&Path>,
    end: &RunEnd,
    lost: Lost,
    warnings: &mut Vec<String>,
) -> bool {
    let mut store_lost = !lost.unrecorded.is_empty() || lost.output_lost > 0;
    if lost.output_lost > 0 {
        warnings.push(format!(
            "the output of {} job(s) could not be kept whole (a full disk?); `orchestrate show --job NAME` says what was lost",
            lost.output_lost
        ));
    }
    if !lost.unrecorded.is_empty()
        && let Some(root) = spill_root
    {
        warnings.push(keep_unrecorded(root, end.run_id, &lost.unrecorded));
    }
    if let Some(s) = db {
        store_lost |= !finish_in_store(s, end, warnings);
    }
    store_lost
}

/// Keeps records the store did not take in a spill file, which the next run folds into the
/// history; if even that cannot be written, they go to stderr as JSON lines, to be kept by
/// whoever reads it (cron mails it). Returns the warning to print.
fn keep_unrecorded(root: &std::path::Path, run_id: &str, recs: &[crate::record::Sealed]) -> String {
    match store::spill(root, run_id, recs) {
        Ok(path) => format!(
            "could not record {} finished jobs in the store; they are kept in {} and will be added to the history by the next run",
            recs.len(),
            path.display()
        ),
        Err(e) => {
            let mut err = std::io::stderr().lock();
            for r in recs {
                let _ = writeln!(
                    err,
                    "{}",
                    serde_json::to_string(&**r).expect("records serialize")
                );
            }
            format!(
                "could not record {} finished jobs in the store, nor keep them in a spill file ({e}); their records are printed above as JSON lines",
                recs.len()
            )
        }
    }
}

/// Records the end of the run; false if that failed (a pruning failure is only a warning).
fn finish_in_store(mut s: RunStore, end: &RunEnd, warnings: &mut Vec<String>) -> bool {
    let ended = s.finish_run(end.run_id, end.interrupted, end.failed, end.ended);
    if let Err(e) = &ended {
        warnings.push(format!("could not record the end of the run: {e}"));
    }
    if let (true, Some(job_file)) = (super::history::kept(end.plan), end.job_file)
        && let Err(e) = s.keep_durations(end.run_id, job_file)
    {
        warnings.push(format!(
            "could not keep the jobs' durations for the next runs: {e}"
        ));
    }
    // Retention: this job file's history, by its own limits or the default.
    let keep = end.plan.retention.unwrap_or(store::DEFAULT_RETENTION);
    if let Err(e) = s.gc(&keep, end.job_file) {
        warnings.push(format!("could not prune old runs: {e}"));
    }
    ended.is_ok()
}
