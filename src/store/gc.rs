//! Garbage collection: removing runs beyond the retention limits, rows and files together.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::params;

use super::{Result, Retention, RunFilter, RunStore};

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
            if r.status == crate::record::RunStatus::Running {
                continue;
            }
            let too_many = keep.max_runs.is_some_and(|m| i >= m);
            let too_old = keep
                .max_age
                .is_some_and(|a| now.duration_since(r.started).unwrap_or_default() > a);
            // Sizes are only worth walking the folders for when bytes are limited.
            let bytes = if keep.max_bytes.is_some() || too_many || too_old {
                dir_size(&self.run_dir(&r.id))
            } else {
                0
            };
            let too_big = keep
                .max_bytes
                .is_some_and(|m| total_bytes + bytes > m && i > 0);
            if too_many || too_old || too_big {
                doomed.push((r.id.clone(), bytes));
            } else {
                total_bytes += bytes;
            }
        }
        let mut report = GcReport::default();
        for (id, bytes) in doomed {
            self.conn
                .execute("DELETE FROM records WHERE run_id = ?1", params![id])
                .map_err(self.sql_err())?;
            self.conn
                .execute("DELETE FROM runs WHERE id = ?1", params![id])
                .map_err(self.sql_err())?;
            let _ = std::fs::remove_dir_all(self.run_dir(&id));
            report.runs_removed += 1;
            report.bytes_removed += bytes;
        }
        Ok(report)
    }
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
