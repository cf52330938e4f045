//! The scheduler's state: which job starts when. Ready jobs start in job-file order while a
//! slot is free (and their group has room); a finished job frees its slot and makes what
//! needed it ready, or skips it; the halt policy and cancellation stop what has not started.
//! Every job of the plan ends as exactly one sealed record, emitted here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use super::backend::Backends;
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
    pub(super) waiting_on: Vec<usize>,
    pub(super) recorded: Vec<bool>,
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
        let (stop_tx, stop_rx) = watch::channel(initial);
        let n = opts.concurrency.max(1);
        Shared {
            state: std::sync::Mutex::new(State {
                free_slots: (0..n).rev().collect(),
                ready,
                group_running: HashMap::new(),
                waiting_on: (0..n_jobs).map(|i| queue.needs_count(i)).collect(),
                recorded: vec![false; n_jobs],
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
        st.recorded[rec.index] = true;
        st.summary.add(rec.status);
        let _ = self.events.send(Event::JobFinished(Box::new(rec)));
    }

    /// The next job to start and its slot, if one may start now.
    pub(super) fn pick(&self) -> Option<(usize, usize)> {
        let mut st = self.state();
        if st.cancelled
            || st.halted.is_some()
            || st.worker_error.is_some()
            || st.free_slots.is_empty()
        {
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
        let slot = st.free_slots.pop().expect("checked non-empty");
        Some((index, slot))
    }

    /// Whether no job can start any more: none runs (a running one could make others ready),
    /// and none may start.
    pub(super) fn all_done(&self) -> bool {
        let st = self.state();
        st.running == 0
            && (st.cancelled
                || st.halted.is_some()
                || st.worker_error.is_some()
                || st.ready.values().all(BTreeSet::is_empty))
    }

    /// Records a finished job and makes what it unblocks ready.
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
        let failed = rec.status.is_failure();
        let what = describe(&rec);
        let mut rec = rec;
        if rec.status == Status::Cancelled && rec.error.is_none() {
            // Why it was stopped: the halt policy, or the user.
            rec.error = Some(match &st.halted {
                Some(h) => format!("stopped: {h} (on_failure: kill)"),
                None => "stopped: the run was interrupted".to_string(),
            });
        }
        self.emit(&mut st, rec);
        if failed {
            self.skip_dependents(&mut st, index, &what);
            if st.halted.is_none() && !st.cancelled && queue.on_failure() != HaltSpec::Continue {
                st.halted = Some(format!(
                    "`{}` {what} and the run stops on failure",
                    queue.job(index).name
                ));
                if queue.on_failure() == HaltSpec::Kill {
                    let _ = self.stop_tx.send(Cancel::Graceful(crate::sys::SIGTERM));
                }
            }
        } else {
            for &d in queue.dependents(index) {
                if st.recorded[d] {
                    continue;
                }
                st.waiting_on[d] -= 1;
                if st.waiting_on[d] == 0 {
                    st.ready
                        .entry(queue.job(d).group.clone())
                        .or_default()
                        .insert(d);
                }
            }
        }
        drop(st);
        // Wakes only workers waiting with room for a job; a worker busy with its own jobs is
        // not listening, so a steady stream of jobs wakes nobody.
        self.changed.notify_waiters();
    }

    /// Records every job that (transitively) needs `failed` as skipped, with the reason.
    fn skip_dependents(&self, st: &mut State, failed: usize, what: &str) {
        let jobs = &self.queue;
        let failed_name = &jobs.job(failed).name;
        let mut todo: std::collections::VecDeque<(usize, String)> = jobs
            .dependents(failed)
            .iter()
            .map(|&d| (d, format!("needs `{failed_name}`, which {what}")))
            .collect();
        while let Some((d, why)) = todo.pop_front() {
            if st.recorded[d] {
                continue;
            }
            let job = jobs.job(d);
            self.emit(st, ends::not_started(job, Status::Skipped, why));
            for &dd in jobs.dependents(d) {
                todo.push_back((dd, format!("needs `{}`, which was skipped", job.name)));
            }
        }
    }

    pub(super) fn ctx(&self, slot: usize) -> process::JobCtx {
        process::JobCtx {
            slot,
            capture: self.opts.capture.clone(),
            events: self.events.clone(),
            forward_output: self.opts.forward_output,
            cancel: self.stop_rx.clone(),
            launcher: self.opts.launcher.clone(),
            run_env: self.opts.run_env.clone(),
            secrets: self.opts.secrets.clone(),
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
        other => other.to_string(),
    }
}
