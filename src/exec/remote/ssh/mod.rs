//! Jobs on ssh hosts: spread over a job's hosts, at most `slots` at once on each, every job a
//! session over one multiplexed connection per host (a ControlMaster opened by the first job
//! that goes there, before any other job may use the host).
//!
//! A host that fails is down for every job (`health`), and with `retry_elsewhere` its jobs
//! move to the others (`run`), as a new attempt when they had started.
//!
//! The job runs under `exec::wrap`'s script, so its exit status is exact (a remote 255 is not
//! ssh's 255) and its remote process group is known: sshd starts each session in a new session,
//! and the script is exec'd into it, so the pid it reports leads the remote group. Stopping a
//! job sends `kill -SIG -- -PGID` over the same connection; killing the local client alone
//! would leave the remote command running (no pty, no SIGHUP).

mod health;
mod master;
mod pool;
mod run;

use std::sync::Mutex;

pub use pool::Pool;
pub use run::run;

use super::wrap;
use crate::environ::JobEnv;
use crate::exec::process::{Launch, Launcher, spawn_stop_command};
use crate::plan::PlannedJob;

/// ssh's own exit status for its failures (the job's 255 comes in the wrapper's control line).
const SSH_FAILED: i32 = 255;

/// One job on one host, over its master.
pub struct Ssh {
    host: String,
    /// ssh's arguments up to and including the destination.
    args: Vec<String>,
    marker: String,
    /// How the connection failed in the last attempt, if it did.
    lost: Mutex<Option<Lost>>,
}

/// A connection that failed under a job: before it started, or while it ran, and why.
#[derive(Clone, Debug)]
pub(super) struct Lost {
    pub(super) started: bool,
    pub(super) why: String,
}

impl Ssh {
    fn new(host: String, args: Vec<String>) -> Ssh {
        Ssh {
            host,
            args,
            marker: wrap::new_marker(),
            lost: Mutex::new(None),
        }
    }

    /// How the last attempt's connection failed, if it did.
    fn lost(&self) -> Option<Lost> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `kill -SIG -- -PGID` on the host, for the wrapper's process group there.
    fn remote_kill(&self, control: &wrap::Control, signal: i32) -> Option<std::process::Command> {
        let pgid = control.pgid?;
        let name = if signal == crate::sys::SIGKILL {
            "KILL"
        } else {
            "TERM"
        };
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(&self.args);
        cmd.arg(format!("kill -{name} -- -{pgid} 2>/dev/null; true"));
        Some(cmd)
    }
}

impl Launcher for Ssh {
    fn host_failed(&self, _control: &wrap::Control) -> bool {
        // ssh's own failure (255): the connection broke, not the job's wrapper.
        self.lost().is_some()
    }

    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(&self.args);
        // The script, with the job's variables, goes over the connection on stdin, ahead of
        // the job's own input: on ssh's command line every local user could read it in
        // /proc, and the remote side's too. `exec` keeps it in the session sshd made.
        let setup = wrap::exports(&env, job.env_clear);
        let script = wrap::script(&self.marker, job, argv, &setup, true);
        cmd.arg(wrap::STDIN_BOOTSTRAP);
        // The job's directory is on the remote host (the wrapper changes to it), and its
        // environment starts from the remote login's, not ours.
        Launch {
            cmd,
            env_clear: false,
            env: JobEnv {
                inherited: false,
                ..env
            },
            marker: Some(self.marker.clone()),
            stdin_prefix: Some(wrap::stdin_prefix(&script)),
            delegate: None,
        }
    }

    fn host(&self) -> Option<String> {
        Some(self.host.clone())
    }

    fn signal(&self, pgid: u32, signal: i32, control: Option<&wrap::Control>) {
        let remote = control.and_then(|c| self.remote_kill(c, signal));
        // TERM is sent on the remote side only: the client must stay to bring the job's last
        // output back.
        if signal != crate::sys::SIGTERM || remote.is_none() {
            let _ = crate::sys::killpg(pgid, signal);
        }
        if let Some(cmd) = remote {
            spawn_stop_command(cmd);
        }
    }

    fn sweep(&self, control: &wrap::Control) -> Option<std::process::Command> {
        self.remote_kill(control, crate::sys::SIGKILL)
    }

    fn failure(&self, control: &wrap::Control, status: Option<std::process::ExitStatus>) -> String {
        let early = control.early_text();
        let early = if early.is_empty() {
            String::new()
        } else {
            format!(": {early}")
        };
        let status_text = status.map_or("no status".into(), |s| s.to_string());
        let why = if control.started {
            format!(
                "the connection to ssh host `{}` broke while the job ran ({status_text}){early}",
                self.host
            )
        } else {
            format!(
                "ssh to `{}` failed before the job started ({status_text}){early}",
                self.host
            )
        };
        if status.and_then(|s| s.code()) == Some(SSH_FAILED) {
            *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(Lost {
                started: control.started,
                why: why.clone(),
            });
        }
        why
    }
}
