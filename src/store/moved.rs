//! What goes from a run's folder once the store holds the records that no longer need it:
//! capture files whose bytes moved into the run's pack, and the folder of an ended run left
//! empty.

use rusqlite::{OptionalExtension, params};

use super::{Result, RunStore};
use crate::record::Sealed;

impl RunStore {
    /// Removes the capture files whose bytes moved into the run's pack, now that the records
    /// saying so are stored: until then a reader (or a run killed in between) finds the bytes
    /// in the file the running record names. A carried record's bytes are another run's.
    pub(super) fn drop_moved_files(&self, run_id: &str, recs: &[Sealed]) {
        let dir = self.run_dir(run_id);
        for r in recs.iter().filter(|r| r.carried_from.is_none()) {
            let mut moved = [(&r.stdout, "stdout"), (&r.stderr, "stderr")]
                .into_iter()
                .filter(|(out, _)| out.captured && out.packed.is_some())
                .peekable();
            // Most records moved nothing (no output): no path is made for them.
            if moved.peek().is_none() {
                continue;
            }
            let job = dir.join(crate::text::job_dir_name(&r.job));
            for (_, name) in moved {
                if std::fs::remove_file(job.join(name)).is_ok() {
                    // Once the other stream went too.
                    let _ = std::fs::remove_dir(&job);
                }
            }
        }
    }

    /// The last background job of an ended run to end takes the run's folder with it once it
    /// is empty, as the run's end does (`finish_run`); while the run goes on, its next job may
    /// be making its folder in there.
    pub(super) fn drop_ended_run_dir(&self, run_id: &str) -> Result<()> {
        let ended: Option<i64> = self
            .conn
            .query_row(
                "SELECT ended_ms FROM runs WHERE id = ?1",
                params![run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sql_err())?
            .flatten();
        if ended.is_some() {
            let _ = std::fs::remove_dir(self.run_dir(run_id));
        }
        Ok(())
    }
}
