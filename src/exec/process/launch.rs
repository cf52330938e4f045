//! The seam between the process layer and the back ends: what process to start for a job,
//! how to signal it, and what its end means. The local back end starts the job's own argv;
//! remote ones (Slurm steps, ssh) start a client running the job under `remote::wrap`.

use crate::environ::JobEnv;
use crate::exec::remote::wrap;
use crate::plan::PlannedJob;
use crate::sys;

/// What a back end starts for one attempt of a job.
pub struct Launch {
    /// Program, arguments, environment changes and directory; stdio is the process layer's.
    pub cmd: std::process::Command,
    /// Start from an empty environment rather than orchestrate's.
    pub env_clear: bool,
    /// The environment the job itself gets, as the record reports it.
    pub env: JobEnv,
    /// The job runs under the remote wrapper, whose control lines start with this marker on
    /// stderr: stderr is then always read here, and the job's status is the wrapper's word.
    pub marker: Option<String>,
    /// Bytes sent on the job's stdin ahead of its own input (ssh: the script and its
    /// variables, which must not be in any command line).
    pub stdin_prefix: Option<Vec<u8>>,
    /// The job is started by a process that already runs (a Slurm worker step), not
    /// spawned here; `cmd` then only says where the job runs (its directory).
    pub delegate: Option<Box<dyn Delegate>>,
}

/// Where a delegated job's stdout or stderr goes here: a pipe this process drains (its
/// write end, non-blocking), or a file (the job's own output file, or orchestrate's own
/// stream).
pub enum JobEnd {
    Pipe(std::os::fd::OwnedFd),
    File(std::fs::File),
}

/// A job started by a process that already runs, which writes the job's stdout and stderr
/// into the ends a child would have been given (`None`: nowhere).
pub trait Delegate: Send + Sync {
    fn start(&self, out: Option<JobEnd>, err: Option<JobEnd>) -> std::io::Result<Delegated>;
}

/// A delegated job, started: the local process it runs through (for the record), and its
/// end: once both its streams ended, the status of the process it ran through when that
/// ended under the job (else success: the job's own status is the wrapper's word).
pub struct Delegated {
    pub pid: u32,
    pub ended: tokio::sync::oneshot::Receiver<std::process::ExitStatus>,
}

/// A stop that runs elsewhere, to await before the job is recorded.
pub type Sweep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Builds and stops the OS process of a job.
pub trait Launcher: Send + Sync {
    /// `argv` is the job's argv with run-time placeholders (`{slot}`) filled in; `env` the
    /// variables the job gets on top of (or instead of) the inherited environment.
    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch;

    /// The host the job runs on, for the record.
    fn host(&self) -> Option<String> {
        None
    }

    /// Sends `signal` to the job: here, to its process group; a remote back end also (or
    /// instead) stops the job on the remote side, without waiting for that.
    fn signal(&self, pgid: u32, signal: i32, _control: Option<&wrap::Control>) {
        let _ = sys::killpg(pgid, signal);
    }

    /// A command that makes sure nothing of a stopped remote job is left, run (and waited
    /// for) before the job is recorded.
    fn sweep(&self, _control: &wrap::Control) -> Option<std::process::Command> {
        None
    }

    /// `sweep`, as something to await: a back end may gather the sweeps of many jobs into one
    /// command (Slurm: one `scancel` for every job stopped at about the same time).
    fn sweep_later(&self, control: &wrap::Control) -> Option<Sweep> {
        self.sweep(control)
            .map(|cmd| Box::pin(super::run_stop_command(cmd)) as Sweep)
    }

    /// Whether a wrapped job that started and has no exit status from the wrapper (`failure`
    /// said why) was cut short by its host or node failing, rather than by its wrapper being
    /// stopped on a host that is fine (a time limit, a `scancel`, the job killing its own
    /// process group). Each remote back end says how it tells.
    fn host_failed(&self, _control: &wrap::Control) -> bool {
        false
    }

    /// An attempt cut short by its host failing under it (`host_failed`) is left to the back
    /// end, which runs the job again on another host or worker, instead of being retried on
    /// this one.
    fn moves_on_host_failure(&self) -> bool {
        false
    }

    /// A wrapped job's timeout counts from the wrapper's start line, not from the client's
    /// start (Slurm: a job waiting in the queue has not started).
    fn timeout_from_start(&self) -> bool {
        false
    }

    /// A command whose stdout says why a wrapped job that has not started yet waits.
    fn queue_reason(&self, _control: &wrap::Control) -> Option<std::process::Command> {
        None
    }

    /// Why a wrapped job has no exit status from the wrapper: the client's own failure.
    fn failure(&self, control: &wrap::Control, status: Option<std::process::ExitStatus>) -> String {
        let early = control.early_text();
        format!(
            "the remote client failed ({}){}",
            status.map_or("no status".into(), |s| s.to_string()),
            if early.is_empty() {
                String::new()
            } else {
                format!(": {early}")
            }
        )
    }
}

/// Runs jobs as child processes of this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Launcher for Local {
    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch {
        // A bare name is looked up at spawn, in the PATH the job gets (`spawn::spawn_child`).
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if let Some(dir) = &job.cwd {
            cmd.current_dir(dir);
        }
        env.apply(&mut cmd);
        Launch {
            cmd,
            env_clear: !env.inherited,
            env,
            marker: None,
            stdin_prefix: None,
            delegate: None,
        }
    }
}
