//! The scheduler's state: which job starts when. Ready jobs start in job-file order while a
//! slot is free (and their group has room); a finished job frees its slot and, by the
//! conditions of their needs (`if: success | failure | always`), makes what needed it ready,
//! skips it or finds it not needed; the halt policy and cancellation stop what has not
//! started (after a halt, jobs that only run on failure or always still start). Every job of
//! the plan ends as exactly one sealed record, emitted here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use super::backend::Backends;
use super::needs::{self, Waiting};
use super::queue::JobQueue;
use super::{Cancel, Event, EventSink, ExecOptions, ExecSummary, ends, process};
use crate::plan::HaltSpec;
use crate::record::{CompletedProcess, Sealed, Status};

/// The scheduler's state, shared by the workers.
pub(super) struct State {
    pub(super) free_slots: Vec<usize>,
    /// Ready jobs by group, each in job-file order; the earliest startable one goes first.
    pub(super) ready: BTreeMap<Option<String>, BTreeSet<usize>>,
    pub(super) group_running: HashMap<String, usize>,
    /// For each job, how far each of its needs has got.
    pub(super) waiting: Vec<Vec<Waiting>>,
    pub(super) recorded: Vec<bool>,
    /// Jobs started after a halt: `on_failure: kill` does not stop them.
    pub(super) late: HashSet<usize>,
    /// Jobs started and not yet recorded, on all workers.
    pub(super) running: usize,
    pub(super) summary: ExecSummary,
    /// Why nothing more starts, when a failure halted the run.
    pub(super) halted: Option<String>,
    pub(super) cancelled: bool,
    /// Why a worker could not run (no thread or runtime): nothing more starts.
    pub(super) worker_error: Option<String>,
}

pub(super) struct Shared {
    pub(super) queue: JobQueue,
    pub(super) state: std::sync::Mutex<State>,
    /// Something a waiting worker may act on: jobs became ready, slots freed, the run ends.
    pub(super) changed: tokio::sync::Notify,
    /// The last worker ended.
    pub(super) finished: tokio::sync::Notify,
    pub(super) live: AtomicUsize,
    pub(super) opts: ExecOptions,
    pub(super) events: EventSink,
    /// Jobs see this channel: it carries the user's cancellation and `on_failure: kill`.
    pub(super) stop_tx: watch::Sender<Cancel>,
    pub(super) stop_rx: watch::Receiver<Cancel>,
    /// The user's cancellation alone, for jobs started after a halt.
    pub(super) interrupt_tx: watch::Sender<Cancel>,
    interrupt_rx: watch::Receiver<Cancel>,
    /// The back ends jobs run on (one set per run: ssh hosts share their connections).
    pub(super) backends: Backends,
}

impl Shared {
    pub(super) fn new(
        queue: JobQueue,
        opts: ExecOptions,
        events: EventSink,
        initial: Cancel,
        workers: usize,
    ) -> Shared {
        let n_jobs = queue.len();
        let mut ready: BTreeMap<Option<String>, BTreeSet<usize>> = BTreeMap::new();
        for j in queue.jobs() {
            if j.needs.is_empty() {
                ready.entry(j.group.clone()).or_default().insert(j.index);
            }
        }
        let waiting = queue
            .jobs()
            .map(|j| j.needs.iter().map(Waiting::new).collect())
            .collect();
        let (stop_tx, stop_rx) = watch::channel(initial);
        let (interrupt_tx, interrupt_rx) = watch::channel(initial);
        let n = opts.concurrency.max(1);
        Shared {
            state: std::sync::Mutex::new(State {
                free_slots: (0..n).rev().collect(),
                ready,
                group_running: HashMap::new(),
                waiting,
                recorded: vec![false; n_jobs],
                late: HashSet::new(),
                running: 0,
                summary: ExecSummary::default(),
                halted: None,
                cancelled: initial != Cancel::None,
                worker_error: None,
            }),
            queue,
            changed: tokio::sync::Notify::new(),
            finished: tokio::sync::Notify::new(),
            live: AtomicUsize::new(workers),
            backends: Backends::new(opts.background.clone(), opts.backend.clone()),
            opts,
            events,
            stop_tx,
            stop_rx,
            interrupt_tx,
            interrupt_rx,
        }
    }

    /// Settles the jobs whose needs are decided before anything runs (`--resume` left out
    /// every job one of their needs names).
    pub(super) fn start(&self) {
        let mut st = self.state();
        for d in 0..self.queue.len() {
            if !st.recorded[d]
                && !self.queue.job(d).needs.is_empty()
                && st.waiting[d].iter().all(Waiting::settled)
                && let Some(rec) = self.release(&mut st, d)
            {
                self.record_unrun(&mut st, rec);
            }
        }
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked holding the lock left consistent counters (no code between
        // their updates can panic); the run goes on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn worker_done(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit if the runtime thread is not waiting yet.
            self.finished.notify_one();
        }
        self.changed.notify_waiters();
    }

    pub(super) fn fail_worker(&self, why: &str) {
        let mut st = self.state();
        st.worker_error.get_or_insert_with(|| why.to_string());
    }

    /// The one way a record leaves the executor: sealed, counted, sent.
    pub(super) fn emit(&self, st: &mut State, rec: CompletedProcess) {
        let rec = Sealed::new(rec, &self.opts.secrets);
        st.recorded[self.queue.position(&rec)] = true;
        st.summary.add(rec.status);
        let _ = self.events.send(Event::JobFinished(Box::new(rec)));
    }

    /// The next job to start, its slot, and whether it starts after a halt, if one may start
    /// now. After a halt, only jobs that may start then are ready.
    pub(super) fn pick(&self) -> Option<(usize, usize, bool)> {
        let mut st = self.state();
        if st.cancelled || st.worker_error.is_some() || st.free_slots.is_empty() {
            return None;
        }
        let queue = &self.queue;
        let pick = st
            .ready
            .iter()
            .filter(|(g, set)| {
                !set.is_empty()
                    && g.as_deref().is_none_or(|g| {
                        st.group_running.get(g).copied().unwrap_or(0) < queue.group_limit(g)
                    })
            })
            .filter_map(|(g, set)| set.first().map(|&i| (i, g.clone())))
            .min();
        let (index, group) = pick?;
        if let Some(set) = st.ready.get_mut(&group) {
            set.remove(&index);
        }
        if let Some(g) = group {
            *st.group_running.entry(g).or_default() += 1;
        }
        st.running += 1;
        let late = st.halted.is_some();
        if late {
            st.late.insert(index);
        }
        let slot = st.free_slots.pop().expect("checked non-empty");
        Some((index, slot, late))
    }

    /// Whether no job can start any more: none runs (a running one could make others ready),
    /// and none may start.
    pub(super) fn all_done(&self) -> bool {
        let st = self.state();
        st.running == 0
            && (st.cancelled
                || st.worker_error.is_some()
                || st.ready.values().all(BTreeSet::is_empty))
    }

    /// Records a finished job and passes its end on to what needs it.
    pub(super) fn complete(&self, slot: usize, index: usize, rec: CompletedProcess) {
        let queue = &self.queue;
        let mut st = self.state();
        st.free_slots.push(slot);
        st.running -= 1;
        if let Some(g) = queue.job(index).group.as_deref()
            && let Some(c) = st.group_running.get_mut(g)
        {
            *c -= 1;
        }
        let status = rec.status;
        let what = describe(&rec);
        let mut rec = rec;
        // The job's place in the job file, whatever a back end made of it.
        rec.index = queue.job(index).file_index;
        if rec.status == Status::Cancelled && rec.error.is_none() {
            // Why it was stopped: the halt policy, or the user.
            let by_halt = st
                .halted
                .as_ref()
                .filter(|_| queue.on_failure() == HaltSpec::Kill && !st.late.contains(&index));
            rec.error = Some(match by_halt {
                Some(h) => format!("stopped: {h} (on_failure: kill)"),
                None => "stopped: the run was interrupted".to_string(),
            });
        }
        self.emit(&mut st, rec);
        let halts = status.is_failure()
            && st.halted.is_none()
            && !st.cancelled
            && queue.on_failure() != HaltSpec::Continue;
        if halts {
            st.halted = Some(format!(
                "`{}` {what} and the run stops on failure",
                queue.job(index).name
            ));
            if queue.on_failure() == HaltSpec::Kill {
                let _ = self.stop_tx.send(Cancel::Graceful(crate::sys::SIGTERM));
            }
        }
        self.settle(&mut st, index, status, what);
        if halts {
            self.halt_ready(&mut st);
        }
        drop(st);
        // Wakes only workers waiting with room for a job; a worker busy with its own jobs is
        // not listening, so a steady stream of jobs wakes nobody.
        self.changed.notify_waiters();
    }

    /// Passes how `index` ended on to what needs it: a job needing it to succeed is skipped
    /// at once if it did not, and a job whose needs have all ended is released. What is
    /// recorded without running is passed on in turn.
    fn settle(&self, st: &mut State, index: usize, status: Status, what: String) {
        let queue = &self.queue;
        if queue.dependents(index).is_empty() {
            return;
        }
        let mut todo = VecDeque::from([(index, status, what)]);
        while let Some((done, status, what)) = todo.pop_front() {
            for &(d, k) in queue.dependents(done) {
                if st.recorded[d] {
                    continue;
                }
                st.waiting[d][k].ended(done, status);
                let job = queue.job(d);
                let end = if needs::skips(&job.needs[k], status) {
                    let why = format!("needs `{}`, which {what}", queue.job(done).name);
                    Some(ends::not_started(job, Status::Skipped, why))
                } else if st.waiting[d].iter().all(Waiting::settled) {
                    self.release(st, d)
                } else {
                    None
                };
                if let Some(rec) = end {
                    todo.push_back((d, rec.status, describe(&rec)));
                    self.emit(st, rec);
                }
            }
        }
    }

    /// A job whose needs have all ended (none that had to succeed failed): made ready, or
    /// the record of why it does not run.
    fn release(&self, st: &mut State, d: usize) -> Option<CompletedProcess> {
        let job = self.queue.job(d);
        let name = |i: usize| self.queue.job(i).name.as_str();
        for (need, w) in job.needs.iter().zip(&st.waiting[d]) {
            if let Some(why) = w.unmet(need, name) {
                return Some(ends::not_needed(job, why));
            }
        }
        if let Some(h) = &st.halted
            && !self.queue.runs_after_halt(d)
        {
            return Some(ends::not_started(
                job,
                Status::Skipped,
                format!("not started: {h}"),
            ));
        }
        st.ready.entry(job.group.clone()).or_default().insert(d);
        None
    }

    /// Once a failure halted the run: every ready job that may not start now is recorded as
    /// not started, and passed on (a job that runs on failure or always may need it).
    fn halt_ready(&self, st: &mut State) {
        let Some(h) = st.halted.clone() else { return };
        let stuck: Vec<usize> = st
            .ready
            .values()
            .flatten()
            .copied()
            .filter(|&i| !self.queue.runs_after_halt(i))
            .collect();
        for i in stuck {
            let job = self.queue.job(i);
            if let Some(set) = st.ready.get_mut(&job.group) {
                set.remove(&i);
            }
            let rec = ends::not_started(job, Status::Skipped, format!("not started: {h}"));
            self.record_unrun(st, rec);
        }
    }

    /// Records a job that does not run, and passes that on to what needs it.
    fn record_unrun(&self, st: &mut State, rec: CompletedProcess) {
        let (index, status, what) = (self.queue.position(&rec), rec.status, describe(&rec));
        self.emit(st, rec);
        self.settle(st, index, status, what);
    }

    /// What a job is given to run; one started after a halt hears only the user's
    /// cancellation, not `on_failure: kill`.
    pub(super) fn ctx(&self, index: usize, slot: usize, late: bool) -> process::JobCtx {
        process::JobCtx {
            slot,
            capture: self.opts.capture.clone(),
            events: self.events.clone(),
            forward_output: self.opts.forward_output,
            cancel: if late {
                self.interrupt_rx.clone()
            } else {
                self.stop_rx.clone()
            },
            launcher: self.opts.launcher.clone(),
            run_env: self.opts.run_env.clone(),
            secrets: self.opts.secrets.clone(),
            history: self.opts.history.get(&index).cloned().unwrap_or_default(),
            slow_told: false,
        }
    }
}

/// "failed (exit 3)", "timed out", ...: how a job ended, for skip reasons.
fn describe(rec: &CompletedProcess) -> String {
    match rec.status {
        Status::Failed => format!("failed ({})", rec.outcome()),
        Status::TimedOut => "timed out".to_string(),
        Status::Cancelled => "was cancelled".to_string(),
        Status::SpawnError => "could not start".to_string(),
        Status::Skipped => "was skipped".to_string(),
        Status::NotNeeded => "was not needed".to_string(),
        other => other.to_string(),
    }
}
