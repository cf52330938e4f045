//! Run rows: starting, finishing and listing runs, settling dead ones, and run ids.

use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, params};

use super::hostname;
use super::status_sql;
use super::{Result, RunStore, StoreError, mkdir_private};
use crate::record::{Counts, ProcessIdentity, RunStatus, from_millis, to_millis};

/// A run as listed by `orchestrate runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: String,
    pub job_file: Option<String>,
    pub job_file_hash: Option<String>,
    pub host: Option<String>,
    pub user: Option<String>,
    pub pid: Option<u32>,
    #[serde(serialize_with = "ser_time")]
    pub started: SystemTime,
    #[serde(serialize_with = "ser_opt_time")]
    pub ended: Option<SystemTime>,
    pub status: RunStatus,
    /// Jobs in the plan.
    pub total: u64,
    /// The jobs recorded so far, by status.
    pub counts: Counts,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::record::format_time(*t))
}

fn ser_opt_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&crate::record::format_time(*t)),
        None => s.serialize_none(),
    }
}

impl RunRow {
    pub fn duration(&self) -> Option<Duration> {
        self.ended.and_then(|e| e.duration_since(self.started).ok())
    }
}

/// Facts about a run known when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub job_file: Option<String>,
    pub job_file_hash: Option<String>,
    pub started: SystemTime,
    pub total: usize,
}

/// Filters of `orchestrate runs`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub failed_only: bool,
    pub job_file: Option<String>,
    pub since: Option<SystemTime>,
    pub limit: Option<usize>,
}

/// The columns of `runs` that `row_to_run` reads, in its order.
const RUN_COLS: &str =
    "id, job_file, job_file_hash, host, user, pid, started_ms, ended_ms, status, total, counts";

impl RunStore {
    pub fn begin_run(&mut self, run: &NewRun) -> Result<()> {
        let host = hostname();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok();
        let sql = format!(
            "INSERT INTO runs (id, job_file, job_file_hash, host, user, pid, started_ms, status, total, env_keys, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {}, ?8, ?9, ?10)",
            status_sql::running_value()
        );
        self.conn
            .execute(
                &sql,
                params![
                    run.id,
                    run.job_file,
                    run.job_file_hash,
                    host,
                    user,
                    std::process::id(),
                    to_millis(run.started),
                    run.total as i64,
                    serde_json::to_string(crate::environ::inherited_env_keys())
                        .expect("names serialize"),
                    serde_json::to_string(&ProcessIdentity::of(std::process::id()))
                        .expect("an identity serializes")
                ],
            )
            .map_err(self.sql_err())?;
        mkdir_private(&self.run_dir(&run.id)).map_err(|source| StoreError::Dir {
            path: self.run_dir(&run.id),
            source,
        })?;
        Ok(())
    }

    /// Marks a run ended (`interrupted`, or by its jobs' counts) and counts its records.
    /// `failed`: a job of the run failed, as the run itself counted its jobs; the stored
    /// counts may miss records the store could not take (a full disk), and must not make a
    /// failed run look succeeded.
    pub fn finish_run(
        &mut self,
        run_id: &str,
        interrupted: bool,
        failed: bool,
        ended: SystemTime,
    ) -> Result<()> {
        let status = match (interrupted, failed) {
            (true, _) => RunStatus::Interrupted,
            (false, true) => RunStatus::Failed,
            (false, false) => RunStatus::Succeeded,
        };
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, ended_ms = ?3 WHERE id = ?1",
                params![run_id, status.as_str(), to_millis(ended)],
            )
            .map_err(self.sql_err())?;
        // A run whose outputs all moved into its pack (or that had none) leaves no folder.
        let _ = std::fs::remove_dir(self.run_dir(run_id));
        self.recount(run_id)
    }

    fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            job_file: r.get(1)?,
            job_file_hash: r.get(2)?,
            host: r.get(3)?,
            user: r.get(4)?,
            pid: r.get(5)?,
            started: from_millis(r.get(6)?),
            ended: r.get::<_, Option<i64>>(7)?.map(from_millis),
            status: RunStatus::parse(&r.get::<_, String>(8)?).unwrap_or(RunStatus::Failed),
            total: r.get::<_, i64>(9)? as u64,
            counts: r
                .get::<_, Option<String>>(10)?
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default(),
        })
    }

    /// Runs, newest first.
    pub fn list_runs(&mut self, f: &RunFilter) -> Result<Vec<RunRow>> {
        self.settle_dead_runs()?;
        let mut sql = format!("SELECT {} FROM runs WHERE 1=1", RUN_COLS);
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if f.failed_only {
            sql.push_str(&format!(
                " AND (failed > 0 OR {})",
                status_sql::run_ended_unsuccessfully()
            ));
        }
        if let Some(jf) = &f.job_file {
            sql.push_str(&format!(" AND {}", super::job_file::sql("job_file", "?")));
            for _ in 0..3 {
                args.push(jf.clone().into());
            }
        }
        if let Some(since) = f.since {
            sql.push_str(" AND started_ms >= ?");
            args.push(to_millis(since).into());
        }
        sql.push_str(" ORDER BY started_ms DESC, id DESC");
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), Self::row_to_run)
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        self.live_counts(rows)
    }

    /// Runs that have not ended (or were recorded before runs kept counts) are counted from
    /// their records now: the run's own thread counts them only at its end.
    fn live_counts(&mut self, mut rows: Vec<RunRow>) -> Result<Vec<RunRow>> {
        for r in &mut rows {
            if r.status == RunStatus::Running || r.counts.total() == 0 {
                r.counts = self.count_records(&r.id)?;
            }
        }
        Ok(rows)
    }

    pub fn run(&mut self, id: &str) -> Result<RunRow> {
        self.settle_dead_runs()?;
        let sql = format!("SELECT {} FROM runs WHERE id = ?1", RUN_COLS);
        let row = self
            .conn
            .query_row(&sql, params![id], Self::row_to_run)
            .optional()
            .map_err(self.sql_err())?
            .ok_or_else(|| StoreError::NotFound(format!("no run `{id}`")))?;
        let mut rows = self.live_counts(vec![row])?;
        Ok(rows.remove(0))
    }

    /// `last`, `last~N` (N runs before the last), a full id or a unique prefix.
    pub fn resolve_run(&mut self, spec: &str) -> Result<String> {
        let back = if spec == "last" {
            Some(0)
        } else {
            spec.strip_prefix("last~")
                .and_then(|n| n.parse::<i64>().ok())
        };
        if let Some(n) = back {
            return self.nth_last_run(spec, n);
        }
        let ids = self.ids_with_prefix(spec)?;
        match ids.len() {
            1 => Ok(ids.into_iter().next().expect("one id")),
            0 => Err(StoreError::NotFound(self.no_run_matches(spec)?)),
            _ => Err(StoreError::Ambiguous(format!(
                "`{spec}` matches several runs ({}{}); give more of the id",
                ids.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if ids.len() > 5 { ", ..." } else { "" }
            ))),
        }
    }

    /// The id of the run `n` runs before the last (`spec` names it in the error).
    fn nth_last_run(&mut self, spec: &str, n: i64) -> Result<String> {
        self.conn
            .query_row(
                "SELECT id FROM runs ORDER BY started_ms DESC, id DESC LIMIT 1 OFFSET ?1",
                params![n],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?
            .ok_or_else(|| {
                StoreError::NotFound(if n == 0 {
                    "no runs recorded yet".to_string()
                } else {
                    format!("there is no run {spec} (fewer runs recorded)")
                })
            })
    }

    /// Up to six ids starting with `prefix` (enough to tell one from several).
    fn ids_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 6")
            .map_err(self.sql_err())?;
        let ids: Vec<String> = stmt
            .query_map(params![format!("{escaped}%")], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(ids)
    }

    /// The message for a spec that matches no run, naming the recent ones.
    fn no_run_matches(&mut self, spec: &str) -> Result<String> {
        let recent = self.list_runs(&RunFilter {
            limit: Some(5),
            ..Default::default()
        })?;
        let mut msg = format!("no run matches `{spec}`");
        if !recent.is_empty() {
            msg.push_str("; recent runs: ");
            msg.push_str(
                &recent
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        Ok(msg)
    }

    /// The names of the environment a run's jobs inherited (recorded once per run).
    pub fn run_env_keys(&mut self, run_id: &str) -> Result<Vec<String>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT env_keys FROM runs WHERE id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?
            .flatten();
        Ok(json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default())
    }
}
