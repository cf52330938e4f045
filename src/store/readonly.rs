//! A store this process cannot write (a read-only mount, a full disk, a folder or file
//! without write permission): opened read-only, and what settling would change (a dead run interrupted, a
//! lost job) kept in temp tables that shadow the stored ones, for this process alone.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::records::RecordTable;
use super::schema::{SCHEMA_VERSION, corrupt_or_sql, not_too_new, user_version};
use super::{Result, RunStore, StoreError};

/// What a read-only store keeps for this process only.
pub(super) struct Shadow {
    /// Whether a record was changed: records are then read through a view of the stored ones
    /// and this process's overlay.
    overlay: bool,
}

/// Why the store at `root` cannot be written, if it cannot: its folder, its database or the
/// database's WAL files, in words that name the file when it is not the folder.
pub(super) fn unwritable(root: &Path) -> Option<String> {
    let db = root.join("history.db");
    [
        root.to_path_buf(),
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
        db,
    ]
    .iter()
    .find_map(|p| match crate::sys::may_write(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if p == root => Some(crate::text::os_text(&e)),
        Err(e) => Some(format!("{}: {}", p.display(), crate::text::os_text(&e))),
        Ok(()) => None,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl RunStore {
    /// Opens the store for reading only. SQLite reads a WAL database so when its -shm and
    /// -wal files exist (a killed run leaves them) or can be made. When they can be neither
    /// (the last writer closed cleanly and removed them), the database file holds the whole
    /// history and nobody can change it, so it is opened `immutable`, which needs neither.
    pub(super) fn open_read_only(root: &Path) -> Result<RunStore> {
        let db_path = root.join("history.db");
        let refuse = |why: String| StoreError::ReadOnly {
            path: root.to_path_buf(),
            why,
        };
        let corrupt = corrupt_or_sql(&db_path);
        let (conn, version) = match connect(&db_path, false) {
            // Cannot make the -shm file: not allowed to, or no space left for it.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::CannotOpen | ErrorCode::DiskFull | ErrorCode::SystemIoFailure)
                ) =>
            {
                if wal_holds_changes(&db_path) {
                    return Err(refuse(
                        "history.db-wal holds changes that cannot be read without history.db-shm, which cannot be made there; run orchestrate once where the folder can be written".into(),
                    ));
                }
                connect(&db_path, true).map_err(&corrupt)?
            }
            r => r.map_err(&corrupt)?,
        };
        not_too_new(&db_path, version)?;
        if version < READ_ONLY_OLDEST {
            return Err(refuse(format!(
                "its history (schema version {version}) must first be upgraded to version {SCHEMA_VERSION}; run this orchestrate once where the folder can be written"
            )));
        }
        // Temp tables in memory: the temp folder may be read-only too. Settling changes run
        // rows, which are few: they are copied, and the copy shadows the stored table (SQLite
        // finds a temp table first by name).
        conn.busy_timeout(Duration::from_secs(30))
            .and_then(|()| {
                conn.execute_batch(
                    "PRAGMA temp_store = MEMORY;
                     CREATE TEMP TABLE runs AS SELECT * FROM main.runs;
                     CREATE UNIQUE INDEX temp.runs_id ON runs(id);
                     CREATE INDEX temp.runs_started ON runs(started_ms);",
                )
            })
            .map_err(&corrupt)?;
        Ok(RunStore {
            root: root.to_path_buf(),
            db_path: db_path.clone(),
            conn,
            shadow: Some(Shadow { overlay: false }),
        })
    }

    /// Whether the store was opened read-only: nothing this process changes is kept.
    pub fn read_only(&self) -> bool {
        self.shadow.is_some()
    }

    /// Where a record is written: the stored table, or on a read-only store this process's
    /// overlay. The overlay is made at the first record written (rare: a killed run's jobs, a
    /// lost background job), so reads of a store with nothing to settle stay plain.
    pub(super) fn record_table(&mut self) -> Result<RecordTable> {
        let Some(shadow) = &mut self.shadow else {
            return Ok(RecordTable::Stored);
        };
        if !shadow.overlay {
            self.conn
                .execute_batch(OVERLAY)
                .map_err(|source| StoreError::Sql {
                    path: self.db_path.clone(),
                    source,
                })?;
            shadow.overlay = true;
        }
        Ok(RecordTable::Overlay)
    }
}

/// The oldest schema a read-only store is read in as it is: 10 only dropped an index of 9.
const READ_ONLY_OLDEST: i64 = 9;

/// The overlay of changed records, and the view that every query of `records` then reads:
/// each stored record unless the overlay has one for that job.
const OVERLAY: &str = "CREATE TEMP TABLE records_overlay AS SELECT * FROM main.records WHERE 0;
     CREATE UNIQUE INDEX temp.records_overlay_key ON records_overlay(run_id, idx, job);
     CREATE TEMP VIEW records AS
       SELECT * FROM main.records m WHERE NOT EXISTS
         (SELECT 1 FROM records_overlay o WHERE o.run_id = m.run_id AND o.idx = m.idx AND o.job = m.job)
       UNION ALL SELECT * FROM records_overlay;";

/// A read-only connection and the database's schema version (its first read, where SQLite
/// finds whether it can read the WAL).
fn connect(db_path: &Path, immutable: bool) -> rusqlite::Result<(Connection, i64)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if immutable {
        Connection::open_with_flags(immutable_uri(db_path), flags | OpenFlags::SQLITE_OPEN_URI)?
    } else {
        Connection::open_with_flags(db_path, flags)?
    };
    let version = user_version(&conn)?;
    Ok((conn, version))
}

/// Whether the WAL file has anything in it: an `immutable` database would not read it.
fn wal_holds_changes(db_path: &Path) -> bool {
    std::fs::metadata(with_suffix(db_path, "-wal")).is_ok_and(|m| m.len() > 0)
}

/// `file:<path>?immutable=1`, with every byte of the path that a URI could misread
/// (`?`, `#`, `%`, spaces, non-ASCII) percent-encoded, as SQLite decodes it.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CompletedProcess, RunStatus, Sealed, Secrets, Status};
    use crate::store::NewRun;

    const ID: &str = "20260101-000000-000abcd";

    /// A store holding one run whose orchestrate is gone, with a job that was running then.
    fn killed_run(root: &Path) {
        let mut s = RunStore::open(root).unwrap();
        s.begin_run(&NewRun {
            id: ID.into(),
            job_file: None,
            job_file_hash: None,
            started: std::time::SystemTime::now(),
            total: 1,
        })
        .unwrap();
        let rec =
            CompletedProcess::not_started("j", 0, vec!["x".into()], Status::Running, "".into());
        s.record_batch(ID, &[Sealed::new(rec, &Secrets::default())])
            .unwrap();
        s.conn
            .execute("UPDATE runs SET owner = NULL, pid = ?1", [i32::MAX])
            .unwrap();
    }

    fn stored_statuses(root: &Path) -> (String, String) {
        let c = Connection::open(root.join("history.db")).unwrap();
        let run = c.query_row("SELECT status FROM runs", [], |r| r.get(0));
        let rec = c.query_row("SELECT status FROM records", [], |r| r.get(0));
        (run.unwrap(), rec.unwrap())
    }

    #[test]
    fn a_read_only_store_shows_what_settling_would_write_and_writes_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        killed_run(dir.path());
        let mut ro = RunStore::open_read_only(dir.path()).unwrap();
        assert!(ro.read_only());
        // Cached before the overlay exists: the cached statement must read the overlay after.
        assert_eq!(ro.records(ID).unwrap()[0].status, Status::Running);
        let run = ro.run(ID).unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert_eq!(run.counts.get(Status::Interrupted), 1);
        let rec = &ro.records(ID).unwrap()[0];
        assert_eq!(rec.status, Status::Interrupted);
        assert!(rec.notes.iter().any(|n| n.contains("its run was killed")));
        assert_eq!(ro.record(ID, "j").unwrap().status, Status::Interrupted);
        drop(ro);
        assert_eq!(
            stored_statuses(dir.path()),
            ("running".into(), "running".into())
        );
        // A writable store settles for good.
        RunStore::open_existing(dir.path())
            .unwrap()
            .run(ID)
            .unwrap();
        assert_eq!(
            stored_statuses(dir.path()),
            ("interrupted".into(), "interrupted".into())
        );
    }

    #[test]
    fn an_immutable_open_finds_a_database_whatever_its_path_holds() {
        let root = tempfile::tempdir().unwrap();
        let odd = root.path().join("a b?c#d%e");
        drop(RunStore::open(&odd).unwrap());
        assert_eq!(
            immutable_uri(Path::new("/a b?c#d%e/h.db")),
            "file:/a%20b%3Fc%23d%25e/h.db?immutable=1"
        );
        let (_, version) = connect(&odd.join("history.db"), true).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_corrupt_database_opened_read_only_is_still_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("history.db"), b"not a database".repeat(300)).unwrap();
        let err = RunStore::open_read_only(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
