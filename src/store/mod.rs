//! The run history: SQLite (WAL) for runs and records, plain files for output bytes.
//!
//! ```text
//! <state dir>/history.db
//! <state dir>/locks/
//! <state dir>/runs/<run-id>/<job>/stdout|stderr
//! ```

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use crate::plan::{DEFAULT_RETENTION, Retention};
use crate::record::{CompletedProcess, Status, from_millis, to_millis};

/// The schema this build writes. Older databases are migrated on open; newer ones are refused.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        job_file TEXT,
        job_file_hash TEXT,
        host TEXT,
        user TEXT,
        pid INTEGER,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        status TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_started ON runs(started_ms);
    CREATE TABLE records (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        job TEXT NOT NULL,
        status TEXT NOT NULL,
        returncode INTEGER,
        started_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        stdout_bytes INTEGER NOT NULL,
        stderr_bytes INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (run_id, job)
    );
    CREATE INDEX records_job ON records(job, started_ms);",
    // 1 -> 2: background jobs, and whether `status` has shown their end.
    "ALTER TABLE records ADD COLUMN background INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX records_background ON records(background, status);
    ALTER TABLE runs ADD COLUMN env_keys TEXT;
    CREATE INDEX records_run_order ON records(run_id, idx);",
];

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
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where the store lives: `--state-dir`, else `ORCHESTRATE_STATE_DIR`, else
/// `$XDG_STATE_HOME/orchestrate`, else `~/.local/state/orchestrate`.
pub fn default_state_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("ORCHESTRATE_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("orchestrate");
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/orchestrate")
}

/// A run as listed by `orchestrate runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: String,
    pub job_file: Option<String>,
    pub job_file_hash: Option<String>,
    pub host: Option<String>,
    pub user: Option<String>,
    pub pid: Option<u32>,
    #[serde(serialize_with = "ser_time")]
    pub started: SystemTime,
    #[serde(serialize_with = "ser_opt_time")]
    pub ended: Option<SystemTime>,
    pub status: String,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::record::format_time(*t))
}

fn ser_opt_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&crate::record::format_time(*t)),
        None => s.serialize_none(),
    }
}

impl RunRow {
    pub fn duration(&self) -> Option<Duration> {
        self.ended.and_then(|e| e.duration_since(self.started).ok())
    }
}

/// One line of the `show` table.
#[derive(Debug, Clone)]
pub struct ShowRow {
    pub index: usize,
    pub job: String,
    pub status: String,
    pub outcome: String,
    pub duration: Duration,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

/// Facts about a run known when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub job_file: Option<String>,
    pub job_file_hash: Option<String>,
    pub started: SystemTime,
    pub total: usize,
}

/// Filters of `orchestrate runs`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub failed_only: bool,
    pub job_file: Option<String>,
    pub since: Option<SystemTime>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub runs_removed: usize,
    pub bytes_removed: u64,
}

pub struct RunStore {
    root: PathBuf,
    db_path: PathBuf,
    conn: Connection,
}

fn mkdir_private(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl RunStore {
    /// Opens (creating if needed) the store for writing: checks the directory is writable and
    /// the database sound before any job starts.
    pub fn open(root: &Path) -> Result<RunStore> {
        let dir_err = |source| StoreError::Dir {
            path: root.to_path_buf(),
            source,
        };
        let fresh = !root.exists();
        mkdir_private(root).map_err(dir_err)?;
        if fresh {
            // DirBuilder's mode is filtered by the umask; the store must not be readable by others.
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(dir_err)?;
        }
        mkdir_private(&root.join("runs")).map_err(dir_err)?;
        // Prove the directory is writable now rather than at the first job's output.
        let probe = root.join(format!(".probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(dir_err)?;
        let _ = std::fs::remove_file(&probe);
        Self::open_db(root, true)
    }

    /// Opens an existing store for the inspection commands.
    pub fn open_existing(root: &Path) -> Result<RunStore> {
        if !root.join("history.db").exists() {
            return Err(StoreError::Empty(root.to_path_buf()));
        }
        Self::open_db(root, false)
    }

    fn open_db(root: &Path, create: bool) -> Result<RunStore> {
        let db_path = root.join("history.db");
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        if create && !db_path.exists() {
            Self::create_db(root, &db_path)?;
        }
        let conn = Connection::open_with_flags(&db_path, flags).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
        let corrupt = |e: rusqlite::Error| match &e {
            rusqlite::Error::SqliteFailure(f, msg)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                StoreError::Corrupt {
                    path: db_path.clone(),
                    message: msg.clone().unwrap_or_else(|| f.to_string()),
                }
            }
            _ => StoreError::Sql {
                path: db_path.clone(),
                source: e,
            },
        };
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(corrupt)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(corrupt)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: db_path.clone(),
                found: version,
            });
        }
        let mut store = RunStore {
            root: root.to_path_buf(),
            db_path: db_path.clone(),
            conn,
        };
        if version < SCHEMA_VERSION {
            store.migrate(version).map_err(corrupt)?;
        }
        Ok(store)
    }

    /// Builds a new database under a temporary name (schema made, WAL mode set), syncs it
    /// and links it into place, so that no process ever opens a half-made one: several runs
    /// starting on a new store (cron jobs at the same minute), or `show` polling a run that
    /// is creating it, otherwise race SQLite's switch to WAL mode and one of them gets
    /// "database is locked" at once, whatever the busy timeout. If another process linked
    /// its database first, theirs is kept.
    fn create_db(root: &Path, db_path: &Path) -> Result<()> {
        let tmp = root.join(format!(".history.db.new-{}", std::process::id()));
        let sql = |source| StoreError::Sql {
            path: tmp.clone(),
            source,
        };
        let dir = |source| StoreError::Dir {
            path: root.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_file(&tmp);
        {
            let conn = Connection::open(&tmp).map_err(sql)?;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(sql)?;
            conn.pragma_update(None, "journal_mode", "OFF")
                .map_err(sql)?;
            let mut store = RunStore {
                root: root.to_path_buf(),
                db_path: tmp.clone(),
                conn,
            };
            store.migrate(0).map_err(sql)?;
            store
                .conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(sql)?;
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(dir)?;
        let linked = std::fs::hard_link(&tmp, db_path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(dir(e)),
        }
    }

    fn migrate(&mut self, from: i64) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(now.max(from) as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()
    }

    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a run's captured output.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id)
    }

    pub fn begin_run(&mut self, run: &NewRun) -> Result<()> {
        let host = hostname();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok();
        self.conn
            .execute(
                "INSERT INTO runs (id, job_file, job_file_hash, host, user, pid, started_ms, status, total, env_keys)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9)",
                params![
                    run.id,
                    run.job_file,
                    run.job_file_hash,
                    host,
                    user,
                    std::process::id(),
                    to_millis(run.started),
                    run.total as i64,
                    serde_json::to_string(crate::environ::inherited_env_keys())
                        .expect("names serialize")
                ],
            )
            .map_err(self.sql_err())?;
        mkdir_private(&self.run_dir(&run.id)).map_err(|source| StoreError::Dir {
            path: self.run_dir(&run.id),
            source,
        })?;
        Ok(())
    }

    /// Commits finished records in one transaction (one fsync for the whole batch).
    pub fn record_batch(&mut self, run_id: &str, recs: &[CompletedProcess]) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let path = self.db_path.clone();
        let sql = move |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            // A local background job's record belongs to its supervisor; a Slurm one's (sbatch)
            // is written here and followed through Slurm.
            let ours = |r: &&CompletedProcess| !r.background || r.slurm_job_id.is_some();
            for r in recs.iter().filter(ours) {
                // The run reported how it ended (it waited): nothing new for `status`.
                let seen = r.background && r.status != Status::Background;
                insert_record(&tx, run_id, r, seen).map_err(&sql)?;
            }
            let mine = recs.iter().filter(ours);
            let (ok, bad) = mine.fold((0i64, 0i64), |(ok, bad), r| {
                if r.status.is_failure() {
                    (ok, bad + 1)
                } else {
                    (ok + 1, bad)
                }
            });
            tx.prepare_cached(
                "UPDATE runs SET succeeded = succeeded + ?2, failed = failed + ?3 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![run_id, ok, bad]))
            .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }

    pub fn finish_run(&mut self, run_id: &str, status: &str, ended: SystemTime) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, ended_ms = ?3 WHERE id = ?1",
                params![run_id, status, to_millis(ended)],
            )
            .map_err(self.sql_err())?;
        self.recount(run_id)
    }

    /// Recomputes a run's counts from its records (background jobs end after their run).
    pub fn recount(&mut self, run_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET
                   succeeded = (SELECT COUNT(*) FROM records WHERE run_id = ?1 AND status IN ('succeeded', 'background')),
                   failed = (SELECT COUNT(*) FROM records WHERE run_id = ?1 AND status NOT IN ('succeeded', 'background'))
                 WHERE id = ?1",
                params![run_id],
            )
            .map_err(self.sql_err())?;
        Ok(())
    }

    /// Writes one background job's record (its supervisor's), replacing an earlier one.
    pub fn put_background(&mut self, run_id: &str, r: &CompletedProcess) -> Result<()> {
        self.put_background_seen(run_id, r, false)
    }

    /// As `put_background`; `seen` when its end was already reported (a run that waited).
    pub fn put_background_seen(
        &mut self,
        run_id: &str,
        r: &CompletedProcess,
        seen: bool,
    ) -> Result<()> {
        let mut r = r.clone();
        r.background = true;
        insert_record(&self.conn, run_id, &r, seen).map_err(self.sql_err())?;
        self.recount(run_id)
    }

    /// Background jobs, newest first: `(run id, record, seen)`. With `unseen_or_running`, only
    /// those still running and those whose end `status` has not shown yet.
    pub fn background_jobs(
        &mut self,
        unseen_or_running: bool,
    ) -> Result<Vec<(String, CompletedProcess, bool)>> {
        let sql = if unseen_or_running {
            "SELECT run_id, record, seen FROM records WHERE background = 1 AND (status = 'background' OR seen = 0) ORDER BY started_ms DESC"
        } else {
            "SELECT run_id, record, seen FROM records WHERE background = 1 ORDER BY started_ms DESC LIMIT 1000"
        };
        let mut stmt = self.conn.prepare(sql).map_err(self.sql_err())?;
        let rows: Vec<(String, String, bool)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, j, seen)| serde_json::from_str(&j).ok().map(|r| (id, r, seen)))
            .collect())
    }

    /// Notes that `status` showed the end of these background jobs.
    pub fn mark_seen(&mut self, jobs: &[(String, String)]) -> Result<()> {
        let tx = self.conn.transaction().map_err(|source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        })?;
        for (run, job) in jobs {
            tx.execute(
                "UPDATE records SET seen = 1 WHERE run_id = ?1 AND job = ?2 AND status != 'background'",
                params![run, job],
            )
            .map_err(|source| StoreError::Sql {
                path: self.db_path.clone(),
                source,
            })?;
        }
        tx.commit().map_err(|source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
        })
    }

    /// Runs still marked running whose orchestrate process is gone are marked interrupted.
    fn settle_dead_runs(&mut self) -> Result<()> {
        let host = hostname();
        let mut stmt = self
            .conn
            .prepare("SELECT id, pid, host FROM runs WHERE status = 'running'")
            .map_err(self.sql_err())?;
        let rows: Vec<(String, Option<u32>, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        for (id, pid, run_host) in rows {
            if run_host.is_some() && run_host != host {
                continue;
            }
            let alive = pid.is_some_and(process_alive);
            if !alive {
                self.conn
                    .execute(
                        "UPDATE runs SET status = 'interrupted',
                           ended_ms = COALESCE(ended_ms, (SELECT MAX(started_ms + duration_ms) FROM records WHERE run_id = ?1), started_ms)
                         WHERE id = ?1 AND status = 'running'",
                        params![id],
                    )
                    .map_err(self.sql_err())?;
            }
        }
        Ok(())
    }

    fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            job_file: r.get(1)?,
            job_file_hash: r.get(2)?,
            host: r.get(3)?,
            user: r.get(4)?,
            pid: r.get(5)?,
            started: from_millis(r.get(6)?),
            ended: r.get::<_, Option<i64>>(7)?.map(from_millis),
            status: r.get(8)?,
            total: r.get::<_, i64>(9)? as u64,
            succeeded: r.get::<_, i64>(10)? as u64,
            failed: r.get::<_, i64>(11)? as u64,
        })
    }

    const RUN_COLS: &'static str = "id, job_file, job_file_hash, host, user, pid, started_ms, ended_ms, status, total, succeeded, failed";

    /// Runs, newest first.
    pub fn list_runs(&mut self, f: &RunFilter) -> Result<Vec<RunRow>> {
        self.settle_dead_runs()?;
        let mut sql = format!("SELECT {} FROM runs WHERE 1=1", Self::RUN_COLS);
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if f.failed_only {
            sql.push_str(" AND (failed > 0 OR status NOT IN ('succeeded', 'running'))");
        }
        if let Some(jf) = &f.job_file {
            sql.push_str(" AND (job_file = ? OR job_file LIKE ?)");
            args.push(jf.clone().into());
            args.push(format!("%/{jf}").into());
        }
        if let Some(since) = f.since {
            sql.push_str(" AND started_ms >= ?");
            args.push(to_millis(since).into());
        }
        sql.push_str(" ORDER BY started_ms DESC, id DESC");
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), Self::row_to_run)
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql_err())?;
        Ok(rows)
    }

    pub fn run(&mut self, id: &str) -> Result<RunRow> {
        self.settle_dead_runs()?;
        let sql = format!("SELECT {} FROM runs WHERE id = ?1", Self::RUN_COLS);
        self.conn
            .query_row(&sql, params![id], Self::row_to_run)
            .optional()
            .map_err(self.sql_err())?
            .ok_or_else(|| StoreError::NotFound(format!("no run `{id}`")))
    }

    /// `last`, `last~N` (N runs before the last), a full id or a unique prefix.
    pub fn resolve_run(&mut self, spec: &str) -> Result<String> {
        let back = if spec == "last" {
            Some(0)
        } else {
            spec.strip_prefix("last~")
                .and_then(|n| n.parse::<i64>().ok())
        };
        if let Some(n) = back {
            return self
                .conn
                .query_row(
                    "SELECT id FROM runs ORDER BY started_ms DESC, id DESC LIMIT 1 OFFSET ?1",
                    params![n],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.sql_err())?
                .ok_or_else(|| {
                    StoreError::NotFound(if n == 0 {
                        "no runs recorded yet".to_string()
                    } else {
                        format!("there is no run {spec} (fewer runs recorded)")
                    })
                });
        }
        let escaped = spec
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 6")
            .map_err(self.sql_err())?;
        let ids: Vec<String> = stmt
            .query_map(params![format!("{escaped}%")], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        match ids.len() {
            1 => Ok(ids.into_iter().next().expect("one id")),
            0 => {
                let recent = self.list_runs(&RunFilter {
                    limit: Some(5),
                    ..Default::default()
                })?;
                let mut msg = format!("no run matches `{spec}`");
                if !recent.is_empty() {
                    msg.push_str("; recent runs: ");
                    msg.push_str(
                        &recent
                            .iter()
                            .map(|r| r.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                }
                Err(StoreError::NotFound(msg))
            }
            _ => Err(StoreError::NotFound(format!(
                "`{spec}` matches several runs ({}{}); give more of the id",
                ids.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if ids.len() > 5 { ", ..." } else { "" }
            ))),
        }
    }

    /// The names of the environment a run's jobs inherited (recorded once per run).
    pub fn run_env_keys(&mut self, run_id: &str) -> Result<Vec<String>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT env_keys FROM runs WHERE id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?
            .flatten();
        Ok(json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default())
    }

    /// Calls `f` with each of a run's records in job-file order, one at a time (a run of
    /// 100,000 jobs is never held in memory whole).
    pub fn each_record(
        &mut self,
        run_id: &str,
        mut f: impl FnMut(CompletedProcess) -> std::io::Result<()>,
    ) -> Result<usize> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM records WHERE run_id = ?1 ORDER BY idx")
            .map_err(self.sql_err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.sql_err())?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(self.sql_err())? {
            let json: String = row.get(0).map_err(self.sql_err())?;
            if let Ok(rec) = serde_json::from_str(&json) {
                n += 1;
                if f(rec).is_err() {
                    break; // the reader went away (a closed pipe)
                }
            }
        }
        Ok(n)
    }

    /// Like `each_record`, with only the columns of the `show` table (no JSON to decode).
    pub fn each_row(
        &mut self,
        run_id: &str,
        mut f: impl FnMut(ShowRow) -> std::io::Result<()>,
    ) -> Result<usize> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, job, status, returncode, json_extract(record, '$.signal'), duration_ms,
                        stdout_bytes, stderr_bytes
                 FROM records WHERE run_id = ?1 ORDER BY idx",
            )
            .map_err(self.sql_err())?;
        let mut rows = stmt.query(params![run_id]).map_err(self.sql_err())?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(self.sql_err())? {
            let get = |e| StoreError::Sql {
                path: self.db_path.clone(),
                source: e,
            };
            let code: Option<i32> = r.get(3).map_err(get)?;
            let signal: Option<i32> = r.get(4).map_err(get)?;
            let row = ShowRow {
                index: r.get::<_, i64>(0).map_err(get)? as usize,
                job: r.get(1).map_err(get)?,
                status: r.get(2).map_err(get)?,
                outcome: match (code, signal) {
                    (_, Some(sig)) => format!("signal {sig} ({})", crate::record::signal_name(sig)),
                    (Some(c), None) => format!("exit {c}"),
                    (None, None) => "-".to_string(),
                },
                duration: Duration::from_millis(r.get::<_, i64>(5).map_err(get)?.max(0) as u64),
                stdout_bytes: r.get::<_, i64>(6).map_err(get)? as u64,
                stderr_bytes: r.get::<_, i64>(7).map_err(get)? as u64,
            };
            n += 1;
            if f(row).is_err() {
                break;
            }
        }
        Ok(n)
    }

    /// The widest job name of a run, to lay out tables without loading the run.
    pub fn widest_job_name(&mut self, run_id: &str) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(LENGTH(job)), 3) FROM records WHERE run_id = ?1",
                params![run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.sql_err())
    }

    /// A run's records in job-file order.
    pub fn records(&mut self, run_id: &str) -> Result<Vec<CompletedProcess>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM records WHERE run_id = ?1 ORDER BY idx")
            .map_err(self.sql_err())?;
        let jsons: Vec<String> = stmt
            .query_map(params![run_id], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        Ok(jsons
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }

    /// The records of the jobs that succeeded in a run, for `--resume`.
    pub fn succeeded_jobs(&mut self, run_id: &str) -> Result<Vec<CompletedProcess>> {
        Ok(self
            .records(run_id)?
            .into_iter()
            .filter(|r| r.status == Status::Succeeded)
            .collect())
    }

    /// One job's record in a run; an unknown name lists the closest ones.
    pub fn record(&mut self, run_id: &str, job: &str) -> Result<CompletedProcess> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM records WHERE run_id = ?1 AND job = ?2",
                params![run_id, job],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql_err())?;
        if let Some(j) = found {
            return serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                path: self.db_path.clone(),
                message: format!("record of `{job}` in run {run_id}: {e}"),
            });
        }
        let names = self.job_names(run_id)?;
        Err(StoreError::NotFound(not_found_job(job, run_id, &names)))
    }

    /// One job across runs, newest first.
    pub fn history(&mut self, job: &str, limit: usize) -> Result<Vec<(String, CompletedProcess)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, record FROM records WHERE job = ?1 ORDER BY started_ms DESC LIMIT ?2",
            )
            .map_err(self.sql_err())?;
        let rows: Vec<(String, String)> = stmt
            .query_map(params![job, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql_err())?;
        if rows.is_empty() {
            let mut stmt = self
                .conn
                .prepare("SELECT DISTINCT job FROM records ORDER BY job LIMIT 10000")
                .map_err(self.sql_err())?;
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(self.sql_err())?
                .collect::<rusqlite::Result<_>>()
                .map_err(self.sql_err())?;
            let mut msg = format!("no job `{job}` in any recorded run");
            if let Some(s) = crate::error::suggest(job, &names) {
                msg.push_str(&format!("; did you mean `{s}`?"));
            }
            return Err(StoreError::NotFound(msg));
        }
        Ok(rows
            .into_iter()
            .filter_map(|(id, j)| serde_json::from_str(&j).ok().map(|r| (id, r)))
            .collect())
    }

    /// Removes runs beyond the retention limits, files and rows together. Runs still in
    /// progress are never removed.
    pub fn gc(&mut self, keep: &Retention, job_file: Option<&str>) -> Result<GcReport> {
        // Newest first, dead runs settled; the SQL filter narrows, the exact comparison decides.
        let mut runs = self.list_runs(&RunFilter {
            job_file: job_file.map(str::to_string),
            ..RunFilter::default()
        })?;
        if let Some(jf) = job_file {
            runs.retain(|r| r.job_file.as_deref() == Some(jf));
        }
        let now = SystemTime::now();
        let mut doomed = Vec::new();
        let mut total_bytes = 0u64;
        for (i, r) in runs.iter().enumerate() {
            if r.status == "running" {
                continue;
            }
            let too_many = keep.max_runs.is_some_and(|m| i >= m);
            let too_old = keep
                .max_age
                .is_some_and(|a| now.duration_since(r.started).unwrap_or_default() > a);
            // Sizes are only worth walking the folders for when bytes are limited.
            let bytes = if keep.max_bytes.is_some() || too_many || too_old {
                dir_size(&self.run_dir(&r.id))
            } else {
                0
            };
            let too_big = keep
                .max_bytes
                .is_some_and(|m| total_bytes + bytes > m && i > 0);
            if too_many || too_old || too_big {
                doomed.push((r.id.clone(), bytes));
            } else {
                total_bytes += bytes;
            }
        }
        let mut report = GcReport::default();
        for (id, bytes) in doomed {
            self.conn
                .execute("DELETE FROM records WHERE run_id = ?1", params![id])
                .map_err(self.sql_err())?;
            self.conn
                .execute("DELETE FROM runs WHERE id = ?1", params![id])
                .map_err(self.sql_err())?;
            let _ = std::fs::remove_dir_all(self.run_dir(&id));
            report.runs_removed += 1;
            report.bytes_removed += bytes;
        }
        Ok(report)
    }

    /// Every recorded job name of a run, for suggestions (names only: no record is decoded).
    pub fn job_names(&mut self, run_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT job FROM records WHERE run_id = ?1 ORDER BY idx")
            .map_err(self.sql_err())?;
        let names = stmt
            .query_map(params![run_id], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.sql_err())?;
        Ok(names)
    }
}

/// Writes (or replaces) one record row: the columns queries use, and the whole record as JSON.
fn insert_record(
    conn: &Connection,
    run_id: &str,
    r: &CompletedProcess,
    seen: bool,
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(r).expect("records serialize to JSON");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO records
         (run_id, idx, job, status, returncode, started_ms, duration_ms, stdout_bytes, stderr_bytes, record, background, seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        run_id,
        r.index as i64,
        r.job,
        r.status.as_str(),
        r.returncode,
        to_millis(r.started),
        r.duration.as_millis() as i64,
        r.stdout.bytes as i64,
        r.stderr.bytes as i64,
        json,
        i64::from(r.background),
        i64::from(seen)
    ])?;
    Ok(())
}

pub fn not_found_job(job: &str, run_id: &str, names: &[String]) -> String {
    let mut msg = format!("no job `{job}` in run {run_id}");
    if let Some(s) = crate::error::suggest(job, names) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else if !names.is_empty() {
        let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
        msg.push_str(&format!(
            "; its jobs: {}{}",
            shown.join(", "),
            if names.len() > 8 { ", ..." } else { "" }
        ));
    }
    msg
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

fn process_alive(pid: u32) -> bool {
    crate::sys::kill(pid, 0).unwrap_or(true)
}

/// A new run id: UTC time to the millisecond (so ids sort by time) and a random suffix.
pub fn new_run_id(now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    // 2026-11-26T01:15:10.123Z -> 20261126-011510-123
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let suffix = random_hex4();
    format!(
        "{}-{}-{}{}",
        &digits[..8],
        &digits[8..14],
        &digits[14..17],
        suffix
    )
}

fn random_hex4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:04x}", h.finish() & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id(from_millis(1_700_000_000_000));
        let b = new_run_id(from_millis(1_700_000_000_001));
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20231114-221320-0001234".len());
    }
}
