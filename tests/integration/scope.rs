//! What a job, a run and `last` stand for across job files: `history`, `diff`, `logs`, `show`
//! and `rerun` by (job file, name), `--resume last~N` within the job file, and the usage hints
//! a new user's slips get.

use crate::helpers::{Env, Run};

/// `a.yaml` and `b.yaml`, each with a job `build` echoing its own letter.
fn two_files(env: &Env) {
    env.write("a.yaml", "jobs:\n  - name: build\n    command: echo A\n");
    env.write("b.yaml", "jobs:\n  - name: build\n    command: echo B\n");
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

#[test]
fn diff_compares_runs_of_one_job_file_only() {
    let env = Env::new();
    two_files(&env);
    ok(env.run(&["-q", "a.yaml"]));
    ok(env.run(&["-q", "b.yaml"]));
    // Only one run of b.yaml: nothing to compare, and where else the job ran.
    let r = env.run(&["diff", "build"]);
    assert_eq!(r.code, 3, "{r:?}"); // no earlier run to compare with: exit::NOT_FOUND
    assert!(!r.stdout.contains("-A"), "{r:?}");
    assert!(r.stderr.contains("has run only once in runs of"), "{r:?}");
    assert!(r.stderr.contains("--job-file"), "{r:?}");
    ok(env.run(&["-q", "b.yaml"]));
    let r = ok(env.run(&["diff", "build"]));
    assert!(
        r.stdout.starts_with("no change in the stdout of `build`"),
        "{r:?}"
    );
    ok(env.run(&["-q", "a.yaml"]));
    let r = ok(env.run(&["diff", "build", "--job-file", "b.yaml"]));
    assert!(r.stdout.starts_with("no change"), "{r:?}");
}

#[test]
fn history_tells_job_files_apart() {
    let env = Env::new();
    two_files(&env);
    ok(env.run(&["-q", "a.yaml"]));
    ok(env.run(&["-q", "b.yaml"]));
    let r = ok(env.run(&["history", "build"]));
    let head = r.stdout.lines().next().unwrap_or_default().to_string();
    assert!(head.contains("JOB FILE"), "{r:?}");
    assert!(
        r.stdout.contains("a.yaml") && r.stdout.contains("b.yaml"),
        "{r:?}"
    );
    let r = ok(env.run(&["history", "build", "--job-file", "a.yaml"]));
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    assert!(!r.stdout.contains("JOB FILE"), "{r:?}");
    let r = ok(env.run(&["history", "build", "--job-file", "b.yaml", "--json"]));
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["stdout"], "B\n", "{r:?}");
    let r = env.run(&["history", "build", "--job-file", "c.yaml"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("it is in runs of"), "{r:?}");
    // logs and show --job take the job file too.
    let r = ok(env.run(&["logs", "build", "--job-file", "a.yaml"]));
    assert_eq!(r.stdout, "A\n");
    let r = ok(env.run(&["show", "--job", "build", "--job-file", "a.yaml", "--json"]));
    assert_eq!(r.json()[0]["stdout"], "A\n", "{r:?}");
}

#[test]
fn history_limit_zero_is_refused_and_no_name_is_suggested_as_itself() {
    let env = Env::new();
    env.write("g.yaml", "jobs:\n  - name: greet\n    command: echo hi\n");
    ok(env.run(&["-q", "g.yaml"]));
    let r = env.run(&["history", "greet", "--limit", "0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("at least 1"), "{r:?}");
    assert!(!r.stderr.contains("did you mean"), "{r:?}");
    let r = env.run(&["history", "greet", "--job-file", "other.yaml"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(!r.stderr.contains("did you mean `greet`"), "{r:?}");
}

const DEMO: &str = "jobs:
  - name: greet
    command: echo hi
  - name: fails-on-purpose
    command: sh -c 'echo oops >&2; exit 1'
";

/// The id of the newest run.
fn last_id(env: &Env) -> String {
    let r = ok(env.run(&["runs", "--json", "--limit", "1"]));
    r.json()[0]["id"].as_str().expect("an id").to_string()
}

#[test]
fn resume_last_n_counts_the_runs_of_the_job_file() {
    let env = Env::new();
    two_files(&env);
    env.write("d.yaml", DEMO);
    assert_eq!(env.run(&["-q", "d.yaml"]).code, 1);
    let first = last_id(&env);
    assert_eq!(env.run(&["-q", "d.yaml"]).code, 1);
    ok(env.run(&["-q", "a.yaml"]));
    let r = env.run(&["d.yaml", "--resume", "last~1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!("resuming run {first}:")),
        "{r:?}"
    );
    // d.yaml has run three times now (the resume is a run of it).
    let r = env.run(&["d.yaml", "--resume", "last~3"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("there is no run last~3 of d.yaml"),
        "{r:?}"
    );
}

#[test]
fn rerun_last_job_is_the_jobs_latest_run() {
    let env = Env::new();
    env.write("d.yaml", DEMO);
    assert_eq!(env.run(&["-q", "d.yaml"]).code, 1);
    let demo = last_id(&env);
    ok(env.run(&["rerun", "last", "greet", "-q"]));
    let greet = last_id(&env);
    // `last` is now a run of greet alone; fails-on-purpose's latest run is the first one.
    let r = env.run(&["rerun", "last", "fails-on-purpose"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("rerunning `fails-on-purpose` of run {demo}")),
        "{r:?}"
    );
    let again = last_id(&env);
    let r = ok(env.run(&["rerun", "last~1", "greet", "-q"]));
    assert_eq!(r.stderr, "");
    let shown = ok(env.run(&["show", "--job", "greet", "--json"]));
    let notes = shown.json()[0]["notes"].to_string();
    assert!(notes.contains(&format!("rerun of run {demo}")), "{notes}");
    // An explicit id is exact, and the refusal says what to type.
    let r = env.run(&["rerun", &greet, "fails-on-purpose"]);
    assert_eq!(r.code, 3, "{r:?}");
    let hint = format!("orchestrate rerun {again} fails-on-purpose");
    assert!(r.stderr.contains("its jobs: greet"), "{r:?}");
    assert!(r.stderr.contains(&hint), "{r:?}");
}

#[test]
fn run_flags_without_a_job_file_are_an_error_and_bare_orchestrate_is_help() {
    let env = Env::new();
    for args in [&["--resume", "last"][..], &["-j", "2"], &["--json"]] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        let first = r.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: give a job file to run"),
            "{args:?}: {r:?}"
        );
        assert!(!r.stdout.contains("Commands:"), "{args:?}: {r:?}");
    }
    let r = env.run(&["run", "--resume", "last"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.starts_with("error: give a job file to run"),
        "{r:?}"
    );
    let r = env.run(&[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("Commands:"), "{r:?}");
}

#[test]
fn help_of_help_and_one_positional_too_many_get_the_right_form() {
    let env = Env::new();
    let r = ok(env.run(&["help", "--help"]));
    assert!(r.stdout.contains("Commands:"), "{r:?}");
    let r = ok(env.run(&["help", "runs", "-h"]));
    assert!(r.stdout.contains("Usage: orchestrate runs"), "{r:?}");
    for (args, tip) in [
        (
            &["show", "last", "greet"][..],
            "orchestrate show last --job greet",
        ),
        (
            &["show", "greet", "last~1"],
            "orchestrate show last~1 --job greet",
        ),
        (
            &["logs", "last", "greet"],
            "orchestrate logs greet --run last",
        ),
        (
            &["logs", "greet", "last"],
            "orchestrate logs greet --run last",
        ),
        (
            &["history", "build", "a.yaml"],
            "orchestrate history build --job-file a.yaml",
        ),
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(tip), "{args:?}: {r:?}");
    }
}

#[test]
fn logs_of_an_empty_stream_says_the_other_has_output() {
    let env = Env::new();
    env.write("d.yaml", DEMO);
    assert_eq!(env.run(&["-q", "d.yaml"]).code, 1);
    let r = ok(env.run(&["logs", "fails-on-purpose"]));
    assert!(r.raw_stdout.is_empty(), "{r:?}");
    assert_eq!(
        r.stderr,
        "orchestrate: stdout of `fails-on-purpose` is empty; its stderr has 5 bytes: orchestrate logs fails-on-purpose --stderr\n"
    );
    let r = ok(env.run(&["logs", "fails-on-purpose", "--stderr"]));
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("oops\n", ""));
    let r = ok(env.run(&["logs", "greet", "--stderr", "--run", "last"]));
    assert!(r.raw_stdout.is_empty(), "{r:?}");
    assert!(
        r.stderr
            .contains("its stdout has 3 bytes: orchestrate logs greet --run last\n"),
        "{r:?}"
    );
}

#[test]
fn resume_with_nothing_left_says_so_and_records_no_run() {
    let env = Env::new();
    env.write("g.yaml", "jobs:\n  - name: greet\n    command: echo hi\n");
    ok(env.run(&["-q", "g.yaml"]));
    let id = last_id(&env);
    let r = ok(env.run(&["g.yaml", "--resume", "last"]));
    assert_eq!(
        r.stderr,
        format!(
            "orchestrate: nothing to do: every job of run {id} succeeded; no new run recorded\n"
        )
    );
    assert_eq!(r.stdout, "");
    assert_eq!(last_id(&env), id);
    let runs = ok(env.run(&["runs", "--json"]));
    assert_eq!(runs.json().len(), 1, "{runs:?}");
    let r = ok(env.run(&["g.yaml", "--resume", "last", "-q"]));
    assert_eq!(r.stderr, "");
}

#[test]
fn job_file_names_match_as_plain_text_not_as_wildcards() {
    let env = Env::new();
    env.write("a_b.yaml", "jobs:\n  - name: build\n    command: echo U\n");
    env.write("aXb.yaml", "jobs:\n  - name: build\n    command: echo X\n");
    ok(env.run(&["-q", "a_b.yaml"]));
    ok(env.run(&["-q", "aXb.yaml"]));
    let r = ok(env.run(&["runs", "--job-file", "a_b.yaml"]));
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    assert!(!r.stdout.contains("aXb"), "{r:?}");
    let r = ok(env.run(&["history", "build", "--job-file", "a_b.yaml", "--json"]));
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["stdout"], "U\n", "{r:?}");
    let r = ok(env.run(&["runs", "--job-file", "%b.yaml"]));
    assert_eq!(r.stdout.lines().count(), 1, "only the header: {r:?}");
}
