//! How far each lazy fan-out entry has got while it runs: which of its items is next, the
//! one offered to the scheduler (at most one of a fan's jobs is ready at a time, so the
//! ready set stays small whatever the item count), and a file's items as its reader thread
//! hands them over.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Weak};

use super::ends;
use super::remote::array::MAX_TASKS;
use super::sched::{Shared, State};
use crate::plan::{FanSource, ReadItem};
use crate::record::Status;

#[derive(Default)]
pub(super) struct FanRun {
    /// A range's: items taken (made into jobs, or recorded) so far. A file's: the `k` of the
    /// item offered, or after it once taken.
    pub(super) next: usize,
    /// No item is left to offer (a range knows its count; a file's all came and were taken).
    pub(super) closed: bool,
    /// A file's items read ahead and their `k`s: its next one, and when its jobs go as job
    /// arrays, those of the array its next job is in.
    ahead: VecDeque<(usize, ReadItem)>,
    /// A file's: the `k` of the next item its reader hands over.
    read: usize,
    rx: Option<Receiver<ReadItem>>,
    /// A file's reader handed over its last item.
    ended: bool,
    /// Its jobs go as job arrays (background Slurm jobs), gathered from the items read.
    gathers: bool,
    /// Its needs are met: its jobs may start.
    released: bool,
    /// Its next job is in the ready set.
    pub(super) offered: bool,
}

impl Shared {
    /// Starts the reader of every fan that reads a file; each item read wakes the workers.
    pub(super) fn open_streams(self: &Arc<Self>) {
        let weak: Weak<Shared> = Arc::downgrade(self);
        for (f, fan) in self.queue.fans().iter().enumerate() {
            let w = weak.clone();
            let wake = Box::new(move || {
                if let Some(s) = w.upgrade() {
                    s.changed.notify_waiters();
                }
            });
            let gathers = self
                .backends
                .job_arrays()
                .is_some_and(|a| a.gathers(fan.first));
            let rx = fan.open(wake);
            let run = &mut self.state().fans[f];
            run.rx = rx;
            run.gathers = gathers;
        }
    }

    /// A fan whose needs are met: its first job is offered.
    pub(super) fn release_fan(&self, st: &mut State, d: usize, f: usize) {
        st.recorded[d] = true;
        st.fans[f].released = true;
        self.offer(st, f);
    }

    /// Puts a released fan's next job in the ready set, if it has one now.
    fn offer(&self, st: &mut State, f: usize) {
        let fan = self.queue.fan(f);
        let run = &mut st.fans[f];
        if !run.released || run.offered || run.closed {
            return;
        }
        let has_next = match fan.count {
            Some(_) if matches!(fan.source, FanSource::Range { .. }) => {
                // A narrowed plan keeps some of the fan's jobs: the others are no jobs here.
                match fan.next_kept(run.next) {
                    Some(k) => run.next = k,
                    None => run.closed = true,
                }
                !run.closed
            }
            _ => {
                fill_ahead(run, fan, 1, usize::MAX, false);
                run.closed = run.ahead.is_empty() && run.ended;
                if let Some(&(k, _)) = run.ahead.front() {
                    run.next = k;
                }
                !run.ahead.is_empty()
            }
        };
        if !has_next {
            return;
        }
        run.offered = true;
        let group = fan.group().cloned();
        st.ready
            .entry(group)
            .or_default()
            .insert(fan.first + run.next);
    }

    /// Offers the next job of every fan whose file had none ready.
    pub(super) fn poll_streams(&self, st: &mut State) {
        for f in 0..st.fans.len() {
            if st.fans[f].rx.is_some() {
                self.offer(st, f);
            }
        }
    }

    /// Whether a released fan's file may still give items.
    pub(super) fn stream_open(&self, st: &State) -> bool {
        st.fans
            .iter()
            .any(|r| r.released && r.rx.is_some() && !r.closed)
    }

    /// The offered job `index` of fan `f` picked: made from its item, and the next offered.
    pub(super) fn take(&self, st: &mut State, f: usize, index: usize) -> Result<(), String> {
        let fan = self.queue.fan(f);
        let run = &mut st.fans[f];
        run.offered = false;
        let k = run.next;
        debug_assert_eq!(fan.first + k, index);
        run.next += 1;
        if run.gathers {
            self.gather(run, fan, index);
        }
        let item = match fan.range_item(k) {
            Some(i) => Ok(i),
            None => match run.ahead.pop_front() {
                Some((_, ReadItem::Item(s))) => Ok(s),
                Some((_, ReadItem::Bad { why, .. })) => Err(why),
                None => Err("no item".to_string()),
            },
        };
        let made = item.and_then(|i| {
            self.queue
                .make(f, k, &i)
                .map_err(|e| format!("{}: {e}", fan.name(k)))
        });
        self.offer(st, f);
        made.map(|_| ())
    }

    /// Job `index` of `fan`, about to be taken, begins a job array unless one holds it
    /// already: a range's next jobs, as many as an array holds; or a file's items read ahead
    /// from it on, as many (a regular file's waited for, a stream's as far as they came).
    fn gather(&self, run: &mut FanRun, fan: &crate::plan::Fan, index: usize) {
        let Some(arrays) = self.backends.job_arrays() else {
            return;
        };
        if arrays.gathered(index) {
            return;
        }
        let from = index - fan.first;
        if fan.range_item(from).is_some() {
            // A range's jobs are made as the task file is written.
            return arrays.gather(fan, from, None);
        }
        // Never past the array's last index, however few of the items a narrowed plan keeps.
        fill_ahead(run, fan, MAX_TASKS, from + MAX_TASKS, !fan.is_stream());
        let within = |a: &&(usize, ReadItem)| a.0 < from + MAX_TASKS;
        let to = run
            .ahead
            .iter()
            .take_while(within)
            .last()
            .map_or(from, |a| a.0)
            + 1;
        let mut items = vec![None; to - from];
        for (k, item) in run.ahead.iter().take_while(within) {
            if let ReadItem::Item(s) = item {
                items[k - from] = Some(s.clone());
            }
        }
        arrays.gather(fan, from, Some(items));
    }

    /// The items of fan `f` not taken yet (its `k`s), taken now (a file is read to its end), to be
    /// recorded as a whole: the fan will not run.
    pub(super) fn fan_rest(&self, st: &mut State, f: usize, d: usize) -> Range<usize> {
        st.recorded[d] = true;
        let fan = self.queue.fan(f);
        let run = &mut st.fans[f];
        run.offered = false;
        run.closed = true;
        if let Some(n) = fan.count.filter(|_| fan.range_item(0).is_some()) {
            return std::mem::replace(&mut run.next, n)..n;
        }
        let from = run.ahead.front().map_or(run.read, |a| a.0);
        run.ahead.clear();
        run.read += run.rx.take().map_or(0, |rx| rx.iter().count());
        run.next = run.read;
        from..run.read
    }

    /// Records the jobs of every fan that never started: a file's lines not read are no jobs.
    pub(super) fn record_unstarted_fans(&self, st: &mut State, status: Status, why: &str) {
        for f in 0..st.fans.len() {
            let fan = self.queue.fan(f);
            let run = &mut st.fans[f];
            let ahead: Vec<usize> = run.ahead.drain(..).map(|a| a.0).collect();
            let ks: Box<dyn Iterator<Item = usize>> = match fan.count {
                Some(n) if fan.range_item(0).is_some() => {
                    Box::new(std::mem::replace(&mut run.next, n)..n)
                }
                _ => Box::new(ahead.into_iter()),
            };
            run.closed = true;
            for k in ks.filter(|&k| fan.kept(k)) {
                let rec = ends::not_started(&fan.stub(k), status, why.to_string());
                self.emit(st, rec);
            }
        }
    }
}

/// Reads a file's items that make jobs of this plan into `ahead` (the items of jobs a
/// narrowed plan leaves out are passed over) until it holds `want`, or item `below` would be
/// next, or, without `block`, until none has come yet.
fn fill_ahead(run: &mut FanRun, fan: &crate::plan::Fan, want: usize, below: usize, block: bool) {
    while run.ahead.len() < want && run.read < below && !run.ended {
        let Some(rx) = &run.rx else { return };
        let got = if block {
            rx.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            rx.try_recv()
        };
        match got {
            Ok(item) => {
                let k = run.read;
                run.read += 1;
                if fan.kept(k) {
                    run.ahead.push_back((k, item));
                }
            }
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                run.ended = true;
                return;
            }
        }
    }
}
