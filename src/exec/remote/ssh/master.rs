//! One host's connection: the ssh arguments that reach it, and its ControlMaster, which this
//! run opens, checks, reopens and closes (`ssh -O exit`); the private folder of the sockets.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::plan::SshOptions;

/// Connection timeout unless the job file's options set one: a host that does not answer
/// (down, or frozen: the kernel still accepts, sshd never speaks) is given up on soon.
const CONNECT_TIMEOUT_S: u32 = 5;
/// Keep-alives on the master: a host that stops answering (frozen, cut off) is given up after
/// about interval × (count + 1) seconds, and the jobs on it with it, instead of hanging.
const ALIVE_INTERVAL_S: u32 = 2;
const ALIVE_COUNT: u32 = 3;
/// The run closes its masters itself (`Pool::close`); this only bounds an orphan's life (the
/// run killed with -9). A master dropped after a longer idle time is reopened, once.
const CONTROL_PERSIST: &str = "30m";

/// How to reach one host: destination, port, the job file's ssh settings, its socket.
pub(super) struct Conn {
    /// The host as the job file names it.
    pub(super) name: String,
    dest: String,
    port: Option<String>,
    opts: SshOptions,
    socket: PathBuf,
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

impl Conn {
    pub(super) fn new(name: &str, opts: &SshOptions, socket: PathBuf) -> Conn {
        let (dest, port) = split_port(name);
        Conn {
            name: name.to_string(),
            dest,
            port,
            opts: opts.clone(),
            socket,
        }
    }

    /// ssh's arguments up to (not including) the destination. `first` go ahead of the job
    /// file's options, so they win over them (ssh takes the first value it is given).
    fn base_args(&self, first: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = &self.opts.config {
            a.push("-F".to_string());
            a.push(c.display().to_string());
        }
        for o in first {
            a.push("-o".into());
            a.push((*o).to_string());
        }
        for o in &self.opts.options {
            a.push("-o".into());
            a.push(o.clone());
        }
        // After the file's options, which override these defaults.
        for o in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            format!("ServerAliveInterval={ALIVE_INTERVAL_S}"),
            format!("ServerAliveCountMax={ALIVE_COUNT}"),
            format!("ControlPath={}", self.socket.display()),
        ] {
            a.push("-o".into());
            a.push(o);
        }
        if let Some(p) = &self.port {
            a.push("-p".into());
            a.push(p.clone());
        }
        a
    }

    /// A job's ssh arguments, up to and including the destination: a session over the master
    /// and nothing else. With the master gone, ssh would log in on its own (one full login
    /// per job); `ProxyCommand=false` makes it fail at once instead, so that the pool reopens
    /// the master once for every job.
    pub(super) fn session_args(&self) -> Vec<String> {
        let mut a = self.base_args(&["ControlMaster=no", "ProxyCommand=false"]);
        a.extend(["-T".into(), "--".into(), self.dest.clone()]);
        a
    }

    /// ssh's arguments for `ssh -O CMD` to the master.
    pub(super) fn control_args(&self, cmd: &str) -> Vec<String> {
        let mut a = self.base_args(&[]);
        a.extend(["-O".into(), cmd.into(), "--".into(), self.dest.clone()]);
        a
    }

    /// `ssh -O CMD` to the master.
    fn control(&self, cmd: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(self.control_args(cmd))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Whether the master answers.
    pub(super) async fn check(&self) -> bool {
        let mut c = self.control("check");
        matches!(
            tokio::time::timeout(Duration::from_secs(10), c.status()).await,
            Ok(Ok(s)) if s.success()
        )
    }

    /// Asks the master to exit.
    pub(super) async fn exit(&self) {
        let mut c = self.control("exit");
        let _ = tokio::time::timeout(Duration::from_secs(10), c.status()).await;
    }

    /// Opens the master (a socket left by a dead one is removed first: ssh would not bind over
    /// it). `Err`: why the host cannot be reached.
    pub(super) async fn open(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.base_args(&[]))
            .args([
                "-o",
                "ControlMaster=yes",
                "-o",
                &format!("ControlPersist={CONTROL_PERSIST}"),
                "-N",
                "-f",
                "--",
                &self.dest,
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // -f: the master detaches (stdio on /dev/null) once it is connected, so the
        // foreground ssh ends with the connection's outcome.
        let limit = Duration::from_secs(u64::from(CONNECT_TIMEOUT_S) * 3);
        let name = &self.name;
        match tokio::time::timeout(limit, cmd.output()).await {
            Ok(Ok(o)) if o.status.success() => Ok(()),
            Ok(Ok(o)) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let err: Vec<&str> = err
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let why = if err.is_empty() {
                    o.status.to_string()
                } else {
                    err.join("; ")
                };
                Err(format!("cannot reach ssh host `{name}`: {why}"))
            }
            Ok(Err(e)) => Err(format!("cannot run ssh: {e}")),
            Err(_) => Err(format!(
                "cannot reach ssh host `{name}`: no connection after {} s",
                limit.as_secs()
            )),
        }
    }
}

/// The folder for this run's ControlMaster sockets: in /tmp (a socket path must stay short),
/// 0700 whatever the umask, named after this process, so that the next run can remove the
/// folders of runs that were killed before they could (their pid no longer lives).
pub(super) fn socket_dir() -> Option<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    sweep_stale_socket_dirs();
    tempfile::Builder::new()
        .prefix(&format!("{SOCKET_PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in("/tmp")
        .ok()
}

const SOCKET_PREFIX: &str = "orch-ssh-";

/// Removes `/tmp/orch-ssh-PID-*` folders of ours whose process is gone, after asking the
/// masters still listening there to exit.
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
            exit_orphans(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `ssh -O exit` through every socket in a dead run's folder (its masters outlived it).
fn exit_orphans(dir: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    for s in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !s.file_type().is_ok_and(|t| t.is_socket()) {
            continue;
        }
        let _ = std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-o"])
            .arg(format!("ControlPath={}", s.path().display()))
            .args(["-O", "exit", "orphan"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
