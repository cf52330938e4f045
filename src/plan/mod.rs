//! A `JobFile` turned into a `Plan`: defaults merged, command lines split into argv, names made
//! unique, every job valid. Nothing after this point re-validates. Here: the plan's types; the
//! steps that build one live in the files beside this one.

mod build;
mod entry;
mod env;
mod executor;
mod expand;
mod graph;
mod hooks;
mod instance;
mod lazy;
mod lazy_plan;
mod locator;
mod names;
mod narrow;
pub mod picks;
pub mod resume;
mod select;
mod spool;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::SpecError;
use crate::spec;
pub use crate::spec::{Condition, HaltSpec};
pub use executor::{DEFAULT_SSH_SLOTS, Executor, SlurmOptions, SshOptions};
pub use hooks::{
    HookKind, Hooks, NOTIFY_CHANNELS, Notify, NotifyWhen, RUN_HOOK_OWNER, hook_index, hook_name,
    notify_index,
};
pub use lazy::{Fan, FanSource, ReadItem};
pub use lazy_plan::Located;
pub use names::name_problem;
use names::{Entry, make_unique_entries};

/// Grace between SIGTERM and SIGKILL when a job is stopped, unless `kill_after` says otherwise.
pub const DEFAULT_KILL_AFTER: Duration = Duration::from_secs(5);

/// A validated, ready-to-run set of jobs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The job file this plan came from, if any.
    pub source: Option<PathBuf>,
    /// Hex SHA-256 of the job file's text.
    pub source_hash: String,
    /// `concurrency:` from the job file (the `-j` flag overrides it).
    pub concurrency: Option<usize>,
    /// The jobs made up front, in plan order (lazy fan-out entries' jobs are not here).
    pub jobs: Vec<PlannedJob>,
    /// The fanned-out entries whose jobs are made as they are dispatched, in plan order.
    pub fans: Vec<Fan>,
    /// Jobs in the job file's whole plan, however `jobs` was narrowed (`hook_index`).
    pub file_jobs: usize,
    /// Limits of job groups (`group:` on jobs).
    pub groups: std::collections::BTreeMap<String, usize>,
    /// What a failure does to the rest of the run.
    pub on_failure: HaltSpec,
    /// Names of variables whose values are secret.
    pub secret_env: Vec<String>,
    /// Their values, longest first: redacted from records, output and reports.
    pub secrets: Vec<String>,
    /// History to keep for this job file, if the file says.
    pub retention: Option<Retention>,
    /// Wait for background jobs before the run ends.
    pub wait: bool,
    /// The run's hooks, run once its jobs have all ended.
    pub hooks: Hooks,
    /// The hooks of jobs, by `jobs:` entry (`PlannedJob::entry`); every job of a fanned-out
    /// entry has them.
    pub job_hooks: std::collections::BTreeMap<usize, Hooks>,
    /// Where the run's outcome is sent.
    pub notify: Option<Notify>,
}

/// What to keep of a job file's history when pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub max_runs: Option<usize>,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// What is kept of a job file's history when it says nothing: its last 500 runs.
pub const DEFAULT_RETENTION: Retention = Retention {
    max_runs: Some(500),
    max_age: None,
    max_bytes: None,
};

/// When and how often a failed job is tried again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Retry {
    /// Extra attempts after the first.
    pub retries: u32,
    pub delay: Duration,
    /// Factor applied to the delay after each attempt (1: constant).
    pub backoff: f64,
    pub max_delay: Duration,
    /// Retry only on these exit codes (empty: on any failure).
    pub on: Vec<i32>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: 0,
            delay: Duration::from_secs(1),
            backoff: 1.0,
            max_delay: Duration::from_secs(300),
            on: Vec::new(),
        }
    }
}

impl Retry {
    /// The pause before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> Duration {
        let factor = self.backoff.powi(next.saturating_sub(2) as i32);
        let secs = (self.delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedJob {
    /// Position in the plan that runs (the scheduler's and the reporter's handle on the job).
    pub index: usize,
    /// Position in the job file's whole plan, which records carry: `--only`, `--skip` and
    /// `--resume` renumber `index`, not this.
    #[serde(default)]
    pub file_index: usize,
    pub name: String,
    /// The program and its arguments; for `shell:` jobs, `sh -c TEXT`.
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    pub stdin: Input,
    pub stdout: Target,
    pub stderr: Target,
    pub timeout: Option<Duration>,
    /// `timeout: auto`: `run` sets `timeout` from the job's history before the run starts.
    #[serde(default)]
    pub timeout_auto: bool,
    pub kill_after: Duration,
    /// Start from an empty environment (`inherit_env: false`) rather than orchestrate's.
    pub env_clear: bool,
    /// What must end, and how, before this one starts.
    pub needs: Vec<Need>,
    pub group: Option<String>,
    pub retry: Retry,
    /// Exit codes that count as success (empty: only 0).
    pub success_codes: Vec<i32>,
    /// The `jobs:` entry this job came from (several for a fanned-out entry).
    pub entry: usize,
    /// Detached: runs under a supervisor that outlives the run (`background: true`).
    pub background: bool,
    /// Hash of everything that defines what the job does (not where it stands in the file):
    /// `--resume` reruns a job whose definition changed even if it succeeded before.
    #[serde(default)]
    pub def_hash: String,
    /// Most bytes kept of each captured stream (head and tail; the middle is left out).
    #[serde(default)]
    pub max_output: Option<u64>,
    /// Where the job runs: here, on a Slurm cluster, or on ssh hosts.
    #[serde(default)]
    pub executor: Executor,
}

/// One entry of a job's `needs:`: the jobs it names and the condition on how they end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Need {
    /// The name as written (a fanned-out job's base name stands for all its items).
    pub name: String,
    /// The jobs (indices) it waits for. Empty when all of them succeeded in the run that
    /// `--resume` resumes.
    pub jobs: Vec<usize>,
    /// The lazy fan-outs (`Plan::fans`) all of whose jobs it waits for.
    #[serde(default)]
    pub fans: Vec<usize>,
    pub when: Condition,
}

impl PlannedJob {
    /// Every job this one waits for, need by need (a job may appear more than once).
    pub fn needed_jobs(&self) -> impl Iterator<Item = usize> + '_ {
        self.needs.iter().flat_map(|n| n.jobs.iter().copied())
    }
}

/// Standard input of a job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Input {
    Null,
    Text(String),
    File(PathBuf),
}

/// Where a stream of a job goes; turned into `Stdio` in one place (`exec::process`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// Drained into a capture file owned by orchestrate (the store's, or a temporary one).
    Capture,
    Inherit,
    Null,
    File {
        path: PathBuf,
        append: bool,
    },
    /// stderr only: the same destination as stdout (`2>&1`).
    Stdout,
}

impl Target {
    /// Where `spec` sends a stream, its file path as written (placeholders not filled in).
    pub(crate) fn of(spec: Option<&crate::spec::OutputSpec>) -> Target {
        use crate::spec::OutputSpec;
        match spec {
            None | Some(OutputSpec::Capture) => Target::Capture,
            Some(OutputSpec::Inherit) => Target::Inherit,
            Some(OutputSpec::Null) => Target::Null,
            Some(OutputSpec::Stdout) => Target::Stdout,
            Some(OutputSpec::File { path, append }) => Target::File {
                path: path.clone(),
                append: *append,
            },
        }
    }
}

impl Plan {
    /// Builds a plan from job-file text. `path` labels errors and is kept as the plan's source.
    pub fn from_text(path: &Path, text: &str) -> Result<Plan, SpecError> {
        let file = spec::parse(path, text)?;
        build::build(path, text, file)
    }

    /// Reads and plans a job file.
    pub fn load(path: &Path) -> Result<Plan, SpecError> {
        let (file, text) = spec::load(path)?;
        build::build(path, &text, file)
    }

    /// A plan of ad-hoc jobs given as argv lists, for library use.
    pub fn from_argvs<I, A, S>(argvs: I) -> Plan
    where
        I: IntoIterator<Item = A>,
        A: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut jobs: Vec<PlannedJob> = argvs
            .into_iter()
            .enumerate()
            .map(|(index, argv)| {
                let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
                PlannedJob::new(index, crate::text::slug(&argv.join(" ")), argv)
            })
            .collect();
        let mut entries: Vec<Entry> = jobs
            .iter()
            .map(|j| Entry {
                base: j.name.clone(),
                explicit: false,
                fanned: false,
                jobs: j.index..j.index + 1,
                needs: Vec::new(),
                lazy: None,
            })
            .collect();
        make_unique_entries(&mut entries, &mut jobs);
        Plan {
            source: None,
            source_hash: String::new(),
            concurrency: None,
            file_jobs: jobs.len(),
            jobs,
            fans: Vec::new(),
            groups: Default::default(),
            on_failure: HaltSpec::Continue,
            secret_env: Vec::new(),
            secrets: Vec::new(),
            retention: None,
            wait: false,
            hooks: Hooks::default(),
            job_hooks: Default::default(),
            notify: None,
        }
    }
}

impl PlannedJob {
    /// A job with every setting at its default: capture both streams, no stdin, no timeout.
    pub fn new(index: usize, name: String, argv: Vec<String>) -> Self {
        PlannedJob {
            index,
            file_index: index,
            name,
            argv,
            cwd: None,
            env: Vec::new(),
            stdin: Input::Null,
            stdout: Target::Capture,
            stderr: Target::Capture,
            timeout: None,
            timeout_auto: false,
            kill_after: DEFAULT_KILL_AFTER,
            env_clear: false,
            needs: Vec::new(),
            group: None,
            retry: Retry::default(),
            success_codes: Vec::new(),
            entry: index,
            background: false,
            def_hash: String::new(),
            max_output: None,
            executor: Executor::Local,
        }
    }

    /// Whether an exit code counts as success for this job.
    pub fn is_success(&self, code: i32) -> bool {
        if self.success_codes.is_empty() {
            code == 0
        } else {
            self.success_codes.contains(&code)
        }
    }
}

/// What the job runs and how, hashed: argv, directory, environment, input, output targets,
/// limits and retry policy. Position, index and needs are left out.
pub fn definition_hash(j: &PlannedJob) -> String {
    use sha2::{Digest, Sha256};
    // Serialized straight from references: no intermediate JSON value per job.
    let key = (
        &j.name,
        &j.argv,
        &j.cwd,
        &j.env,
        j.env_clear,
        &j.stdin,
        &j.stdout,
        &j.stderr,
        j.timeout,
        j.kill_after,
        &j.retry,
        &j.success_codes,
        j.background,
        j.max_output,
        &j.executor,
    );
    let mut bytes = serde_json::to_vec(&key).expect("a job definition serializes");
    // Only when set, so that the hashes of jobs written before `auto` existed stay the same.
    if j.timeout_auto {
        bytes.extend_from_slice(b"\0timeout: auto");
    }
    let mut hex = crate::text::hex(&Sha256::digest(&bytes));
    hex.truncate(16);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, SpecError> {
        Plan::from_text(Path::new("t.yaml"), text)
    }

    #[test]
    fn short_form_is_split_without_a_shell() {
        let p = plan("jobs:\n  - df -h /home\n  - echo 'a b' c\n").unwrap();
        assert_eq!(p.jobs[0].argv, ["df", "-h", "/home"]);
        assert_eq!(p.jobs[0].name, "df-h-home");
        assert_eq!(p.jobs[1].argv, ["echo", "a b", "c"]);
    }

    #[test]
    fn generated_names_are_unique_and_stable() {
        let p = plan("jobs:\n  - true\n  - true\n  - name: true-2\n    command: x\n").unwrap();
        let names: Vec<_> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["true", "true-3", "true-2"]);
    }

    #[test]
    fn defaults_are_merged() {
        let p = plan(
            "defaults:\n  timeout: 5s\n  env: {A: '1', B: '2'}\njobs:\n  - name: x\n    command: env\n    env: {B: three}\n  - name: y\n    command: env\n    timeout: 1s\n",
        )
        .unwrap();
        assert_eq!(p.jobs[0].timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            p.jobs[0].env,
            vec![("A".into(), "1".into()), ("B".into(), "three".into())]
        );
        assert_eq!(p.jobs[1].timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn duplicate_names_point_at_the_second() {
        let e = plan("jobs:\n  - name: a\n    command: true\n  - name: a\n    command: false\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("duplicate job name `a`"), "{e}");
    }

    #[test]
    fn unbalanced_quote() {
        let e = plan("jobs:\n  - true\n  - echo 'oops\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("quote is not closed"), "{e}");
    }
}
