//! How job output and job lines reach the reader: bars forced onto a file, `--tag`, and what
//! `--output failed` shows.

use std::process::Stdio;

use crate::helpers::{Env, Run};

/// The lines a reader of `bytes` sees once a terminal has replayed them: each `\n`-ended line
/// as it stands after its last carriage return, with CSI sequences (cursor moves, line
/// clears) taken out.
fn replayed_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.split('\n')
        .map(|l| {
            let after_cr = l.rsplit('\r').next().unwrap_or_default();
            let mut out = String::new();
            let mut chars = after_cr.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    // ESC [ params final-byte
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

#[test]
fn forced_bars_on_a_file_keep_every_job_line_and_failure_tail_as_lines() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: good\n    shell: 'echo fine'\n  - name: bad\n    shell: 'echo first-oops >&2; echo last-oops >&2; exit 3'\n",
    );
    let err = std::fs::File::create(env.path("err.log")).unwrap();
    let o = env
        .cmd()
        .args(["jobs.yaml", "--progress", "always"])
        .stdout(Stdio::piped())
        .stderr(err)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let bytes = std::fs::read(env.path("err.log")).unwrap();
    let lines = replayed_lines(&bytes);
    let has = |pred: &dyn Fn(&str) -> bool| lines.iter().any(|l| pred(l));
    let dump = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        has(&|l| l.ends_with("ms") && l.contains(" ok        good  exit 0")),
        "no job line for `good` as a line of its own: {lines:?}\n{dump:?}"
    );
    assert!(
        has(&|l| l.contains(" FAILED    bad   exit 3")),
        "no job line for `bad`: {lines:?}"
    );
    assert!(
        has(&|l| l == "    | first-oops") && has(&|l| l == "    | last-oops"),
        "no failure tail: {lines:?}"
    );
    assert!(
        has(&|l| l.starts_with("2 jobs in ") && l.contains("1 succeeded, 1 failed")),
        "no summary: {lines:?}"
    );
}

const TWO: &str = "jobs:\n  - name: sq[a]\n    shell: 'printf \"one\\ntwo\"; echo e1 >&2'\n  - name: b\n    shell: 'echo b-out'\n";

/// Every non-empty line of `text` that is not a status or summary line (those carry a
/// timestamp or "jobs in").
fn output_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("20") && !l.contains(" jobs in "))
        .collect()
}

#[test]
fn tag_prefixes_each_output_line_with_the_job_name_and_a_tab_in_every_mode() {
    let env = Env::new();
    for mode in ["all", "ordered"] {
        let r: Run = env.run_jobs(TWO, &["--output", mode, "--tag", "-j", "1"]);
        assert_eq!(r.code, 0, "{r:?}");
        // An unterminated last line still ends its line, so the next job's tag starts one.
        assert_eq!(
            r.stdout, "sq[a]\tone\nsq[a]\ttwo\nb\tb-out\n",
            "{mode}: {r:?}"
        );
        assert_eq!(output_lines(&r.stderr), ["sq[a]\te1"], "{mode}: {r:?}");
    }
    // stream mode tags the same way, tag or not.
    let r = env.run_jobs(TWO, &["--output", "stream", "-j", "1"]);
    let mut out = output_lines(&r.stdout);
    out.sort();
    assert_eq!(out, ["b\tb-out", "sq[a]\tone", "sq[a]\ttwo"], "{r:?}");
    assert_eq!(output_lines(&r.stderr), ["sq[a]\te1"], "{r:?}");
    // Without --tag, all and ordered give the output as the job wrote it.
    let r = env.run_jobs(TWO, &["--output", "ordered"]);
    assert_eq!(r.stdout, "one\ntwob-out\n", "{r:?}");
}

#[test]
fn a_failed_jobs_tail_is_its_stderr_or_its_stdout_said_to_be_so() {
    let env = Env::new();
    let yaml = "jobs:\n  - name: loud\n    shell: 'echo on-out; echo on-err >&2; exit 1'\n  - name: quiet\n    shell: 'echo only-out; exit 2'\n  - name: merged\n    shell: 'echo both >&2; exit 3'\n    stderr: stdout\n";
    let r = env.run_jobs(yaml, &["-j", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    let after = |job: &str| -> Vec<&str> {
        let at = lines
            .iter()
            .position(|l| l.contains(&format!("FAILED    {job}")))
            .unwrap_or_else(|| panic!("no line for {job}: {r:?}"));
        lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("    "))
            .copied()
            .collect()
    };
    assert_eq!(after("loud"), ["    | on-err"], "{r:?}");
    assert_eq!(
        after("quiet"),
        ["    (stdout, as stderr is empty)", "    | only-out"],
        "{r:?}"
    );
    assert_eq!(
        after("merged"),
        ["    (stdout, as stderr is not captured)", "    | both"],
        "{r:?}"
    );
}
