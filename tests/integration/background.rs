//! Background jobs: detached under a supervisor, followed with status / wait / kill.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{Env, alive, assert_gone, await_pids, read_pids, signal, wait_for};

fn bg_yaml(shell: &str) -> String {
    format!(
        "jobs:\n  - name: export\n    shell: '{shell}'\n    background: true\n    stdout: {{ file: out.log, append: true }}\n"
    )
}

#[test]
fn the_run_returns_at_once_and_wait_collects_the_exit_code() {
    let env = Env::new();
    let r = env.run_jobs(
        &bg_yaml("echo started; sleep 1.5; echo finished; touch done; exit 3"),
        &[],
    );
    // The run is over while the job still runs.
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !env.path("done").exists(),
        "the run waited for the background job"
    );
    assert!(r.stderr.contains("BG        export  pid "), "{r:?}");
    let status = env.run(&["status", "--json"]).json();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0]["status"], "background");
    let pid = status[0]["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    let w = env.run(&["wait"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("export failed exit 3"), "{w:?}");
    assert!(env.path("done").exists());
    // Its end after the run's moved the run's counts, and failed the run.
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "failed", "{runs:?}");
    assert_eq!(
        runs[0]["counts"],
        serde_json::json!({"failed": 1}),
        "{runs:?}"
    );
    // The final record is in the store, with what the job wrote to its file.
    let show = env.run(&["show", "--job", "export", "--json"]).json();
    assert_eq!(show[0]["returncode"], 3);
    assert_eq!(show[0]["stdout_bytes"], 17);
    // `status` showed the end once; now there is nothing new.
    let again = env.run(&["status"]);
    assert!(again.stdout.contains("no background jobs"), "{again:?}");
    let all = env.run(&["status", "--all", "--json"]).json();
    assert_eq!(all.len(), 1);
}

#[test]
fn redirection_appends_across_runs() {
    let env = Env::new();
    for _ in 0..2 {
        let r = env.run_jobs(&bg_yaml("echo line"), &[]);
        assert_eq!(r.code, 0, "{r:?}");
        let w = env.run(&["wait"]);
        assert_eq!(w.code, 0, "{w:?}");
    }
    assert_eq!(
        std::fs::read_to_string(env.path("out.log")).unwrap(),
        "line\nline\n"
    );
}

#[test]
fn kill_stops_the_job_and_records_it_cancelled() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: forever\n    shell: 'sleep 300 & echo $! > pids; echo $$ >> pids; wait'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    await_pids(&env.path("pids"), 2);
    let k = env.run(&["kill", "forever"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("forever cancelled"), "{k:?}");
    assert_gone(&read_pids(&env.path("pids")), "a process survived");
    let show = env.run(&["show", "--job", "forever", "--json"]).json();
    assert_eq!(show[0]["status"], "cancelled");
    let none = env.run(&["kill", "forever"]);
    assert_eq!(none.code, 3, "nothing of that name runs: {none:?}");
}

#[test]
fn the_job_survives_a_hangup_of_the_runs_session() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: bg\n    shell: 'sleep 1; echo survived'\n    background: true\n  - name: fg\n    shell: 'echo $$ > fg.pid; sleep 1'\n",
    );
    let mut run = env.cmd();
    run.arg("jobs.yaml").stderr(Stdio::null()).process_group(0);
    let child = run.spawn().unwrap();
    let pgid = child.id();
    await_pids(&env.path("fg.pid"), 1);
    // Hang up the run's whole process group, as a closed terminal would.
    assert!(pgid > 1);
    let _ = std::process::Command::new("kill")
        .args(["-s", "HUP", "--", &format!("-{pgid}")])
        .status();
    let out = child.wait_with_output().unwrap();
    let _ = out;
    let w = env.run(&["wait", "bg", "--timeout", "30s"]);
    assert_eq!(w.code, 0, "{w:?}");
    let logs = env.run(&["logs", "bg"]);
    assert_eq!(logs.stdout, "survived\n");
}

#[test]
fn a_supervisor_killed_with_9_is_reported_lost() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: orphan\n    shell: 'echo $$ > pid; exec sleep 300'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let status = env.run(&["status", "--json"]).json();
    let job_pid = status[0]["pid"].as_u64().unwrap() as u32;
    // The supervisor is the job's parent.
    let stat = std::fs::read_to_string(format!("/proc/{job_pid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    signal(ppid, "KILL");
    assert!(wait_for(Duration::from_secs(5), || !alive(ppid)));
    let status = env.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("lost: its supervisor is gone, the job still runs"),
        "{status:?}"
    );
    let w = env.run(&["wait", "orphan"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("orphan lost"), "{w:?}");
    // With its supervisor gone, `kill` stops the job itself (its process group).
    assert!(alive(job_pid));
    let k = env.run(&["kill", "orphan"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("orphan cancelled"), "{k:?}");
    assert!(wait_for(Duration::from_secs(5), || !alive(job_pid)));
    let rec = env.run(&["show", "--job", "orphan", "--json"]).json();
    assert_eq!(rec[0]["status"], "cancelled", "{rec:?}");
    assert!(
        rec[0]["error"]
            .as_str()
            .unwrap()
            .contains("after its supervisor was gone"),
        "{rec:?}"
    );
}

#[test]
fn wait_true_waits_and_counts_background_jobs() {
    let env = Env::new();
    let r = env.run_jobs(
        "wait: true
jobs:
  - name: server
    shell: 'sleep 0.3; echo ready > flag'
    background: true
  - name: client
    shell: 'cat flag'
    needs: [server]
  - name: bad-bg
    shell: 'exit 5'
    background: true
",
        &["--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let get = |j: &str| recs.iter().find(|r| r["job"] == j).unwrap().clone();
    assert_eq!(get("server")["status"], "succeeded", "{r:?}");
    assert_eq!(get("client")["stdout"], "ready\n");
    assert_eq!(get("bad-bg")["returncode"], 5);
    // Without wait, needing a background job is a plan error.
    let r = env.run_jobs(
        "jobs:\n  - name: server\n    command: 'true'\n    background: true\n  - name: client\n    command: 'true'\n    needs: [server]\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("`server` runs in the background, and the run does not wait for it"),
        "{r:?}"
    );
    assert!(r.stderr.contains("wait: true"), "{r:?}");
    // The run reported their ends: `status` has nothing new to say.
    let status = env.run(&["status"]);
    assert!(status.stdout.contains("no background jobs"), "{status:?}");
    // --wait on the command line waits too.
    let r = env.run_jobs(&bg_yaml("sleep 0.2; exit 4"), &["--wait"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("FAILED    export  exit 4"), "{r:?}");
}

#[test]
fn background_jobs_need_the_store() {
    let env = Env::new();
    let r = env.run_jobs(&bg_yaml("true"), &["--no-store"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("background jobs need the store"), "{r:?}");
}

#[test]
fn an_old_schema_is_migrated_in_place() {
    let env = Env::new();
    std::fs::create_dir_all(env.state()).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history-v1.db");
    std::fs::copy(&fixture, env.state().join("history.db")).unwrap();
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "failed");
    let recs = env.run(&["show", "--json"]).json();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["job"], "hello");
    assert_eq!(recs[1]["returncode"], 4);
    // The migrated store takes new runs, background ones included.
    let r = env.run_jobs(&bg_yaml("echo new"), &["--wait"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env.run(&["runs", "--json"]).json().len(), 2);
}

#[test]
fn the_job_outlives_a_killed_run() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: bg\n    shell: 'sleep 1; echo still here'\n    background: true\n  - name: fg\n    shell: 'echo $$ > fg.pid; exec sleep 30'\n",
    );
    let mut run = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("fg.pid"), 1);
    // The background job's supervisor has recorded it (under load that can come after `fg`
    // started).
    assert!(wait_for(Duration::from_secs(20), || env
        .run(&["status", "--all", "--json"])
        .stdout
        .contains("\"job\":\"bg\"")));
    signal(run.id(), "KILL");
    run.wait().unwrap();
    for pid in read_pids(&env.path("fg.pid")) {
        signal(pid, "KILL");
    }
    let w = env.run(&["wait", "bg", "--timeout", "30s"]);
    assert_eq!(w.code, 0, "{w:?}");
    assert_eq!(env.run(&["logs", "bg"]).stdout, "still here\n");
}

#[test]
fn a_running_background_jobs_record_keeps_secrets_out() {
    let env = Env::new();
    let secret = "s3cr3t-background-token";
    env.write("secret.env", &format!("TOKEN={secret}\n"));
    // The job runs until the test lets it go, so `show` sees it running however slow the machine.
    let r = env.run_jobs(
        &format!(
            "env_file: secret.env\nsecret_env: [TOKEN]\njobs:\n  - name: bg\n    command: [sh, -c, 'while [ ! -e go ]; do sleep 0.02; done', '{secret}']\n    background: true\n"
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // While it runs, the record the supervisor wrote is what the store holds.
    let show = env.run(&["show", "--json"]);
    let running = show.json();
    assert_eq!(running.len(), 1, "{show:?}");
    assert_eq!(running[0]["job"], "bg", "{show:?}");
    assert_eq!(running[0]["status"], "background", "{show:?}");
    assert_eq!(running[0]["args"][3], "[REDACTED]", "{show:?}");
    assert!(!show.stdout.contains(secret), "{show:?}");
    std::fs::write(env.path("go"), "").unwrap();
    let w = env.run(&["wait", "bg"]);
    assert_eq!(w.code, 0, "{w:?}");
    let show = env.run(&["show", "--json"]);
    let ended = show.json();
    assert_eq!(ended[0]["status"], "succeeded", "{show:?}");
    assert_eq!(ended[0]["args"][3], "[REDACTED]", "{show:?}");
    assert!(!show.stdout.contains(secret), "{show:?}");
    let files = crate::helpers::files_holding(&env.state(), secret);
    assert!(files.is_empty(), "the secret is stored in {files:?}");
}

/// Adds 1,000 ended background jobs to the newest run (of one background job), all started
/// after every job in the store and already seen by `status` and `wait`: the store of a
/// fan-out of background jobs that ran.
fn add_newer_background_jobs(env: &Env) {
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    let added = db
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO records (run_id, idx, job, status, returncode, started_ms, duration_ms,
                                  stdout_bytes, stderr_bytes, record, background, seen)
             SELECT r.run_id, r.idx + n.i, 'copy-' || n.i, 'succeeded', 0,
                    r.started_ms + 1000 + n.i, 1, 0, 0,
                    json_set(r.record, '$.job', 'copy-' || n.i, '$.index', r.idx + n.i,
                             '$.status', 'succeeded', '$.returncode', 0),
                    1, 3
             FROM (SELECT * FROM records WHERE run_id =
                     (SELECT id FROM runs ORDER BY started_ms DESC LIMIT 1)) r, n",
            [],
        )
        .unwrap();
    assert_eq!(added, 1000);
}

#[test]
fn wait_and_kill_find_a_job_behind_a_thousand_newer_background_jobs() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: export\n    shell: 'sleep 2; touch done'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    add_newer_background_jobs(&env);
    let w = env.run(&["wait"]);
    assert_eq!(w.code, 0, "{w:?}");
    assert!(
        env.path("done").exists(),
        "wait returned before the job ended: {w:?}"
    );
    assert!(w.stdout.contains("export succeeded"), "{w:?}");

    let r = env.run_jobs(
        "jobs:\n  - name: forever\n    shell: 'sleep 300'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    add_newer_background_jobs(&env);
    let k = env.run(&["kill", "forever"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("forever cancelled"), "{k:?}");
    let w = env.run(&["wait", "forever"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("forever cancelled"), "{w:?}");
}
