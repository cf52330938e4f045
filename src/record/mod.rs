//! The domain types every layer shares: the record of a job (`CompletedProcess`), how it
//! ended (`status`), the one door through which records leave the executor (`redact`), and
//! how times are written (`time`), and records as JSON lines (`json`).

mod json;
mod redact;
mod status;
mod stored;
mod time;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use json::write_json_record;
pub use redact::{REDACTED, Redactor, Sealed, Secrets};
pub use status::{Counts, RunStatus, Status};
use stored::column_held;
pub use stored::in_stored_form;
pub use time::{format_duration, format_tenths, format_time, from_millis, to_millis};
use time::{millis, secs_f64, unix_millis};

/// Where one of a job's output streams ended up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutput {
    /// The file holding the bytes: a capture file (absent when the job wrote nothing) or the
    /// job's own redirection target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Bytes the job wrote to this stream during this run.
    pub bytes: u64,
    /// Whether `path` is a capture file owned by orchestrate (as opposed to the job's own file).
    pub captured: bool,
    /// Some of the stream could not be kept (a full disk, no inodes): the run that made this
    /// record could not record everything, and says so in its exit code. The record's notes
    /// say what went wrong.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// Set once a small capture moved from its own file into the run's pack
    /// (`CaptureRoot::pack_path`): where its bytes are there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<Packed>,
}

impl StoredOutput {
    /// The file that holds the bytes now, to name to people and machines: none once they
    /// moved into the run's pack (the file `path` names is gone; `logs` reads them).
    pub fn file_now(&self) -> Option<&std::path::Path> {
        match self.packed {
            Some(_) => None,
            None => self.path.as_deref(),
        }
    }
}

/// What a run folder's name takes for its pack file, `runs/<run id>.pack`: the one spelling,
/// for the writer (`exec::CaptureRoot::pack_path`) and for gc.
pub const PACK_SUFFIX: &str = ".pack";

/// Where a capture's bytes stand in its run's pack file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packed {
    pub offset: u64,
    pub len: u64,
}

/// The record of one finished job, in the spirit of Python's `subprocess.CompletedProcess`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletedProcess {
    /// The job's unique name. (This and the other fields marked `column_held` are a record
    /// row's columns, left out of its JSON: `stored`.)
    #[serde(skip_serializing_if = "column_held")]
    pub job: String,
    /// Position of the job in the plan (job-file order).
    #[serde(skip_serializing_if = "column_held")]
    pub index: usize,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The exit code; `None` when the process was killed by a signal or never ran.
    #[serde(skip_serializing_if = "column_held")]
    pub returncode: Option<i32>,
    /// The signal that killed the process, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "column_held")]
    pub status: Status,
    /// Why the job could not run (spawn errors, skipped jobs), or what went wrong around it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub stdout: StoredOutput,
    pub stderr: StoredOutput,
    pub pid: Option<u32>,
    /// The worker slot (0-based) the job ran in, like the P0..P3 of a process pool.
    pub slot: Option<usize>,
    #[serde(with = "millis", skip_serializing_if = "column_held")]
    pub started: SystemTime,
    #[serde(with = "millis")]
    pub finished: SystemTime,
    #[serde(with = "secs_f64")]
    pub duration: Duration,
    pub attempts: u32,
    /// Succeeded only after retries (see [`CompletedProcess::settle_flaky`]); the status stays
    /// `succeeded`, so counts, exit codes and `--resume` treat it as any success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// The attempt was cut short by its host or node failing under it: a wrapped job that
    /// started and whose client (ssh, srun, a Slurm worker) ended without the job's exit
    /// status. Not the job's doing, so a later success is no flaky job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Things worth knowing about how the job ended (e.g. a leftover process kept a pipe open).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Attempts before the final one (with `retries:`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<Attempt>,
    /// Names (not values) of the variables orchestrate set for the job; with `env_inherited`,
    /// the job also had orchestrate's own environment, whose names the run records once.
    #[serde(default)]
    pub env_keys: Vec<String>,
    #[serde(default)]
    pub env_inherited: bool,
    /// A background job (`background: true`): its record belongs to its supervisor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// The job's definition hash (see `plan::definition_hash`), for `--resume`.
    #[serde(default)]
    pub def_hash: String,
    /// The process that watches a background job, to tell a running job from a lost one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<ProcessIdentity>,
    /// The job's own process (the leader of its process group) while it runs: a record
    /// still running after its run died names a survivor, which the next run of the job
    /// file finds (`store::survivors`), and which `orchestrate kill` can stop even when the
    /// job's supervisor is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
    /// The Slurm job a job ran as (`executor: slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
    /// A hook's or a notification's record (`on_failure`, `notify.webhook`), not a job's:
    /// kept and shown with the run, never counted in its jobs or its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The jobs (plan indices) this job waited for (`needs`), so that a timeline can find the
    /// critical path from the records alone, whatever became of the job file since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<usize>,
    /// What the job was given on stdin, so that `rerun` gives it the same (`None`: a record
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Stdin>,
    /// The run whose record `--resume` carried over into this one: the job did not run in
    /// this run, so its times are that run's (timelines list it apart, counts say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
}

/// A job's stdin as its record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdin {
    Null,
    Text(String),
    File(PathBuf),
}

/// Identifies a process (a run's orchestrate, a background job's supervisor, a job) beyond
/// its pid, which the system may reuse, and which means nothing in another PID namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start_ticks: u64,
    /// /proc/sys/kernel/random/boot_id: a reboot means the supervisor is gone.
    pub boot_id: String,
    /// The PID namespace the pid belongs to (`pid:[4026531836]`); empty in old records.
    #[serde(default)]
    pub pid_ns: String,
}

impl ProcessIdentity {
    /// Process `pid` of our own PID namespace, as others can later check on it.
    pub fn of(pid: u32) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_ticks: crate::sys::process_start_ticks(pid).unwrap_or(0),
            boot_id: crate::sys::boot_id(),
            pid_ns: crate::sys::pid_namespace(),
        }
    }

    /// Whether the process may still live: the same process (pid and start time) in this
    /// boot, or one in another PID namespace, which cannot be seen from here and so is never
    /// taken for dead. A reboot ends every process.
    pub fn may_live(&self) -> bool {
        if self.boot_id != crate::sys::boot_id() {
            return false;
        }
        if !self.pid_ns.is_empty() && self.pid_ns != crate::sys::pid_namespace() {
            return true;
        }
        !crate::sys::process_gone(self.pid)
            && crate::sys::process_start_ticks(self.pid) == Some(self.start_ticks)
    }

    /// Whether a job whose process group this process leads may still run: the leader
    /// itself, or (it exited) a live member of its group; the group's id is not reused while
    /// any member lives.
    pub fn group_may_live(&self) -> bool {
        if self.may_live() {
            return true;
        }
        self.boot_id == crate::sys::boot_id()
            && (self.pid_ns.is_empty() || self.pid_ns == crate::sys::pid_namespace())
            && crate::sys::process_gone(self.pid)
            && crate::sys::group_has_live_member(self.pid)
    }
}

/// How one failed attempt of a retried job ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub status: Status,
    pub returncode: Option<i32>,
    pub signal: Option<i32>,
    #[serde(with = "unix_millis")]
    pub started: SystemTime,
    #[serde(with = "unix_millis")]
    pub finished: SystemTime,
    /// The attempt ended because its host or node failed under it (the record's
    /// `host_failed`), not by the job's doing: a success after it alone is no flaky job.
    #[serde(default)]
    pub host_failed: bool,
}

impl Attempt {
    /// The attempt `rec` was, as the record of a later one keeps it.
    pub fn of(rec: &CompletedProcess, attempt: u32, host_failed: bool) -> Attempt {
        Attempt {
            attempt,
            status: rec.status,
            returncode: rec.returncode,
            signal: rec.signal,
            started: rec.started,
            finished: rec.finished,
            host_failed,
        }
    }
}

impl CompletedProcess {
    /// All variable names of the job's environment, given the inherited ones of its run.
    pub fn all_env_keys(&self, inherited: &[String]) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<&str> =
            self.env_keys.iter().map(String::as_str).collect();
        if self.env_inherited {
            keys.extend(inherited.iter().map(String::as_str));
        }
        keys.into_iter().map(str::to_string).collect()
    }

    /// A record for a job that never started a process.
    pub fn not_started(
        job: &str,
        index: usize,
        args: Vec<String>,
        status: Status,
        error: String,
    ) -> Self {
        let now = SystemTime::now();
        CompletedProcess {
            job: job.to_string(),
            index,
            args,
            cwd: None,
            returncode: None,
            signal: None,
            status,
            error: Some(error),
            stdout: StoredOutput::default(),
            stderr: StoredOutput::default(),
            pid: None,
            slot: None,
            started: now,
            finished: now,
            duration: Duration::ZERO,
            attempts: 0,
            flaky: false,
            host_failed: false,
            host: None,
            notes: Vec::new(),
            earlier_attempts: Vec::new(),
            env_keys: Vec::new(),
            env_inherited: false,
            def_hash: String::new(),
            background: false,
            supervisor: None,
            process: None,
            slurm_job_id: None,
            hook: None,
            needs: Vec::new(),
            stdin: None,
            carried_from: None,
        }
    }

    /// Sets `flaky` once the job's last attempt is known: the one rule for what is flaky, a
    /// job that succeeded after at least one failed attempt of its own (an attempt cut short
    /// by its host failing does not count).
    pub fn settle_flaky(&mut self) {
        let host_failures = self
            .earlier_attempts
            .iter()
            .filter(|a| a.host_failed)
            .count();
        self.flaky = self.status == Status::Succeeded
            && (self.attempts as usize).saturating_sub(1) > host_failures;
    }

    /// Puts `earlier` (attempts the job made before this record's, elsewhere: on a host or a
    /// Slurm worker it moved from) in front of this record's own, which are numbered on after
    /// them, counts them, and settles `flaky` again.
    pub fn after_attempts(&mut self, mut earlier: Vec<Attempt>) {
        if earlier.is_empty() {
            return;
        }
        let n = earlier.len() as u32;
        earlier.extend(self.earlier_attempts.drain(..).map(|mut a| {
            a.attempt += n;
            a
        }));
        self.earlier_attempts = earlier;
        self.attempts += n;
        self.settle_flaky();
    }

    /// "exit 1", "signal 15 (SIGTERM)", "no process": the short form used in tables.
    pub fn outcome(&self) -> String {
        match (self.returncode, self.signal) {
            (_, Some(sig)) => format!("signal {sig} ({})", signal_name(sig)),
            (Some(code), None) => format!("exit {code}"),
            (None, None) => "-".to_string(),
        }
    }
}

/// The conventional name of a signal number.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(format_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(format_duration(Duration::from_millis(3400)), "3.40s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn millis_round_trip() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(to_millis(t), 1_700_000_000_123);
    }
}
