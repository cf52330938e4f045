//! A job's durations over its past runs, for the sparklines of `orchestrate report`: the
//! records of the same job name in runs of the same job file, up to a given run.

use std::time::Duration;

use rusqlite::params;

use super::{Result, RunStore};
use crate::record::Status;

/// One past record of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRecord {
    pub run_id: String,
    pub duration: Duration,
    pub status: Status,
}

impl RunStore {
    /// `job`'s last `limit` records of a finished attempt in runs of `job_file` that started no later than
    /// run `upto`, oldest first (`upto`'s own among them).
    pub fn job_trend(
        &mut self,
        job_file: &str,
        (job, index): (&str, Option<usize>),
        upto: &str,
        limit: usize,
    ) -> Result<Vec<PastRecord>> {
        // Jobs that never started say nothing of how long the job takes.
        let left_out =
            |s: Status| s.is_running() || matches!(s, Status::Skipped | Status::NotNeeded);
        let runs = "SELECT id, job_file FROM runs
                    WHERE job_file = ?1 AND started_ms <= (SELECT started_ms FROM runs WHERE id = ?2)
                    ORDER BY started_ms DESC, id DESC";
        let mut rows: Vec<PastRecord> = Vec::new();
        let columns = "duration_ms, status, hook IS NOT NULL";
        self.run_by_run(
            (runs, params![job_file, upto]),
            (job, index),
            columns,
            |run_id, _, r| {
                let status = Status::parse(&r.get::<_, String>(1)?).unwrap_or(Status::Failed);
                if !r.get::<_, bool>(2)? && !left_out(status) {
                    rows.push(PastRecord {
                        run_id,
                        duration: Duration::from_millis(r.get::<_, i64>(0)?.max(0) as u64),
                        status,
                    });
                }
                Ok(rows.len() < limit)
            },
        )?;
        rows.reverse();
        Ok(rows)
    }
}
