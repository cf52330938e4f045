//! How an attempt's end becomes its record: the status (timed out, cancelled, the wrapper's
//! word for a remote job, the exit code against the job's success codes), and where each
//! stream ended up.

use std::os::unix::process::ExitStatusExt;
use std::time::SystemTime;

use super::JobCtx;
use super::attempt::Watch;
use super::drain::Drain;
use super::stdio::FileTarget;
use crate::exec::ends;
use crate::exec::remote::wrap::Control;
use crate::plan::PlannedJob;
use crate::record::{CompletedProcess, Status, StoredOutput};

impl Watch {
    /// The attempt's record.
    pub(super) fn record(
        &mut self,
        job: &PlannedJob,
        ctx: &JobCtx,
        control: Option<Control>,
    ) -> CompletedProcess {
        let (status, returncode, signal, error) = self.outcome(job, ctx, control.as_ref());
        let mut notes = std::mem::take(&mut self.notes);
        for d in [&self.stdout_drain, &self.stderr_drain]
            .into_iter()
            .flatten()
        {
            notes.extend(d.error.iter().cloned());
            notes.extend(d.truncated.iter().cloned());
        }
        notes.extend(self.slow.note());
        notes.extend(self.pending.note(control.as_ref()));
        if let Some(c) = &control
            && c.started
        {
            notes.extend(c.notes());
        }
        let mut rec = ends::base(job);
        // Started, and its client ended without its exit status because its host or node
        // failed (the launcher tells that from its wrapper being stopped where all is fine).
        rec.host_failed = status == Status::Failed
            && self.wait_error.is_none()
            && control
                .as_ref()
                .is_some_and(|c| c.started && c.exit.is_none() && ctx.launcher.host_failed(c));
        rec.status = status;
        rec.returncode = returncode;
        rec.signal = signal;
        rec.error = error;
        rec.stdout = stored(&self.stdout_drain, &self.stdout_file, false);
        rec.stderr = stored(&self.stderr_drain, &self.stderr_file, true);
        rec.pid = Some(self.pgid);
        ends::in_slot(&mut rec, job, ctx.slot);
        rec.finished = SystemTime::now();
        rec.attempts = 1;
        rec.host = ctx
            .launcher
            .host()
            .or_else(|| control.as_ref().and_then(|c| c.node.clone()));
        rec.notes = notes;
        rec.slurm_job_id = control.and_then(|c| c.slurm_job_id);
        rec
    }

    /// Status, exit code, signal and error text. A wrapped job's status is the wrapper's word;
    /// without it, the client failed.
    fn outcome(
        &self,
        job: &PlannedJob,
        ctx: &JobCtx,
        control: Option<&Control>,
    ) -> (Status, Option<i32>, Option<i32>, Option<String>) {
        let (mut code, mut signal) = match self.status {
            Some(st) => (st.code(), st.signal()),
            None => (None, None),
        };
        if let Some(c) = control
            && (self.cancelled || self.timed_out)
        {
            // The client's own code (srun's 137, ssh's 255) is not the job's.
            (code, signal) = self.stopped_remote(c);
        }
        if self.cancelled {
            return (Status::Cancelled, code, signal, self.wait_error.clone());
        }
        if self.timed_out {
            let limit = humantime::format_duration(self.timeout.unwrap_or_default());
            return (
                Status::TimedOut,
                code,
                signal,
                Some(format!("timed out after {limit}")),
            );
        }
        if let Some(e) = &self.wait_error {
            return (Status::Failed, code, signal, Some(e.clone()));
        }
        if let Some(c) = control {
            match c.exit {
                Some(exit) => (code, signal) = (Some(exit), None),
                None => {
                    let why = ctx.launcher.failure(c, self.status);
                    let status = if c.started {
                        Status::Failed
                    } else {
                        Status::SpawnError
                    };
                    return (status, None, None, Some(why));
                }
            }
        }
        let ok = code.is_some_and(|c| job.is_success(c));
        let status = if ok {
            Status::Succeeded
        } else {
            Status::Failed
        };
        (status, code, signal, None)
    }
}

impl Watch {
    /// A stopped wrapped job's code and signal: the wrapper's word when it got to say it,
    /// else the signal it was stopped with (nothing, for a job that never started).
    fn stopped_remote(&self, c: &Control) -> (Option<i32>, Option<i32>) {
        match c.exit {
            Some(e) if e > 128 => (None, Some(e - 128)),
            Some(e) => (Some(e), None),
            None if !c.started => (None, None),
            None if self.killed => (None, Some(crate::sys::SIGKILL)),
            None => (None, Some(crate::sys::SIGTERM)),
        }
    }
}

/// Where a stream ended up: its capture, or the job's own file. For stderr a file target
/// wins (a wrapped job's stderr is drained into it).
fn stored(drain: &Option<Drain>, file: &Option<FileTarget>, file_first: bool) -> StoredOutput {
    match (drain, file) {
        (_, Some(f)) if file_first => f.stored(),
        (Some(d), _) => d.stored(),
        (None, Some(f)) => f.stored(),
        _ => StoredOutput::default(),
    }
}
