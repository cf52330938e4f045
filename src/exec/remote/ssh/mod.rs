//! Jobs on ssh hosts: spread over a job's hosts, at most `slots` at once on each, every job a
//! session over one multiplexed connection per host (a ControlMaster opened by the first job
//! that goes there, before any other job may use the host).
//!
//! The job runs under `exec::wrap`'s script, so its exit status is exact (a remote 255 is not
//! ssh's 255) and its remote process group is known: sshd starts each session in a new session,
//! and the script is exec'd into it, so the pid it reports leads the remote group. Stopping a
//! job sends `kill -SIG -- -PGID` over the same connection; killing the local client alone
//! would leave the remote command running (no pty, no SIGHUP).

mod pool;

use std::collections::HashSet;
use std::sync::Arc;

pub use pool::Pool;

use super::wrap;
use crate::environ::JobEnv;
use crate::exec::ends;
use crate::exec::process::{JobCtx, Launch, Launcher, run_job, spawn_stop_command, wait_cancel};
use crate::plan::{PlannedJob, SshOptions};
use crate::record::{CompletedProcess, Status};

/// One job on one host, over its master.
pub struct Ssh {
    host: String,
    /// ssh's arguments up to and including the destination.
    args: Vec<String>,
    marker: String,
}

impl Ssh {
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
    fn launch(&self, job: &PlannedJob, argv: &[String], env: JobEnv) -> Launch {
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
        let status = status.map_or("no status".into(), |s| s.to_string());
        if control.started {
            format!(
                "the connection to ssh host `{}` broke while the job ran ({status}){}",
                self.host,
                if early.is_empty() {
                    String::new()
                } else {
                    format!(": {early}")
                }
            )
        } else {
            format!(
                "ssh to `{}` failed before the job started ({status}){}",
                self.host,
                if early.is_empty() {
                    String::new()
                } else {
                    format!(": {early}")
                }
            )
        }
    }
}

/// Runs a job on one of its hosts; with `on_host_failure: retry_elsewhere`, a job whose host
/// cannot be reached moves to the next one.
pub async fn run(
    job: &PlannedJob,
    opts: &SshOptions,
    ctx: JobCtx,
    pool: &Pool,
) -> CompletedProcess {
    let mut tried: HashSet<String> = HashSet::new();
    let mut failures: Vec<String> = Vec::new();
    let mut cancel = ctx.cancel.clone();
    loop {
        let acquired = tokio::select! {
            a = pool.acquire(opts, &tried) => a,
            _ = wait_cancel(&mut cancel) => {
                return ends::not_run(job, ctx.slot, None, Status::Cancelled, "not started: the run was interrupted".into());
            }
        };
        let Some((lease, host)) = acquired else {
            return ends::not_run(job, ctx.slot, None, Status::SpawnError, failures.join("; "));
        };
        tried.insert(host.clone());
        match pool.master(&lease.key).await {
            Err(e) => {
                if opts.retry_elsewhere && tried.len() < opts.hosts.len() {
                    failures.push(e);
                    continue;
                }
                failures.push(e);
                return ends::not_run(
                    job,
                    ctx.slot,
                    Some(host),
                    Status::SpawnError,
                    failures.join("; "),
                );
            }
            Ok(args) => {
                let mut job_ctx = ctx.clone();
                job_ctx.launcher = Arc::new(Ssh {
                    host: host.clone(),
                    args,
                    marker: wrap::new_marker(),
                });
                let mut rec = run_job(job, job_ctx).await;
                drop(lease);
                let unreachable = rec.status == Status::SpawnError && rec.pid.is_some();
                if unreachable && opts.retry_elsewhere && tried.len() < opts.hosts.len() {
                    failures.push(rec.error.clone().unwrap_or_default());
                    continue;
                }
                if !failures.is_empty() {
                    rec.notes
                        .push(format!("moved here after: {}", failures.join("; ")));
                }
                return rec;
            }
        }
    }
}
