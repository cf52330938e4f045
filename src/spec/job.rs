//! One entry of `jobs:` and the `defaults:` merged into every entry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{
    DurationSpec, ExecutorSpec, ForEachSpec, HooksSpec, OutputSpec, Size, SlurmSpec, StdinSpec,
    TimeoutSpec, Word,
};

/// Settings merged into every job; a job's own value wins (for `env`, key by key).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, Word>,
    pub stdin: Option<StdinSpec>,
    pub timeout: Option<TimeoutSpec>,
    pub kill_after: Option<DurationSpec>,
    #[serde(default, deserialize_with = "de_output")]
    pub stdout: Option<OutputSpec>,
    #[serde(default, deserialize_with = "de_output")]
    pub stderr: Option<OutputSpec>,
    pub retries: Option<u32>,
    pub retry_delay: Option<DurationSpec>,
    pub backoff: Option<f64>,
    pub max_retry_delay: Option<DurationSpec>,
    pub retry_on: Option<Vec<i32>>,
    pub success_codes: Option<Vec<i32>>,
    pub group: Option<String>,
    pub max_output: Option<Size>,
}

/// One entry of `jobs:`: a bare command line, or a mapping.
#[derive(Debug, Clone)]
pub enum JobSpec {
    Short(String),
    Full(Box<JobMap>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMap {
    pub name: Option<String>,
    #[serde(default)]
    pub needs: Vec<NeedSpec>,
    pub for_each: Option<ForEachSpec>,
    pub chunk: Option<usize>,
    /// Start detached, like `cmd &`; a supervisor collects its exit status.
    #[serde(default)]
    pub background: bool,
    pub command: Option<CommandSpec>,
    pub shell: Option<String>,
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, Word>,
    pub stdin: Option<StdinSpec>,
    pub timeout: Option<TimeoutSpec>,
    pub kill_after: Option<DurationSpec>,
    #[serde(default, deserialize_with = "de_output")]
    pub stdout: Option<OutputSpec>,
    #[serde(default, deserialize_with = "de_output")]
    pub stderr: Option<OutputSpec>,
    pub retries: Option<u32>,
    pub retry_delay: Option<DurationSpec>,
    pub backoff: Option<f64>,
    pub max_retry_delay: Option<DurationSpec>,
    pub retry_on: Option<Vec<i32>>,
    pub success_codes: Option<Vec<i32>>,
    pub group: Option<String>,
    pub max_output: Option<Size>,
    pub executor: Option<ExecutorSpec>,
    /// Overrides the top-level `slurm:` key by key.
    pub slurm: Option<SlurmSpec>,
    /// Overrides the top-level `hosts:`.
    pub hosts: Option<Vec<String>>,
    /// Commands run after the job's final attempt.
    pub hooks: Option<HooksSpec>,
}

impl<'de> Deserialize<'de> for JobSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JobSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command line (`- df -h /home`) or a job mapping (`- name: ...`)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<JobSpec, E> {
                Ok(JobSpec::Short(s.to_string()))
            }
            // `- true` and `- false` are commands here, not YAML booleans.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<JobSpec, E> {
                Ok(JobSpec::Short(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobSpec, A::Error> {
                let m = JobMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JobSpec::Full(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `command:` as one command line (split with shell-words) or as an argv list.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandSpec {
    Line(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command line string or a list of argv words")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CommandSpec, E> {
                Ok(CommandSpec::Line(s.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<CommandSpec, E> {
                Ok(CommandSpec::Line(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandSpec, A::Error> {
                let mut words = Vec::new();
                while let Some(w) = seq.next_element::<Word>()? {
                    words.push(w.0);
                }
                Ok(CommandSpec::Argv(words))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `needs:`: a job's name (it must succeed first), or `{job: NAME, if: WHEN}`.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedSpec {
    pub job: String,
    pub when: Condition,
}

/// When a job runs, given how a job it needs ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// It succeeded (what a plain name means).
    #[default]
    Success,
    /// It ended in a failure status (failed, timed out, skipped, cancelled, could not start).
    Failure,
    /// It ended, whatever its status.
    Always,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "success",
            Condition::Failure => "failure",
            Condition::Always => "always",
        }
    }
}

/// The mapping form of a need.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeedMap {
    job: Word,
    #[serde(rename = "if", default)]
    when: Condition,
}

impl<'de> Deserialize<'de> for NeedSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NeedSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a job name, or `{job: NAME, if: success | failure | always}`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NeedSpec, E> {
                Ok(NeedSpec::plain(s.to_string()))
            }
            // Job names such as `true` or `7` read as YAML booleans and numbers.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<NeedSpec, E> {
                Ok(NeedSpec::plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NeedSpec, E> {
                Ok(NeedSpec::plain(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NeedSpec, E> {
                Ok(NeedSpec::plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NeedSpec, A::Error> {
                let m = NeedMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(NeedSpec {
                    job: m.job.0,
                    when: m.when,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl NeedSpec {
    fn plain(job: String) -> NeedSpec {
        NeedSpec {
            job,
            when: Condition::Success,
        }
    }
}

/// `stdout: null` means "discard", not "unset" (which plain `Option` would make it).
fn de_output<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OutputSpec>, D::Error> {
    OutputSpec::deserialize(d).map(Some)
}

/// The keys a job mapping accepts, for "did you mean" suggestions.
pub const JOB_KEYS: &[&str] = &[
    "name",
    "background",
    "needs",
    "for_each",
    "chunk",
    "retries",
    "retry_delay",
    "backoff",
    "max_retry_delay",
    "retry_on",
    "success_codes",
    "group",
    "max_output",
    "command",
    "shell",
    "cwd",
    "env",
    "stdin",
    "timeout",
    "kill_after",
    "stdout",
    "stderr",
    "hooks",
];
