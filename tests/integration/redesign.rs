//! Contracts the redesign must keep, written before the fixes: secrets of jobs that never ran,
//! background jobs in the run's record and status, per-status counts, and the environment an
//! ssh job's record claims.

use std::collections::BTreeMap;

use crate::helpers::{Env, Run, files_holding};
use crate::scale_out::{Exports, ssh_head, sshd};

const SECRET: &str = "s3cr3t-v4lue";

/// The head of a job file whose `TOKEN` is secret and whose value is `SECRET`.
fn secret_head() -> String {
    format!("env: {{TOKEN: {SECRET}}}\nsecret_env: [TOKEN]\n")
}

/// What people and scripts can see of the store after a run: every inspection command.
fn inspections(env: &Env, job: &str) -> Vec<(String, Run)> {
    let commands: [&[&str]; 9] = [
        &["show"],
        &["show", "--json"],
        &["show", "--job", job],
        &["show", "--job", job, "--json"],
        &["runs"],
        &["runs", "--json"],
        &["history", job],
        &["status", "--all"],
        &["status", "--all", "--json"],
    ];
    commands
        .iter()
        .map(|args| (format!("orchestrate {}", args.join(" ")), env.run(args)))
        .collect()
}

/// Asserts that `SECRET` is in none of `outputs` (stdout and stderr), none of the inspection
/// commands' outputs for `job`, and no file under the state dir (the database bytes, its -wal
/// and -shm, every capture file). The message lists every place that holds it.
fn assert_secret_kept_out(env: &Env, job: &str, mut outputs: Vec<(String, Run)>) {
    outputs.extend(inspections(env, job));
    let mut leaks: Vec<String> = outputs
        .iter()
        .filter(|(_, r)| r.stdout.contains(SECRET) || r.stderr.contains(SECRET))
        .map(|(what, _)| format!("the output of `{what}`"))
        .collect();
    leaks.extend(
        files_holding(&env.state(), SECRET)
            .iter()
            .map(|p| format!("the file {}", p.display())),
    );
    assert!(
        leaks.is_empty(),
        "the secret value in the args of job `{job}` is in {}",
        leaks.join(", ")
    );
}

/// Runs jobs.yaml as `--json`, plainly and with `--output all`, calling `before` ahead of each.
fn three_runs(env: &Env, mut before: impl FnMut()) -> Vec<(String, Run)> {
    [&["--json"][..], &[][..], &["--output", "all"][..]]
        .iter()
        .map(|args| {
            before();
            let all = [&["jobs.yaml"][..], args].concat();
            (format!("orchestrate {}", all.join(" ")), env.run(&all))
        })
        .collect()
}

#[test]
fn a_secret_in_the_args_of_a_job_skipped_after_a_failure_stays_out_of_store_and_output() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        &format!(
            "{}jobs:\n  - name: bad\n    command: 'false'\n  - name: skipped\n    command: [echo, {SECRET}]\n    needs: [bad]\n",
            secret_head()
        ),
    );
    let runs = three_runs(&env, || {});
    for (what, r) in &runs {
        assert_eq!(r.code, 1, "{what}: {r:?}");
    }
    let rec = Run::record(&runs[0].1.json(), "skipped").clone();
    assert_eq!(rec["status"], "skipped", "{rec}");
    assert_secret_kept_out(&env, "skipped", runs);
}

/// A job file with `on_failure: kill`: `long` (the secret in its argv) runs until `bad` fails,
/// which waits until `long` has started; `extra` is appended to the jobs.
fn kill_file(extra: &str) -> String {
    format!(
        "{}on_failure: kill\nconcurrency: 2\njobs:\n  - name: long\n    command: [sh, -c, 'touch started; exec sleep 30', {SECRET}]\n  - name: bad\n    shell: 'while [ ! -e started ]; do sleep 0.02; done; exit 1'\n{extra}",
        secret_head()
    )
}

#[test]
fn a_secret_in_the_args_of_a_job_killed_by_on_failure_kill_stays_out() {
    let env = Env::new();
    env.write("jobs.yaml", &kill_file(""));
    let runs = three_runs(&env, || {
        let _ = std::fs::remove_file(env.path("started"));
    });
    for (what, r) in &runs {
        assert_eq!(r.code, 1, "{what}: {r:?}");
    }
    let rec = Run::record(&runs[0].1.json(), "long").clone();
    assert_eq!(rec["status"], "cancelled", "{rec}");
    assert_secret_kept_out(&env, "long", runs);
}

#[test]
fn a_secret_in_the_args_of_a_job_never_started_under_on_failure_kill_stays_out() {
    let env = Env::new();
    // Both slots are taken by `long` and `bad`: `queued` is still waiting when the run kills.
    env.write(
        "jobs.yaml",
        &kill_file(&format!(
            "  - name: queued\n    command: [echo, {SECRET}]\n"
        )),
    );
    let runs = three_runs(&env, || {
        let _ = std::fs::remove_file(env.path("started"));
    });
    for (what, r) in &runs {
        assert_eq!(r.code, 1, "{what}: {r:?}");
    }
    let recs = runs[0].1.json();
    assert_eq!(
        Run::record(&recs, "long")["status"],
        "cancelled",
        "{recs:?}"
    );
    assert_eq!(Run::record(&recs, "queued")["pid"], serde_json::Value::Null);
    assert_secret_kept_out(&env, "queued", runs);
}

#[test]
fn a_secret_in_the_args_of_a_job_never_started_under_on_failure_stop_stays_out() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        &format!(
            "{}on_failure: stop\nconcurrency: 1\njobs:\n  - name: bad\n    command: 'false'\n  - name: never\n    command: [echo, {SECRET}]\n",
            secret_head()
        ),
    );
    let runs = three_runs(&env, || {});
    for (what, r) in &runs {
        assert_eq!(r.code, 1, "{what}: {r:?}");
    }
    let rec = Run::record(&runs[0].1.json(), "never").clone();
    assert_eq!(rec["pid"], serde_json::Value::Null, "{rec}");
    assert_secret_kept_out(&env, "never", runs);
}

#[test]
fn a_background_job_whose_supervisor_cannot_start_gets_a_record() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: bgjob\n    command: sleep 1\n    background: true\n",
    );
    let out = env
        .cmd()
        .args(["jobs.yaml"])
        .env("ORCHESTRATE_EXE", "/nonexistent/orchestrate")
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the run succeeded without its supervisor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = env.run(&["show", "last", "--json"]);
    let recs = show.json();
    let rec = recs.iter().find(|r| r["job"] == "bgjob").unwrap_or_else(|| {
        panic!("`show last --json` has no record of the job whose supervisor could not start: {show:?}")
    });
    assert_eq!(rec["status"], "spawn_error", "{rec}");
    let runs = env.run(&["runs", "--json"]).json();
    assert_ne!(runs[0]["status"], "succeeded", "{runs:?}");
}

/// The status of the newest run, in `runs --json` and in the STATUS column of `runs`.
fn last_run_status(env: &Env) -> (String, String) {
    let runs = env.run(&["runs", "--json"]).json();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let table = env.run(&["runs"]).stdout;
    let cells = table_row(&table, "RUN", &id);
    let status = cells
        .iter()
        .find(|(h, _)| h == "STATUS")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no STATUS column in\n{table}"));
    (runs[0]["status"].as_str().unwrap_or("").to_string(), status)
}

#[test]
fn a_run_that_waited_for_its_failed_background_job_is_not_succeeded() {
    let env = Env::new();
    let r = env.run_jobs(
        "wait: true\njobs:\n  - name: bg\n    command: [sh, -c, 'exit 3']\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let (json, table) = last_run_status(&env);
    assert_ne!(json, "succeeded", "runs --json");
    assert_ne!(table, "succeeded", "runs");
}

#[test]
fn a_run_whose_background_job_failed_after_the_run_ended_is_not_succeeded() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bg\n    command: [sh, -c, 'exit 3']\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let w = env.run(&["wait", "last", "--timeout", "60s"]);
    assert_eq!(w.code, 1, "{w:?}");
    // The supervisor's final record is in.
    let rec = &env.run(&["show", "last", "--json"]).json()[0];
    assert_eq!(rec["status"], "failed", "{rec}");
    let (json, table) = last_run_status(&env);
    assert_ne!(
        json, "succeeded",
        "`runs --json` calls a run succeeded whose background job failed (exit 3)"
    );
    assert_ne!(
        table, "succeeded",
        "`runs` calls a run succeeded whose background job failed (exit 3)"
    );
}

type Counts = BTreeMap<String, u64>;

/// Status names as the records spell them, and the words people read for them.
const STATUS_WORDS: [(&str, &[&str]); 9] = [
    ("succeeded", &["succeeded", "ok"]),
    ("failed", &["failed"]),
    (
        "timed_out",
        &["timed out", "timed_out", "timeout", "timedout"],
    ),
    ("cancelled", &["cancelled"]),
    (
        "spawn_error",
        &["spawn error", "spawn_error", "could not start"],
    ),
    ("skipped", &["skipped"]),
    ("background", &["background"]),
    ("lost", &["lost"]),
    ("interrupted", &["interrupted"]),
];

fn status_of_word(word: &str) -> Option<&'static str> {
    let w = word.trim().to_lowercase().replace('-', " ");
    STATUS_WORDS
        .iter()
        .find(|(_, words)| words.contains(&w.as_str()))
        .map(|(st, _)| *st)
}

/// "1 succeeded, 1 failed, 1 timed out" → counts (words that name no status are left out).
fn phrase_counts(text: &str) -> Counts {
    let mut counts = Counts::new();
    for part in text.split([',', ';']) {
        let part = part.trim();
        let Some((n, word)) = part.split_once(' ') else {
            continue;
        };
        if let (Ok(n), Some(st)) = (n.parse::<u64>(), status_of_word(word)) {
            *counts.entry(st.to_string()).or_default() += n;
        }
    }
    counts
}

/// The cells of the row of a table whose first cell is `key`, as (header, value): the header
/// line starts with `first_header`, and its columns are separated by two spaces or more.
fn table_row(table: &str, first_header: &str, key: &str) -> Vec<(String, String)> {
    let header = table
        .lines()
        .find(|l| l.starts_with(first_header))
        .unwrap_or_else(|| panic!("no header line in\n{table}"));
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row for {key} in\n{table}"));
    let cols = columns(header);
    let ends = cols.iter().skip(1).map(|c| c.0).chain([usize::MAX]);
    cols.iter()
        .zip(ends)
        .map(|((start, name), end)| {
            let cell = row.get(*start..end.min(row.len())).unwrap_or("");
            (name.clone(), cell.trim().to_string())
        })
        .collect()
}

/// Each column of a header line: where it starts and its name. Columns are two spaces or more
/// apart; a name may hold single spaces (`JOB FILE`).
fn columns(header: &str) -> Vec<(usize, String)> {
    let b = header.as_bytes();
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| b[i] != b' ' && (i == 0 || i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' '))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let end = starts.get(k + 1).copied().unwrap_or(b.len());
            (s, header[s..end].trim().to_string())
        })
        .collect()
}

/// Counts in a `runs` row: a column per status (OK, FAILED, TIMED OUT, ...), or cells with
/// "N status" phrases.
fn runs_table_counts(table: &str, run: &str) -> Counts {
    let mut counts = Counts::new();
    for (head, cell) in table_row(table, "RUN", run) {
        match (status_of_word(&head), cell.parse::<u64>()) {
            (Some(st), Ok(n)) => *counts.entry(st.to_string()).or_default() += n,
            _ => {
                for (st, n) in phrase_counts(&cell) {
                    *counts.entry(st).or_default() += n;
                }
            }
        }
    }
    counts
}

/// Counts in `runs --json`: a `counts` object by status name, else a field per status name.
fn runs_json_counts(run: &serde_json::Value) -> Counts {
    let source = run.get("counts").unwrap_or(run);
    STATUS_WORDS
        .iter()
        .filter_map(|(st, _)| source.get(*st).and_then(|n| n.as_u64()).map(|n| (st, n)))
        .map(|(st, n)| (st.to_string(), n))
        .collect()
}

/// Counts of records by their `status`.
fn record_counts(recs: &[serde_json::Value]) -> Counts {
    let mut counts = Counts::new();
    for r in recs {
        *counts
            .entry(r["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    counts
}

/// Counts of the rows of `show` (text) by their STATUS cell.
fn show_table_counts(table: &str) -> Counts {
    let header = table
        .lines()
        .find(|l| l.starts_with('#'))
        .unwrap_or_else(|| panic!("no table in\n{table}"));
    let cols = columns(header);
    let (start, _) = cols
        .iter()
        .find(|(_, n)| n == "STATUS")
        .unwrap_or_else(|| panic!("no STATUS column in\n{table}"));
    let mut counts = Counts::new();
    for row in table
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
    {
        let status = row[*start..].split_whitespace().next().unwrap_or("?");
        *counts.entry(status.to_string()).or_default() += 1;
    }
    counts
}

fn without_zeros(mut c: Counts) -> Counts {
    c.retain(|_, n| *n > 0);
    c
}

/// The contract: the summary line, `runs` (table and `--json`), `show` (table and `--json`) and
/// the run's own `--json` records give the same count for every status, and failed, timed-out
/// and skipped jobs are counted apart.
#[test]
fn per_status_counts_are_the_same_in_summary_runs_show_and_json_records() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: good\n    command: 'true'\n  - name: bad\n    command: 'false'\n  - name: slow\n    command: sleep 5\n    timeout: 200ms\n  - name: after\n    command: 'true'\n    needs: [bad]\n",
    );
    let expected: Counts = [
        ("succeeded", 1),
        ("failed", 1),
        ("timed_out", 1),
        ("skipped", 1),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_string(), n))
    .collect();

    // One run for people (its summary line), one for machines (its JSON records).
    let plain = env.run(&["jobs.yaml"]);
    assert_eq!(plain.code, 1, "{plain:?}");
    let summary = plain
        .stderr
        .lines()
        .find(|l| l.contains(" jobs in "))
        .unwrap_or_else(|| panic!("no summary line: {plain:?}"));
    let (counted, run_a) = summary
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_once("; run "))
        .unwrap_or_else(|| panic!("summary line of an unknown shape: {summary}"));
    let json = env.run(&["jobs.yaml", "--json"]);
    assert_eq!(json.code, 1, "{json:?}");
    let runs = env.run(&["runs", "--json"]).json();
    let run_json = |id: &str| {
        runs.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no run {id} in {runs:?}"))
            .clone()
    };
    let run_b = runs[0]["id"].as_str().unwrap().to_string();
    assert_ne!(run_a, run_b);
    let runs_table = env.run(&["runs"]).stdout;

    let mut said: Vec<(String, Counts)> = vec![
        (format!("summary line `{summary}`"), phrase_counts(counted)),
        (
            "the run's --json records".into(),
            record_counts(&json.json()),
        ),
    ];
    for id in [run_a, run_b.as_str()] {
        said.push((
            format!("`runs --json` for {id}: {}", run_json(id)),
            runs_json_counts(&run_json(id)),
        ));
        said.push((
            format!("`runs` row for {id}:\n{runs_table}"),
            runs_table_counts(&runs_table, id),
        ));
        said.push((
            format!("`show {id} --json`"),
            record_counts(&env.run(&["show", id, "--json"]).json()),
        ));
        let show = env.run(&["show", id]).stdout;
        said.push((format!("`show {id}`:\n{show}"), show_table_counts(&show)));
    }
    let wrong: Vec<String> = said
        .into_iter()
        .map(|(what, counts)| (what, without_zeros(counts)))
        .filter(|(_, counts)| *counts != expected)
        .map(|(what, counts)| format!("{what}\n  counts {counts:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "per-status counts differ from {expected:?} in:\n{}",
        wrong.join("\n")
    );
}

/// The variable names of an `env` dump.
fn names_in_env_dump(dump: &str) -> std::collections::BTreeSet<String> {
    dump.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .filter(|k| {
            !k.is_empty()
                && k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
                && !k.starts_with(|c: char| c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

/// Runs jobs.yaml with the test host's exports and one variable only this side has.
fn run_ssh(env: &Env, e: &Exports, yaml: &str) -> Run {
    env.write("jobs.yaml", yaml);
    let o = env
        .cmd()
        .envs(e.iter().map(|(k, v)| (k, v)))
        .env("ORCH_LOCAL_ONLY", "here")
        .args(["jobs.yaml", "--json"])
        .output()
        .expect("run orchestrate");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

/// Asserts that `rec` (from `what`) claims only variables in `got`, and the ones orchestrate
/// certainly sent.
fn assert_env_claims(
    what: &str,
    rec: &serde_json::Value,
    got: &std::collections::BTreeSet<String>,
) {
    let keys: Vec<String> = rec["env_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no env_keys in {rec}"))
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_string())
        .collect();
    let claimed_not_got: Vec<&String> = keys.iter().filter(|k| !got.contains(*k)).collect();
    assert!(
        claimed_not_got.is_empty(),
        "{what}: the record claims variables the remote job never got: {claimed_not_got:?} (it got {got:?})"
    );
    for sent in ["SENT_BY_FILE", "ORCHESTRATE_JOB"] {
        assert!(
            keys.iter().any(|k| k == sent),
            "{what}: the record leaves out {sent}, which the remote job got: {keys:?}"
        );
    }
    if rec["env_inherited"] == true {
        assert!(
            got.contains("ORCH_LOCAL_ONLY"),
            "{what}: the record says env_inherited: true, but the remote job did not get orchestrate's environment"
        );
    }
}

#[test]
fn an_ssh_jobs_record_lists_exactly_the_environment_it_was_sent() {
    let test = "redesign::an_ssh_jobs_record_lists_exactly_the_environment_it_was_sent";
    let Some(e) = sshd(test) else { return };
    let env = Env::new();
    let yaml = format!(
        "{}executor: ssh\nhosts: [orch-ssh]\nenv: {{SENT_BY_FILE: 'yes'}}\njobs:\n  - name: envdump\n    command: env\n",
        ssh_head(e)
    );
    let r = run_ssh(&env, e, &yaml);
    assert_eq!(r.code, 0, "{r:?}");
    let live = Run::record(&r.json(), "envdump").clone();
    let got = names_in_env_dump(live["stdout"].as_str().unwrap_or_default());
    assert!(got.contains("SENT_BY_FILE"), "{got:?}");
    assert_env_claims("the run's --json record", &live, &got);
    let stored = env.run(&["show", "last", "--json"]).json();
    assert_env_claims("`show last --json`", Run::record(&stored, "envdump"), &got);
    // `show --job` spells the environment out: names, and whether it was inherited.
    let detail = env.run(&["show", "last", "--job", "envdump"]).stdout;
    let line = detail
        .lines()
        .find(|l| l.starts_with("env "))
        .unwrap_or_else(|| panic!("no env line in\n{detail}"));
    let names = line.split_once(": ").map_or("", |(_, n)| n);
    let claimed_not_got: Vec<&str> = names
        .split_whitespace()
        .filter(|k| !got.contains(*k))
        .collect();
    assert!(
        claimed_not_got.is_empty(),
        "`show --job`: the record claims variables the remote job never got: {claimed_not_got:?}\n{line}"
    );
    assert!(
        !line.contains("inherited") || got.contains("ORCH_LOCAL_ONLY"),
        "`show --job` says the remote job inherited orchestrate's environment: {line}"
    );
}
