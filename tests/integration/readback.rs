//! Output read back from the store (`logs`, `diff`, `show --json`) comes only from the run's own
//! capture files, whatever a record in the database names, and never through a symlink.

use crate::helpers::Env;

const MARKER: &str = "MARKER-outside-the-state-dir";

/// Rewrites the stored record of `job` in the latest run, as a forger with write access to the
/// database would: `edit` changes its JSON.
fn forge_record(env: &Env, job: &str, edit: impl Fn(&mut serde_json::Value)) {
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    let (run, text): (String, String) = db
        .query_row(
            "SELECT r.run_id, r.record FROM records r JOIN runs ON runs.id = r.run_id
             WHERE r.job = ?1 ORDER BY runs.started_ms DESC LIMIT 1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut rec);
    db.execute(
        "UPDATE records SET record = ?1 WHERE run_id = ?2 AND job = ?3",
        [&rec.to_string(), &run, job],
    )
    .unwrap();
}

fn latest_run(env: &Env) -> String {
    let runs = env.run(&["runs"]);
    let id = runs
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next();
    id.unwrap().to_string()
}

#[test]
fn a_forged_record_or_a_planted_symlink_never_makes_logs_or_diff_print_another_file() {
    let env = Env::new();
    let secret = env.write("outside/secret", &format!("{MARKER}\n"));
    env.write("outside/dir/stdout", &format!("{MARKER}\n"));
    // `linked` and `folder` write more than the run's pack takes: their files stay.
    let yaml = "jobs:
  - name: linked
    shell: echo mine; head -c 70000 /dev/zero
  - name: named
    command: echo mine
  - name: folder
    shell: echo mine; head -c 70000 /dev/zero
  - name: own
    command: echo mine
    stdout: {file: own.txt}
";
    for _ in 0..2 {
        assert_eq!(env.run_jobs(yaml, &[]).code, 0);
    }
    let run = env.state().join("runs").join(latest_run(&env));
    // The capture file a symlink to the file; the job's folder a symlink to a folder.
    std::fs::remove_file(run.join("linked/stdout")).unwrap();
    std::os::unix::fs::symlink(&secret, run.join("linked/stdout")).unwrap();
    std::fs::remove_dir_all(run.join("folder")).unwrap();
    std::os::unix::fs::symlink(env.path("outside/dir"), run.join("folder")).unwrap();
    // A captured stream whose record names the file; a job's own file renamed to it.
    forge_record(&env, "named", |r| {
        r["stdout"]["path"] = secret.to_str().into()
    });
    forge_record(&env, "own", |r| {
        r["stdout"]["path"] = secret.to_str().into()
    });

    let mut seen = Vec::new();
    for job in ["linked", "named", "folder", "own"] {
        for cmd in ["logs", "diff"] {
            let r = env.run(&[cmd, job]);
            assert!(!r.stdout.contains(MARKER), "{cmd} {job} printed it: {r:?}");
            assert!(!r.stderr.contains(MARKER), "{cmd} {job} printed it: {r:?}");
            seen.push((cmd, job, r));
        }
    }
    for (cmd, job, r) in &seen {
        match *job {
            // The record's path is not where output is read from: the run's file is.
            "named" if *cmd == "logs" => assert_eq!(r.stdout, "mine\n", "{r:?}"),
            "named" => assert!(r.stdout.starts_with("no change"), "{r:?}"),
            "linked" | "folder" => {
                assert_eq!(r.code, 70, "{cmd} {job}: {r:?}");
                assert!(r.stderr.contains("symlink"), "{cmd} {job}: {r:?}");
            }
            _ => {
                // Named, not opened.
                assert_eq!(r.code, 2, "{cmd} {job}: {r:?}");
                assert!(r.stderr.contains("was not captured; it went to "), "{r:?}");
                if *cmd == "logs" {
                    assert!(r.stderr.contains(secret.to_str().unwrap()), "{r:?}");
                }
            }
        }
    }
    for args in [
        &["show", "last", "--json"][..],
        &["show", "last", "--job", "named", "--json"],
    ] {
        let r = env.run(args);
        assert!(!r.stdout.contains(MARKER), "{args:?} printed it: {r:?}");
    }
}

#[test]
fn logs_of_a_job_carried_over_by_resume_show_the_output_of_the_run_it_came_from() {
    let env = Env::new();
    let yaml = "jobs:
  - name: done
    command: echo from-the-first-run
  - name: flaky
    command: 'false'
";
    assert_eq!(env.run_jobs(yaml, &[]).code, 1);
    assert_eq!(env.run_jobs(yaml, &["--resume", "last"]).code, 1);
    let logs = env.run(&["logs", "done"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert_eq!(logs.stdout, "from-the-first-run\n", "{logs:?}");
}
