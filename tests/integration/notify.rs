//! `notify:` against a real HTTP server on 127.0.0.1 started by each test, and a stand-in
//! sendmail on PATH: what is sent, when, how often it is tried, and that a notification that
//! cannot be sent changes nothing of the run's outcome.

use crate::helpers::{Env, TestServer, closed_url, mails};

/// A job that fails with 30 lines on stderr, one that succeeds.
const JOBS: &str = "jobs:
  - name: breaks
    shell: 'for i in $(seq 1 30); do echo \"line $i\" >&2; done; exit 3'
  - name: fine
    command: 'true'
";

fn with_notify(notify: &str, jobs: &str) -> String {
    format!("notify:\n{notify}\n{jobs}")
}

fn runs_json(env: &Env) -> Vec<serde_json::Value> {
    env.run(&["runs", "--json"]).json()
}

#[test]
fn the_webhook_is_posted_the_summary_of_a_failed_run() {
    let env = Env::new();
    let srv = TestServer::start(&[]);
    let r = env.run_jobs(
        &with_notify(&format!("  webhook: {}/hook", srv.url), JOBS),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let req = &reqs[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    let run = &runs_json(&env)[0];
    assert_eq!(body["run"], run["id"]);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["event"], "failed");
    assert_eq!(body["exit_code"], 1);
    assert_eq!(body["counts"]["succeeded"], 1);
    assert_eq!(body["counts"]["failed"], 1);
    let file = body["job_file"].as_str().unwrap();
    assert!(file.ends_with("/jobs.yaml"), "{body}");
    assert!(
        body["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{body}"
    );
    assert!(body["duration"].as_f64().is_some(), "{body}");
    let failed = body["failed_jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["name"], "breaks");
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["outcome"], "exit 3");
    let tail: Vec<&str> = failed[0]["stderr_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let want: Vec<String> = (11..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(tail, want);
}

#[test]
fn the_ping_starts_then_says_fail_or_success_for_every_run() {
    let env = Env::new();
    let srv = TestServer::start(&[]);
    let notify = format!("  ping: {}/uuid-1\n  when: change", srv.url);
    let failing = env.run_jobs(&with_notify(&notify, JOBS), &[]);
    assert_eq!(failing.code, 1, "{failing:?}");
    let ok = env.run_jobs(&with_notify(&notify, "jobs:\n  - 'true'\n"), &[]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let seen: Vec<(String, String)> = srv
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let want = [
        ("GET", "/uuid-1/start"),
        ("POST", "/uuid-1/fail"),
        ("GET", "/uuid-1/start"),
        ("POST", "/uuid-1"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(seen, want);
    // The ping's body is the run's summary as text.
    let fail = &srv.requests()[1];
    assert!(
        fail.text().contains("breaks: failed (exit 3)"),
        "{}",
        fail.text()
    );
}

#[test]
fn when_change_tells_of_failures_streaks_and_recovery() {
    let env = Env::new();
    let srv = TestServer::start(&[]);
    let log = env.fake_sendmail();
    let yaml = format!(
        "notify:\n  webhook: {}/hook\n  mail: ops@example.com\n  when: change\njobs:\n  - name: check\n    shell: 'if [ -f broken ]; then echo state: bad >&2; exit 1; fi; echo state: good >&2'\n",
        srv.url
    );
    env.write("jobs.yaml", &yaml);
    let mut codes = Vec::new();
    for broken in [false, true, true, true, false] {
        if broken {
            env.write("broken", "");
        } else {
            let _ = std::fs::remove_file(env.path("broken"));
        }
        codes.push(env.run_with_bin(&["jobs.yaml"]).code);
    }
    assert_eq!(codes, [0, 1, 1, 1, 0]);
    // ok (nothing), failed, still failing for 2 runs, (3: not a power of two), recovered.
    let events: Vec<serde_json::Value> = srv.requests().iter().map(|r| r.json()).collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["failed", "still_failing", "recovered"],
        "{events:#?}"
    );
    assert_eq!(events[1]["failing_runs"], 2);
    let diff = events[1]["failed_jobs"][0]["stderr_diff"].as_str().unwrap();
    assert!(
        diff.contains("-state: good") && diff.contains("+state: bad"),
        "{diff}"
    );
    let subjects: Vec<String> = mails(&log)
        .iter()
        .map(|(_, m)| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let file = env.path("jobs.yaml").display().to_string();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects[0].starts_with(&format!("orchestrate: {file} failed on ")),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with(&format!("orchestrate: {file} still failing for 2 runs on ")),
        "{subjects:?}"
    );
    assert!(
        subjects[2].starts_with(&format!("orchestrate: {file} recovered on ")),
        "{subjects:?}"
    );
}

#[test]
fn a_server_error_is_tried_again() {
    let env = Env::new();
    let srv = TestServer::start(&[500, 500]);
    let r = env.run_jobs(
        &with_notify(&format!("  webhook: {}/hook", srv.url), JOBS),
        &["-q"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(srv.requests().len(), 3, "two 500s, then the 200");
    assert!(!r.stderr.contains("notification"), "{r:?}");
    let shown = env
        .run(&["show", "last", "--job", "notify.webhook", "--json"])
        .json();
    assert_eq!(shown[0]["status"], "succeeded", "{shown:?}");
    assert_eq!(shown[0]["attempts"], 3);
    assert_eq!(shown[0]["hook"], "notify.webhook");
}

#[test]
fn a_notification_that_cannot_be_sent_is_a_warning_and_a_record_only() {
    let env = Env::new();
    let url = closed_url();
    let yaml = with_notify(
        &format!("  webhook: {url}/hook\n  when: always"),
        "jobs:\n  - 'true'\n",
    );
    let r = env.run_jobs(&yaml, &["-q"]);
    assert_eq!(r.code, 0, "the run succeeded: {r:?}");
    assert!(
        r.stderr
            .contains("warning: notification `notify.webhook` failed: could not be sent"),
        "{r:?}"
    );
    let run = &runs_json(&env)[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"], serde_json::json!({"succeeded": 1}), "{run}");
    let rec = &env
        .run(&["show", "last", "--job", "notify.webhook", "--json"])
        .json()[0];
    assert_eq!(rec["status"], "failed", "{rec}");
    assert_eq!(rec["attempts"], 3, "{rec}");
    assert!(rec["error"].as_str().unwrap().contains(&url), "{rec}");
}

#[test]
fn the_mail_goes_to_sendmail_with_recipient_subject_and_body() {
    let env = Env::new();
    let log = env.fake_sendmail();
    env.write("jobs.yaml", &with_notify("  mail: ops@example.com", JOBS));
    let r = env.run_with_bin(&["jobs.yaml"]);
    assert_eq!(r.code, 1, "{r:?}");
    let sent = mails(&log);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (args, msg) = &sent[0];
    assert_eq!(args, "ARGS: -t -oi");
    assert!(
        msg.contains("\nTo: ops@example.com\n") || msg.starts_with("To: ops@example.com\n"),
        "{msg}"
    );
    let file = env.path("jobs.yaml").display().to_string();
    let subject = format!("Subject: orchestrate: {file} failed on ");
    assert!(msg.contains(&subject), "{msg}");
    assert!(msg.contains("breaks: failed (exit 3)"), "{msg}");
    assert!(
        msg.contains("| line 30") && !msg.contains("| line 10\n"),
        "{msg}"
    );
    // Its own record, not counted.
    let run = &runs_json(&env)[0];
    assert_eq!(
        run["counts"],
        serde_json::json!({"succeeded": 1, "failed": 1}),
        "{run}"
    );
    let rec = &env
        .run(&["show", "last", "--job", "notify.mail", "--json"])
        .json()[0];
    assert_eq!(rec["status"], "succeeded", "{rec}");
}
