//! The conditions of needs (`if: success | failure | always`) against the fake back end:
//! which jobs run, which are skipped or not needed, after a failure, a fan-out, a halt, an
//! interrupt and a resume.

use super::*;

/// How many jobs of the run fail it (what its exit code follows).
fn failures(recs: &[CompletedProcess]) -> usize {
    let mut c = Counts::default();
    for r in recs {
        c.add(r.status);
    }
    c.failed()
}

fn started(fake: &Fake, job: &str) -> bool {
    log(fake).contains(&format!("start {job}"))
}

/// `build` (its command given), `cleanup` if always, `report` if failure.
fn handlers(build: &str) -> String {
    format!(
        "jobs:\n  - {{name: build, command: {build}}}\n  - {{name: cleanup, command: ok, needs: [{{job: build, if: always}}]}}\n  - {{name: report, command: ok, needs: [{{job: build, if: failure}}]}}\n"
    )
}

#[test]
fn handlers_run_after_a_failure_and_the_failure_still_fails_the_run() {
    let (recs, fake) = run(&handlers("fail"), 4, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("build", Status::Failed),
            ("cleanup", Status::Succeeded),
            ("report", Status::Succeeded)
        ]
    );
    assert_eq!(
        failures(&recs),
        1,
        "the handler does not excuse the failure"
    );
    let l = log(&fake);
    let end_build = l.iter().position(|x| x == "end build").unwrap();
    for h in ["start cleanup", "start report"] {
        assert!(l.iter().position(|x| x == h).unwrap() > end_build, "{l:?}");
    }
}

#[test]
fn after_a_success_always_runs_and_failure_is_not_needed() {
    let (recs, fake) = run(&handlers("ok"), 4, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("build", Status::Succeeded),
            ("cleanup", Status::Succeeded),
            ("report", Status::NotNeeded)
        ]
    );
    assert!(!started(&fake, "report"));
    assert_eq!(recs[2].notes, ["runs only if `build` fails; it succeeded"]);
    assert_eq!(recs[2].error, None, "not needed is no error");
    assert_eq!(failures(&recs), 0, "a job not needed does not fail the run");
}

#[test]
fn a_failing_handler_fails_the_run() {
    let yaml = "jobs:\n  - {name: build, command: fail}\n  - {name: report, command: fail, needs: [{job: build, if: failure}]}\n";
    let (recs, _) = run(yaml, 2, Cancel::None);
    assert_eq!(recs[1].status, Status::Failed);
    assert_eq!(failures(&recs), 2);
}

#[test]
fn with_several_needs_a_failed_plain_need_skips_before_an_unmet_failure_condition() {
    let yaml = |a: &str, b: &str| {
        format!(
            "jobs:\n  - {{name: a, command: {a}}}\n  - {{name: b, command: {b}}}\n  - {{name: x, command: ok, needs: [a, {{job: b, if: failure}}]}}\n"
        )
    };
    let x = |a, b| run(&yaml(a, b), 4, Cancel::None).0[2].clone();
    // Every condition met: it runs.
    assert_eq!(x("ok", "fail").status, Status::Succeeded);
    // The plain need failed: skipped (a failure), whatever the other says.
    let r = x("fail", "ok");
    assert_eq!(r.status, Status::Skipped);
    assert_eq!(r.error.as_deref(), Some("needs `a`, which failed (exit 1)"));
    assert_eq!(x("fail", "fail").status, Status::Skipped);
    // Only the failure condition unmet: not needed.
    let r = x("ok", "ok");
    assert_eq!(r.status, Status::NotNeeded);
    assert_eq!(r.notes, ["runs only if `b` fails; it succeeded"]);
}

#[test]
fn not_needed_passes_on_as_neither_success_nor_failure() {
    let yaml = "jobs:
  - {name: a, command: ok}
  - {name: r, command: ok, needs: [{job: a, if: failure}]}
  - {name: plain, command: ok, needs: [r]}
  - {name: always, command: ok, needs: [{job: r, if: always}]}
  - {name: onfail, command: ok, needs: [{job: r, if: failure}]}
";
    let (recs, _) = run(yaml, 4, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("a", Status::Succeeded),
            ("r", Status::NotNeeded),
            ("plain", Status::NotNeeded),
            ("always", Status::Succeeded),
            ("onfail", Status::NotNeeded)
        ]
    );
    assert_eq!(recs[2].notes, ["needs `r`, which was not needed"]);
    assert_eq!(recs[4].notes, ["runs only if `r` fails; it was not needed"]);
    assert_eq!(failures(&recs), 0);
}

#[test]
fn a_skipped_or_cancelled_job_counts_as_failed_for_conditions() {
    let yaml = "jobs:
  - {name: a, command: fail}
  - {name: b, command: ok, needs: [a]}
  - {name: onfail, command: ok, needs: [{job: b, if: failure}]}
";
    let (recs, _) = run(yaml, 4, Cancel::None);
    assert_eq!(recs[1].status, Status::Skipped);
    assert_eq!(
        recs[2].status,
        Status::Succeeded,
        "skipped is a failure status"
    );
}

/// `part` fans out over three items: the first word of each says what the fake does.
fn fanned(items: &str) -> String {
    format!(
        "jobs:
  - name: part
    command: '{{item}} 30'
    for_each: [{items}]
  - {{name: onfail, command: ok, needs: [{{job: part, if: failure}}]}}
  - {{name: always, command: ok, needs: [{{job: part, if: always}}]}}
  - {{name: plain, command: ok, needs: [part]}}
"
    )
}

#[test]
fn a_need_on_a_fanned_out_job_waits_for_all_its_items() {
    let (recs, fake) = run(&fanned("sleep, fail, sleep"), 4, Cancel::None);
    let by_name: Vec<(&str, Status)> = statuses(&recs);
    assert_eq!(
        by_name[3..],
        [
            ("onfail", Status::Succeeded),
            ("always", Status::Succeeded),
            ("plain", Status::Skipped)
        ]
    );
    // One item failing is enough for `failure`, but both wait for every item to end.
    let l = log(&fake);
    let last_end = l.iter().rposition(|x| x.starts_with("end part")).unwrap();
    for h in ["start onfail", "start always"] {
        assert!(l.iter().position(|x| x == h).unwrap() > last_end, "{l:?}");
    }
    let (recs, _) = run(&fanned("ok, ok, ok"), 4, Cancel::None);
    assert_eq!(recs[3].status, Status::NotNeeded);
    assert_eq!(
        recs[3].notes,
        ["runs only if `part` fails; all its jobs succeeded"]
    );
    assert_eq!(recs[4].status, Status::Succeeded);
    assert_eq!(recs[5].status, Status::Succeeded);
}

#[test]
fn after_on_failure_stop_only_failure_and_always_handlers_start() {
    let yaml = "on_failure: stop
jobs:
  - {name: bad, command: fail}
  - {name: x, command: ok}
  - {name: cleanup, command: ok, needs: [{job: bad, if: always}]}
  - {name: report, command: ok, needs: [{job: bad, if: failure}]}
  - {name: tidy, command: ok, needs: [{job: x, if: always}]}
  - {name: notify, command: ok, needs: [cleanup]}
  - {name: mixed, command: ok, needs: [x, {job: bad, if: failure}]}
";
    let (recs, fake) = run(yaml, 1, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("bad", Status::Failed),
            ("x", Status::Skipped),
            ("cleanup", Status::Succeeded),
            ("report", Status::Succeeded),
            ("tidy", Status::Succeeded),
            ("notify", Status::Skipped),
            ("mixed", Status::Skipped)
        ]
    );
    assert!(!started(&fake, "x") && !started(&fake, "notify"));
    let halt = "not started: `bad` failed (exit 1) and the run stops on failure";
    assert_eq!(recs[1].error.as_deref(), Some(halt));
    assert_eq!(recs[5].error.as_deref(), Some(halt));
    assert_eq!(
        recs[6].error.as_deref(),
        Some("needs `x`, which was skipped")
    );
}

#[test]
fn on_failure_kill_does_not_stop_handlers_started_after_it() {
    let yaml = "on_failure: kill
jobs:
  - {name: long, command: hang}
  - {name: bad, command: fail}
  - {name: cleanup, command: sleep 30, needs: [{job: long, if: always}]}
  - {name: report, command: sleep 30, needs: [{job: bad, if: failure}]}
";
    let (recs, _) = run(yaml, 4, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("long", Status::Cancelled),
            ("bad", Status::Failed),
            ("cleanup", Status::Succeeded),
            ("report", Status::Succeeded)
        ]
    );
}

#[test]
fn an_interrupted_run_starts_no_handler() {
    let (recs, fake) = run(&handlers("fail"), 4, Cancel::Graceful(15));
    assert!(
        recs.iter().all(|r| r.status == Status::Cancelled),
        "{recs:?}"
    );
    assert!(log(&fake).is_empty());
}

#[test]
fn a_resumed_run_does_not_need_a_handler_of_a_job_that_succeeded_before() {
    let mut p = plan(&handlers("fail"));
    let done = [("build".to_string(), p.jobs[0].def_hash.clone())];
    assert_eq!(p.resume_from(&done.into_iter().collect()).len(), 1);
    let (recs, fake) = run_plan(p, 2, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("cleanup", Status::Succeeded),
            ("report", Status::NotNeeded)
        ]
    );
    assert!(!started(&fake, "report"));
}
