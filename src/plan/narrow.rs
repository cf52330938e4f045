//! Narrowing a plan that has lazy fan-out (`--only`, `--skip`, `--resume`, `rerun`) without
//! making its fans' jobs: a fan is kept whole, dropped, or kept in part (`Picks`), and every
//! job keeps its index (the plan's indices then have gaps: `Plan::next_index`).

use std::collections::HashSet;
use std::sync::Arc;

use super::{Plan, PlannedJob, ReadItem};

/// What a narrowed plan keeps: each job made up front, and each fan's jobs.
#[derive(Clone)]
pub(super) struct Keep {
    pub(super) jobs: Vec<bool>,
    pub(super) fans: Vec<super::picks::Picks>,
}

impl Keep {
    fn of(plan: &Plan, all: bool) -> Keep {
        let picks = || match all {
            true => super::picks::Picks::all(),
            false => super::picks::Picks::none(),
        };
        Keep {
            jobs: vec![all; plan.jobs.len()],
            fans: plan.fans.iter().map(|_| picks()).collect(),
        }
    }

    /// Whether fan `f` keeps any job, of those the plan has.
    fn any(&self, plan: &Plan, f: usize) -> bool {
        let fan = &plan.fans[f];
        let both = self.fans[f].and(&fan.picks_or_all());
        both.next_from(0, fan.count).is_some()
    }

    /// Whether fan `f` keeps every job the plan has of it.
    fn whole(&self, plan: &Plan, f: usize) -> bool {
        let fan = &plan.fans[f];
        let dropped = self.fans[f].inverted().and(&fan.picks_or_all());
        dropped.next_from(0, fan.count).is_none()
    }
}

impl Plan {
    /// `Plan::select` of a plan with fan-out.
    pub(super) fn select_units(
        mut self,
        only: &[String],
        skip: &[String],
        with_deps: bool,
    ) -> Result<Plan, String> {
        let mut keep = Keep::of(&self, only.is_empty());
        for name in only {
            self.mark(&mut keep, name, true)?;
        }
        if with_deps && !only.is_empty() {
            self.keep_needed_units(&mut keep);
        }
        for name in skip {
            self.mark(&mut keep, name, false)?;
        }
        if with_deps && !skip.is_empty() {
            self.drop_dependent_units(&mut keep);
        }
        self.retain_units(keep, false);
        if self.jobs.is_empty() && self.fans.is_empty() {
            return Err("the selection leaves no job to run".to_string());
        }
        Ok(self)
    }

    /// `Plan::skipped_dependents` of a plan with fan-out (a fan by its base name).
    pub(super) fn skipped_units(&self, skip: &[String]) -> Vec<String> {
        let mut keep = Keep::of(self, true);
        for name in skip {
            let _ = self.mark(&mut keep, name, false);
        }
        let before = keep.clone();
        self.drop_dependent_units(&mut keep);
        self.dropped_names(&before, &keep)
    }

    /// `Plan::rerun_of` of a plan with fan-out: the job (made out of its fan first:
    /// `with_job_made`) and, with `dependents`, every unit that needs it, directly or not.
    pub(super) fn rerun_units(mut self, name: &str, dependents: bool) -> Option<Plan> {
        let at = self.jobs.iter().position(|j| j.name == name)?;
        let mut keep = Keep::of(&self, false);
        keep.jobs[at] = true;
        let mut changed = dependents;
        while changed {
            changed = false;
            let e = self.jobs.len();
            for u in 0..e + self.fans.len() {
                let kept = if u < e {
                    keep.jobs[u]
                } else {
                    keep.any(&self, u - e)
                };
                let needs = self.needs_of(u);
                if !kept && self.needs_kept(needs, &keep) {
                    match u < e {
                        true => keep.jobs[u] = true,
                        false => keep.fans[u - e] = super::picks::Picks::all(),
                    }
                    changed = true;
                }
            }
        }
        self.retain_units(keep, false);
        Some(self)
    }

    /// Whether a need names a job or a fan's job that `keep` keeps.
    fn needs_kept(&self, needs: &[super::Need], keep: &Keep) -> bool {
        needs.iter().any(|n| {
            n.jobs
                .iter()
                .any(|&d| self.at(d).is_some_and(|p| keep.jobs[p]))
                || n.fans.iter().any(|&f| keep.any(self, f))
        })
    }

    /// The plan with the fan job named `name` made and put with the jobs made up front, if a
    /// fan has it (`rerun` of one job of a fan-out makes just that job).
    pub fn with_job_made(mut self, name: &str) -> Result<Plan, String> {
        let found = self
            .fans
            .iter()
            .enumerate()
            .find_map(|(f, fan)| Some((f, fan.k_of(name).filter(|&k| fan.kept(k))?)));
        if let Some((f, k)) = found {
            self.make_out(f, k)?;
        }
        Ok(self)
    }

    /// The position in `jobs` of the job with index `index`.
    fn at(&self, index: usize) -> Option<usize> {
        self.jobs.binary_search_by_key(&index, |j| j.index).ok()
    }

    /// Marks what a name on the command line stands for as kept (or not): a job, every job
    /// of a fanned-out entry (`square`), or one of them (`square[3]`).
    pub(super) fn mark(&self, keep: &mut Keep, name: &str, to: bool) -> Result<(), String> {
        let mut found = false;
        for (p, j) in self.jobs.iter().enumerate() {
            let item_of = j.name.len() > name.len()
                && j.name.starts_with(name)
                && j.name[name.len()..].starts_with('[');
            if j.name == name || item_of {
                keep.jobs[p] = to;
                found = true;
            }
        }
        for (f, fan) in self.fans.iter().enumerate() {
            if fan.base == name {
                keep.fans[f] = if to {
                    super::picks::Picks::all()
                } else {
                    super::picks::Picks::none()
                };
                found = true;
            } else if let Some(k) = fan.k_of(name).filter(|&k| fan.kept(k)) {
                keep.fans[f].set(k, to);
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        let names: Vec<&str> = self
            .jobs
            .iter()
            .map(|j| j.name.as_str())
            .chain(self.fans.iter().map(|f| f.base.as_str()))
            .collect();
        let hint = crate::error::suggest(name, &names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        Err(format!("no job `{name}` in the job file{hint}"))
    }

    /// The needs of unit `u`: a job made up front, then the fans.
    fn needs_of(&self, u: usize) -> &[super::Need] {
        match u.checked_sub(self.jobs.len()) {
            Some(f) => &self.fans[f].needs,
            None => &self.jobs[u].needs,
        }
    }

    /// Marks, too, everything the kept jobs need, directly or not (a fan whole).
    pub(super) fn keep_needed_units(&self, keep: &mut Keep) {
        let e = self.jobs.len();
        let mut stack: Vec<usize> = (0..e).filter(|&p| keep.jobs[p]).collect();
        stack.extend(
            (0..self.fans.len())
                .filter(|&f| keep.any(self, f))
                .map(|f| e + f),
        );
        let mut seen: HashSet<usize> = stack.iter().copied().collect();
        while let Some(u) = stack.pop() {
            let needs = self.needs_of(u);
            for n in needs {
                for p in n.jobs.iter().filter_map(|&d| self.at(d)) {
                    keep.jobs[p] = true;
                    if seen.insert(p) {
                        stack.push(p);
                    }
                }
                for &f in &n.fans {
                    keep.fans[f] = super::picks::Picks::all();
                    if seen.insert(e + f) {
                        stack.push(e + f);
                    }
                }
            }
        }
    }

    /// Whether a need names a job or fan `keep` does not keep whole.
    fn needs_dropped(&self, needs: &[super::Need], keep: &Keep) -> bool {
        needs.iter().any(|n| {
            n.jobs
                .iter()
                .any(|&d| self.at(d).is_none_or(|p| !keep.jobs[p]))
                || n.fans.iter().any(|&f| !keep.whole(self, f))
        })
    }

    /// Unmarks every unit that needs a job not kept, directly or not.
    pub(super) fn drop_dependent_units(&self, keep: &mut Keep) {
        let mut changed = true;
        while changed {
            changed = false;
            for p in 0..self.jobs.len() {
                if keep.jobs[p] && self.needs_dropped(&self.jobs[p].needs, keep) {
                    keep.jobs[p] = false;
                    changed = true;
                }
            }
            for f in 0..self.fans.len() {
                if keep.any(self, f) && self.needs_dropped(&self.fans[f].needs, keep) {
                    keep.fans[f] = super::picks::Picks::none();
                    changed = true;
                }
            }
        }
    }

    /// The units `keep` leaves out that it kept before `drop_dependent_units`, by name.
    pub(super) fn dropped_names(&self, before: &Keep, after: &Keep) -> Vec<String> {
        let jobs = (0..self.jobs.len()).filter(|&p| before.jobs[p] && !after.jobs[p]);
        let fans = (0..self.fans.len()).filter(|&f| before.any(self, f) && !after.any(self, f));
        jobs.map(|p| self.jobs[p].name.clone())
            .chain(fans.map(|f| self.fans[f].base.clone()))
            .collect()
    }

    /// Keeps what `keep` keeps, every job at its index; needs on what is dropped are
    /// dropped. When what is dropped `succeeded` earlier, an `if: failure` need on it alone
    /// stays, with nothing left to wait for: it is unmet, so the job is not needed.
    pub(super) fn retain_units(&mut self, keep: Keep, succeeded: bool) {
        let mut new_fan = vec![usize::MAX; self.fans.len()];
        let mut fans = Vec::new();
        for (f, (mut fan, picks)) in std::mem::take(&mut self.fans)
            .into_iter()
            .zip(keep.fans)
            .enumerate()
        {
            let both = picks.and(&fan.picks_or_all());
            fan.picks = (both != super::picks::Picks::all()).then(|| Arc::new(both));
            if !fan.is_empty() {
                new_fan[f] = fans.len();
                fans.push(fan);
            }
        }
        let mut jobs: Vec<PlannedJob> = std::mem::take(&mut self.jobs)
            .into_iter()
            .zip(keep.jobs)
            .filter_map(|(j, k)| k.then_some(j))
            .collect();
        let kept: HashSet<usize> = jobs.iter().map(|j| j.index).collect();
        let fix = |needs: &mut Vec<super::Need>| {
            needs.retain_mut(|n| {
                let had = !n.jobs.is_empty() || !n.fans.is_empty();
                n.jobs.retain(|d| kept.contains(d));
                n.fans = n
                    .fans
                    .iter()
                    .filter(|&&f| new_fan[f] != usize::MAX)
                    .map(|&f| new_fan[f])
                    .collect();
                super::select::still_a_need(n, had, succeeded)
            });
        };
        jobs.iter_mut().for_each(|j| fix(&mut j.needs));
        fans.iter_mut().for_each(|f| fix(&mut f.needs));
        self.jobs = jobs;
        self.fans = fans;
    }

    /// Job `k` of fan `f` made now and put with the jobs made up front (`rerun` gives it
    /// another command line); the fan keeps its other jobs, and what needs the fan needs it
    /// too.
    pub(super) fn make_out(&mut self, f: usize, k: usize) -> Result<usize, String> {
        let fan = &self.fans[f];
        let item = match fan.range_item(k) {
            Some(i) => i,
            None => nth_item(fan, k)?,
        };
        let job = fan
            .job(k, &item)
            .map_err(|e| format!("{}: {e}", fan.name(k)))?;
        let index = job.index;
        self.fans[f].pick(k, false);
        let p = self.jobs.partition_point(|j| j.index < index);
        self.jobs.insert(p, job);
        for needs in self.jobs.iter_mut().map(|j| &mut j.needs) {
            add_job(needs, f, index);
        }
        for fan in &mut self.fans {
            add_job(&mut fan.needs, f, index);
        }
        Ok(p)
    }
}

fn add_job(needs: &mut [super::Need], f: usize, index: usize) {
    for n in needs.iter_mut().filter(|n| n.fans.contains(&f)) {
        n.jobs.push(index);
    }
}

/// Item `k` of a fan's file, read up to it.
fn nth_item(fan: &super::Fan, k: usize) -> Result<String, String> {
    let rx = fan.open(Box::new(|| {})).expect("a file fan");
    match rx.into_iter().nth(k) {
        Some(ReadItem::Item(s)) => Ok(s),
        Some(ReadItem::Bad { why, .. }) => Err(why),
        None => Err(format!("{} has no item {k}", fan.name(k))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "jobs:\n  - {name: pre, command: 'true'}\n  - name: sq\n    command: 'echo {item}'\n    for_each: {range: [1, 5000]}\n    needs: [pre]\n  - {name: after, command: 'true', needs: [sq]}\n  - {name: other, command: 'true'}\n";

    fn plan() -> Plan {
        Plan::from_text(std::path::Path::new("t.yaml"), YAML).unwrap()
    }

    #[test]
    fn only_one_item_keeps_the_fan_lazy_with_what_it_needs() {
        let p = plan().select(&["sq[7]".into()], &[], true).unwrap();
        assert_eq!(p.fans.len(), 1);
        assert_eq!(p.len_hint(), Some(2), "sq[7] and pre");
        assert_eq!(p.jobs[0].name, "pre");
        assert_eq!(p.next_index(0), Some(0));
        assert_eq!(
            p.next_index(1),
            Some(7),
            "sq[7] is job 6 of the fan, index 7"
        );
        assert_eq!(p.next_index(8), None);
        assert_eq!(p.position(7), Some(7));
        assert_eq!(p.position(8), None);
    }

    #[test]
    fn skip_of_an_item_drops_what_needs_the_fan_and_keeps_the_indices() {
        let p = plan().select(&[], &["sq[3]".into()], true).unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["pre", "other"]);
        assert_eq!(p.jobs[1].index, 5002, "its place in the job file");
        assert_eq!(p.fans[0].len(), Some(4999));
        assert!(!p.fans[0].kept(2));
        assert_eq!(plan().skipped_dependents(&["sq[3]".into()]), ["after"]);
    }

    #[test]
    fn rerun_of_a_fan_job_makes_it_alone_and_brings_what_needs_it() {
        let p = plan().with_job_made("sq[9]").unwrap();
        let p = p.rerun_of("sq[9]", true).unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["sq[9]", "after"]);
        assert!(p.fans.is_empty());
        assert_eq!(
            p.jobs[1].needs[0].jobs,
            [9],
            "after waits for the rerun job only"
        );
        assert_eq!(p.jobs[0].argv, ["echo", "9"]);
    }
}
