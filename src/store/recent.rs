//! A job file's recent durations, kept in one row of `durations` and brought up to date at
//! each run's end: what slow warnings and `timeout: auto` go by. A run reads one row before its
//! first job, instead of the succeeded records of its job file's last runs (20 rows a job).
//! Where no row is kept yet (a store made before schema 9), the records are read.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::{Result, RunStore};
use crate::record::Status;

/// A job's durations kept: its last this many succeeded records, newest first.
pub const KEPT: usize = 20;

/// Names kept for a job file at most: those of jobs no longer in its runs go first.
const MAX_NAMES: usize = 8000;

/// Durations in milliseconds, newest first, by job name.
type Kept = HashMap<String, Vec<u64>>;

/// The row's bytes: for each job, its name's length (u32) and the name, then how many
/// durations (u8) and each (u32 ms, at most 49 days), all little-endian. It is read before
/// every run of up to 2,000 jobs, so it is made to be read fast.
fn encode(kept: &Kept) -> Vec<u8> {
    let mut out = Vec::with_capacity(kept.len() * (8 + KEPT * 4));
    for (name, ms) in kept {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        let ms = &ms[..ms.len().min(KEPT)];
        out.push(ms.len() as u8);
        for &m in ms {
            out.extend_from_slice(&(m.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        }
    }
    out
}

/// `encode` undone; `None` for bytes it did not write.
fn decode(mut bytes: &[u8]) -> Option<Kept> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = bytes.split_at_checked(n)?;
        *bytes = tail;
        Some(head)
    }
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let mut kept = Kept::new();
    while !bytes.is_empty() {
        let len = u32_of(take(&mut bytes, 4)?) as usize;
        let name = std::str::from_utf8(take(&mut bytes, len)?)
            .ok()?
            .to_string();
        let count = usize::from(take(&mut bytes, 1)?[0]);
        let ms = take(&mut bytes, count * 4)?
            .chunks_exact(4)
            .map(|b| u64::from(u32_of(b)))
            .collect();
        kept.insert(name, ms);
    }
    Some(kept)
}

impl RunStore {
    /// The durations kept for `job_file`, newest first, by job name; `None` when none are.
    pub fn kept_durations(
        &mut self,
        job_file: &str,
    ) -> Result<Option<HashMap<String, Vec<Duration>>>> {
        let Some(kept) = self.kept_row(job_file)? else {
            return Ok(None);
        };
        Ok(Some(
            kept.into_iter()
                .map(|(name, ms)| (name, ms.into_iter().map(Duration::from_millis).collect()))
                .collect(),
        ))
    }

    /// Adds the succeeded records of run `run_id` to `job_file`'s kept durations, in one
    /// transaction (two runs of a job file ending together both count). The first time, the
    /// job file's last runs are read instead (this run among them).
    pub fn keep_durations(&mut self, run_id: &str, job_file: &str) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.sql_err())?;
        let kept = self.keep_durations_in(run_id, job_file);
        let end = if kept.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.execute_batch(end).map_err(self.sql_err());
        kept.and(ended)
    }

    fn keep_durations_in(&mut self, run_id: &str, job_file: &str) -> Result<()> {
        let ran = self.succeeded_in(run_id)?;
        let kept = match self.kept_row(job_file)? {
            Some(mut kept) => {
                let new = ran.iter().filter(|(n, _)| !kept.contains_key(n)).count();
                if kept.len() + new > MAX_NAMES {
                    let here: HashSet<&str> = ran.iter().map(|(n, _)| n.as_str()).collect();
                    kept.retain(|name, _| here.contains(name.as_str()));
                }
                for (name, ms) in ran {
                    let durations = kept.entry(name).or_default();
                    durations.insert(0, ms);
                    durations.truncate(KEPT);
                }
                kept
            }
            // Every job of the job file's last runs, not only those of this one: a job that
            // failed or was left out of it keeps its history.
            None => self
                .recent_durations_by_name(job_file, KEPT)?
                .into_iter()
                .map(|(name, d)| (name, d.iter().map(|d| d.as_millis() as u64).collect()))
                .collect(),
        };
        self.conn
            .execute(
                "INSERT INTO durations (job_file, recent) VALUES (?1, ?2)
                 ON CONFLICT (job_file) DO UPDATE SET recent = excluded.recent",
                params![job_file, encode(&kept)],
            )
            .map(drop)
            .map_err(self.sql_err())
    }

    /// Drops the durations of job files that have no run left (gc removed them all).
    pub(super) fn drop_orphan_durations(&mut self) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM durations
                 WHERE job_file NOT IN (SELECT job_file FROM runs WHERE job_file IS NOT NULL)",
                [],
            )
            .map(drop)
            .map_err(self.sql_err())
    }

    fn kept_row(&mut self, job_file: &str) -> Result<Option<Kept>> {
        let value: Option<rusqlite::types::Value> = self
            .conn
            .query_row(
                "SELECT recent FROM durations WHERE job_file = ?1",
                params![job_file],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?;
        // A row this version cannot read (other bytes, or not bytes at all) is as good as
        // none: the records are read again.
        Ok(match value {
            Some(rusqlite::types::Value::Blob(b)) => decode(&b),
            _ => None,
        })
    }

    /// The names and durations (ms) of a run's succeeded records, from the index alone.
    fn succeeded_in(&mut self, run_id: &str) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached(super::job_history::SUCCEEDED_OF_RUN)
            .map_err(self.sql_err())?;
        stmt.query_map(params![run_id, Status::Succeeded.as_str()], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })
        .map_err(self.sql_err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(self.sql_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_durations_read_back_as_written_and_other_bytes_are_refused() {
        let mut kept = Kept::new();
        kept.insert("build".into(), vec![1, 20, 300_000]);
        kept.insert("tëst[3]".into(), vec![]);
        kept.insert("long".into(), (0..30).collect());
        let back = decode(&encode(&kept)).unwrap();
        assert_eq!(back["build"], vec![1, 20, 300_000]);
        assert_eq!(back["tëst[3]"], Vec::<u64>::new());
        assert_eq!(back["long"], (0..KEPT as u64).collect::<Vec<_>>());
        assert_eq!(back.len(), 3);
        let bytes = encode(&kept);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode(b"{\"json\": [1]}").is_none());
    }
}
