//! The ssh hosts of a run: a slot count per host, and one multiplexed connection (a
//! ControlMaster, opened by the first job that goes there) that every job on the host uses.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::plan::SshOptions;

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
pub(super) type SshOptionsKey = (Option<PathBuf>, Vec<String>);

/// A slot taken on a host; given back on drop.
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    pub(super) key: (String, SshOptionsKey),
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
    pub(super) async fn acquire(
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
                                .get_or_init(socket_dir)
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
    pub(super) async fn master(
        &self,
        key: &(String, SshOptionsKey),
    ) -> Result<Vec<String>, String> {
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

/// The folder for this run's ControlMaster sockets: in /tmp (a socket path must stay short),
/// 0700 whatever the umask, named after this process, so that the next run can remove the
/// folders of runs that were killed before they could (their pid no longer lives).
fn socket_dir() -> Option<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    sweep_stale_socket_dirs();
    tempfile::Builder::new()
        .prefix(&format!("{SOCKET_PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in("/tmp")
        .ok()
}

const SOCKET_PREFIX: &str = "orch-ssh-";

/// Removes `/tmp/orch-ssh-PID-*` folders of ours whose process is gone.
fn sweep_stale_socket_dirs() {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SOCKET_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && crate::sys::process_gone(pid) {
            let _ = std::fs::remove_dir_all(e.path());
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
