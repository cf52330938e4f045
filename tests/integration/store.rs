//! The run history: runs, show, logs, history, diff, gc, and what survives a crash.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::helpers::{Env, signal, wait_for};

fn run_ids(env: &Env) -> Vec<String> {
    let r = env.run(&["runs", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_run_is_recorded_and_listed() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - true\n  - 'false'\n", &[]);
    assert_eq!(r.code, 1);
    let r = env.run_jobs("jobs:\n  - true\n", &[]);
    assert_eq!(r.code, 0);
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs.len(), 2);
    // Newest first.
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[1]["status"], "failed");
    assert_eq!(runs[1]["counts"]["succeeded"], 1);
    assert_eq!(runs[1]["counts"]["failed"], 1);
    assert!(
        runs[1]["job_file"]
            .as_str()
            .unwrap()
            .ends_with("/jobs.yaml")
    );
    assert_eq!(runs[1]["job_file_hash"].as_str().unwrap().len(), 64);
    assert!(runs[0]["id"].as_str().unwrap() > runs[1]["id"].as_str().unwrap());

    let failed = env.run(&["runs", "--failed", "--json"]).json();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], runs[1]["id"]);
    let table = env.run(&["runs"]);
    assert!(table.stdout.starts_with("RUN "), "{table:?}");
    assert!(table.stdout.contains("jobs.yaml"), "{table:?}");
    assert_eq!(
        env.run(&["runs", "--since", "1h", "--json"]).json().len(),
        2
    );
    assert_eq!(env.run(&["runs", "--limit", "1", "--json"]).json().len(), 1);
    assert_eq!(
        env.run(&["runs", "--job-file", "jobs.yaml", "--json"])
            .json()
            .len(),
        2
    );
    assert_eq!(
        env.run(&["runs", "--job-file", "other.yaml", "--json"])
            .json()
            .len(),
        0
    );
}

#[test]
fn show_by_prefix_last_and_job() {
    let env = Env::new();
    env.run_jobs(
        "jobs:\n  - name: hello\n    command: echo hi\n  - 'false'\n",
        &[],
    );
    let id = run_ids(&env)[0].clone();
    let by_prefix = env.run(&["show", &id[..18]]);
    assert_eq!(by_prefix.code, 0, "{by_prefix:?}");
    assert!(by_prefix.stdout.contains(&id));
    assert!(by_prefix.stdout.contains("hello") && by_prefix.stdout.contains("succeeded"));
    let last = env.run(&["show", "last", "--json"]).json();
    assert_eq!(last.len(), 2);
    assert_eq!(last[0]["job"], "hello");
    assert_eq!(last[0]["stdout"], "hi\n");
    let one = env.run(&["show", "--job", "hello"]);
    assert!(one.stdout.contains("returncode  0"), "{one:?}");
    assert!(one.stdout.contains("args        echo hi"), "{one:?}");

    let unknown = env.run(&["show", "19990101"]);
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("no run matches `19990101`; recent runs: "),
        "{unknown:?}"
    );
    let nojob = env.run(&["show", "--job", "helo"]);
    assert!(nojob.stderr.contains("did you mean `hello`?"), "{nojob:?}");
}

#[test]
fn ambiguous_prefix_is_an_error() {
    let env = Env::new();
    env.run_jobs("jobs:\n  - true\n", &[]);
    env.run_jobs("jobs:\n  - true\n", &[]);
    let r = env.run(&["show", "2"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("matches several runs"), "{r:?}");
}

#[test]
fn store_layout_and_permissions() {
    let env = Env::new();
    env.run_jobs(
        "jobs:\n  - name: out\n    command: echo x\n  - name: quiet\n    command: 'true'\n  - name: big\n    command: head -c 70000 /dev/zero\n",
        &[],
    );
    let state = env.state();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("history.db")), 0o600);
    let id = &run_ids(&env)[0];
    // Small outputs end in the run's pack, larger ones keep their own file.
    let pack = state.join("runs").join(format!("{id}.pack"));
    assert_eq!(std::fs::read_to_string(&pack).unwrap(), "x\n");
    assert_eq!(mode(&pack), 0o600);
    assert!(!state.join("runs").join(id).join("out").exists());
    let big = state.join("runs").join(id).join("big/stdout");
    assert_eq!(std::fs::metadata(&big).unwrap().len(), 70000);
    assert_eq!(mode(&big), 0o600);
    assert_eq!(mode(&state.join("runs").join(id).join("big")), 0o700);
    // Output files are created only when a job writes.
    assert!(!state.join("runs").join(id).join("big/stderr").exists());
    assert!(!state.join("runs").join(id).join("quiet").exists());
}

#[test]
fn captured_output_is_byte_exact() {
    let env = Env::new();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(env.path("blob"), &data).unwrap();
    let r = env.run_jobs("jobs:\n  - name: blob\n    command: cat blob\n", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let logs = env.run(&["logs", "blob"]);
    assert_eq!(logs.raw_stdout.len(), data.len());
    assert!(logs.raw_stdout == data);
}

#[test]
fn no_store_keeps_nothing() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - echo hi\n", &["--no-store", "--output", "all"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "hi\n");
    assert!(!env.state().exists());
}

#[test]
fn concurrent_runs_share_the_store() {
    let env = Env::new();
    let mut yaml = String::from("jobs:\n");
    for i in 0..60 {
        yaml.push_str(&format!("  - name: j{i}\n    command: echo {i}\n"));
    }
    env.write("a.yaml", &yaml);
    env.write("b.yaml", &yaml);
    let children: Vec<_> = ["a.yaml", "b.yaml", "a.yaml"]
        .iter()
        .map(|f| env.spawn(&[f, "-j", "4", "--no-lock"]))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r["counts"]["succeeded"], 60, "{r}");
        let recs = env
            .run(&["show", r["id"].as_str().unwrap(), "--json"])
            .json();
        assert_eq!(recs.len(), 60);
        assert_eq!(recs[7]["stdout"], "7\n");
    }
}

#[test]
fn kill_9_keeps_finished_records_and_marks_the_run_interrupted() {
    let env = Env::new();
    let mut yaml = String::from("concurrency: 2\njobs:\n");
    for i in 0..4 {
        yaml.push_str(&format!("  - name: quick{i}\n    command: echo done-{i}\n"));
    }
    yaml.push_str("  - name: slow\n    shell: 'echo partial; echo $$ > slowpid; exec sleep 60'\n");
    env.write("jobs.yaml", &yaml);
    let mut child = env.spawn(&["jobs.yaml"]);
    // The quick jobs' records, and the slow one's while it runs.
    let recorded = wait_for(Duration::from_secs(10), || {
        let recs = env.run(&["show", "last", "--json"]).json();
        recs.iter().filter(|r| r["status"] == "succeeded").count() == 4
            && recs.iter().any(|r| r["status"] == "running")
    });
    if !recorded {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("the quick jobs were not recorded; the run: {out:?}");
    }
    signal(child.id(), "KILL");
    child.wait().unwrap();

    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), 5);
    for (i, r) in recs.iter().take(4).enumerate() {
        assert_eq!(r["stdout"], format!("done-{i}\n"));
    }
    // The slow job outlived the run: its record says it still runs, and where.
    assert_eq!(recs[4]["job"], "slow");
    assert_eq!(recs[4]["status"], "running", "{recs:?}");
    // The slow job's output so far was written while it ran.
    let logs = env.run(&["logs", "slow"]);
    assert_eq!(logs.stdout, "partial\n", "{logs:?}");
    // The job itself outlives a kill -9 of orchestrate; end it.
    for pid in crate::helpers::read_pids(&env.path("slowpid")) {
        signal(pid, "KILL");
    }
}

#[test]
fn logs_follow_streams_a_running_job() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: ticker\n    shell: 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done'\n",
    );
    let mut run = env.spawn(&["jobs.yaml"]);
    assert!(wait_for(Duration::from_secs(10), || {
        let ids = env.run(&["runs", "--json"]).json();
        !ids.is_empty()
            && env
                .state()
                .join("runs")
                .join(ids[0]["id"].as_str().unwrap())
                .join("ticker/stdout")
                .exists()
    }));
    let follow = env.run(&["logs", "ticker", "--follow"]);
    assert_eq!(follow.code, 0, "{follow:?}");
    assert_eq!(follow.stdout, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert!(run.wait().unwrap().success());
}

#[test]
fn history_and_diff_of_a_job_across_runs() {
    let env = Env::new();
    let yaml = "jobs:\n  - name: report\n    command: cat data.txt\n";
    env.write("data.txt", "alpha\nbeta\ngamma\n");
    env.run_jobs(yaml, &[]);
    env.write("data.txt", "alpha\nBETA\ngamma\n");
    env.run_jobs(yaml, &[]);
    let hist = env.run(&["history", "report", "--json"]).json();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0]["status"], "succeeded");
    let d = env.run(&["diff", "report"]);
    assert_eq!(d.code, 1, "{d:?}");
    assert!(d.stdout.contains("-beta\n+BETA\n"), "{d:?}");
    assert!(d.stdout.contains("report @ "), "{d:?}");
    let ids = run_ids(&env);
    let same = env.run(&["diff", "report", "--run", &ids[0], "--run", &ids[0]]);
    assert_eq!(same.code, 0);
    assert!(same.stdout.contains("no change"), "{same:?}");
    let unknown = env.run(&["history", "reprot"]);
    assert!(
        unknown.stderr.contains("did you mean `report`?"),
        "{unknown:?}"
    );
}

#[test]
fn a_job_that_moves_in_its_job_file_keeps_its_whole_history() {
    let env = Env::new();
    let alone = "jobs:\n  - name: report\n    command: cat data.txt\n";
    let second = "jobs:\n  - echo first\n  - name: report\n    command: cat data.txt\n";
    for (yaml, data) in [(alone, "one"), (second, "two"), (alone, "three")] {
        env.write("data.txt", data);
        assert_eq!(env.run_jobs(yaml, &["-q"]).code, 0);
    }
    // `report` was the first job, then the second, then the first again: each run's record is
    // found wherever it stood.
    let hist = env.run(&["history", "report", "--json"]).json();
    assert_eq!(hist.len(), 3, "{hist:?}");
    let ids = run_ids(&env);
    for (id, data) in ids.iter().zip(["three", "two", "one"]) {
        let logs = env.run(&["logs", "report", "--run", id]);
        assert_eq!(logs.stdout, data, "{logs:?}");
    }
    let d = env.run(&["diff", "report"]);
    assert!(
        d.stdout.contains("-two") && d.stdout.contains("+three"),
        "{d:?}"
    );
}

#[test]
fn gc_removes_rows_and_files_together() {
    let env = Env::new();
    for _ in 0..3 {
        env.run_jobs("jobs:\n  - echo kept\n", &[]);
    }
    let ids = run_ids(&env);
    assert_eq!(ids.len(), 3);
    let r = env.run(&["gc", "--keep-runs", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("removed 2 runs"), "{r:?}");
    assert_eq!(run_ids(&env), vec![ids[0].clone()]);
    let pack = |id: &str| env.state().join("runs").join(format!("{id}.pack"));
    assert!(pack(&ids[0]).exists());
    assert!(!pack(&ids[1]).exists());
    assert!(!pack(&ids[2]).exists());
    let none = env.run(&["gc"]);
    assert_eq!(none.code, 2);
}

#[test]
fn a_corrupt_database_is_reported_and_left_alone() {
    let env = Env::new();
    std::fs::create_dir_all(env.state()).unwrap();
    let garbage = b"this is not a database, but someone's data".repeat(200);
    std::fs::write(env.state().join("history.db"), &garbage).unwrap();
    let r = env.run_jobs("jobs:\n  - touch marker\n", &[]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(
        r.stderr.contains("history.db is damaged or not a database"),
        "{r:?}"
    );
    assert!(r.stderr.contains("no job was started"), "{r:?}");
    assert!(!env.path("marker").exists());
    assert_eq!(
        std::fs::read(env.state().join("history.db")).unwrap(),
        garbage
    );
}

#[test]
fn an_unusable_state_dir_is_reported_before_any_job() {
    let env = Env::new();
    env.write("state", "a file where the state dir should be");
    let r = env.run_jobs("jobs:\n  - touch marker\n", &[]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("is not a directory"), "{r:?}");
    assert!(!env.path("marker").exists());
}

#[test]
fn each_run_prunes_its_job_files_history() {
    let env = Env::new();
    let yaml = "retention: {runs: 2}\njobs:\n  - echo kept\n";
    for _ in 0..4 {
        assert_eq!(env.run_jobs(yaml, &[]).code, 0);
    }
    // Another job file's runs are not touched by this one's retention.
    env.write("other.yaml", "jobs:\n  - echo other\n");
    assert_eq!(env.run(&["other.yaml"]).code, 0);
    let runs = env.run(&["runs", "--json"]).json();
    let mine: Vec<_> = runs
        .iter()
        .filter(|r| r["job_file"].as_str().unwrap().ends_with("/jobs.yaml"))
        .collect();
    assert_eq!(mine.len(), 2, "{runs:?}");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let dirs = std::fs::read_dir(env.state().join("runs")).unwrap().count();
    assert_eq!(dirs, 3);
    // The flag overrides the file.
    assert_eq!(env.run(&["jobs.yaml", "--keep-runs", "1"]).code, 0);
    let runs = env
        .run(&["runs", "--json", "--job-file", "jobs.yaml"])
        .json();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[test]
fn several_first_runs_make_one_store_and_lose_no_run() {
    // Eight runs start on a store that does not exist yet (cron jobs at the same minute on a
    // new machine): each builds a database under a temporary name and links it into place;
    // one wins, the others use it, no run fails with "database is locked".
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: hello\n    command: echo hi\n",
    );
    let children: Vec<_> = (0..8)
        .map(|_| env.spawn(&["jobs.yaml", "--no-lock"]))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs.len(), 8, "{runs:?}");
    let left: Vec<String> = std::fs::read_dir(env.state())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".history.db.new"))
        .collect();
    assert!(left.is_empty(), "temporary databases left: {left:?}");
}
