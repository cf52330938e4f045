//! Needs with conditions: `{job: NAME, if: success | failure | always}` runs cleanup and report
//! jobs after failures, and a job only on failure (else it is `not_needed`).

use crate::helpers::{Env, Run};

/// `build` runs `build`; `cleanup` (if always) and `report` (if failure) each write a file.
fn handlers(build: &str) -> String {
    format!(
        "jobs:
  - name: build
    shell: '{build}'
  - name: cleanup
    shell: 'echo clean > cleaned'
    needs: [{{job: build, if: always}}]
  - name: report
    shell: 'echo build failed > reported'
    needs:
      - job: build
        if: failure
"
    )
}

#[test]
fn after_a_failed_build_cleanup_and_report_run_and_the_run_fails() {
    let env = Env::new();
    let r = env.run_jobs(&handlers("exit 3"), &["--json"]);
    assert_eq!(r.code, 1, "the build's failure still fails the run: {r:?}");
    assert!(env.path("cleaned").exists(), "{r:?}");
    assert!(env.path("reported").exists(), "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "build")["status"], "failed");
    assert_eq!(Run::record(&recs, "cleanup")["status"], "succeeded");
    assert_eq!(Run::record(&recs, "report")["status"], "succeeded");
}

#[test]
fn after_a_successful_build_cleanup_runs_and_report_is_not_needed() {
    let env = Env::new();
    let r = env.run_jobs(&handlers("true"), &["--progress", "never"]);
    assert_eq!(r.code, 0, "a job not needed does not fail the run: {r:?}");
    assert!(env.path("cleaned").exists(), "{r:?}");
    assert!(!env.path("reported").exists(), "{r:?}");
    assert!(
        r.stderr.contains(
            "NOTNEEDED report   -             0ms  [runs only if `build` fails; it succeeded]"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("3 jobs in ") && r.stderr.contains(": 2 succeeded, 1 not needed; run "),
        "{r:?}"
    );
    let show = env.run(&["show", "last"]);
    assert!(
        show.stdout
            .lines()
            .any(|l| l.contains("report") && l.contains("not_needed")),
        "{show:?}"
    );
    let job = env.run(&["show", "last", "--job", "report"]);
    assert!(job.stdout.contains("not_needed"), "{job:?}");
    assert!(
        job.stdout
            .contains("runs only if `build` fails; it succeeded"),
        "{job:?}"
    );
    let json = env.run_jobs(&handlers("true"), &["--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(Run::record(&json.json(), "report")["status"], "not_needed");
    let runs = env.run(&["runs", "--json"]);
    assert!(runs.stdout.contains(r#""not_needed":1"#), "{runs:?}");
}

#[test]
fn on_failure_stop_still_runs_an_always_job() {
    let env = Env::new();
    let r = env.run_jobs(
        "on_failure: stop
jobs:
  - name: bad
    shell: 'exit 1'
  - name: next
    command: touch next-ran
  - name: cleanup
    command: touch cleaned
    needs: [{job: bad, if: always}]
",
        &["-j", "1", "--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(env.path("cleaned").exists(), "{r:?}");
    assert!(!env.path("next-ran").exists(), "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "next")["status"], "skipped");
    assert_eq!(Run::record(&recs, "cleanup")["status"], "succeeded");
}

#[test]
fn on_failure_kill_does_not_kill_the_cleanup_it_leads_to() {
    let env = Env::new();
    let r = env.run_jobs(
        "on_failure: kill
jobs:
  - name: long
    shell: 'touch started; exec sleep 30'
  - name: bad
    shell: 'until [ -e started ]; do sleep 0.01; done; exit 1'
  - name: cleanup
    shell: 'sleep 0.3; touch cleaned'
    needs: [{job: long, if: always}, {job: bad, if: failure}]
",
        &["-j", "2", "--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "long")["status"], "cancelled");
    assert_eq!(
        Run::record(&recs, "cleanup")["status"],
        "succeeded",
        "{r:?}"
    );
    assert!(env.path("cleaned").exists());
}

#[test]
fn a_malformed_condition_is_refused_with_its_line_and_column() {
    let env = Env::new();
    let job = |need: &str| {
        format!(
            "jobs:\n  - name: x\n    command: touch x-ran\n  - name: y\n    command: touch y-ran\n    needs: [{need}]\n"
        )
    };
    let r = env.run_jobs(&job("{job: x, if: sometimes}"), &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(
            "jobs.yaml:6:26: unknown variant `sometimes`, expected one of `success`, `failure`, `always` (in job `y`)"
        ),
        "{r:?}"
    );
    let r = env.run_jobs(&job("{jb: x}"), &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("jobs.yaml:6:14: unknown key `jb` (in job `y`)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("did you mean `job`?"), "{r:?}");
    let r = env.run_jobs(&job("{if: always}"), &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("missing key `job`"), "{r:?}");
    let r = env.run_jobs(&job("{job: z, if: always}"), &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("`needs` names an unknown job `z`"),
        "{r:?}"
    );
    assert!(!env.path("x-ran").exists() && !env.path("y-ran").exists());
}

#[test]
fn check_shows_the_conditions() {
    let env = Env::new();
    env.write("jobs.yaml", &handlers("true"));
    let r = env.run(&["check", "jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("cleanup") && l.contains("[needs build if always]")),
        "{r:?}"
    );
    assert!(r.stdout.contains("[needs build if failure]"), "{r:?}");
    let r = env.run(&["check", "jobs.yaml", "--json"]);
    assert!(
        r.stdout
            .contains(r#""needs":[{"if":"failure","job":"build"}]"#),
        "{r:?}"
    );
}

#[test]
fn a_resumed_run_does_not_run_the_failure_handler_of_a_job_that_succeeded() {
    let env = Env::new();
    let yaml = "jobs:
  - name: build
    command: 'true'
  - name: test
    shell: '[ -e fixed ]'
  - name: report
    command: touch reported
    needs: [{job: build, if: failure}]
";
    let r = env.run_jobs(yaml, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    std::fs::write(env.path("fixed"), "").unwrap();
    let r = env.run_jobs(yaml, &["--resume", "last", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(Run::record(&r.json(), "report")["status"], "not_needed");
    assert!(!env.path("reported").exists(), "{r:?}");
}
