//! Whether a run marked running still runs: its orchestrate process judged by pid, start
//! time, boot and PID namespace; a dead one is settled as interrupted.

use rusqlite::{OptionalExtension, params};

use super::status_sql;
use super::{Result, RunStore, StoreError};
use crate::record::{ProcessIdentity, RunStatus};

impl RunStore {
    /// Whether run `id` is still running, as cheaply as that can be known (its status column,
    /// after dead runs are settled; its counts are not made): `logs --follow` asks every 100 ms.
    pub fn run_is_running(&mut self, id: &str) -> Result<bool> {
        self.settle_dead_runs()?;
        let status: Option<String> = self
            .conn
            .prepare_cached("SELECT status FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(self.sql_err())?;
        match status {
            Some(s) => Ok(RunStatus::parse(&s) == Some(RunStatus::Running)),
            None => Err(StoreError::NotFound(format!("no run `{id}`"))),
        }
    }

    /// Runs still marked running whose orchestrate process is gone are marked interrupted.
    pub(super) fn settle_dead_runs(&mut self) -> Result<()> {
        let host = hostname();
        let running = status_sql::run_running();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, pid, host, owner FROM runs WHERE {running}"
            ))
            .map_err(self.sql_err())?;
        type Row = (String, Option<u32>, Option<String>, Option<String>);
        let rows: Vec<Row> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        for (id, pid, run_host, owner) in rows {
            if run_host.is_some() && run_host != host {
                continue;
            }
            // Judged as supervisors are: pid, start time, boot and PID namespace; runs from
            // before owners were kept by their pid alone.
            let owner: Option<ProcessIdentity> = owner.and_then(|o| serde_json::from_str(&o).ok());
            let alive = match owner {
                Some(o) => o.may_live(),
                None => pid.is_some_and(process_alive),
            };
            if !alive {
                // The run's duration ends with its last record, as an ended run's does; a
                // job still running when the run is judged dead ran at least until now.
                // Records carried over by `--resume` ended in the run they come from.
                let sql = format!(
                    "UPDATE runs SET {},
                           ended_ms = COALESCE(ended_ms,
                             (SELECT MAX(CASE WHEN status = '{}' THEN MAX(?2, started_ms)
                                              ELSE started_ms + duration_ms END)
                              FROM records WHERE run_id = ?1
                                AND json_extract(record, '$.carried_from') IS NULL),
                             started_ms)
                         WHERE id = ?1 AND {running}",
                    status_sql::set_run_interrupted(),
                    crate::record::Status::Running.as_str()
                );
                let now = crate::record::to_millis(std::time::SystemTime::now());
                self.conn
                    .execute(&sql, params![id, now])
                    .map_err(self.sql_err())?;
            }
        }
        self.settle_dead_jobs()
    }
}

pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

fn process_alive(pid: u32) -> bool {
    crate::sys::kill(pid, 0).unwrap_or(true)
}
