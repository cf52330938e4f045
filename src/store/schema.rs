//! The database file: its schema and migrations, and opening or creating it safely.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Result, RunStore, StoreError, mkdir_private};

/// The schema this build writes. Older databases are migrated on open; newer ones are refused.
pub const SCHEMA_VERSION: i64 = 11;

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
    // 2 -> 3: a run's jobs counted by status (JSON), as `record::Counts` counts them.
    "ALTER TABLE runs ADD COLUMN counts TEXT;",
    // 3 -> 4: the run's orchestrate process beyond its pid (start time, boot, PID namespace),
    // so that a run is judged dead only when it is.
    "ALTER TABLE runs ADD COLUMN owner TEXT;",
    // 4 -> 5: `seen` becomes bits, one per command that reports a background job's end
    // (`status` 1, `wait` 2), so that one looking does not hide the end from the other.
    "UPDATE records SET seen = 3 WHERE seen = 1;",
    // 5 -> 6: records of hooks and notifications (`CompletedProcess::hook`), kept with the
    // run and left out of its counts.
    "ALTER TABLE records ADD COLUMN hook TEXT;",
    // 6 -> 7: the index on (background, status) took an entry for every record, though only
    // background jobs' records and running ones are ever looked up by it. Two partial indexes
    // take entries for those alone, so that a finished job's record costs one index fewer.
    // The rows are left as they are.
    "DROP INDEX records_background;
    CREATE INDEX records_background ON records(status) WHERE background = 1;
    CREATE INDEX records_running ON records(run_id) WHERE status = 'running';",
    // 7 -> 8: records keyed by (run_id, idx, job), so that one index serves both the upsert of
    // a job's record and reading a run in job-file order, and `records_run_order` goes: each
    // record cost four b-tree inserts, now three (measured: about a fifth less CPU per
    // insert, and 30 bytes less a record). A job keeps its index within a run, so the key is
    // as unique as (run_id, job) was. The table is rebuilt: SQLite cannot change a key.
    "CREATE TABLE records_v8 (
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
        background INTEGER NOT NULL DEFAULT 0,
        seen INTEGER NOT NULL DEFAULT 0,
        hook TEXT,
        PRIMARY KEY (run_id, idx, job)
    );
    INSERT INTO records_v8 (run_id, idx, job, status, returncode, started_ms, duration_ms,
        stdout_bytes, stderr_bytes, record, background, seen, hook)
      SELECT run_id, idx, job, status, returncode, started_ms, duration_ms,
        stdout_bytes, stderr_bytes, record, background, seen, hook
      FROM records ORDER BY run_id, idx, job;
    DROP TABLE records;
    ALTER TABLE records_v8 RENAME TO records;
    CREATE INDEX records_job ON records(job, started_ms);
    CREATE INDEX records_background ON records(status) WHERE background = 1;
    CREATE INDEX records_running ON records(run_id) WHERE status = 'running';",
    // 8 -> 9: a job across runs is found run by run (`runs` newest first, then the job in
    // each), not through an index led by the job's name. That index took each record's entry
    // next to the same job's entries of every earlier run, so every record of a run dirtied
    // an index page of its own, written again at each commit: the store's cost per record grew
    // with its history (measured on this schema alone: 8 µs a record in a store's first run of
    // 2,000 jobs, 19 in its sixtieth). Led by the run, a run's entries sit together and each
    // commit touches a few pages. Status, duration and hook ride along, so a job file's recent
    // durations and a run's counts are read from the index alone.
    // A job file's recent durations are kept in one row (`recent`), so that a run reads one
    // row before it starts rather than 20 records a job.
    "DROP INDEX records_job;
    CREATE INDEX records_run_job ON records(run_id, job, status, duration_ms, hook);
    CREATE TABLE durations (job_file TEXT PRIMARY KEY, recent BLOB NOT NULL);",
    // 9 -> 10: `records_run_job` goes. Within a run its entries are in the order of the jobs'
    // names, not of their ends, so each record's entry went into the middle of the run's
    // pages and each commit wrote them all again: measured, it was 3.3 of the 7.7 µs of CPU a
    // record cost SQLite in a store with a history (writes, commit and checkpoint). What it
    // served is found through the key (run_id, idx, job) instead: a job within a run by its
    // index (`run_by_run` tries the index the job had in the run before, then reads the run's
    // key entries alone, which hold the name); a run's counts and succeeded durations, once
    // at its end, from its rows.
    "DROP INDEX records_run_job;",
    // 10 -> 11: no table changes. A record's JSON leaves out what its row's columns hold (job,
    // index, status, exit code, start: `record::in_stored_form`, `store::row`), a fifth of its
    // bytes; this build reads rows of either form, and an older one, which would not find
    // those fields, refuses the database as newer than itself instead.
    "-- the record's stored form",
];

/// The schema a new database is made with: what `MIGRATIONS` build from nothing, made at once
/// (replayed, their ALTERs and the rebuild of 7 -> 8 cost a new store a few ms of CPU). A
/// test checks the two give the same tables, columns, keys and indexes.
const FRESH: &str = "CREATE TABLE runs (
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
        failed INTEGER NOT NULL DEFAULT 0,
        env_keys TEXT,
        counts TEXT,
        owner TEXT
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
        background INTEGER NOT NULL DEFAULT 0,
        seen INTEGER NOT NULL DEFAULT 0,
        hook TEXT,
        PRIMARY KEY (run_id, idx, job)
    );
    CREATE INDEX records_background ON records(status) WHERE background = 1;
    CREATE INDEX records_running ON records(run_id) WHERE status = 'running';
    CREATE TABLE durations (job_file TEXT PRIMARY KEY, recent BLOB NOT NULL);";

impl RunStore {
    /// Opens (creating if needed) the store for writing: checks the directory is writable and
    /// the database sound before any job starts.
    pub fn open(root: &Path) -> Result<RunStore> {
        let dir_err = |source| StoreError::Dir {
            path: root.to_path_buf(),
            source,
        };
        super::check_is_dir(root)?;
        let fresh = !root.exists();
        mkdir_private(root).map_err(dir_err)?;
        super::check_state_dir(root)?;
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
        let mut store = Self::open_db(root, true).map_err(|e| {
            // SQLite says "disk I/O error" when it cannot make its WAL files: say why.
            if crate::sys::no_space_left(root) {
                dir_err(std::io::Error::other("no space left on its file system"))
            } else {
                e
            }
        })?;
        store.fold_spills();
        Ok(store)
    }

    /// Opens an existing store for the inspection commands. One this process cannot write (a
    /// read-only mount, a folder or file without write permission) is opened read-only
    /// (`readonly`): it is read as it is, and what settling would change is not written.
    pub fn open_existing(root: &Path) -> Result<RunStore> {
        Self::check_existing(root)?;
        if super::readonly::unwritable(root).is_some() {
            return Self::open_read_only(root);
        }
        let store = match Self::open_db(root, false) {
            // A full disk cannot take the WAL's -shm file, nor settling's writes: the history
            // is still there to read, as on a read-only mount. (If it cannot be read either,
            // the first error is the one to report.)
            Err(e) if crate::sys::no_space_left(root) => {
                return Self::open_read_only(root).map_err(|_| e);
            }
            r => r?,
        };
        // SQLite opens a file it may not write for reading only, without saying so.
        if store.conn.is_readonly("main").unwrap_or(false) {
            drop(store);
            return Self::open_read_only(root);
        }
        Ok(store)
    }

    /// Opens an existing store for a command that writes it (`gc`, `kill`, `--resume`):
    /// refused before it does anything when the store cannot be written. `what` names the
    /// command in the error.
    pub fn open_existing_writable(root: &Path, what: &str) -> Result<RunStore> {
        Self::check_existing(root)?;
        if let Some(why) = super::readonly::unwritable(root) {
            return Err(StoreError::ReadOnly {
                path: root.to_path_buf(),
                why: format!("{why}; {what} needs to write it"),
            });
        }
        Self::open_db(root, false)
    }

    fn check_existing(root: &Path) -> Result<()> {
        super::check_is_dir(root)?;
        if !root.join("history.db").exists() {
            return Err(StoreError::Empty(root.to_path_buf()));
        }
        super::check_state_dir(root)
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
        let corrupt = corrupt_or_sql(&db_path);
        let version = user_version(&conn).map_err(&corrupt)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&corrupt)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&corrupt)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(&corrupt)?;
        not_too_new(&db_path, version)?;
        let mut store = RunStore {
            root: root.to_path_buf(),
            db_path: db_path.clone(),
            conn,
            shadow: None,
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
                shadow: None,
            };
            // Set before the first table: gc can then give freed pages back to the file
            // system without rebuilding the database (`gc::shrink`).
            store
                .conn
                .pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(sql)?;
            store.create_fresh().map_err(sql)?;
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

    fn create_fresh(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(FRESH)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()
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
}

/// The schema version a database says it has; reading it is the first read of the file.
pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// A database that is no database, or a damaged one, is `Corrupt`; other errors are `Sql`.
pub(super) fn corrupt_or_sql(db_path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if matches!(
                f.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            StoreError::Corrupt {
                path: db_path.to_path_buf(),
                message: msg.clone().unwrap_or_else(|| f.to_string()),
            }
        }
        _ => StoreError::Sql {
            path: db_path.to_path_buf(),
            source: e,
        },
    }
}

pub(super) fn not_too_new(db_path: &Path, version: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: db_path.to_path_buf(),
            found: version,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_memory() -> RunStore {
        RunStore {
            root: "/nonexistent".into(),
            db_path: ":memory:".into(),
            conn: Connection::open_in_memory().unwrap(),
            shadow: None,
        }
    }

    /// Every table's columns and foreign keys and every index's columns and condition, by name.
    fn layout(conn: &Connection) -> Vec<String> {
        let rows = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(cells.join(" "))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let entries: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut out = Vec::new();
        for (kind, name, table, sql) in entries {
            out.push(format!("{kind} {name} on {table}"));
            if kind == "table" {
                out.extend(rows(&format!("PRAGMA table_xinfo({name})")));
                out.extend(rows(&format!("PRAGMA foreign_key_list({name})")));
            } else {
                out.extend(rows(&format!("PRAGMA index_xinfo({name})")));
                let condition =
                    sql.and_then(|s| s.split_once(" WHERE ").map(|(_, w)| w.to_string()));
                out.push(format!("where {condition:?}"));
            }
        }
        out
    }

    #[test]
    fn a_new_database_has_the_schema_the_migrations_build() {
        let mut migrated = in_memory();
        migrated.migrate(0).unwrap();
        let mut fresh = in_memory();
        fresh.create_fresh().unwrap();
        assert_eq!(user_version(&fresh.conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(user_version(&migrated.conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(layout(&fresh.conn), layout(&migrated.conn));
    }
}
