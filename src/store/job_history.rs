//! One job across runs (`history`, `diff`, `logs JOB`, `rerun last JOB`): a job is known by its
//! job file and its name, so a job of the same name in another job file can be told apart.
//! A job is looked up run by run, newest run first, through the records' key (an index led
//! by the job's name cost every record a page write of its own; see `run_by_run`).

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::row::{RECORD, RecordRow};
use super::{Result, RunStore, StoreError};
use crate::record::{CompletedProcess, Status};

/// How many of a job file's latest runs `recent_durations_of` reads at most: a job that seldom
/// succeeds has a shorter history, rather than a run's start reading the whole store.
const RECENT_RUNS: usize = 100;

/// A run's succeeded job records (not hooks'), name and duration (ms): `?1` the run, `?2` the
/// succeeded status.
pub(super) const SUCCEEDED_OF_RUN: &str =
    "SELECT job, duration_ms FROM records WHERE run_id = ?1 AND status = ?2 AND hook IS NULL";

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
        let runs = format!(
            "SELECT id, job_file FROM runs WHERE ?1 IS NULL OR {}
             ORDER BY started_ms DESC, id DESC",
            super::job_file::sql("job_file", "?1")
        );
        let mut rows: Vec<(String, Option<String>, RecordRow)> = Vec::new();
        self.run_by_run(
            (&runs, params![job_file]),
            (job, None),
            RECORD,
            |run, file, row| {
                rows.push((run, file, RecordRow::at(row, 0)?));
                Ok(rows.len() < limit)
            },
        )?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(self.no_history(job, job_file)?));
        }
        Ok(rows
            .into_iter()
            .filter_map(|(run, job_file, row)| {
                let record = row.decode().ok()?;
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
            .prepare(&format!(
                // The names of the last 100 runs (of the job file): a store of millions of
                // records is not read whole for a suggestion.
                "SELECT DISTINCT job FROM records
                 WHERE run_id IN (SELECT id FROM runs WHERE ?2 IS NULL OR {}
                                  ORDER BY started_ms DESC LIMIT 100)
                   AND job <> ?1 ORDER BY job LIMIT 10000",
                super::job_file::sql("job_file", "?2")
            ))
            .map_err(self.sql_err())?;
        let names: Vec<String> = stmt
            .query_map(params![job, job_file], |r| r.get(0))
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
        (job, index): (&str, Option<usize>),
        limit: usize,
    ) -> Result<Vec<Duration>> {
        let runs = "SELECT id, job_file FROM runs WHERE job_file = ?1
                    ORDER BY started_ms DESC, id DESC";
        let mut found = Vec::new();
        let ok = Status::Succeeded.as_str();
        self.run_by_run(
            (runs, params![job_file]),
            (job, index),
            "status, duration_ms",
            |_, _, r| {
                if r.get::<_, String>(0)? == ok {
                    found.push(Duration::from_millis(r.get::<_, i64>(1)?.max(0) as u64));
                }
                Ok(found.len() < limit)
            },
        )?;
        Ok(found)
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
        let mut found: HashMap<K, Vec<Duration>> = HashMap::new();
        let mut full = 0;
        self.succeeded_in_recent_runs(job_file, |row| {
            let Some((name, d)) = row else {
                return full == jobs.len();
            };
            if let Some(key) = jobs.get(name) {
                let durations = found.entry(key.clone()).or_default();
                if durations.len() < limit {
                    durations.push(d);
                    full += usize::from(durations.len() == limit);
                }
            }
            false
        })?;
        Ok(found)
    }

    /// The same for every job of the job file's latest runs, by name: read until a run brings
    /// no job not seen yet and each job seen has `limit`.
    pub fn recent_durations_by_name(
        &mut self,
        job_file: &str,
        limit: usize,
    ) -> Result<HashMap<String, Vec<Duration>>> {
        let mut found: HashMap<String, Vec<Duration>> = HashMap::new();
        let (mut full, mut new) = (0, false);
        self.succeeded_in_recent_runs(job_file, |row| {
            let Some((name, d)) = row else {
                let done = !new && full == found.len();
                new = false;
                return done;
            };
            let durations = found.entry(name.to_string()).or_insert_with(|| {
                new = true;
                Vec::new()
            });
            if durations.len() < limit {
                durations.push(d);
                full += usize::from(durations.len() == limit);
            }
            false
        })
        .map(|()| found)
    }

    /// Calls `f` with each succeeded record (name, duration) of the job file's latest runs
    /// (at most `RECENT_RUNS`), newest run first, and with `None` at the end of each run: it
    /// returns true there to read no further run.
    fn succeeded_in_recent_runs(
        &mut self,
        job_file: &str,
        mut f: impl FnMut(Option<(&str, Duration)>) -> bool,
    ) -> Result<()> {
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
            .prepare_cached(SUCCEEDED_OF_RUN)
            .map_err(self.sql_err())?;
        for run in runs {
            let mut rows = stmt
                .query(params![run, Status::Succeeded.as_str()])
                .map_err(self.sql_err())?;
            while let Some(row) = rows.next().map_err(self.sql_err())? {
                let name = row.get_ref(0).map_err(self.sql_err())?;
                let ms: i64 = row.get(1).map_err(self.sql_err())?;
                if let Ok(name) = name.as_str() {
                    f(Some((name, Duration::from_millis(ms.max(0) as u64))));
                }
            }
            if f(None) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` with `job`'s row (`columns` of it) in each run that `runs` lists (its SQL,
    /// giving each run's id and job file, newest first, and its parameters), until `f` returns
    /// false. A job across runs is read so, a run at a time, also through the view a read-only
    /// store reads records by (`readonly`), which a join would read whole. In each run the job
    /// is first looked for under the index it had in the run before, or in the first run
    /// under `index` (its place in its job file now, where the caller knows it): one key
    /// lookup, as a job keeps its place in its job file from run to run. Else it is found among
    /// the run's key entries, which hold the names (the rows themselves are not read).
    pub(super) fn run_by_run(
        &self,
        runs: (&str, &[&dyn rusqlite::ToSql]),
        (job, index): (&str, Option<usize>),
        columns: &str,
        mut f: impl FnMut(String, Option<String>, &rusqlite::Row<'_>) -> rusqlite::Result<bool>,
    ) -> Result<()> {
        let sql =
            format!("SELECT {columns} FROM records WHERE run_id = ?1 AND idx = ?2 AND job = ?3");
        let mut walk = || -> rusqlite::Result<()> {
            let mut list = self.conn.prepare_cached(runs.0)?;
            let mut one = self.conn.prepare_cached(&sql)?;
            let mut listed = list.query(runs.1)?;
            let mut guess = index.map(|i| i as i64);
            while let Some(run) = listed.next()? {
                let (id, file): (String, Option<String>) = (run.get(0)?, run.get(1)?);
                let Some(at) = self.index_in_run(&id, job, guess)? else {
                    continue;
                };
                guess = Some(at);
                let mut found = one.query(params![id, at, job])?;
                if let Some(row) = found.next()?
                    && !f(id, file, row)?
                {
                    break;
                }
            }
            Ok(())
        };
        walk().map_err(self.sql_err())
    }

    /// Where `job` stands in run `run` (its index), if it is there: at `guess` (its index in
    /// the run looked at before), else the first of the run's key entries with its name.
    fn index_in_run(
        &self,
        run: &str,
        job: &str,
        guess: Option<i64>,
    ) -> rusqlite::Result<Option<i64>> {
        if let Some(i) = guess {
            let mut at = self.conn.prepare_cached(
                "SELECT 1 FROM records WHERE run_id = ?1 AND idx = ?2 AND job = ?3",
            )?;
            if at.exists(params![run, i, job])? {
                return Ok(Some(i));
            }
        }
        self.conn
            .prepare_cached(
                "SELECT idx FROM records WHERE run_id = ?1 AND job = ?2 ORDER BY idx LIMIT 1",
            )?
            .query_row(params![run, job], |r| r.get(0))
            .optional()
    }
}
