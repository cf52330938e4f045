//! Background jobs' records: written by their supervisors, listed and marked seen by `status`.

use rusqlite::params;

use super::row::{RECORD, RecordRow};
use super::status_sql;
use super::{Result, RunStore, StoreError};
use crate::record::{CompletedProcess, Sealed};

/// A command that reports how background jobs ended, each keeping its own note of what it
/// reported (a bit of the `seen` column): `status` showing an end does not make `wait` miss it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Status,
    Wait,
}

/// Which background jobs `background_jobs` reads.
#[derive(Debug, Clone, Copy)]
pub enum BackgroundOf<'a> {
    /// Those still running, and those whose end this viewer has not reported yet.
    Unseen(Viewer),
    /// The newest this many, however they are doing (`status --all`).
    Newest(usize),
    /// Every one of this name.
    Named(&'a str),
    /// Every one of this run, in job-file order.
    OfRun(&'a str),
}

impl Viewer {
    /// Every viewer's bit: an end reported to all of them (the run waited for the job).
    pub const ALL_BITS: i64 = 3;

    /// The bits marked once this viewer reported an end.
    fn marks(self) -> i64 {
        match self {
            Viewer::Status => 1,
            Viewer::Wait => Self::ALL_BITS,
        }
    }

    fn bit(self) -> i64 {
        match self {
            Viewer::Status => 1,
            Viewer::Wait => 2,
        }
    }
}

impl RunStore {
    /// Writes one background job's record (its supervisor's), replacing an earlier one.
    pub fn put_background(&mut self, run_id: &str, r: &Sealed) -> Result<()> {
        self.put_background_seen(run_id, r, false)
    }

    /// As `put_background`; `seen` when its end was already reported (a run that waited).
    pub fn put_background_seen(&mut self, run_id: &str, r: &Sealed, seen: bool) -> Result<()> {
        self.put_counted(run_id, r, seen)
    }

    /// Background jobs, newest first: `(run id, record)`, those `which` says. Only
    /// `Newest` is bounded: what `wait` and `kill` look for is found however many newer
    /// background jobs the store holds.
    pub fn background_jobs(
        &mut self,
        which: BackgroundOf<'_>,
    ) -> Result<Vec<(String, CompletedProcess)>> {
        let base = format!("SELECT run_id, {RECORD} FROM records WHERE background = 1");
        let (sql, arg) = match which {
            BackgroundOf::Unseen(v) => (
                format!(
                    "{base} AND ({} OR (seen & {}) = 0) ORDER BY started_ms DESC",
                    status_sql::record_in_background(),
                    v.bit()
                ),
                None,
            ),
            BackgroundOf::Newest(n) => (format!("{base} ORDER BY started_ms DESC LIMIT {n}"), None),
            BackgroundOf::Named(job) => (
                format!("{base} AND job = ?1 ORDER BY started_ms DESC"),
                Some(job),
            ),
            BackgroundOf::OfRun(run) => (format!("{base} AND run_id = ?1 ORDER BY idx"), Some(run)),
        };
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, RecordRow::at(r, 1)?));
        let rows: Vec<(String, RecordRow)> = match arg {
            Some(a) => stmt.query_map([a], row),
            None => stmt.query_map([], row),
        }
        .map_err(self.sql_err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(self.sql_err())?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, r)| r.decode().ok().map(|r| (id, r)))
            .collect())
    }

    /// Notes that `by` reported the end of these background jobs. What `wait` reported counts
    /// as seen by `status` too; what `status` showed is still `wait`'s to collect. A read-only
    /// store cannot keep the note: the next look reports these ends again.
    /// Each job is given by its run, its index and its name (the records' key).
    pub fn mark_seen(&mut self, jobs: &[(String, usize, String)], by: Viewer) -> Result<()> {
        if self.read_only() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(|source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        })?;
        let sql = format!(
            "UPDATE records SET seen = seen | {} WHERE run_id = ?1 AND idx = ?2 AND job = ?3 AND {}",
            by.marks(),
            status_sql::record_ended()
        );
        for (run, index, job) in jobs {
            tx.execute(&sql, params![run, *index as i64, job])
                .map_err(|source| StoreError::Sql {
                    path: self.db_path.clone(),
                    source,
                })?;
        }
        tx.commit().map_err(|source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        })
    }
}
