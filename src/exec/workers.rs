//! The executor's threads: `execute` starts the workers, passes cancellation on, and records
//! what never started; each worker starts ready jobs on its own runtime and records them as
//! they end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::queue::JobQueue;
use super::sched::Shared;
use super::{Cancel, Event, EventSink, ExecOptions, ExecSummary, ends};
use crate::plan::Plan;
use crate::record::{CompletedProcess, Sealed, Status};

/// Runs every job of `plan`: a job starts once the jobs it needs ended as its needs ask (by
/// default: succeeded), in job-file order among the ready ones, while fewer than
/// `opts.concurrency` run (and fewer than its group's limit). Every job ends as exactly one
/// `JobFinished` event, including jobs skipped because a job they need failed, jobs not
/// needed, and jobs never started because the run was stopped.
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
    let queue = JobQueue::new(plan);
    let workers = n.min(cpus).min(queue.len()).max(1);
    let per_worker = n.div_ceil(workers);
    let initial = *cancel.borrow();
    let shared = Arc::new(Shared::new(queue, opts, events, initial, workers));
    shared.start();
    shared.open_streams();

    let threads = start_workers(&shared, workers, per_worker);
    pass_cancel(&shared, &mut cancel).await;
    for t in threads {
        // Each has announced its end; joining only collects the thread.
        let _ = t.join();
    }
    let summary = record_unstarted(&shared);
    shared.backends.close().await;
    summary
}

/// One thread per worker, each with its own single-threaded runtime.
fn start_workers(
    shared: &Arc<Shared>,
    workers: usize,
    per_worker: usize,
) -> Vec<std::thread::JoinHandle<()>> {
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
    threads
}

/// Passes the user's cancellation on to the jobs until the last worker ended.
async fn pass_cancel(shared: &Shared, cancel: &mut watch::Receiver<Cancel>) {
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
                    let _ = shared.interrupt_tx.send(c);
                    shared.changed.notify_waiters();
                }
                Err(_) => cancel_open = false,
            },
        }
    }
}

/// Records the jobs that never started (stopped by the user, or by the halt policy), and
/// returns the run's counts.
fn record_unstarted(shared: &Shared) -> ExecSummary {
    {
        let mut st = shared.state();
        for job in shared.queue.jobs() {
            if st.recorded[shared.queue.unit_slot(shared.queue.unit_of(job.index))] {
                continue;
            }
            let (status, why) = unstarted_why(&st);
            shared.emit(&mut st, ends::not_started(job, status, why));
        }
        let (status, why) = unstarted_why(&st);
        shared.record_unstarted_fans(&mut st, status, &why);
        std::mem::take(&mut st.summary)
    }
}

/// The status and reason of a job that never started, by why the run stopped.
fn unstarted_why(st: &super::sched::State) -> (Status, String) {
    if st.cancelled {
        (
            Status::Cancelled,
            "not started: the run was interrupted".to_string(),
        )
    } else if let Some(h) = &st.halted {
        (Status::Skipped, format!("not started: {h}"))
    } else if let Some(e) = &st.worker_error {
        (Status::Failed, format!("not started: {e}"))
    } else {
        (Status::Skipped, "not started".to_string())
    }
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

/// One worker: starts jobs while it has room (`cap` at once) and a job is ready, records them
/// as they end, and returns once no job can start any more.
async fn worker(shared: &Arc<Shared>, cap: usize, held: &AtomicUsize) {
    // A job's record, and its hooks' records, sent after it.
    let mut local: JoinSet<(CompletedProcess, Vec<Sealed>)> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
    loop {
        // Listening before looking, so that a change between the two is not missed.
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        while local.len() < cap {
            let Some((index, slot, late)) = shared.pick() else {
                break;
            };
            held.fetch_add(1, Ordering::AcqRel);
            let ctx = shared.ctx(index, slot, late);
            let job_shared = shared.clone();
            let handle = local.spawn(async move {
                let job = job_shared.queue.job(index);
                let job = &*job;
                let rec = job_shared.backends.for_job(job).run(job, ctx.clone()).await;
                let hooks = job_shared.after_job(job, &rec, ctx).await;
                (rec, hooks)
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
                let (id, (rec, hooks)) = match joined {
                    Some(Ok((id, done))) => (id, done),
                    Some(Err(e)) => {
                        // A job task panicked: the job still gets a record saying so.
                        let Some(&(_, index)) = in_flight.get(&e.id()) else { continue };
                        let rec = ends::not_started(
                            &shared.queue.job(index),
                            Status::Failed,
                            format!("internal error while running the job: {e}"),
                        );
                        (e.id(), (rec, Vec::new()))
                    }
                    None => continue,
                };
                let Some((slot, index)) = in_flight.remove(&id) else { continue };
                shared.complete(slot, index, rec);
                for h in hooks {
                    let _ = shared.events.send(Event::HookFinished(Box::new(h)));
                }
                held.fetch_sub(1, Ordering::AcqRel);
            }
            _ = &mut changed, if local.len() < cap => {}
        }
    }
}
