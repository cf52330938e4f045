//! Record rows: writing finished jobs' records and reading them back by run or by job.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::row::{RECORD, RecordRow};
use super::{Result, RunStore, StoreError};
use crate::record::{CompletedProcess, Sealed, Status, to_millis};

/// One line of the `show` table.
#[derive(Debug, Clone)]
pub struct ShowRow {
    pub index: usize,
    pub job: String,
    pub status: String,
    /// Succeeded only after retries (`CompletedProcess::flaky`).
    pub flaky: bool,
    pub outcome: String,
    pub duration: Duration,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The record is a hook's or a notification's.
    pub hook: bool,
    /// The run `--resume` carried the record over from (`CompletedProcess::carried_from`).
    pub carried_from: Option<String>,
}

/// Where a record row stands in a run's job-file order: its index and its job's name.
pub type RowKey = (usize, String);

impl RunStore {
    /// Commits finished records in one transaction (one fsync for the whole batch). Every
    /// record of a run comes here, whoever made it; `insert_record` decides what replaces what.
    pub fn record_batch(&mut self, run_id: &str, recs: &[Sealed]) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let path = self.db_path.clone();
        let sql = move |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            // Looked up once a batch: the cache is keyed by the statement's text, hashed at
            // each lookup.
            let mut upsert = tx
                .prepare_cached(RecordTable::Stored.upsert())
                .map_err(&sql)?;
            for r in recs {
                // The run reported how a background job ended (it waited): nothing new for
                // `status` to show.
                let seen = r.background && !r.status.is_running();
                insert_record(&mut upsert, run_id, r, seen).map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)?;
        self.drop_moved_files(run_id, recs);
        Ok(())
    }

    /// Calls `f` with each of a run's records in job-file order, one at a time (a run of
    /// 100,000 jobs is never held in memory whole).
    pub fn each_record(
        &mut self,
        run_id: &str,
        mut f: impl FnMut(CompletedProcess) -> std::io::Result<()>,
    ) -> Result<usize> {
        let sql = format!("SELECT {RECORD} FROM records WHERE run_id = ?1 ORDER BY idx");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.sql_err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.sql_err())?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(self.sql_err())? {
            let stored = RecordRow::at(row, 0).map_err(self.sql_err())?;
            if let Ok(rec) = stored.decode() {
                n += 1;
                if f(rec).is_err() {
                    break; // the reader went away (a closed pipe)
                }
            }
        }
        Ok(n)
    }

    /// Like `each_record`, with only the columns of the `show` table (no JSON to decode).
    pub fn each_row(
        &mut self,
        run_id: &str,
        mut f: impl FnMut(ShowRow) -> std::io::Result<()>,
    ) -> Result<usize> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, job, status, returncode, json_extract(record, '$.signal'), duration_ms,
                        stdout_bytes, stderr_bytes, hook IS NOT NULL,
                        COALESCE(json_extract(record, '$.flaky'), 0),
                        json_extract(record, '$.carried_from')
                 FROM records WHERE run_id = ?1 ORDER BY idx",
            )
            .map_err(self.sql_err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.sql_err())?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(self.sql_err())? {
            let get = |e| StoreError::Sql {
                path: self.db_path.clone(),
                source: e,
            };
            let code: Option<i32> = r.get(3).map_err(get)?;
            let signal: Option<i32> = r.get(4).map_err(get)?;
            let row = ShowRow {
                index: r.get::<_, i64>(0).map_err(get)? as usize,
                job: r.get(1).map_err(get)?,
                status: r.get(2).map_err(get)?,
                flaky: r.get::<_, i64>(9).map_err(get)? != 0,
                outcome: match (code, signal) {
                    (_, Some(sig)) => format!("signal {sig} ({})", crate::record::signal_name(sig)),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "-".to_string(),
                },
                duration: Duration::from_millis(r.get::<_, i64>(5).map_err(get)?.max(0) as u64),
                stdout_bytes: r.get::<_, i64>(6).map_err(get)? as u64,
                stderr_bytes: r.get::<_, i64>(7).map_err(get)? as u64,
                hook: r.get(8).map_err(get)?,
                carried_from: r.get(10).map_err(get)?,
            };
            n += 1;
            if f(row).is_err() {
                break;
            }
        }
        Ok(n)
    }

    /// A run's records in job-file order.
    pub fn records(&mut self, run_id: &str) -> Result<Vec<CompletedProcess>> {
        let sql = format!("SELECT {RECORD} FROM records WHERE run_id = ?1 ORDER BY idx");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.sql_err())?;
        let rows: Vec<RecordRow> = stmt
            .query_map(params![run_id], |r| RecordRow::at(r, 0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(rows.iter().filter_map(|r| r.decode().ok()).collect())
    }

    /// The records of the jobs that succeeded in a run, a page at a time in job-file order:
    /// at most `limit` rows, those after `after` (an index and a name), and the key of the
    /// page's last row (`None`: no row is left). `--resume` reads a run of millions of jobs
    /// this way.
    pub fn succeeded_page(
        &mut self,
        run_id: &str,
        after: Option<&RowKey>,
        limit: usize,
    ) -> Result<(Vec<CompletedProcess>, Option<RowKey>)> {
        let sql = format!(
            "SELECT {RECORD} FROM records
             WHERE run_id = ?1 AND status = ?2 AND hook IS NULL AND (idx, job) > (?3, ?4)
             ORDER BY idx, job LIMIT ?5"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.sql_err())?;
        let (idx, job) = after.map_or((-1, ""), |(i, j)| (*i as i64, j.as_str()));
        let status = Status::Succeeded.as_str();
        let rows: Vec<RecordRow> = stmt
            .query_map(params![run_id, status, idx, job, limit as i64], |r| {
                RecordRow::at(r, 0)
            })
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        let last = rows.last().map(|r| (r.index(), r.job().to_string()));
        let recs = rows.iter().filter_map(|r| r.decode().ok()).collect();
        Ok((recs, last))
    }

    /// One job across runs, newest first (of any job file: see `job_history`).
    pub fn history(&mut self, job: &str, limit: usize) -> Result<Vec<(String, CompletedProcess)>> {
        Ok(self
            .job_history(job, None, limit)?
            .into_iter()
            .map(|h| (h.run, h.record))
            .collect())
    }

    /// How many runs of `job_file` the store holds: no job of it has a longer history.
    pub fn runs_of_job_file(&mut self, job_file: &str) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE job_file = ?1",
                params![job_file],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.sql_err())
    }

    /// Every recorded job name of a run, for suggestions (names only: no record is decoded).
    pub fn job_names(&mut self, run_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT job FROM records WHERE run_id = ?1 ORDER BY idx")
            .map_err(self.sql_err())?;
        let names = stmt
            .query_map(params![run_id], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.sql_err())?;
        Ok(names)
    }
}

/// The table a record is written to: the stored one, or on a read-only store this process's
/// overlay of it (`readonly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordTable {
    Stored,
    Overlay,
}

impl RecordTable {
    /// The upsert of `insert_record` into this table, built once: it runs for every record,
    /// and the statement cache is keyed by its text.
    fn upsert(self) -> &'static str {
        static SQL: [std::sync::OnceLock<String>; 2] =
            [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
        let (slot, table) = match self {
            RecordTable::Stored => (0, "records"),
            RecordTable::Overlay => (1, "records_overlay"),
        };
        SQL[slot].get_or_init(|| {
            let running = Status::sql_list(Status::is_running);
            format!(
            "INSERT INTO {table}
             (run_id, idx, job, status, returncode, started_ms, duration_ms, stdout_bytes, stderr_bytes, record, background, seen, hook)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (run_id, idx, job) DO UPDATE SET
               status = excluded.status, returncode = excluded.returncode,
               started_ms = excluded.started_ms, duration_ms = excluded.duration_ms,
               stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes,
               record = excluded.record, background = excluded.background, seen = excluded.seen,
               hook = excluded.hook
             WHERE {table}.status IN ({running}) OR excluded.status NOT IN ({running})"
            )
        })
    }
}

impl RunStore {
    /// Writes one record outside a run's batches (a background job's end, a survivor's): to
    /// the stored table, or on a read-only store to this process's overlay.
    /// `put_record`, with the run's counts moved as the stored record's status moved
    /// (`recount_one`).
    /// In one write transaction with the run's own recount at its end, so that neither
    /// misses the other's write.
    pub(super) fn put_counted(&mut self, run_id: &str, r: &Sealed, seen: bool) -> Result<()> {
        self.in_write(|s| {
            let before = s.counted_status(run_id, r)?;
            s.put_record(run_id, r, seen)?;
            let after = s.counted_status(run_id, r)?;
            s.recount_one(run_id, before, after)
        })
    }

    /// The status of `r`'s stored record, if it has one that counts (a job's, not a hook's).
    fn counted_status(&self, run_id: &str, r: &Sealed) -> Result<Option<Status>> {
        let status: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT status FROM records
                 WHERE run_id = ?1 AND idx = ?2 AND job = ?3 AND hook IS NULL",
            )
            .and_then(|mut s| {
                s.query_row(params![run_id, r.index as i64, r.job], |row| row.get(0))
                    .optional()
            })
            .map_err(self.sql_err())?;
        // As `count_records` counts: a status this version does not know is a failure.
        Ok(status.map(|s| Status::parse(&s).unwrap_or(Status::Failed)))
    }

    pub(super) fn put_record(&mut self, run_id: &str, r: &Sealed, seen: bool) -> Result<()> {
        let table = self.record_table()?;
        self.conn
            .prepare_cached(table.upsert())
            .and_then(|mut upsert| insert_record(&mut upsert, run_id, r, seen))
            .map_err(self.sql_err())?;
        if matches!(table, RecordTable::Stored) {
            self.drop_moved_files(run_id, std::slice::from_ref(r));
            self.drop_ended_run_dir(run_id)?;
        }
        Ok(())
    }
}

/// Writes one record row: the columns queries use, and the whole record as JSON. The one rule
/// for a job recorded twice (the run and a background job's supervisor both write it): a
/// record replaces the stored one unless the stored one has ended and the new one has not,
/// so a job's final record is never overwritten by its running one. `upsert` is the
/// statement of `RecordTable::upsert`.
pub(super) fn insert_record(
    upsert: &mut rusqlite::CachedStatement<'_>,
    run_id: &str,
    r: &Sealed,
    seen: bool,
) -> rusqlite::Result<()> {
    // Sized for a typical record at once, not grown from a few bytes.
    let mut json = Vec::with_capacity(1024);
    // Without what the columns hold (`row`).
    crate::record::in_stored_form(|| serde_json::to_writer(&mut json, &**r))
        .expect("records serialize to JSON");
    let json = String::from_utf8(json).expect("JSON is UTF-8");
    upsert.execute(params![
        run_id,
        r.index as i64,
        r.job,
        r.status.as_str(),
        r.returncode,
        to_millis(r.started),
        r.duration.as_millis() as i64,
        r.stdout.bytes as i64,
        r.stderr.bytes as i64,
        json,
        i64::from(r.background),
        if seen { super::Viewer::ALL_BITS } else { 0 },
        r.hook
    ])?;
    Ok(())
}

pub fn not_found_job(job: &str, run_id: &str, names: &[String]) -> String {
    let mut msg = format!("no job `{job}` in run {run_id}");
    if let Some(s) = crate::error::suggest(job, names) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else if !names.is_empty() {
        let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
        msg.push_str(&format!(
            "; its jobs: {}{}",
            shown.join(", "),
            if names.len() > 8 { ", ..." } else { "" }
        ));
    }
    msg
}
