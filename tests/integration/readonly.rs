//! A state dir on a read-only mount or a full disk: the inspection commands read the history as it is (what
//! settling would write is shown, not written); a run, `gc` and `kill` are refused at once.

use std::time::Duration;

use crate::helpers::{Env, Run, assert_gone, await_pids, signal, wait_for};
use crate::trust::Tmpfs;

/// Asserts that an inspection command succeeded without a word on stderr.
fn clean(env: &Env, args: &[&str]) -> Run {
    let r = env.run(args);
    assert_eq!(r.code, 0, "{args:?}: {r:?}");
    assert!(r.stderr.is_empty(), "{args:?}: {r:?}");
    r
}

fn last_run_records(env: &Env) -> Vec<serde_json::Value> {
    env.run(&["show", "last", "--json"]).json()
}

fn status_of(recs: &[serde_json::Value], job: &str) -> Option<String> {
    recs.iter()
        .find(|r| r["job"] == job)
        .and_then(|r| r["status"].as_str())
        .map(str::to_string)
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A history that settling would change: a background job that failed, one whose supervisor
/// was killed, and a run killed with SIGKILL while a job ran. Nothing reads it before the
/// mount is made read-only (reading a writable store would settle it). Returns the run ids,
/// oldest first.
fn unsettled_history(env: &Env) -> (String, String) {
    let first = env.run_jobs(
        "jobs:\n  - name: hello\n    command: echo hi\n  - name: bad\n    shell: 'echo oops >&2; exit 3'\n    background: true\n  - name: lost\n    shell: 'echo $$ > lost.pid; exec sleep 60'\n    background: true\n",
        &["-q"],
    );
    assert_eq!(first.code, 0, "{first:?}");
    assert!(wait_for(Duration::from_secs(20), || {
        status_of(&last_run_records(env), "bad").as_deref() == Some("failed")
    }));
    let lost = await_pids(&env.path("lost.pid"), 1)[0];
    let supervisor = parent_of(lost);
    signal(supervisor, "KILL");
    signal(lost, "KILL");
    assert_gone(&[supervisor, lost], "the lost job");
    env.write(
        "slow.yaml",
        "jobs:\n  - name: quick\n    command: echo fast\n  - name: sleeper\n    shell: 'echo $$ > sleeper.pid; echo started; exec sleep 60'\n    needs: [quick]\n",
    );
    let mut run = env.spawn(&["slow.yaml", "-q"]);
    let sleeper = await_pids(&env.path("sleeper.pid"), 1)[0];
    assert!(wait_for(Duration::from_secs(20), || {
        status_of(&last_run_records(env), "sleeper").as_deref() == Some("running")
    }));
    run.kill().unwrap();
    run.wait().unwrap();
    signal(sleeper, "KILL");
    assert_gone(&[sleeper], "the killed run's job");
    let mut ids: Vec<String> = std::fs::read_dir(env.state().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // A run's folder, or its pack (`<id>.pack`), or both.
        .map(|n| n.strip_suffix(".pack").map(str::to_string).unwrap_or(n))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "{ids:?}");
    (ids[0].clone(), ids[1].clone())
}

#[test]
fn a_read_only_state_dir_is_still_read_and_never_written() {
    let env = Env::new();
    let Some(fs) = Tmpfs::state_dir(
        &env,
        "size=8m,mode=0700",
        "readonly::a_read_only_state_dir_is_still_read",
    ) else {
        return;
    };
    let (first, killed) = unsettled_history(&env);
    // A store whose last writer closed it cleanly, leaving no -wal or -shm file for SQLite to
    // read it with.
    let tidy = env.state().join("tidy");
    let tidy_arg = tidy.to_str().unwrap();
    env.write(
        "tidy.yaml",
        "jobs:\n  - name: one\n    command: echo one\n  - name: gone\n    shell: 'exit 4'\n    background: true\n",
    );
    assert_eq!(
        env.run(&["--state-dir", tidy_arg, "-q", "tidy.yaml"]).code,
        0
    );
    assert!(wait_for(Duration::from_secs(20), || {
        let recs = env.run(&["--state-dir", tidy_arg, "show", "last", "--json"]);
        status_of(&recs.json(), "gone").as_deref() == Some("failed")
            && !tidy.join("history.db-wal").exists()
    }));
    // A corrupt store beside it, to be reported as corrupt when read-only too.
    let corrupt = env.state().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("history.db"), b"not a database".repeat(300)).unwrap();
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.0)
        .status()
        .unwrap();
    assert!(remount.success());
    assert!(std::fs::write(env.state().join("probe"), b"").is_err());

    // The killed run is shown interrupted, and its running job too, as settling would.
    let runs = clean(&env, &["runs"]);
    let line = |id: &str| {
        runs.stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id} in {runs:?}"))
            .to_string()
    };
    assert!(
        line(&killed).contains("interrupted  1 succeeded, 1 interrupted"),
        "{runs:?}"
    );
    assert!(line(&first).contains("failed"), "{runs:?}");
    let json = clean(&env, &["runs", "--json"]).json();
    assert_eq!(json[0]["id"], killed.as_str());
    assert_eq!(json[0]["status"], "interrupted");
    assert_eq!(json[0]["counts"]["interrupted"], 1, "{json:?}");
    assert!(json[0]["ended"].is_string(), "{json:?}");
    assert_eq!(json[1]["status"], "failed");
    let show = clean(&env, &["show", "last"]);
    assert!(
        show.stdout.lines().next().unwrap().ends_with("interrupted"),
        "{show:?}"
    );
    let sleeper = show.stdout.lines().find(|l| l.contains("sleeper")).unwrap();
    assert!(sleeper.contains("interrupted"), "{show:?}");
    assert_eq!(clean(&env, &["logs", "sleeper"]).stdout, "started\n");
    assert_eq!(
        clean(&env, &["logs", "hello", "--run", &first]).stdout,
        "hi\n"
    );
    assert!(clean(&env, &["history", "quick"]).stdout.contains(&killed));

    // Background jobs: the failed one, and the lost one as `status` judges it. The ends shown
    // cannot be marked seen, so they are shown again.
    for args in [&["status"][..], &["status"], &["status", "--all"]] {
        let st = clean(&env, args);
        assert!(
            st.stdout.contains("bad") && st.stdout.contains("failed, exit 3"),
            "{st:?}"
        );
        assert!(
            st.stdout.contains("lost (its supervisor is gone)"),
            "{st:?}"
        );
    }
    let w = env.run(&["wait"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(
        w.stdout.contains("bad failed exit 3") && w.stdout.contains("lost lost"),
        "{w:?}"
    );
    assert!(w.stderr.is_empty(), "{w:?}");

    // What writes is refused, naming the folder; no job starts.
    for args in [
        &["jobs.yaml"][..],
        &["slow.yaml", "--resume", "last"],
        &["gc", "--keep-runs", "1"],
        &["kill", "lost"],
    ] {
        env.write(
            "jobs.yaml",
            "jobs:\n  - name: maker\n    shell: 'touch made'\n",
        );
        let _ = std::fs::remove_file(env.path("sleeper.pid"));
        let r = env.run(args);
        assert_eq!(r.code, 70, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(&env.state().display().to_string()),
            "{r:?}"
        );
        assert!(!env.path("made").exists(), "{args:?} started a job");
        assert!(!env.path("sleeper.pid").exists(), "{args:?} started a job");
    }
    let tidy_runs = clean(&env, &["--state-dir", tidy_arg, "runs", "--json"]).json();
    assert_eq!(tidy_runs[0]["status"], "failed", "{tidy_runs:?}");
    let st = clean(&env, &["--state-dir", tidy_arg, "status"]);
    assert!(st.stdout.contains("failed, exit 4"), "{st:?}");
    assert_eq!(
        clean(&env, &["--state-dir", tidy_arg, "logs", "one"]).stdout,
        "one\n"
    );
    assert!(!tidy.join("history.db-shm").exists());

    let bad = env.run(&["--state-dir", corrupt.to_str().unwrap(), "runs"]);
    assert_eq!(bad.code, 70, "{bad:?}");
    assert!(
        bad.stderr.contains("is damaged or not a database"),
        "{bad:?}"
    );
}

#[test]
fn a_full_disk_is_still_read_and_a_run_on_it_says_why_it_cannot_start() {
    let env = Env::new();
    let Some(fs) = Tmpfs::state_dir(
        &env,
        "size=2m,mode=0700",
        "readonly::a_full_disk_is_still_read",
    ) else {
        return;
    };
    env.write("j.yaml", "jobs:\n  - name: a\n    command: echo hi\n");
    assert_eq!(env.run(&["-q", "j.yaml"]).code, 0);
    // The run closed the database cleanly: no -wal or -shm file is left to read it with.
    assert!(!env.state().join("history.db-shm").exists());
    let filler = std::fs::File::create(fs.0.join("filler")).unwrap();
    let mut w = std::io::BufWriter::new(filler);
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut w, &chunk).is_ok() {}
    drop(w);
    let runs = clean(&env, &["runs"]);
    assert!(runs.stdout.contains("1 succeeded"), "{runs:?}");
    assert_eq!(clean(&env, &["logs", "a"]).stdout, "hi\n");
    assert_eq!(clean(&env, &["show", "last", "--json"]).json().len(), 1);
    let r = env.run(&["-q", "j.yaml"]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("no space left"), "{r:?}");
}
