//! The run history: SQLite (WAL) for runs and records, plain files for output bytes.
//!
//! ```text
//! <state dir>/history.db
//! <state dir>/locks/
//! <state dir>/runs/<run-id>/<job>/stdout|stderr   a job's output while it runs, and after it
//!                                                 when larger than 64 KiB
//! <state dir>/runs/<run-id>.pack                  the run's smaller outputs, appended as
//!                                                 their jobs ended (the folder then goes)
//! ```
//!
//! The handle, its errors and where the store lives are here; each submodule adds to
//! `RunStore` the methods of one part of the history.

mod background;
mod counts;
mod gc;
mod ids;
mod job_file;
mod job_history;
mod liveness;
mod lookup;
mod moved;
mod readonly;
mod recent;
mod records;
mod row;
mod runs;
mod schema;
mod spill;
mod status_sql;
mod streak;
mod survivors;
mod trend;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use crate::plan::{DEFAULT_RETENTION, Retention};
pub use background::{BackgroundOf, Viewer};
pub use gc::GcReport;
pub use ids::{as_component, looks_like_run_id, new_run_id, valid_run_id};
pub use job_file::names as job_file_names;
pub use job_history::{HistoryRow, runs_back};
pub use liveness::hostname;
pub use recent::KEPT as KEPT_DURATIONS;
pub use records::{ShowRow, not_found_job};
pub use runs::{NewRun, RunFilter, RunRow};
pub use schema::SCHEMA_VERSION;
pub use spill::spill;
pub use streak::Streak;
pub use survivors::Survivor;
pub use trend::PastRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the history database {path} is damaged or not a database ({message}); it was left untouched: move it away to start a new history"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "the history database {path} has schema version {found}, newer than this orchestrate ({SCHEMA_VERSION}); upgrade orchestrate"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("the history database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no history yet in {0} (nothing has run with this state directory)")]
    Empty(PathBuf),
    #[error(
        "the state directory {0} is not a directory (something else is in its place): move it away, or give another --state-dir"
    )]
    NotADir(PathBuf),
    #[error("{0}")]
    NotFound(String),
    /// A run id prefix that more than one run has.
    #[error("{0}")]
    Ambiguous(String),
    #[error(
        "no state directory: HOME is not set and the password database has no home for this user; set ORCHESTRATE_STATE_DIR or pass --state-dir"
    )]
    NoHome,
    #[error("refusing the state directory {path}: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("cannot write the state directory {path}: {why}")]
    ReadOnly { path: PathBuf, why: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where the store lives: `--state-dir`, else `ORCHESTRATE_STATE_DIR`, else
/// `$XDG_STATE_HOME/orchestrate` (when absolute), else `~/.local/state/orchestrate`.
/// Without HOME (systemd units, `env -i`) the home comes from the password database, as
/// ssh and cron find it; there is never a fallback to a shared folder such as /tmp.
pub fn default_state_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORCHESTRATE_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    // The XDG spec: a relative value is invalid and ignored.
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| Path::new(v).is_absolute()) {
        return Ok(PathBuf::from(p).join("orchestrate"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(home_from_passwd)
        .ok_or(StoreError::NoHome)?;
    Ok(home.join(".local/state/orchestrate"))
}

fn home_from_passwd() -> Option<PathBuf> {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok()??;
    (!user.dir.as_os_str().is_empty()).then_some(user.dir)
}

/// Refuses a folder or file of the store that another user could have placed or could
/// change (as ssh refuses a loose ~/.ssh): it must be ours, and not writable by group or
/// others. `follow`: the state dir itself may be a symlink (to a folder of ours); nothing
/// inside it may.
fn check_private(path: &Path, follow: bool) -> Result<()> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Dir {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let unsafe_because = |why: String| StoreError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_because(
            "it is a symlink inside the state directory".into(),
        ));
    }
    if let Some(why) = crate::sys::not_private(&meta) {
        let hint = match why {
            crate::sys::NotPrivate::Writable { .. } => {
                format!("; run `chmod go-w {}`", path.display())
            }
            crate::sys::NotPrivate::Owner { .. } => String::new(),
        };
        return Err(unsafe_because(format!("{why}{hint}")));
    }
    Ok(())
}

/// A state dir that is a symlink must be one we (or root) made: another user's link would
/// send our store, and gc's sweeps, wherever they chose.
fn check_link_owner(root: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() && meta.uid() != me && meta.uid() != 0 {
        return Err(StoreError::Unsafe {
            path: root.to_path_buf(),
            why: format!("it is a symlink made by uid {}, not by you", meta.uid()),
        });
    }
    Ok(())
}

/// The state dir and what orchestrate keeps directly in it, checked with `check_private`.
pub fn check_state_dir(root: &Path) -> Result<()> {
    check_is_dir(root)?;
    check_link_owner(root)?;
    check_private(root, true)?;
    for name in ["history.db", "runs", "locks", "cron", "spill"] {
        check_private(&root.join(name), false)?;
    }
    Ok(())
}

/// A state dir that is there must be a folder (or a symlink to one): a file in its place is
/// reported as such, never read as an empty history.
pub fn check_is_dir(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if !m.is_dir() => Err(StoreError::NotADir(root.to_path_buf())),
        _ => Ok(()),
    }
}

/// The open history: its directory and a connection to its database.
pub struct RunStore {
    root: PathBuf,
    db_path: PathBuf,
    conn: Connection,
    /// Set when the store cannot be written (`readonly`): what settling changes is kept in
    /// this process's temp tables instead.
    shadow: Option<readonly::Shadow>,
}

pub use crate::sys::create_private_dir;

fn mkdir_private(path: &Path) -> std::io::Result<()> {
    create_private_dir(path)
}

impl RunStore {
    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        }
    }

    /// Runs `f` in one write transaction: what it reads stays true until it commits, for
    /// another process's writer waits (`BEGIN IMMEDIATE`; on a read-only store, whose writes
    /// go to this process's temp tables, a plain `BEGIN`). Rolled back if `f` fails.
    fn in_write<T>(&mut self, f: impl FnOnce(&mut RunStore) -> Result<T>) -> Result<T> {
        let begin = if self.read_only() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.conn.execute_batch(begin).map_err(self.sql_err())?;
        let done = f(self);
        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.execute_batch(end).map_err(self.sql_err());
        match (done, ended) {
            (Ok(t), Ok(())) => Ok(t),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a run's captured output.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        run_dir_in(&self.root, run_id)
    }
}

fn run_dir_in(root: &Path, run_id: &str) -> PathBuf {
    root.join("runs").join(as_component(run_id))
}

/// The folder holding the capture file of `out`, a stream of a record of `run_id` in the store
/// at `root`: that run's, or for a record carried over by `--resume`, the folder of the run it
/// came from. Only that run's id is taken from the stored path (`.../runs/<id>/<job>/<stream>`),
/// and checked as every id read back; the folder is made from it under this store's `runs/`.
pub fn capture_dir(root: &Path, run_id: &str, out: &crate::record::StoredOutput) -> PathBuf {
    let origin = out
        .path
        .as_deref()
        .filter(|_| out.captured)
        .and_then(|p| p.parent()?.parent())
        .filter(|d| d.parent().and_then(Path::file_name) == Some("runs".as_ref()))
        .and_then(|d| d.file_name()?.to_str())
        .filter(|id| valid_run_id(id));
    run_dir_in(root, origin.unwrap_or(run_id))
}
