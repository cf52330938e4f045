//! The YAML job file as serde types, and where its nodes stand. Only this module knows YAML.
//!
//! Every type rejects unknown keys, and the custom visitors exist so that a wrong value is
//! reported where it stands in the file (serde_yaml attaches the position of the node that failed),
//! instead of the vague "did not match any variant" of untagged enums. This file holds the file as
//! a whole and its top-level keys; the submodules hold jobs, values, and the position index.

mod for_each;
mod hooks;
mod job;
mod job_names;
mod load;
mod locate;
mod many;
mod scalar;
mod streams;
mod tags;
mod values;
mod yaml_error;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

pub use for_each::{ForEachSpec, Item, MAX_ITEMS};
pub use hooks::{HookSpec, HooksSpec, NotifySpec, NotifyWhen};
pub use job::{CommandSpec, Condition, Defaults, JOB_KEYS, JobMap, JobSpec, NeedSpec};
pub use load::{MAX_CONCURRENCY, MAX_FILE_BYTES, load, parse};
pub use locate::{Positions, Seg, Source, locate};
pub use streams::{OutputSpec, StdinSpec};
pub use values::{
    DurationSpec, Limit, MAX_DURATION, PathList, Size, TimeoutSpec, Word, parse_size,
};

/// A parsed job file, not yet validated as a whole (see `plan`).
#[derive(Debug, Default)]
pub struct JobFile {
    /// The file is a bare list of jobs (no top-level mapping).
    pub list_form: bool,
    pub concurrency: Option<usize>,
    pub defaults: Defaults,
    pub jobs: Vec<JobSpec>,
    pub groups: BTreeMap<String, usize>,
    pub on_failure: HaltSpec,
    /// Environment for every job (like `defaults.env`, for cron's minimal environment).
    pub env: BTreeMap<String, Word>,
    /// Directories put in front of PATH for every job.
    pub path: Vec<String>,
    /// Files of KEY=VALUE lines loaded into every job's environment.
    pub env_file: Vec<String>,
    /// Start jobs from orchestrate's environment (true) or from an empty one.
    pub inherit_env: bool,
    /// Variables whose values are never stored or printed.
    pub secret_env: Vec<String>,
    pub retention: Option<RetentionSpec>,
    /// Wait for background jobs before the run ends (and count them in its exit code).
    pub wait: bool,
    /// Where jobs run unless they say otherwise (`local` by default).
    pub executor: Option<ExecutorSpec>,
    pub slurm: Option<SlurmSpec>,
    pub ssh: Option<SshSpec>,
    pub hosts: Option<Vec<String>>,
    pub on_host_failure: HostFailureSpec,
    /// Commands run once the run's jobs have all ended.
    pub hooks: HooksSpec,
    pub notify: Option<NotifySpec>,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorSpec {
    Local,
    Slurm,
    Ssh,
}

/// `slurm:` settings, given to `srun`; a job's own keys override the top-level ones.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    /// Slurm's own time format (`10`, `1:30:00`, `1-0`): passed to `--time` as written.
    pub time: Option<Word>,
    pub cpus: Option<Limit>,
    pub mem: Option<Word>,
    pub extra_args: Option<Vec<Word>>,
}

/// `ssh:` settings for every ssh job of the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// An ssh_config file (`ssh -F`), relative to the job file.
    pub config: Option<PathBuf>,
    /// Extra `-o` options, like `ConnectTimeout=5`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Jobs in flight on one host at once.
    pub slots: Option<Limit>,
}

/// What happens to a job whose ssh host cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostFailureSpec {
    /// The job fails with the connection error.
    #[default]
    Fail,
    /// The job moves to another of its hosts, while any is left.
    RetryElsewhere,
}

/// The keys of the long form of a job file (a mapping at the top).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFileMap {
    #[serde(default, deserialize_with = "de_concurrency")]
    concurrency: Option<usize>,
    #[serde(default)]
    defaults: Defaults,
    jobs: Vec<JobSpec>,
    #[serde(default)]
    groups: BTreeMap<String, Limit>,
    on_failure: Option<HaltSpec>,
    #[serde(default)]
    env: BTreeMap<String, Word>,
    path: Option<PathList>,
    env_file: Option<PathList>,
    inherit_env: Option<bool>,
    #[serde(default)]
    secret_env: Vec<String>,
    retention: Option<RetentionSpec>,
    wait: Option<bool>,
    executor: Option<ExecutorSpec>,
    slurm: Option<SlurmSpec>,
    ssh: Option<SshSpec>,
    hosts: Option<Vec<String>>,
    on_host_failure: Option<HostFailureSpec>,
    #[serde(default)]
    hooks: HooksSpec,
    notify: Option<NotifySpec>,
}

/// What a failed job does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltSpec {
    /// Run everything that does not depend on the failure.
    #[default]
    Continue,
    /// Start nothing new; let running jobs finish.
    Stop,
    /// Stop running jobs too.
    Kill,
}

/// How much history to keep for this job file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    pub runs: Option<usize>,
    pub age: Option<DurationSpec>,
    pub bytes: Option<Size>,
}

impl<'de> Deserialize<'de> for JobFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JobFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping with a `jobs:` list, or a list of jobs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<JobFile, A::Error> {
                let jobs = Vec::<JobSpec>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(JobFile {
                    jobs,
                    list_form: true,
                    inherit_env: true,
                    ..JobFile::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobFile, A::Error> {
                let m = JobFileMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JobFile {
                    list_form: false,
                    concurrency: m.concurrency,
                    defaults: m.defaults,
                    jobs: m.jobs,
                    groups: m.groups.into_iter().map(|(k, v)| (k, v.0)).collect(),
                    on_failure: m.on_failure.unwrap_or_default(),
                    env: m.env,
                    path: m.path.map(|p| p.0).unwrap_or_default(),
                    env_file: m.env_file.map(|p| p.0).unwrap_or_default(),
                    inherit_env: m.inherit_env.unwrap_or(true),
                    secret_env: m.secret_env,
                    retention: m.retention,
                    wait: m.wait.unwrap_or(false),
                    executor: m.executor,
                    slurm: m.slurm,
                    ssh: m.ssh,
                    hosts: m.hosts,
                    on_host_failure: m.on_host_failure.unwrap_or_default(),
                    hooks: m.hooks,
                    notify: m.notify,
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn de_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a positive number of jobs, or `cpus`")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<usize>, E> {
            if v == 0 {
                Err(E::custom("concurrency must be at least 1"))
            } else if v > MAX_CONCURRENCY as u64 {
                Err(E::custom(format!(
                    "concurrency {v} is too large (at most {MAX_CONCURRENCY})"
                )))
            } else {
                Ok(Some(v as usize))
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<usize>, E> {
            if v < 1 {
                Err(E::custom("concurrency must be at least 1"))
            } else {
                self.visit_u64(v as u64)
            }
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<usize>, E> {
            match s {
                "cpus" | "auto" => Ok(None),
                _ => Err(E::custom(format!(
                    "concurrency must be a positive number or `cpus`, not `{s}`"
                ))),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<usize>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}
