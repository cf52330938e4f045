//! Jobs that outlive their run (orchestrate killed with SIGKILL, as the OOM killer does): the
//! next run of the job file finds them and never starts a second copy silently; `--resume`
//! does not start a second copy of a background job that still runs.

use std::time::Duration;

use crate::helpers::{Env, Run, alive, await_pids, signal, wait_for};

/// A job that counts its starts in `starts`, writes its pid, and runs until `done` exists
/// (at once when `quick` exists: the copy a later run starts).
const LONG: &str = "jobs:
  - name: long
    shell: 'echo $$ >> pids; [ -e quick ] && exit 0; while [ ! -e done ]; do sleep 0.05; done'
  - name: other
    command: 'true'
";

fn starts(env: &Env) -> usize {
    std::fs::read_to_string(env.path("pids"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Starts the job file, waits until the store knows `long` runs, and kills orchestrate with
/// SIGKILL; returns the pid of the job left running.
fn run_and_kill_9(env: &Env) -> u32 {
    env.write("jobs.yaml", LONG);
    let mut child = env.spawn(&["jobs.yaml"]);
    let pid = await_pids(&env.path("pids"), 1)[0];
    assert!(
        wait_for(Duration::from_secs(10), || {
            let show = env.run(&["show", "last", "--json"]);
            show.code == 0
                && show
                    .json()
                    .iter()
                    .any(|r| r["job"] == "long" && r["status"] == "running")
        }),
        "the running job never reached the store"
    );
    signal(child.id(), "KILL");
    child.wait().unwrap();
    assert!(alive(pid), "the job died with its run");
    pid
}

fn long_record(env: &Env, run: &str) -> serde_json::Value {
    let recs = env.run(&["show", run, "--json"]).json();
    Run::record(&recs, "long").clone()
}

#[test]
fn the_next_run_refuses_to_start_a_second_copy() {
    let env = Env::new();
    let pid = run_and_kill_9(&env);
    let killed = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The killed run is interrupted; its job is still running, and its record says where.
    let rec = long_record(&env, &killed);
    assert_eq!(rec["status"], "running", "{rec:?}");
    assert_eq!(rec["pid"], pid);

    let again = env.run(&["jobs.yaml"]);
    assert_eq!(again.code, 75, "{again:?}");
    assert!(
        again
            .stderr
            .contains(&format!("job `long` (pid {pid}, run {killed})")),
        "{again:?}"
    );
    assert!(again.stderr.contains("--survivors wait"), "{again:?}");
    assert_eq!(starts(&env), 1, "a second copy started");
    assert_eq!(
        env.run(&["runs", "--json"]).json().len(),
        1,
        "the refused run left a run behind"
    );
    std::fs::write(env.path("done"), "").unwrap();
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
}

#[test]
fn survivors_wait_waits_for_them_then_runs() {
    let env = Env::new();
    let pid = run_and_kill_9(&env);
    let killed = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(env.path("quick"), "").unwrap();
    let waiting = env.spawn(&["jobs.yaml", "--survivors", "wait"]);
    // While the survivor runs, the new run starts nothing.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(starts(&env), 1, "a second copy started while the first ran");
    std::fs::write(env.path("done"), "").unwrap();
    let out = Run::from(waiting.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("waiting until job `long`"), "{out:?}");
    assert_eq!(starts(&env), 2);
    assert!(!alive(pid));
    let rec = long_record(&env, &killed);
    assert_eq!(rec["status"], "interrupted", "{rec:?}");
    assert!(
        rec["notes"].to_string().contains("waited for it to end"),
        "{rec:?}"
    );
}

#[test]
fn survivors_stop_stops_them_then_runs() {
    let env = Env::new();
    let pid = run_and_kill_9(&env);
    std::fs::write(env.path("quick"), "").unwrap();
    let r = env.run(&["jobs.yaml", "--survivors", "stop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!alive(pid), "the survivor was not stopped");
    assert_eq!(starts(&env), 2);
    let runs = env.run(&["runs", "--json"]).json();
    let killed = runs[1]["id"].as_str().unwrap();
    let rec = long_record(&env, killed);
    assert_eq!(rec["status"], "interrupted", "{rec:?}");
    assert!(
        rec["notes"].to_string().contains("--survivors stop"),
        "{rec:?}"
    );
}

#[test]
fn a_survivor_that_ended_is_settled_and_blocks_nothing() {
    let env = Env::new();
    let pid = run_and_kill_9(&env);
    // The job's whole process group: its shell and the `sleep` it waits for.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
    std::fs::write(env.path("quick"), "").unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs[1]["status"], "interrupted");
    let rec = long_record(&env, runs[1]["id"].as_str().unwrap());
    assert_eq!(rec["status"], "interrupted", "{rec:?}");
    assert!(
        rec["notes"].to_string().contains("how it ended is unknown"),
        "{rec:?}"
    );
}

const BG_AND_FAILING: &str = "jobs:
  - name: bg
    shell: 'echo $$ >> pids; while [ ! -e done ]; do sleep 0.05; done'
    background: true
  - name: bad
    shell: 'exit 3'
";

#[test]
fn resume_does_not_start_a_second_copy_of_a_running_background_job() {
    let env = Env::new();
    let first = env.run_jobs(BG_AND_FAILING, &[]);
    assert_eq!(first.code, 1, "{first:?}");
    let pid = await_pids(&env.path("pids"), 1)[0];
    let refused = env.run(&["jobs.yaml", "--resume", "last"]);
    assert_eq!(refused.code, 75, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("job `bg` (pid {pid}")),
        "{refused:?}"
    );
    assert_eq!(starts(&env), 1);
    // Waiting, then resuming: the background job succeeded meanwhile, so only `bad` runs.
    let waiting = env.spawn(&["jobs.yaml", "--resume", "last", "--survivors", "wait"]);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(env.path("done"), "").unwrap();
    let out = Run::from(waiting.wait_with_output().unwrap());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("1 job already succeeded, 1 to run"),
        "{out:?}"
    );
    assert_eq!(starts(&env), 1, "the background job ran twice");
}

#[test]
fn status_showing_an_end_does_not_hide_it_from_wait() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bg\n    shell: 'exit 4'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(wait_for(Duration::from_secs(10), || {
        let rec = env.run(&["show", "--job", "bg", "--json"]).json();
        rec[0]["status"] == "failed"
    }));
    // `status` has shown the failure; `wait` still answers with it.
    let shown = env.run(&["status"]);
    assert!(shown.stdout.contains("failed, exit 4"), "{shown:?}");
    let w = env.run(&["wait"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("bg failed exit 4"), "{w:?}");
    // Once `wait` reported it, neither shows it again.
    assert!(env.run(&["status"]).stdout.contains("no background jobs"));
    assert_eq!(env.run(&["wait"]).code, 0);
}
