//! One entry of `jobs:` turned into its jobs: the command, outputs, environment, group, retry
//! and executor settings checked and merged with `defaults:`, then one job per group of items.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::executor::{FileExecutor, executor_of};
use super::expand::{Subst, chunks_of};
use super::instance::instance;
use super::lazy;
use super::locator::{EntryAt, Locator, Place};
use super::names::{self, Entry};
use super::{DEFAULT_KILL_AFTER, PlannedJob, Retry};
use crate::error::SpecError;
use crate::spec::{
    self, CommandSpec, Defaults, Item, JobFile, JobMap, JobSpec, OutputSpec, StdinSpec, TimeoutSpec,
};

/// What every entry is planned against: the file's settings, checked once.
pub(super) struct FileCx<'a> {
    /// The job file; its `jobs:` have been taken out to be planned one by one.
    pub(super) file: &'a JobFile,
    pub(super) loc: &'a Locator<'a>,
    /// Where relative paths in the file start (`env_file:`, items files, `ssh.config`).
    pub(super) base_dir: &'a Path,
    pub(super) global_env: Vec<(String, String)>,
    pub(super) exec: FileExecutor,
    /// The index of the last entry of `jobs:` (only it may read its items as a stream).
    pub(super) last: usize,
}

/// A job entry's (or a hook's) command before items are substituted.
#[derive(Debug)]
pub(super) enum Body {
    Argv(Vec<String>),
    Shell(String),
}

impl Body {
    /// The key the command was given under, where substitution errors point.
    pub(super) fn key(&self) -> &'static str {
        match self {
            Body::Shell(_) => "shell",
            Body::Argv(_) => "command",
        }
    }

    /// The words to run: the command's, or `sh -c SCRIPT`.
    pub(super) fn into_argv(self) -> Vec<String> {
        match self {
            Body::Argv(words) => words,
            Body::Shell(script) => vec!["sh".to_string(), "-c".to_string(), script],
        }
    }

    /// The words as written, placeholders left in.
    pub(super) fn argv_text(&self) -> Vec<String> {
        match self {
            Body::Argv(words) => words.clone(),
            Body::Shell(script) => vec!["sh".to_string(), "-c".to_string(), script.clone()],
        }
    }

    fn has_nul(&self) -> bool {
        match self {
            Body::Argv(w) => w.iter().any(|w| w.contains('\0')),
            Body::Shell(s) => s.contains('\0'),
        }
    }
}

/// Everything an entry's jobs share, checked, before items are substituted.
#[derive(Debug)]
pub(super) struct Template {
    pub(super) body: Body,
    pub(super) env: BTreeMap<String, String>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) stdin: Option<StdinSpec>,
    pub(super) stdout: Option<OutputSpec>,
    pub(super) stderr: Option<OutputSpec>,
    /// The settings items do not change, as a job to copy.
    pub(super) job: PlannedJob,
}

/// Turns entry `index` of `jobs:` into its jobs, appended to `jobs`.
pub(super) fn plan_entry(
    js: JobSpec,
    index: usize,
    cx: &FileCx<'_>,
    jobs: &mut Vec<PlannedJob>,
) -> Result<Entry, SpecError> {
    let m = match js {
        JobSpec::Short(line) => JobMap {
            command: Some(CommandSpec::Line(line)),
            ..Default::default()
        },
        JobSpec::Full(m) => *m,
    };
    names::check_name(&m, index, cx.loc)?;
    let ex = EntryAt {
        loc: cx.loc,
        index,
        label: m.name.clone(),
    };
    let template = template(&m, cx, &ex)?;
    let base = names::base_name(&m);
    let first = jobs.len();
    if let Some((count, source)) = lazy::source_of(&m, cx.base_dir, index == cx.last, &ex)? {
        // The template, checked on a first item, stands for all the jobs.
        let probe = Item::Scalar(lazy::probe_item(&source));
        let sub = Subst {
            item: Some(&probe),
            items: std::slice::from_ref(&probe),
            index: 0,
        };
        let job = instance(&template, Some(&sub), base.clone(), first, &ex)?;
        jobs.push(job);
        let pending = lazy::Pending {
            count,
            source,
            template,
        };
        return Ok(Entry {
            base,
            explicit: m.name.is_some(),
            fanned: true,
            jobs: first..first + 1,
            needs: m.needs,
            lazy: Some(Box::new(pending)),
        });
    }
    let chunks = chunks_of(&m, cx.base_dir, &ex)?;
    push_jobs(&template, chunks, m.chunk.is_some(), &base, jobs, &ex)?;
    if jobs.len() > spec::MAX_ITEMS {
        return Err(ex.err_here(
            format!("the job file expands to more than {} jobs", spec::MAX_ITEMS),
            None,
        ));
    }
    Ok(Entry {
        base,
        explicit: m.name.is_some(),
        fanned: m.for_each.is_some(),
        jobs: first..jobs.len(),
        needs: m.needs,
        lazy: None,
    })
}

/// The entry's settings merged with `defaults:` and checked, in the order errors are reported.
fn template(m: &JobMap, cx: &FileCx<'_>, ex: &EntryAt<'_>) -> Result<Template, SpecError> {
    let d = &cx.file.defaults;
    let body = body_of(m, ex)?;
    let stdout = m.stdout.as_ref().or(d.stdout.as_ref()).cloned();
    if stdout == Some(OutputSpec::Stdout) {
        return Err(ex.err_key(
            "stdout",
            "`stdout: stdout` makes no sense; `stdout` as a target is for `stderr:` (2>&1)"
                .to_string(),
            None,
        ));
    }
    let stderr = m.stderr.as_ref().or(d.stderr.as_ref()).cloned();
    let env = super::env::job_env(&cx.global_env, d, m, ex)?;
    let group = group_of(m, d, &cx.file.groups, ex)?;
    let retry = retry_of(m, d, ex)?;
    let success_codes = m
        .success_codes
        .clone()
        .or_else(|| d.success_codes.clone())
        .unwrap_or_default();
    if let Some(c) = success_codes.iter().find(|c| !(0..=255).contains(*c)) {
        return Err(ex.err_key(
            "success_codes",
            format!("exit code {c} cannot happen: exit codes are 0 to 255"),
            Some("a job killed by a signal has no exit code; list codes from 0 to 255".into()),
        ));
    }
    let max_output = m.max_output.or(d.max_output).map(|s| s.0);
    if max_output.is_some_and(|n| n < 2) {
        return Err(ex.err_key(
            "max_output",
            "`max_output` keeps the head and the tail of a stream, so it must be at least 2 bytes"
                .into(),
            Some("to keep nothing, send the stream to `null`".into()),
        ));
    }
    let executor = executor_of(&cx.exec, m, d, ex)?;
    let timeout = m.timeout.or(d.timeout);
    let job = PlannedJob {
        env_clear: !cx.file.inherit_env,
        timeout: match timeout {
            Some(TimeoutSpec::After(t)) => Some(t),
            _ => None,
        },
        timeout_auto: timeout == Some(TimeoutSpec::Auto),
        kill_after: m
            .kill_after
            .or(d.kill_after)
            .map_or(DEFAULT_KILL_AFTER, |t| t.0),
        group,
        retry,
        success_codes,
        entry: ex.index,
        background: m.background,
        max_output,
        executor,
        ..PlannedJob::new(0, String::new(), Vec::new())
    };
    Ok(Template {
        body,
        env,
        cwd: m.cwd.as_ref().or(d.cwd.as_ref()).cloned(),
        stdin: m.stdin.as_ref().or(d.stdin.as_ref()).cloned(),
        stdout,
        stderr,
        job,
    })
}

/// `command:` (a line split into words, or the words) or `shell:`: exactly one, not empty.
fn body_of(m: &JobMap, ex: &EntryAt<'_>) -> Result<Body, SpecError> {
    body_parts(m.command.as_ref(), m.shell.as_ref(), ex)
}

/// A job's or a hook's command from its `command:` and `shell:` keys.
pub(super) fn body_parts(
    command: Option<&CommandSpec>,
    shell: Option<&String>,
    at: &dyn Place,
) -> Result<Body, SpecError> {
    let what = at.what();
    let body = match (command, shell) {
        (Some(_), Some(_)) => {
            return Err(at.err_here(
                format!("a {what} has either `command:` or `shell:`, not both"),
                Some("use `shell:` when you need pipes, redirections or `&&`".to_string()),
            ));
        }
        (None, None) => {
            return Err(at.err_here(format!("a {what} needs `command:` or `shell:`"), None));
        }
        (Some(CommandSpec::Line(line)), None) => Body::Argv(split_line(line, at)?),
        (Some(CommandSpec::Argv(words)), None) => {
            if words.is_empty() || words[0].is_empty() {
                return Err(at.err_key("command", "the command is empty".to_string(), None));
            }
            Body::Argv(words.clone())
        }
        (None, Some(script)) => {
            if script.trim().is_empty() {
                return Err(at.err_key("shell", "the shell script is empty".to_string(), None));
            }
            Body::Shell(script.clone())
        }
    };
    if body.has_nul() {
        return Err(at.err_here("the command contains a NUL byte".to_string(), None));
    }
    Ok(body)
}

/// A command line split into words as a shell would, without running one.
fn split_line(line: &str, at: &dyn Place) -> Result<Vec<String>, SpecError> {
    match shell_words::split(line) {
        Ok(words) if words.is_empty() => Err(at.err_here("the command is empty".to_string(), None)),
        Ok(words) => Ok(words),
        Err(_) => Err(at.err_key_or_here(
            "command",
            format!("cannot split the command line `{line}`: a quote is not closed"),
            Some(
                "close the quote, or give the words as a list: `command: [prog, arg]`".to_string(),
            ),
        )),
    }
}

/// The job's group (else the default one), which must have a limit in `groups:`.
fn group_of(
    m: &JobMap,
    d: &Defaults,
    groups: &BTreeMap<String, usize>,
    ex: &EntryAt<'_>,
) -> Result<Option<String>, SpecError> {
    let group = m.group.clone().or_else(|| d.group.clone());
    if let Some(g) = &group
        && !groups.contains_key(g)
    {
        let names: Vec<&String> = groups.keys().collect();
        let hint = crate::error::suggest(g, &names)
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| Some(format!("declare it at the top: `groups: {{{g}: 1}}`")));
        return Err(ex.err_key(
            "group",
            format!("group `{g}` has no limit in `groups:`"),
            hint,
        ));
    }
    Ok(group)
}

/// The retry settings, key by key from the job or `defaults:`, within bounds.
fn retry_of(m: &JobMap, d: &Defaults, ex: &EntryAt<'_>) -> Result<Retry, SpecError> {
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
        return Err(ex.err_key(
            "backoff",
            format!(
                "backoff {} must be a factor between 1 and 100",
                retry.backoff
            ),
            None,
        ));
    }
    if retry.retries > 1000 {
        return Err(ex.err_key(
            "retries",
            format!("{} retries is too many (at most 1000)", retry.retries),
            None,
        ));
    }
    Ok(retry)
}

/// The entry's jobs, appended to `jobs`: one, or one per group of items for `for_each:`.
fn push_jobs(
    t: &Template,
    chunks: Option<Vec<Vec<Item>>>,
    chunked: bool,
    base: &str,
    jobs: &mut Vec<PlannedJob>,
    ex: &EntryAt<'_>,
) -> Result<(), SpecError> {
    let Some(groups) = chunks else {
        let job = instance(t, None, base.to_string(), jobs.len(), ex)?;
        jobs.push(job);
        return Ok(());
    };
    let names = names::item_names(base, &groups, chunked);
    for (k, (items, name)) in groups.iter().zip(names).enumerate() {
        let sub = Subst {
            item: if chunked { None } else { items.first() },
            items,
            index: k,
        };
        let job = instance(t, Some(&sub), name, jobs.len(), ex)?;
        jobs.push(job);
    }
    Ok(())
}
