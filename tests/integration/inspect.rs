//! The inspection commands as the README shows them: `logs --follow` of a background job,
//! `logs`/`show --job` finding a job's latest run, job indexes under `--resume`/`--only`,
//! one shape for every JSON record, and `rerun`.

use crate::helpers::Env;

#[test]
fn logs_follow_keeps_printing_a_background_job_after_its_run_ended() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bg\n    shell: 'echo first; sleep 1; echo second; sleep 1; echo third'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // The run has ended; the job still runs under its supervisor.
    let follow = env.run(&["logs", "bg", "--follow"]);
    assert_eq!(follow.code, 0, "{follow:?}");
    assert_eq!(follow.stdout, "first\nsecond\nthird\n", "{follow:?}");
}

#[test]
fn logs_follow_of_a_running_job_whose_output_goes_to_its_own_file_says_so() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bg\n    shell: 'echo first; sleep 30'\n    background: true\n    stdout: {file: own.log}\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // As without --follow: there is nothing here to follow (before: silence until the job
    // ended, exit 0).
    let follow = env.run(&["logs", "bg", "--follow"]);
    assert_eq!(follow.code, 2, "{follow:?}");
    assert!(
        follow.stderr.contains("was not captured; it went to") && follow.stderr.contains("own.log"),
        "{follow:?}"
    );
    assert_eq!(env.run(&["kill", "bg"]).code, 0);
}

#[test]
fn logs_follow_follows_the_run_in_which_a_job_runs_again() {
    let env = Env::new();
    let yaml = "jobs:\n  - name: ticker\n    shell: 'echo start; test -e go || exit 0; for i in 1 2 3; do echo tick $i; sleep 0.3; done'\n";
    assert_eq!(env.run_jobs(yaml, &[]).code, 0);
    env.write("go", "");
    let mut run = env.spawn(&["jobs.yaml"]);
    // The new run's capture file is there: `logs` follows that run, not the one before.
    assert!(crate::helpers::wait_for(
        std::time::Duration::from_secs(10),
        || {
            let ids = env.run(&["runs", "--json"]).json();
            ids.len() == 2
                && env
                    .state()
                    .join("runs")
                    .join(ids[0]["id"].as_str().unwrap())
                    .join("ticker/stdout")
                    .exists()
        }
    ));
    let follow = env.run(&["logs", "ticker", "--follow"]);
    assert_eq!(follow.code, 0, "{follow:?}");
    assert_eq!(
        follow.stdout, "start\ntick 1\ntick 2\ntick 3\n",
        "{follow:?}"
    );
    assert!(run.wait().unwrap().success());
}

/// The keys of a JSON record, sorted.
fn keys(rec: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = rec
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {rec}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[test]
fn every_json_record_has_the_same_fields_with_its_run() {
    let env = Env::new();
    let yaml = "\
hooks:
  on_exit: {shell: 'cat > run-records.jsonl'}
jobs:
  - {name: ok, command: 'true'}
  - name: bad
    command: 'false'
    hooks: {on_failure: {shell: 'cat > job-record.json'}}
  - {name: sig, shell: 'kill -TERM $$'}
  - {name: slow, command: 'sleep 5', timeout: 200ms}
  - {name: after-bad, command: 'true', needs: [bad]}
  - {name: bg, command: 'true', background: true}
";
    let r = env.run_jobs(yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let id = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ran = r.json();
    assert!(crate::helpers::wait_for(
        std::time::Duration::from_secs(10),
        || env.run(&["show", "--job", "bg", "--json"]).json()[0]["status"] == "succeeded"
    ));
    let shown = env.run(&["show", "--json"]).json();
    let hook_file = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(env.path(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let history = env.run(&["history", "bad", "--json"]).json();
    let mut all: Vec<(&str, serde_json::Value)> = Vec::new();
    for (from, recs) in [
        ("--json", ran),
        ("show --json", shown),
        ("job hook's record", hook_file("job-record.json")),
        ("run hook's records", hook_file("run-records.jsonl")),
        ("history --json", history),
    ] {
        assert!(!recs.is_empty(), "no record from {from}");
        all.extend(recs.into_iter().map(|r| (from, r)));
    }
    let statuses: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|(_, r)| r["status"].as_str().unwrap())
        .collect();
    for s in ["succeeded", "failed", "timed_out", "skipped", "background"] {
        assert!(statuses.contains(s), "no {s} record in {statuses:?}");
    }
    let first = keys(&all[0].1);
    for k in ["run", "signal_name", "hook", "slurm_job_id"] {
        assert!(first.contains(&k.to_string()), "no `{k}` in {first:?}");
    }
    for (from, rec) in &all {
        assert_eq!(keys(rec), first, "{from}: {rec}");
        assert_eq!(rec["run"], id.as_str(), "{from}: {rec}");
    }
    let sig = all.iter().find(|(_, r)| r["job"] == "sig").unwrap();
    assert_eq!(sig.1["signal_name"], "SIGTERM", "{}", sig.1);
    let ok = all.iter().find(|(_, r)| r["job"] == "ok").unwrap();
    assert!(ok.1["signal_name"].is_null(), "{}", ok.1);
    assert!(ok.1["hook"].is_null(), "{}", ok.1);
}

#[test]
fn logs_and_show_job_find_the_jobs_latest_run_after_another_job_file_ran() {
    let env = Env::new();
    env.write(
        "greet.yaml",
        "jobs:\n  - {name: greet, shell: 'echo hello'}\n",
    );
    env.write(
        "other.yaml",
        "jobs:\n  - {name: other, shell: 'echo other'}\n",
    );
    assert_eq!(env.run(&["greet.yaml"]).code, 0);
    let greet_run = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.run(&["other.yaml"]).code, 0);
    let logs = env.run(&["logs", "greet"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert_eq!(logs.stdout, "hello\n");
    let show = env.run(&["show", "--job", "greet"]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(
        show.stdout.contains(&format!("run         {greet_run}")),
        "{show:?}"
    );
    let json = env.run(&["show", "--job", "greet", "--json"]).json();
    assert_eq!(json[0]["stdout"], "hello\n");
    // `show` alone is the last run; an explicit --run is looked in as before.
    assert!(env.run(&["show"]).stdout.contains("other.yaml"));
    let explicit = env.run(&["logs", "greet", "--run", "last"]);
    assert_ne!(explicit.code, 0, "{explicit:?}");
    assert!(explicit.stderr.contains("greet"), "{explicit:?}");
    // A job in no run at all is named as such.
    let none = env.run(&["logs", "nobody"]);
    assert_ne!(none.code, 0, "{none:?}");
    assert!(none.stderr.contains("`nobody`"), "{none:?}");
}

/// `(index, job)` of each record, as `show --json` lists them.
fn indexes(env: &Env) -> Vec<(u64, String)> {
    env.run(&["show", "--json"])
        .json()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["job"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn records_keep_their_job_file_index_under_resume_only_and_skip() {
    let env = Env::new();
    let yaml = "jobs:
  - {name: first, command: 'true'}
  - {name: flaky, shell: 'test -e fixed'}
  - {name: third, command: 'true'}
  - {name: fourth, command: 'true', needs: [flaky]}
";
    let full = |names: &[&str]| -> Vec<(u64, String)> {
        let all = ["first", "flaky", "third", "fourth"];
        names
            .iter()
            .map(|n| {
                (
                    all.iter().position(|a| a == n).unwrap() as u64,
                    n.to_string(),
                )
            })
            .collect()
    };
    assert_eq!(env.run_jobs(yaml, &[]).code, 1);
    assert_eq!(indexes(&env), full(&["first", "flaky", "third", "fourth"]));
    env.write("fixed", "");
    let resumed = env.run_jobs(yaml, &["--resume", "last", "--json"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    // The jobs run again and the records carried over, each at its place in the job file,
    // and `show` in that order.
    let ran: Vec<(u64, String)> = resumed
        .json()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["job"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ran, full(&["flaky", "fourth"]), "{resumed:?}");
    assert_eq!(indexes(&env), full(&["first", "flaky", "third", "fourth"]));
    let table = env.run(&["show"]).stdout;
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, (i, name)) in rows
        .iter()
        .zip(full(&["first", "flaky", "third", "fourth"]))
    {
        let cells: Vec<&str> = row.split_whitespace().take(2).collect();
        assert_eq!(cells, [i.to_string(), name], "{table}");
    }
    assert_eq!(env.run_jobs(yaml, &["--only", "third"]).code, 0);
    assert_eq!(indexes(&env), full(&["third"]));
    assert_eq!(env.run_jobs(yaml, &["--skip", "first,third"]).code, 0);
    assert_eq!(indexes(&env), full(&["flaky", "fourth"]));
}

#[test]
fn rerun_runs_one_recorded_job_again_as_a_new_run() {
    let env = Env::new();
    let yaml = |greeting: &str, cmd: &str| {
        format!(
            "env: {{GREETING: {greeting}}}
jobs:
  - {{name: build, shell: '{cmd}'}}
  - {{name: test, shell: 'echo test >> order.log; exit $FAIL', needs: [build], env: {{FAIL: '0'}}}}
  - {{name: deploy, shell: 'echo deploy >> order.log', needs: [test]}}
  - {{name: other, shell: 'echo other >> order.log'}}
"
        )
    };
    let build = "echo build >> order.log; echo $GREETING";
    env.write("jobs.yaml", &yaml("hello", build));
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    let first = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(env.path("order.log")).unwrap();
    // The environment is the job file's as it is now.
    env.write("jobs.yaml", &yaml("bonjour", build));
    let r = env.run(&["rerun", &first, "build", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["stdout"], "bonjour\n");
    assert_eq!(recs[0]["index"], 0);
    assert_eq!(
        recs[0]["notes"][0],
        format!("rerun of run {first}"),
        "{r:?}"
    );
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs.len(), 2, "a new run");
    assert_eq!(recs[0]["run"], runs[0]["id"]);
    assert_eq!(
        std::fs::read_to_string(env.path("order.log")).unwrap(),
        "build\n"
    );
    let shown = env.run(&["show", "--json"]).json();
    assert_eq!(shown.len(), 1, "{shown:?}");
    // With what needs it, in need order; nothing else.
    std::fs::remove_file(env.path("order.log")).unwrap();
    let r = env.run(&["rerun", &first, "build", "--with-dependents"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("order.log")).unwrap(),
        "build\ntest\ndeploy\n"
    );
    assert!(r.stderr.contains("with 2 jobs that need it"), "{r:?}");
    // Its exit code is a run's.
    env.write(
        "jobs.yaml",
        &yaml("hello", build).replace("FAIL: '0'", "FAIL: '3'"),
    );
    let r = env.run(&["rerun", &first, "test"]);
    assert_eq!(r.code, 1, "{r:?}");
    // A job changed since: the command it ran then, and a note saying so.
    env.write("jobs.yaml", &yaml("hello", "echo changed"));
    let r = env.run(&["rerun", &first, "build", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = &r.json()[0];
    assert_eq!(rec["stdout"], "hello\n", "{r:?}");
    assert!(r.stderr.contains("changed in its job file since"), "{r:?}");
    let notes = rec["notes"].to_string();
    assert!(notes.contains("changed in its job file since"), "{rec}");
    assert!(r.stderr.contains("echo changed"), "{r:?}");
}

#[test]
fn rerun_names_the_job_file_and_the_job_it_cannot_find() {
    let env = Env::new();
    env.write("jobs.yaml", "jobs:\n  - {name: build, command: 'true'}\n");
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    env.write("jobs.yaml", "jobs:\n  - {name: make, command: 'true'}\n");
    let r = env.run(&["rerun", "last", "build"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no longer has a job `build`"), "{r:?}");
    assert!(r.stderr.contains("jobs.yaml"), "{r:?}");
    std::fs::remove_file(env.path("jobs.yaml")).unwrap();
    let r = env.run(&["rerun", "last", "build"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("jobs.yaml is gone"), "{r:?}");
    assert!(r.stderr.contains("`build`"), "{r:?}");
    assert_eq!(
        env.run(&["runs", "--json"]).json().len(),
        1,
        "no run started"
    );
    let r = env.run(&["rerun", "last", "nosuch"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("nosuch"), "{r:?}");
}

#[test]
fn rerun_of_a_record_that_hides_a_secret_runs_the_job_files_command() {
    let env = Env::new();
    let yaml = |extra: &str| {
        format!(
            "secret_env: [TOKEN]\nenv: {{TOKEN: s3cr3t-value-long}}\njobs:\n  - name: call\n    command: [sh, -c, 'test \"$1\" = \"$TOKEN\" && echo same{extra}', x, s3cr3t-value-long]\n"
        )
    };
    env.write("jobs.yaml", &yaml(""));
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    let shown = env.run(&["show", "--job", "call", "--json"]).json();
    assert!(
        shown[0]["args"].to_string().contains("[REDACTED]"),
        "{shown:?}"
    );
    // Unchanged: the job file's command is the recorded one, secret and all.
    let r = env.run(&["rerun", "last", "call", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()[0]["stdout"], "same\n", "{r:?}");
    assert!(!r.stderr.contains("changed"), "{r:?}");
    // Changed: the record cannot be run as it stands; the job file's command runs.
    env.write("jobs.yaml", &yaml(" again"));
    let r = env.run(&["rerun", "last", "call", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()[0]["stdout"], "same again\n", "{r:?}");
    assert!(r.stderr.contains("hides a secret"), "{r:?}");
    assert!(
        crate::helpers::files_holding(&env.state(), "s3cr3t-value-long").is_empty(),
        "the secret reached the store"
    );
}

#[test]
fn rerun_gives_the_job_the_stdin_its_record_holds() {
    let env = Env::new();
    let yaml = |text: &str| {
        format!("jobs:\n  - name: read\n    command: cat\n    stdin: {{text: '{text}'}}\n")
    };
    env.write("jobs.yaml", &yaml("then"));
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    let first = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.write("jobs.yaml", &yaml("now"));
    let r = env.run(&["rerun", &first, "read", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()[0]["stdout"], "then", "{r:?}");
    // A secret in the stdin is never stored: the job file's stdin is given again.
    let secret = "secret_env: [TOKEN]\nenv: {TOKEN: s3cr3t-stdin-value}\njobs:\n  - name: read\n    command: [sh, -c, 'test \"$(cat)\" = \"$TOKEN\"']\n    stdin: {text: 's3cr3t-stdin-value'}\n";
    env.write("jobs.yaml", secret);
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    let r = env.run(&["rerun", "last", "read", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()[0]["returncode"],
        0,
        "the job file's stdin, not [REDACTED]: {r:?}"
    );
    assert!(crate::helpers::files_holding(&env.state(), "s3cr3t-stdin-value").is_empty());
}
