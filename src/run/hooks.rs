//! After the jobs: the run's hooks, then its notifications. Their records are kept with the
//! run and shown, never counted; one that fails is a warning, and the run's status and exit
//! code stay what its jobs made them.

use std::path::Path;
use std::time::SystemTime;

use tokio::sync::watch;

use super::RunOptions;
use super::consume::Consumed;
use super::facts::Facts;
use crate::exec::backend::Backends;
use crate::exec::hooks::{HookVars, instance, run_hook};
use crate::exec::process::JobCtx;
use crate::exec::{Cancel, CaptureRoot, ExecSummary};
use crate::notify::{self, Mailer, RunEnd, Sent};
use crate::plan::{Input, Plan, RUN_HOOK_OWNER, hook_index, hook_name};
use crate::record::{CompletedProcess, RunStatus, Sealed, Secrets};

/// How the run ended, as its hooks and notifications are told.
pub(super) struct AfterJobs<'a> {
    pub plan: &'a Plan,
    pub opts: &'a RunOptions,
    pub run_id: &'a str,
    pub dir: &'a Path,
    pub job_file: Option<&'a str>,
    pub started: SystemTime,
    pub summary: &'a ExecSummary,
    pub interrupted: Option<i32>,
    pub facts: Facts,
    /// The ping's `/start`, still under way or done.
    pub ping: Option<std::thread::JoinHandle<Sent>>,
}

/// Runs the run's hooks, then sends its notifications; each record goes to the reporter and
/// the store (else with the records the run could not store), each failure to the warnings.
pub(super) fn after_jobs(a: AfterJobs<'_>, c: &mut Consumed) {
    let status = RunStatus::ended(a.interrupted.is_some(), a.summary);
    // The exit code the run will have: hooks never change it.
    let exit_code = if c.unrecorded.is_empty() && c.output_lost == 0 {
        super::exit_code(false, a.interrupted, a.summary)
    } else {
        crate::error::exit::SOFTWARE
    };
    let hooks = run_hooks(&a, status, exit_code);
    let kept = |recs: Vec<Sealed>, c: &mut Consumed| {
        for r in &recs {
            c.ended_at(r.finished);
            c.reporter.hook_finished(r);
            if r.status.is_failure() {
                c.warnings.push(failed_hook(r));
            }
        }
        if let Some(s) = c.db.as_mut()
            && s.record_batch(a.run_id, &recs).is_err()
        {
            c.unrecorded.extend(recs);
        }
    };
    kept(hooks, c);
    let Some(n) = &a.plan.notify else {
        return;
    };
    let mailer = Mailer {
        secrets: Secrets::new(a.plan.secrets.clone()),
        launcher: a.opts.launcher.clone(),
        capture: CaptureRoot(a.dir.to_path_buf()),
        run_id: a.run_id.to_string(),
    };
    let end = RunEnd {
        run_id: a.run_id,
        job_file: a.job_file,
        status,
        exit_code,
        counts: a.summary,
        started: a.started,
        failed: &a.facts.failed,
        failed_total: a.facts.failed_total,
        jobs: a.plan.file_jobs,
    };
    let sent = notify::at_end(n, &end, c.db.as_mut(), a.ping, &mailer);
    kept(sent, c);
}

/// The run's `on_failure` or `on_success` hook, then `on_exit`, each given the run's records
/// on stdin; a signal stops the hook running and starts no other.
fn run_hooks(a: &AfterJobs<'_>, status: RunStatus, exit_code: i32) -> Vec<Sealed> {
    let failed = status != RunStatus::Succeeded;
    let todo: Vec<_> = a.plan.hooks.after(failed).collect();
    if todo.is_empty() {
        return Vec::new();
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let run_vars = [("ORCHESTRATE_RUN".to_string(), a.run_id.to_string())];
    let vars = HookVars {
        status: status.as_str(),
        exit_code: Some(exit_code),
        counts: a.summary,
        failed_jobs: &a.facts.failed_names(),
        records: &a.facts.records,
    }
    .env(&run_vars);
    let (cancel_tx, cancel_rx) = watch::channel(Cancel::None);
    let (events, _) = crate::exec::event_channel();
    let ctx = JobCtx {
        history: Default::default(),
        slow_told: false,
        slot: 0,
        capture: CaptureRoot(a.dir.to_path_buf()),
        events,
        forward_output: false,
        cancel: cancel_rx,
        launcher: a.opts.launcher.clone(),
        run_env: vars,
        secrets: Secrets::new(a.plan.secrets.clone()),
    };
    let stdin = match a.facts.error {
        None => Input::File(a.facts.records.clone()),
        Some(_) => Input::Null,
    };
    let backends = Backends::new(None, None);
    let (handle_signals, ignore_hangup) = (a.opts.handle_signals, a.opts.ignore_hangup);
    let out = rt.block_on(async move {
        if handle_signals {
            super::signals::spawn_signal_handler(cancel_tx.clone(), ignore_hangup);
        }
        let mut out = Vec::with_capacity(todo.len());
        for (kind, t) in todo {
            if *ctx.cancel.borrow() != Cancel::None {
                break;
            }
            let index = hook_index(a.plan.file_jobs, None, kind);
            let job = instance(
                t,
                hook_name(RUN_HOOK_OWNER, kind),
                index,
                stdin.clone(),
                None,
            );
            let rec = run_hook(&backends, &job, ctx.clone(), kind.as_str()).await;
            out.push(with_records_note(
                rec,
                a.facts.error.as_deref(),
                &ctx.secrets,
            ));
        }
        drop(cancel_tx);
        out
    });
    rt.shutdown_background();
    out
}

/// A hook whose records file could not be written says so: its stdin was empty.
fn with_records_note(rec: Sealed, error: Option<&str>, secrets: &Secrets) -> Sealed {
    let Some(e) = error else { return rec };
    let mut rec = rec.into_inner();
    rec.notes.push(format!(
        "the run's records could not be written for the hook ({e}): its stdin was empty"
    ));
    Sealed::new(rec, secrets)
}

/// The warning for a hook that failed, or a notification that could not be sent.
pub(super) fn failed_hook(rec: &CompletedProcess) -> String {
    let why = rec
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    if rec.job.starts_with("notify.") && rec.hook.as_deref() == Some(rec.job.as_str()) {
        format!("notification `{}` failed{why}", rec.job)
    } else {
        // A hook that could not start has no exit code to show.
        let outcome = match rec.outcome() {
            o if o == "-" => String::new(),
            o => format!(" ({o})"),
        };
        format!("hook `{}` {}{outcome}{why}", rec.job, rec.status.label())
    }
}
