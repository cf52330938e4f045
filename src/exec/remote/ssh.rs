//! Jobs on ssh hosts: spread over a job's hosts, at most `slots` at once on each, every job a
//! session over one multiplexed connection per host (a ControlMaster opened by the first job
//! that goes there, before any other job may use the host).
//!
//! The job runs under `exec::wrap`'s script, so its exit status is exact (a remote 255 is not
//! ssh's 255) and its remote process group is known: sshd starts each session in a new session,
//! and the script is exec'd into it, so the pid it reports leads the remote group. Stopping a
//! job sends `kill -SIG -- -PGID` over the same connection; killing the local client alone
//! would leave the remote command running (no pty, no SIGHUP).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wrap;
use crate::environ::JobEnv;
use crate::exec::ends;
use crate::exec::process::{JobCtx, Launch, Launcher, run_job, spawn_stop_command, wait_cancel};
use crate::plan::{PlannedJob, SshOptions};
use crate::record::{CompletedProcess, Status};

/// Connection timeout unless the job file's options set one: a host that does not answer
/// fails its jobs instead of hanging them.
const CONNECT_TIMEOUT_S: u32 = 10;
/// An orphaned master (orchestrate killed) goes away after this long without sessions.
const CONTROL_PERSIST_S: u32 = 60;

/// A host of the job file: how to reach it and what runs there.
struct Host {
    /// Destination and port, as ssh takes them.
    dest: String,
    port: Option<String>,
    opts: SshOptions,
    socket: PathBuf,
    running: usize,
    /// Set once the master is up (`Ok`) or failed (`Err`: why the host cannot be reached).
    master: Arc<tokio::sync::OnceCell<Result<(), String>>>,
}

/// Every ssh host of a run, with its free slots and its master connection.
pub struct Pool {
    hosts: Mutex<HashMap<(String, SshOptionsKey), Host>>,
    freed: tokio::sync::Notify,
    /// Holds the control sockets: short (sun_path is ~104 bytes) and private (0700). Made
    /// when the first host is used: runs without ssh jobs make no directory.
    dir: std::sync::OnceLock<Option<tempfile::TempDir>>,
}

/// Hosts with the same name but other settings (`config`, `options`) are other connections.
type SshOptionsKey = (Option<PathBuf>, Vec<String>);

/// A slot taken on a host; given back on drop.
struct Lease<'a> {
    pool: &'a Pool,
    key: (String, SshOptionsKey),
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Ok(mut hosts) = self.pool.hosts.lock()
            && let Some(h) = hosts.get_mut(&self.key)
        {
            h.running = h.running.saturating_sub(1);
        }
        self.pool.freed.notify_waiters();
    }
}

/// `user@host:port` → (`user@host`, port); anything else is a name for ssh (and its config).
fn split_port(host: &str) -> (String, Option<String>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
            (h.to_string(), Some(p.into()))
        }
        _ => (host.to_string(), None),
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl Pool {
    pub fn new() -> Self {
        Pool {
            hosts: Mutex::new(HashMap::new()),
            freed: tokio::sync::Notify::new(),
            dir: std::sync::OnceLock::new(),
        }
    }

    /// Takes a slot on the least busy of `opts.hosts` not in `tried` with a free slot, waiting
    /// for one; hosts known to be down come last. `None`: every host was tried.
    async fn acquire(
        &self,
        opts: &SshOptions,
        tried: &HashSet<String>,
    ) -> Option<(Lease<'_>, String)> {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut hosts = self.hosts.lock().expect("host table lock");
                let optkey: SshOptionsKey = (opts.config.clone(), opts.options.clone());
                let candidates: Vec<&String> =
                    opts.hosts.iter().filter(|h| !tried.contains(*h)).collect();
                if candidates.is_empty() {
                    return None;
                }
                let mut best: Option<(bool, usize, usize)> = None;
                for (i, name) in candidates.iter().enumerate() {
                    let key = ((*name).clone(), optkey.clone());
                    let n = hosts.len();
                    let h = hosts.entry(key).or_insert_with(|| {
                        let (dest, port) = split_port(name);
                        Host {
                            dest,
                            port,
                            opts: opts.clone(),
                            socket: self
                                .dir
                                .get_or_init(|| {
                                    tempfile::Builder::new()
                                        .prefix("orch-ssh-")
                                        .tempdir_in("/tmp")
                                        .ok()
                                })
                                .as_ref()
                                .map_or_else(std::env::temp_dir, |d| d.path().to_path_buf())
                                .join(n.to_string()),
                            running: 0,
                            master: Arc::new(tokio::sync::OnceCell::new()),
                        }
                    });
                    if h.running >= opts.slots {
                        continue;
                    }
                    let down = matches!(h.master.get(), Some(Err(_)));
                    let rank = (down, h.running, i);
                    if best.is_none_or(|b| rank < b) {
                        best = Some(rank);
                    }
                }
                if let Some((_, _, i)) = best {
                    let key = (candidates[i].clone(), optkey);
                    if let Some(h) = hosts.get_mut(&key) {
                        h.running += 1;
                    }
                    return Some((Lease { pool: self, key }, candidates[i].clone()));
                }
            }
            notified.await;
        }
    }

    /// ssh's arguments for `host`, up to (not including) the destination.
    fn base_args(h: &Host) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = &h.opts.config {
            a.push("-F".to_string());
            a.push(c.display().to_string());
        }
        for o in &h.opts.options {
            a.push("-o".into());
            a.push(o.clone());
        }
        // Earlier -o wins in ssh, so the file's options above override these defaults.
        for o in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            "ServerAliveInterval=15".to_string(),
        ] {
            a.push("-o".into());
            a.push(o);
        }
        a.push("-o".into());
        a.push(format!("ControlPath={}", h.socket.display()));
        if let Some(p) = &h.port {
            a.push("-p".into());
            a.push(p.clone());
        }
        a
    }

    /// Opens the host's master connection once; every job waits for it.
    async fn master(&self, key: &(String, SshOptionsKey)) -> Result<Vec<String>, String> {
        let (cell, mut args, dest) = {
            let hosts = self.hosts.lock().expect("host table lock");
            let h = hosts.get(key).ok_or("unknown host")?;
            (h.master.clone(), Pool::base_args(h), h.dest.clone())
        };
        let opened = cell
            .get_or_init(|| async {
                let mut cmd = tokio::process::Command::new("ssh");
                cmd.args(&args)
                    .args([
                        "-o",
                        "ControlMaster=yes",
                        "-o",
                        &format!("ControlPersist={CONTROL_PERSIST_S}"),
                        "-N",
                        "-f",
                        "--",
                        &dest,
                    ])
                    .stdin(Stdio::null())
                    .kill_on_drop(true);
                // -f: the master detaches (stdio on /dev/null) once it is connected, so the
                // foreground ssh ends with the connection's outcome.
                let limit = Duration::from_secs(u64::from(CONNECT_TIMEOUT_S) * 3);
                match tokio::time::timeout(limit, cmd.output()).await {
                    Ok(Ok(o)) if o.status.success() => Ok(()),
                    Ok(Ok(o)) => {
                        let err = String::from_utf8_lossy(&o.stderr);
                        let err: Vec<&str> = err
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .collect();
                        Err(format!(
                            "cannot reach ssh host `{}`: {}",
                            key.0,
                            if err.is_empty() {
                                o.status.to_string()
                            } else {
                                err.join("; ")
                            }
                        ))
                    }
                    Ok(Err(e)) => Err(format!("cannot run ssh: {e}")),
                    Err(_) => Err(format!(
                        "cannot reach ssh host `{}`: no connection after {} s",
                        key.0,
                        limit.as_secs()
                    )),
                }
            })
            .await
            .clone();
        opened?;
        args.push("-o".into());
        args.push("ControlMaster=no".into());
        args.push("-T".into());
        args.push("--".into());
        args.push(dest);
        Ok(args)
    }

    /// Closes every master connection (the run is over).
    pub async fn close(&self) {
        let masters: Vec<Vec<String>> = {
            let hosts = self.hosts.lock().expect("host table lock");
            hosts
                .values()
                .filter(|h| matches!(h.master.get(), Some(Ok(()))))
                .map(|h| {
                    let mut a = Pool::base_args(h);
                    a.extend(["-O".into(), "exit".into(), "--".into(), h.dest.clone()]);
                    a
                })
                .collect()
        };
        for args in masters {
            let mut cmd = tokio::process::Command::new("ssh");
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), cmd.status()).await;
        }
    }
}

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
        // The remote login shell runs this; `exec` keeps the script in the session sshd made.
        let script = wrap::script(&self.marker, job, argv, &env, true);
        cmd.arg(format!("exec sh -c {}", shell_words::quote(&script)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_split_off() {
        assert_eq!(
            split_port("root@10.0.0.1:2222"),
            ("root@10.0.0.1".into(), Some("2222".into()))
        );
        assert_eq!(split_port("node1"), ("node1".into(), None));
    }
}
