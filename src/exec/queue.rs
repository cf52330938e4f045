//! The executor's one view of the plan: jobs by index, what each needs and what needs it,
//! group limits and the halt policy. The scheduler reads the plan through this alone, so that
//! how jobs are produced (a list made up front today; fan-out expanded as it is dispatched
//! later) can change without touching the scheduler.

use std::sync::Arc;

use crate::plan::{HaltSpec, Hooks, Plan, PlannedJob};

pub struct JobQueue {
    plan: Arc<Plan>,
    /// For each job, the jobs that need it.
    dependents: Vec<Vec<usize>>,
}

impl JobQueue {
    pub fn new(plan: Arc<Plan>) -> JobQueue {
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.jobs.len()];
        for j in &plan.jobs {
            for &d in &j.needs {
                dependents[d].push(j.index);
            }
        }
        JobQueue { plan, dependents }
    }

    /// How many jobs the run has.
    pub fn len(&self) -> usize {
        self.plan.jobs.len()
    }

    pub fn job(&self, index: usize) -> &PlannedJob {
        &self.plan.jobs[index]
    }

    /// Every job, in job-file order.
    pub fn jobs(&self) -> impl Iterator<Item = &PlannedJob> {
        self.plan.jobs.iter()
    }

    /// How many jobs `index` waits for.
    pub fn needs_count(&self, index: usize) -> usize {
        self.plan.jobs[index].needs.len()
    }

    /// The jobs that need `index`.
    pub fn dependents(&self, index: usize) -> &[usize] {
        &self.dependents[index]
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
