//! The executor's one view of the plan: jobs by index, what each needs and what needs it,
//! group limits and the halt policy. The scheduler reads the plan through this alone: a lazy
//! fan-out entry (`plan::Fan`) is one unit here, whose jobs are made as they are dispatched
//! (`make`) and kept only while they run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::plan::{Condition, Fan, HaltSpec, Hooks, Located, Plan, PlannedJob};

/// What waits and is released as one: a job made up front (its position in `Plan::jobs`),
/// or a lazy fan-out entry (all its jobs share its needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Job(usize),
    Fan(usize),
}

/// A job as the scheduler sees it: the plan's, or one made from a fan's item.
pub(super) enum JobRef<'a> {
    Plan(&'a PlannedJob),
    Made(Arc<PlannedJob>),
}

impl std::ops::Deref for JobRef<'_> {
    type Target = PlannedJob;
    fn deref(&self) -> &PlannedJob {
        match self {
            JobRef::Plan(j) => j,
            JobRef::Made(j) => j,
        }
    }
}

pub struct JobQueue {
    plan: Arc<Plan>,
    /// For each unit (jobs, then fans), the units that need it, each with which of their
    /// needs names it.
    dependents: Vec<Vec<(usize, usize)>>,
    /// Jobs of fans that were made and have no record yet.
    made: Mutex<HashMap<usize, Arc<PlannedJob>>>,
}

impl JobQueue {
    pub fn new(plan: Arc<Plan>) -> JobQueue {
        let units = plan.jobs.len() + plan.fans.len();
        let mut dependents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); units];
        let e = plan.jobs.len();
        let needs = plan.jobs.iter().map(|j| &j.needs);
        let fan_needs = plan.fans.iter().map(|f| &f.needs);
        for (u, needs) in needs.chain(fan_needs).enumerate() {
            for (k, n) in needs.iter().enumerate() {
                for &d in &n.jobs {
                    let at = plan.jobs.binary_search_by_key(&d, |j| j.index);
                    dependents[at.expect("a need on a job of the plan")].push((u, k));
                }
                for &f in &n.fans {
                    dependents[e + f].push((u, k));
                }
            }
        }
        JobQueue {
            plan,
            dependents,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// How many units wait and are released: jobs made up front, then fans.
    pub(super) fn units(&self) -> usize {
        self.plan.jobs.len() + self.plan.fans.len()
    }

    /// How many jobs the run has, at least (a fan's items file may hold more).
    pub fn len(&self) -> usize {
        self.plan.jobs.len()
            + self
                .plan
                .fans
                .iter()
                .map(|f| f.len().unwrap_or(1))
                .sum::<usize>()
    }

    pub(super) fn unit_of(&self, index: usize) -> Unit {
        match self.plan.locate(index) {
            Some(Located::Job(p)) => Unit::Job(p),
            Some(Located::Item(f, _, _)) => Unit::Fan(f),
            None => panic!("job {index} is not in the plan"),
        }
    }

    /// The slot of unit `u` in the scheduler's per-unit state.
    pub(super) fn unit_slot(&self, u: Unit) -> usize {
        match u {
            Unit::Job(p) => p,
            Unit::Fan(f) => self.plan.jobs.len() + f,
        }
    }

    pub(super) fn unit_at(&self, slot: usize) -> Unit {
        match slot.checked_sub(self.plan.jobs.len()) {
            Some(f) => Unit::Fan(f),
            None => Unit::Job(slot),
        }
    }

    /// The needs of a unit.
    pub(super) fn unit_needs(&self, u: Unit) -> &[crate::plan::Need] {
        match u {
            Unit::Job(p) => &self.plan.jobs[p].needs,
            Unit::Fan(f) => &self.plan.fans[f].needs,
        }
    }

    pub(super) fn fan(&self, f: usize) -> &Fan {
        &self.plan.fans[f]
    }

    pub(super) fn fans(&self) -> &[Fan] {
        &self.plan.fans
    }

    /// The index of the job a record (its `index` is the job-file index) is of.
    pub fn position(&self, rec: &crate::record::CompletedProcess) -> usize {
        self.plan
            .position(rec.index)
            .expect("a record of a job of the plan")
    }

    /// How many jobs the job file's whole plan has (`Plan::file_jobs`).
    pub fn file_jobs(&self) -> usize {
        self.plan.file_jobs
    }

    /// Job `index`: the plan's, a fan's job made and not yet recorded, or (a fan's job not
    /// made) what the fan's template says of it.
    pub(super) fn job(&self, index: usize) -> JobRef<'_> {
        match self.plan.locate(index) {
            Some(Located::Job(p)) => JobRef::Plan(&self.plan.jobs[p]),
            Some(Located::Item(_, fan, k)) => {
                let made = self.made.lock().unwrap_or_else(|e| e.into_inner());
                match made.get(&index) {
                    Some(j) => JobRef::Made(j.clone()),
                    None => JobRef::Made(Arc::new(fan.stub(k))),
                }
            }
            None => panic!("job {index} is not in the plan"),
        }
    }

    /// Makes job `k` of fan `f` from its item, kept until its record is emitted (`forget`).
    pub(super) fn make(&self, f: usize, k: usize, item: &str) -> Result<usize, String> {
        let fan = &self.plan.fans[f];
        let job = fan.job(k, item)?;
        let index = job.index;
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.insert(index, Arc::new(job));
        Ok(index)
    }

    /// A fan's job was recorded: nothing keeps it any more.
    pub(super) fn forget(&self, index: usize) {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.remove(&index);
    }

    /// The job at position `p` of the jobs made up front.
    /// The name of job `index`, without making it (a fan's job is named from its item).
    pub(super) fn name(&self, index: usize) -> std::borrow::Cow<'_, str> {
        self.plan.name_of(index)
    }

    pub(super) fn planned(&self, p: usize) -> &PlannedJob {
        &self.plan.jobs[p]
    }

    /// Every job made up front, in job-file order.
    pub fn jobs(&self) -> impl Iterator<Item = &PlannedJob> {
        self.plan.jobs.iter()
    }

    /// The units that need unit slot `slot`, as (unit slot, which of its needs).
    pub(super) fn dependents(&self, slot: usize) -> &[(usize, usize)] {
        &self.dependents[slot]
    }

    /// Whether a unit may still start after a failure halted the run: it is a handler, all
    /// of whose needs are `if: failure` or `if: always`.
    pub(super) fn runs_after_halt(&self, u: Unit) -> bool {
        let needs = self.unit_needs(u);
        !needs.is_empty() && needs.iter().all(|n| n.when != Condition::Success)
    }

    /// Jobs of `group` that may run at once (no limit: `usize::MAX`).
    pub fn group_limit(&self, group: &str) -> usize {
        self.plan.groups.get(group).copied().unwrap_or(usize::MAX)
    }

    /// The hooks that run after `job`'s final attempt, if it has any.
    pub fn hooks(&self, job: &PlannedJob) -> Option<&Hooks> {
        self.plan
            .job_hooks
            .get(&job.entry)
            .filter(|h| !h.is_empty())
    }

    pub fn on_failure(&self) -> HaltSpec {
        self.plan.on_failure
    }
}
