//! `show RUN --timeline`, `--junit` and `--csv`: a real run, then its records drawn as a chart,
//! parsed as XML and as CSV by python3's own parsers.

use std::process::{Command, Stdio};

use crate::helpers::Env;

/// A chain of needs (fetch → build → test), a job beside it, a failure and a job it skips.
const CHAIN: &str = r#"
concurrency: 2
jobs:
  - name: fetch
    shell: sleep 0.4
  - name: lint
    shell: sleep 0.2
  - name: build
    needs: [fetch]
    shell: sleep 0.6
  - name: broken
    shell: sleep 0.5; echo 'cannot <build> & "ship"' >&2; exit 4
  - name: test
    needs: [build]
    shell: sleep 0.4
  - name: after-broken
    needs: [broken]
    shell: echo never
"#;

fn timeline(env: &Env, columns: Option<&str>) -> String {
    let mut cmd = env.cmd();
    cmd.args(["show", "--timeline"]).env_remove("COLUMNS");
    if let Some(c) = columns {
        cmd.env("COLUMNS", c);
    }
    let out = cmd.output().expect("run orchestrate");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn timeline_has_a_row_per_slot_and_marks_failures_and_the_critical_path() {
    let env = Env::new();
    let run = env.run_jobs(CHAIN, &["-q"]);
    assert_eq!(run.code, 1, "{run:?}");
    let text = timeline(&env, Some("80"));
    let lanes: Vec<&str> = text.lines().filter(|l| l.contains(" │")).collect();
    // Two slots (concurrency 2), each its own row, as the records' `slot` says.
    assert_eq!(lanes.len(), 2, "{text}");
    assert!(
        lanes[0].starts_with("slot 0 │") && lanes[1].starts_with("slot 1 │"),
        "{text}"
    );
    let border = text.lines().find(|l| l.contains('└')).expect("an axis");
    assert_eq!(
        border.chars().count(),
        80,
        "COLUMNS sets the width:\n{text}"
    );
    assert!(
        text.lines()
            .all(|l| l.chars().count() <= 80 || l.starts_with("legend")),
        "{text}"
    );
    // The failed job's bar is drawn in the failure character, the chain's in its own.
    assert!(lanes.iter().any(|l| l.contains("|xbroken")), "{text}");
    assert!(lanes.iter().any(|l| l.contains("|#build")), "{text}");
    assert!(lanes.iter().any(|l| l.contains("|=lint")), "{text}");
    assert!(
        text.contains("legend: |=== succeeded  |xxx failed"),
        "{text}"
    );
    assert!(
        text.contains("critical path: fetch → build → test ("),
        "{text}"
    );
    assert!(text.contains("failed: broken (exit 4)"), "{text}");
    assert!(text.contains("not run: after-broken (skipped)"), "{text}");
    assert!(!text.contains('\x1b'), "no colors off a terminal:\n{text}");

    let default = timeline(&env, None);
    let border = default.lines().find(|l| l.contains('└')).unwrap();
    assert_eq!(
        border.chars().count(),
        100,
        "100 columns off a terminal:\n{default}"
    );
}

#[test]
fn timeline_on_a_terminal_is_colored() {
    let env = Env::new();
    env.run_jobs(CHAIN, &["-q"]);
    // `script` gives the command a terminal, as a person running it has.
    let bin = env!("CARGO_BIN_EXE_orchestrate");
    let out = Command::new("script")
        .args(["-qec", &format!("'{bin}' show --timeline"), "/dev/null"])
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .env("COLUMNS", "90")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\x1b[31m|xbroken"),
        "failures in red:\n{text:?}"
    );
    assert!(
        text.contains("\x1b[1;33m|#fetch"),
        "the critical path stands out:\n{text:?}"
    );
}

/// Runs python3 on `script` with `input` on stdin and returns what it printed, as JSON.
fn python(script: &str, input: &[u8]) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 refused the input: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const PARSE_JUNIT: &str = r#"
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
suites = root.findall('testsuite')
cases = {}
for c in root.iter('testcase'):
    kids = {}
    for k in c:
        kids.setdefault(k.tag, []).append({'attrib': k.attrib, 'text': k.text or ''})
    cases[c.get('name')] = {'attrib': c.attrib, 'kids': kids}
print(json.dumps({'root': root.tag, 'attrib': root.attrib, 'suites': [s.attrib for s in suites], 'cases': cases}))
"#;

#[test]
fn junit_is_xml_as_nextest_writes_it() {
    let env = Env::new();
    let yaml = r#"
jobs:
  - name: ok
    shell: echo fine
  - name: "a,b=c"
    shell: printf 'bad <tag> & "quotes" \033[31mred\n' >&2; exit 2
  - name: skipped-one
    needs: ["a,b=c"]
    shell: echo never
  - name: flaky
    retries: 2
    shell: test -f mark || { touch mark; exit 1; }
  - name: slow-death
    timeout: 300ms
    shell: sleep 5
"#;
    let run = env.run_jobs(yaml, &["-q"]);
    assert_eq!(run.code, 1, "{run:?}");
    let xml = env.run(&["show", "--junit"]);
    assert_eq!(xml.code, 0, "{xml:?}");
    let doc = python(PARSE_JUNIT, &xml.raw_stdout);
    assert_eq!(doc["root"], "testsuites");
    assert_eq!(doc["attrib"]["tests"], "5");
    assert_eq!(doc["attrib"]["failures"], "2", "exit 2 and the timeout");
    assert_eq!(doc["attrib"]["skipped"], "1");
    let suites = doc["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 1);
    assert!(
        suites[0]["name"].as_str().unwrap().ends_with("jobs.yaml"),
        "{suites:?}"
    );
    let cases = &doc["cases"];
    assert_eq!(cases.as_object().unwrap().len(), 5, "{cases}");
    let time: f64 = cases["ok"]["attrib"]["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(time < 60.0, "seconds: {time}");
    assert!(
        cases["ok"]["kids"].as_object().unwrap().is_empty(),
        "{cases}"
    );

    let bad = &cases["a,b=c"]["kids"];
    let failure = &bad["failure"][0];
    assert_eq!(failure["attrib"]["message"], "exit 2");
    assert_eq!(failure["attrib"]["type"], "job failure with exit code 2");
    let text = failure["text"].as_str().unwrap();
    assert!(
        text.contains("bad <tag> & \"quotes\" \\x1b[31mred"),
        "{text:?}"
    );
    let err = bad["system-err"][0]["text"].as_str().unwrap();
    assert!(err.contains("bad <tag> & \"quotes\""), "{err:?}");

    let skipped = &cases["skipped-one"]["kids"]["skipped"][0];
    assert!(
        skipped["attrib"]["message"]
            .as_str()
            .unwrap()
            .contains("a,b=c"),
        "{skipped}"
    );
    let flaky = &cases["flaky"]["kids"];
    assert!(
        flaky.get("failure").is_none(),
        "a flaky job passed: {flaky}"
    );
    assert_eq!(
        flaky["flakyFailure"].as_array().unwrap().len(),
        1,
        "{flaky}"
    );
    assert_eq!(
        flaky["flakyFailure"][0]["attrib"]["type"],
        "job failure with exit code 1"
    );
    assert_eq!(
        cases["slow-death"]["kids"]["failure"][0]["attrib"]["type"],
        "job timeout"
    );
}

const PARSE_CSV: &str = r#"
import sys, csv, json
rows = list(csv.reader(sys.stdin.read().splitlines(keepends=True)))
print(json.dumps(rows))
"#;

#[test]
fn csv_has_the_columns_of_parallels_joblog() {
    let env = Env::new();
    let yaml = r#"
jobs:
  - name: hello
    shell: echo hello
  - name: three
    shell: exit 3
  - name: killed
    shell: kill -TERM $$
  - name: odd
    command: ["printf", "%s\n", "a,b", "say \"hi\"", "two\nlines"]
  - name: never
    needs: [three]
    shell: echo never
"#;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let run = env.run_jobs(yaml, &["-q"]);
    assert_eq!(run.code, 1, "{run:?}");
    let csv = env.run(&["show", "--csv"]);
    assert_eq!(csv.code, 0, "{csv:?}");
    let rows = python(PARSE_CSV, &csv.raw_stdout);
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).unwrap();
    assert_eq!(
        rows[0],
        [
            "Seq",
            "Host",
            "Starttime",
            "JobRuntime",
            "Send",
            "Receive",
            "Exitval",
            "Signal",
            "Command"
        ]
    );
    // The job that never ran is not in the log, as in parallel's.
    assert_eq!(rows.len(), 5, "{rows:?}");
    let by_seq = |seq: &str| {
        rows.iter()
            .find(|r| r[0] == seq)
            .unwrap_or_else(|| panic!("{rows:?}"))
    };
    let hello = by_seq("1");
    assert_eq!(hello[1], ":");
    let start: f64 = hello[2].parse().unwrap();
    assert!(
        start >= before - 1.0 && start < before + 60.0,
        "epoch seconds: {hello:?}"
    );
    assert_eq!(
        hello[2].split('.').nth(1).map(str::len),
        Some(3),
        "{hello:?}"
    );
    assert_eq!(
        hello[3].split('.').nth(1).map(str::len),
        Some(3),
        "{hello:?}"
    );
    assert_eq!(
        &hello[4..8],
        ["0", "6", "0", "0"],
        "Send 0, Receive = stdout bytes"
    );
    assert_eq!(&by_seq("2")[6..8], ["3", "0"]);
    assert_eq!(
        &by_seq("3")[6..8],
        ["0", "15"],
        "a signal, as parallel logs it"
    );
    let odd = by_seq("4");
    assert_eq!(
        shell_words::split(&odd[8]).unwrap(),
        ["printf", "%s\n", "a,b", "say \"hi\"", "two\nlines"],
        "the command survives CSV quoting: {odd:?}"
    );
}

#[test]
fn junit_and_report_read_output_only_from_the_runs_capture_files() {
    const MARKER: &str = "MARKER-outside-the-state-dir";
    let env = Env::new();
    let secret = env.write("outside/secret", &format!("{MARKER}\n"));
    // `linked` writes more than the run's pack takes: its file stays.
    let yaml = "jobs:
  - name: linked
    shell: echo mine; head -c 70000 /dev/zero; exit 1
  - name: named
    shell: echo mine; exit 1
  - name: own
    shell: echo mine; exit 1
    stdout: {file: own.txt}
";
    assert_eq!(env.run_jobs(yaml, &["-q"]).code, 1);
    let runs = env.run(&["runs"]);
    let id = runs
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let run = env.state().join("runs").join(id);
    // A capture file replaced by a symlink; records that name the file (a forger's edit).
    std::fs::remove_file(run.join("linked/stdout")).unwrap();
    std::os::unix::fs::symlink(&secret, run.join("linked/stdout")).unwrap();
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    for job in ["named", "own"] {
        let text: String = db
            .query_row("SELECT record FROM records WHERE job = ?1", [job], |r| {
                r.get(0)
            })
            .unwrap();
        let mut rec: serde_json::Value = serde_json::from_str(&text).unwrap();
        rec["stdout"]["path"] = secret.to_str().into();
        db.execute(
            "UPDATE records SET record = ?1 WHERE job = ?2",
            [&rec.to_string(), job],
        )
        .unwrap();
    }
    drop(db);
    for args in [&["show", "--junit"][..], &["report"]] {
        let r = env.run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(
            !r.stdout.contains(MARKER),
            "{args:?} printed the file: {r:?}"
        );
        // The run's own capture file is read, whatever the record names.
        assert!(r.stdout.contains("mine"), "{args:?}: {r:?}");
        assert!(
            r.stdout.contains("symlink"),
            "the refused symlink is said: {r:?}"
        );
        assert!(r.stdout.contains("was not captured; it went to "), "{r:?}");
    }
}
