//! Hooks run as jobs do: a hook's job is made from its template (name, index, input,
//! environment) and run by a back end, so timeouts, capture and redaction are the jobs' own;
//! its record is sealed and marked as a hook's. A job's hooks run here, in the job's turn,
//! after its final attempt; the run's hooks are run by `run` once every job has ended.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Cancel;
use super::backend::Backends;
use super::process::{JobCtx, job_dir_name};
use super::sched::Shared;
use crate::plan::{Input, PlannedJob, hook_index, hook_name};
use crate::record::{CompletedProcess, Counts, Sealed, write_json_record};

/// The variables every hook gets on top of the run's, from what it is about.
pub struct HookVars<'a> {
    pub status: &'a str,
    /// The run's exit code, or the job's returncode (empty when it has none).
    pub exit_code: Option<i32>,
    pub counts: &'a Counts,
    /// Names of the failed jobs, one per line.
    pub failed_jobs: &'a str,
    /// The file of records the hook is given (also its stdin).
    pub records: &'a Path,
}

impl HookVars<'_> {
    /// `ORCHESTRATE_STATUS`, `_EXIT_CODE`, `_COUNTS`, `_FAILED_JOBS`, `_RECORDS` after `base`.
    pub fn env(&self, base: &[(String, String)]) -> Vec<(String, String)> {
        let mut vars = base.to_vec();
        let mut set = |k: &str, v: String| vars.push((k.to_string(), v));
        set("ORCHESTRATE_STATUS", self.status.to_string());
        set(
            "ORCHESTRATE_EXIT_CODE",
            self.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        );
        set("ORCHESTRATE_COUNTS", self.counts.pairs());
        set("ORCHESTRATE_FAILED_JOBS", self.failed_jobs.to_string());
        set("ORCHESTRATE_RECORDS", self.records.display().to_string());
        vars
    }
}

/// The job one hook runs as: its template named and numbered, reading `stdin`; for a job's
/// hook, `ORCHESTRATE_JOB` names that job (ahead of the hook's own `env:`).
pub fn instance(
    template: &PlannedJob,
    name: String,
    index: usize,
    stdin: Input,
    of_job: Option<&str>,
) -> PlannedJob {
    let mut env = Vec::with_capacity(template.env.len() + 1);
    if let Some(j) = of_job {
        env.push(("ORCHESTRATE_JOB".to_string(), j.to_string()));
    }
    env.extend(template.env.iter().cloned());
    PlannedJob {
        index,
        file_index: index,
        name,
        stdin,
        env,
        ..template.clone()
    }
}

/// A context for a hook from a job's: its events go nowhere (the hook's start and output are
/// not a job's, and its record is sent once it ends), with `vars` as the run's variables.
pub fn hook_ctx(ctx: &JobCtx, vars: Vec<(String, String)>) -> JobCtx {
    let (events, _) = super::event_channel();
    JobCtx {
        events,
        forward_output: false,
        run_env: vars,
        // The job's history (its slow time, its notes) is not the hook's.
        history: Default::default(),
        slow_told: false,
        ..ctx.clone()
    }
}

/// Runs one hook to its end through the back end its job names; never fails (a hook that
/// cannot start is a record saying so). `hook` is what the record is marked with.
pub async fn run_hook(backends: &Backends, job: &PlannedJob, ctx: JobCtx, hook: &str) -> Sealed {
    let secrets = ctx.secrets.clone();
    let mut rec = backends.for_job(job).run(job, ctx).await;
    rec.hook = Some(hook.to_string());
    Sealed::new(rec, &secrets)
}

/// Creates (or truncates) a file of the run's folder for this user alone, as capture files
/// are: folders 0700, the file 0600, never through a symlink.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    super::process::open_capture(path)
}

/// Where a job's record is written for its hooks: a folder no job's output folder can be
/// (`job_dir_name` never starts with a dot).
fn job_record_path(capture: &Path, job: &str) -> PathBuf {
    let p = capture
        .join(".hooks")
        .join(format!("{}.jsonl", job_dir_name(job)));
    // Absolute: a hook with a `cwd:` of its own finds it too.
    std::path::absolute(&p).unwrap_or(p)
}

impl Shared {
    /// Runs `job`'s hooks after its final attempt, each given the job's record (sealed) on
    /// stdin and in `ORCHESTRATE_RECORDS`; returns their records, which are sent after the
    /// job's. A run being stopped starts no hook.
    pub(super) async fn after_job(
        &self,
        job: &PlannedJob,
        rec: &CompletedProcess,
        ctx: JobCtx,
    ) -> Vec<Sealed> {
        let mut out = Vec::new();
        let Some(hooks) = self.queue.hooks(job) else {
            return out;
        };
        if *ctx.cancel.borrow() != Cancel::None {
            return out;
        }
        let failed = rec.status.is_failure();
        let sealed = Sealed::new(rec.clone(), &self.opts.secrets);
        let path = job_record_path(&ctx.capture.0, &job.name);
        let written = private_file(&path).and_then(|mut f| {
            let outputs = [super::Stream::Stdout, super::Stream::Stderr].map(|s| {
                ctx.capture
                    .read_back(&sealed, s)
                    .ok()
                    .and_then(|r| r.into_file())
            });
            write_json_record(
                &mut f,
                self.opts.run_id(),
                &sealed,
                crate::environ::inherited_env_keys(),
                outputs,
            )?;
            f.flush()
        });
        let mut counts = self.state().summary;
        counts.add(rec.status);
        let failed_jobs = if failed { job.name.as_str() } else { "" };
        let vars = HookVars {
            status: rec.status.as_str(),
            exit_code: rec.returncode,
            counts: &counts,
            failed_jobs,
            records: &path,
        }
        .env(&ctx.run_env);
        for (kind, template) in hooks.after(failed) {
            let index = hook_index(self.queue.file_jobs(), Some(job.file_index), kind);
            let stdin = if written.is_ok() {
                Input::File(path.clone())
            } else {
                Input::Null
            };
            let hjob = instance(
                template,
                hook_name(&job.name, kind),
                index,
                stdin,
                Some(&job.name),
            );
            let hctx = hook_ctx(&ctx, vars.clone());
            let mut done = run_hook(&self.backends, &hjob, hctx, kind.as_str())
                .await
                .into_inner();
            if let Err(e) = &written {
                done.notes.push(format!(
                    "the job's record could not be written for the hook ({}): its stdin was empty",
                    crate::text::os_text(e)
                ));
            }
            out.push(Sealed::new(done, &self.opts.secrets));
        }
        out
    }
}
