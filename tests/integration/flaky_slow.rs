//! Jobs judged by how they ran before: a success after retries is flaky (and stays a success),
//! a job running well over its usual time is warned about while it runs, and `timeout: auto`
//! takes the job's timeout from its history.

use crate::helpers::{Env, Run};

/// Fails on its first attempt and succeeds on its second (the attempt count is in a file).
const FLAKY: &str = "jobs:
  - name: flaky
    shell: 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 1 ]'
    retries: 2
    retry_delay: 0
  - name: steady
    command: 'true'
";

#[test]
fn a_success_after_a_retry_is_flaky_and_still_a_success() {
    let env = Env::new();
    let r = env.run_jobs(FLAKY, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(" flaky ") && !l.contains("RETRY"));
    assert!(line.is_some_and(|l| l.contains("FLAKY")), "{r:?}");
    assert!(
        r.stderr.contains("2 jobs in") && r.stderr.contains(": 2 succeeded (1 flaky); run "),
        "{r:?}"
    );
    let steady = r.stderr.lines().find(|l| l.contains(" steady ")).unwrap();
    assert!(steady.contains(" ok "), "{r:?}");

    let shown = env.run(&["show", "last", "--job", "flaky", "--json"]);
    let rec = &shown.json()[0];
    assert_eq!(rec["flaky"], true, "{shown:?}");
    assert_eq!(rec["status"], "succeeded", "{shown:?}");
    assert_eq!(rec["attempts"], 2, "{shown:?}");
    let steady = env.run(&["show", "last", "--job", "steady", "--json"]);
    assert_eq!(steady.json()[0]["flaky"], false, "{steady:?}");
    let table = env.run(&["show", "last"]);
    assert!(table.stdout.contains("succeeded (flaky)"), "{table:?}");
    let runs = env.run(&["runs", "--json"]);
    assert_eq!(runs.json()[0]["status"], "succeeded", "{runs:?}");

    // The same in a run's own JSON lines.
    std::fs::remove_file(env.path("count")).unwrap();
    let r = env.run_jobs(FLAKY, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(Run::record(&r.json(), "flaky")["flaky"], true, "{r:?}");
}

/// `export` has a history from the start; `young` fails (which is no history) until `ready`
/// exists. Each sleeps as long as `dur` says.
const SLOW: &str = "jobs:
  - name: export
    shell: 'sleep $(cat dur)'
  - name: young
    shell: '[ -e ready ] && sleep $(cat dur)'
";

#[test]
fn a_job_running_well_over_its_usual_time_is_warned_about_once_it_is() {
    let env = Env::new();
    env.write("dur", "0.1");
    for i in 0..5 {
        if i == 4 {
            env.write("ready", "");
        }
        let r = env.run_jobs(SLOW, &[]);
        assert!(!r.stderr.contains("slow: `"), "run {i}: {r:?}");
    }
    env.write("dur", "2");
    let r = env.run_jobs(SLOW, &["--log", "run.log"]);
    assert_eq!(r.code, 0, "{r:?}");
    let slow: Vec<&str> = r.stderr.lines().filter(|l| l.contains("slow: `")).collect();
    assert_eq!(slow.len(), 1, "{r:?}");
    assert!(
        slow[0].contains("slow: `export` running for ")
            // 0.1s, or a little more on a loaded machine.
            && slow[0].contains(", usually 0.")
            && slow[0].contains("s (p95 of its last 5 runs)"),
        "{r:?}"
    );
    let log = std::fs::read_to_string(env.path("run.log")).unwrap();
    assert!(log.contains("slow: `export` running for "), "{log}");

    let export = env.run(&["show", "last", "--job", "export", "--json"]);
    let notes = export.json()[0]["notes"].clone();
    let notes: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("ran slow: ") && n.contains(", usually 0.")),
        "{export:?}"
    );
    // One successful run is too little to know what is usual.
    let young = env.run(&["show", "last", "--job", "young", "--json"]);
    assert_eq!(young.json()[0]["status"], "succeeded", "{young:?}");
    assert_eq!(young.json()[0]["notes"], serde_json::json!([]), "{young:?}");
}

/// `timeout: auto` for every job, from `defaults:`; the job sleeps as long as `dur` says.
const AUTO: &str = "defaults:
  timeout: auto
jobs:
  - name: hang
    shell: 'sleep $(cat dur)'
";

#[test]
fn timeout_auto_comes_from_the_jobs_history_and_is_none_without_one() {
    let env = Env::new();
    env.write("dur", "0.1");
    for i in 0..5 {
        let r = env.run_jobs(AUTO, &["--json"]);
        assert_eq!(r.code, 0, "run {i}: {r:?}");
        let rec = &r.json()[0];
        assert_eq!(rec["status"], "succeeded", "{r:?}");
        let want = format!(
            "timeout: auto has too little history ({i} run{}); no timeout this time",
            if i == 1 { "" } else { "s" }
        );
        assert_eq!(rec["notes"], serde_json::json!([want]), "{r:?}");
    }
    // Now it would hang: 3 × its usual 0.1 s is under the 10 s floor. Quiet, the slow
    // warning is not shown, but the log has it.
    env.write("dur", "60");
    let r = env.run_jobs(AUTO, &["-q", "--log", "run.log"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("slow: `"), "{r:?}");
    let log = std::fs::read_to_string(env.path("run.log")).unwrap();
    assert!(log.contains("slow: `hang` running for "), "{log}");
    let shown = env.run(&["show", "last", "--job", "hang", "--json"]);
    let rec = &shown.json()[0];
    assert_eq!(rec["status"], "timed_out", "{shown:?}");
    assert_eq!(rec["error"], "timed out after 10s", "{shown:?}");
    let notes = rec["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.starts_with("timeout: auto is 10s (3 × 0.")
                && n.contains("s, the p95 of its last 5 runs"))),
        "{shown:?}"
    );
}

#[test]
fn a_timeout_that_is_neither_a_duration_nor_auto_is_refused_where_it_stands() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: x\n    shell: 'touch marker'\n    timeout: sometimes\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.starts_with(
            "error: jobs.yaml:4:14: invalid timeout `sometimes`; write a duration like `30s`"
        ),
        "{r:?}"
    );
    assert!(r.stderr.contains("or `auto`"), "{r:?}");
    assert!(!env.path("marker").exists(), "a job ran");
}

/// `quick` takes as long as `dur` says; `bad` always fails.
const KEPT: &str = "jobs:
  - name: quick
    shell: 'sleep $(cat dur)'
  - name: bad
    command: 'false'
";

/// The durations row's bytes (`store::recent`): `ODK2`, then per job the name's length, the
/// name, a count and that many milliseconds, newest first, each number a LEB128 varint.
fn kept_of(bytes: &[u8]) -> Vec<(String, Vec<u64>)> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = bytes[0];
            *bytes = &bytes[1..];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        n
    }
    let mut bytes = bytes.strip_prefix(b"ODK2").expect("the row's magic");
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = varint(&mut bytes) as usize;
        let name = String::from_utf8(bytes[..len].to_vec()).unwrap();
        bytes = &bytes[len..];
        let count = varint(&mut bytes);
        out.push((name, (0..count).map(|_| varint(&mut bytes)).collect()));
    }
    out
}

/// `kept_of` undone.
fn kept_bytes(kept: &[(&str, Vec<u64>)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let mut out = b"ODK2".to_vec();
    for (name, ms) in kept {
        varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        varint(&mut out, ms.len() as u64);
        for &m in ms {
            varint(&mut out, m);
        }
    }
    out
}

fn kept_row(env: &Env) -> Vec<(String, Vec<u64>)> {
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    let rows: Vec<Vec<u8>> = db
        .prepare("SELECT recent FROM durations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "one row for the one job file");
    kept_of(&rows[0])
}

#[test]
fn a_job_files_recent_durations_are_kept_in_one_row_that_later_runs_read() {
    let env = Env::new();
    env.write("dur", "0");
    for _ in 0..6 {
        assert_eq!(env.run_jobs(KEPT, &["-q"]).code, 1);
    }
    // Each succeeded run of `quick` is kept, newest first; a job that never succeeded has none.
    let kept = kept_row(&env);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        (kept[0].0.as_str(), kept[0].1.len()),
        ("quick", 6),
        "{kept:?}"
    );

    // The next run goes by the row, not by the records: told that `quick` usually takes 100 s,
    // a run of 1.5 s is not slow (by its records, which say about 0 s, it would be after 1 s).
    let told = kept_bytes(&[("quick", vec![100_000; 5])]);
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    db.execute("UPDATE durations SET recent = ?1", [told])
        .unwrap();
    drop(db);
    env.write("dur", "1.5");
    let r = env.run_jobs(KEPT, &[]);
    assert!(!r.stderr.contains("slow: `quick`"), "{r:?}");
    // That run's 1.5 s joined the row in front.
    let kept = kept_row(&env);
    assert_eq!(kept[0].1.len(), 6, "{kept:?}");
    assert!((1500..100_000).contains(&kept[0].1[0]), "{kept:?}");
}

#[test]
fn a_fan_out_made_as_it_runs_keeps_no_durations_and_its_other_jobs_are_still_looked_up() {
    let env = Env::new();
    // 1,500 items: made as they run (more than 1,000). `export` beside it is made up front.
    let yaml = "concurrency: 4
jobs:
  - name: item
    command: 'true {item}'
    for_each: {range: [1, 1500]}
  - name: export
    shell: 'sleep $(cat dur)'
";
    env.write("dur", "0");
    for _ in 0..5 {
        assert_eq!(env.run_jobs(yaml, &["-q"]).code, 0);
    }
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT COUNT(*) FROM durations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "a fan-out's names are not kept");
    env.write("dur", "1.5");
    let r = env.run_jobs(yaml, &[]);
    assert!(r.stderr.contains("slow: `export` running for "), "{r:?}");
}

#[test]
fn a_durations_row_made_again_keeps_the_jobs_the_run_that_made_it_left_out() {
    let env = Env::new();
    let yaml = "jobs:
  - name: quick
    command: 'true'
  - name: export
    shell: 'sleep $(cat dur)'
";
    env.write("dur", "0");
    for _ in 0..6 {
        assert_eq!(env.run_jobs(yaml, &["-q"]).code, 0);
    }
    // As a store made before the row was kept: no row. The run that makes it leaves `export` out.
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    db.execute("DELETE FROM durations", []).unwrap();
    drop(db);
    assert_eq!(env.run_jobs(yaml, &["-q", "--only", "quick"]).code, 0);
    env.write("dur", "1.5");
    let r = env.run_jobs(yaml, &[]);
    assert!(r.stderr.contains("slow: `export` running for "), "{r:?}");
}
