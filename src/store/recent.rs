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

/// The row's first bytes. A row without them (another version's, or not this format at all)
/// is as good as none: the records are read again.
const MAGIC: &[u8; 4] = b"ODK2";

/// The row's bytes, after `MAGIC`: for each job, its name's length and the name, how many
/// durations and each (ms), newest first; numbers as LEB128 varints, so that a job of a few ms
/// costs a byte a duration. It is read before and written after every run of up to 2,000 jobs,
/// so it is made to be walked without building anything (`each`) and to be small.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = bytes.split_first()?;
        *bytes = tail;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// One job's part of the row: its name and its durations' bytes (`durations` reads them).
struct Entry<'a> {
    name: &'a str,
    count: usize,
    ms: &'a [u8],
}

impl<'a> Entry<'a> {
    fn durations(&self) -> impl Iterator<Item = u64> + 'a {
        let mut bytes = self.ms;
        std::iter::from_fn(move || take_varint(&mut bytes))
    }
}

/// The row's entries in order; `None` for bytes `put` did not write.
fn entries(bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut bytes = bytes.strip_prefix(MAGIC)?;
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = usize::try_from(take_varint(&mut bytes)?).ok()?;
        let (name, tail) = bytes.split_at_checked(len)?;
        let name = std::str::from_utf8(name).ok()?;
        bytes = tail;
        let count = usize::try_from(take_varint(&mut bytes)?).ok()?;
        let start = bytes;
        for _ in 0..count {
            take_varint(&mut bytes)?;
        }
        let ms = &start[..start.len() - bytes.len()];
        out.push(Entry { name, count, ms });
    }
    Some(out)
}

/// Appends one job's entry: the first `n` (at most `KEPT`) of `ms`, which has that many.
fn put(out: &mut Vec<u8>, name: &str, ms: impl Iterator<Item = u64>, n: usize) {
    let n = n.min(KEPT);
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    put_varint(out, n as u64);
    for m in ms.take(n) {
        put_varint(out, m);
    }
}

/// The row `old` becomes with `ran` (this run's succeeded jobs, name and ms) in front: each
/// job's duration first, its older ones after, and the jobs new to the row at the end. Past
/// `MAX_NAMES` names, those of jobs not in this run go.
fn merged(old: &[Entry<'_>], ran: &HashMap<&str, u64>) -> Vec<u8> {
    // A name twice in the row (edited by hand) counts once.
    let had: HashSet<&str> = old.iter().map(|e| e.name).collect();
    let new = ran.keys().filter(|n| !had.contains(*n)).count();
    let prune = had.len() + new > MAX_NAMES;
    let mut out = Vec::with_capacity(MAGIC.len() + (old.len().max(ran.len())) * 32);
    out.extend_from_slice(MAGIC);
    let mut seen = HashSet::with_capacity(ran.len() - new);
    for e in old {
        let first = ran.get(e.name).copied();
        if first.is_some() {
            seen.insert(e.name);
        } else if prune {
            continue;
        }
        let n = usize::from(first.is_some()) + e.count;
        put(&mut out, e.name, first.into_iter().chain(e.durations()), n);
    }
    for (name, &ms) in ran {
        if !seen.contains(name) {
            put(&mut out, name, std::iter::once(ms), 1);
        }
    }
    out
}

impl RunStore {
    /// The durations kept for `job_file` of the jobs in `jobs` (by name): `each` is given each
    /// such job's key and its durations, newest first, straight from the row. False when no
    /// row is kept (`each` was not called).
    pub fn kept_durations<K: Copy + Eq + std::hash::Hash>(
        &mut self,
        job_file: &str,
        jobs: &HashMap<&str, K>,
        mut each: impl FnMut(K, &mut dyn Iterator<Item = Duration>),
    ) -> Result<bool> {
        let Some(row) = self.kept_row(job_file)? else {
            return Ok(false);
        };
        let Some(entries) = entries(&row) else {
            return Ok(false);
        };
        for e in &entries {
            if let Some(key) = jobs.get(e.name) {
                each(*key, &mut e.durations().map(Duration::from_millis));
            }
        }
        Ok(true)
    }

    /// Adds the succeeded records of run `run_id` to `job_file`'s kept durations, in one
    /// transaction (two runs of a job file ending together both count). The first time, the
    /// job file's last runs are read instead (this run among them).
    pub fn keep_durations(&mut self, run_id: &str, job_file: &str) -> Result<()> {
        self.in_write(|s| s.keep_durations_in(run_id, job_file))
    }

    fn keep_durations_in(&mut self, run_id: &str, job_file: &str) -> Result<()> {
        let row = self.kept_row(job_file)?;
        let bytes = match row.as_deref().and_then(entries) {
            Some(old) => {
                let ran = self.succeeded_in(run_id)?;
                let ran: HashMap<&str, u64> = ran.iter().map(|(n, d)| (n.as_str(), *d)).collect();
                merged(&old, &ran)
            }
            // Every job of the job file's last runs, not only those of this one: a job that
            // failed or was left out of it keeps its history.
            None => {
                let found = self.recent_durations_by_name(job_file, KEPT)?;
                let mut out = MAGIC.to_vec();
                for (name, d) in &found {
                    let ms = d.iter().map(|d| d.as_millis() as u64);
                    put(&mut out, name, ms, d.len());
                }
                out
            }
        };
        self.conn
            .execute(
                "INSERT INTO durations (job_file, recent) VALUES (?1, ?2)
                 ON CONFLICT (job_file) DO UPDATE SET recent = excluded.recent",
                params![job_file, bytes],
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

    /// The row's bytes, if it holds bytes at all (a TEXT row is as good as none).
    fn kept_row(&mut self, job_file: &str) -> Result<Option<Vec<u8>>> {
        let value: Option<rusqlite::types::Value> = self
            .conn
            .query_row(
                "SELECT recent FROM durations WHERE job_file = ?1",
                params![job_file],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?;
        Ok(match value {
            Some(rusqlite::types::Value::Blob(b)) => Some(b),
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

    fn read(bytes: &[u8]) -> Option<Vec<(String, Vec<u64>)>> {
        let e = entries(bytes)?;
        Some(
            e.iter()
                .map(|e| (e.name.to_string(), e.durations().collect()))
                .collect(),
        )
    }

    #[test]
    fn a_run_goes_in_front_of_the_kept_durations_and_other_bytes_are_refused() {
        let mut row = MAGIC.to_vec();
        put(&mut row, "build", [1, 20, 300_000].into_iter(), 3);
        put(&mut row, "tëst[3]", std::iter::empty(), 0);
        put(&mut row, "long", 0..30, 30);
        let back = read(&row).unwrap();
        assert_eq!(back[0], ("build".into(), vec![1, 20, 300_000]));
        assert_eq!(back[1], ("tëst[3]".into(), vec![]));
        assert_eq!(back[2].1, (0..KEPT as u64).collect::<Vec<_>>());

        let ran = HashMap::from([("build", 7), ("new", u64::from(u32::MAX) * 4)]);
        let next = read(&merged(&entries(&row).unwrap(), &ran)).unwrap();
        assert_eq!(next[0], ("build".into(), vec![7, 1, 20, 300_000]));
        assert_eq!(
            next[1].1,
            Vec::<u64>::new(),
            "a job that did not run keeps its own"
        );
        assert_eq!(next[2].1.len(), KEPT);
        assert_eq!(next[3], ("new".into(), vec![u64::from(u32::MAX) * 4]));

        assert!(entries(&row[..row.len() - 1]).is_none(), "cut short");
        assert!(entries(b"{\"json\": [1]}").is_none());
        // The format before: a u32 name length first.
        assert!(entries(&[5, 0, 0, 0, b'q', b'u', b'i', b'c', b'k', 0]).is_none());
    }

    #[test]
    fn past_the_most_names_the_jobs_not_in_the_run_go() {
        let mut row = MAGIC.to_vec();
        for i in 0..MAX_NAMES {
            put(&mut row, &format!("old{i}"), std::iter::once(1), 1);
        }
        let ran = HashMap::from([("old3", 2), ("fresh", 3)]);
        let next = read(&merged(&entries(&row).unwrap(), &ran)).unwrap();
        let names: Vec<&str> = next.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["old3", "fresh"]);
        assert_eq!(next[0].1, vec![2, 1]);
    }
}
