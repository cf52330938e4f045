//! `needs:` resolved from names to jobs (a fanned-out job stands for all its items), and the
//! check that the jobs can run in some order.

use std::collections::HashMap;

use super::locator::Locator;
use super::names::Entry;
use super::{Need, PlannedJob};
use crate::error::SpecError;
use crate::spec::Seg;

/// The needs of each entry, as entries (for the cycle check) and as the jobs to wait for.
struct Edges {
    entries: Vec<Vec<usize>>,
    needs: Vec<Vec<Need>>,
}

/// Sets every job's `needs` from its entry's `needs:`, once the names are final.
pub(super) fn resolve_needs(
    entries: &[Entry],
    jobs: &mut [PlannedJob],
    wait: bool,
    loc: &Locator<'_>,
) -> Result<(), SpecError> {
    let mut edges = edges_of(entries, jobs, wait, loc)?;
    if let Some(cycle) = find_cycle(&edges.entries) {
        let names: Vec<&str> = cycle.iter().map(|&e| entries[e].base.as_str()).collect();
        return Err(loc.err(
            &loc.key(cycle[0], "needs"),
            None,
            format!(
                "the jobs depend on each other in a cycle: {}",
                names.join(" → ")
            ),
            Some("remove one of these `needs` so the jobs can run in some order".into()),
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        let mut needs: Vec<Need> = Vec::with_capacity(edges.needs[i].len());
        for n in std::mem::take(&mut edges.needs[i]) {
            if !needs.contains(&n) {
                needs.push(n);
            }
        }
        for j in e.jobs.clone() {
            jobs[j].needs = needs.clone();
        }
    }
    Ok(())
}

/// Every name in `needs:` looked up; an unknown name, or one that runs in the background of a
/// run that does not wait for it, is an error at that name.
fn edges_of(
    entries: &[Entry],
    jobs: &[PlannedJob],
    wait: bool,
    loc: &Locator<'_>,
) -> Result<Edges, SpecError> {
    let by_name = Names::new(entries, jobs);
    let mut edges = Edges {
        entries: vec![Vec::new(); entries.len()],
        needs: vec![Vec::new(); entries.len()],
    };
    for (i, e) in entries.iter().enumerate() {
        for (k, spec) in e.needs.iter().enumerate() {
            let need = &spec.job;
            let mut at = loc.key(i, "needs");
            at.push(Seg::Index(k));
            let Some((target_entry, idxs)) = by_name.resolve(need, entries, jobs) else {
                // Not the job itself: a job cannot need itself.
                let names: Vec<&str> = by_name
                    .entries
                    .keys()
                    .copied()
                    .filter(|n| *n != e.base)
                    .collect();
                let hint =
                    crate::error::suggest(need, &names).map(|s| format!("did you mean `{s}`?"));
                return Err(loc.err(
                    &at,
                    Some(e.base.clone()),
                    format!("`needs` names an unknown job `{need}`"),
                    hint,
                ));
            };
            if idxs.iter().any(|&j| jobs[j].background) && !wait {
                return Err(loc.err(
                    &at,
                    Some(e.base.clone()),
                    format!("`{need}` runs in the background, and the run does not wait for it"),
                    Some("add `wait: true` at the top of the job file, or drop this need".into()),
                ));
            }
            edges.entries[i].push(target_entry);
            edges.needs[i].push(Need {
                name: need.clone(),
                jobs: idxs,
                fans: Vec::new(),
                when: spec.when,
            });
        }
    }
    Ok(edges)
}

/// What a name in `needs:` can stand for: an entry, or one job.
struct Names<'a> {
    entries: HashMap<&'a str, usize>,
    jobs: HashMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    fn new(entries: &'a [Entry], jobs: &'a [PlannedJob]) -> Self {
        let mut by_entry: HashMap<&str, usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_entry.insert(e.base.as_str(), i);
        }
        let mut by_job: HashMap<&str, usize> = HashMap::new();
        for j in jobs {
            by_job.insert(j.name.as_str(), j.index);
        }
        Names {
            entries: by_entry,
            jobs: by_job,
        }
    }

    /// The entry a need points at and the jobs it waits for.
    fn resolve(
        &self,
        need: &str,
        entries: &[Entry],
        jobs: &[PlannedJob],
    ) -> Option<(usize, Vec<usize>)> {
        if let Some(&e) = self.entries.get(need) {
            Some((e, entries[e].jobs.clone().collect()))
        } else if let Some(&j) = self.jobs.get(need) {
            Some((jobs[j].entry, vec![j]))
        } else {
            // `job[3]`: the fourth item of a fanned-out job, by position.
            need.strip_suffix(']')
                .and_then(|n| n.rsplit_once('['))
                .and_then(|(b, idx)| Some((*self.entries.get(b)?, idx.parse::<usize>().ok()?)))
                .filter(|(e, idx)| {
                    let e = &entries[*e];
                    e.fanned && e.lazy.is_none() && *idx < e.jobs.len()
                })
                .map(|(e, idx)| (e, vec![entries[e].jobs.start + idx]))
        }
    }
}

/// A cycle in the entry graph, as the entries along it, first repeated at the end.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the stack, 2 done
    let mut state = vec![0u8; edges.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..edges.len() {
        if state[start] != 0 {
            continue;
        }
        stack.push((start, 0));
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < edges[node].len() {
                let to = edges[node][*next];
                *next += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == to).expect("on stack");
                        let mut cycle: Vec<usize> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        cycle.push(to);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}
