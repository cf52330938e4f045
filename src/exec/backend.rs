//! The one seam through which a job runs. Each back end takes a planned job and its context
//! and returns the job's record; the scheduler neither knows nor asks which one it talks to.
//!
//! | back end     | when                                   | how                                   |
//! |--------------|----------------------------------------|---------------------------------------|
//! | `Direct`     | `executor: local` (or a library launcher) | a child process here (`process`)    |
//! | `SlurmStep`  | `executor: slurm`, alone in its settings | `srun` under the wrapper, its own Slurm job |
//! | `SlurmShared`| `executor: slurm`, many with the same settings | on a worker step of the run's allocation (`remote::worker`; with `time:`, a step of its own there) |
//! | `Ssh`        | `executor: ssh`                        | ssh over a shared master per host     |
//! | `Supervised` | `background: true`                     | a detached supervisor (`background`)  |
//! | `Sbatch`     | `background: true` + `executor: slurm` | `sbatch` (many of one entry: one job array), followed through Slurm |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::background::{self, BackgroundCtx};
use super::process::{self, JobCtx};
use super::remote::{alloc, array, sbatch, slurm, ssh};
use crate::plan::{Executor, PlannedJob};
use crate::record::CompletedProcess;

/// A job's run to its end, as a future the worker drives.
pub type Running<'a> = Pin<Box<dyn Future<Output = CompletedProcess> + Send + 'a>>;

/// Runs jobs somewhere and says how they ended.
pub trait Backend: Send + Sync {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a>;
}

/// A child process of this machine, started by the run's launcher.
struct Direct;

impl Backend for Direct {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        Box::pin(process::run_job(job, ctx))
    }
}

/// One `srun` step per job.
struct SlurmStep;

impl Backend for SlurmStep {
    fn run<'a>(&'a self, job: &'a PlannedJob, mut ctx: JobCtx) -> Running<'a> {
        let Executor::Slurm(o) = &job.executor else {
            return Box::pin(process::run_job(job, ctx));
        };
        ctx.launcher = Arc::new(slurm::Slurm::new(o.clone()));
        Box::pin(process::run_job(job, ctx))
    }
}

/// Slurm jobs that share the run's allocation of their settings, each a step of it.
struct SlurmShared(alloc::Allocations);

impl Backend for SlurmShared {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        match &job.executor {
            Executor::Slurm(o) if let Some(key) = alloc::key(o) => {
                Box::pin(async move { alloc::run(job, o, &key, ctx, &self.0).await })
            }
            _ => Box::pin(process::run_job(job, ctx)),
        }
    }
}

/// Jobs on ssh hosts; the pool holds each host's slots and connection for the whole run.
struct Ssh(ssh::Pool);

impl Backend for Ssh {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        match &job.executor {
            Executor::Ssh(o) => Box::pin(ssh::run(job, o, ctx, &self.0)),
            _ => Box::pin(process::run_job(job, ctx)),
        }
    }
}

/// A background job under a supervisor of its own.
struct Supervised(BackgroundCtx);

impl Backend for Supervised {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        Box::pin(background::run_background(job, ctx, &self.0))
    }
}

/// A background job submitted to Slurm with sbatch, alone or as a task of its group's array.
struct Sbatch(BackgroundCtx, array::Arrays);

impl Backend for Sbatch {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        match &job.executor {
            Executor::Slurm(o) => Box::pin(sbatch::run_background(job, ctx, o, &self.0, &self.1)),
            _ => Box::pin(background::run_background(job, ctx, &self.0)),
        }
    }
}

/// The back ends of one run; `for_job` is the only place that looks at where a job runs.
pub struct Backends {
    direct: Direct,
    slurm: SlurmStep,
    /// The run's allocations (`None`: every Slurm job is a Slurm job of its own).
    shared: Option<SlurmShared>,
    ssh: Ssh,
    background: Option<(Supervised, Sbatch)>,
    /// One back end for every job, when the caller gives one.
    every: Option<Arc<dyn Backend>>,
}

impl Backends {
    /// `background`: how to start supervisors (`None` without a store: background jobs are
    /// then refused before the run starts, see `run`).
    pub fn new(background: Option<BackgroundCtx>, every: Option<Arc<dyn Backend>>) -> Backends {
        Backends {
            direct: Direct,
            slurm: SlurmStep,
            shared: None,
            ssh: Ssh(ssh::Pool::new()),
            background: background.map(|b| (Supervised(b.clone()), Sbatch(b, Default::default()))),
            every,
        }
    }

    /// Slurm jobs with the same settings share an allocation of `allocs` (a run's jobs; not a
    /// run's own hooks and notifications, which run after it).
    pub fn sharing(mut self, allocs: alloc::Allocations) -> Backends {
        self.shared = Some(SlurmShared(allocs));
        self
    }

    /// Background Slurm jobs of one entry with the same settings go as the job arrays of
    /// `arrays` (a run's jobs).
    pub fn arrays(mut self, arrays: array::Arrays) -> Backends {
        if let Some((_, s)) = &mut self.background {
            s.1 = arrays;
        }
        self
    }

    /// The run's job arrays, when background jobs can be run.
    pub fn job_arrays(&self) -> Option<&array::Arrays> {
        self.background.as_ref().map(|(_, s)| &s.1)
    }

    pub fn for_job(&self, job: &PlannedJob) -> &dyn Backend {
        if let Some(every) = &self.every {
            return every.as_ref();
        }
        match (&self.background, job.background, &job.executor) {
            (Some((_, sbatch)), true, Executor::Slurm(_)) => sbatch,
            (Some((supervised, _)), true, _) => supervised,
            (_, _, Executor::Local) => &self.direct,
            (_, _, Executor::Slurm(o)) => match &self.shared {
                Some(s) if alloc::key(o).is_some_and(|k| s.0.shares(&k)) => s,
                _ => &self.slurm,
            },
            (_, _, Executor::Ssh(_)) => &self.ssh,
        }
    }

    /// Ends what the back ends keep open for the run (ssh masters, Slurm allocations).
    pub async fn close(&self) {
        self.ssh.0.close().await;
        if let Some(s) = &self.shared {
            s.0.close().await;
        }
        if let Some((_, s)) = &self.background {
            s.1.close().await;
        }
    }
}
