//! The scheduler: which job starts when. Ready jobs start in job-file order while a slot is
//! free (and their group has room); a finished job frees its slot and makes what needed it
//! ready, or skips it; the halt policy and cancellation stop what has not started. Every job
//! of the plan ends as exactly one sealed record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::backend::Backends;
use super::{Cancel, Event, EventSink, ExecOptions, ExecSummary, ends, process};
use crate::plan::{HaltSpec, Plan};
use crate::record::{CompletedProcess, Sealed, Status};

/// Runs every job of `plan`: a job starts once the jobs it needs succeeded, in job-file order
/// among the ready ones, while fewer than `opts.concurrency` run (and fewer than its group's
/// limit). Every job ends as exactly one `JobFinished` event, including jobs skipped because a
/// job they need failed, and jobs never started because the run was stopped.
///
/// Jobs run on worker threads, one per CPU at most, each with its own single-threaded runtime:
/// a worker that finishes a job records it and starts the next ready one itself, so in a steady
/// stream of jobs no thread wakes another (each wakeup costs an interrupt to the other CPU) and
/// one worker blocked in a spawn (`vfork` waits for the child's `execve`) does not hold up the
/// others. The calling task only passes cancellation on.
pub async fn execute(
    plan: Arc<Plan>,
    opts: ExecOptions,
    events: EventSink,
    mut cancel: watch::Receiver<Cancel>,
) -> ExecSummary {
    let n = opts.concurrency.max(1);
    let cpus = std::thread::available_parallelism().map_or(1, |p| p.get());
    let workers = n.min(cpus).min(plan.jobs.len()).max(1);
    let per_worker = n.div_ceil(workers);
    let initial = *cancel.borrow();
    let shared = Arc::new(Shared::new(plan.clone(), opts, events, initial, workers));

    let mut threads = Vec::with_capacity(workers);
    for w in 0..workers {
        let end = WorkerEnd {
            shared: shared.clone(),
            held: AtomicUsize::new(0),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("orchestrate-w{w}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker(&end.shared, per_worker, &end.held)),
                    Err(e) => end
                        .shared
                        .fail_worker(&format!("cannot start a runtime: {e}")),
                }
                drop(end);
            });
        match spawned {
            Ok(t) => threads.push(t),
            // The closure, and the WorkerEnd in it, was dropped: the worker is counted out.
            Err(e) => shared.fail_worker(&format!("cannot start a worker thread: {e}")),
        }
    }

    let mut cancel_open = true;
    loop {
        let finished = shared.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        if shared.live.load(Ordering::Acquire) == 0 {
            break;
        }
        tokio::select! {
            _ = &mut finished => {}
            r = cancel.changed(), if cancel_open => match r {
                Ok(()) => {
                    let c = *cancel.borrow();
                    shared.state().cancelled = c != Cancel::None;
                    let _ = shared.stop_tx.send(c);
                    shared.changed.notify_waiters();
                }
                Err(_) => cancel_open = false,
            },
        }
    }
    for t in threads {
        // Each has announced its end; joining only collects the thread.
        let _ = t.join();
    }

    // Jobs that never started: stopped by the user, or by the halt policy.
    let summary = {
        let mut st = shared.state();
        for job in &plan.jobs {
            if st.recorded[job.index] {
                continue;
            }
            let (status, why) = if st.cancelled {
                (
                    Status::Cancelled,
                    "not started: the run was interrupted".to_string(),
                )
            } else if let Some(h) = &st.halted {
                (Status::Skipped, h.clone())
            } else if let Some(e) = &st.worker_error {
                (Status::Failed, format!("not started: {e}"))
            } else {
                (Status::Skipped, "not started".to_string())
            };
            shared.emit(&mut st, ends::not_started(job, status, why));
        }
        std::mem::take(&mut st.summary)
    };
    shared.backends.close().await;
    summary
}

/// Counts a worker out of the run when its thread ends, also when it panics: then the jobs it
/// held are given up (they get records saying so) and nothing more starts, so the run still
/// ends instead of waiting for that worker.
struct WorkerEnd {
    shared: Arc<Shared>,
    /// Jobs this worker picked and has not recorded yet.
    held: AtomicUsize,
}

impl Drop for WorkerEnd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let held = self.held.load(Ordering::Acquire);
            let mut st = self.shared.state();
            st.running = st.running.saturating_sub(held);
            st.worker_error
                .get_or_insert_with(|| "a worker thread stopped on an internal error".into());
        }
        self.shared.worker_done();
    }
}

/// The scheduler's state, shared by the workers.
struct State {
    free_slots: Vec<usize>,
    /// Ready jobs by group, each in job-file order; the earliest startable one goes first.
    ready: BTreeMap<Option<String>, BTreeSet<usize>>,
    group_running: HashMap<String, usize>,
    waiting_on: Vec<usize>,
    recorded: Vec<bool>,
    /// Jobs started and not yet recorded, on all workers.
    running: usize,
    summary: ExecSummary,
    halted: Option<String>,
    cancelled: bool,
    /// Why a worker could not run (no thread or runtime): nothing more starts.
    worker_error: Option<String>,
}

struct Shared {
    plan: Arc<Plan>,
    dependents: Vec<Vec<usize>>,
    state: std::sync::Mutex<State>,
    /// Something a waiting worker may act on: jobs became ready, slots freed, the run ends.
    changed: tokio::sync::Notify,
    /// The last worker ended.
    finished: tokio::sync::Notify,
    live: AtomicUsize,
    opts: ExecOptions,
    events: EventSink,
    /// Jobs see this channel: it carries the user's cancellation and `on_failure: kill`.
    stop_tx: watch::Sender<Cancel>,
    stop_rx: watch::Receiver<Cancel>,
    /// The back ends jobs run on (one set per run: ssh hosts share their connections).
    backends: Backends,
}

impl Shared {
    fn new(
        plan: Arc<Plan>,
        opts: ExecOptions,
        events: EventSink,
        initial: Cancel,
        workers: usize,
    ) -> Shared {
        let n_jobs = plan.jobs.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n_jobs];
        for j in &plan.jobs {
            for &d in &j.needs {
                dependents[d].push(j.index);
            }
        }
        let mut ready: BTreeMap<Option<String>, BTreeSet<usize>> = BTreeMap::new();
        for j in &plan.jobs {
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
                waiting_on: plan.jobs.iter().map(|j| j.needs.len()).collect(),
                recorded: vec![false; n_jobs],
                running: 0,
                summary: ExecSummary::default(),
                halted: None,
                cancelled: initial != Cancel::None,
                worker_error: None,
            }),
            plan,
            dependents,
            changed: tokio::sync::Notify::new(),
            finished: tokio::sync::Notify::new(),
            live: AtomicUsize::new(workers),
            backends: Backends::new(opts.background.clone()),
            opts,
            events,
            stop_tx,
            stop_rx,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked holding the lock left consistent counters (no code between
        // their updates can panic); the run goes on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn worker_done(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit if the runtime thread is not waiting yet.
            self.finished.notify_one();
        }
        self.changed.notify_waiters();
    }

    fn fail_worker(&self, why: &str) {
        let mut st = self.state();
        st.worker_error.get_or_insert_with(|| why.to_string());
    }

    /// The one way a record leaves the executor: sealed, counted, sent.
    fn emit(&self, st: &mut State, rec: CompletedProcess) {
        let rec = Sealed::new(rec, &self.opts.secrets);
        st.recorded[rec.index] = true;
        st.summary.add(rec.status);
        let _ = self.events.send(Event::JobFinished(Box::new(rec)));
    }

    /// The next job to start and its slot, if one may start now.
    fn pick(&self) -> Option<(usize, usize)> {
        let mut st = self.state();
        if st.cancelled
            || st.halted.is_some()
            || st.worker_error.is_some()
            || st.free_slots.is_empty()
        {
            return None;
        }
        let groups = &self.plan.groups;
        let pick = st
            .ready
            .iter()
            .filter(|(g, set)| {
                !set.is_empty()
                    && g.as_deref().is_none_or(|g| {
                        st.group_running.get(g).copied().unwrap_or(0)
                            < groups.get(g).copied().unwrap_or(usize::MAX)
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
    fn all_done(&self) -> bool {
        let st = self.state();
        st.running == 0
            && (st.cancelled
                || st.halted.is_some()
                || st.worker_error.is_some()
                || st.ready.values().all(BTreeSet::is_empty))
    }

    /// Records a finished job and makes what it unblocks ready.
    fn complete(&self, slot: usize, index: usize, rec: CompletedProcess) {
        let plan = &self.plan;
        let mut st = self.state();
        st.free_slots.push(slot);
        st.running -= 1;
        if let Some(g) = plan.jobs[index].group.as_deref()
            && let Some(c) = st.group_running.get_mut(g)
        {
            *c -= 1;
        }
        let failed = rec.status.is_failure();
        let what = describe(&rec);
        self.emit(&mut st, rec);
        if failed {
            self.skip_dependents(&mut st, index, &what);
            if st.halted.is_none() && !st.cancelled && plan.on_failure != HaltSpec::Continue {
                st.halted = Some(format!(
                    "not started: `{}` {what} and the run stops on failure",
                    plan.jobs[index].name
                ));
                if plan.on_failure == HaltSpec::Kill {
                    let _ = self.stop_tx.send(Cancel::Graceful(crate::sys::SIGTERM));
                }
            }
        } else {
            for &d in &self.dependents[index] {
                if st.recorded[d] {
                    continue;
                }
                st.waiting_on[d] -= 1;
                if st.waiting_on[d] == 0 {
                    st.ready
                        .entry(plan.jobs[d].group.clone())
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
        let plan = &self.plan;
        let mut queue: std::collections::VecDeque<(usize, String)> = self.dependents[failed]
            .iter()
            .map(|&d| {
                (
                    d,
                    format!("needs `{}`, which {what}", plan.jobs[failed].name),
                )
            })
            .collect();
        while let Some((d, why)) = queue.pop_front() {
            if st.recorded[d] {
                continue;
            }
            let job = &plan.jobs[d];
            self.emit(st, ends::not_started(job, Status::Skipped, why));
            for &dd in &self.dependents[d] {
                queue.push_back((dd, format!("needs `{}`, which was skipped", job.name)));
            }
        }
    }

    fn ctx(&self, slot: usize) -> process::JobCtx {
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

/// One worker: starts jobs while it has room (`cap` at once) and a job is ready, records them
/// as they end, and returns once no job can start any more.
async fn worker(shared: &Arc<Shared>, cap: usize, held: &AtomicUsize) {
    let mut local: JoinSet<CompletedProcess> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
    loop {
        // Listening before looking, so that a change between the two is not missed.
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        while local.len() < cap {
            let Some((index, slot)) = shared.pick() else {
                break;
            };
            held.fetch_add(1, Ordering::AcqRel);
            let ctx = shared.ctx(slot);
            let job_shared = shared.clone();
            let handle = local.spawn(async move {
                let job = &job_shared.plan.jobs[index];
                job_shared.backends.for_job(job).run(job, ctx).await
            });
            in_flight.insert(handle.id(), (slot, index));
        }
        if local.is_empty() {
            if shared.all_done() {
                return;
            }
            changed.await;
            continue;
        }
        tokio::select! {
            joined = local.join_next_with_id() => {
                let (id, rec) = match joined {
                    Some(Ok((id, rec))) => (id, rec),
                    Some(Err(e)) => {
                        // A job task panicked: the job still gets a record saying so.
                        let Some(&(_, index)) = in_flight.get(&e.id()) else { continue };
                        let rec = ends::not_started(
                            &shared.plan.jobs[index],
                            Status::Failed,
                            format!("internal error while running the job: {e}"),
                        );
                        (e.id(), rec)
                    }
                    None => continue,
                };
                let Some((slot, index)) = in_flight.remove(&id) else { continue };
                shared.complete(slot, index, rec);
                held.fetch_sub(1, Ordering::AcqRel);
            }
            _ = &mut changed, if local.len() < cap => {}
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
