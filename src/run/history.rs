//! What a job file's history says before a run starts, read once from the store: when each
//! job counts as slow, and the timeout of each `timeout: auto` job. Settled here into the plan
//! the run runs and into the executor's options, so that the executor gets plain data.

use std::collections::HashMap;
use std::time::Duration;

use crate::exec::{JobHistory, Slow};
use crate::plan::{Plan, PlannedJob};
use crate::record::format_tenths;
use crate::store::{Result, RunStore};

/// Runs of a job looked at: its last 20 successful ones.
const RECENT: usize = crate::store::KEPT_DURATIONS;
/// Fewer successful runs than this say nothing about a job's usual time.
const ENOUGH: usize = 5;
/// A job is slow past twice its usual time, and at least a second over it.
const SLOW_FACTOR: u32 = 2;
const SLOW_MARGIN: Duration = Duration::from_secs(1);
/// `timeout: auto` is three times the usual time, and at least 10 s.
const AUTO_FACTOR: u32 = 3;
const AUTO_FLOOR: Duration = Duration::from_secs(10);

/// What each job's recent successful runs say, by job index (jobs with none are left out).
#[derive(Default)]
pub(super) struct Recent(HashMap<usize, Seen>);

/// What a job's recent successful runs say: how many there are (at most `RECENT`), and its
/// usual time when they are enough.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Seen {
    runs: usize,
    usual: Option<Duration>,
}

impl Seen {
    /// From the durations, newest first; only the first `RECENT` count. Nothing is allocated:
    /// a run of 2,000 jobs reads 2,000 of these before its first job starts.
    fn of(durations: impl Iterator<Item = Duration>) -> Seen {
        let mut last = [Duration::ZERO; RECENT];
        let mut runs = 0;
        for d in durations.take(RECENT) {
            last[runs] = d;
            runs += 1;
        }
        Seen {
            runs,
            usual: usual(&mut last[..runs]),
        }
    }
}

impl Recent {
    /// The history of the plan's jobs in the runs of `job_file`.
    pub(super) fn read(db: &mut RunStore, plan: &Plan, job_file: &str) -> Result<Recent> {
        // No job's history is longer than its job file's: with too few runs, only the jobs
        // whose note says how many they have are looked up (one query per job is the cost).
        // A large fan-out is not looked up job by job for slow warnings (100,000 lookups take
        // seconds before the first job starts); its `timeout: auto` jobs still are.
        let short = plan.jobs.len() > SLOW_LOOKUPS || db.runs_of_job_file(job_file)? < ENOUGH;
        let whole = !short && kept(plan);
        let mut by_job = HashMap::with_capacity(if whole { plan.jobs.len() } else { 0 });
        if whole {
            // Every job is looked up: in the durations the store keeps for the job file, or
            // where it keeps none yet, in its last runs, each read once.
            let jobs = plan
                .jobs
                .iter()
                .map(|j| (j.name.as_str(), j.index))
                .collect();
            let kept = db.kept_durations(job_file, &jobs, |index, durations| {
                by_job.insert(index, Seen::of(durations));
            })?;
            if !kept {
                let found = db.recent_durations_of(job_file, &jobs, RECENT)?;
                let seen = found.into_iter().map(|(i, d)| (i, Seen::of(d.into_iter())));
                by_job.extend(seen);
            }
        }
        // One query each: `timeout: auto` jobs, looked up in their records (a background job's
        // end, which comes after its run's, counts there), and beside a fan-out made as it
        // runs, the jobs made up front.
        let one_by_one = |j: &&PlannedJob| j.timeout_auto || (!short && !whole);
        for job in plan.jobs.iter().filter(one_by_one) {
            let d = db.recent_durations(job_file, (&job.name, Some(job.file_index)), RECENT)?;
            if !d.is_empty() {
                by_job.insert(job.index, Seen::of(d.into_iter()));
            }
        }
        Ok(Recent(by_job))
    }
}

/// Job files with more jobs than this get no slow warnings.
const SLOW_LOOKUPS: usize = 2000;

/// Whether the store keeps the durations of a run of `plan` for the next runs (and they read
/// them): not for a large fan-out (one made as it runs is never small), which gets no slow
/// warnings.
pub(super) fn kept(plan: &Plan) -> bool {
    plan.fans.is_empty() && plan.jobs.len() <= SLOW_LOOKUPS
}

/// A job's usual time: the p95 (nearest rank) of its recent runs, when there are enough
/// (their order is changed).
fn usual(runs: &mut [Duration]) -> Option<Duration> {
    if runs.len() < ENOUGH {
        return None;
    }
    let rank = (runs.len() * 95).div_ceil(100);
    Some(*runs.select_nth_unstable(rank - 1).1)
}

/// The plan with each `timeout: auto` settled, and what the executor is told of each job's
/// history (by job index; jobs with nothing to tell are left out), with the `notes` of the
/// options for the jobs they name.
pub(super) fn settle(
    mut plan: Plan,
    recent: &Recent,
    notes: &[(String, String)],
) -> (Plan, HashMap<usize, JobHistory>) {
    let mut told = HashMap::new();
    for job in &mut plan.jobs {
        let Seen { runs, usual } = recent.0.get(&job.index).copied().unwrap_or_default();
        let mut h = JobHistory {
            slow: usual.map(|usual| Slow {
                after: (usual * SLOW_FACTOR).max(usual + SLOW_MARGIN),
                usual,
                runs,
            }),
            notes: Vec::new(),
        };
        if job.timeout_auto {
            h.notes.push(match usual {
                Some(u) => {
                    let t = (u * AUTO_FACTOR).max(AUTO_FLOOR);
                    job.timeout = Some(t);
                    format!(
                        "timeout: auto is {} ({AUTO_FACTOR} × {}, the p95 of its last {runs} runs; at least {})",
                        humantime::format_duration(t),
                        format_tenths(u),
                        humantime::format_duration(AUTO_FLOOR)
                    )
                }
                None => format!(
                    "timeout: auto has too little history ({runs} run{}); no timeout this time",
                    if runs == 1 { "" } else { "s" }
                ),
            });
        }
        let given = notes.iter().filter(|(name, _)| *name == job.name);
        h.notes.extend(given.map(|(_, note)| note.clone()));
        if h != JobHistory::default() {
            told.insert(job.index, h);
        }
    }
    (plan, told)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn usual_time_is_the_p95_of_enough_runs() {
        assert_eq!(usual(&mut ms(&[100, 100, 100, 100])), None);
        assert_eq!(
            usual(&mut ms(&[100, 500, 100, 100, 100])),
            Some(Duration::from_millis(500))
        );
        let mut twenty: Vec<u64> = (1..=19).map(|_| 100).collect();
        twenty.push(9000);
        // One outlier in 20 is above the 95th percentile.
        assert_eq!(usual(&mut ms(&twenty)), Some(Duration::from_millis(100)));
    }

    #[test]
    fn only_the_last_runs_count() {
        // Newest first: the 21st run, far slower, is past the runs looked at.
        let mut runs = vec![100; RECENT];
        runs.push(60_000);
        let seen = Seen::of(ms(&runs).into_iter());
        assert_eq!(seen.runs, RECENT);
        assert_eq!(seen.usual, Some(Duration::from_millis(100)));
        let few = Seen::of(ms(&[100, 100]).into_iter());
        assert_eq!((few.runs, few.usual), (2, None));
    }

    fn plan(text: &str) -> Plan {
        Plan::from_text(std::path::Path::new("t.yaml"), text).unwrap()
    }

    #[test]
    fn auto_timeouts_and_slow_thresholds() {
        let p = plan(
            "jobs:\n  - name: a\n    command: x\n    timeout: auto\n  - name: b\n    command: x\n    timeout: auto\n  - name: c\n    command: x\n",
        );
        let mut recent = Recent::default();
        recent.0.insert(0, Seen::of(ms(&[100; 5]).into_iter()));
        recent.0.insert(1, Seen::of(ms(&[100; 2]).into_iter()));
        recent.0.insert(2, Seen::of(ms(&[4000; 6]).into_iter()));
        let (p, told) = settle(p, &recent, &[]);
        assert_eq!(p.jobs[0].timeout, Some(AUTO_FLOOR));
        assert!(told[&0].notes[0].starts_with("timeout: auto is 10s (3 × 0.1s"));
        assert_eq!(p.jobs[1].timeout, None);
        assert_eq!(
            told[&1].notes,
            ["timeout: auto has too little history (2 runs); no timeout this time"]
        );
        assert_eq!(told[&1].slow, None);
        let a = told[&0].slow.unwrap();
        assert_eq!(a.after, Duration::from_millis(1100));
        let c = told[&2].slow.unwrap();
        assert_eq!((c.after, c.runs), (Duration::from_secs(8), 6));
        assert!(told[&2].notes.is_empty());
        assert_eq!(p.jobs[2].timeout, None);
    }
}
