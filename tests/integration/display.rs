//! What a new user's walk-through found: resumed runs laid out and counted as the jobs they
//! carry, one duration for a run everywhere, no exit code for a command that never started,
//! table columns apart, job files shown by a path that is never a wrong relative one, and
//! forced progress bars that leave every job line whole in a file.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{Env, Run, await_pids, signal, wait_for};

/// The duration column (or word) of a table as milliseconds: "38ms", "1.51s", "2m03s".
fn millis(text: &str) -> f64 {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().unwrap();
    }
    if let Some((m, s)) = text.split_once('m') {
        return m.parse::<f64>().unwrap() * 60_000.0
            + s.trim_end_matches('s').parse::<f64>().unwrap_or(0.0) * 1000.0;
    }
    text.trim_end_matches('s').parse::<f64>().unwrap() * 1000.0
}

/// The first line of `text` that contains `what`.
fn line_with<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in:\n{text}"))
}

const RESUMED: &str =
    "jobs:\n  - name: early\n    command: echo early\n  - name: gate\n    shell: 'test -f flag'\n";

#[test]
fn a_resumed_run_lists_carried_jobs_apart_and_counts_them() {
    let env = Env::new();
    let first = env.run_jobs(RESUMED, &["--progress", "never"]);
    assert_eq!(first.code, 1, "{first:?}");
    let first_id = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The earlier record lies well before the resumed run.
    std::thread::sleep(Duration::from_secs(3));
    env.write("flag", "");
    let r = env.run(&["jobs.yaml", "--resume", "last", "--progress", "never"]);
    assert_eq!(r.code, 0, "{r:?}");
    let summary = line_with(&r.stderr, " jobs in ");
    assert!(
        summary.starts_with("2 jobs in ")
            && summary.contains(&format!(": 2 succeeded (1 carried from run {first_id})")),
        "{r:?}"
    );
    let runs = env.run(&["runs"]);
    assert!(
        line_with(&runs.stdout, "./jobs.yaml").contains("2 succeeded"),
        "{runs:?}"
    );

    let show = env.run(&["show", "last"]);
    assert!(
        line_with(&show.stdout, "early").contains("succeeded (carried)"),
        "{show:?}"
    );
    assert!(
        !line_with(&show.stdout, "gate").contains("carried"),
        "{show:?}"
    );

    let tl = env.run(&["show", "last", "--timeline"]);
    assert!(
        tl.stdout
            .contains(&format!("carried from run {first_id}: early")),
        "{tl:?}"
    );
    // The axis spans this run alone, not the seconds back to the carried record.
    let axis_end = tl
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap();
    assert!(millis(axis_end) < 2500.0, "axis to {axis_end}: {tl:?}");
    assert!(
        !tl.stdout.contains("=early"),
        "a bar for the carried job: {tl:?}"
    );

    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(
        Run::record(&recs, "early")["carried_from"],
        first_id.as_str()
    );
    assert!(Run::record(&recs, "gate")["carried_from"].is_null());
    let junit = env.run(&["show", "last", "--junit"]);
    assert!(junit.stdout.contains("tests=\"2\""), "{junit:?}");
    assert!(
        junit.stdout.contains(&format!(
            "<property name=\"carried_from\" value=\"{first_id}\"/>"
        )),
        "{junit:?}"
    );
    let csv = env.run(&["show", "last", "--csv"]);
    assert_eq!(
        csv.stdout.lines().count(),
        2,
        "header and `gate` only: {csv:?}"
    );
    let page = env.run(&["report"]);
    assert!(
        page.stdout.contains(&format!(
            "Carried from run <code>{first_id}</code> (not run again, not on the timeline): early"
        )),
        "{page:?}"
    );
    // Its row says so, as `show` does.
    assert!(page.stdout.contains("succeeded (carried)"), "{page:?}");
}

#[test]
fn a_runs_duration_is_the_same_in_the_summary_runs_and_show() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bg\n    command: sleep 0.3\n    background: true\n  - name: quick\n    command: 'true'\n",
        &["--progress", "never"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let summary = line_with(&r.stderr, " jobs in ");
    let said = summary
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let runs = env.run(&["runs"]);
    let row: Vec<&str> = runs
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[3], said, "{r:?}\n{runs:?}");
    let show = env.run(&["show", "last"]);
    let head: Vec<&str> = show
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(head[5], said, "{show:?}");
}

#[test]
fn a_killed_runs_duration_lasts_as_long_as_its_job_ran() {
    let env = Env::new();
    env.write(
        "crash.yaml",
        "jobs:\n  - name: hold\n    shell: 'echo $$ > hold.pid; sleep 2'\n",
    );
    let mut child = env
        .cmd()
        .args(["crash.yaml", "--progress", "never"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job = await_pids(&env.path("hold.pid"), 1)[0];
    let stored = || {
        let o = env.run(&["show", "last", "--json"]);
        o.stdout.contains("\"status\":\"running\"")
    };
    assert!(
        wait_for(Duration::from_secs(10), stored),
        "no running record"
    );
    signal(child.id(), "KILL");
    child.wait().unwrap();
    // The job outlives orchestrate, and ends after its 2 s.
    assert!(wait_for(
        Duration::from_secs(10),
        || !crate::helpers::alive(job)
    ));
    let runs = env.run(&["runs"]);
    let row: Vec<&str> = runs
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[4], "interrupted", "{runs:?}");
    assert!(
        millis(row[3]) >= 2000.0,
        "the run lasted {}: {runs:?}",
        row[3]
    );
    let show = env.run(&["show", "last"]);
    let head: Vec<&str> = show
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(head[5], row[3], "{show:?}");
}

#[test]
fn a_command_that_never_started_has_no_exit_code() {
    let env = Env::new();
    env.write("noexec", "#!/bin/sh\necho hi\n");
    let r = env.run_jobs(
        "jobs:\n  - name: absent\n    command: ./program\n  - name: noexec\n    command: ./noexec\n  - name: via-shell\n    shell: ./program\n",
        &["--progress", "never"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let absent = line_with(&r.stderr, " absent ");
    assert!(!absent.contains("127"), "{r:?}");
    assert!(absent.contains("command not found: ./program"), "{r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    for job in ["absent", "noexec"] {
        let rec = Run::record(&recs, job);
        assert_eq!(rec["status"], "spawn_error", "{rec}");
        assert!(rec["returncode"].is_null(), "{rec}");
    }
    assert!(
        Run::record(&recs, "noexec")["error"]
            .as_str()
            .unwrap()
            .contains("permission denied: ./noexec")
    );
    // Through `sh -c`, 127 is the shell's own exit code.
    assert_eq!(Run::record(&recs, "via-shell")["returncode"], 127);
    let show = env.run(&["show", "last"]);
    let row: Vec<&str> = line_with(&show.stdout, "absent")
        .split_whitespace()
        .collect();
    assert_eq!(&row[2..4], ["spawn_error", "-"], "{show:?}");
    let job = env.run(&["show", "last", "--job", "absent"]);
    let rc: Vec<&str> = line_with(&job.stdout, "returncode")
        .split_whitespace()
        .collect();
    assert_eq!(rc, ["returncode", "-"], "{job:?}");
}

#[test]
fn show_keeps_two_spaces_between_columns_whatever_the_cells() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: wobbly\n    shell: 'test -f once || { touch once; exit 1; }'\n    retries: 1\n    retry_delay: 0s\n  - name: n\n    command: 'true'\n",
        &["--progress", "never"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let show = env.run(&["show", "last"]);
    let lines: Vec<&str> = show.stdout.lines().skip(1).collect();
    assert!(lines[1].contains("succeeded (flaky)"), "{show:?}");
    for col in ["STATUS", "OUTCOME", "DURATION", "STDOUT", "STDERR"] {
        let at = lines[0].find(col).unwrap();
        for l in &lines[1..] {
            assert_eq!(&l[at - 2..at], "  ", "{col} of {l:?}:\n{}", show.stdout);
            assert_ne!(&l[at..at + 1], " ", "{col} of {l:?}:\n{}", show.stdout);
        }
    }
}

#[test]
fn runs_shows_a_job_file_by_a_path_that_is_never_a_wrong_relative_one() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - 'true'\n", &["--progress", "never"]);
    assert_eq!(r.code, 0, "{r:?}");
    let abs = std::fs::canonicalize(env.path("jobs.yaml")).unwrap();
    let abs = abs.to_str().unwrap();
    let column = |cwd: &std::path::Path, home: &str| {
        let o = env
            .cmd()
            .current_dir(cwd)
            .env("HOME", home)
            .arg("runs")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let dir = std::path::Path::new(abs).parent().unwrap();
    assert_eq!(column(dir, "/nonexistent"), "./jobs.yaml");
    assert_eq!(column(std::path::Path::new("/"), "/nonexistent"), abs);
    assert_eq!(
        column(std::path::Path::new("/"), dir.to_str().unwrap()),
        "~/jobs.yaml"
    );
    let sub = env.path("sub");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(column(&sub, "/nonexistent"), abs);
    let json = env.run(&["runs", "--json"]).json();
    assert_eq!(json[0]["job_file"], abs);
}

#[test]
fn forced_bars_in_a_file_leave_every_job_line_at_the_start_of_a_line() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: greet\n    command: echo hello\n  - name: nap\n    command: sleep 0.5\n",
    );
    let err = std::fs::File::create(env.path("err.log")).unwrap();
    let o = env
        .cmd()
        .args(["jobs.yaml", "--progress", "always", "-j", "1"])
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(0));
    let text = std::fs::read_to_string(env.path("err.log")).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    for job in [" greet ", " nap "] {
        let l = lines
            .iter()
            .find(|l| l.contains(job) && l.contains(" ok "))
            .unwrap_or_else(|| panic!("no line for {job}: {text:?}"));
        let stamp = l.as_bytes();
        assert!(
            stamp.len() > 4 && stamp[..4].iter().all(u8::is_ascii_digit) && stamp[4] == b'-',
            "{l:?} in {text:?}"
        );
    }
    fn bar(l: &str) -> bool {
        l.contains(" jobs") && l.contains('/') && !l.contains(" jobs in ")
    }
    let bars: Vec<&str> = lines.iter().copied().filter(|l| bar(l)).collect();
    assert!(
        bars.last().is_some_and(|l| l.contains("2/2 jobs")),
        "{text:?}"
    );
    // After greet's line, the count already says greet is done.
    let after_greet = lines
        .iter()
        .skip_while(|l| !l.contains(" greet "))
        .find(|l| bar(l))
        .unwrap();
    assert!(after_greet.contains("1/2 jobs"), "{text:?}");
    assert!(!text.contains('\r'), "redrawn in place in a file: {text:?}");
}
