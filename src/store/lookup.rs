//! One job's record, or its status, looked up in a run: by its whole key (one lookup), or by
//! its name.

use rusqlite::{OptionalExtension, params};

use super::records::not_found_job;
use super::row::{RECORD, RecordRow};
use super::{Result, RunStore, StoreError};
use crate::record::{CompletedProcess, Status};

impl RunStore {
    /// One job's record in a run by its whole key (index and name): one key lookup, where
    /// `record` walks the run's key entries for the name. Callers that hold a record of the
    /// job read it again so.
    pub fn record_at(&mut self, run_id: &str, index: usize, job: &str) -> Result<CompletedProcess> {
        let key = params![run_id, index as i64, job];
        match self.row_where("run_id = ?1 AND idx = ?2 AND job = ?3", key)? {
            Some(row) => self.decoded(run_id, &row),
            None => self.record(run_id, job),
        }
    }

    /// One job's record in a run; an unknown name lists the closest ones.
    pub fn record(&mut self, run_id: &str, job: &str) -> Result<CompletedProcess> {
        match self.find_record(run_id, job)? {
            Some(rec) => Ok(rec),
            None => {
                let names = self.job_names(run_id)?;
                Err(StoreError::NotFound(not_found_job(job, run_id, &names)))
            }
        }
    }

    /// One job's record in a run, if it has one yet (nothing is said of other names: `logs
    /// --follow` asks every 100 ms while the job waits its turn).
    pub fn find_record(&mut self, run_id: &str, job: &str) -> Result<Option<CompletedProcess>> {
        let found = self.row_where("run_id = ?1 AND job = ?2", params![run_id, job])?;
        found.map(|row| self.decoded(run_id, &row)).transpose()
    }

    /// The status a job's record has now (its status column alone: no JSON is read), or
    /// `None` when the store has no such record.
    pub fn status_at(&mut self, run_id: &str, index: usize, job: &str) -> Result<Option<Status>> {
        let found = self.column_at("status", (run_id, index, job))?;
        Ok(found.as_deref().and_then(Status::parse))
    }

    /// One text column of the record with this key (`column` is one of this file's, never
    /// `record`: a record is read with its columns, `row`).
    fn column_at(
        &mut self,
        column: &'static str,
        (run_id, index, job): (&str, usize, &str),
    ) -> Result<Option<String>> {
        let sql =
            format!("SELECT {column} FROM records WHERE run_id = ?1 AND idx = ?2 AND job = ?3");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![run_id, index as i64, job], |r| r.get(0))
                    .optional()
            })
            .map_err(self.sql_err())
    }

    /// The record row `cond` finds, if any.
    fn row_where(
        &mut self,
        cond: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Option<RecordRow>> {
        let sql = format!("SELECT {RECORD} FROM records WHERE {cond}");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(args, |r| RecordRow::at(r, 0)).optional())
            .map_err(self.sql_err())
    }

    /// A record row read back; a row that does not decode is a corrupt store.
    fn decoded(&self, run_id: &str, row: &RecordRow) -> Result<CompletedProcess> {
        row.decode().map_err(|e| StoreError::Corrupt {
            path: self.db_path.clone(),
            message: format!("record of `{}` in run {run_id}: {e}", row.job()),
        })
    }
}
