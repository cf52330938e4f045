//! The mail: a message piped to `sendmail -t -oi` (found on PATH, else /usr/sbin/sendmail),
//! run as a job is, so that its timeout, its retries, the capture of what sendmail says and
//! redaction are the jobs' own.

use std::sync::Arc;
use std::time::Duration;

use super::http::{ATTEMPT_TIMEOUT, BACKOFF};
use crate::exec::backend::Backends;
use crate::exec::hooks::run_hook;
use crate::exec::process::JobCtx;
use crate::exec::{Cancel, CaptureRoot, Launcher};
use crate::plan::{Input, Notify, PlannedJob, Retry};
use crate::record::{Sealed, Secrets};

/// Where sendmail is when PATH has none.
const SENDMAIL: &str = "/usr/sbin/sendmail";

/// What the mail is sent with: the run's launcher, folder and secrets.
pub struct Mailer {
    pub secrets: Secrets,
    pub launcher: Arc<dyn Launcher>,
    pub capture: CaptureRoot,
    pub run_id: String,
}

impl Mailer {
    /// Pipes `message` to sendmail; the record says how it went.
    pub fn send(&self, message: &str, index: usize) -> Sealed {
        let name = Notify::record_name("mail");
        let program = crate::exec::process::which("sendmail")
            .map_or_else(|| SENDMAIL.to_string(), |p| p.display().to_string());
        let mut job = PlannedJob::new(
            index,
            name.clone(),
            vec![program, "-t".to_string(), "-oi".to_string()],
        );
        job.stdin = Input::Text(message.to_string());
        job.timeout = Some(ATTEMPT_TIMEOUT);
        job.kill_after = Duration::from_secs(2);
        job.retry = Retry {
            retries: BACKOFF.len() as u32,
            delay: BACKOFF[0],
            backoff: 2.0,
            ..Retry::default()
        };
        let (_keep, cancel) = tokio::sync::watch::channel(Cancel::None);
        let (events, _) = crate::exec::event_channel();
        let ctx = JobCtx {
            history: Default::default(),
            slow_told: false,
            slot: 0,
            capture: self.capture.clone(),
            events,
            forward_output: false,
            cancel,
            launcher: self.launcher.clone(),
            run_env: vec![("ORCHESTRATE_RUN".to_string(), self.run_id.clone())],
            secrets: self.secrets.clone(),
        };
        let backends = Backends::new(None, None);
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run_hook(&backends, &job, ctx, &name)),
            Err(e) => {
                let mut rec = crate::exec::ends::not_started(
                    &job,
                    crate::record::Status::Failed,
                    format!("could not be sent: cannot start the async runtime: {e}"),
                );
                rec.hook = Some(name);
                Sealed::new(rec, &self.secrets)
            }
        }
    }
}
