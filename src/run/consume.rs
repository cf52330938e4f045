//! The one consumer of a run's events, on a thread of its own: the reporter sees every event,
//! and finished records are committed to the store in batches.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::exec::Event;
use crate::record::{CompletedProcess, ProcessIdentity, Sealed};
use crate::report::Reporter;
use crate::store::RunStore;

/// Records committed per transaction at most.
const MAX_BATCH: usize = 2048;

/// How long the thread takes events before it looks at what is due, and how long a job runs
/// before its running record is stored.
const BATCH_WINDOW: Duration = Duration::from_millis(25);

/// How long a finished record may wait for others to share its transaction. Each commit
/// writes again the index pages its records touched, so the store's CPU per record falls with
/// the records per commit (measured: about 25 µs at 25 records, 12 µs at 400); a crash loses
/// at most this much of finished records.
const COMMIT_WINDOW: Duration = Duration::from_millis(200);

/// What the event thread hands back when the run's events are all taken.
pub(super) struct Consumed {
    pub reporter: Reporter,
    pub db: Option<RunStore>,
    pub records: Vec<CompletedProcess>,
    pub warnings: Vec<String>,
    /// Records the store did not take: never dropped, the run keeps them elsewhere.
    pub unrecorded: Vec<Sealed>,
    /// Jobs whose output could not be kept whole (a full disk, no inodes).
    pub output_lost: usize,
    /// What the run's hooks and notifications are told, when it has some.
    pub facts: Option<super::facts::Facts>,
    /// The latest end of a record of the run so far: where the run's duration ends.
    pub last_end: Option<SystemTime>,
}

impl Consumed {
    /// Notes a record's end (a job's or a hook's) for the run's duration.
    pub fn ended_at(&mut self, t: SystemTime) {
        self.last_end = self.last_end.max(Some(t));
    }
}

/// How one window of events ended.
struct Window {
    /// Every sender is gone: no event will come.
    closed: bool,
    /// The channel was empty before the window was over.
    caught_up: bool,
}

struct Consumer {
    reporter: Reporter,
    db: Option<RunStore>,
    run_id: String,
    keep_records: bool,
    batch: Vec<Sealed>,
    records: Vec<CompletedProcess>,
    warnings: Vec<String>,
    /// Commits that failed in a row.
    failures: u32,
    /// The store was given up for the rest of the run.
    store_failed: bool,
    unrecorded: Vec<Sealed>,
    output_lost: usize,
    /// Running records of jobs that started since the last commit.
    fresh: HashMap<usize, Sealed>,
    /// Running records of jobs that were running at the last commit: still running at the
    /// next, they are stored then.
    older: HashMap<usize, Sealed>,
    gather: Option<super::facts::Gather>,
    last_end: Option<SystemTime>,
    /// When the batch's first record must be committed at the latest.
    due: Option<Instant>,
}

impl Consumer {
    fn handle(&mut self, ev: Event) {
        self.reporter.event(&ev);
        if let Event::JobStarted {
            running: Some(rec), ..
        } = ev
        {
            if self.db.is_some() {
                // Keyed as the job's final record will be (the job-file index).
                self.older.remove(&rec.index);
                self.fresh.insert(rec.index, *rec);
            }
        } else if let Event::JobFinished(rec) = ev {
            self.fresh.remove(&rec.index);
            self.older.remove(&rec.index);
            if rec.stdout.incomplete || rec.stderr.incomplete {
                self.output_lost += 1;
            }
            if let Some(g) = &mut self.gather {
                g.record(&rec);
            }
            if self.keep_records {
                self.records.push(rec.as_ref().clone().into_inner());
            }
            self.finished(*rec);
        } else if let Event::HookFinished(rec) = ev {
            if rec.status.is_failure() {
                self.warnings.push(super::hooks::failed_hook(&rec));
            }
            if let Some(g) = &mut self.gather {
                g.record(&rec);
            }
            self.finished(*rec);
        }
    }

    /// A job's or a hook's final record: it ends the run no earlier, and joins the batch.
    fn finished(&mut self, rec: Sealed) {
        self.last_end = self.last_end.max(Some(rec.finished));
        if self.db.is_some() {
            self.batch.push(rec);
            self.due
                .get_or_insert_with(|| Instant::now() + COMMIT_WINDOW);
        }
    }

    /// A batch that could not be committed (the store busy past its timeout, say) is kept and
    /// tried again with the next; after three failures in a row the store is given up for the
    /// rest of the run, with a warning.
    fn flush(&mut self) {
        let running = !self.older.is_empty();
        self.store_running();
        let early = self.due.is_some_and(|d| Instant::now() < d);
        if !running && early && self.batch.len() < MAX_BATCH {
            return;
        }
        self.commit();
    }

    /// Commits the batch whatever its age.
    fn flush_now(&mut self) {
        self.store_running();
        self.commit();
    }

    fn commit(&mut self) {
        self.due = None;
        let Some(s) = self.db.as_mut() else {
            self.batch.clear();
            return;
        };
        if self.store_failed {
            self.unrecorded.append(&mut self.batch);
            return;
        }
        if self.batch.is_empty() {
            return;
        }
        match s.record_batch(&self.run_id, &self.batch) {
            Ok(()) => {
                self.failures = 0;
                self.batch.clear();
            }
            Err(e) => {
                self.failures += 1;
                if self.failures >= 3 {
                    self.warnings.push(format!(
                        "could not record {} finished jobs in the store: {e}",
                        self.batch.len()
                    ));
                    self.store_failed = true;
                    self.unrecorded.append(&mut self.batch);
                }
            }
        }
    }

    /// Jobs that outlived a whole window are stored as running, with their process named, so
    /// that a run killed while they run leaves them findable; short jobs never cost a row.
    fn store_running(&mut self) {
        for (_, mut rec) in self.older.drain() {
            let process = rec.pid.map(ProcessIdentity::of);
            rec.set_process(process);
            self.batch.push(rec);
        }
        std::mem::swap(&mut self.older, &mut self.fresh);
    }

    /// Whether running records wait for a commit (the thread must then wake to store them
    /// even when no event comes).
    fn running_pending(&self) -> bool {
        !self.fresh.is_empty() || !self.older.is_empty() || !self.batch.is_empty()
    }

    /// The next event, or `None` once every sender is gone. While running records wait, it
    /// waits at most a window, committing them when none comes.
    fn next_event(&mut self, rx: &mpsc::Receiver<Event>) -> Option<Event> {
        loop {
            if !self.running_pending() {
                return rx.recv().ok();
            }
            match rx.recv_timeout(BATCH_WINDOW) {
                Ok(ev) => return Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => self.flush(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Whatever is there, for at most one window: records are committed every window even
    /// while a chatty job's output lines keep coming.
    fn drain_window(&mut self, rx: &mpsc::Receiver<Event>) -> Window {
        let start = Instant::now();
        while self.batch.len() < MAX_BATCH && start.elapsed() < BATCH_WINDOW {
            match rx.try_recv() {
                Ok(ev) => self.handle(ev),
                Err(mpsc::TryRecvError::Empty) => {
                    return Window {
                        closed: false,
                        caught_up: true,
                    };
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Window {
                        closed: true,
                        caught_up: false,
                    };
                }
            }
        }
        Window {
            closed: false,
            caught_up: false,
        }
    }
}

/// The one consumer of events: reports them and commits finished records in batches (every
/// event that arrived while the previous batch was written goes into the next transaction).
pub(super) fn consume(
    rx: mpsc::Receiver<Event>,
    reporter: Reporter,
    db: Option<RunStore>,
    run_id: String,
    keep_records: bool,
    gather: Option<super::facts::Gather>,
) -> Consumed {
    let mut c = Consumer {
        reporter,
        db,
        run_id,
        keep_records,
        batch: Vec::new(),
        records: Vec::new(),
        warnings: Vec::new(),
        failures: 0,
        store_failed: false,
        unrecorded: Vec::new(),
        output_lost: 0,
        last_end: None,
        due: None,
        fresh: HashMap::new(),
        older: HashMap::new(),
        gather,
    };
    // Idle, the thread blocks on the channel. Once an event came, it sleeps a window at a time
    // and takes what arrived meanwhile: jobs sending events then never wake it (a wakeup costs
    // the sender a futex call and an interrupt to the other CPU), and a window's records share
    // one transaction. A window that brought nothing returns it to blocking.
    'run: while let Some(ev) = c.next_event(&rx) {
        c.handle(ev);
        loop {
            let window = c.drain_window(&rx);
            c.flush();
            if window.closed {
                break 'run;
            }
            if !window.caught_up {
                continue;
            }
            // The run unparks this thread when its jobs are done: the last window is not
            // waited out.
            std::thread::park_timeout(BATCH_WINDOW);
            match rx.try_recv() {
                Ok(ev) => c.handle(ev),
                Err(mpsc::TryRecvError::Empty) => continue 'run,
                Err(mpsc::TryRecvError::Disconnected) => break 'run,
            }
        }
    }
    // The last batch, and one kept after a failure: tried until committed or given up.
    for _ in 0..3 {
        if c.batch.is_empty() {
            break;
        }
        c.flush_now();
    }
    c.records.sort_by_key(|r| r.index);
    Consumed {
        reporter: c.reporter,
        db: c.db,
        records: c.records,
        warnings: c.warnings,
        unrecorded: c.unrecorded,
        output_lost: c.output_lost,
        facts: c.gather.map(super::facts::Gather::finish),
        last_end: c.last_end,
    }
}
