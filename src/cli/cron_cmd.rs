//! `orchestrate cron`: the crontab line that runs a job file on a schedule, printed, installed
//! in the user's crontab or removed from it.

use std::path::{Path, PathBuf};

use super::report_error;
use crate::error::exit;
use crate::plan::Plan;
use crate::store;

/// `orchestrate cron FILE` as parsed.
pub(super) struct CronArgs {
    pub job_file: PathBuf,
    pub schedule: Option<String>,
    pub install: bool,
    pub remove: bool,
    pub log: Option<PathBuf>,
}

pub(super) fn cmd_cron(args: CronArgs, state_dir: Option<PathBuf>) -> i32 {
    let abs = match std::fs::canonicalize(&args.job_file) {
        Ok(p) => p,
        // A line is found by its marker: the line of a job file that is gone can be removed.
        Err(_) if args.remove => {
            std::path::absolute(&args.job_file).unwrap_or(args.job_file.clone())
        }
        Err(e) => {
            let msg = crate::error::SpecError::io(&args.job_file, &e);
            return report_error(&msg, exit::USAGE);
        }
    };
    if let Some(c) = abs.to_string_lossy().chars().find(|c| c.is_control()) {
        let msg = format!(
            "the job file path `{}` holds a control character ({c:?}), which would split the crontab line; rename the file",
            abs.display().to_string().escape_debug()
        );
        return report_error(&msg, exit::USAGE);
    }
    if args.remove {
        return remove_line(&abs);
    }
    let schedule = args.schedule.unwrap_or_default();
    if let Err(e) = crate::cron::validate(&schedule) {
        return report_error(&format_args!("invalid schedule: {e}"), exit::USAGE);
    }
    if let Err(e) = Plan::load(&abs) {
        return report_error(&e, exit::USAGE);
    }
    let line = match crontab_line(&schedule, &abs, args.log, state_dir) {
        Ok(line) => line,
        Err(e) => return report_error(&e, exit::SOFTWARE),
    };
    if !args.install {
        println!("{line}");
        return exit::OK;
    }
    match crate::cron::install(&line, &abs) {
        Ok(replaced) => {
            println!("{line}");
            eprintln!(
                "{} the crontab line of {}",
                if replaced { "replaced" } else { "installed" },
                abs.display()
            );
            if !crate::cron::daemon_running() {
                super::report_warning(
                    &"no cron daemon is running (no cron or crond process): the line will not run until one is started",
                );
            }
            exit::OK
        }
        Err(e) => report_error(&e, exit::SOFTWARE),
    }
}

fn remove_line(abs: &Path) -> i32 {
    match crate::cron::remove(abs) {
        Ok(true) => {
            println!("removed the crontab line of {}", abs.display());
            exit::OK
        }
        Ok(false) => {
            println!("no crontab line for {}", abs.display());
            exit::OK
        }
        Err(e) => report_error(&e, exit::SOFTWARE),
    }
}

/// The line, with absolute paths (cron runs in another folder), and the log's folder made.
fn crontab_line(
    schedule: &str,
    abs: &Path,
    log: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> Result<String, String> {
    let planned = planned_line(schedule, abs, log, state_dir)?;
    if let Some(dir) = planned.log.parent()
        && let Err(e) = store::create_private_dir(dir)
    {
        return Err(format!("cannot create {}: {e}", dir.display()));
    }
    private_log(&planned.log)?;
    Ok(planned.line)
}

/// The line `crontab_line` would write, without making anything.
pub(super) fn planned_line(
    schedule: &str,
    abs: &Path,
    log: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> Result<PlannedLine, String> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("orchestrate"));
    let explicit_state = state_dir
        .or_else(|| {
            std::env::var_os("ORCHESTRATE_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    let root = store::default_state_dir(explicit_state.as_deref()).map_err(|e| e.to_string())?;
    // The line names the store it resolved now ($XDG_STATE_HOME, the home), so that the cron
    // run and a run by hand share one history and one lock, whatever cron's environment.
    let root = std::path::absolute(&root).unwrap_or(root);
    let log = log_path(log, &root, abs);
    let path_env = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let path_env = dedup_path(&path_env);
    let line = crate::cron::line(schedule, abs, &exe, &path_env, Some(&root), &log)?;
    Ok(PlannedLine { line, log })
}

/// The crontab line for a job file as `--install` writes it, and its log.
pub(super) struct PlannedLine {
    pub line: String,
    pub log: PathBuf,
}

/// The log made now, 0600 whatever the umask cron runs under: the shell's `>>` keeps the mode
/// of a file that exists, and failure tails in it are nobody else's business.
fn private_log(log: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log)
        .map_err(|e| format!("cannot create the log {}: {e}", log.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make the log {} private: {e}", log.display()))
}

/// `--log`, else `<state dir>/cron/<stem>-<hash>.log`: the stem for people, a hash of the
/// job file's absolute path (as lock files have) so that `/a/jobs.yaml` and `/b/jobs.yaml`
/// never append their reports to one log.
fn log_path(log: Option<PathBuf>, root: &Path, abs: &Path) -> PathBuf {
    match log {
        Some(l) => std::path::absolute(&l).unwrap_or(l),
        None => {
            let stem = crate::text::slug(
                &abs.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let hash = crate::text::sha256_hex(abs.as_os_str().as_encoded_bytes());
            root.join("cron")
                .join(format!("{stem}-{}.log", &hash[..12]))
        }
    }
}

/// PATH without its repeated entries (the first one wins, as it does in a lookup).
fn dedup_path(path: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    path.split(':')
        .filter(|d| seen.insert(*d))
        .collect::<Vec<_>>()
        .join(":")
}
