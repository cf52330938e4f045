//! The ssh hosts of a run: a slot count per host, its health, the jobs waiting for a slot, and
//! one multiplexed connection per host (`master::Conn`) that every job on the host uses.
//!
//! A freed slot goes straight to the first waiting job that may take it (`Lease`'s drop), and
//! a host that comes back up fills its slots the same way: no job rescans the hosts to find
//! out. A host that is down is given to no job; `health` opens and probes the masters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::master::{Conn, socket_dir};
use crate::plan::SshOptions;

/// Hosts with the same name but other settings (`config`, `options`) are other connections.
pub(super) type SshOptionsKey = (Option<PathBuf>, Vec<String>);
pub(super) type HostKey = (String, SshOptionsKey);

/// How a host stands.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Health {
    /// No master yet: the first job to go there opens it.
    Unopened,
    Up,
    /// The last master could not be opened (or was lost and could not be reopened): why, and
    /// since when. A probe (`health::probe`) tries again, with a back-off.
    Down {
        why: String,
        since: SystemTime,
    },
}

/// A host of the job file: how to reach it, what runs there, how it stands.
pub(super) struct Host {
    pub(super) conn: Arc<Conn>,
    slots: usize,
    running: usize,
    pub(super) health: Health,
    /// Counts the masters opened: a job that lost the connection says which master it had, so
    /// that only the first of them reopens it.
    pub(super) generation: u64,
    /// Held while the master is opened or checked: jobs wait for that one outcome.
    pub(super) opening: Arc<tokio::sync::Mutex<()>>,
    /// A probe thread is at work on this host.
    pub(super) probing: bool,
}

/// A job waiting for a slot on one of `keys`.
struct Waiter {
    keys: Vec<HostKey>,
    tx: oneshot::Sender<Result<Lease, String>>,
}

pub(super) struct Table {
    pub(super) hosts: HashMap<HostKey, Host>,
    waiters: VecDeque<Waiter>,
    /// The run is over: no master may be opened any more.
    pub(super) closed: bool,
}

pub(super) struct Inner {
    table: Mutex<Table>,
    /// Holds the control sockets: short (sun_path is ~104 bytes) and private (0700). Made
    /// when the first host is used: runs without ssh jobs make no directory.
    dir: std::sync::OnceLock<Option<tempfile::TempDir>>,
    /// Wakes the probes when the run ends.
    pub(super) ended: tokio::sync::Notify,
}

/// Every ssh host of a run, with its free slots and its master connection.
#[derive(Clone)]
pub struct Pool {
    pub(super) inner: Arc<Inner>,
}

/// A slot taken on a host; on drop it goes to the next job waiting for that host, or is free.
pub(super) struct Lease {
    inner: Arc<Inner>,
    pub(super) key: HostKey,
    /// Already given back (a waiter that had gone away was offered it).
    spent: bool,
}

impl Lease {
    pub(super) fn host(&self) -> &str {
        &self.key.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.spent {
            return;
        }
        let inner = self.inner.clone();
        let mut t = inner.table();
        t.release(&inner, &self.key);
    }
}

/// Why a job got no host.
pub(super) enum NoHost {
    /// It has been tried on every one of its hosts.
    Tried,
    /// Each of its hosts left is down: why.
    Down(String),
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl Inner {
    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    /// A pool nobody closed (run hooks, mail have pools of their own) still closes its
    /// masters: the run owns them, and they would outlive it by `ControlPersist`.
    fn drop(&mut self) {
        let t = self.table.get_mut().unwrap_or_else(|e| e.into_inner());
        if t.closed {
            return;
        }
        for h in t.hosts.values().filter(|h| h.health == Health::Up) {
            let _ = std::process::Command::new("ssh")
                .args(h.conn.control_args("exit"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Table {
    fn usable(&self, key: &HostKey) -> bool {
        self.hosts
            .get(key)
            .is_some_and(|h| !matches!(h.health, Health::Down { .. }))
    }

    /// A slot of `key` is free: it goes to the first waiter that may use it.
    fn release(&mut self, inner: &Arc<Inner>, key: &HostKey) {
        if !self.hand_over(inner, key)
            && let Some(h) = self.hosts.get_mut(key)
        {
            h.running = h.running.saturating_sub(1);
        }
    }

    /// Gives the slot `key` holds to the first waiter for it; false when none took it.
    fn hand_over(&mut self, inner: &Arc<Inner>, key: &HostKey) -> bool {
        if !self.usable(key) {
            return false;
        }
        while let Some(i) = self.waiters.iter().position(|w| w.keys.contains(key)) {
            let w = self.waiters.remove(i).expect("waiter at position");
            let lease = Lease {
                inner: inner.clone(),
                key: key.clone(),
                spent: false,
            };
            match w.tx.send(Ok(lease)) {
                Ok(()) => return true,
                // That job stopped waiting (the run was interrupted): the next one.
                Err(Ok(mut lease)) => lease.spent = true,
                Err(Err(_)) => {}
            }
        }
        false
    }

    /// `key` is up again: its free slots go to the jobs waiting for it.
    pub(super) fn fill(&mut self, inner: &Arc<Inner>, key: &HostKey) {
        loop {
            let Some(h) = self.hosts.get_mut(key) else {
                return;
            };
            if h.running >= h.slots {
                return;
            }
            h.running += 1;
            if !self.hand_over(inner, key) {
                if let Some(h) = self.hosts.get_mut(key) {
                    h.running -= 1;
                }
                return;
            }
        }
    }

    /// `key` went down: jobs whose every host left is down stop waiting, told why.
    pub(super) fn fail_waiters(&mut self) {
        let mut kept = VecDeque::with_capacity(self.waiters.len());
        for w in std::mem::take(&mut self.waiters) {
            if w.keys.iter().any(|k| self.usable(k)) {
                kept.push_back(w);
            } else {
                let _ = w.tx.send(Err(self.down_reasons(&w.keys)));
            }
        }
        self.waiters = kept;
    }

    /// Why each of `keys` is down, in one line.
    fn down_reasons(&self, keys: &[HostKey]) -> String {
        let whys: Vec<String> = keys
            .iter()
            .filter_map(|k| match &self.hosts.get(k)?.health {
                Health::Down { why, since } => Some(format!(
                    "ssh host `{}` is down since {} ({why})",
                    k.0,
                    crate::record::format_time(*since)
                )),
                _ => None,
            })
            .collect();
        whys.join("; ")
    }
}

impl Pool {
    pub fn new() -> Self {
        Pool {
            inner: Arc::new(Inner {
                table: Mutex::new(Table {
                    hosts: HashMap::new(),
                    waiters: VecDeque::new(),
                    closed: false,
                }),
                dir: std::sync::OnceLock::new(),
                ended: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Takes a slot on the least busy of `opts.hosts` not in `tried` and not down, waiting
    /// for one to be handed over if none is free.
    pub(super) async fn acquire(
        &self,
        opts: &SshOptions,
        tried: &HashSet<String>,
    ) -> Result<Lease, NoHost> {
        let rx = {
            let mut t = self.inner.table();
            let optkey: SshOptionsKey = (opts.config.clone(), opts.options.clone());
            let keys: Vec<HostKey> = opts
                .hosts
                .iter()
                .filter(|h| !tried.contains(*h))
                .map(|h| (h.clone(), optkey.clone()))
                .collect();
            if keys.is_empty() {
                return Err(NoHost::Tried);
            }
            for k in &keys {
                self.ensure(&mut t, k, opts);
            }
            if !keys.iter().any(|k| t.usable(k)) {
                return Err(NoHost::Down(t.down_reasons(&keys)));
            }
            let best = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| t.usable(k))
                .filter_map(|(i, k)| {
                    let h = &t.hosts[k];
                    (h.running < h.slots).then_some((h.running, i))
                })
                .min();
            if let Some((_, i)) = best {
                let key = keys[i].clone();
                if let Some(h) = t.hosts.get_mut(&key) {
                    h.running += 1;
                }
                return Ok(Lease {
                    inner: self.inner.clone(),
                    key,
                    spent: false,
                });
            }
            let (tx, rx) = oneshot::channel();
            t.waiters.push_back(Waiter { keys, tx });
            rx
        };
        match rx.await {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(why)) => Err(NoHost::Down(why)),
            Err(_) => Err(NoHost::Down("the run is ending".into())),
        }
    }

    /// The host's entry, made on first use.
    fn ensure(&self, t: &mut Table, key: &HostKey, opts: &SshOptions) {
        let n = t.hosts.len();
        t.hosts.entry(key.clone()).or_insert_with(|| {
            let socket = self
                .inner
                .dir
                .get_or_init(socket_dir)
                .as_ref()
                .map_or_else(std::env::temp_dir, |d| d.path().to_path_buf())
                .join(n.to_string());
            Host {
                conn: Arc::new(Conn::new(&key.0, opts, socket)),
                slots: opts.slots.max(1),
                running: 0,
                health: Health::Unopened,
                generation: 0,
                opening: Arc::new(tokio::sync::Mutex::new(())),
                probing: false,
            }
        });
    }

    /// Closes every master connection (the run is over) and stops the probes.
    pub async fn close(&self) {
        let conns: Vec<Arc<Conn>> = {
            let mut t = self.inner.table();
            t.closed = true;
            t.hosts
                .values()
                .filter(|h| h.health == Health::Up)
                .map(|h| h.conn.clone())
                .collect()
        };
        self.inner.ended.notify_waiters();
        for c in conns {
            c.exit().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn opts(slots: usize) -> SshOptions {
        SshOptions {
            hosts: vec!["h1".into()],
            config: None,
            options: Vec::new(),
            slots,
            retry_elsewhere: false,
        }
    }

    /// Polls `f` once.
    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        std::pin::Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// The one free slot, which must be taken at once.
    fn take_free(pool: &Pool, o: &SshOptions) -> Lease {
        let none = HashSet::new();
        let mut first = Box::pin(pool.acquire(o, &none));
        let Poll::Ready(Ok(lease)) = poll(&mut first) else {
            panic!("a free slot was not taken at once");
        };
        lease
    }

    fn running(pool: &Pool) -> usize {
        pool.inner.table().hosts.values().map(|h| h.running).sum()
    }

    #[test]
    fn a_freed_slot_goes_to_the_first_waiting_job_only() {
        let pool = Pool::new();
        let (o, none) = (opts(1), HashSet::new());
        let lease = take_free(&pool, &o);
        let mut w1 = Box::pin(pool.acquire(&o, &none));
        let mut w2 = Box::pin(pool.acquire(&o, &none));
        assert!(poll(&mut w1).is_pending() && poll(&mut w2).is_pending());
        drop(lease);
        let Poll::Ready(Ok(handed)) = poll(&mut w1) else {
            panic!("the first waiter did not get the slot");
        };
        assert!(poll(&mut w2).is_pending());
        assert_eq!(running(&pool), 1, "the slot changed hands, not counts");
        drop(handed);
        assert!(matches!(poll(&mut w2), Poll::Ready(Ok(_))));
        assert_eq!(running(&pool), 0);
    }

    #[test]
    fn a_slot_offered_to_a_job_that_stopped_waiting_goes_on() {
        let pool = Pool::new();
        let (o, none) = (opts(1), HashSet::new());
        let lease = take_free(&pool, &o);
        let mut gone = Box::pin(pool.acquire(&o, &none));
        let mut w2 = Box::pin(pool.acquire(&o, &none));
        assert!(poll(&mut gone).is_pending() && poll(&mut w2).is_pending());
        drop(gone);
        drop(lease);
        assert!(matches!(poll(&mut w2), Poll::Ready(Ok(_))));
        drop(w2);
        assert_eq!(running(&pool), 0, "no slot is lost");
    }
}
