//! A `JobFile` turned into a `Plan`: defaults merged, command lines split into argv, names made
//! unique, every job valid. Nothing after this point re-validates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::SpecError;
pub use crate::spec::HaltSpec;
use crate::spec::{
    self, CommandSpec, ForEachSpec, Item, JobFile, JobSpec, OutputSpec, Seg, StdinSpec,
};

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
    pub jobs: Vec<PlannedJob>,
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
    /// Position in the job file, which orders ordered output and `show`.
    pub index: usize,
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
    pub kill_after: Duration,
    /// Start from an empty environment (`inherit_env: false`) rather than orchestrate's.
    pub env_clear: bool,
    /// Jobs (indices) that must succeed before this one starts.
    pub needs: Vec<usize>,
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

/// Where a job runs (`executor:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Executor {
    #[default]
    Local,
    Slurm(SlurmOptions),
    Ssh(SshOptions),
}

/// What `srun` is given for one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus: Option<usize>,
    pub mem: Option<String>,
    pub extra_args: Vec<String>,
}

impl SlurmOptions {
    /// The options as arguments, the same for srun and sbatch: partition, time, CPUs,
    /// memory, then the extra arguments as given.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::with_capacity(4 + self.extra_args.len());
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.time {
            a.push(format!("--time={t}"));
        }
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = &self.mem {
            a.push(format!("--mem={m}"));
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// The ssh hosts a job may run on, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SshOptions {
    /// Names from the ssh config, or `user@host:port`.
    pub hosts: Vec<String>,
    /// `ssh -F FILE`.
    pub config: Option<PathBuf>,
    /// Extra `-o` options.
    pub options: Vec<String>,
    /// Jobs in flight on one host at once.
    pub slots: usize,
    /// On an unreachable host, move the job to another host instead of failing it.
    pub retry_elsewhere: bool,
}

/// OpenSSH's default `MaxSessions`: more channels than this over one connection are refused.
pub const DEFAULT_SSH_SLOTS: usize = 10;

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

impl Plan {
    /// Builds a plan from job-file text. `path` labels errors and is kept as the plan's source.
    pub fn from_text(path: &Path, text: &str) -> Result<Plan, SpecError> {
        let file = spec::parse(path, text)?;
        build(path, text, file)
    }

    /// Reads and plans a job file.
    pub fn load(path: &Path) -> Result<Plan, SpecError> {
        let (file, text) = spec::load(path)?;
        build(path, &text, file)
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
            })
            .collect();
        make_unique_entries(&mut entries, &mut jobs);
        Plan {
            source: None,
            source_hash: String::new(),
            concurrency: None,
            jobs,
            groups: Default::default(),
            on_failure: HaltSpec::Continue,
            secret_env: Vec::new(),
            secrets: Vec::new(),
            retention: None,
            wait: false,
        }
    }

    /// Keeps the jobs named by `only` (all if empty) minus those named by `skip`. With
    /// `with_deps`, `only` also keeps what the chosen jobs need, and `skip` also drops what needs
    /// a skipped job; without it, needs on dropped jobs are simply forgotten. A fanned-out job
    /// is named by its base name (`square`) or one item (`square[3]`).
    pub fn select(
        mut self,
        only: &[String],
        skip: &[String],
        with_deps: bool,
    ) -> Result<Plan, String> {
        if only.is_empty() && skip.is_empty() {
            return Ok(self);
        }
        let n = self.jobs.len();
        let matching = |name: &str| -> Result<Vec<usize>, String> {
            let found: Vec<usize> = self
                .jobs
                .iter()
                .filter(|j| {
                    j.name == name
                        || (j.name.len() > name.len()
                            && j.name.starts_with(name)
                            && j.name[name.len()..].starts_with('['))
                })
                .map(|j| j.index)
                .collect();
            if found.is_empty() {
                let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
                let hint = crate::error::suggest(name, &names)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(format!("no job `{name}` in the job file{hint}"));
            }
            Ok(found)
        };
        let mut keep = vec![only.is_empty(); n];
        for name in only {
            for i in matching(name)? {
                keep[i] = true;
            }
        }
        if with_deps && !only.is_empty() {
            let mut stack: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
            while let Some(i) = stack.pop() {
                for &d in &self.jobs[i].needs {
                    if !keep[d] {
                        keep[d] = true;
                        stack.push(d);
                    }
                }
            }
        }
        for name in skip {
            for i in matching(name)? {
                keep[i] = false;
            }
        }
        if with_deps && !skip.is_empty() {
            // Jobs are not in dependency order, so repeat until nothing changes.
            let mut changed = true;
            while changed {
                changed = false;
                for i in 0..n {
                    if keep[i] && self.jobs[i].needs.iter().any(|&d| !keep[d]) {
                        keep[i] = false;
                        changed = true;
                    }
                }
            }
        }
        self.retain_jobs(&keep);
        if self.jobs.is_empty() {
            return Err("the selection leaves no job to run".to_string());
        }
        Ok(self)
    }

    /// Keeps the jobs marked in `keep`, renumbered in order; needs on dropped jobs are dropped.
    fn retain_jobs(&mut self, keep: &[bool]) {
        let mut new_index = vec![usize::MAX; keep.len()];
        let mut jobs = Vec::with_capacity(keep.iter().filter(|k| **k).count());
        for (i, mut j) in std::mem::take(&mut self.jobs).into_iter().enumerate() {
            if keep[i] {
                new_index[i] = jobs.len();
                j.index = jobs.len();
                jobs.push(j);
            }
        }
        for j in &mut jobs {
            j.needs = j
                .needs
                .iter()
                .filter(|&&d| new_index[d] != usize::MAX)
                .map(|&d| new_index[d])
                .collect();
        }
        self.jobs = jobs;
    }

    /// Leaves out the jobs that already succeeded (same name, same definition) in an earlier
    /// run; what needed them runs without waiting. Returns how many were left out.
    pub fn resume_from(
        &mut self,
        succeeded: &std::collections::HashSet<(String, String)>,
    ) -> usize {
        let n = self.jobs.len();
        let keep: Vec<bool> = self
            .jobs
            .iter()
            .map(|j| !succeeded.contains(&(j.name.clone(), j.def_hash.clone())))
            .collect();
        self.retain_jobs(&keep);
        n - self.jobs.len()
    }
}

impl PlannedJob {
    /// A job with every setting at its default: capture both streams, no stdin, no timeout.
    pub fn new(index: usize, name: String, argv: Vec<String>) -> Self {
        PlannedJob {
            index,
            name,
            argv,
            cwd: None,
            env: Vec::new(),
            stdin: Input::Null,
            stdout: Target::Capture,
            stderr: Target::Capture,
            timeout: None,
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

/// A job entry's command before items are substituted.
enum Body {
    Argv(Vec<String>),
    Shell(String),
}

/// What placeholders expand to for one expanded job.
struct Subst<'a> {
    item: Option<&'a Item>,
    items: &'a [Item],
    index: usize,
}

/// One entry of `jobs:` as the plan sees it (a fanned-out entry becomes several jobs).
struct Entry {
    base: String,
    explicit: bool,
    fanned: bool,
    jobs: std::ops::Range<usize>,
}

fn build(path: &Path, text: &str, file: JobFile) -> Result<Plan, SpecError> {
    let list_form = file.list_form;
    let jobs_path = move |i: usize| -> Vec<Seg> {
        if list_form {
            vec![Seg::Index(i)]
        } else {
            vec![Seg::Key("jobs"), Seg::Index(i)]
        }
    };
    let err_at = |segs: &[Seg], job: Option<String>, message: String, hint: Option<String>| {
        let (line, col) = spec::locate(text, segs).unwrap_or((0, 0));
        let e = if line == 0 {
            SpecError {
                job,
                hint,
                ..SpecError::plain(path, message)
            }
        } else {
            SpecError::at(path, job, line, col, message, hint)
        };
        e.with_source(text)
    };
    let top = |key: &'static str| -> Vec<Seg> { vec![Seg::Key(key)] };

    if file.jobs.is_empty() {
        return Err(SpecError::plain(
            path,
            "has no jobs; list at least one under `jobs:`".to_string(),
        ));
    }
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();

    // The environment every job starts from: inherited (unless `inherit_env: false`), then
    // `env_file:`, then top-level `env:`, then `path:` in front of PATH.
    let mut global_env: Vec<(String, String)> = Vec::new();
    for f in &file.env_file {
        let p = base_dir.join(f);
        let content = std::fs::read_to_string(&p).map_err(|e| {
            err_at(
                &top("env_file"),
                None,
                format!(
                    "cannot read env_file {}: {}",
                    p.display(),
                    crate::text::os_text(&e)
                ),
                None,
            )
        })?;
        for (n, line) in content.lines().enumerate() {
            match parse_env_line(line) {
                Ok(Some(kv)) => global_env.push(kv),
                Ok(None) => {}
                Err(msg) => {
                    return Err(SpecError::at(
                        &p,
                        None,
                        n + 1,
                        1,
                        msg,
                        Some("write KEY=VALUE lines".into()),
                    )
                    .with_source(&content));
                }
            }
        }
    }
    for (k, v) in &file.env {
        global_env.push((k.clone(), v.0.clone()));
    }
    if !file.inherit_env && !global_env.iter().any(|(k, _)| k == "PATH") {
        // A clean environment still needs a PATH to find programs, as cron gives one.
        global_env.push((
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ));
    }
    if !file.path.is_empty() {
        let current = global_env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                file.inherit_env
                    .then(|| std::env::var("PATH").ok())
                    .flatten()
            })
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
        let mut dirs: Vec<String> = file.path.clone();
        dirs.push(current);
        global_env.push(("PATH".to_string(), dirs.join(":")));
    }

    for g in file.groups.keys() {
        if g.is_empty() {
            return Err(err_at(
                &top("groups"),
                None,
                "a group name is empty".into(),
                None,
            ));
        }
    }

    let file_exec = FileExecutor::new(&file, &base_dir, &top, &err_at)?;
    let d = &file.defaults;
    let mut jobs: Vec<PlannedJob> = Vec::with_capacity(file.jobs.len());
    let mut entries: Vec<Entry> = Vec::with_capacity(file.jobs.len());
    let mut raw_needs: Vec<Vec<String>> = Vec::with_capacity(file.jobs.len());
    for (spec_index, js) in file.jobs.into_iter().enumerate() {
        let m = match js {
            JobSpec::Short(line) => spec::JobMap {
                command: Some(CommandSpec::Line(line)),
                ..Default::default()
            },
            JobSpec::Full(m) => *m,
        };
        let label = m.name.clone();
        let here = jobs_path(spec_index);
        let at = |key: &'static str| -> Vec<Seg> {
            let mut v = here.clone();
            v.push(Seg::Key(key));
            v
        };

        if let Some(name) = &m.name
            && let Some(problem) = name_problem(name)
        {
            return Err(err_at(
                &at("name"),
                None,
                format!("invalid job name {name:?}: {problem}"),
                Some("use letters, digits, and `-_.:@+=,[]` in job names".to_string()),
            ));
        }

        let body = match (&m.command, &m.shell) {
            (Some(_), Some(_)) => {
                return Err(err_at(
                    &here,
                    label,
                    "a job has either `command:` or `shell:`, not both".to_string(),
                    Some("use `shell:` when you need pipes, redirections or `&&`".to_string()),
                ));
            }
            (None, None) => {
                return Err(err_at(
                    &here,
                    label,
                    "a job needs `command:` or `shell:`".to_string(),
                    None,
                ));
            }
            (Some(CommandSpec::Line(line)), None) => match shell_words::split(line) {
                Ok(words) if words.is_empty() => {
                    return Err(err_at(
                        &here,
                        label,
                        "the command is empty".to_string(),
                        None,
                    ));
                }
                Ok(words) => Body::Argv(words),
                Err(_) => {
                    return Err(err_at(
                        &here,
                        label,
                        format!("cannot split the command line `{line}`: a quote is not closed"),
                        Some(
                            "close the quote, or give the words as a list: `command: [prog, arg]`"
                                .to_string(),
                        ),
                    ));
                }
            },
            (Some(CommandSpec::Argv(words)), None) => {
                if words.is_empty() || words[0].is_empty() {
                    return Err(err_at(
                        &at("command"),
                        label,
                        "the command is empty".to_string(),
                        None,
                    ));
                }
                Body::Argv(words.clone())
            }
            (None, Some(script)) => {
                if script.trim().is_empty() {
                    return Err(err_at(
                        &at("shell"),
                        label,
                        "the shell script is empty".to_string(),
                        None,
                    ));
                }
                Body::Shell(script.clone())
            }
        };
        let has_nul = match &body {
            Body::Argv(w) => w.iter().any(|w| w.contains('\0')),
            Body::Shell(s) => s.contains('\0'),
        };
        if has_nul {
            return Err(err_at(
                &here,
                label,
                "the command contains a NUL byte".to_string(),
                None,
            ));
        }

        let stdout_spec = m.stdout.as_ref().or(d.stdout.as_ref());
        if stdout_spec == Some(&OutputSpec::Stdout) {
            return Err(err_at(
                &at("stdout"),
                label,
                "`stdout: stdout` makes no sense; `stdout` as a target is for `stderr:` (2>&1)"
                    .to_string(),
                None,
            ));
        }
        let stderr_spec = m.stderr.as_ref().or(d.stderr.as_ref());

        // Environment: global, then defaults, then the job's own.
        let mut env_map: std::collections::BTreeMap<String, String> =
            global_env.iter().cloned().collect();
        for (k, v) in d.env.iter().chain(m.env.iter()) {
            env_map.insert(k.clone(), v.0.clone());
        }
        if let Some(k) = env_map
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
            .map(|(k, _)| k.clone())
        {
            return Err(err_at(
                &at("env"),
                label,
                format!("invalid environment variable name {k:?}"),
                None,
            ));
        }

        let group = m.group.clone().or_else(|| d.group.clone());
        if let Some(g) = &group
            && !file.groups.contains_key(g)
        {
            let names: Vec<&String> = file.groups.keys().collect();
            let hint = crate::error::suggest(g, &names)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("declare it at the top: `groups: {{{g}: 1}}`")));
            return Err(err_at(
                &at("group"),
                label,
                format!("group `{g}` has no limit in `groups:`"),
                hint,
            ));
        }
        let retry = Retry {
            retries: m.retries.or(d.retries).unwrap_or(0),
            delay: m
                .retry_delay
                .or(d.retry_delay)
                .map_or(Duration::from_secs(1), |t| t.0),
            backoff: m.backoff.or(d.backoff).unwrap_or(1.0),
            max_delay: m
                .max_retry_delay
                .or(d.max_retry_delay)
                .map_or(Duration::from_secs(300), |t| t.0),
            on: m
                .retry_on
                .clone()
                .or_else(|| d.retry_on.clone())
                .unwrap_or_default(),
        };
        if !(retry.backoff.is_finite() && retry.backoff >= 1.0 && retry.backoff <= 100.0) {
            return Err(err_at(
                &at("backoff"),
                label,
                format!(
                    "backoff {} must be a factor between 1 and 100",
                    retry.backoff
                ),
                None,
            ));
        }
        if retry.retries > 1000 {
            return Err(err_at(
                &at("retries"),
                label,
                format!("{} retries is too many (at most 1000)", retry.retries),
                None,
            ));
        }
        let success_codes = m
            .success_codes
            .clone()
            .or_else(|| d.success_codes.clone())
            .unwrap_or_default();

        let executor = executor_of(&file_exec, &m, d, &at, &here, &label, &err_at)?;

        // Fan-out: the items, in chunks.
        let chunks: Option<Vec<Vec<Item>>> = match &m.for_each {
            None => {
                if m.chunk.is_some() {
                    return Err(err_at(
                        &at("chunk"),
                        label,
                        "`chunk:` needs `for_each:`".to_string(),
                        None,
                    ));
                }
                None
            }
            Some(fe) => {
                let items: Vec<Item> = match fe {
                    ForEachSpec::Items(v) => v.clone(),
                    ForEachSpec::Range { start, end, step } => {
                        let mut v = Vec::new();
                        let mut x = *start;
                        while (*step > 0 && x <= *end) || (*step < 0 && x >= *end) {
                            v.push(Item::Scalar(x.to_string()));
                            match x.checked_add(*step) {
                                Some(n) => x = n,
                                None => break,
                            }
                        }
                        v
                    }
                    ForEachSpec::File(f) => {
                        let p = base_dir.join(f);
                        let content = std::fs::read_to_string(&p).map_err(|e| {
                            err_at(
                                &at("for_each"),
                                label.clone(),
                                format!(
                                    "cannot read the items file {}: {}",
                                    p.display(),
                                    crate::text::os_text(&e)
                                ),
                                None,
                            )
                        })?;
                        content
                            .lines()
                            .filter(|l| !l.trim().is_empty())
                            .map(|l| Item::Scalar(l.to_string()))
                            .collect()
                    }
                };
                if items.is_empty() {
                    return Err(err_at(
                        &at("for_each"),
                        label,
                        "`for_each:` has no items".to_string(),
                        None,
                    ));
                }
                let n = m.chunk.unwrap_or(1);
                if n == 0 {
                    return Err(err_at(
                        &at("chunk"),
                        label,
                        "`chunk:` must be at least 1".into(),
                        None,
                    ));
                }
                if m.chunk.is_some() && items.iter().any(|i| matches!(i, Item::Map(_))) {
                    return Err(err_at(
                        &at("chunk"),
                        label,
                        "`chunk:` works on scalar items; these items are mappings".into(),
                        None,
                    ));
                }
                Some(items.chunks(n).map(<[Item]>::to_vec).collect())
            }
        };

        let base = match &m.name {
            Some(n) => n.clone(),
            None => crate::text::slug(&match (&m.command, &m.shell) {
                (Some(CommandSpec::Line(l)), _) => l.clone(),
                (_, Some(s)) => s.clone(),
                (Some(CommandSpec::Argv(w)), _) => w.join(" "),
                (None, None) => String::new(),
            }),
        };

        let first = jobs.len();
        let chunked = m.chunk.is_some();
        let groups_of_items: Vec<Option<Vec<Item>>> = match chunks {
            None => vec![None],
            Some(c) => c.into_iter().map(Some).collect(),
        };
        let fanned = m.for_each.is_some();
        // Item labels make names (`job[item]`) when they are short, safe and unique.
        let labels: Option<Vec<String>> = (fanned && !chunked).then(|| {
            groups_of_items
                .iter()
                .map(|g| match g.as_ref().and_then(|g| g.first()) {
                    Some(Item::Scalar(s)) => s.clone(),
                    _ => String::new(),
                })
                .collect()
        });
        let use_labels = labels.as_ref().is_some_and(|ls| {
            let unique: std::collections::HashSet<&String> = ls.iter().collect();
            unique.len() == ls.len()
                && ls.iter().all(|l| {
                    !l.is_empty()
                        && l.len() <= 40
                        && name_problem(l).is_none()
                        && !l.contains(['[', ']', ' '])
                })
        });
        for (k, group_items) in groups_of_items.iter().enumerate() {
            let items: &[Item] = group_items.as_deref().unwrap_or(&[]);
            let sub = Subst {
                item: if chunked { None } else { items.first() },
                items,
                index: k,
            };
            let expand_err = |msg: String| {
                let key = if matches!(body, Body::Shell(_)) {
                    "shell"
                } else {
                    "command"
                };
                err_at(&at(key), label.clone(), msg, None)
            };
            let argv = if fanned {
                match &body {
                    Body::Argv(words) => {
                        let mut out = Vec::with_capacity(words.len());
                        for w in words {
                            out.extend(expand_word(w, &sub).map_err(expand_err)?);
                        }
                        if out.is_empty() || out[0].is_empty() {
                            return Err(expand_err(
                                "the command is empty after substitution".into(),
                            ));
                        }
                        out
                    }
                    Body::Shell(script) => vec![
                        "sh".to_string(),
                        "-c".to_string(),
                        expand_text(script, &sub, true).map_err(expand_err)?,
                    ],
                }
            } else {
                match &body {
                    Body::Argv(words) => words.clone(),
                    Body::Shell(script) => vec!["sh".to_string(), "-c".to_string(), script.clone()],
                }
            };
            let plain = |t: &str| -> Result<String, SpecError> {
                if fanned {
                    expand_text(t, &sub, false).map_err(|m| err_at(&here, label.clone(), m, None))
                } else {
                    Ok(t.to_string())
                }
            };
            let plain_path = |p: &Path| -> Result<PathBuf, SpecError> {
                Ok(PathBuf::from(plain(&p.to_string_lossy())?))
            };
            let target_of = |spec: Option<&OutputSpec>| -> Result<Target, SpecError> {
                Ok(match spec {
                    Some(OutputSpec::File { path, append }) => Target::File {
                        path: plain_path(path)?,
                        append: *append,
                    },
                    other => target(other),
                })
            };
            let mut env = Vec::with_capacity(env_map.len());
            for (k, v) in &env_map {
                env.push((k.clone(), plain(v)?));
            }
            let name = if !fanned {
                base.clone()
            } else if use_labels {
                format!(
                    "{base}[{}]",
                    labels.as_ref().expect("labels exist when used")[k]
                )
            } else {
                format!("{base}[{k}]")
            };
            jobs.push(PlannedJob {
                index: jobs.len(),
                name,
                argv,
                cwd: match m.cwd.as_ref().or(d.cwd.as_ref()) {
                    Some(c) => Some(plain_path(c)?),
                    None => None,
                },
                env,
                env_clear: !file.inherit_env,
                stdin: match m.stdin.as_ref().or(d.stdin.as_ref()) {
                    None | Some(StdinSpec::Null) => Input::Null,
                    Some(StdinSpec::Text(t)) => Input::Text(plain(t)?),
                    Some(StdinSpec::File(p)) => Input::File(plain_path(p)?),
                },
                stdout: target_of(stdout_spec)?,
                stderr: target_of(stderr_spec)?,
                timeout: m.timeout.or(d.timeout).map(|t| t.0),
                kill_after: m
                    .kill_after
                    .or(d.kill_after)
                    .map_or(DEFAULT_KILL_AFTER, |t| t.0),
                needs: Vec::new(),
                group: group.clone(),
                retry: retry.clone(),
                success_codes: success_codes.clone(),
                entry: spec_index,
                background: m.background,
                def_hash: String::new(),
                max_output: m.max_output.or(d.max_output).map(|s| s.0.max(2)),
                executor: executor.clone(),
            });
        }
        if jobs.len() > spec::MAX_ITEMS {
            return Err(err_at(
                &here,
                label,
                format!("the job file expands to more than {} jobs", spec::MAX_ITEMS),
                None,
            ));
        }
        entries.push(Entry {
            base,
            explicit: m.name.is_some(),
            fanned,
            jobs: first..jobs.len(),
        });
        raw_needs.push(m.needs.clone());
    }

    // Explicit names must be unique; generated ones are made unique around them.
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if !e.explicit {
            continue;
        }
        if let Some(&prev) = first_seen.get(e.base.as_str()) {
            let mut here = jobs_path(i);
            here.push(Seg::Key("name"));
            let prev_line = spec::locate(text, &jobs_path(prev))
                .map(|(l, _)| format!(" (first defined on line {l})"))
                .unwrap_or_default();
            return Err(err_at(
                &here,
                None,
                format!("duplicate job name `{}`{prev_line}", e.base),
                Some("job names must be unique; rename one of them".to_string()),
            ));
        }
        first_seen.insert(&e.base, i);
    }
    make_unique_entries(&mut entries, &mut jobs);

    // needs: names → job indices (a fanned-out job stands for all its items).
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_name.insert(e.base.as_str(), i);
    }
    let mut job_by_name: HashMap<&str, usize> = HashMap::new();
    for j in &jobs {
        job_by_name.insert(j.name.as_str(), j.index);
    }
    let mut entry_edges: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut job_needs: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (i, needs) in raw_needs.iter().enumerate() {
        for (k, need) in needs.iter().enumerate() {
            let mut loc = jobs_path(i);
            loc.push(Seg::Key("needs"));
            loc.push(Seg::Index(k));
            let resolved: Option<(usize, Vec<usize>)> = if let Some(&e) = by_name.get(need.as_str())
            {
                Some((e, entries[e].jobs.clone().collect()))
            } else if let Some(&j) = job_by_name.get(need.as_str()) {
                Some((jobs[j].entry, vec![j]))
            } else {
                // `job[3]`: the fourth item of a fanned-out job, by position.
                need.strip_suffix(']')
                    .and_then(|n| n.rsplit_once('['))
                    .and_then(|(b, idx)| Some((*by_name.get(b)?, idx.parse::<usize>().ok()?)))
                    .filter(|(e, idx)| entries[*e].fanned && *idx < entries[*e].jobs.len())
                    .map(|(e, idx)| (e, vec![entries[e].jobs.start + idx]))
            };
            let Some((target_entry, idxs)) = resolved else {
                let names: Vec<&str> = by_name.keys().copied().collect();
                let hint =
                    crate::error::suggest(need, &names).map(|s| format!("did you mean `{s}`?"));
                return Err(err_at(
                    &loc,
                    Some(entries[i].base.clone()),
                    format!("`needs` names an unknown job `{need}`"),
                    hint,
                ));
            };
            if idxs.iter().any(|&j| jobs[j].background) && !file.wait {
                return Err(err_at(
                    &loc,
                    Some(entries[i].base.clone()),
                    format!("`{need}` runs in the background, and the run does not wait for it"),
                    Some("add `wait: true` at the top of the job file, or drop this need".into()),
                ));
            }
            entry_edges[i].push(target_entry);
            job_needs[i].extend(idxs);
        }
    }
    if let Some(cycle) = find_cycle(&entry_edges) {
        let names: Vec<&str> = cycle.iter().map(|&e| entries[e].base.as_str()).collect();
        let mut loc = jobs_path(cycle[0]);
        loc.push(Seg::Key("needs"));
        return Err(err_at(
            &loc,
            None,
            format!(
                "the jobs depend on each other in a cycle: {}",
                names.join(" → ")
            ),
            Some("remove one of these `needs` so the jobs can run in some order".into()),
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        let mut needs = job_needs[i].clone();
        needs.sort_unstable();
        needs.dedup();
        for j in e.jobs.clone() {
            jobs[j].needs = needs.clone();
        }
    }

    for j in &mut jobs {
        j.def_hash = definition_hash(j);
    }
    let secrets = secret_values(&file.secret_env, &jobs, file.inherit_env);
    Ok(Plan {
        source: Some(path.to_path_buf()),
        source_hash: crate::text::sha256_hex(text.as_bytes()),
        concurrency: file.concurrency,
        jobs,
        groups: file.groups.clone(),
        on_failure: file.on_failure,
        secret_env: file.secret_env.clone(),
        secrets,
        wait: file.wait,
        retention: file.retention.map(|r| Retention {
            max_runs: r.runs,
            max_age: r.age.map(|a| a.0),
            max_bytes: r.bytes.map(|b| b.0),
        }),
    })
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
    let bytes = serde_json::to_vec(&key).expect("a job definition serializes");
    let mut hex = crate::text::hex(&Sha256::digest(&bytes));
    hex.truncate(16);
    hex
}

/// The file-wide executor settings, checked once.
struct FileExecutor {
    executor: spec::ExecutorSpec,
    slurm: spec::SlurmSpec,
    hosts: Option<Vec<String>>,
    ssh_config: Option<PathBuf>,
    ssh_options: Vec<String>,
    ssh_slots: usize,
    retry_elsewhere: bool,
}

type ErrAt<'a> = dyn Fn(&[Seg], Option<String>, String, Option<String>) -> SpecError + 'a;

impl FileExecutor {
    fn new(
        file: &JobFile,
        base_dir: &Path,
        top: &dyn Fn(&'static str) -> Vec<Seg>,
        err_at: &ErrAt<'_>,
    ) -> Result<FileExecutor, SpecError> {
        if let Some(hosts) = &file.hosts {
            check_hosts(hosts, &top("hosts"), None, err_at)?;
        }
        let ssh = file.ssh.clone().unwrap_or_default();
        let ssh_config = match &ssh.config {
            Some(c) => {
                let p = base_dir.join(c);
                if !p.is_file() {
                    let mut at = top("ssh");
                    at.push(Seg::Key("config"));
                    return Err(err_at(
                        &at,
                        None,
                        format!("the ssh config file {} does not exist", p.display()),
                        Some("give a path relative to the job file, or drop `config:`".into()),
                    ));
                }
                Some(std::path::absolute(&p).unwrap_or(p))
            }
            None => None,
        };
        for (i, o) in ssh.options.iter().enumerate() {
            if !o.contains('=') || o.starts_with('-') {
                let mut at = top("ssh");
                at.push(Seg::Key("options"));
                at.push(Seg::Index(i));
                return Err(err_at(
                    &at,
                    None,
                    format!("ssh option `{o}` is not of the form `Name=value`"),
                    Some("write options as for `ssh -o`, e.g. `ConnectTimeout=5`".into()),
                ));
            }
        }
        Ok(FileExecutor {
            executor: file.executor.unwrap_or(spec::ExecutorSpec::Local),
            slurm: file.slurm.clone().unwrap_or_default(),
            hosts: file.hosts.clone(),
            ssh_config,
            ssh_options: ssh.options,
            ssh_slots: ssh.slots.map_or(DEFAULT_SSH_SLOTS, |l| l.0),
            retry_elsewhere: file.on_host_failure == spec::HostFailureSpec::RetryElsewhere,
        })
    }
}

/// `user@host:port` or a name from the ssh config: one word that ssh will not take for an option.
fn check_hosts(
    hosts: &[String],
    at: &[Seg],
    job: Option<String>,
    err_at: &ErrAt<'_>,
) -> Result<(), SpecError> {
    if hosts.is_empty() {
        return Err(err_at(
            at,
            job,
            "`hosts:` is empty".into(),
            Some("list at least one host, e.g. `hosts: [node1, user@node2:2222]`".into()),
        ));
    }
    for (i, h) in hosts.iter().enumerate() {
        let bad_port = h
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().map_or(true, |p| p == 0));
        if h.is_empty() || h.starts_with('-') || h.contains(char::is_whitespace) || bad_port {
            let mut here = at.to_vec();
            here.push(Seg::Index(i));
            return Err(err_at(
                &here,
                job,
                format!("invalid ssh host `{h}`"),
                Some("write a host as a name from your ssh config or as `user@host:port`".into()),
            ));
        }
    }
    Ok(())
}

/// The executor of one job: its own `executor:` (else the file's) with the settings merged.
fn executor_of(
    fe: &FileExecutor,
    m: &spec::JobMap,
    defaults: &spec::Defaults,
    at: &dyn Fn(&'static str) -> Vec<Seg>,
    here: &[Seg],
    label: &Option<String>,
    err_at: &ErrAt<'_>,
) -> Result<Executor, SpecError> {
    use spec::ExecutorSpec as E;
    let kind = m.executor.unwrap_or(fe.executor);
    // Where to point when the executor itself is the problem.
    let exec_at = if m.executor.is_some() {
        at("executor")
    } else if fe.executor != E::Local {
        vec![Seg::Key("executor")]
    } else {
        here.to_vec()
    };
    if m.slurm.is_some() && kind != E::Slurm {
        return Err(err_at(
            &at("slurm"),
            label.clone(),
            "`slurm:` settings need the job to run with `executor: slurm`".into(),
            Some("add `executor: slurm` to the job, or drop `slurm:`".into()),
        ));
    }
    if m.hosts.is_some() && kind != E::Ssh {
        return Err(err_at(
            &at("hosts"),
            label.clone(),
            "`hosts:` needs the job to run with `executor: ssh`".into(),
            Some("add `executor: ssh` to the job, or drop `hosts:`".into()),
        ));
    }
    if kind == E::Ssh && m.background {
        return Err(err_at(
            &at("background"),
            label.clone(),
            "`background: true` does not work with `executor: ssh`".into(),
            Some("drop `background: true`, or run this job with `executor: local` or `slurm` (sbatch)".into()),
        ));
    }
    match kind {
        E::Local => Ok(Executor::Local),
        E::Slurm => {
            if !matches!(
                m.stdin.as_ref().or(defaults.stdin.as_ref()),
                None | Some(StdinSpec::Null)
            ) {
                return Err(err_at(
                    &exec_at,
                    label.clone(),
                    "Slurm jobs get no standard input (`srun --input=none`), so `stdin:` cannot be used".into(),
                    Some("have the job read a file on the cluster instead".into()),
                ));
            }
            let own = m.slurm.clone().unwrap_or_default();
            let base = &fe.slurm;
            let word = |w: Option<&spec::Word>| w.map(|w| w.0.clone());
            let partition = own.partition.or_else(|| base.partition.clone());
            if let Some(p) = &partition
                && (p.is_empty() || p.starts_with('-') || p.contains(char::is_whitespace))
            {
                let at = if m.slurm.as_ref().is_some_and(|s| s.partition.is_some()) {
                    at("slurm")
                } else {
                    vec![Seg::Key("slurm")]
                };
                return Err(err_at(
                    &at,
                    label.clone(),
                    format!("invalid Slurm partition `{p}`"),
                    None,
                ));
            }
            Ok(Executor::Slurm(SlurmOptions {
                partition,
                time: word(own.time.as_ref()).or_else(|| word(base.time.as_ref())),
                cpus: own.cpus.or(base.cpus).map(|c| c.0),
                mem: word(own.mem.as_ref()).or_else(|| word(base.mem.as_ref())),
                extra_args: own
                    .extra_args
                    .or_else(|| base.extra_args.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| w.0)
                    .collect(),
            }))
        }
        E::Ssh => {
            let hosts = match (&m.hosts, &fe.hosts) {
                (Some(h), _) => {
                    check_hosts(h, &at("hosts"), label.clone(), err_at)?;
                    h.clone()
                }
                (None, Some(h)) => h.clone(),
                (None, None) => {
                    return Err(err_at(
                        &exec_at,
                        label.clone(),
                        "`executor: ssh` needs `hosts:` to run on".into(),
                        Some(
                            "add `hosts: [node1, user@node2:2222]` at the top or to the job".into(),
                        ),
                    ));
                }
            };
            Ok(Executor::Ssh(SshOptions {
                hosts,
                config: fe.ssh_config.clone(),
                options: fe.ssh_options.clone(),
                slots: fe.ssh_slots,
                retry_elsewhere: fe.retry_elsewhere,
            }))
        }
    }
}

/// The values of the secret variables, as each job will see them, longest first (so that a
/// secret containing another is redacted whole).
fn secret_values(keys: &[String], jobs: &[PlannedJob], inherit: bool) -> Vec<String> {
    let mut vals: Vec<String> = Vec::new();
    for k in keys {
        for j in jobs {
            if let Some((_, v)) = j.env.iter().find(|(key, _)| key == k) {
                vals.push(v.clone());
            }
        }
        if inherit && let Ok(v) = std::env::var(k) {
            vals.push(v);
        }
    }
    vals.retain(|v| !v.is_empty());
    vals.sort_by_key(|v| std::cmp::Reverse(v.len()));
    vals.dedup();
    vals
}

/// `KEY=VALUE`, `export KEY=VALUE`, quotes around the value, comments and blank lines.
fn parse_env_line(line: &str) -> Result<Option<(String, String)>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
    let Some((k, v)) = t.split_once('=') else {
        return Err(format!("expected KEY=VALUE, found `{t}`"));
    };
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid variable name `{k}`"));
    }
    let v = v.trim();
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Ok(Some((k.to_string(), v.to_string())))
}

/// A cycle in the entry graph, as the entries along it, first repeated at the end.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the stack, 2 done
    let mut state = vec![0u8; edges.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..edges.len() {
        if state[start] != 0 {
            continue;
        }
        stack.push((start, 0));
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < edges[node].len() {
                let to = edges[node][*next];
                *next += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == to).expect("on stack");
                        let mut cycle: Vec<usize> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        cycle.push(to);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

fn item_field<'a>(item: Option<&'a Item>, field: Option<&str>) -> Result<&'a str, String> {
    match (item, field) {
        (None, _) => Err(
            "`{item}` is only available in `for_each` jobs without `chunk`; use `{items}`".into(),
        ),
        (Some(Item::Scalar(s)), None) => Ok(s),
        (Some(Item::Scalar(_)), Some(f)) => {
            Err(format!("`{{item.{f}}}`: the items are not mappings"))
        }
        (Some(Item::Map(_)), None) => Err("the items are mappings: use `{item.FIELD}`".into()),
        (Some(Item::Map(m)), Some(f)) => m.get(f).map(String::as_str).ok_or_else(|| {
            let keys: Vec<&String> = m.keys().collect();
            match crate::error::suggest(f, &keys) {
                Some(s) => format!("an item has no field `{f}`; did you mean `{s}`?"),
                None => format!("an item has no field `{f}`"),
            }
        }),
    }
}

fn item_scalars(items: &[Item]) -> Vec<&str> {
    items
        .iter()
        .map(|i| match i {
            Item::Scalar(s) => s.as_str(),
            Item::Map(_) => "",
        })
        .collect()
}

/// Replaces `{item}`, `{item.FIELD}`, `{index}` and `{items}` in text; with `quote`, each
/// value is shell-quoted (for `shell:` jobs). `{slot}` is left for run time; other braces are
/// left alone (awk and friends use them).
fn expand_text(text: &str, sub: &Subst<'_>, quote: bool) -> Result<String, String> {
    let q = |s: &str| -> String {
        if quote {
            shell_words::quote(s).into_owned()
        } else {
            s.to_string()
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let token = &after[..close];
        let value = match token {
            "item" => Some(q(item_field(sub.item, None)?)),
            "index" => Some(sub.index.to_string()),
            "items" => Some(
                item_scalars(sub.items)
                    .into_iter()
                    .map(q)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            t => match t.strip_prefix("item.") {
                Some(f) => Some(q(item_field(sub.item, Some(f))?)),
                None => None,
            },
        };
        match value {
            Some(v) => out.push_str(&v),
            None => {
                out.push('{');
                out.push_str(token);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One argv word expanded: `{items}` alone becomes one word per item; elsewhere values are
/// substituted inside the word, which stays one word whatever the value holds.
fn expand_word(word: &str, sub: &Subst<'_>) -> Result<Vec<String>, String> {
    if word == "{items}" {
        return Ok(item_scalars(sub.items)
            .into_iter()
            .map(str::to_string)
            .collect());
    }
    Ok(vec![expand_text(word, sub, false)?])
}

/// Gives generated base names that collide a `-2`, `-3`, … suffix in job-file order, and renames
/// their jobs accordingly.
fn make_unique_entries(entries: &mut [Entry], jobs: &mut [PlannedJob]) {
    let mut taken: std::collections::HashSet<String> = entries
        .iter()
        .filter(|e| e.explicit)
        .map(|e| e.base.clone())
        .collect();
    // The next suffix to try per base name, so that 10,000 identical commands cost 10,000
    // steps, not 50 million.
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    for e in entries.iter_mut() {
        if e.explicit || taken.insert(e.base.clone()) {
            continue;
        }
        let n = next_suffix.entry(e.base.clone()).or_insert(2);
        let new = loop {
            let candidate = format!("{}-{n}", e.base);
            *n += 1;
            if taken.insert(candidate.clone()) {
                break candidate;
            }
        };
        for j in &mut jobs[e.jobs.clone()] {
            j.name = if e.fanned {
                format!("{new}{}", &j.name[e.base.len()..])
            } else {
                new.clone()
            };
        }
        e.base = new;
    }
}

fn target(spec: Option<&OutputSpec>) -> Target {
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

/// Why a user-given job name cannot be used, if it cannot.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character (newline, tab, NUL, ...)")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names")
    } else if name.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if name == "last" {
        Some("`last` is reserved (it means the latest run)")
    } else {
        None
    }
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
