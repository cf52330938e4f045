//! Jobs on a Slurm cluster: each job is one `srun` step, its output streamed back through
//! srun's stdout and stderr, run under `exec::wrap`'s script so that the job's exit status, its
//! Slurm job id and node come back exactly. The step is a Slurm job of its own, or a step of
//! the run's allocation (`remote::alloc`) when `within` names one.
//!
//! Stopping: TERM to srun's process group makes srun cancel the step (it signals the task and
//! exits); whatever is left is swept with `scancel JOBID` (`scancel ALLOC.STEP` for a step of
//! the allocation, which the other jobs still use) before the job is recorded, one `scancel`
//! for all the jobs stopped at about the same time (`remote::scancel`).

use super::wrap;
use crate::environ::JobEnv;
use crate::exec::process::{Launch, Launcher, Sweep};
use crate::plan::{PlannedJob, SlurmOptions};

/// Whether a Slurm client's words (srun's, salloc's) say the controller did not take a new
/// job: down, or full (srun 22.05 says "controller not responding" also when the controller
/// refuses new jobs because it holds MaxJobCount of them). The one test of it.
pub fn controller_refused(said: &str) -> bool {
    said.contains("sleeping and retrying") || said.contains("Resource temporarily unavailable")
}

/// What to tell of a controller that did not take a job.
pub const REFUSED_HINT: &str = "The controller is down, or full (MaxJobCount, a QOS limit): see \
     `sdiag` and `squeue | wc -l`";

/// srun's options for a step of allocation `alloc`: one node, the step's CPUs only, and the
/// memory shared with the other steps (`--mem=0`; without it a step takes all of it and the
/// next one waits). The partition is the allocation's. For a job's own step and a worker's.
pub fn step_args(alloc: &str, cpus: Option<usize>) -> Vec<String> {
    let mut a = vec![
        format!("--jobid={alloc}"),
        "--nodes=1".into(),
        "--exact".into(),
        "--mem=0".into(),
    ];
    if let Some(c) = cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    a
}

/// srun's exit status for its own failures (`SLURM_EXIT_ERROR`). The wrapper's trailer tells
/// the job's status apart anyway; this only keeps srun's failures recognisable.
pub const SRUN_EXIT_ERROR: i32 = 254;

pub struct Slurm {
    opts: SlurmOptions,
    marker: String,
    /// The run's allocation the job is a step of; `None`: a Slurm job of its own.
    within: Option<String>,
}

impl Slurm {
    pub fn new(opts: SlurmOptions) -> Self {
        Slurm {
            opts,
            marker: wrap::new_marker(),
            within: None,
        }
    }

    /// A step of allocation `id`, on the CPUs it asks for alone (`--exact`).
    pub fn step_of(opts: SlurmOptions, id: String) -> Self {
        Slurm {
            within: Some(id),
            ..Slurm::new(opts)
        }
    }

    /// What stops what is left of the job: its step in the allocation (never the allocation,
    /// which the other jobs use), or its own Slurm job.
    pub(super) fn cancel_id(&self, control: &wrap::Control) -> Option<String> {
        let id = control.slurm_job_id.clone()?;
        match &self.within {
            None => Some(id),
            Some(_) => Some(format!("{id}.{}", control.slurm_step.as_ref()?)),
        }
    }

    /// srun's arguments before the command.
    pub fn srun_args(&self, job: &PlannedJob) -> Vec<String> {
        // No -Q: srun's messages (its errors, `job N queued`) are told apart from the job's
        // stderr by where they stand around the wrapper's control lines (`remote::control`).
        let mut a: Vec<String> = ["--input=none", "--ntasks=1"].map(String::from).to_vec();
        a.push(format!("--job-name={}", job.name));
        let Some(id) = &self.within else {
            a.extend(self.opts.args());
            return a;
        };
        a.extend(step_args(id, self.opts.cpus));
        if let Some(t) = &self.opts.time {
            a.push(format!("--time={t}"));
        }
        a
    }
}

impl Launcher for Slurm {
    fn host_failed(&self, control: &wrap::Control) -> bool {
        control.node_failed()
    }

    fn moves_on_host_failure(&self) -> bool {
        // A step of the run's allocation: `alloc::job` runs it again on another worker.
        self.within.is_some() && self.opts.retry_elsewhere
    }

    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch {
        let mut cmd = std::process::Command::new("srun");
        cmd.args(self.srun_args(job));
        if job.env_clear {
            // Only the job's variables (and Slurm's own): their names are in the command
            // line, their values come from srun's environment, never from argv.
            let names: Vec<&str> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
            cmd.arg(format!("--export={}", names.join(",")));
        }
        cmd.args([
            "sh",
            "-c",
            &wrap::script(&self.marker, job, argv, "", false),
        ]);
        cmd.env("SLURM_EXIT_ERROR", SRUN_EXIT_ERROR.to_string());
        // srun hands its environment to the task (`--export=ALL` by default): the job's
        // variables travel there, not in the command line.
        env.apply(&mut cmd);
        // srun starts the job in the directory it runs in.
        if let Some(dir) = &job.cwd {
            cmd.current_dir(dir);
        }
        Launch {
            cmd,
            env_clear: false,
            env,
            marker: Some(self.marker.clone()),
            stdin_prefix: None,
            delegate: None,
        }
    }

    fn signal(&self, pgid: u32, signal: i32, control: Option<&wrap::Control>) {
        // TERM goes to srun, which cancels the step itself; KILL also cancels the Slurm job.
        let _ = crate::sys::killpg(pgid, signal);
        if signal == crate::sys::SIGKILL
            && let Some(sweep) = control.and_then(|c| self.sweep_later(c))
        {
            tokio::spawn(sweep);
        }
    }

    fn sweep_later(&self, control: &wrap::Control) -> Option<Sweep> {
        let id = self.cancel_id(control)?;
        Some(Box::pin(super::scancel::cancel(id)))
    }

    fn failure(&self, control: &wrap::Control, status: Option<std::process::ExitStatus>) -> String {
        let code = status.and_then(|s| s.code());
        let what = match code {
            Some(c) => format!("exit {c}"),
            None => status.map_or("no status".into(), |s| s.to_string()),
        };
        let early = control.early_text();
        if control.started {
            let late = control.late.join("; ");
            let sep = if late.is_empty() { "" } else { ": " };
            return format!(
                "srun ended ({what}) while the job ran, without the job's exit status{sep}{late}"
            );
        }
        if controller_refused(&early) {
            return format!(
                "Slurm did not accept the job: srun gave up retrying ({what}): {early}. {REFUSED_HINT}"
            );
        }
        if early.is_empty() {
            return format!(
                "srun failed ({what}) before the job started, and said nothing (check the \
                 partition and resources, e.g. with `srun -p PARTITION true`)"
            );
        }
        format!("srun failed ({what}) before the job started: {early}")
    }

    fn timeout_from_start(&self) -> bool {
        true
    }

    fn queue_reason(&self, control: &wrap::Control) -> Option<std::process::Command> {
        let id = control.queued.as_ref()?;
        let mut cmd = std::process::Command::new("squeue");
        cmd.args(["-h", "-j", id, "-o", "%r"]);
        Some(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srun_gets_the_settings() {
        let s = Slurm::new(SlurmOptions {
            partition: Some("debug".into()),
            time: Some("5".into()),
            cpus: Some(2),
            mem: Some("1G".into()),
            extra_args: vec!["--exclusive".into()],
            ..Default::default()
        });
        let job = PlannedJob::new(0, "a".into(), vec!["true".into()]);
        assert_eq!(
            s.srun_args(&job).join(" "),
            "--input=none --ntasks=1 --job-name=a --partition=debug --time=5 \
             --cpus-per-task=2 --mem=1G --exclusive"
        );
    }
}
