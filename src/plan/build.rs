//! The top of planning: a parsed job file taken through each step to a `Plan`.

use std::path::{Path, PathBuf};

use super::entry::{FileCx, plan_entry};
use super::env::{global_env, secret_values};
use super::executor::FileExecutor;
use super::locator::Locator;
use super::names::{self, Entry, make_unique_entries};
use super::{Plan, PlannedJob, Retention, definition_hash, graph, hooks};
use crate::error::SpecError;
use crate::spec::{HooksSpec, JobFile, JobSpec};

/// Checks and merges everything in `file`; `path` and `text` are where errors point.
pub(super) fn build(path: &Path, text: &str, mut file: JobFile) -> Result<Plan, SpecError> {
    let loc = Locator::new(path, text, file.list_form);
    if file.jobs.is_empty() {
        return Err(SpecError::plain(
            path,
            "has no jobs; list at least one under `jobs:`".to_string(),
        ));
    }
    let base_dir = base_dir_of(path);
    let global_env = global_env(&file, &base_dir, &loc)?;
    check_groups(&file, &loc)?;
    let exec = FileExecutor::new(&file, &base_dir, &loc)?;
    let specs = std::mem::take(&mut file.jobs);
    let last = specs.len() - 1;
    let hook_specs: Vec<(usize, HooksSpec)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, js)| match js {
            JobSpec::Full(m) => m.hooks.clone().map(|h| (i, h)),
            JobSpec::Short(_) => None,
        })
        .collect();
    let cx = FileCx {
        file: &file,
        loc: &loc,
        base_dir: &base_dir,
        global_env,
        exec,
        last,
    };
    let mut jobs: Vec<PlannedJob> = Vec::with_capacity(specs.len());
    let mut entries: Vec<Entry> = Vec::with_capacity(specs.len());
    // Each entry is planned on its own, so that every entry's error is reported at once.
    let mut errors = Vec::new();
    for (i, js) in specs.into_iter().enumerate() {
        match plan_entry(js, i, &cx, &mut jobs) {
            Ok(e) => entries.push(e),
            Err(e) => errors.push(e),
        }
        if errors.len() > crate::error::MAX_SPEC_ERRORS {
            return Err(SpecError::many(errors, None));
        }
    }
    if !errors.is_empty() {
        return Err(SpecError::many(errors, Some(0)));
    }
    let run_hooks = hooks::run_hooks(&cx)?;
    let job_hooks = hooks::job_hooks(hook_specs, &entries, &jobs, &cx)?;
    let notify = hooks::notify(file.notify.as_ref(), &loc)?;
    let every = jobs.iter().chain(hooks::templates(&run_hooks, &job_hooks));
    let secrets = secret_values(&file.secret_env, every, file.inherit_env);
    names::hide_secrets(&mut entries, &mut jobs, &secrets, &loc)?;
    // Explicit names must be unique; generated ones are made unique around them.
    names::check_duplicates(&entries, &loc)?;
    make_unique_entries(&mut entries, &mut jobs);
    names::check_unique(&jobs, &loc)?;
    check_sbatch_secrets(&jobs, &secrets, &loc)?;
    hooks::check_names(&jobs, &run_hooks, &job_hooks, notify.as_ref(), &loc)?;
    graph::resolve_needs(&entries, &mut jobs, file.wait, &loc)?;
    no_needs_on_streams(&entries, &loc)?;
    let start_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    for j in &mut jobs {
        j.file_index = j.index;
        in_job_file_dir(j, &start_dir);
        j.def_hash = definition_hash(j);
    }
    let (jobs, fans, file_jobs) = super::lazy::split(&mut entries, jobs, &start_dir);
    let mut plan = plan_of(path, text, file, jobs, secrets);
    plan.fans = fans;
    plan.file_jobs = file_jobs;
    plan.hooks = run_hooks;
    plan.job_hooks = job_hooks;
    plan.notify = notify;
    Ok(plan)
}

/// sbatch writes a batch job's output files itself, on the node, where nothing of ours can
/// redact them: a secret in a Slurm background job's captured output would be stored. Such
/// a job must send its output to a file of its own (or nowhere), or run in the foreground.
fn check_sbatch_secrets(
    jobs: &[PlannedJob],
    secrets: &[String],
    loc: &Locator<'_>,
) -> Result<(), SpecError> {
    use super::{Executor, Target};
    if secrets.is_empty() {
        return Ok(());
    }
    let captured = |t: &Target| matches!(t, Target::Capture | Target::Inherit);
    let Some(j) = jobs.iter().find(|j| {
        j.background
            && matches!(j.executor, Executor::Slurm(_))
            && (captured(&j.stdout) || captured(&j.stderr))
    }) else {
        return Ok(());
    };
    Err(loc.err(
        &loc.key(j.entry, "background"),
        Some(j.name.clone()),
        "a Slurm background job's output is written by sbatch, where secrets (`secret_env`) cannot be redacted from it".into(),
        Some("send its stdout and stderr to files of its own or to `null`, or run it in the foreground (without `background: true`)".into()),
    ))
}

/// A job that runs here (or on a Slurm node, which starts where `srun` does) starts in the
/// job file's directory, and a relative `cwd:` is taken from there, as `just` does with its
/// justfile: a run by hand, from any folder, and a run from cron do the same. On an ssh host
/// the job starts where the login does, and a relative `cwd:` is taken from there.
pub(super) fn in_job_file_dir(job: &mut PlannedJob, start_dir: &Path) {
    if matches!(job.executor, super::Executor::Ssh(_)) {
        return;
    }
    job.cwd = Some(match job.cwd.take() {
        Some(c) => start_dir.join(c),
        None => start_dir.to_path_buf(),
    });
}

/// A job cannot wait for an entry whose items are read as a stream: how many jobs it has is
/// known only at its end.
fn no_needs_on_streams(entries: &[Entry], loc: &Locator<'_>) -> Result<(), SpecError> {
    let streams: Vec<&str> = entries
        .iter()
        .filter(|e| e.lazy.as_ref().is_some_and(|p| p.count.is_none()))
        .map(|e| e.base.as_str())
        .collect();
    for (i, e) in entries.iter().enumerate() {
        for n in &e.needs {
            if let Some(s) = streams.iter().find(|s| n.job == **s) {
                return Err(loc.err(
                    &loc.key(i, "needs"),
                    Some(e.base.clone()),
                    format!("`needs` names `{s}`, whose items are read as a stream as it runs"),
                    Some("give it its items as a list or a range, or drop this need".into()),
                ));
            }
        }
    }
    Ok(())
}

/// Where paths in the job file are relative to: its directory.
fn base_dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn check_groups(file: &JobFile, loc: &Locator<'_>) -> Result<(), SpecError> {
    for g in file.groups.keys() {
        if g.is_empty() {
            return Err(loc.err(
                &Locator::top("groups"),
                None,
                "a group name is empty".into(),
                None,
            ));
        }
    }
    Ok(())
}

/// The plan of the finished jobs, with the file-wide settings.
fn plan_of(
    path: &Path,
    text: &str,
    file: JobFile,
    jobs: Vec<PlannedJob>,
    secrets: Vec<String>,
) -> Plan {
    Plan {
        source: Some(path.to_path_buf()),
        source_hash: crate::text::sha256_hex(text.as_bytes()),
        concurrency: file.concurrency,
        file_jobs: jobs.len(),
        jobs,
        fans: Vec::new(),
        groups: file.groups,
        on_failure: file.on_failure,
        secret_env: file.secret_env,
        secrets,
        wait: file.wait,
        retention: file.retention.map(|r| Retention {
            max_runs: r.runs,
            max_age: r.age.map(|a| a.0),
            max_bytes: r.bytes.map(|b| b.0),
        }),
        hooks: Default::default(),
        job_hooks: Default::default(),
        notify: None,
    }
}
