//! How far each lazy fan-out entry has got while it runs: which of its items is next, the
//! one offered to the scheduler (at most one of a fan's jobs is ready at a time, so the
//! ready set stays small whatever the item count), and a file's items as its reader thread
//! hands them over.

use std::ops::Range;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Weak};

use super::ends;
use super::sched::{Shared, State};
use crate::plan::{FanSource, ReadItem};
use crate::record::Status;

#[derive(Default)]
pub(super) struct FanRun {
    /// Items taken (made into jobs, or recorded) so far.
    pub(super) next: usize,
    /// A file's items all came (a range knows its count).
    pub(super) closed: bool,
    /// A file's next item, read ahead.
    ahead: Option<ReadItem>,
    rx: Option<Receiver<ReadItem>>,
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
            if let Some(rx) = fan.open(wake) {
                self.state().fans[f].rx = Some(rx);
            }
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
                fill_ahead(run, fan);
                run.ahead.is_some()
            }
        };
        if !has_next {
            run.closed = run.closed || fan.count.is_some();
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
        let item = match fan.range_item(k) {
            Some(i) => Ok(i),
            None => match run.ahead.take() {
                Some(ReadItem::Item(s)) => Ok(s),
                Some(ReadItem::Bad { why, .. }) => Err(why),
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

    /// The items of fan `f` not taken yet (its `k`s), taken now (a file is read to its end), to be
    /// recorded as a whole: the fan will not run.
    pub(super) fn fan_rest(&self, st: &mut State, f: usize, d: usize) -> Range<usize> {
        st.recorded[d] = true;
        let fan = self.queue.fan(f);
        let run = &mut st.fans[f];
        run.offered = false;
        let from = run.next;
        let to = match fan.count {
            Some(n) if fan.range_item(0).is_some() => n,
            _ => {
                let mut n = from + usize::from(run.ahead.take().is_some());
                if let Some(rx) = run.rx.take() {
                    n += rx.iter().count();
                }
                n
            }
        };
        run.next = to;
        run.closed = true;
        from..to
    }

    /// Records the jobs of every fan that never started: a file's lines not read are no jobs.
    pub(super) fn record_unstarted_fans(&self, st: &mut State, status: Status, why: &str) {
        for f in 0..st.fans.len() {
            let fan = self.queue.fan(f);
            let run = &mut st.fans[f];
            let from = run.next;
            let to = match fan.count {
                Some(n) if fan.range_item(0).is_some() => n,
                _ => from + usize::from(run.ahead.take().is_some()),
            };
            run.next = to;
            run.closed = true;
            for k in (from..to).filter(|&k| fan.kept(k)) {
                let rec = ends::not_started(&fan.stub(k), status, why.to_string());
                self.emit(st, rec);
            }
        }
    }
}

/// Reads a file's next item that makes a job of this plan into `ahead` if one came (the
/// items of jobs a narrowed plan leaves out are passed over); notes the end of the file.
fn fill_ahead(run: &mut FanRun, fan: &crate::plan::Fan) {
    while run.ahead.is_none() {
        let Some(rx) = &run.rx else { return };
        match rx.try_recv() {
            Ok(_) if !fan.kept(run.next) => run.next += 1,
            Ok(item) => run.ahead = Some(item),
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                run.closed = true;
                return;
            }
        }
    }
}
