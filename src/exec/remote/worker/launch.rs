//! A job of the run's allocation as the process layer sees it: launched on its lease's
//! worker (`process::Delegate`), stopped through it.

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::super::slurm::Slurm;
use super::super::wrap::{self, Control, Frame};
use super::pump::{Current, Sink};
use super::{Lease, lock};
use crate::environ::JobEnv;
use crate::exec::process::{Delegate, Delegated, JobEnd, Launch, Launcher};
use crate::plan::{PlannedJob, SlurmOptions};

/// A job of the run's allocation that runs on a worker of its slot.
pub struct OnWorker {
    slurm: Slurm,
    lease: Arc<Lease>,
    /// The marker of its current attempt.
    marker: Mutex<String>,
}

impl OnWorker {
    pub fn new(o: &SlurmOptions, alloc: String, lease: Lease) -> OnWorker {
        OnWorker {
            slurm: Slurm::step_of(o.clone(), alloc),
            lease: Arc::new(lease),
            marker: Mutex::new(String::new()),
        }
    }

    /// Why its last attempt never started, when that is because its worker ended first
    /// (its node died, its step was cancelled): the job never ran, and may run elsewhere.
    pub fn lost(&self) -> Option<String> {
        lock(&self.lease.lost).clone()
    }
}

/// An attempt's start on the lease's worker.
struct Dispatch {
    lease: Arc<Lease>,
    marker: String,
    script: String,
}

impl Delegate for Dispatch {
    fn start(&self, out: Option<JobEnd>, err: Option<JobEnd>) -> std::io::Result<Delegated> {
        let (tx, rx) = oneshot::channel();
        let mut job = Current {
            out: out.map(Sink::Given),
            err: err.map(Sink::Given),
            out_frame: Frame::stdout(&self.marker),
            err_frame: Frame::stderr(&self.marker),
            ended: tx,
        };
        // A worker found dead only now (its pump ended) is replaced once.
        for _ in 0..2 {
            let w = self.lease.worker()?;
            *lock(&w.state.current) = Some(self.marker.clone());
            match w.jobs.send(job) {
                Ok(()) => {
                    w.send(wrap::worker_job(&self.marker, &self.script));
                    return Ok(Delegated {
                        pid: w.pid,
                        ended: rx,
                    });
                }
                Err(mpsc::error::SendError(back)) => {
                    job = back;
                    *lock(&w.state.current) = None;
                    w.close();
                }
            }
        }
        self.lease.not_started("its step ended at once");
        Err(std::io::Error::other("the Slurm worker step ended at once"))
    }
}

impl Launcher for OnWorker {
    fn host_failed(&self, control: &Control) -> bool {
        // Its worker's step ended under it (its node died, the step was cancelled); a job
        // whose wrapper alone was stopped leaves its worker running.
        self.lease.worker_gone() || control.node_failed()
    }

    fn moves_on_host_failure(&self) -> bool {
        self.slurm.moves_on_host_failure()
    }

    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch {
        let marker = wrap::new_marker();
        *lock(&self.marker) = marker.clone();
        lock(&self.lease.lost).take();
        // The variables travel in the script, on the worker's stdin; with `env_clear`, the
        // job keeps Slurm's own, as `srun --export=NAMES` would.
        let setup = wrap::exports_keeping(&env, !env.inherited, Some("SLURM"));
        let script = wrap::script(&marker, job, argv, &setup, true);
        // Only where the job runs: its directory is checked here, as for a step of its own.
        let mut cmd = std::process::Command::new("srun");
        if let Some(dir) = &job.cwd {
            cmd.current_dir(dir);
        }
        Launch {
            cmd,
            env_clear: false,
            env,
            marker: Some(marker.clone()),
            stdin_prefix: None,
            delegate: Some(Box::new(Dispatch {
                lease: self.lease.clone(),
                marker,
                script,
            })),
        }
    }

    fn signal(&self, _pgid: u32, signal: i32, control: Option<&Control>) {
        let marker = lock(&self.marker).clone();
        let step = control.and_then(|c| self.slurm.cancel_id(c));
        self.lease.signal(&marker, signal, step);
    }

    fn failure(&self, control: &Control, status: Option<ExitStatus>) -> String {
        let why = self.slurm.failure(control, status);
        if !control.started {
            let said = control.early_text();
            self.lease
                .not_started(if said.is_empty() { &why } else { &said });
        }
        why
    }

    fn timeout_from_start(&self) -> bool {
        true
    }
}
