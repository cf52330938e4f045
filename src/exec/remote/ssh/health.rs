//! Whether a host can be used: its master opened once for every job, reopened once when it is
//! lost, and a host whose master cannot be opened marked down and probed again (a new master)
//! with a back-off, on a thread of its own, while its jobs go to the other hosts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::master::Conn;
use super::pool::{Health, HostKey, Inner, Pool};

/// The first probe of a host that went down, then twice as long each time, up to the most.
const PROBE_FIRST: Duration = Duration::from_secs(1);
const PROBE_MOST: Duration = Duration::from_secs(16);

/// A master as a job uses it: the session's ssh arguments, and which master it was.
pub(super) struct Master {
    pub(super) args: Vec<String>,
    pub(super) generation: u64,
}

impl Pool {
    fn host_parts(&self, key: &HostKey) -> Option<(Arc<tokio::sync::Mutex<()>>, Arc<Conn>)> {
        let t = self.inner.table();
        let h = t.hosts.get(key)?;
        Some((h.opening.clone(), h.conn.clone()))
    }

    /// The host's master, opened by the first job that needs it while the others wait for
    /// that outcome. `Err`: the host is down, and why.
    pub(super) async fn master(&self, key: &HostKey) -> Result<Master, String> {
        let (opening, conn) = self.host_parts(key).ok_or("unknown ssh host")?;
        let _one = opening.lock().await;
        {
            let t = self.inner.table();
            let h = &t.hosts[key];
            match &h.health {
                Health::Up => {
                    return Ok(Master {
                        args: conn.session_args(),
                        generation: h.generation,
                    });
                }
                Health::Down { why, .. } => return Err(why.clone()),
                Health::Unopened => {}
            }
        }
        self.opened(key, &conn, conn.open().await)?;
        let generation = self.inner.table().hosts[key].generation;
        Ok(Master {
            args: conn.session_args(),
            generation,
        })
    }

    /// A job on `key` lost its connection to master `generation`. The first such job checks
    /// the master and, if it is gone, opens a new one (the others wait, then use it); if that
    /// fails, the host is down. `Err`: why the host is down.
    pub(super) async fn lost(&self, key: &HostKey, generation: u64) -> Result<(), String> {
        let (opening, conn) = self.host_parts(key).ok_or("unknown ssh host")?;
        let _one = opening.lock().await;
        {
            let t = self.inner.table();
            let h = &t.hosts[key];
            if let Health::Down { why, .. } = &h.health {
                return Err(why.clone());
            }
            if h.generation != generation || t.closed {
                return Ok(());
            }
        }
        if conn.check().await {
            return Ok(());
        }
        self.opened(key, &conn, conn.open().await)
    }

    /// Records how opening the master of `key` went; a host that could not be reached is
    /// down from now on, until a probe reaches it.
    fn opened(
        &self,
        key: &HostKey,
        conn: &Conn,
        outcome: Result<(), String>,
    ) -> Result<(), String> {
        let mut t = self.inner.table();
        let closed = t.closed;
        let h = t.hosts.get_mut(key).ok_or("unknown ssh host")?;
        match outcome {
            Ok(()) => {
                h.health = Health::Up;
                h.generation += 1;
                if closed {
                    // The run ended while this opened: its close did not see it.
                    drop(t);
                    exit_soon(conn);
                }
                Ok(())
            }
            Err(why) => {
                h.health = Health::Down {
                    why: why.clone(),
                    since: SystemTime::now(),
                };
                let start = !h.probing && !closed;
                h.probing |= start;
                t.fail_waiters();
                drop(t);
                if start {
                    start_probe(self.inner.clone(), key.clone(), conn.name.clone());
                }
                Err(why)
            }
        }
    }
}

/// `ssh -O exit` to a master, on a thread of its own (it may be called from within a runtime).
fn exit_soon(conn: &Conn) {
    let args = conn.control_args("exit");
    std::thread::spawn(move || {
        let _ = std::process::Command::new("ssh")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    });
}

/// Probes `key` on a thread of its own: the workers' runtimes end with their jobs, and a
/// host must come back even while no job of its own runs.
fn start_probe(inner: Arc<Inner>, key: HostKey, name: String) {
    let spawned = std::thread::Builder::new()
        .name(format!("orchestrate-probe-{name}"))
        .spawn({
            let inner = inner.clone();
            let key = key.clone();
            move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(probe(&inner, &key)),
                    Err(_) => stop_probing(&inner, &key),
                }
            }
        });
    if spawned.is_err() {
        stop_probing(&inner, &key);
    }
}

fn stop_probing(inner: &Inner, key: &HostKey) {
    if let Some(h) = inner.table().hosts.get_mut(key) {
        h.probing = false;
    }
}

/// Opens a new master on a down host after a back-off, until one opens or the run ends; then
/// the host's free slots go to the jobs waiting for it.
async fn probe(inner: &Arc<Inner>, key: &HostKey) {
    let pool = Pool {
        inner: inner.clone(),
    };
    let mut pause = PROBE_FIRST;
    loop {
        let ended = inner.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if inner.table().closed {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut ended => break,
        }
        let Some((opening, conn)) = pool.host_parts(key) else {
            break;
        };
        let _one = opening.lock().await;
        if inner.table().closed {
            break;
        }
        if probed(inner, key, &conn, conn.open().await) {
            return;
        }
        pause = (pause * 2).min(PROBE_MOST);
    }
    stop_probing(inner, key);
}

/// Records a probe's outcome: true once the host is up (its free slots handed out) or gone.
fn probed(inner: &Arc<Inner>, key: &HostKey, conn: &Conn, outcome: Result<(), String>) -> bool {
    let mut t = inner.table();
    let closed = t.closed;
    let Some(h) = t.hosts.get_mut(key) else {
        return true;
    };
    match outcome {
        Ok(()) => {
            h.health = Health::Up;
            h.generation += 1;
            h.probing = false;
            if closed {
                drop(t);
                exit_soon(conn);
            } else {
                t.fill(inner, key);
            }
            true
        }
        Err(why) => {
            // Down since the first failure; the reason is the latest.
            if let Health::Down { why: w, .. } = &mut h.health {
                *w = why;
            }
            false
        }
    }
}
