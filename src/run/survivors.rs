//! Before a run of a job file starts anything: jobs of an earlier run that outlived it (the
//! run was killed outright), or, with `--resume`, jobs of the resumed run still running.
//! Starting the run would start a second copy of each, so the run refuses (exit 75, naming
//! them), waits for them, or stops them, as `--survivors` says.

use std::time::{Duration, Instant};

use super::RunError;
use crate::store::{RunStore, Survivor};

/// What a run does about jobs still running from an earlier run of its job file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Survivors {
    /// Start nothing and exit 75, naming them.
    #[default]
    Refuse,
    /// Wait until they have ended, then run.
    Wait,
    /// Stop them (SIGTERM to each job's process group, SIGKILL after 10 s), then run.
    Stop,
}

/// How long stopped survivors get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Deals with the survivors of `job_file`'s earlier runs as `policy` says.
pub fn settle(
    db: &mut RunStore,
    job_file: &str,
    resumed: Option<&str>,
    policy: Survivors,
    quiet: bool,
) -> Result<(), RunError> {
    let found = db.survivors(job_file, resumed)?;
    if found.is_empty() {
        return Ok(());
    }
    let (names, them) = describe(&found);
    match policy {
        Survivors::Refuse => {
            let groups: Vec<String> = found
                .iter()
                .filter_map(Survivor::pgid)
                .map(|p| format!("-{p}"))
                .collect();
            Err(RunError::Survivors(format!(
                "{names} still running from an earlier run of {job_file}, which was killed or is being resumed: \
                 starting now would run {them} twice. Wait for {them} (--survivors wait), stop {them} \
                 (--survivors stop), or stop {them} yourself (kill -TERM -- {})",
                groups.join(" ")
            )))
        }
        Survivors::Wait => {
            if !quiet {
                eprintln!(
                    "orchestrate: waiting until {names} no longer running (left by an earlier run)"
                );
            }
            wait_gone(&found, None);
            record_ends(
                db,
                &found,
                "its run was killed; a later run waited for it to end",
            )
        }
        Survivors::Stop => {
            if !quiet {
                eprintln!("orchestrate: stopping {names} still running from an earlier run");
            }
            signal_all(&found, crate::sys::SIGTERM);
            if !wait_gone(&found, Some(STOP_GRACE)) {
                signal_all(&found, crate::sys::SIGKILL);
                wait_gone(&found, Some(STOP_GRACE));
            }
            record_ends(
                db,
                &found,
                "its run was killed; a later run stopped it (--survivors stop)",
            )
        }
    }
}

/// "job `a` (pid 12, run R) is" or "2 jobs are: `a` (pid 12, run R), `b` (…)", and the
/// pronoun for them.
fn describe(found: &[Survivor]) -> (String, &'static str) {
    let each: Vec<String> = found
        .iter()
        .map(|s| {
            let pid = s.pgid().map_or("-".to_string(), |p| p.to_string());
            let bg = if s.record.background {
                ", in the background"
            } else {
                ""
            };
            format!("`{}` (pid {pid}, run {}{bg})", s.record.job, s.run_id)
        })
        .collect();
    if found.len() == 1 {
        (format!("job {} is", each[0]), "it")
    } else {
        (
            format!("{} jobs ({}) are", found.len(), each.join(", ")),
            "them",
        )
    }
}

/// Signals each survivor's process group.
fn signal_all(found: &[Survivor], sig: i32) {
    for s in found {
        if let Some(pgid) = s.pgid() {
            let _ = crate::sys::killpg(pgid, sig);
        }
    }
}

/// Waits until no survivor may live (at most `limit`); whether they all ended.
fn wait_gone(found: &[Survivor], limit: Option<Duration>) -> bool {
    let t0 = Instant::now();
    loop {
        if found.iter().all(|s| !s.may_live()) {
            return true;
        }
        if limit.is_some_and(|l| t0.elapsed() >= l) {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The survivors' records say how they ended, as far as anyone knows.
fn record_ends(db: &mut RunStore, found: &[Survivor], note: &str) -> Result<(), RunError> {
    for s in found {
        db.end_survivor(s, note.to_string())?;
    }
    Ok(())
}
