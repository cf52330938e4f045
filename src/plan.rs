//! A `JobFile` turned into a `Plan`: defaults merged, command lines split into argv, names made
//! unique, every job valid. Nothing after this point re-validates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::SpecError;
use crate::spec::{self, CommandSpec, JobFile, JobSpec, OutputSpec, Seg, StdinSpec};

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
}

#[derive(Debug, Clone, PartialEq)]
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
}

/// Standard input of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Null,
    Text(String),
    File(PathBuf),
}

/// Where a stream of a job goes; turned into `Stdio` in one place (`exec::process`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
                PlannedJob::new(index, slug(&argv.join(" ")), argv)
            })
            .collect();
        let generated = vec![false; jobs.len()];
        make_unique(&mut jobs, &generated);
        Plan {
            source: None,
            source_hash: String::new(),
            concurrency: None,
            jobs,
        }
    }

    pub fn job(&self, name: &str) -> Option<&PlannedJob> {
        self.jobs.iter().find(|j| j.name == name)
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
        }
    }
}

fn build(path: &Path, text: &str, file: JobFile) -> Result<Plan, SpecError> {
    let jobs_path = |i: usize| -> Vec<Seg> {
        if file.list_form {
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

    if file.jobs.is_empty() {
        return Err(SpecError::plain(
            path,
            "has no jobs; list at least one under `jobs:`".to_string(),
        ));
    }

    let d = &file.defaults;
    let mut jobs = Vec::with_capacity(file.jobs.len());
    let mut explicit = Vec::with_capacity(file.jobs.len());
    for (index, js) in file.jobs.into_iter().enumerate() {
        let m = match js {
            JobSpec::Short(line) => spec::JobMap {
                command: Some(CommandSpec::Line(line)),
                ..Default::default()
            },
            JobSpec::Full(m) => *m,
        };
        let label = m.name.clone();
        let mut here = jobs_path(index);

        if let Some(name) = &m.name
            && let Some(problem) = name_problem(name)
        {
            here.push(Seg::Key("name"));
            return Err(err_at(
                &here,
                None,
                format!("invalid job name {name:?}: {problem}"),
                Some("use letters, digits, and `-_.:@+=,[]` in job names".to_string()),
            ));
        }

        let argv = match (&m.command, &m.shell) {
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
                Ok(words) => words,
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
                    here.push(Seg::Key("command"));
                    return Err(err_at(
                        &here,
                        label,
                        "the command is empty".to_string(),
                        None,
                    ));
                }
                words.clone()
            }
            (None, Some(script)) => {
                if script.trim().is_empty() {
                    here.push(Seg::Key("shell"));
                    return Err(err_at(
                        &here,
                        label,
                        "the shell script is empty".to_string(),
                        None,
                    ));
                }
                vec!["sh".to_string(), "-c".to_string(), script.clone()]
            }
        };
        if argv.iter().any(|w| w.contains('\0')) {
            return Err(err_at(
                &here,
                label,
                "the command contains a NUL byte".to_string(),
                None,
            ));
        }

        let stdout = match m.stdout.as_ref().or(d.stdout.as_ref()) {
            Some(OutputSpec::Stdout) => {
                here.push(Seg::Key("stdout"));
                return Err(err_at(
                    &here,
                    label,
                    "`stdout: stdout` makes no sense; `stdout` as a target is for `stderr:` (2>&1)"
                        .to_string(),
                    None,
                ));
            }
            other => target(other),
        };
        let stderr = target(m.stderr.as_ref().or(d.stderr.as_ref()));

        let mut env: Vec<(String, String)> = d
            .env
            .iter()
            .filter(|(k, _)| !m.env.contains_key(*k))
            .chain(m.env.iter())
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        env.sort();
        if let Some((k, _)) = env
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        {
            here.push(Seg::Key("env"));
            return Err(err_at(
                &here,
                label,
                format!("invalid environment variable name {k:?}"),
                None,
            ));
        }

        let stdin = match m.stdin.as_ref().or(d.stdin.as_ref()) {
            None | Some(StdinSpec::Null) => Input::Null,
            Some(StdinSpec::Text(t)) => Input::Text(t.clone()),
            Some(StdinSpec::File(p)) => Input::File(p.clone()),
        };

        let name = match m.name {
            Some(n) => n,
            None => slug(&match (&m.command, &m.shell) {
                (Some(CommandSpec::Line(l)), _) => l.clone(),
                (_, Some(s)) => s.clone(),
                _ => argv.join(" "),
            }),
        };
        explicit.push(label.is_some());
        jobs.push(PlannedJob {
            index,
            name,
            argv,
            cwd: m.cwd.or_else(|| d.cwd.clone()),
            env,
            stdin,
            stdout,
            stderr,
            timeout: m.timeout.or(d.timeout).map(|t| t.0),
            kill_after: m
                .kill_after
                .or(d.kill_after)
                .map_or(DEFAULT_KILL_AFTER, |t| t.0),
        });
    }

    // Explicit names must be unique; generated ones are made unique around them.
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if !explicit[i] {
            continue;
        }
        if let Some(&prev) = first_seen.get(j.name.as_str()) {
            let mut here = jobs_path(i);
            here.push(Seg::Key("name"));
            let prev_line = spec::locate(text, &jobs_path(prev))
                .map(|(l, _)| format!(" (first defined on line {l})"))
                .unwrap_or_default();
            return Err(err_at(
                &here,
                None,
                format!("duplicate job name `{}`{prev_line}", j.name),
                Some("job names must be unique; rename one of them".to_string()),
            ));
        }
        first_seen.insert(&j.name, i);
    }
    make_unique(&mut jobs, &explicit);

    Ok(Plan {
        source: Some(path.to_path_buf()),
        source_hash: sha256_hex(text.as_bytes()),
        concurrency: file.concurrency,
        jobs,
    })
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

/// A stable name from a command line: `df -h /home` → `df-h-home`.
pub fn slug(command: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in command.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_matches('.').to_string();
    if out.is_empty() || out == "last" {
        "job".to_string()
    } else {
        out
    }
}

/// Gives generated names that collide (with each other or an explicit name) a `-2`, `-3`, … suffix
/// in job-file order, so they stay stable while the file does.
fn make_unique(jobs: &mut [PlannedJob], explicit: &[bool]) {
    let mut taken: std::collections::HashSet<String> = jobs
        .iter()
        .zip(explicit)
        .filter(|(_, e)| **e)
        .map(|(j, _)| j.name.clone())
        .collect();
    for (j, e) in jobs.iter_mut().zip(explicit) {
        if *e {
            continue;
        }
        if taken.insert(j.name.clone()) {
            continue;
        }
        let mut n = 2;
        loop {
            let candidate = format!("{}-{n}", j.name);
            if taken.insert(candidate.clone()) {
                j.name = candidate;
                break;
            }
            n += 1;
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
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
