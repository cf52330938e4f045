//! Jobs that outlived their run: a run killed outright (kill -9, the OOM killer) leaves its
//! running jobs alive under init, and their records say `running`. The next run of the job
//! file finds them here before it starts anything; records whose process is gone are settled
//! as interrupted.

use rusqlite::params;

use super::liveness::hostname;
use super::row::{RecordRow, record_columns};
use super::status_sql;
use super::{Result, RunStore};
use crate::record::{CompletedProcess, Sealed, Status};

/// A job still running from a run that can no longer see it end.
#[derive(Debug, Clone)]
pub struct Survivor {
    pub run_id: String,
    pub record: CompletedProcess,
}

impl Survivor {
    /// The process group to signal: the job's process leads it.
    pub fn pgid(&self) -> Option<u32> {
        self.record.pid.filter(|&p| p > 1)
    }

    /// Whether any process of the job may still run.
    pub fn may_live(&self) -> bool {
        still_running(&self.record)
    }
}

/// A running record's job may still run: its own process group, or (a background job) its
/// supervisor.
fn still_running(rec: &CompletedProcess) -> bool {
    rec.process.as_ref().is_some_and(|p| p.group_may_live())
        || (rec.status == Status::Background
            && rec.supervisor.as_ref().is_some_and(|s| s.may_live()))
}

impl RunStore {
    /// Jobs of `job_file` still running on this host from runs that ended without them (the
    /// run was killed), and, with `resumed`, the jobs of that run still running in any way
    /// (background jobs too): resuming it would start a second copy of each.
    pub fn survivors(&mut self, job_file: &str, resumed: Option<&str>) -> Result<Vec<Survivor>> {
        self.settle_dead_runs()?;
        // Each half is read through a partial index (`records_running`, `records_background`),
        // which holds only the records still running: one query with both conditions under an
        // OR read every record of the store at each run's start (so would an ORDER BY here:
        // SQLite then reads the key's index to merge the halves in order, and they are sorted
        // below instead). A `background` record is a background job's
        // (`ends::running_background`).
        let here = "u.job_file = ?1 AND (u.host IS NULL OR u.host = ?2)";
        let sql = format!(
            "SELECT r.run_id, r.idx, {cols} FROM records r JOIN runs u ON u.id = r.run_id
             WHERE {here} AND r.status = '{running}'
               AND ((NOT u.{run_live} AND r.background = 0) OR r.run_id = ?3)
             UNION ALL
             SELECT r.run_id, r.idx, {cols} FROM records r JOIN runs u ON u.id = r.run_id
             WHERE {here} AND r.background = 1 AND r.status = '{background}' AND r.run_id = ?3",
            cols = record_columns("r"),
            run_live = status_sql::run_running(),
            running = Status::Running.as_str(),
            background = Status::Background.as_str(),
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let mut rows: Vec<(String, i64, RecordRow)> = stmt
            .query_map(params![job_file, hostname(), resumed], |r| {
                Ok((r.get(0)?, r.get(1)?, RecordRow::at(r, 2)?))
            })
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(rows
            .into_iter()
            .filter_map(|(run_id, _, row)| {
                let record = row.decode().ok()?;
                still_running(&record).then_some(Survivor { run_id, record })
            })
            .collect())
    }

    /// Records the end of a survivor that a later run waited for or stopped: interrupted (its
    /// exit status is nobody's to collect: it was orphaned), with `note` saying what
    /// happened. A background job's supervisor, while it lives, records its own end.
    pub fn end_survivor(&mut self, s: &Survivor, note: String) -> Result<()> {
        // A live supervisor records the end itself. Once it is known dead, what is stored
        // is read again: it may have recorded the end before it died.
        if s.record.supervisor.as_ref().is_some_and(|p| p.may_live()) {
            return Ok(());
        }
        let mut rec = self.record_at(&s.run_id, s.record.index, &s.record.job)?;
        if !rec.status.is_running() {
            return Ok(());
        }
        rec.status = Status::Interrupted;
        rec.notes.push(note);
        rec.finished = std::time::SystemTime::now();
        rec.duration = rec.finished.duration_since(rec.started).unwrap_or_default();
        // Read back from the store, and the note names only runs and pids.
        self.put_counted(&s.run_id, &Sealed::trusted(rec), false)
    }

    /// Running records of runs that ended without them, whose process is gone, become
    /// interrupted: how the job ended is unknown (orchestrate was killed, or the machine
    /// restarted), and nothing is left to wait for.
    pub(super) fn settle_dead_jobs(&mut self) -> Result<()> {
        let sql = format!(
            "SELECT r.run_id, {} FROM records r JOIN runs u ON u.id = r.run_id
             WHERE r.background = 0 AND r.status = '{}' AND NOT u.{}",
            record_columns("r"),
            Status::Running.as_str(),
            status_sql::run_running()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let rows: Vec<(String, RecordRow)> = stmt
            .query_map([], |r| Ok((r.get(0)?, RecordRow::at(r, 1)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        for (run_id, row) in rows {
            let Ok(record) = row.decode() else {
                continue;
            };
            if still_running(&record) {
                continue;
            }
            let s = Survivor { run_id, record };
            self.end_survivor(
                &s,
                "was running when its run was killed; how it ended is unknown".into(),
            )?;
        }
        Ok(())
    }
}
