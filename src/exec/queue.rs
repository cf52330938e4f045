//! The executor's one view of the plan: jobs by index, what each needs and what needs it,
//! group limits and the halt policy. The scheduler reads the plan through this alone, so that
//! how jobs are produced (a list made up front today; fan-out expanded as it is dispatched
//! later) can change without touching the scheduler.

use std::sync::Arc;

use crate::plan::{Condition, HaltSpec, Hooks, Plan, PlannedJob};

pub struct JobQueue {
    plan: Arc<Plan>,
    /// For each job, the jobs that need it, each with which of their needs names it.
    dependents: Vec<Vec<(usize, usize)>>,
}

impl JobQueue {
    pub fn new(plan: Arc<Plan>) -> JobQueue {
        let mut dependents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); plan.jobs.len()];
        for j in &plan.jobs {
            for (k, n) in j.needs.iter().enumerate() {
                for &d in &n.jobs {
                    dependents[d].push((j.index, k));
                }
            }
        }
        JobQueue { plan, dependents }
    }

    /// How many jobs the run has.
    pub fn len(&self) -> usize {
        self.plan.jobs.len()
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

    pub fn job(&self, index: usize) -> &PlannedJob {
        &self.plan.jobs[index]
    }

    /// Every job, in job-file order.
    pub fn jobs(&self) -> impl Iterator<Item = &PlannedJob> {
        self.plan.jobs.iter()
    }

    /// The jobs that need `index`, as (job, which of its needs).
    pub fn dependents(&self, index: usize) -> &[(usize, usize)] {
        &self.dependents[index]
    }

    /// Whether `index` may still start after a failure halted the run: it is a handler, all of
    /// whose needs are `if: failure` or `if: always`.
    pub fn runs_after_halt(&self, index: usize) -> bool {
        let needs = &self.plan.jobs[index].needs;
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
