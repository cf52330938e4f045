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
use super::needs::Waiting;
use super::queue::{JobQueue, Unit};
use super::remote::alloc::Allocations;
use super::remote::array::Arrays;
use super::{Cancel, Event, EventSink, ExecOptions, ExecSummary, ends, process};
use crate::plan::HaltSpec;
use crate::record::{CompletedProcess, Sealed, Status};

/// The scheduler's state, shared by the workers.
pub(super) struct State {
    pub(super) free_slots: Vec<usize>,
    /// Ready jobs by group, each in job-file order; the earliest startable one goes first.
    pub(super) ready: BTreeMap<Option<String>, BTreeSet<usize>>,
    pub(super) group_running: HashMap<String, usize>,
    /// For each unit (`JobQueue::unit_slot`), how far each of its needs has got.
    pub(super) waiting: Vec<Vec<Waiting>>,
    /// For each unit: a job has its record; a fan was released or recorded as a whole.
    pub(super) recorded: Vec<bool>,
    /// How far each lazy fan-out has got.
    pub(super) fans: Vec<super::fans::FanRun>,
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

/// The `%J` of a job array: with `wait: true` each of its jobs holds a slot (and its group's
/// room) until it ends, so Slurm runs at most as many of its tasks at once as the run would;
/// without it the run leaves them all to Slurm, as it does plain batch jobs.
fn throttle(
    queue: &JobQueue,
    opts: &ExecOptions,
    slots: usize,
    job: &crate::plan::PlannedJob,
) -> Option<usize> {
    let wait = opts.background.as_ref().is_some_and(|b| b.wait);
    let group = job
        .group
        .as_deref()
        .map_or(usize::MAX, |g| queue.group_limit(g));
    wait.then_some(slots.min(group))
}

impl Shared {
    pub(super) fn new(
        queue: JobQueue,
        opts: ExecOptions,
        events: EventSink,
        initial: Cancel,
        workers: usize,
    ) -> Shared {
        let mut ready: BTreeMap<Option<String>, BTreeSet<usize>> = BTreeMap::new();
        for j in queue.jobs() {
            if j.needs.is_empty() {
                ready.entry(j.group.clone()).or_default().insert(j.index);
            }
        }
        let fan_jobs = |f: usize| queue.fan(f).len().unwrap_or(0);
        let waiting = (0..queue.units())
            .map(|u| {
                let needs = queue.unit_needs(queue.unit_at(u));
                needs.iter().map(|n| Waiting::new(n, &fan_jobs)).collect()
            })
            .collect();
        let fans = queue.fans().iter().map(|_| Default::default()).collect();
        let (stop_tx, stop_rx) = watch::channel(initial);
        let (interrupt_tx, interrupt_rx) = watch::channel(initial);
        let n = opts.concurrency.max(1);
        let allocs = Allocations::of(queue.jobs(), !queue.fans().is_empty(), n, opts.run_id());
        let arrays = Arrays::of(queue.jobs(), queue.fans(), |j| {
            throttle(&queue, &opts, n, j)
        });
        let backends = Backends::new(opts.background.clone(), opts.backend.clone())
            .sharing(allocs)
            .arrays(arrays);
        Shared {
            state: std::sync::Mutex::new(State {
                free_slots: (0..n).rev().collect(),
                ready,
                group_running: HashMap::new(),
                waiting,
                recorded: vec![false; queue.units()],
                fans,
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
            backends,
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
        let mut todo = VecDeque::new();
        for d in 0..self.queue.units() {
            // A unit without needs has nothing to wait for: released at once.
            if !st.recorded[d] && st.waiting[d].iter().all(Waiting::settled) {
                self.release(&mut st, d, &mut todo);
            }
        }
        self.pass_on(&mut st, todo);
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
        let index = self.queue.position(&rec);
        match self.queue.unit_of(index) {
            Unit::Job(p) => st.recorded[p] = true,
            Unit::Fan(_) => self.queue.forget(index),
        }
        st.summary.add(rec.status);
        let _ = self.events.send(Event::JobFinished(Box::new(rec)));
    }

    /// The next job to start, its slot, and whether it starts after a halt, if one may start
    /// now. After a halt, only jobs that may start then are ready.
    pub(super) fn pick(&self) -> Option<(usize, usize, bool)> {
        let mut st = self.state();
        loop {
            if st.cancelled || st.worker_error.is_some() || st.free_slots.is_empty() {
                return None;
            }
            self.poll_streams(&mut st);
            let (index, group) = self.choose(&st)?;
            if let Some(set) = st.ready.get_mut(&group) {
                set.remove(&index);
            }
            if let Unit::Fan(f) = self.queue.unit_of(index)
                && let Err(why) = self.take(&mut st, f, index)
            {
                // An item that makes no job: recorded as a job that could not start.
                let rec = ends::not_started(&self.queue.job(index), Status::SpawnError, why);
                self.record_unrun(&mut st, rec);
                continue;
            }
            return Some(self.started(&mut st, index, group));
        }
    }

    /// The earliest ready job whose group has room.
    fn choose(&self, st: &State) -> Option<(usize, Option<String>)> {
        let queue = &self.queue;
        st.ready
            .iter()
            .filter(|(g, set)| {
                !set.is_empty()
                    && g.as_deref().is_none_or(|g| {
                        st.group_running.get(g).copied().unwrap_or(0) < queue.group_limit(g)
                    })
            })
            .filter_map(|(g, set)| set.first().map(|&i| (i, g.clone())))
            .min()
    }

    /// A picked job counted as running: its group, its slot.
    fn started(&self, st: &mut State, index: usize, group: Option<String>) -> (usize, usize, bool) {
        if let Some(g) = group {
            *st.group_running.entry(g).or_default() += 1;
        }
        st.running += 1;
        let late = st.halted.is_some();
        if late {
            st.late.insert(index);
        }
        let slot = st.free_slots.pop().expect("checked non-empty");
        (index, slot, late)
    }

    /// Whether no job can start any more: none runs (a running one could make others ready),
    /// and none may start.
    pub(super) fn all_done(&self) -> bool {
        let st = self.state();
        st.running == 0
            && (st.cancelled
                || st.worker_error.is_some()
                || (st.ready.values().all(BTreeSet::is_empty) && !self.stream_open(&st)))
    }

    /// Records a finished job and passes its end on to what needs it.
    pub(super) fn complete(&self, slot: usize, index: usize, rec: CompletedProcess) {
        let queue = &self.queue;
        let mut st = self.state();
        st.free_slots.push(slot);
        st.running -= 1;
        let job = queue.job(index);
        if let Some(g) = job.group.as_deref()
            && let Some(c) = st.group_running.get_mut(g)
        {
            *c -= 1;
        }
        let status = rec.status;
        let what = describe(&rec);
        let mut rec = rec;
        // The job's place in the job file, whatever a back end made of it.
        rec.index = job.file_index;
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
                job.name
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
pub(super) fn describe(rec: &CompletedProcess) -> String {
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
