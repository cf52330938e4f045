//! The store's footprint: small outputs move into one pack per run once their job ended (a
//! running job's output stays a file of its own), gc gives the database's pages back, and an
//! older database migrates with its rows as they were.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{Env, wait_for};

fn last_run(env: &Env) -> String {
    env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every file and folder under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        if p.is_dir() {
            out.extend(
                tree(&p)
                    .into_iter()
                    .map(|q| p.strip_prefix(dir).unwrap().join(q)),
            );
        }
    }
    out.sort();
    out
}

fn db_len(env: &Env) -> u64 {
    std::fs::metadata(env.state().join("history.db"))
        .unwrap()
        .len()
}

#[test]
fn small_outputs_leave_one_pack_per_run_and_still_read_back() {
    let env = Env::new();
    let jobs = |word: &str| {
        format!(
            "jobs:\n  - name: a\n    shell: 'echo {word}-a; echo err-a >&2'\n  - name: b\n    shell: 'printf {word}-b'\n  - name: quiet\n    shell: 'true'\n"
        )
    };
    assert_eq!(env.run_jobs(&jobs("one"), &["-q"]).code, 0);
    assert_eq!(env.run_jobs(&jobs("two"), &["-q"]).code, 0);
    let id = last_run(&env);
    // No folder and no file per job: one pack for the run's outputs.
    let runs = env.state().join("runs");
    let left = tree(&runs);
    assert!(!runs.join(&id).exists(), "{left:?}");
    assert!(
        left.contains(&PathBuf::from(format!("{id}.pack"))),
        "{left:?}"
    );
    assert_eq!(left.len(), 2, "one pack per run: {left:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(runs.join(format!("{id}.pack")))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Every reader still gets the bytes.
    assert_eq!(env.run(&["logs", "a"]).stdout, "two-a\n");
    assert_eq!(env.run(&["logs", "a", "--stderr"]).stdout, "err-a\n");
    assert_eq!(env.run(&["logs", "b"]).raw_stdout, b"two-b");
    let shown = env.run(&["show", "--json"]).json();
    let a = shown.iter().find(|r| r["job"] == "a").unwrap();
    assert_eq!(a["stdout"], "two-a\n");
    assert_eq!(a["stderr"], "err-a\n");
    // No path to a file that is gone: the bytes are in the pack, and said to be there.
    assert!(a["stdout_path"].is_null(), "{a}");
    let one = env.run(&["show", "last", "--job", "a"]).stdout;
    assert!(one.contains("in the run's pack"), "{one}");
    let diff = env.run(&["diff", "a"]);
    assert!(
        diff.stdout.contains("-one-a") && diff.stdout.contains("+two-a"),
        "{diff:?}"
    );
    let older = env.run(&["logs", "b", "--run", "last~1"]);
    assert_eq!(older.raw_stdout, b"one-b");
}

#[test]
fn a_running_jobs_output_is_a_file_until_it_ends() {
    let env = Env::new();
    let go = env.path("go");
    env.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: slow\n    shell: 'echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second'\n",
            go.display()
        ),
    );
    let mut run = env.spawn(&["jobs.yaml", "-q"]);
    let file = || -> Option<PathBuf> {
        let ids = env.run(&["runs", "--json"]).json();
        let id = ids.first()?["id"].as_str()?.to_string();
        Some(env.state().join("runs").join(id).join("slow/stdout"))
    };
    assert!(wait_for(Duration::from_secs(20), || file().is_some_and(
        |f| std::fs::read_to_string(f).unwrap_or_default() == "first\n"
    )));
    let path = file().unwrap();
    // What a user would do: tail the file while the job runs.
    let tail = std::process::Command::new("tail")
        .args(["-n", "1"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tail.stdout), "first\n");
    let follow = env.spawn(&["logs", "slow", "--follow"]);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    assert!(run.wait().unwrap().success());
    let followed = follow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "first\nsecond\n");
    // Ended, its output moved into the run's pack, and still reads back.
    assert!(!path.exists(), "{path:?} is still there");
    assert_eq!(env.run(&["logs", "slow"]).stdout, "first\nsecond\n");
}

#[test]
fn gc_gives_the_databases_pages_back() {
    let env = Env::new();
    let many: String = (0..150)
        .map(|i| format!("  - name: j{i}\n    shell: 'true'\n"))
        .collect();
    for _ in 0..6 {
        assert_eq!(env.run_jobs(&format!("jobs:\n{many}"), &["-q"]).code, 0);
    }
    let before = db_len(&env);
    let kept = last_run(&env);
    let gc = env.run(&["gc", "--keep-runs", "1"]);
    assert!(gc.stdout.contains("removed 5 runs"), "{gc:?}");
    let after = db_len(&env);
    assert!(
        after < before * 2 / 3,
        "history.db {before} -> {after} bytes"
    );
    let ids: Vec<String> = env
        .run(&["runs", "--json"])
        .json()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![kept]);
    assert_eq!(env.run(&["show", "--json"]).json().len(), 150);
}

/// Makes the store's database look as schema 6 left it: records keyed by (run_id, job) with
/// the indexes it had, each record's JSON whole (beginning with its job, as serde wrote it
/// then), times as RFC 3339 text in the records, no auto_vacuum.
fn downgrade_to_schema_6(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE records_old (
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
         ALTER TABLE records_old ADD COLUMN background INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE records_old ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE records_old ADD COLUMN hook TEXT;
         INSERT INTO records_old SELECT * FROM records;
         DROP TABLE records;
         ALTER TABLE records_old RENAME TO records;
         DROP TABLE durations;
         CREATE INDEX records_job ON records(job, started_ms);
         CREATE INDEX records_run_order ON records(run_id, idx);
         CREATE INDEX records_background ON records(background, status);
         UPDATE records SET record = json_patch(json_object('job', job, 'index', idx,
             'returncode', returncode, 'status', status), record);
         UPDATE records SET record = json_set(record,
           '$.started', strftime('%Y-%m-%dT%H:%M:%fZ', started_ms / 1000.0, 'unixepoch'),
           '$.finished', strftime('%Y-%m-%dT%H:%M:%fZ', json_extract(record, '$.finished') / 1000.0, 'unixepoch'));
         PRAGMA user_version = 6;
         PRAGMA auto_vacuum = NONE;
         VACUUM;",
    )
    .unwrap();
}

/// `SELECT COUNT(*)` of the database at `db`.
fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_schema_6_database_migrates_keeps_its_rows_and_shrinks_after_gc() {
    let env = Env::new();
    let many: String = (0..150)
        .map(|i| format!("  - name: j{i}\n    shell: 'echo {i}'\n"))
        .collect();
    let yaml = format!("jobs:\n{many}");
    for _ in 0..5 {
        assert_eq!(env.run_jobs(&yaml, &["-q"]).code, 0);
    }
    let db = env.state().join("history.db");
    downgrade_to_schema_6(&db);
    let old = last_run(&env);
    let old_start: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT json_extract(record, '$.started') FROM records WHERE run_id = ?1 AND job = 'j7'",
            [&old],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(env.run_jobs(&yaml, &["-q"]).code, 0);
    let version = count(&db, "PRAGMA user_version");
    assert_eq!(version, 11);
    let index = |name: &str| {
        count(
            &db,
            &format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{name}'"),
        )
    };
    assert_eq!(index("records_running"), 1);
    // One index serves the upsert and the job-file order: the one that had only the order went.
    assert_eq!(index("records_run_order"), 0);
    // A job is found run by run through the key: the index led by the job's name went, and so
    // did the one led by the run that took its place for a while (schema 9).
    assert_eq!(index("records_job"), 0);
    assert_eq!(index("records_run_job"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM records"), 6 * 150);
    // The new run's times are numbers (milliseconds), shorter than the text they were.
    let text_times = "SELECT COUNT(*) FROM records WHERE json_type(record, '$.started') = 'text'";
    assert_eq!(count(&db, text_times), 5 * 150);
    // The old rows read as before, their text times too.
    let out = env.run(&["logs", "j7", "--run", &old]);
    assert_eq!(out.stdout, "7\n", "{out:?}");
    let shown = env.run(&["show", &old, "--job", "j7", "--json"]).json();
    assert_eq!(shown[0]["start"], old_start.as_str(), "{shown:?}");
    assert_eq!(env.run(&["show", &old]).code, 0);
    // gc switches the old database to auto_vacuum (one VACUUM) and gives its pages back.
    let before = db_len(&env);
    let gc = env.run(&["gc", "--keep-runs", "1"]);
    assert!(gc.stdout.contains("removed 5 runs"), "{gc:?}");
    assert!(
        db_len(&env) < before * 2 / 3,
        "{before} -> {}",
        db_len(&env)
    );
    assert_eq!(
        count(&db, "PRAGMA auto_vacuum"),
        2,
        "incremental from now on"
    );
    assert_eq!(count(&db, text_times), 0);
    assert_eq!(env.run(&["show", "--json"]).json().len(), 150);
}

#[test]
fn a_pack_replaced_by_a_symlink_is_never_read_through() {
    let env = Env::new();
    let secret = env.write("outside/secret", "MARKER-outside\n");
    assert_eq!(
        env.run_jobs("jobs:\n  - name: a\n    command: echo mine\n", &["-q"])
            .code,
        0
    );
    let pack = env
        .state()
        .join("runs")
        .join(format!("{}.pack", last_run(&env)));
    std::fs::remove_file(&pack).unwrap();
    std::os::unix::fs::symlink(&secret, &pack).unwrap();
    let r = env.run(&["logs", "a"]);
    assert!(
        !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
        "{r:?}"
    );
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("symlink"), "{r:?}");
}

#[test]
fn a_background_job_packed_after_its_run_ended_leaves_no_folder() {
    let env = Env::new();
    let jobs = "jobs:\n  - name: bg\n    shell: 'sleep 1; echo late'\n    background: true\n  - name: fg\n    command: echo fg\n";
    assert_eq!(env.run_jobs(jobs, &["-q"]).code, 0);
    let id = last_run(&env);
    assert_eq!(env.run(&["wait"]).code, 0);
    let runs = env.state().join("runs");
    // The supervisor stores the record a moment after the job's status is there.
    wait_for(Duration::from_secs(10), || !runs.join(&id).exists());
    assert_eq!(tree(&runs), vec![PathBuf::from(format!("{id}.pack"))]);
    assert_eq!(env.run(&["logs", "bg"]).stdout, "late\n");
}
