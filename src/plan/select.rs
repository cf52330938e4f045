//! Choosing which jobs of a plan run: `--only`/`--skip` selections, `--resume`, and `rerun`'s
//! one job (with what needs it).

use std::collections::HashSet;
use std::path::PathBuf;

use super::{Condition, Input, Plan};

impl Plan {
    /// Keeps the jobs named by `only` (all if empty) minus those named by `skip`. With
    /// `with_deps`, `only` also keeps what the chosen jobs need, and `skip` also drops what needs
    /// a skipped job; without it, needs on dropped jobs are simply forgotten. A fanned-out job
    /// is named by its base name (`square`) or one item (`square[3]`).
    pub fn select(self, only: &[String], skip: &[String], with_deps: bool) -> Result<Plan, String> {
        if only.is_empty() && skip.is_empty() {
            return Ok(self);
        }
        if !self.fans.is_empty() {
            return self.select_units(only, skip, with_deps);
        }
        let mut plan = self;
        plan.select_made(only, skip, with_deps)?;
        Ok(plan)
    }

    fn select_made(
        &mut self,
        only: &[String],
        skip: &[String],
        with_deps: bool,
    ) -> Result<(), String> {
        let mut keep = vec![only.is_empty(); self.jobs.len()];
        for name in only {
            for i in self.jobs_named(name)? {
                keep[i] = true;
            }
        }
        if with_deps && !only.is_empty() {
            self.keep_needed(&mut keep);
        }
        for name in skip {
            for i in self.jobs_named(name)? {
                keep[i] = false;
            }
        }
        if with_deps && !skip.is_empty() {
            self.drop_dependents(&mut keep);
        }
        self.retain_jobs(&keep, false);
        if self.jobs.is_empty() {
            return Err("the selection leaves no job to run".to_string());
        }
        Ok(())
    }

    /// The jobs `--skip` leaves out only because they need a skipped job (directly or not),
    /// by name: what a run says it left out too.
    pub fn skipped_dependents(&self, skip: &[String]) -> Vec<String> {
        if !self.fans.is_empty() {
            return self.skipped_units(skip);
        }
        let mut keep = vec![true; self.jobs.len()];
        for name in skip {
            for i in self.jobs_named(name).unwrap_or_default() {
                keep[i] = false;
            }
        }
        let direct = keep.clone();
        self.drop_dependents(&mut keep);
        (0..keep.len())
            .filter(|&i| direct[i] && !keep[i])
            .map(|i| self.jobs[i].name.clone())
            .collect()
    }

    /// The jobs a name on the command line stands for: one job, or every item of a fanned-out
    /// one; none is an error with a suggestion.
    fn jobs_named(&self, name: &str) -> Result<Vec<usize>, String> {
        let found: Vec<usize> = self
            .jobs
            .iter()
            .filter(|j| {
                j.name == name
                    || (j.name.len() > name.len()
                        && j.name.starts_with(name)
                        && j.name[name.len()..].starts_with('['))
            })
            .map(|j| j.index)
            .collect();
        if found.is_empty() {
            let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
            let hint = crate::error::suggest(name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(format!("no job `{name}` in the job file{hint}"));
        }
        Ok(found)
    }

    /// Marks, too, everything the marked jobs need, directly or not.
    fn keep_needed(&self, keep: &mut [bool]) {
        let mut stack: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
        while let Some(i) = stack.pop() {
            for d in self.jobs[i].needed_jobs() {
                if !keep[d] {
                    keep[d] = true;
                    stack.push(d);
                }
            }
        }
    }

    /// Unmarks every job that needs an unmarked one, directly or not.
    fn drop_dependents(&self, keep: &mut [bool]) {
        // Jobs are not in dependency order, so repeat until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..keep.len() {
                if keep[i] && self.jobs[i].needed_jobs().any(|d| !keep[d]) {
                    keep[i] = false;
                    changed = true;
                }
            }
        }
    }

    /// Keeps the jobs marked in `keep`, renumbered in order; needs on dropped jobs are dropped.
    /// When the dropped jobs are those that `succeeded` earlier, an `if: failure` need on them
    /// alone stays, with no job left to wait for: it is unmet, so the job is not needed.
    pub(super) fn retain_jobs(&mut self, keep: &[bool], succeeded: bool) {
        let mut new_index = vec![usize::MAX; keep.len()];
        let mut jobs = Vec::with_capacity(keep.iter().filter(|k| **k).count());
        for (i, mut j) in std::mem::take(&mut self.jobs).into_iter().enumerate() {
            if keep[i] {
                new_index[i] = jobs.len();
                j.index = jobs.len();
                jobs.push(j);
            }
        }
        for j in &mut jobs {
            j.needs.retain_mut(|n| {
                let had = !n.jobs.is_empty();
                n.jobs = n
                    .jobs
                    .iter()
                    .filter(|&&d| new_index[d] != usize::MAX)
                    .map(|&d| new_index[d])
                    .collect();
                still_a_need(n, had, succeeded)
            });
        }
        self.jobs = jobs;
    }

    /// Keeps only the job named `name` (exactly: one item of a fanned-out job) for `rerun`, and
    /// with `dependents` every job that needs it, directly or not; their needs on the jobs
    /// left out are forgotten, so they run in need order after it. `None`: no such job.
    pub fn rerun_of(mut self, name: &str, dependents: bool) -> Option<Plan> {
        if !self.fans.is_empty() {
            return self.rerun_units(name, dependents);
        }
        let at = self.jobs.iter().position(|j| j.name == name)?;
        let mut keep = vec![false; self.jobs.len()];
        keep[at] = true;
        let mut changed = dependents;
        while changed {
            changed = false;
            for i in 0..keep.len() {
                if !keep[i] && self.jobs[i].needed_jobs().any(|d| keep[d]) {
                    keep[i] = true;
                    changed = true;
                }
            }
        }
        self.retain_jobs(&keep, false);
        Some(self)
    }

    /// The job named `name` given another command line and directory (`rerun` runs the ones
    /// its record holds); its definition hash follows, as it says what the record ran.
    pub fn with_command(
        mut self,
        name: &str,
        command: (Vec<String>, Option<PathBuf>, Input),
    ) -> Plan {
        if let Some(j) = self.jobs.iter_mut().find(|j| j.name == name) {
            (j.argv, j.cwd, j.stdin) = command;
            j.def_hash = super::definition_hash(j);
        }
        self
    }

    /// Where the job at `file_index` of the job file's whole plan stands in this one (a
    /// record's `index` is its job's `file_index`), if this plan has it.
    pub fn position(&self, file_index: usize) -> Option<usize> {
        // A plan with lazy fan-out is narrowed without renumbering (`narrow`).
        if self.fans.iter().any(|f| f.holds(file_index)) {
            return Some(file_index);
        }
        // Narrowing keeps the jobs in job-file order.
        self.jobs
            .binary_search_by_key(&file_index, |j| j.file_index)
            .ok()
            .map(|p| self.jobs[p].index)
    }

    /// Leaves out the jobs that already succeeded (same name, same definition) in an earlier
    /// run; what needed them runs without waiting, and what runs only if they fail is not
    /// needed. Returns the jobs left out, by name, with their place in the job file (the
    /// records carried over for them take it).
    pub fn resume_from(
        &mut self,
        succeeded: &HashSet<(String, String)>,
    ) -> std::collections::HashMap<String, usize> {
        let keep: Vec<bool> = self
            .jobs
            .iter()
            .map(|j| !succeeded.contains(&(j.name.clone(), j.def_hash.clone())))
            .collect();
        let left_out = self
            .jobs
            .iter()
            .zip(&keep)
            .filter(|(_, k)| !**k)
            .map(|(j, _)| (j.name.clone(), j.file_index))
            .collect();
        self.retain_jobs(&keep, true);
        left_out
    }
}

/// Whether need `n` stays once the jobs it named were narrowed (`had`: it named any before).
/// One with jobs left stays; an `if: failure` need left without any stays too when they
/// were dropped for having `succeeded` earlier (it is then unmet: the job is not needed), or
/// when it named none. The one rule for a plan narrowed with fans and without.
pub(super) fn still_a_need(n: &super::Need, had: bool, succeeded: bool) -> bool {
    !n.jobs.is_empty()
        || !n.fans.is_empty()
        || (n.when == Condition::Failure && (succeeded || !had))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "jobs:
  - {name: build, command: 'true'}
  - {name: report, command: 'true', needs: [{job: build, if: failure}]}
  - {name: cleanup, command: 'true', needs: [{job: build, if: always}]}
  - {name: docs, command: 'true'}
";

    fn names(p: &Plan) -> Vec<&str> {
        p.jobs.iter().map(|j| j.name.as_str()).collect()
    }

    fn plan() -> Plan {
        Plan::from_text(std::path::Path::new("t.yaml"), YAML).unwrap()
    }

    #[test]
    fn only_and_skip_follow_conditioned_needs() {
        let p = plan().select(&["report".into()], &[], true).unwrap();
        assert_eq!(names(&p), ["build", "report"]);
        assert_eq!(p.jobs[1].needs[0].jobs, [0]);
        assert_eq!(p.jobs[1].needs[0].when, Condition::Failure);
        let p = plan().select(&[], &["build".into()], true).unwrap();
        assert_eq!(names(&p), ["docs"]);
    }

    #[test]
    fn skip_names_what_it_leaves_out_for_needing_a_skipped_job() {
        assert_eq!(
            plan().skipped_dependents(&["build".into()]),
            ["report", "cleanup"]
        );
        assert!(plan().skipped_dependents(&["report".into()]).is_empty());
    }

    #[test]
    fn without_deps_a_conditioned_need_on_a_dropped_job_is_forgotten() {
        let p = plan().select(&["report".into()], &[], false).unwrap();
        assert_eq!(names(&p), ["report"]);
        assert!(p.jobs[0].needs.is_empty());
    }

    #[test]
    fn resume_keeps_a_failure_need_on_jobs_that_succeeded_with_nothing_to_wait_for() {
        let mut p = plan();
        let done = [("build".to_string(), p.jobs[0].def_hash.clone())];
        p.resume_from(&done.into_iter().collect());
        assert_eq!(names(&p), ["report", "cleanup", "docs"]);
        assert_eq!(p.jobs[0].needs.len(), 1);
        assert!(p.jobs[0].needs[0].jobs.is_empty());
        assert!(p.jobs[1].needs.is_empty(), "always is met: it runs at once");
    }
}
