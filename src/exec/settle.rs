//! How a job's end is passed on to what needs it: a unit (a job, or a lazy fan-out as a
//! whole) needing it to succeed is skipped if it did not, a unit whose needs all ended is
//! released or recorded with why it does not run, and what is recorded unrun is passed on in
//! turn; after a halt, the ready jobs that may no longer start are recorded.

use std::collections::VecDeque;
use std::ops::Range;

use super::ends;
use super::needs::{self, Waiting};
use super::queue::Unit;
use super::sched::{Shared, State, describe};
use crate::record::{CompletedProcess, Status};

/// Jobs of one unit that ended the same way, to pass on: `count` of them, the first being
/// plan index `first`. A fan recorded as a whole is one of these, not one per job, so that
/// skipping a fan of millions holds nothing per job.
pub(super) struct Ended {
    first: usize,
    count: usize,
    status: Status,
    what: String,
}

/// What is left to pass on.
pub(super) type Todo = VecDeque<Ended>;

impl Shared {
    /// Passes how `index` ended on to what needs it: a unit needing it to succeed is skipped
    /// at once if it did not, and a unit whose needs have all ended is released. What is
    /// recorded without running is passed on in turn.
    pub(super) fn settle(&self, st: &mut State, index: usize, status: Status, what: String) {
        let slot = self.queue.unit_slot(self.queue.unit_of(index));
        if self.queue.dependents(slot).is_empty() {
            return;
        }
        let one = Ended {
            first: index,
            count: 1,
            status,
            what,
        };
        self.pass_on(st, VecDeque::from([one]));
    }

    /// `settle` for every job in `todo`, and for what that records in turn.
    pub(super) fn pass_on(&self, st: &mut State, mut todo: Todo) {
        let queue = &self.queue;
        while let Some(e) = todo.pop_front() {
            let slot = queue.unit_slot(queue.unit_of(e.first));
            for &(d, k) in queue.dependents(slot) {
                if st.recorded[d] {
                    continue;
                }
                st.waiting[d][k].ended(e.first, e.count, e.status);
                let need = &queue.unit_needs(queue.unit_at(d))[k];
                if needs::skips(need, e.status) {
                    let why = format!("needs `{}`, which {}", queue.name(e.first), e.what);
                    self.end_unit(st, d, Status::Skipped, why, &mut todo);
                } else if st.waiting[d].iter().all(Waiting::settled) {
                    self.release(st, d, &mut todo);
                }
            }
        }
    }

    /// A unit whose needs have all ended (none that had to succeed failed): made ready, or
    /// recorded with why it does not run.
    pub(super) fn release(&self, st: &mut State, d: usize, todo: &mut Todo) {
        let queue = &self.queue;
        let unit = queue.unit_at(d);
        let name = |i: usize| queue.name(i).into_owned();
        for (need, w) in queue.unit_needs(unit).iter().zip(&st.waiting[d]) {
            if let Some(why) = w.unmet(need, name) {
                return self.end_unit(st, d, Status::NotNeeded, why, todo);
            }
        }
        if let Some(h) = &st.halted
            && !queue.runs_after_halt(unit)
        {
            let why = format!("not started: {h}");
            return self.end_unit(st, d, Status::Skipped, why, todo);
        }
        match unit {
            Unit::Job(p) => {
                let job = queue.planned(p);
                st.ready
                    .entry(job.group.clone())
                    .or_default()
                    .insert(job.index);
            }
            Unit::Fan(f) => self.release_fan(st, d, f),
        }
    }

    /// Records every job of unit `d` not started yet as `status` (not needed: a note), and
    /// queues them to be passed on: a fan's one by one as they are made, as one entry.
    fn end_unit(&self, st: &mut State, d: usize, status: Status, why: String, todo: &mut Todo) {
        let queue = &self.queue;
        let (indices, fan): (Range<usize>, _) = match queue.unit_at(d) {
            Unit::Job(p) => {
                let i = queue.planned(p).index;
                (i..i + 1, None)
            }
            Unit::Fan(f) => {
                let ks = self.fan_rest(st, f, d);
                let fan = queue.fan(f);
                (fan.first + ks.start..fan.first + ks.end, Some(fan))
            }
        };
        let mut ended: Option<Ended> = None;
        for i in indices.filter(|&i| fan.is_none_or(|f| f.kept(i - f.first))) {
            let job = queue.job(i);
            let rec = if status == Status::NotNeeded {
                ends::not_needed(&job, why.clone())
            } else {
                ends::not_started(&job, status, why.clone())
            };
            match &mut ended {
                Some(e) => e.count += 1,
                None => {
                    ended = Some(Ended {
                        first: i,
                        count: 1,
                        status: rec.status,
                        what: describe(&rec),
                    })
                }
            }
            self.emit(st, rec);
        }
        todo.extend(ended);
    }

    /// Once a failure halted the run: every ready job that may not start now is recorded as
    /// not started, and passed on (a job that runs on failure or always may need it).
    pub(super) fn halt_ready(&self, st: &mut State) {
        let Some(h) = st.halted.clone() else { return };
        let queue = &self.queue;
        let stuck: Vec<usize> = st
            .ready
            .values()
            .flatten()
            .copied()
            .filter(|&i| !queue.runs_after_halt(queue.unit_of(i)))
            .collect();
        let mut todo = VecDeque::new();
        for i in stuck {
            let unit = queue.unit_of(i);
            let group = match unit {
                Unit::Fan(f) => queue.fan(f).group().cloned(),
                Unit::Job(p) => queue.planned(p).group.clone(),
            };
            if let Some(set) = st.ready.get_mut(&group) {
                set.remove(&i);
            }
            if let Unit::Fan(f) = unit {
                st.fans[f].offered = false;
            }
            let d = queue.unit_slot(unit);
            self.end_unit(
                st,
                d,
                Status::Skipped,
                format!("not started: {h}"),
                &mut todo,
            );
        }
        self.pass_on(st, todo);
    }

    /// Records a job that does not run, and passes that on to what needs it.
    pub(super) fn record_unrun(&self, st: &mut State, rec: CompletedProcess) {
        let (index, status, what) = (self.queue.position(&rec), rec.status, describe(&rec));
        self.emit(st, rec);
        self.settle(st, index, status, what);
    }
}
