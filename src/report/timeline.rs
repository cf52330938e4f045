//! A run laid out in time, from its records alone: one lane per worker slot (or per host, for
//! jobs that ran on one), each attempt a bar, failures known, and the critical path of
//! `needs` (records keep the jobs they waited for, `CompletedProcess::needs`). The terminal
//! (`timeline_text`) and the HTML report (`html::gantt`) both draw this.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::record::{CompletedProcess, Status};

/// One attempt of a job, drawn as a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The record's position in the slice the timeline was made from.
    pub rec: usize,
    pub job: String,
    pub start: Duration,
    pub end: Duration,
    pub status: Status,
    /// An attempt before the final one (`retries:`).
    pub earlier: bool,
    /// On the critical path (the final attempt only).
    pub critical: bool,
}

impl Bar {
    pub fn failed(&self) -> bool {
        self.status.is_failure()
    }
}

/// One row of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub label: String,
    pub bars: Vec<Bar>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Where the axis starts: the run's start, or its first job's if that was earlier.
    pub origin: SystemTime,
    /// Where the axis ends, from the origin.
    pub span: Duration,
    pub lanes: Vec<Lane>,
    /// The records (positions) on the critical path, first job first; empty when no job of
    /// the run needs another.
    pub critical: Vec<usize>,
    /// Records of jobs that never started a process (skipped, not needed, cancelled early).
    pub not_run: Vec<usize>,
    /// Records `--resume` carried over from an earlier run: they ran then, not in this run,
    /// so they are listed apart and set neither the axis nor the critical path.
    pub carried: Vec<usize>,
}

/// Which lane an attempt belongs to, in the order lanes are shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LaneKey {
    Slot(usize),
    Host(String),
    /// Records with neither (older records): laid out by overlap alone.
    Unplaced,
}

impl LaneKey {
    fn of(rec: &CompletedProcess) -> LaneKey {
        match (&rec.host, rec.slot) {
            (Some(h), _) => LaneKey::Host(h.clone()),
            (None, Some(s)) => LaneKey::Slot(s),
            (None, None) => LaneKey::Unplaced,
        }
    }

    fn label(&self, row: usize) -> String {
        let base = match self {
            LaneKey::Slot(s) => format!("slot {s}"),
            LaneKey::Host(h) => h.clone(),
            LaneKey::Unplaced => "jobs".to_string(),
        };
        if row == 0 {
            base
        } else {
            format!("{base} ({})", row + 1)
        }
    }
}

/// Whether a record's job started a process in this run (or tried to, in a slot): it has
/// bars, and a line in the joblog.
pub(super) fn ran(rec: &CompletedProcess) -> bool {
    rec.attempts > 0 && rec.carried_from.is_none()
}

impl Timeline {
    /// Lays out `recs` (a run's job records; hooks are best left out) from `run_started`.
    pub fn new(recs: &[CompletedProcess], run_started: SystemTime, now: SystemTime) -> Timeline {
        let first = recs
            .iter()
            .filter(|r| ran(r))
            .flat_map(|r| {
                r.earlier_attempts
                    .iter()
                    .map(|a| a.started)
                    .chain([r.started])
            })
            .min();
        let origin = first.map_or(run_started, |f| f.min(run_started));
        let at = |t: SystemTime| t.duration_since(origin).unwrap_or_default();
        let critical = critical_path(recs);
        let on_path: HashSet<usize> = critical.iter().copied().collect();
        let mut groups: BTreeMap<LaneKey, Vec<Bar>> = BTreeMap::new();
        let mut not_run = Vec::new();
        let mut carried = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if r.carried_from.is_some() {
                carried.push(i);
                continue;
            }
            if !ran(r) {
                not_run.push(i);
                continue;
            }
            let bars = groups.entry(LaneKey::of(r)).or_default();
            for a in &r.earlier_attempts {
                bars.push(Bar {
                    rec: i,
                    job: r.job.clone(),
                    start: at(a.started),
                    end: at(a.finished.max(a.started)),
                    status: a.status,
                    earlier: true,
                    critical: false,
                });
            }
            let end = if r.status.is_running() {
                now
            } else {
                r.finished
            };
            bars.push(Bar {
                rec: i,
                job: r.job.clone(),
                start: at(r.started),
                end: at(end.max(r.started)),
                status: r.status,
                earlier: false,
                critical: on_path.contains(&i),
            });
        }
        let mut lanes = Vec::new();
        for (key, bars) in groups {
            for (row, bars) in pack(bars).into_iter().enumerate() {
                lanes.push(Lane {
                    label: key.label(row),
                    bars,
                });
            }
        }
        let span = lanes
            .iter()
            .flat_map(|l| l.bars.iter().map(|b| b.end))
            .max()
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        Timeline {
            origin,
            span,
            lanes,
            critical,
            not_run,
            carried,
        }
    }

    /// The carried records by the run they come from: `(run, job names)`, in the order the
    /// runs first occur.
    pub fn carried_by_run<'a>(&self, recs: &'a [CompletedProcess]) -> Vec<(&'a str, Vec<&'a str>)> {
        let mut by_run: Vec<(&str, Vec<&str>)> = Vec::new();
        for r in self.carried.iter().filter_map(|&i| recs.get(i)) {
            let from = r.carried_from.as_deref().unwrap_or_default();
            match by_run.iter_mut().find(|(id, _)| *id == from) {
                Some((_, names)) => names.push(&r.job),
                None => by_run.push((from, vec![&r.job])),
            }
        }
        by_run
    }

    /// How long the critical path took, from its first job's start to its last job's end.
    pub fn critical_span(&self, recs: &[CompletedProcess]) -> Option<Duration> {
        let first = recs.get(*self.critical.first()?)?;
        let last = recs.get(*self.critical.last()?)?;
        last.finished.duration_since(first.started).ok()
    }
}

/// Puts bars in as few rows as they need so that none overlaps another in its row (greedy,
/// by start time): one row for a worker slot, which runs one job at a time; more where jobs
/// overlapped (a host's several slots, background jobs that outlived their slot's turn).
fn pack(mut bars: Vec<Bar>) -> Vec<Vec<Bar>> {
    bars.sort_by_key(|b| (b.start, b.end));
    let mut rows: Vec<Vec<Bar>> = Vec::new();
    for b in bars {
        let free = rows
            .iter_mut()
            .find(|row| row.last().is_none_or(|last| last.end <= b.start));
        match free {
            Some(row) => row.push(b),
            None => rows.push(vec![b]),
        }
    }
    rows
}

/// The chain of `needs` that ended last: from the job that finished last, back through the
/// need of each job that finished last (the one it waited for longest), to a job that needed
/// nothing. Empty when no job of the run needs another.
fn critical_path(recs: &[CompletedProcess]) -> Vec<usize> {
    if !recs.iter().any(|r| !r.needs.is_empty()) {
        return Vec::new();
    }
    let by_index: HashMap<usize, usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| ran(r) && r.hook.is_none())
        .map(|(i, r)| (r.index, i))
        .collect();
    let Some(mut at) = latest(recs, by_index.values().copied()) else {
        return Vec::new();
    };
    let mut chain = vec![at];
    // Needs form no cycle (the plan refused them), but a record read back could say anything.
    while chain.len() <= recs.len() {
        let needs = recs[at]
            .needs
            .iter()
            .filter_map(|n| by_index.get(n).copied());
        let Some(prev) = latest(recs, needs) else {
            break;
        };
        chain.push(prev);
        at = prev;
    }
    chain.reverse();
    chain
}

/// The record among `cands` that finished last (the first in job-file order on a tie).
fn latest(recs: &[CompletedProcess], cands: impl Iterator<Item = usize>) -> Option<usize> {
    cands.max_by_key(|&i| (recs[i].finished, std::cmp::Reverse(recs[i].index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::from_millis;

    fn rec(name: &str, index: usize, slot: usize, from: i64, to: i64) -> CompletedProcess {
        let mut r =
            CompletedProcess::not_started(name, index, vec![], Status::Succeeded, "".into());
        r.error = None;
        r.attempts = 1;
        r.slot = Some(slot);
        r.started = from_millis(from);
        r.finished = from_millis(to);
        r.duration = Duration::from_millis((to - from) as u64);
        r
    }

    #[test]
    fn lanes_follow_slots_and_the_critical_path_follows_the_latest_need() {
        let a = rec("a", 0, 0, 1000, 2000);
        let b = rec("b", 1, 1, 1000, 3000);
        let mut c = rec("c", 2, 0, 3000, 5000);
        c.needs = vec![0, 1];
        let mut skipped = rec("d", 3, 0, 0, 0);
        skipped.attempts = 0;
        skipped.slot = None;
        let recs = [a, b, c, skipped];
        let t = Timeline::new(&recs, from_millis(1000), from_millis(9000));
        assert_eq!(t.lanes.len(), 2);
        assert_eq!(t.lanes[0].label, "slot 0");
        assert_eq!(t.lanes[0].bars.len(), 2);
        assert_eq!(t.critical, vec![1, 2]);
        assert_eq!(t.not_run, vec![3]);
        assert_eq!(t.span, Duration::from_secs(4));
        assert_eq!(t.critical_span(&recs), Some(Duration::from_secs(4)));
    }

    #[test]
    fn jobs_on_hosts_get_a_lane_per_host_and_a_row_per_overlap() {
        let mut a = rec("a", 0, 0, 0, 2000);
        let mut b = rec("b", 1, 1, 1000, 3000);
        let mut c = rec("c", 2, 2, 0, 1000);
        a.host = Some("node1".into());
        b.host = Some("node1".into());
        c.host = Some("node2".into());
        let t = Timeline::new(&[a, b, c], from_millis(0), from_millis(0));
        let labels: Vec<&str> = t.lanes.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["node1", "node1 (2)", "node2"]);
    }

    #[test]
    fn overlapping_jobs_without_slots_get_rows_of_their_own() {
        let mut a = rec("a", 0, 0, 0, 2000);
        let mut b = rec("b", 1, 0, 1000, 3000);
        let mut c = rec("c", 2, 0, 2000, 4000);
        for r in [&mut a, &mut b, &mut c] {
            r.slot = None;
        }
        let t = Timeline::new(&[a, b, c], from_millis(0), from_millis(0));
        assert_eq!(t.lanes.len(), 2);
        assert_eq!(t.lanes[1].label, "jobs (2)");
        assert!(t.critical.is_empty(), "no needs: no critical path");
    }

    #[test]
    fn carried_records_are_no_bars_and_set_no_axis() {
        let mut old = rec("old", 0, 0, 0, 1000);
        old.carried_from = Some("r0".into());
        let mut new = rec("new", 1, 0, 40_000, 41_000);
        new.needs = vec![0];
        let recs = [old, new];
        let t = Timeline::new(&recs, from_millis(40_000), from_millis(41_000));
        assert_eq!(t.origin, from_millis(40_000));
        assert_eq!(t.span, Duration::from_secs(1));
        assert_eq!(t.carried, vec![0]);
        assert_eq!(t.critical, vec![1]);
        assert_eq!(t.carried_by_run(&recs), vec![("r0", vec!["old"])]);
    }
}
