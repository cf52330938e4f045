//! Garbage collection: removing runs beyond the retention limits, rows and files together.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::params;

use super::{Result, Retention, RunFilter, RunStore};
use crate::record::PACK_SUFFIX;

/// Free pages below which gc leaves the file as it is (256 KiB of 4 KiB pages): they are
/// reused by the next runs anyway.
const SHRINK_MIN_PAGES: i64 = 64;

#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub runs_removed: usize,
    pub bytes_removed: u64,
}

impl RunStore {
    /// Removes runs beyond the retention limits, files and rows together. Runs still in
    /// progress are never removed.
    pub fn gc(&mut self, keep: &Retention, job_file: Option<&str>) -> Result<GcReport> {
        // Newest first, dead runs settled; the SQL filter narrows, the exact comparison decides.
        let mut runs = self.list_runs(&RunFilter {
            job_file: job_file.map(str::to_string),
            ..RunFilter::default()
        })?;
        if let Some(jf) = job_file {
            runs.retain(|r| r.job_file.as_deref() == Some(jf));
        }
        let now = SystemTime::now();
        let mut doomed = Vec::new();
        let mut total_bytes = 0u64;
        for (i, r) in runs.iter().enumerate() {
            if r.status == crate::record::RunStatus::Running || !super::valid_run_id(&r.id) {
                continue;
            }
            let too_many = keep.max_runs.is_some_and(|m| i >= m);
            let too_old = keep
                .max_age
                .is_some_and(|a| now.duration_since(r.started).unwrap_or_default() > a);
            // Sizes are only worth walking the folders for when bytes are limited.
            let bytes = if keep.max_bytes.is_some() || too_many || too_old {
                run_size(&self.root().join("runs"), &r.id)
            } else {
                0
            };
            let too_big = keep
                .max_bytes
                .is_some_and(|m| total_bytes + bytes > m && i > 0);
            let doomed_now = too_many || too_old || too_big;
            // Asked only of runs the limits would remove: one query each, not one per run.
            if doomed_now && self.has_live_background(&r.id)? {
                continue;
            }
            if doomed_now {
                doomed.push((r.id.clone(), bytes));
            } else {
                total_bytes += bytes;
            }
        }
        let mut report = GcReport::default();
        // The rows of all doomed runs go in one transaction (one commit, not one per run),
        // then their folders: a gc stopped in between leaves folders without a run, which the
        // sweep below (of this gc or the next) removes.
        let tx = self.conn.unchecked_transaction().map_err(self.sql_err())?;
        for (id, _) in &doomed {
            tx.prepare_cached("DELETE FROM records WHERE run_id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .and_then(|_| tx.prepare_cached("DELETE FROM runs WHERE id = ?1"))
                .and_then(|mut s| s.execute(params![id]))
                .map_err(self.sql_err())?;
        }
        tx.commit().map_err(self.sql_err())?;
        for (id, bytes) in doomed {
            remove_run_dir(&self.root().join("runs"), &id);
            report.runs_removed += 1;
            report.bytes_removed += bytes;
        }
        self.sweep_orphan_dirs()?;
        if report.runs_removed > 0 {
            self.drop_orphan_durations()?;
            self.shrink()?;
        }
        Ok(report)
    }

    /// Gives the pages that removed rows freed back to the file system, once they are a good
    /// part of the file: the history would otherwise never shrink. A database made before
    /// `auto_vacuum` was set is rebuilt once by `VACUUM` (the only way to switch it on), later
    /// ones only move their free pages to the end and cut them off (`incremental_vacuum`).
    /// The WAL is then checkpointed and truncated, so the file is smaller on disk at once.
    fn shrink(&mut self) -> Result<()> {
        let pragma = |conn: &rusqlite::Connection, name: &str| -> rusqlite::Result<i64> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        };
        let free = pragma(&self.conn, "freelist_count").map_err(self.sql_err())?;
        let pages = pragma(&self.conn, "page_count").map_err(self.sql_err())?;
        if free < SHRINK_MIN_PAGES || free * 4 < pages {
            return Ok(());
        }
        if pragma(&self.conn, "auto_vacuum").map_err(self.sql_err())? == 2 {
            // It frees a page per step: stepped to its end, not once as `execute_batch` would.
            let mut stmt = self
                .conn
                .prepare("PRAGMA incremental_vacuum")
                .map_err(self.sql_err())?;
            let mut rows = stmt.query([]).map_err(self.sql_err())?;
            while rows.next().map_err(self.sql_err())?.is_some() {}
        } else {
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
                .map_err(self.sql_err())?;
        }
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(self.sql_err())
    }

    /// Runs with a job still running are kept whatever the limits: a background job's
    /// supervisor will write its end into them, and a job that outlived its run is found
    /// through them.
    fn has_live_background(&mut self, run_id: &str) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM records WHERE run_id = ?1 AND status IN ({})",
                    crate::record::Status::sql_list(crate::record::Status::is_running)
                ),
                params![run_id],
                |r| r.get(0),
            )
            .map_err(self.sql_err())?;
        Ok(n > 0)
    }

    /// Removes what is in `runs/` but belongs to no run: left by a gc that was stopped, or put
    /// there by hand. The folder is listed before the runs, and a run's row is written before
    /// its folder is made, so a run starting meanwhile is never taken for an orphan.
    fn sweep_orphan_dirs(&mut self) -> Result<usize> {
        let runs = self.root().join("runs");
        let Ok(entries) = std::fs::read_dir(&runs) else {
            return Ok(0);
        };
        // A run's pack (`<id>.pack`) belongs to the run of its id.
        let names: std::collections::HashSet<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .map(|n| n.strip_suffix(PACK_SUFFIX).map(str::to_string).unwrap_or(n))
            .collect();
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs")
            .map_err(self.sql_err())?;
        let known: std::collections::HashSet<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        let mut removed = 0;
        // Only folders named as runs are, so that a `runs/` folder of someone else's (a state
        // dir pointed at an existing folder) loses nothing.
        for name in names
            .iter()
            .filter(|n| super::looks_like_run_id(n) && !known.contains(*n))
        {
            remove_run_dir(&runs, name);
            removed += 1;
        }
        Ok(removed)
    }
}

/// Removes `runs/<name>` and its pack `runs/<name>.pack`, only ever entries directly inside
/// `runs/`: a name that is not a single plain component is left alone, and a symlink is
/// removed itself, never followed.
fn remove_run_dir(runs: &Path, name: &str) {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && Path::new(name).components().count() == 1;
    if !plain {
        return;
    }
    let p = runs.join(name);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(&p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(&p);
        }
        Err(_) => {}
    }
    let _ = std::fs::remove_file(runs.join(format!("{name}{PACK_SUFFIX}")));
}

/// The bytes a run keeps: its folder's files and its pack.
fn run_size(runs: &Path, id: &str) -> u64 {
    let pack = std::fs::symlink_metadata(runs.join(format!("{id}{PACK_SUFFIX}")))
        .map(|m| m.len())
        .unwrap_or(0);
    dir_size(&runs.join(super::as_component(id))) + pack
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
