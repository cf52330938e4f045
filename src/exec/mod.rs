//! The executor: runs a `Plan` with bounded concurrency and reports through events. It knows
//! nothing of terminals or SQL; reporters and the store consume its events.
//!
//! `sched` decides what runs when (ready set, slots, groups, halting, skips), with `needs`
//! judging the conditions of a job's needs; `backend` is the one seam through which a job
//! runs (here, as a Slurm step, through sbatch, on ssh hosts, or under a background
//! supervisor); `process` runs one process; `remote` holds what Slurm and ssh add; `ends`
//! builds the record of every way a job can end; `hooks` runs hooks through the same back
//! ends.

pub mod backend;
pub mod background;
pub mod ends;
mod fans;
pub mod hooks;
mod needs;
pub mod process;
mod queue;
pub mod remote;
mod sched;
#[cfg(test)]
mod sched_tests;
mod settle;
mod workers;

use std::sync::Arc;
use std::time::SystemTime;

pub use process::{CaptureRoot, Launcher, Local, Readback, job_dir_name};
pub use remote::{sbatch, slurm, ssh, wrap};

use crate::record::{Counts, Sealed, Secrets};

/// Which output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// This stream's part of a record.
    pub fn of(self, rec: &crate::record::CompletedProcess) -> &crate::record::StoredOutput {
        match self {
            Stream::Stdout => &rec.stdout,
            Stream::Stderr => &rec.stderr,
        }
    }
}

/// What happens during a run, in the order it happens.
#[derive(Debug, Clone)]
pub enum Event {
    JobStarted {
        index: usize,
        pid: Option<u32>,
        slot: usize,
        started: SystemTime,
        /// The job's record while it runs, for the store to keep should it run long (a job
        /// still running when orchestrate dies is then found by the next run). `None` where
        /// something else records the job while it runs (a background job's supervisor).
        running: Option<Box<Sealed>>,
    },
    /// A line of a job's output (only with `ExecOptions::forward_output`).
    Output {
        index: usize,
        stream: Stream,
        line: Vec<u8>,
    },
    /// A job running well over its usual time (its history says how long; see
    /// `JobHistory::slow`): sent once per job, while it runs.
    JobSlow {
        index: usize,
        running_for: std::time::Duration,
        usual: std::time::Duration,
        /// How many of its earlier runs `usual` comes from.
        runs: usize,
    },
    /// A failed attempt; the job runs again after `delay`.
    JobRetrying {
        index: usize,
        attempt: u32,
        of: u32,
        delay: std::time::Duration,
        outcome: String,
    },
    /// How a job ended: every job ends as exactly one of these, sealed (secrets redacted).
    JobFinished(Box<Sealed>),
    /// How one of a job's hooks ended (`CompletedProcess::hook` says which): kept with the
    /// run, never counted.
    HookFinished(Box<Sealed>),
}

/// Events go to one consumer thread (reporter and store). The channel is bounded: a sender
/// waits only while the consumer is this far behind, so a burst of records (the jobs a Ctrl-C
/// leaves unstarted, a skipped fan-out of millions) is stored as it is made, not held.
pub type EventSink = std::sync::mpsc::SyncSender<Event>;

/// Events a run's channel holds before a sender waits for the consumer (a few MB of records).
pub const EVENTS_IN_FLIGHT: usize = 4096;

/// A run's event channel: the one place its bound is set.
pub fn event_channel() -> (EventSink, std::sync::mpsc::Receiver<Event>) {
    std::sync::mpsc::sync_channel(EVENTS_IN_FLIGHT)
}

/// A request to stop the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    None,
    /// TERM to every job's group, KILL after its grace; the number is the signal received.
    Graceful(i32),
    /// KILL at once (a second Ctrl-C).
    Hard,
}

pub struct ExecOptions {
    /// Jobs in flight at once (at least 1).
    pub concurrency: usize,
    pub capture: CaptureRoot,
    /// Send each output line as an `Event::Output` (for live display).
    pub forward_output: bool,
    pub launcher: Arc<dyn Launcher>,
    /// Variables of the run, added to every job's environment (`ORCHESTRATE_RUN`).
    pub run_env: Vec<(String, String)>,
    /// Values redacted from captured output and records.
    pub secrets: Secrets,
    /// How to start background jobs (`None`: they cannot run, e.g. without a store).
    pub background: Option<background::BackgroundCtx>,
    /// Runs every job, instead of the back end its executor names (tests, embedders).
    pub backend: Option<Arc<dyn backend::Backend>>,
    /// What each job's history says, by job index (read by `run` before the run starts);
    /// a job without an entry has none worth using.
    pub history: std::collections::HashMap<usize, JobHistory>,
}

impl ExecOptions {
    /// The run's id, as its jobs are given it (`ORCHESTRATE_RUN`); empty when the options
    /// name no run (tests, embedders).
    pub fn run_id(&self) -> &str {
        self.run_env
            .iter()
            .find(|(k, _)| k == "ORCHESTRATE_RUN")
            .map_or("", |(_, v)| v.as_str())
    }
}

/// What a job's earlier runs say before it starts: plain data, settled before the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobHistory {
    /// When the job counts as running slow, if its history is long enough to say.
    pub slow: Option<Slow>,
    /// Notes for its record (how `timeout: auto` was settled).
    pub notes: Vec<String>,
}

/// A job's usual time, and how long it may run before it counts as slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slow {
    pub after: std::time::Duration,
    /// The p95 of its recent successful runs.
    pub usual: std::time::Duration,
    /// How many runs `usual` comes from.
    pub runs: usize,
}

/// How many jobs ended in each status.
pub type ExecSummary = Counts;

pub use workers::execute;
