//! Hooks of the run and of jobs: what they get (environment, stdin, records), when and in what
//! order they run, that they never change the run's outcome, that secrets stay out of them, and
//! that a malformed hook is a job-file error.

use crate::helpers::{Env, files_holding};

/// A hook that writes its ORCHESTRATE_* variables to `NAME.env` and its stdin to `NAME.in`,
/// and notes its name in `order.log`.
fn dump(name: &str) -> String {
    format!(
        "{{shell: 'env | grep ^ORCHESTRATE_ | sort > {name}.env; printf %s \"$ORCHESTRATE_FAILED_JOBS\" > {name}.failed; cat > {name}.in; echo {name} >> order.log'}}"
    )
}

/// The variables a hook wrote, as a map; `ORCHESTRATE_FAILED_JOBS` (one name a line) as the
/// hook printed it.
fn vars(env: &Env, name: &str) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(env.path(&format!("{name}.env")))
        .unwrap_or_else(|e| panic!("{name} did not run: {e}"));
    let mut out: std::collections::HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let failed = std::fs::read_to_string(env.path(&format!("{name}.failed"))).unwrap();
    out.insert("ORCHESTRATE_FAILED_JOBS".into(), failed);
    out
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn run_and_job_hooks_get_the_outcome_in_their_environment_and_stdin() {
    let env = Env::new();
    let yaml = format!(
        "hooks:\n  on_failure: {}\n  on_success: {}\n  on_exit: {}\njobs:\n  - name: bad\n    shell: 'echo broken >&2; exit 3'\n    hooks:\n      on_failure: {}\n      on_success: {}\n      on_exit: {}\n  - name: good\n    command: echo fine\n    hooks: {{on_success: {}}}\n  - name: bad2\n    command: 'false'\n",
        dump("run_fail"),
        dump("run_ok"),
        dump("run_exit"),
        dump("bad_fail"),
        dump("bad_ok"),
        dump("bad_exit"),
        dump("good_ok"),
    );
    let r = env.run_jobs(&yaml, &["-j", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    let run_id = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The run's hooks: after every job, on_failure then on_exit.
    let order = std::fs::read_to_string(env.path("order.log")).unwrap();
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(
        order,
        ["bad_fail", "bad_exit", "good_ok", "run_fail", "run_exit"]
    );
    let v = vars(&env, "run_fail");
    assert_eq!(v["ORCHESTRATE_RUN"], run_id);
    assert_eq!(v["ORCHESTRATE_STATUS"], "failed");
    assert_eq!(v["ORCHESTRATE_EXIT_CODE"], "1");
    assert_eq!(v["ORCHESTRATE_COUNTS"], "succeeded=1 failed=2");
    assert_eq!(v["ORCHESTRATE_FAILED_JOBS"], "bad\nbad2");
    assert_eq!(v["ORCHESTRATE_JOB"], "run.on_failure");
    let records = std::fs::read_to_string(&v["ORCHESTRATE_RECORDS"]).unwrap();
    let stdin = std::fs::read_to_string(env.path("run_fail.in")).unwrap();
    assert_eq!(records, stdin, "stdin holds the records file");
    let recs = json_lines(&stdin);
    let jobs: Vec<&str> = recs
        .iter()
        .filter(|r| r["hook"].is_null())
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["bad", "good", "bad2"]);
    let bad = recs.iter().find(|r| r["job"] == "bad").unwrap();
    assert_eq!(bad["stderr"], "broken\n", "the lines `--json` prints");
    assert_eq!(vars(&env, "run_exit")["ORCHESTRATE_STATUS"], "failed");

    // A job's hooks: its status, returncode and record.
    let v = vars(&env, "bad_fail");
    assert_eq!(v["ORCHESTRATE_JOB"], "bad");
    assert_eq!(v["ORCHESTRATE_STATUS"], "failed");
    assert_eq!(v["ORCHESTRATE_EXIT_CODE"], "3");
    assert_eq!(v["ORCHESTRATE_FAILED_JOBS"], "bad");
    assert_eq!(v["ORCHESTRATE_RUN"], run_id);
    let rec = &json_lines(&std::fs::read_to_string(env.path("bad_fail.in")).unwrap())[0];
    assert_eq!(
        (&rec["job"], &rec["returncode"]),
        (&"bad".into(), &3.into())
    );
    let v = vars(&env, "good_ok");
    assert_eq!(
        (
            v["ORCHESTRATE_STATUS"].as_str(),
            v["ORCHESTRATE_EXIT_CODE"].as_str()
        ),
        ("succeeded", "0")
    );
    assert_eq!(v["ORCHESTRATE_FAILED_JOBS"], "");
    assert!(!env.path("bad_ok.env").exists() && !env.path("run_ok.env").exists());
}

#[test]
fn a_failing_hook_is_a_warning_and_changes_no_outcome() {
    let env = Env::new();
    let yaml = "hooks:\n  on_success: {command: [sh, -c, 'exit 7']}\n  on_exit: {command: no-such-program-xyz}\njobs:\n  - name: build\n    command: 'true'\n    hooks: {on_exit: {shell: 'exit 9', timeout: 5s}}\n";
    let r = env.run_jobs(yaml, &["-q"]);
    assert_eq!(r.code, 0, "{r:?}");
    for w in [
        "warning: hook `build.on_exit` failed (exit 9)",
        "warning: hook `run.on_success` failed (exit 7)",
        "warning: hook `run.on_exit` could not start: command not found: no-such-program-xyz",
    ] {
        assert!(r.stderr.contains(w), "{w:?} in {r:?}");
    }
    let run = &env.run(&["runs", "--json"]).json()[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"], serde_json::json!({"succeeded": 1}), "{run}");
    assert_eq!(env.run(&["runs", "--failed", "--json"]).json().len(), 0);
    let shown = env.run(&["show", "last", "--json"]).json();
    let marks: Vec<(&str, Option<&str>, &str)> = shown
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap(),
                r["hook"].as_str(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("build", None, "succeeded"),
            ("build.on_exit", Some("on_exit"), "failed"),
            ("run.on_success", Some("on_success"), "failed"),
            ("run.on_exit", Some("on_exit"), "spawn_error"),
        ]
    );
    let table = env.run(&["show", "last"]).stdout;
    assert!(table.contains("hook  run.on_success"), "{table}");
    assert!(!table.contains("have no record"), "{table}");
}

#[test]
fn hook_records_are_json_lines_of_a_json_run() {
    let env = Env::new();
    let r = env.run_jobs(
        "hooks: {on_exit: {command: echo done}}\njobs:\n  - name: a\n    command: 'true'\n    hooks: {on_success: {command: echo ok}}\n",
        &["--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines = r.json();
    let names: Vec<(&str, Option<&str>)> = lines
        .iter()
        .map(|l| (l["job"].as_str().unwrap(), l["hook"].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("a", None),
            ("a.on_success", Some("on_success")),
            ("run.on_exit", Some("on_exit"))
        ]
    );
    assert_eq!(lines[2]["stdout"], "done\n");
}

#[test]
fn secrets_stay_out_of_hooks_records_and_what_they_are_given() {
    let env = Env::new();
    let secret = "hunter2-xyzzy";
    let yaml = format!(
        "secret_env: [TOKEN]\nenv: {{TOKEN: {secret}}}\nhooks:\n  on_failure: {{shell: 'env | grep ^ORCHESTRATE_ > vars.txt; cat; env'}}\njobs:\n  - name: leaky\n    command: [sh, -c, 'echo \"token $TOKEN\" >&2; exit 1', {secret}]\n    hooks: {{on_failure: {{shell: 'cat; echo $TOKEN'}}}}\n"
    );
    let r = env.run_jobs(&yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        !r.stdout.contains(secret) && !r.stderr.contains(secret),
        "{r:?}"
    );
    let vars = std::fs::read_to_string(env.path("vars.txt")).unwrap();
    assert!(vars.contains("ORCHESTRATE_FAILED_JOBS=leaky"), "{vars}");
    assert!(!vars.contains(secret), "{vars}");
    // The hooks were given the records (which hold the job's args), and printed their env.
    let hook = &r
        .json()
        .into_iter()
        .find(|l| l["job"] == "run.on_failure")
        .unwrap();
    assert!(
        hook["stdout"].as_str().unwrap().contains("[REDACTED]"),
        "{hook}"
    );
    assert!(
        hook["stdout"]
            .as_str()
            .unwrap()
            .contains("\"job\":\"leaky\""),
        "{hook}"
    );
    let shown = env.run(&["show", "last", "--json"]).stdout;
    assert!(!shown.contains(secret), "{shown}");
    assert_eq!(
        files_holding(&env.state(), secret),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_malformed_hook_is_a_job_file_error_at_its_line() {
    let env = Env::new();
    let cases = [
        (
            "hooks:\n  on_failure: {shell: x, needs: [a]}\njobs:\n  - touch marker\n",
            "jobs.yaml:2:",
            "unknown key `needs`",
        ),
        (
            "jobs:\n  - touch marker\n  - name: b\n    command: 'true'\n    hooks:\n      on_exit:\n        command: x\n        retries: 2\n",
            "jobs.yaml:8:9: unknown key `retries`",
            "in job `b`",
        ),
        (
            "hooks:\n  on_exit: {timeout: 5s}\njobs:\n  - touch marker\n",
            "jobs.yaml:2:13: a hook needs `command:` or `shell:`",
            "",
        ),
        (
            "hooks:\n  on_done: {shell: x}\njobs:\n  - touch marker\n",
            "jobs.yaml:2:3: unknown key `on_done`",
            "",
        ),
        (
            "jobs:\n  - touch marker\n  - name: bg\n    command: sleep 1\n    background: true\n    hooks: {on_exit: {shell: x}}\n",
            "jobs.yaml:6:13: a background job cannot have hooks",
            "",
        ),
        (
            "hooks: {on_exit: {shell: x}}\njobs:\n  - touch marker\n  - name: run.on_exit\n    command: 'true'\n",
            "jobs.yaml:4:11: `run.on_exit` is the name of the run's `on_exit` hook's records",
            "rename the job",
        ),
        (
            "notify: {webhook: 'ftp://x'}\njobs:\n  - touch marker\n",
            "jobs.yaml:1:19: `webhook` must be an http:// or https:// URL",
            "",
        ),
    ];
    for (yaml, at, more) in cases {
        let r = env.run_jobs(yaml, &[]);
        assert_eq!(r.code, 2, "{yaml}\n{r:?}");
        assert!(r.stderr.contains(at), "{at:?} for\n{yaml}\n{r:?}");
        assert!(r.stderr.contains(more), "{more:?} for\n{yaml}\n{r:?}");
        assert!(!env.path("marker").exists(), "a job ran for\n{yaml}");
    }
}

#[test]
fn check_lists_hooks_and_notifications() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "hooks: {on_exit: {command: [logger, done]}}\nnotify: {webhook: 'http://127.0.0.1:9/h', when: change}\njobs:\n  - name: build\n    command: make\n    hooks: {on_failure: {shell: x}, on_exit: {shell: y}}\n",
    );
    let r = env.run(&["check", "jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("[hooks on_failure,on_exit]"), "{r:?}");
    assert!(r.stdout.contains("run.on_exit"), "{r:?}");
    assert!(r.stdout.contains("logger done   [hook]"), "{r:?}");
    assert!(
        r.stdout
            .contains("notify: webhook http://127.0.0.1:9/h (when: change)"),
        "{r:?}"
    );
}
