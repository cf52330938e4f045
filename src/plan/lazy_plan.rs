//! What a plan with lazy fan-out entries answers without making their jobs: how many jobs
//! it has, a job's name, where an index stands; and, for what needs the whole list
//! (`--only`, `--skip`, `--resume`, `rerun`), the plan with every job made.

use std::borrow::Cow;

use super::{Fan, Plan, PlannedJob, ReadItem};

/// Where a plan index stands.
pub enum Located<'p> {
    /// A job made up front, at this position of `Plan::jobs`.
    Job(usize),
    /// Job `k` of a fan.
    Item(usize, &'p Fan, usize),
}

impl Plan {
    /// How many jobs the plan has; `None` while a fan's items file is not read.
    pub fn len_hint(&self) -> Option<usize> {
        self.fans
            .iter()
            .try_fold(self.jobs.len(), |n, f| Some(n + f.len()?))
    }

    /// The first plan index at `from` or after that is a job of this plan: a narrowed plan
    /// with fan-out keeps each job's index, so its indices have gaps (`--output ordered`
    /// steps through them with this).
    pub fn next_index(&self, from: usize) -> Option<usize> {
        let p = self.jobs.partition_point(|j| j.index < from);
        let job = self.jobs.get(p).map(|j| j.index);
        let fans = self.fans.iter().filter_map(|f| {
            let k = from.saturating_sub(f.first);
            f.next_kept(k).map(|k| f.first + k)
        });
        job.into_iter().chain(fans).min()
    }

    /// Where plan index `index` stands, if the plan has it.
    pub fn locate(&self, index: usize) -> Option<Located<'_>> {
        if let Some((f, fan)) = self.fans.iter().enumerate().find(|(_, f)| f.holds(index)) {
            return Some(Located::Item(f, fan, index - fan.first));
        }
        self.jobs
            .binary_search_by_key(&index, |j| j.index)
            .ok()
            .map(Located::Job)
    }

    /// The name of the job at plan index `index`, made without making the job.
    pub fn name_of(&self, index: usize) -> Cow<'_, str> {
        match self.locate(index) {
            Some(Located::Job(p)) => Cow::Borrowed(self.jobs[p].name.as_str()),
            Some(Located::Item(_, fan, k)) => Cow::Owned(fan.name(k)),
            None => Cow::Owned(format!("#{index}")),
        }
    }

    /// Every job made up front, and every fan's template, for checks on what all jobs share
    /// (`background`, `group`, where they run).
    pub fn any_job(&self, f: impl Fn(&PlannedJob) -> bool) -> bool {
        self.jobs.iter().any(&f) || self.fans.iter().any(|fan| f(&fan.stub(0)))
    }

    /// The plan with every fan's jobs made (a stream is read to its end), for what must see
    /// the whole list. An item that makes no job is an error naming it.
    pub fn materialized(mut self) -> Result<Plan, String> {
        if self.fans.is_empty() {
            return Ok(self);
        }
        let fans = std::mem::take(&mut self.fans);
        let mut made: Vec<Vec<PlannedJob>> = Vec::with_capacity(fans.len());
        let mut lost = 0;
        for fan in &fans {
            let (jobs, items) = fan_jobs(fan)?;
            // A stream (the last entry) was given room for the most items it may hold.
            if fan.count.is_none() {
                lost += crate::spec::MAX_ITEMS - items;
            }
            made.push(jobs);
        }
        let indices: Vec<Vec<usize>> = made
            .iter()
            .map(|jobs| jobs.iter().map(|j| j.index).collect())
            .collect();
        let mut all: Vec<PlannedJob> = std::mem::take(&mut self.jobs);
        for jobs in made {
            all.extend(jobs);
        }
        all.sort_by_key(|j| j.index);
        for j in &mut all {
            for n in &mut j.needs {
                for f in std::mem::take(&mut n.fans) {
                    n.jobs.extend(&indices[f]);
                }
            }
        }
        self.file_jobs -= lost;
        self.jobs = all;
        Ok(self)
    }
}

/// Every job of a fan that runs in this plan, in order, and how many items it has.
fn fan_jobs(fan: &Fan) -> Result<(Vec<PlannedJob>, usize), String> {
    let mut out = Vec::new();
    if let Some(n) = fan.count
        && fan.range_item(0).is_some()
    {
        out.reserve(fan.len().unwrap_or(n));
        let mut k = 0;
        while let Some(at) = fan.next_kept(k) {
            let item = fan.range_item(at).expect("a range");
            out.push(fan.job(at, &item)?);
            k = at + 1;
        }
        return Ok((out, n));
    }
    let rx = fan.open(Box::new(|| {})).expect("a file fan");
    let mut k = 0;
    for read in rx {
        let kept = fan.kept(k);
        match read {
            ReadItem::Item(s) if kept => {
                out.push(
                    fan.job(k, &s)
                        .map_err(|e| format!("{}: {e}", fan.name(k)))?,
                );
            }
            ReadItem::Bad { why, .. } if kept => return Err(why),
            _ => {}
        }
        k += 1;
    }
    Ok((out, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_range_makes_the_jobs_a_list_would() {
        let text = "jobs:\n  - name: sq\n    command: 'echo {item} {index}'\n    for_each: {range: [5, 2005, 2]}\n  - name: after\n    command: 'true'\n    needs: [sq]\n";
        let lazy = Plan::from_text(std::path::Path::new("t.yaml"), text).unwrap();
        assert_eq!(lazy.fans.len(), 1);
        assert_eq!(lazy.len_hint(), Some(1002));
        assert_eq!(lazy.jobs[0].index, 1001, "after the fan's 1001 jobs");
        assert_eq!(lazy.name_of(1), "sq[7]");
        let made = lazy.clone().materialized().unwrap();
        assert_eq!(made.jobs.len(), 1002);
        assert_eq!(made.jobs[1].argv, ["echo", "7", "1"]);
        assert_eq!(made.jobs[1].name, "sq[7]");
        assert_eq!(made.jobs[1001].needs[0].jobs.len(), 1001);
        let Some(Located::Item(0, fan, 1)) = lazy.locate(1) else {
            panic!("job 1 is the fan's second");
        };
        assert_eq!(fan.job(1, "7").unwrap(), made.jobs[1]);
    }
}
