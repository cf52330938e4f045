//! Slurm worker steps: per task of a run's allocation one long-lived step (`srun ... bash -c
//! wrap::WORKER`) that runs job after job, each sent on its stdin, so that a job costs the
//! controller no RPC of its own (a step per job costs three: its create, srun's lookup of the
//! allocation, its end). Each job's part of the step's stdout and stderr is cut out by
//! `control::Frame` and goes on, as it comes, into the pipes or files the job would have been
//! given as a child here (`process::Delegate`): the process layer drains, captures, times and
//! records it as it does any wrapped job, control lines and all.
//!
//! A job is stopped through its worker (`kill MARKER SIGNAL`: its whole process group, on
//! the node). A worker that has not ended its job `ABANDON_AFTER` a KILL is given up: its
//! srun is killed here and its step cancelled. A worker whose step or node dies ends its
//! job's streams with srun's status, so a job that had started fails as a step of its own
//! would ("srun ended ... without the job's exit status"); one that had not is lost
//! (`OnWorker::lost`) and runs on another worker (`alloc::run`). The pool then has one slot
//! fewer (the dead step's CPUs may never come back, and a new step would wait for them), and
//! the other workers go on.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::slurm::SRUN_EXIT_ERROR;
use super::wrap;
use crate::sys;
use pump::{Current, pump};

mod launch;
mod pump;
pub use launch::OnWorker;

/// How long a worker may take to end a job it was told to KILL before it is given up.
const ABANDON_AFTER: Duration = Duration::from_secs(5);
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workers of one allocation: at most one per task, each one a step on one task.
pub struct Workers {
    alloc: String,
    cpus: Option<usize>,
    slots: Arc<Semaphore>,
    /// Slots not given up: a worker that died gives its slot up, down to the last one.
    kept: AtomicUsize,
    idle: Mutex<Vec<Arc<Worker>>>,
}

impl Workers {
    pub fn new(alloc: String, tasks: usize, cpus: Option<usize>) -> Arc<Workers> {
        let tasks = tasks.max(1);
        Arc::new(Workers {
            alloc,
            cpus,
            slots: Arc::new(Semaphore::new(tasks)),
            kept: AtomicUsize::new(tasks),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A slot for one job (waiting until one is free), with an idle worker when there is one.
    /// An idle worker found dead gives its slot up, as a leased one does (`Lease::drop`).
    pub async fn take(self: &Arc<Self>) -> Lease {
        loop {
            let mut permit = self.slots.clone().acquire_owned().await.ok();
            let worker = lock(&self.idle).pop();
            match worker {
                Some(w) if !w.alive() => {
                    w.close();
                    if self.give_up_slot()
                        && let Some(p) = permit.take()
                    {
                        p.forget();
                    }
                }
                worker => {
                    return Lease {
                        pool: self.clone(),
                        permit,
                        worker: Mutex::new(worker),
                        lost: Mutex::new(None),
                    };
                }
            }
        }
    }

    /// One slot fewer, for a worker that died (its CPUs may never come back, and a new step
    /// would wait for them), unless it is the last one. Whether one was given up.
    fn give_up_slot(&self) -> bool {
        self.kept
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| {
                (k > 1).then(|| k - 1)
            })
            .is_ok()
    }

    /// Ends the idle workers (their loops read EOF) and waits a little for their steps.
    pub async fn close(&self) {
        let all: Vec<Arc<Worker>> = lock(&self.idle).drain(..).collect();
        for w in &all {
            w.close();
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while all.iter().any(|w| !w.state.gone.load(Ordering::SeqCst))
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One job's slot in the pool, and the worker it runs on (kept for its retries).
pub struct Lease {
    pool: Arc<Workers>,
    permit: Option<OwnedSemaphorePermit>,
    worker: Mutex<Option<Arc<Worker>>>,
    /// Why its last job never started: its worker ended first (`lost`).
    lost: Mutex<Option<String>>,
}

impl Lease {
    /// Whether the worker of its last job has ended.
    fn worker_gone(&self) -> bool {
        lock(&self.worker)
            .as_ref()
            .is_some_and(|w| w.state.gone.load(Ordering::SeqCst))
    }

    /// The job of this lease did not start: when its worker ended first, it is lost (its
    /// worker's end said `said`), and may run on another worker.
    fn not_started(&self, said: &str) {
        let w = lock(&self.worker).clone();
        if let Some(w) = w.filter(|w| w.state.gone.load(Ordering::SeqCst)) {
            self.lose(&w, &format!("ended before the job started ({said})"));
        }
    }

    /// The job of this lease cannot start on worker `w`, which ended (`how`): it is lost.
    fn lose(&self, w: &Worker, how: &str) {
        let on = lock(&w.state.node)
            .as_ref()
            .map_or(String::new(), |n| format!(" on {n}"));
        *lock(&self.lost) = Some(format!("its Slurm worker{on} {how}"));
    }

    /// The lease's worker, or a new one when it has none. One that died (under an attempt
    /// before) is replaced only in the pool's last slot: a new step could wait for good for
    /// CPUs the other workers hold, busy or idle. Elsewhere the job is lost, and goes to
    /// another worker (`alloc::run`).
    fn worker(&self) -> std::io::Result<Arc<Worker>> {
        let mut w = lock(&self.worker);
        match w.as_ref() {
            Some(live) if live.alive() => return Ok(live.clone()),
            Some(dead) if self.pool.kept.load(Ordering::SeqCst) > 1 => {
                let dead = dead.clone();
                drop(w);
                self.lose(&dead, "ended before the job started");
                return Err(std::io::Error::other("its Slurm worker step ended"));
            }
            _ => {}
        }
        let new = Worker::spawn(&self.pool)?;
        *w = Some(new.clone());
        Ok(new)
    }

    /// Signals the job of `marker`, if it still runs on this lease's worker, on its node; a
    /// KILL that the worker does not carry out in time gives the worker up.
    /// `step`: the worker's step, to cancel when it must be given up.
    fn signal(&self, marker: &str, signal: i32, step: Option<String>) {
        let Some(w) = lock(&self.worker).clone() else {
            return;
        };
        // Also after the job's end: what it left running dies with its group (the worker
        // ignores a marker that is not its last job's).
        w.send(wrap::worker_kill(marker, signal));
        let running = lock(&w.state.current).as_deref() == Some(marker);
        if signal != sys::SIGKILL || !running {
            return;
        }
        let (state, pid, marker) = (w.state.clone(), w.pid, marker.to_string());
        let Ok(rt) = runtime() else { return };
        rt.spawn(async move {
            tokio::time::sleep(ABANDON_AFTER).await;
            if lock(&state.current).as_deref() == Some(marker.as_str()) {
                let _ = sys::killpg(pid, sys::SIGKILL);
                if let Some(step) = step {
                    super::scancel::cancel(step).await;
                }
            }
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(w) = lock(&self.worker).take() else {
            return;
        };
        if w.alive() && lock(&w.state.current).is_none() {
            lock(&self.pool.idle).push(w);
            return;
        }
        w.close();
        if self.pool.give_up_slot()
            && let Some(p) = self.permit.take()
        {
            p.forget();
        }
    }
}

/// One worker step: its srun, the commands sent to it, and the job it runs.
struct Worker {
    pid: u32,
    cmds: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    jobs: mpsc::UnboundedSender<Current>,
    state: Arc<State>,
}

struct State {
    /// The marker of the job it runs, until that job's streams ended.
    current: Mutex<Option<String>>,
    /// Its srun ended.
    gone: AtomicBool,
    /// Its node, once its first line said it.
    node: Mutex<Option<String>>,
}

impl Worker {
    /// Starts a worker step in `pool`'s allocation.
    fn spawn(pool: &Workers) -> std::io::Result<Arc<Worker>> {
        let mut cmd = std::process::Command::new("srun");
        cmd.args(srun_args(&pool.alloc, pool.cpus))
            .args(["bash", "-c", wrap::WORKER])
            .env("SLURM_EXIT_ERROR", SRUN_EXIT_ERROR.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own group: the terminal's Ctrl-C is the run's to handle.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let rt = runtime()?;
        let _in = rt.enter();
        let mut child = tokio::process::Command::from(cmd).spawn()?;
        let pid = child.id().unwrap_or(0);
        let (Some(mut stdin), Some(out), Some(err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("srun's pipes are missing"));
        };
        let (cmds, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            current: Mutex::new(None),
            gone: AtomicBool::new(false),
            node: Mutex::new(None),
        });
        tokio::spawn(pump(child, out, err, jobs_rx, state.clone()));
        Ok(Arc::new(Worker {
            pid,
            cmds: Mutex::new(Some(cmds)),
            jobs,
            state,
        }))
    }

    fn send(&self, bytes: Vec<u8>) -> bool {
        lock(&self.cmds)
            .as_ref()
            .is_some_and(|c| c.send(bytes).is_ok())
    }

    /// Closes its stdin: its loop ends, and its step with it.
    fn close(&self) {
        lock(&self.cmds).take();
    }

    fn alive(&self) -> bool {
        !self.state.gone.load(Ordering::SeqCst) && lock(&self.cmds).is_some()
    }
}

/// The runtime the workers' tasks run on, on a thread of its own: the runtimes of the
/// executor's threads end with their jobs, and a worker outlives the job that started it.
fn runtime() -> std::io::Result<tokio::runtime::Handle> {
    static RT: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
    let mut rt = lock(&RT);
    if let Some(h) = rt.as_ref() {
        return Ok(h.clone());
    }
    let new = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let h = new.handle().clone();
    std::thread::Builder::new()
        .name("orchestrate-slurm-workers".into())
        .spawn(move || new.block_on(std::future::pending::<()>()))?;
    *rt = Some(h.clone());
    Ok(h)
}

/// srun's options for a worker: one task, as a step of allocation `alloc` (`step_args`).
fn srun_args(alloc: &str, cpus: Option<usize>) -> Vec<String> {
    let mut a = super::slurm::step_args(alloc, cpus);
    a.extend(["--ntasks=1".into(), "--job-name=orchestrate-worker".into()]);
    a
}
