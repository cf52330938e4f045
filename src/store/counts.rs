//! A run's counts (jobs by status, hooks left out): counted from its records at its end, and
//! moved one job at a time by a record written alone after it (`recount_one`).

use rusqlite::{OptionalExtension, params};

use super::{Result, RunStore};
use crate::record::{Counts, RunStatus, Status};

impl RunStore {
    /// A run's jobs counted by status, as they are now: hooks and notifications are not jobs,
    /// and never count.
    pub fn count_records(&mut self, run_id: &str) -> Result<Counts> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT status, COUNT(*) FROM records WHERE run_id = ?1 AND hook IS NULL
                 GROUP BY status",
            )
            .map_err(self.sql_err())?;
        let rows: Vec<(String, i64)> = stmt
            .query_map(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        let mut counts = Counts::default();
        for (name, n) in rows {
            // A status this version does not know is counted as a failure, not dropped.
            counts.add_n(Status::parse(&name).unwrap_or(Status::Failed), n as usize);
        }
        Ok(counts)
    }

    /// Recounts a run from its records, and sets the status of an ended run from the counts
    /// (`RunStatus::ended`): a background job that fails after its run ended fails the run. A
    /// failed run never becomes succeeded again.
    pub fn recount(&mut self, run_id: &str) -> Result<()> {
        // One transaction: a background job's end written meanwhile (`put_counted`) either
        // is among the records counted, or comes after and moves the counts written here.
        self.in_write(|s| {
            let counts = s.count_records(run_id)?;
            s.store_counts(run_id, &counts)
        })
    }

    /// Moves one job of run `run_id` from `before` to `after` in the run's counts (`None`: not
    /// counted, no record or a hook's), where the run was counted (it ended). A run not counted
    /// yet (still going, or killed) is counted from its records by whoever reads it
    /// (`live_counts`) and by its own end. A record written alone (a background job's end, a
    /// survivor's) so costs two key lookups, not a read of every row of its run.
    pub(super) fn recount_one(
        &mut self,
        run_id: &str,
        before: Option<Status>,
        after: Option<Status>,
    ) -> Result<()> {
        let stored: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT counts FROM runs WHERE id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?;
        let Some(mut counts) = stored
            .flatten()
            .and_then(|c| serde_json::from_str::<Counts>(&c).ok())
        else {
            return Ok(());
        };
        if before == after {
            return Ok(());
        }
        if let Some(b) = before {
            counts.remove(b);
        }
        if let Some(a) = after {
            counts.add(a);
        }
        self.store_counts(run_id, &counts)
    }

    fn store_counts(&mut self, run_id: &str, counts: &Counts) -> Result<()> {
        let json = serde_json::to_string(&counts).expect("counts serialize");
        let ok = (counts.total() - counts.failed()) as i64;
        let ended = RunStatus::ended(false, counts);
        self.conn
            .execute(
                "UPDATE runs SET counts = ?2, succeeded = ?3, failed = ?4,
                   status = CASE WHEN status = ?5 THEN ?6 ELSE status END
                 WHERE id = ?1",
                params![
                    run_id,
                    json,
                    ok,
                    counts.failed() as i64,
                    RunStatus::Succeeded.as_str(),
                    ended.as_str()
                ],
            )
            .map_err(self.sql_err())?;
        Ok(())
    }
}
