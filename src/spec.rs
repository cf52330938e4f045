//! The YAML job file as serde types. Only this module knows YAML.
//!
//! Every type rejects unknown keys, and the custom visitors below exist so that a wrong value is
//! reported where it stands in the file (serde_yaml attaches the position of the node that failed),
//! instead of the vague "did not match any variant" of untagged enums.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::SpecError;

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
}

/// A positive count (group limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub usize);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v < 1 {
            Err(de::Error::custom(format!(
                "a limit must be at least 1, not {v}"
            )))
        } else if v as usize > MAX_CONCURRENCY {
            Err(de::Error::custom(format!(
                "a limit of {v} is too large (at most {MAX_CONCURRENCY})"
            )))
        } else {
            Ok(Limit(v as usize))
        }
    }
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

/// One path or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathList(pub Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PathList, E> {
                Ok(PathList(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathList, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    v.push(p);
                }
                Ok(PathList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// How much history to keep for this job file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    pub runs: Option<usize>,
    pub age: Option<DurationSpec>,
    pub bytes: Option<Size>,
}

/// A byte size: a number, or text like `500M`, `2G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as `500M` or `2G`, or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size `{v}` is negative")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size(s).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `500M`, `2G`, `1024`: bytes, with binary multiples.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{s}`; write it like `500M` or `2G`"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("invalid size unit in `{s}` (use K, M, G or T)")),
    };
    Ok((n * mult as f64) as u64)
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
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Settings merged into every job; a job's own value wins (for `env`, key by key).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, Word>,
    pub stdin: Option<StdinSpec>,
    pub timeout: Option<DurationSpec>,
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
    pub needs: Vec<String>,
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
    pub timeout: Option<DurationSpec>,
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

/// What a job fans out over.
#[derive(Debug, Clone, PartialEq)]
pub enum ForEachSpec {
    Items(Vec<Item>),
    File(PathBuf),
    Range { start: i64, end: i64, step: i64 },
}

/// One item of `for_each`: a scalar, or a mapping whose fields are `{item.field}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Scalar(String),
    Map(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForEachMap {
    file: Option<PathBuf>,
    range: Option<Vec<i64>>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar item or a mapping of scalar fields")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Item, E> {
                Ok(Item::Scalar(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                let m = BTreeMap::<String, Word>::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Item::Map(m.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ForEachSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ForEachSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of items, `{file: items.txt}` or `{range: [1, 100]}`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ForEachSpec, A::Error> {
                let mut items = Vec::new();
                while let Some(it) = seq.next_element::<Item>()? {
                    items.push(it);
                }
                Ok(ForEachSpec::Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ForEachSpec, A::Error> {
                let m = ForEachMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.file, m.range) {
                    (Some(f), None) => Ok(ForEachSpec::File(f)),
                    (None, Some(r)) => {
                        let (start, end, step) = match r.as_slice() {
                            [a, b] => (*a, *b, 1),
                            [a, b, c] => (*a, *b, *c),
                            _ => {
                                return Err(de::Error::custom(
                                    "range takes [first, last] or [first, last, step]",
                                ));
                            }
                        };
                        if step == 0 {
                            return Err(de::Error::custom("a range step cannot be 0"));
                        }
                        let count = (end as i128 - start as i128) / step as i128 + 1;
                        if count > MAX_ITEMS as i128 {
                            return Err(de::Error::custom(format!(
                                "the range has {count} items; at most {MAX_ITEMS} are allowed"
                            )));
                        }
                        Ok(ForEachSpec::Range { start, end, step })
                    }
                    _ => Err(de::Error::custom(
                        "for_each takes a list, `{file: path}` or `{range: [first, last]}`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Most jobs one job file may expand to.
pub const MAX_ITEMS: usize = 10_000_000;

/// A scalar taken as text: `sleep 1` in an argv list or `PORT: 8080` in `env` are words too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(pub String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Word;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Word, E> {
                Ok(Word(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: humantime text (`30s`, `10m`, `1h 30m`) or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

/// Longer than any sensible timeout, short enough that adding it to `Instant::now()` never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn checked<E: de::Error>(d: Duration) -> Result<DurationSpec, E> {
                if d > MAX_DURATION {
                    Err(E::custom("duration is too long (at most 100 years)"))
                } else {
                    Ok(DurationSpec(d))
                }
            }
        }
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `30s`, `10m` or `1h 30m`, or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationSpec, E> {
                let t = s.trim();
                if t.starts_with('-') {
                    return Err(E::custom(format!("duration `{s}` is negative")));
                }
                match humantime::parse_duration(t) {
                    Ok(d) => V::checked(d),
                    Err(e) => Err(E::custom(format!(
                        "invalid duration `{s}`: {e}; write it like `30s`, `10m` or `1h 30m`"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                V::checked(Duration::from_secs(v.min(MAX_DURATION.as_secs() + 1)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationSpec, E> {
                if v < 0 {
                    Err(E::custom(format!("duration `{v}` is negative")))
                } else {
                    self.visit_u64(v as u64)
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationSpec, E> {
                if !v.is_finite() || v < 0.0 {
                    return Err(E::custom(format!(
                        "duration `{v}` must be a non-negative number of seconds"
                    )));
                }
                match Duration::try_from_secs_f64(v) {
                    Ok(d) => V::checked(d),
                    Err(_) => Err(E::custom("duration is too long (at most 100 years)")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a stream goes: `capture` (the default), `inherit`, `null`, `stdout` (stderr only),
/// or a file `{file: path, append: true}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Capture,
    Inherit,
    Null,
    /// Merge into stdout (only valid for `stderr`).
    Stdout,
    File {
        path: PathBuf,
        append: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    file: PathBuf,
    #[serde(default)]
    append: bool,
}

impl<'de> Deserialize<'de> for OutputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OutputSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`capture`, `inherit`, `null`, `stdout` or a file mapping `{file: path, append: true}`",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OutputSpec, E> {
                match s {
                    "capture" | "pipe" => Ok(OutputSpec::Capture),
                    "inherit" => Ok(OutputSpec::Inherit),
                    "null" | "/dev/null" | "discard" => Ok(OutputSpec::Null),
                    "stdout" => Ok(OutputSpec::Stdout),
                    other => Err(E::custom(format!(
                        "unknown output target `{other}`; use `capture`, `inherit`, `null`, `stdout`, or `{{file: {other}}}` to write to a file"
                    ))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<OutputSpec, E> {
                Ok(OutputSpec::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OutputSpec, A::Error> {
                let t = FileTarget::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OutputSpec::File {
                    path: t.file,
                    append: t.append,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A job's standard input: text given inline, or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinSpec {
    Text(String),
    File(PathBuf),
    Null,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdinMap {
    file: Option<PathBuf>,
    text: Option<String>,
}

impl<'de> Deserialize<'de> for StdinSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StdinSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text, `{file: path}` or `{text: ...}`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StdinSpec, E> {
                Ok(StdinSpec::Text(s.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StdinSpec, E> {
                Ok(StdinSpec::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StdinSpec, A::Error> {
                let m = StdinMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.file, m.text) {
                    (Some(f), None) => Ok(StdinSpec::File(f)),
                    (None, Some(t)) => Ok(StdinSpec::Text(t)),
                    _ => Err(de::Error::custom(
                        "stdin takes exactly one of `file:` or `text:`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `stdout: null` means "discard", not "unset" (which plain `Option` would make it).
fn de_output<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OutputSpec>, D::Error> {
    OutputSpec::deserialize(d).map(Some)
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

/// More jobs in flight than this is a typo, not a plan (and would exhaust file descriptors).
pub const MAX_CONCURRENCY: usize = 4096;

/// Largest job file read, to keep a runaway file from eating memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads and parses a job file. Errors name the file, line and column.
pub fn load(path: &Path) -> Result<(JobFile, String), SpecError> {
    let meta = std::fs::metadata(path).map_err(|e| SpecError::io(path, &e))?;
    if meta.is_dir() {
        return Err(SpecError::plain(
            path,
            "is a directory; give the path of a YAML job file".to_string(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(SpecError::plain(
            path,
            format!(
                "is {} bytes; job files are limited to {} MiB",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| SpecError::io(path, &e))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let (line, col) = line_col_of_offset(e.as_bytes(), at);
            return Err(SpecError::at(
                path,
                None,
                line,
                col,
                "the file is not valid UTF-8".to_string(),
                None,
            ));
        }
    };
    let file = parse(path, &text)?;
    Ok((file, text))
}

/// Parses job-file text; `path` only labels errors.
pub fn parse(path: &Path, text: &str) -> Result<JobFile, SpecError> {
    if text.trim().is_empty() || only_comments(text) {
        return Err(SpecError::plain(
            path,
            "is empty; a job file lists jobs, e.g.\n  jobs:\n    - df -h /home".to_string(),
        ));
    }
    serde_yaml::from_str::<JobFile>(text).map_err(|e| SpecError::from_yaml(path, text, &e))
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

fn line_col_of_offset(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
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
];

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<JobFile, SpecError> {
        parse(Path::new("t.yaml"), text)
    }

    #[test]
    fn short_and_long_forms() {
        let f = p("concurrency: 3\njobs:\n  - df -h /home\n  - name: u\n    command: [uname, -a]\n  - shell: echo hi | wc -c\n").unwrap();
        assert_eq!(f.concurrency, Some(3));
        assert_eq!(f.jobs.len(), 3);
        assert!(matches!(&f.jobs[0], JobSpec::Short(s) if s == "df -h /home"));
        match &f.jobs[1] {
            JobSpec::Full(m) => assert_eq!(
                m.command,
                Some(CommandSpec::Argv(vec!["uname".into(), "-a".into()]))
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn top_level_list() {
        let f = p("- true\n- false\n").unwrap();
        assert_eq!(f.jobs.len(), 2);
    }

    #[test]
    fn durations() {
        let f = p("jobs:\n  - name: a\n    command: sleep 1\n    timeout: 1m 30s\n  - name: b\n    command: x\n    timeout: 2.5\n").unwrap();
        let JobSpec::Full(a) = &f.jobs[0] else {
            panic!()
        };
        assert_eq!(a.timeout, Some(DurationSpec(Duration::from_secs(90))));
        let JobSpec::Full(b) = &f.jobs[1] else {
            panic!()
        };
        assert_eq!(b.timeout, Some(DurationSpec(Duration::from_millis(2500))));
    }

    #[test]
    fn unknown_key_has_location() {
        let e = p("jobs:\n  - name: a\n    command: true\n    timout: 1s\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(4), Some(5)), "{e}");
        assert!(e.to_string().contains("did you mean `timeout`"), "{e}");
    }
}

/// One step of a path into the YAML document, to find where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Line and column (1-based) of the node at `path`, found with a parser that keeps positions.
/// Used for errors found after deserialization (duplicate names, bad command lines), which are
/// rare, so the second parse costs nothing on the happy path.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    enum Frame {
        Map { key: Option<String>, want_key: bool },
        Seq { next: usize },
    }
    struct Finder<'p> {
        target: &'p [Seg],
        stack: Vec<Frame>,
        found: Option<(usize, usize)>,
        first_key: bool,
    }
    impl Finder<'_> {
        /// The path of the node that starts now; `None` when the event is a mapping key.
        fn node_path(&mut self) -> Option<Vec<Seg>> {
            let mut path = Vec::with_capacity(self.stack.len());
            let n = self.stack.len();
            for (i, f) in self.stack.iter().enumerate() {
                let last = i + 1 == n;
                match f {
                    Frame::Map { key, want_key } => {
                        if last && *want_key {
                            return None;
                        }
                        let k = key.clone().unwrap_or_default();
                        let seg = self
                            .target
                            .iter()
                            .find_map(|s| match s {
                                Seg::Key(t) if *t == k => Some(Seg::Key(t)),
                                _ => None,
                            })
                            .unwrap_or(Seg::Key(""));
                        path.push(seg);
                    }
                    Frame::Seq { next } => path.push(Seg::Index(*next)),
                }
            }
            Some(path)
        }
        fn value_done(&mut self) {
            match self.stack.last_mut() {
                Some(Frame::Map { want_key, .. }) => *want_key = true,
                Some(Frame::Seq { next }) => *next += 1,
                None => {}
            }
        }
    }
    impl MarkedEventReceiver for Finder<'_> {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.found.is_some() {
                return;
            }
            match ev {
                Event::Scalar(s, ..) => {
                    if self.first_key {
                        self.found = Some((mark.line(), mark.col() + 1));
                        return;
                    }
                    if let Some(Frame::Map { key, want_key }) = self.stack.last_mut()
                        && *want_key
                    {
                        *key = Some(s);
                        *want_key = false;
                        return;
                    }
                    if self.node_path().as_deref() == Some(self.target) {
                        self.found = Some((mark.line(), mark.col() + 1));
                    }
                    self.value_done();
                }
                Event::Alias(_) => {
                    if let Some(Frame::Map { want_key, .. }) = self.stack.last_mut()
                        && *want_key
                    {
                        *want_key = false;
                        return;
                    }
                    self.value_done();
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if let Some(Frame::Map { want_key: true, .. }) = self.stack.last() {
                        // A complex key: treat it as a value-less key.
                        if let Some(Frame::Map { want_key, .. }) = self.stack.last_mut() {
                            *want_key = false;
                        }
                    } else if self.node_path().as_deref() == Some(self.target) {
                        if matches!(ev, Event::MappingStart(..)) {
                            // A block mapping's own mark is not where it starts on the line;
                            // its first key is.
                            self.first_key = true;
                        } else {
                            self.found = Some((mark.line(), mark.col() + 1));
                        }
                    }
                    self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                        Frame::Map {
                            key: None,
                            want_key: true,
                        }
                    } else {
                        Frame::Seq { next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.stack.pop();
                    self.value_done();
                }
                _ => {}
            }
        }
    }

    let mut finder = Finder {
        target: path,
        stack: Vec::new(),
        found: None,
        first_key: false,
    };
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut finder, false);
    finder.found
}

#[cfg(test)]
mod locate_tests {
    use super::*;

    #[test]
    fn finds_jobs_and_keys() {
        let text = "concurrency: 2\njobs:\n  - true\n  - name: b\n    command: echo 'x\n";
        assert_eq!(
            locate(text, &[Seg::Key("jobs"), Seg::Index(0)]),
            Some((3, 5))
        );
        assert_eq!(
            locate(text, &[Seg::Key("jobs"), Seg::Index(1)]),
            Some((4, 5))
        );
        assert_eq!(
            locate(
                text,
                &[Seg::Key("jobs"), Seg::Index(1), Seg::Key("command")]
            ),
            Some((5, 14))
        );
    }

    #[test]
    fn finds_in_top_level_list() {
        let text = "- true\n- false\n";
        assert_eq!(locate(text, &[Seg::Index(1)]), Some((2, 3)));
    }
}
