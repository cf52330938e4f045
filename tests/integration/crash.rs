//! Crash safety: orchestrate killed with -9 at random moments keeps what finished, and
//! `--resume` runs only what did not succeed.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{Env, signal};

fn pseudo_random_ms(seed: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let x = (nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (x >> 33) % 500
}

const FIVE_HUNDRED: &str = "concurrency: 4
jobs:
  - name: item
    shell: 'echo {item} >> ran.log; printf \"out-%s\\n\" {item}'
    for_each: {range: [1, 500]}
";

#[test]
fn kill_9_at_random_moments_then_resume() {
    for round in 0..3u64 {
        let env = Env::new();
        env.write("jobs.yaml", FIVE_HUNDRED);
        let mut child = env.spawn(&["jobs.yaml"]);
        // Once the run has begun, kill it somewhere in its first half second.
        assert!(crate::helpers::wait_for(Duration::from_secs(20), || env
            .state()
            .join("history.db")
            .exists()));
        std::thread::sleep(Duration::from_millis(pseudo_random_ms(round)));
        signal(child.id(), "KILL");
        let killed = !child.wait().unwrap().success();

        let runs = env.run(&["runs", "--json"]);
        assert_eq!(
            runs.code, 0,
            "the store does not open after kill -9: {runs:?}"
        );
        let runs = runs.json();
        // Killed before its end, it is interrupted; a kill that came as it was exiting finds
        // it ended with every job done.
        let ended_whole = runs[0]["status"] == "succeeded" && runs[0]["counts"]["succeeded"] == 500;
        if killed && !ended_whole {
            assert_eq!(runs[0]["status"], "interrupted", "round {round}: {runs:?}");
        }
        // Every record of a succeeded job has its complete output.
        let recs = env.run(&["show", "last", "--json"]).json();
        let mut done = Vec::new();
        for r in &recs {
            if r["status"] == "succeeded" {
                let item = r["job"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("item[")
                    .trim_end_matches(']')
                    .to_string();
                assert_eq!(r["stdout"], format!("out-{item}\n"), "round {round}");
                done.push(item);
            }
        }
        // Resume: only what did not succeed runs again.
        let resumed = env.run(&["jobs.yaml", "--resume", "last"]);
        assert_eq!(resumed.code, 0, "{resumed:?}");
        assert!(
            resumed.stderr.contains(&format!(
                "{} jobs already succeeded, {} to run",
                done.len(),
                500 - done.len()
            )) || (done.len() == 1 && resumed.stderr.contains("1 job already succeeded"))
                // Killed once every job had ended, before the run was marked ended.
                || (done.len() == 500 && resumed.stderr.contains("nothing to do: every job")),
            "round {round}: {resumed:?}"
        );
        let log = std::fs::read_to_string(env.path("ran.log")).unwrap_or_default();
        let mut runs_per_item: HashMap<&str, usize> = HashMap::new();
        for l in log.lines() {
            *runs_per_item.entry(l).or_default() += 1;
        }
        for item in &done {
            assert_eq!(
                runs_per_item.get(item.as_str()),
                Some(&1),
                "round {round}: {item} ran again"
            );
        }
        for i in 1..=500 {
            assert!(
                runs_per_item.contains_key(i.to_string().as_str()),
                "round {round}: item {i} never ran"
            );
        }
    }
}

#[test]
fn resume_reruns_failed_and_edited_jobs_only() {
    let env = Env::new();
    let yaml = "jobs:
  - name: a
    command: sh -c 'echo a >> ran.log'
  - name: b
    command: sh -c 'echo b >> ran.log'
  - name: c
    shell: 'echo c >> ran.log; test -e fixed'
    needs: [a]
";
    let first = env.run_jobs(yaml, &[]);
    assert_eq!(first.code, 1);
    std::fs::write(env.path("fixed"), "").unwrap();
    // b is edited: its definition changed, so it runs again; c failed, so it runs again.
    let edited = yaml.replace("echo b >> ran.log", "echo b2 >> ran.log");
    let r = env.run_jobs(&edited, &["--resume", "last"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("1 job already succeeded, 2 to run"),
        "{r:?}"
    );
    let log = std::fs::read_to_string(env.path("ran.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "b2", "c", "c"]);
    // Nothing left: resuming again runs nothing.
    let again = env.run(&["jobs.yaml", "--resume", "last"]);
    assert_eq!(again.code, 0);
    assert!(
        again.stderr.contains("nothing to do: every job of run"),
        "{again:?}"
    );
    // A run of another job file cannot be resumed into this one.
    env.write("other.yaml", "jobs:\n  - 'true'\n");
    let id = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = env.run(&["other.yaml", "--resume", &id]);
    assert_eq!(wrong.code, 2);
    assert!(wrong.stderr.contains("is a run of"), "{wrong:?}");
}
