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
        job: &str,
        upto: &str,
        limit: usize,
    ) -> Result<Vec<PastRecord>> {
        // Jobs that never started say nothing of how long the job takes.
        let left_out = Status::sql_list(|s| {
            s.is_running() || matches!(s, Status::Skipped | Status::NotNeeded)
        });
        let sql = format!(
            "SELECT r.run_id, r.duration_ms, r.status
             FROM runs u CROSS JOIN records r ON r.run_id = u.id AND r.job = ?1
             WHERE u.job_file = ?2 AND r.hook IS NULL AND r.status NOT IN ({left_out})
               AND u.started_ms <= (SELECT started_ms FROM runs WHERE id = ?3)
             ORDER BY u.started_ms DESC, u.id DESC LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.sql_err())?;
        let mut rows: Vec<PastRecord> = stmt
            .query_map(params![job, job_file, upto, limit as i64], |r| {
                Ok(PastRecord {
                    run_id: r.get(0)?,
                    duration: Duration::from_millis(r.get::<_, i64>(1)?.max(0) as u64),
                    status: Status::parse(&r.get::<_, String>(2)?).unwrap_or(Status::Failed),
                })
            })
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        rows.reverse();
        Ok(rows)
    }
}
