//! The job graph and fan-out: needs, for_each, chunks, retries, success codes, halt policies,
//! groups, selection.

use std::time::Duration;

use crate::helpers::{Env, Run};

/// (job, start, end) from `start NAME T` / `end NAME T` lines the jobs wrote.
fn spans(log: &str) -> Vec<(String, f64, f64)> {
    let mut starts = std::collections::HashMap::new();
    let mut out = Vec::new();
    for l in log.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let t: f64 = w[2].parse().unwrap();
        if w[0] == "start" {
            starts.insert(w[1].to_string(), t);
        } else {
            out.push((w[1].to_string(), starts[w[1]], t));
        }
    }
    out
}

fn span<'a>(s: &'a [(String, f64, f64)], name: &str) -> &'a (String, f64, f64) {
    s.iter()
        .find(|x| x.0 == name)
        .unwrap_or_else(|| panic!("no span {name} in {s:?}"))
}

const STAMP: &str = "echo start $ORCHESTRATE_JOB $(date +%s.%N) >> log; sleep 0.3; echo end $ORCHESTRATE_JOB $(date +%s.%N) >> log";

#[test]
fn a_diamond_runs_in_a_valid_order_with_parallel_branches() {
    let env = Env::new();
    let r = env.run_jobs(
        &format!(
            "jobs:
  - name: d
    shell: '{STAMP}'
    needs: [b, c]
  - name: b
    shell: '{STAMP}'
    needs: [a]
  - name: c
    shell: '{STAMP}'
    needs: [a]
  - name: a
    shell: '{STAMP}'
"
        ),
        &["-j", "4"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let s = spans(&std::fs::read_to_string(env.path("log")).unwrap());
    let (a, b, c, d) = (span(&s, "a"), span(&s, "b"), span(&s, "c"), span(&s, "d"));
    assert!(a.2 <= b.1 && a.2 <= c.1, "{s:?}");
    assert!(b.2 <= d.1 && c.2 <= d.1, "{s:?}");
    // b and c ran at the same time.
    assert!(b.1 < c.2 && c.1 < b.2, "{s:?}");
}

#[test]
fn a_failure_skips_exactly_its_dependents() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: a
    shell: 'exit 3'
  - name: b
    command: touch b-ran
    needs: [a]
  - name: c
    command: touch c-ran
    needs: [b]
  - name: d
    command: touch d-ran
  - name: e
    command: touch e-ran
    needs: [d]
",
        &["--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "b")["status"], "skipped");
    assert_eq!(
        Run::record(&recs, "b")["error"],
        "needs `a`, which failed (exit 3)"
    );
    assert_eq!(Run::record(&recs, "c")["status"], "skipped");
    assert_eq!(
        Run::record(&recs, "c")["error"],
        "needs `b`, which was skipped"
    );
    assert_eq!(Run::record(&recs, "e")["status"], "succeeded");
    assert!(!env.path("b-ran").exists() && !env.path("c-ran").exists());
    assert!(env.path("d-ran").exists() && env.path("e-ran").exists());
}

#[test]
fn cycles_and_unknown_needs_are_plan_errors() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: a
    command: 'true'
    needs: [c]
  - name: b
    command: 'true'
    needs: [a]
  - name: c
    command: 'true'
    needs: [b]
",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("jobs.yaml:4:12: the jobs depend on each other in a cycle: a → c → b → a"),
        "{r:?}"
    );
    let r = env.run_jobs("jobs:\n  - name: build\n    command: 'true'\n  - name: test\n    command: 'true'\n    needs: [biuld]\n", &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("jobs.yaml:6:13: `needs` names an unknown job `biuld`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("did you mean `build`?"), "{r:?}");
}

#[test]
fn fan_out_over_a_thousand_items_keeps_item_order() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: sq\n    shell: 'echo $(( {item} * {item} ))'\n    for_each: {range: [1, 1000]}\n",
        &["-j", "4", "--output", "ordered"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let expected: String = (1..=1000u64).map(|i| format!("{}\n", i * i)).collect();
    assert_eq!(r.stdout, expected);
    let show = env.run(&["show", "--json"]).json();
    assert_eq!(show.len(), 1000);
    assert_eq!(show[0]["job"], "sq[1]");
    assert_eq!(show[999]["job"], "sq[1000]");
}

#[test]
fn items_never_reach_a_shell_unquoted() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: sh
    shell: printf '[%s]\\n' {item}
    for_each: ['a b', '$(touch pwned)', \"it's\", '`touch pwned2`; rm -rf x']
  - name: argv
    command: printf '<%s>' {item}
    for_each: ['a b', '$(touch pwned3)']
",
        &["--output", "ordered", "-j", "1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "[a b]\n[$(touch pwned)]\n[it's]\n[`touch pwned2`; rm -rf x]\n<a b><$(touch pwned3)>"
    );
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(!env.path(f).exists(), "{f} was created");
    }
    // Unsafe or repeated items are named by index.
    let recs = env.run(&["show", "--json"]).json();
    assert_eq!(recs[0]["job"], "sh[0]");
}

#[test]
fn chunks_pass_several_items_to_one_process() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: batch\n    command: echo {items}\n    for_each: {range: [1, 10]}\n    chunk: 4\n",
        &["--json", "--output", "ordered"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    let outs: Vec<&str> = recs.iter().map(|r| r["stdout"].as_str().unwrap()).collect();
    assert_eq!(outs, ["1 2 3 4\n", "5 6 7 8\n", "9 10\n"]);
    assert_eq!(recs[2]["job"], "batch[2]");
    assert_eq!(
        recs[0]["args"],
        serde_json::json!(["echo", "1", "2", "3", "4"])
    );
}

#[test]
fn mapping_items_and_item_files() {
    let env = Env::new();
    env.write("hosts.txt", "alpha\nbeta\n\ngamma\n");
    let r = env.run_jobs(
        "jobs:
  - name: svc
    command: echo {item.host}:{item.port} {index}
    for_each:
      - {host: db, port: 5432}
      - {host: web, port: 80}
  - name: ping
    command: echo {item}
    for_each: {file: hosts.txt}
",
        &["--output", "ordered", "-j", "1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "db:5432 0\nweb:80 1\nalpha\nbeta\ngamma\n");
    let bad = env.run_jobs(
        "jobs:\n  - name: svc\n    command: echo {item.hots}\n    for_each: [{host: db}]\n",
        &[],
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("no field `hots`; did you mean `host`?"),
        "{bad:?}"
    );
}

#[test]
fn needs_on_a_fanned_out_job_waits_for_all_items_or_one() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: part
    shell: 'sleep 0.{item}; echo {item} >> parts'
    for_each: [3, 1, 2]
  - name: all
    shell: 'cat parts | sort | tr \"\\n\" \" \"'
    needs: [part]
  - name: one
    shell: 'cat parts | tr \"\\n\" \" \"'
    needs: ['part[1]']
",
        &["--json", "-j", "4"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "all")["stdout"], "1 2 3 ");
    // `part[1]` is the item 1, which finishes first.
    assert!(
        Run::record(&recs, "one")["stdout"]
            .as_str()
            .unwrap()
            .starts_with("1 ")
    );
}

#[test]
fn retries_wait_and_record_every_attempt() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: flaky
    shell: 'echo x >> tries; test $(wc -l < tries) -ge 3'
    retries: 4
    retry_delay: 200ms
    backoff: 2
",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("RETRY     flaky  exit 1; attempt 2 of 5 in 200ms"),
        "{r:?}"
    );
    assert!(r.stderr.contains("attempt 3 of 5 in 400ms"), "{r:?}");
    let show = env.run(&["show", "--job", "flaky", "--json"]);
    let rec: serde_json::Value = serde_json::from_str(show.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(rec["attempts"], 3);
    let earlier = rec["earlier_attempts"].as_array().unwrap();
    assert_eq!(earlier.len(), 2, "{rec}");
    assert_eq!(earlier[0]["attempt"], 1);
    assert_eq!(earlier[0]["returncode"], 1);
    // The pauses between attempts: at least 200ms, then at least 400ms.
    let t = |v: &serde_json::Value| iso_secs(v.as_str().unwrap());
    let gap1 = t(&earlier[1]["started"]) - t(&earlier[0]["finished"]);
    let gap2 = t(&rec["start"]) - t(&earlier[1]["finished"]);
    assert!(gap1 >= 0.195, "first pause {gap1}");
    assert!(gap2 >= 0.395, "second pause {gap2}");
    let detail = env.run(&["show", "--job", "flaky"]);
    assert!(detail.stdout.contains("attempts    3"), "{detail:?}");
    assert!(
        detail.stdout.contains("attempt 1   failed, exit 1"),
        "{detail:?}"
    );
}

/// Seconds of the day from an RFC 3339 time (enough for differences within a test).
fn iso_secs(t: &str) -> f64 {
    let time = t.split('T').nth(1).unwrap().trim_end_matches('Z');
    let p: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2]
}

#[test]
fn retry_on_limits_which_exit_codes_retry() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: fatal
    shell: 'echo x >> tries; exit 3'
    retries: 3
    retry_delay: 10ms
    retry_on: [75]
  - name: tempfail
    shell: 'echo x >> tries2; exit 75'
    retries: 2
    retry_delay: 10ms
    retry_on: [75]
",
        &["--json"],
    );
    let recs = r.json();
    assert_eq!(Run::record(&recs, "fatal")["attempts"], 1);
    assert_eq!(Run::record(&recs, "tempfail")["attempts"], 3);
    assert_eq!(
        std::fs::read_to_string(env.path("tries2"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn success_codes_accept_other_exit_codes() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: grep-none
    shell: 'echo hello | grep nothing'
    success_codes: [0, 1]
  - name: grep-error
    shell: 'exit 2'
    success_codes: [0, 1]
",
        &["--json"],
    );
    assert_eq!(r.code, 1);
    let recs = r.json();
    assert_eq!(Run::record(&recs, "grep-none")["status"], "succeeded");
    assert_eq!(Run::record(&recs, "grep-none")["returncode"], 1);
    assert_eq!(Run::record(&recs, "grep-error")["status"], "failed");
}

#[test]
fn groups_never_exceed_their_limit() {
    let env = Env::new();
    let mut yaml = String::from("groups: {db: 1}\njobs:\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "  - name: db{i}\n    group: db\n    shell: '{STAMP}'\n"
        ));
    }
    for i in 0..4 {
        yaml.push_str(&format!("  - name: web{i}\n    shell: '{STAMP}'\n"));
    }
    let r = env.run_jobs(&yaml, &["-j", "3"]);
    assert_eq!(r.code, 0, "{r:?}");
    let s = spans(&std::fs::read_to_string(env.path("log")).unwrap());
    let db: Vec<_> = s.iter().filter(|x| x.0.starts_with("db")).collect();
    for (i, a) in db.iter().enumerate() {
        for b in &db[i + 1..] {
            assert!(a.2 <= b.1 || b.2 <= a.1, "db jobs overlapped: {a:?} {b:?}");
        }
    }
    // The web jobs did not wait behind the db queue: the last web job ended before the last db job.
    let last_web = s
        .iter()
        .filter(|x| x.0.starts_with("web"))
        .map(|x| x.2)
        .fold(0.0, f64::max);
    let last_db = db.iter().map(|x| x.2).fold(0.0, f64::max);
    assert!(last_web < last_db, "{s:?}");
    let bad = env.run_jobs(
        "jobs:\n  - name: x\n    command: 'true'\n    group: dbb\n",
        &[],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("group `dbb` has no limit"), "{bad:?}");
}

#[test]
fn halt_policy_stop_starts_nothing_new() {
    let env = Env::new();
    let yaml =
        "jobs:\n  - name: bad\n    shell: 'exit 1'\n  - name: next\n    command: touch next-ran\n";
    let r = env.run_jobs(&format!("on_failure: stop\n{yaml}"), &["-j", "1", "--json"]);
    assert_eq!(r.code, 1);
    let recs = r.json();
    assert_eq!(Run::record(&recs, "next")["status"], "skipped");
    assert!(
        Run::record(&recs, "next")["error"]
            .as_str()
            .unwrap()
            .contains("`bad` failed (exit 1)")
    );
    assert!(!env.path("next-ran").exists());
    // --fail-fast does the same; the default (continue) runs it.
    let r = env.run_jobs(yaml, &["-j", "1", "--fail-fast"]);
    assert_eq!(r.code, 1);
    assert!(!env.path("next-ran").exists());
    let r = env.run_jobs(yaml, &["-j", "1"]);
    assert_eq!(r.code, 1);
    assert!(env.path("next-ran").exists());
}

#[test]
fn halt_policy_kill_stops_running_jobs() {
    let env = Env::new();
    let t0 = std::time::Instant::now();
    let r = env.run_jobs(
        "on_failure: kill\njobs:\n  - name: long\n    command: sleep 30\n  - name: bad\n    shell: 'sleep 0.2; exit 1'\n",
        &["-j", "2", "--json"],
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, 1);
    let recs = r.json();
    assert_eq!(Run::record(&recs, "long")["status"], "cancelled");
}

#[test]
fn only_and_skip_select_jobs() {
    let env = Env::new();
    let yaml = "jobs:
  - name: build
    command: touch build-ran
  - name: test
    command: touch test-ran
    needs: [build]
  - name: docs
    command: touch docs-ran
";
    let r = env.run_jobs(yaml, &["--only", "test"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(env.path("build-ran").exists() && env.path("test-ran").exists());
    assert!(!env.path("docs-ran").exists());
    for f in ["build-ran", "test-ran"] {
        std::fs::remove_file(env.path(f)).unwrap();
    }
    let r = env.run_jobs(yaml, &["--only", "test", "--no-deps"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!env.path("build-ran").exists() && env.path("test-ran").exists());
    std::fs::remove_file(env.path("test-ran")).unwrap();
    let r = env.run_jobs(yaml, &["--skip", "build"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!env.path("build-ran").exists() && !env.path("test-ran").exists());
    assert!(env.path("docs-ran").exists());
    let r = env.run_jobs(yaml, &["--only", "tset"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `test`?"), "{r:?}");
}

#[test]
fn slots_and_run_variables_reach_the_jobs() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: w\n    shell: echo {slot} $ORCHESTRATE_SLOT\n    for_each: [a, b, c]\n  - name: vars\n    shell: 'echo $ORCHESTRATE_JOB ${#ORCHESTRATE_RUN}'\n",
        &["--json", "-j", "2"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    for rec in recs
        .iter()
        .filter(|r| r["job"].as_str().unwrap().starts_with("w["))
    {
        let slot = rec["slot"].as_u64().unwrap();
        assert!(slot < 2);
        assert_eq!(rec["stdout"], format!("{slot} {slot}\n"));
        // The record's args are what ran.
        assert_eq!(
            rec["args"][2],
            format!("echo {slot} $ORCHESTRATE_SLOT"),
            "{rec}"
        );
    }
    assert_eq!(Run::record(&recs, "vars")["stdout"], "vars 23\n");
    // Run again, the job fills in its own slot: the job file did not change, so no note.
    let again = env.run(&["rerun", "last", "w[b]", "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let rec = &again.json()[0];
    assert!(rec["notes"].to_string().find("changed").is_none(), "{rec}");
}

#[test]
fn placeholders_inside_other_braces_are_filled_and_the_braces_kept() {
    let env = Env::new();
    // A shell group and an awk program around `{item}`; `{nope}` and a lone `{` stay as written.
    let yaml = "jobs:\n  - name: t\n    shell: 'true || { test {item} -le 3; }; echo {item} {nope} \"{\"; echo x | awk \"{ print \\\"{item}\\\" }\"'\n    for_each: [7]\n";
    let r = env.run_jobs(yaml, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = Run::record(&r.json(), "t[7]").clone();
    assert_eq!(rec["stdout"], "7 {nope} {\n7\n", "{rec}");
    assert!(
        rec["args"][2]
            .as_str()
            .unwrap()
            .starts_with("true || { test 7 -le 3; }"),
        "{rec}"
    );
}
