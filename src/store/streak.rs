//! What a run is compared with before it is announced (`notify: when: change`): the runs of
//! its job file before it, and a job's last good run.

use rusqlite::params;

use super::row::{RECORD, RecordRow};
use super::{Result, RunStore};
use crate::record::{CompletedProcess, RunStatus, Status};

/// The ended runs of a job file before one run, as a notification compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streak {
    /// How the latest of them ended (`None`: it is the job file's first run).
    pub previous: Option<RunStatus>,
    /// How many of them, newest first, did not succeed in a row.
    pub failing: u32,
}

impl RunStore {
    /// The runs of `job_file` that ended before `run_id`, newest first, read until one that
    /// succeeded: a long streak costs its length, a short one a few rows.
    pub fn streak_before(&mut self, job_file: &str, run_id: &str) -> Result<Streak> {
        self.settle_dead_runs()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT status FROM runs
                 WHERE job_file = ?1 AND id != ?2 AND ended_ms IS NOT NULL AND status != ?3
                 ORDER BY started_ms DESC, id DESC",
            )
            .map_err(self.sql_err())?;
        let mut rows = stmt
            .query(params![job_file, run_id, RunStatus::Running.as_str()])
            .map_err(self.sql_err())?;
        let mut streak = Streak::default();
        while let Some(row) = rows.next().map_err(self.sql_err())? {
            let name: String = row.get(0).map_err(self.sql_err())?;
            let status = RunStatus::parse(&name).unwrap_or(RunStatus::Failed);
            streak.previous.get_or_insert(status);
            if status == RunStatus::Succeeded {
                break;
            }
            streak.failing += 1;
        }
        Ok(streak)
    }

    /// The record of `job` in the latest run of `job_file` before `run_id` where it
    /// succeeded, with that run's id.
    pub fn last_good(
        &mut self,
        job_file: &str,
        (job, index): (&str, Option<usize>),
        run_id: &str,
    ) -> Result<Option<(String, CompletedProcess)>> {
        let runs = "SELECT id, job_file FROM runs WHERE job_file = ?1 AND id != ?2
                    ORDER BY started_ms DESC, id DESC";
        let mut row: Option<(String, RecordRow)> = None;
        self.run_by_run(
            (runs, params![job_file, run_id]),
            (job, index),
            &format!("status, {RECORD}"),
            |id, _, r| {
                if r.get::<_, String>(0)? == Status::Succeeded.as_str() {
                    row = Some((id, RecordRow::at(r, 1)?));
                }
                Ok(row.is_none())
            },
        )?;
        Ok(row.and_then(|(id, r)| r.decode().ok().map(|rec| (id, rec))))
    }
}
