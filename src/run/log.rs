//! `--log FILE`: the run's full report appended to a file of the user's (0600, never through
//! a symlink, never a FIFO), while the terminal streams get only what the options show. Under
//! cron with `--quiet`, cron then mails exactly the failures and the log keeps everything.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use super::RunError;
use crate::exec::CaptureRoot;
use crate::plan::Plan;
use crate::report::{ReportConfig, Reporter};

/// Opens the log for appending, made private if new. A path that is not a regular file (a
/// FIFO would block the run, a device would swallow the report) is refused.
pub(super) fn open(path: &Path) -> Result<File, RunError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |why: String| RunError::Log(format!("cannot use the log {}: {why}", path.display()));
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(fail("it is not a regular file".into()));
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(crate::text::os_text(&e)))?;
    let meta = f.metadata().map_err(|e| fail(crate::text::os_text(&e)))?;
    if !meta.is_file() {
        return Err(fail("it is not a regular file".into()));
    }
    if meta.permissions().mode() & 0o077 != 0 && meta.len() == 0 {
        // Made now under a loose umask: failure tails are nobody else's business.
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    crate::sys::clear_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&f))
        .map_err(|e| fail(crate::text::os_text(&e)))?;
    Ok(f)
}

/// The line that opens a run's part of the log.
fn header(log: &mut File, run_id: &str, job_file: Option<&str>) {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = writeln!(
        log,
        "{now} orchestrate: run {run_id} of {} started",
        job_file.unwrap_or("(no job file)")
    );
}

/// A run that could not begin (locked out, survivors, no store) leaves its line too: the
/// log then has a line for every time cron started the job file (`cron status` reads them).
pub(super) fn refused(log: Option<&mut File>, job_file: Option<&str>, err: &RunError) {
    let Some(log) = log else { return };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = writeln!(
        log,
        "{now} orchestrate: run of {} refused (exit {}): {err}",
        job_file.unwrap_or("(no job file)"),
        err.exit_code()
    );
}

/// `reporter`, with the log given its header and the full report too.
pub(super) fn attach(
    log: &mut File,
    reporter: Reporter,
    (run_id, job_file): (&str, Option<&str>),
    opts: &super::RunOptions,
    plan: &Arc<Plan>,
) -> Result<Reporter, RunError> {
    header(log, run_id, job_file);
    let files = reporter.files().clone();
    Ok(reporter.with_log(self::reporter(log, &opts.report, plan, &files, run_id)?))
}

/// The reporter that writes the full report to the log.
pub(super) fn reporter(
    log: &File,
    shown: &ReportConfig,
    plan: &Arc<Plan>,
    files: &CaptureRoot,
    run_id: &str,
) -> Result<Reporter, RunError> {
    let clone = || log.try_clone().map_err(|e| RunError::Log(e.to_string()));
    let (out, err) = (clone()?, clone()?);
    Ok(Reporter::new(
        shown.for_log(),
        plan.clone(),
        files.clone(),
        run_id,
        Box::new(out),
        Box::new(err),
    ))
}

/// Warnings the run ends with, also in the log.
pub(super) fn warnings(log: &mut File, warnings: &[String]) {
    for w in warnings {
        let _ = writeln!(log, "warning: {w}");
    }
}
