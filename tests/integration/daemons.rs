//! The Slurm and sshd test daemons: started at most once per test process by
//! ../shared/cluster's scripts, each in a state dir of its own (`/tmp/orch-it-<pid>-<kind>`) on
//! free ports, and stopped when the test process ends, however it ends.
//!
//! libtest has no hook for the end of a run and statics are never dropped, so each daemon gets
//! a watchdog: a shell that ignores the terminal's signals and blocks reading a pipe whose only
//! writer is this process. The kernel closes that pipe when the process exits (pass, fail,
//! panic, Ctrl-C, kill -9); the watchdog then runs the matching `*-down.sh DIR --rm`. Keying
//! the dir and ports per process keeps two checkouts (or two `cargo test`s) from sharing, or
//! stopping, each other's daemons.

use std::net::TcpListener;
use std::process::{Command, Stdio};

pub(crate) type Exports = Vec<(String, String)>;

/// The `shared/cluster` folder of the nearest ancestor that has one: `../shared` from the main
/// checkout, `../../shared` from a worktree under `wt/`.
fn cluster_dir() -> Result<std::path::PathBuf, String> {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .skip(1)
        .map(|a| a.join("shared/cluster"))
        .find(|d| d.is_dir())
        .ok_or_else(|| format!("no shared/cluster next to {} or above", here.display()))
}

/// The state dir of this process's daemon of `kind`.
pub(crate) fn state_dir(pid: u32, kind: &str) -> String {
    format!("/tmp/orch-it-{pid}-{kind}")
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> Result<String, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string())
}

/// A port `p` with `p` and the three after `p + 3` free (`slurm-multi-up.sh`: the controller
/// on `p`, the three slurmd on `p + 4 ..= p + 6`).
fn free_multi_port() -> Result<String, String> {
    for _ in 0..50 {
        let p: u16 = free_port()?.parse().map_err(|e| format!("{e}"))?;
        if p > 65000 {
            continue;
        }
        if (4..=6).all(|k| TcpListener::bind(("127.0.0.1", p + k)).is_ok()) {
            return Ok(p.to_string());
        }
    }
    Err("no run of free ports for a 3-node cluster".into())
}

/// The slurm.conf lines of a 3-node cluster kind: `mslurm-full` one whose controller takes at
/// most 3 jobs (`mslurm-max20`: 20, ended ones included, fewer than a fan-out has;
/// `mslurm-max160`: 160, fewer than a 300-item fan-out has, each array task counted),
/// `mslurm-array101` array indices below 101 only (fewer than a 105-item fan-out has),
/// `mslurm-tasks50` arrays of 50 tasks at most (the scheduler's `max_array_tasks`),
/// `mslurm-dying*` a node whose slurmd stops found dead after seconds, not the default 300.
fn extra_conf(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "mslurm-full" => "MaxJobCount=3",
        "mslurm-max20" => "MaxJobCount=20",
        "mslurm-max160" => "MaxJobCount=160",
        "mslurm-array101" => "MaxArraySize=101",
        "mslurm-tasks50" => {
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,max_array_tasks=50"
        }
        k if k.starts_with("mslurm-dying") => "SlurmdTimeout=5",
        _ => return None,
    })
}

/// Starts the daemon of `kind` for this process and returns its `export` lines, or why it
/// could not. `slurm` is one node; `mslurm-NAME` a 3-node cluster of its own (n1: 2 CPUs, n2: 1,
/// n3: 2) for each NAME, some with settings of their own (`extra_conf`); anything else sshd.
pub(crate) fn start(kind: &str) -> Result<Exports, String> {
    let dir = state_dir(std::process::id(), kind);
    let (up, down, env) = match kind {
        k if k.starts_with("mslurm") => {
            let mut env = vec![("SLURM_MULTI_PORT", free_multi_port()?)];
            env.extend(extra_conf(k).map(|c| ("EXTRA_CONF", c.to_string())));
            ("slurm-multi-up.sh", "slurm-multi-down.sh", env)
        }
        "slurm" => (
            "slurm-up.sh",
            "slurm-down.sh",
            vec![
                ("SLURM_CPUS", "8".to_string()),
                ("SLURMCTLD_PORT", free_port()?),
                ("SLURMD_PORT", free_port()?),
            ],
        ),
        _ => (
            "sshd-up.sh",
            "sshd-down.sh",
            vec![("SSHD_PORT", free_port()?)],
        ),
    };
    let cluster = cluster_dir()?;
    let up = cluster.join(up);
    if !up.exists() {
        return Err(format!("{} is missing", up.display()));
    }
    // Before the daemons: a start that fails halfway is cleaned up too.
    stop_at_exit(&cluster.join(down), &dir)?;
    let out = Command::new(&up)
        .arg(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", up.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            up.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect())
}

/// Several sshd hosts of this process, named `NAME-a`, `NAME-b`, ... in one ssh_config: each
/// its own daemon (state dir `/tmp/orch-it-<pid>-sshd-NAME-a`, free port), which a test may
/// kill, freeze or restart without touching any other test's host.
pub(crate) struct SshHosts {
    /// The ssh_config naming every host (`ssh -F`).
    pub(crate) config: std::path::PathBuf,
    pub(crate) hosts: Vec<SshHost>,
}

pub(crate) struct SshHost {
    pub(crate) alias: String,
    pub(crate) port: String,
    dir: String,
}

impl SshHosts {
    /// Starts `n` (at most 26) hosts for `name`.
    pub(crate) fn start(name: &str, n: usize) -> Result<SshHosts, String> {
        let mut hosts = Vec::new();
        let mut config = String::new();
        for i in 0..n.min(26) {
            let alias = format!("{name}-{}", (b'a' + i as u8) as char);
            let kind = format!("sshd-{alias}");
            let e = start(&kind)?;
            let get = |k: &str| {
                e.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("{k} not exported by sshd-up.sh"))
            };
            let (port, dir) = (get("ORCH_SSH_PORT")?, get("ORCH_SSH_STATE")?);
            config.push_str(&format!(
                "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {dir}/id_ed25519\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {dir}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            ));
            hosts.push(SshHost { alias, port, dir });
        }
        let first = hosts.first().ok_or("no hosts asked for")?;
        let path = std::path::Path::new(&first.dir).join("hosts_config");
        std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(SshHosts {
            config: path,
            hosts,
        })
    }
}

impl SshHost {
    /// Logins sshd accepted so far (a master or a login of its own each; sessions over a
    /// master are not logins).
    pub(crate) fn logins(&self) -> usize {
        std::fs::read_to_string(format!("{}/sshd.log", self.dir))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Accepted publickey"))
            .count()
    }

    /// The listener and every process below it: the per-connection sshd processes and the
    /// remote commands they run.
    pub(crate) fn processes(&self) -> Vec<u32> {
        let pid = std::fs::read_to_string(format!("{}/sshd.pid", self.dir))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let Some(pid) = pid else {
            return Vec::new();
        };
        let mut parent = std::collections::HashMap::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(p) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent.insert(p, pp);
            }
        }
        let mut tree = vec![pid];
        let mut grew = true;
        while grew {
            grew = false;
            for (p, pp) in &parent {
                if tree.contains(pp) && !tree.contains(p) {
                    tree.push(*p);
                    grew = true;
                }
            }
        }
        tree
    }

    /// Sends `sig` (`KILL`, `STOP`, `CONT`) to the host's every process.
    pub(crate) fn signal_all(&self, sig: &str) {
        let pids: Vec<String> = self.processes().iter().map(u32::to_string).collect();
        assert!(!pids.is_empty(), "no sshd running for {}", self.alias);
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .args(&pids)
            .status();
    }

    /// Starts the host's sshd again, on the same port and keys.
    pub(crate) fn restart(&self) {
        let up = cluster_dir().expect("cluster dir").join("sshd-up.sh");
        let out = Command::new(up)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run sshd-up.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The watchdog that runs `down DIR --rm` once this process has exited. Its stdin is a pipe
/// whose write end (close-on-exec, so no other child holds it) is kept open until then.
fn stop_at_exit(down: &std::path::Path, dir: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .args(["-c", r#"trap '' INT TERM HUP; read _; exec "$0" "$1" --rm"#])
        .arg(down)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the watchdog of {dir}: {e}"))?;
    // Never written to, never closed by us: the kernel closes it when this process exits.
    std::mem::forget(child.stdin.take());
    Ok(())
}

/// Processes whose command line names `needle` (pid, command line).
pub(crate) fn naming(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) && crate::helpers::alive(pid) {
            found.push((pid, cmd));
        }
    }
    found
}

#[test]
fn a_test_process_stops_the_daemons_it_started_when_it_ends() {
    let test = "daemons::a_test_process_stops_the_daemons_it_started_when_it_ends";
    let before: std::collections::HashSet<u32> = naming("/tmp/orch-it-")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // This test binary again, running one Slurm and one ssh test: a test process of its own.
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--test-threads", "2"])
        .args([
            "scale_out::ssh_exit_codes_and_streams_are_exact",
            "scale_out::slurm_exit_codes_streams_job_id_and_node",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("SKIPPED: ") {
        crate::helpers::skipped(test, &format!("the daemons cannot run here: {stderr}"));
        return;
    }
    assert!(
        out.status.success() && stdout.contains("2 passed"),
        "{stdout}\n{stderr}"
    );
    // Its daemons: those naming its state dirs, or the shared fixed ones tests used before.
    let mine = format!("/tmp/orch-it-{pid}-");
    let left = || -> Vec<(u32, String)> {
        naming("/tmp/orch-it-")
            .into_iter()
            .filter(|(p, cmd)| {
                !before.contains(p)
                    && (cmd.contains(&mine)
                        || cmd.contains("/tmp/orch-it-slurm/")
                        || cmd.contains("/tmp/orch-it-sshd/"))
            })
            .collect()
    };
    assert!(
        crate::helpers::wait_for(std::time::Duration::from_secs(90), || left().is_empty()),
        "still running after the test process {pid} ended: {:?}",
        left()
    );
    for kind in ["slurm", "sshd"] {
        let dir = state_dir(pid, kind);
        assert!(!std::path::Path::new(&dir).exists(), "{dir} was left");
    }
}
