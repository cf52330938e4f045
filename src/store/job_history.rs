//! One job across runs (`history`, `diff`, `logs JOB`, `rerun last JOB`): a job is known by its
//! job file and its name, so a job of the same name in another job file can be told apart.

use rusqlite::params;

use super::{Result, RunStore, StoreError};
use crate::record::CompletedProcess;

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
                "SELECT r.run_id, u.job_file, r.record FROM records r JOIN runs u ON u.id = r.run_id
                 WHERE r.job = ?1 AND (?2 IS NULL OR {})
                 ORDER BY r.started_ms DESC, r.run_id DESC LIMIT ?3",
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
            .prepare("SELECT DISTINCT job FROM records WHERE job <> ?1 ORDER BY job LIMIT 10000")
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
                "SELECT DISTINCT u.job_file FROM records r JOIN runs u ON u.id = r.run_id
                 WHERE r.job = ?1 AND u.job_file IS NOT NULL ORDER BY u.job_file LIMIT 100",
            )
            .map_err(self.sql_err())?;
        let files = stmt
            .query_map(params![job], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(files)
    }
}
