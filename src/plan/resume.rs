//! `--resume` of a plan: which of its jobs succeeded in the run it resumes (same name, same
//! definition), found one record at a time (a fan-out's as bits, its jobs made one by one to
//! compare), and what the new run carries over for them (`Carried`).

use std::collections::HashMap;
use std::sync::mpsc::Receiver;

use super::narrow::Keep;
use super::picks::Picks;
use super::{Fan, Plan, ReadItem};
use crate::record::CompletedProcess;

/// The jobs of a plan that succeeded in an earlier run, gathered record by record.
pub struct Succeeded<'p> {
    plan: &'p Plan,
    by_name: HashMap<&'p str, usize>,
    jobs: Vec<bool>,
    fans: Vec<Picks>,
    count: usize,
    /// A fan's items file, read as far as the records asked (they come in job-file order).
    items: Vec<Option<(Receiver<ReadItem>, usize)>>,
}

/// The jobs of a plan that succeeded before: by position of the jobs made up front, and
/// each fan's as picks.
pub struct Done {
    jobs: Vec<bool>,
    fans: Vec<Picks>,
    count: usize,
}

impl Done {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What `--resume` leaves out: the jobs that succeeded in the run it resumes, whose records
/// the new run carries over (`run` writes them, reading the earlier run's again).
#[derive(Debug, Clone, Default)]
pub struct Carried {
    /// The run resumed.
    pub from: String,
    /// Jobs made up front, by name: their place in the job file now.
    jobs: HashMap<String, usize>,
    /// Fans, as the job file has them now, with the jobs of theirs left out.
    fans: Vec<(Fan, Picks)>,
    count: usize,
}

impl Carried {
    /// How many records are carried over.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The job-file index now of the job a record of the run resumed is of, if it is carried.
    pub fn index_of(&self, job: &str) -> Option<usize> {
        if let Some(&i) = self.jobs.get(job) {
            return Some(i);
        }
        self.fans.iter().find_map(|(fan, done)| {
            let k = fan.k_of(job)?;
            done.keeps(k).then_some(fan.first + k)
        })
    }
}

impl<'p> Succeeded<'p> {
    pub fn new(plan: &'p Plan) -> Succeeded<'p> {
        Succeeded {
            plan,
            by_name: plan
                .jobs
                .iter()
                .enumerate()
                .map(|(p, j)| (j.name.as_str(), p))
                .collect(),
            jobs: vec![false; plan.jobs.len()],
            fans: plan.fans.iter().map(|_| Picks::none()).collect(),
            count: 0,
            items: plan.fans.iter().map(|_| None).collect(),
        }
    }

    /// A record of a job that succeeded in the run resumed: its job is left out if the plan
    /// has it, defined the same. A fan's job is made to be compared, then dropped.
    pub fn add(&mut self, rec: &CompletedProcess) {
        if let Some(&p) = self.by_name.get(rec.job.as_str()) {
            if self.plan.jobs[p].def_hash == rec.def_hash && !self.jobs[p] {
                self.jobs[p] = true;
                self.count += 1;
            }
            return;
        }
        let plan = self.plan;
        let found = plan.fans.iter().enumerate().find_map(|(f, fan)| {
            let k = fan.k_of(&rec.job).filter(|&k| fan.kept(k))?;
            Some((f, k))
        });
        let Some((f, k)) = found else { return };
        let fan = &plan.fans[f];
        let item = match fan.range_item(k) {
            Some(i) => Some(i),
            None => self.file_item(f, k),
        };
        let same = item
            .and_then(|i| fan.job(k, &i).ok())
            .is_some_and(|j| j.def_hash == rec.def_hash);
        if same && !self.fans[f].keeps(k) {
            self.fans[f].set(k, true);
            self.count += 1;
        }
    }

    /// Item `k` of fan `f`'s file (a regular file, or a stream's spool: `Fan::spool`).
    fn file_item(&mut self, f: usize, k: usize) -> Option<String> {
        let fan = &self.plan.fans[f];
        let slot = &mut self.items[f];
        if slot.as_ref().is_none_or(|(_, at)| *at > k) {
            *slot = Some((fan.open(Box::new(|| {}))?, 0));
        }
        let (rx, at) = slot.as_mut()?;
        loop {
            let read = rx.recv().ok()?;
            *at += 1;
            if *at == k + 1 {
                return match read {
                    ReadItem::Item(s) => Some(s),
                    ReadItem::Bad { .. } => None,
                };
            }
        }
    }

    /// What was found, the plan no longer borrowed.
    pub fn done(self) -> Done {
        Done {
            jobs: self.jobs,
            fans: self.fans,
            count: self.count,
        }
    }
}

impl Plan {
    /// Leaves out the jobs that already succeeded in the run `from` (`succeeded`, gathered
    /// from its records); what needed them runs without waiting, and what runs only if they
    /// fail is not needed. Returns what the new run carries over for them.
    pub fn resume_with(&mut self, done: Done, from: &str) -> Carried {
        let Done { jobs, fans, count } = done;
        let left_out = self
            .jobs
            .iter()
            .zip(&jobs)
            .filter(|(_, done)| **done)
            .map(|(j, _)| (j.name.clone(), j.file_index))
            .collect();
        let carried_fans = self
            .fans
            .iter()
            .zip(&fans)
            .filter(|(_, done)| done.any_from(0))
            .map(|(f, done)| (f.clone(), done.clone()))
            .collect();
        if self.fans.is_empty() {
            let keep: Vec<bool> = jobs.iter().map(|done| !done).collect();
            self.retain_jobs(&keep, true);
        } else {
            let keep = Keep {
                jobs: jobs.iter().map(|done| !done).collect(),
                fans: fans.iter().map(Picks::inverted).collect(),
            };
            self.retain_units(keep, true);
        }
        Carried {
            from: from.to_string(),
            jobs: left_out,
            fans: carried_fans,
            count,
        }
    }
}
