//! One job across runs (`history`, `diff`, `logs JOB`, `rerun last JOB`): a job is known by its
//! job file and its name, so a job of the same name in another job file can be told apart.
//! A job is looked up run by run, newest run first (`records_run_job` is led by the run: an
//! index led by the job's name cost every record a page write of its own).

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::params;

use super::{Result, RunStore, StoreError};
use crate::record::{CompletedProcess, Status};

/// How many of a job file's latest runs `recent_durations_of` reads at most: a job that seldom
/// succeeds has a shorter history, rather than a run's start reading the whole store.
const RECENT_RUNS: usize = 100;

/// How many runs back `last` (0) or `last~N` (N) goes; `None` for an id or a prefix.
pub fn runs_back(spec: &str) -> Option<usize> {
    if spec == "last" {
        return Some(0);
    }
    spec.strip_prefix("last~")?.parse().ok()
}

/// One record of a job, with the run it is in and the job file that run ran.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub run: String,
    pub job_file: Option<String>,
    pub record: CompletedProcess,
}

impl RunStore {
    /// `job`'s records, newest first, at most `limit`; with `job_file`, only in runs of that
    /// job file (the path as given, or its file name, as `runs --job-file` matches it).
    /// No record at all is `NotFound`, naming where the job does occur.
    pub fn job_history(
        &mut self,
        job: &str,
        job_file: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT r.run_id, u.job_file, r.record
                 FROM runs u CROSS JOIN records r ON r.run_id = u.id AND r.job = ?1
                 WHERE ?2 IS NULL OR {}
                 ORDER BY u.started_ms DESC, u.id DESC LIMIT ?3",
                super::job_file::sql("u.job_file", "?2")
            ))
            .map_err(self.sql_err())?;
        let rows: Vec<(String, Option<String>, String)> = stmt
            .query_map(params![job, job_file, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        if rows.is_empty() {
            return Err(StoreError::NotFound(self.no_history(job, job_file)?));
        }
        Ok(rows
            .into_iter()
            .filter_map(|(run, job_file, j)| {
                let record = serde_json::from_str(&j).ok()?;
                Some(HistoryRow {
                    run,
                    job_file,
                    record,
                })
            })
            .collect())
    }

    /// Why `job` has no history (in `job_file`): the job files it is in, or a near name. Never
    /// the name given: it may be in the history, just not where it was looked for.
    fn no_history(&mut self, job: &str, job_file: Option<&str>) -> Result<String> {
        if let Some(file) = job_file {
            let files = self.job_files_of(job)?;
            if !files.is_empty() {
                return Ok(format!(
                    "no job `{job}` in any recorded run of {file}; it is in runs of {}",
                    files.join(", ")
                ));
            }
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT job FROM records
                 WHERE run_id IN (SELECT id FROM runs ORDER BY started_ms DESC LIMIT 100)
                   AND job <> ?1 ORDER BY job LIMIT 10000",
            )
            .map_err(self.sql_err())?;
        let names: Vec<String> = stmt
            .query_map(params![job], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        let mut msg = match job_file {
            Some(file) => format!("no job `{job}` in any recorded run of {file}"),
            None => format!("no job `{job}` in any recorded run"),
        };
        if let Some(s) = crate::error::suggest(job, &names) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        Ok(msg)
    }

    /// The job files whose runs have a record of `job`, by name.
    pub fn job_files_of(&mut self, job: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT u.job_file FROM runs u
                 WHERE u.job_file IS NOT NULL
                   AND EXISTS (SELECT 1 FROM records r WHERE r.run_id = u.id AND r.job = ?1)
                 ORDER BY u.job_file LIMIT 100",
            )
            .map_err(self.sql_err())?;
        let files = stmt
            .query_map(params![job], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(files)
    }

    /// How long `job` took in its last `limit` succeeded records in runs of `job_file`, newest
    /// first: the history that slow warnings and `timeout: auto` go by. One job's: the job
    /// file's runs are looked at newest first, and the job in each.
    pub fn recent_durations(
        &mut self,
        job_file: &str,
        job: &str,
        limit: usize,
    ) -> Result<Vec<Duration>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.duration_ms FROM runs u CROSS JOIN records r
                   ON r.run_id = u.id AND r.job = ?1
                 WHERE u.job_file = ?2 AND r.status = ?3
                 ORDER BY u.started_ms DESC, u.id DESC LIMIT ?4",
            )
            .map_err(self.sql_err())?;
        let ok = Status::Succeeded.as_str();
        stmt.query_map(params![job, job_file, ok, limit as i64], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(self.sql_err())?
        .map(|ms| ms.map(|ms| Duration::from_millis(ms.max(0) as u64)))
        .collect::<rusqlite::Result<_>>()
        .map_err(self.sql_err())
    }

    /// `recent_durations` of many jobs at once, by name: the succeeded records of the job file's
    /// latest runs (at most `RECENT_RUNS`), newest first, read a run at a time from the index
    /// alone, until each job has `limit`. For a job file of many jobs this reads each run once
    /// instead of looking each job up in every run.
    pub fn recent_durations_of<K: Clone + Eq + std::hash::Hash>(
        &mut self,
        job_file: &str,
        jobs: &HashMap<&str, K>,
        limit: usize,
    ) -> Result<HashMap<K, Vec<Duration>>> {
        let runs: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM runs WHERE job_file = ?1
                     ORDER BY started_ms DESC, id DESC LIMIT ?2",
                )
                .map_err(self.sql_err())?;
            stmt.query_map(params![job_file, RECENT_RUNS as i64], |r| r.get(0))
                .map_err(self.sql_err())?
                .collect::<rusqlite::Result<_>>()
                .map_err(self.sql_err())?
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT job, duration_ms FROM records WHERE run_id = ?1 AND status = ?2",
            )
            .map_err(self.sql_err())?;
        let mut found: HashMap<K, Vec<Duration>> = HashMap::new();
        let mut full = 0;
        for run in runs {
            let mut rows = stmt
                .query(params![run, Status::Succeeded.as_str()])
                .map_err(self.sql_err())?;
            while let Some(row) = rows.next().map_err(self.sql_err())? {
                let name = row.get_ref(0).map_err(self.sql_err())?;
                let Some(key) = name.as_str().ok().and_then(|n| jobs.get(n)) else {
                    continue;
                };
                let ms: i64 = row.get(1).map_err(self.sql_err())?;
                let durations = found.entry(key.clone()).or_default();
                if durations.len() < limit {
                    durations.push(Duration::from_millis(ms.max(0) as u64));
                    full += usize::from(durations.len() == limit);
                }
            }
            if full == jobs.len() {
                break;
            }
        }
        Ok(found)
    }
}
