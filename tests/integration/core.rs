//! The core runner: concurrency, records, output modes, timeouts, signals, big output.

use std::time::Duration;

use crate::helpers::{Env, Run, assert_gone, await_pids, read_pids, signal};

/// Max number of jobs alive at once, from the `start`/`end` stamps the jobs wrote themselves.
fn max_overlap(log: &str) -> usize {
    let mut events: Vec<(f64, i32)> = log
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next()?;
            let t: f64 = w.next()?.parse().ok()?;
            Some((t, if kind == "start" { 1 } else { -1 }))
        })
        .collect();
    // Ends sort before starts at the same instant: touching intervals do not overlap.
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

#[test]
fn concurrency_bound_is_never_exceeded() {
    let env = Env::new();
    let job = "    shell: 'echo start $(date +%s.%N) >> stamps; sleep 0.3; echo end $(date +%s.%N) >> stamps'\n";
    let mut yaml = String::from("jobs:\n");
    for i in 0..6 {
        yaml.push_str(&format!("  - name: j{i}\n{job}"));
    }
    let r = env.run_jobs(&yaml, &["-j", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let log = std::fs::read_to_string(env.path("stamps")).unwrap();
    assert_eq!(log.lines().count(), 12, "{log}");
    assert_eq!(max_overlap(&log), 2, "{log}");

    // The job file's own `concurrency:` applies when -j is absent.
    std::fs::remove_file(env.path("stamps")).unwrap();
    let r = env.run_jobs(&format!("concurrency: 3\n{yaml}"), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let log = std::fs::read_to_string(env.path("stamps")).unwrap();
    assert_eq!(max_overlap(&log), 3, "{log}");
}

#[test]
fn ordered_output_follows_the_job_file() {
    let env = Env::new();
    // Later jobs finish first.
    let mut yaml = String::from("jobs:\n");
    for i in 0..5 {
        yaml.push_str(&format!(
            "  - shell: 'sleep 0.{}; echo result-{i}'\n",
            5 - i
        ));
    }
    let r = env.run_jobs(&yaml, &["-j", "5", "--output", "ordered"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout, "result-0\nresult-1\nresult-2\nresult-3\nresult-4\n",
        "{r:?}"
    );
    // Completion order, for contrast, is the reverse.
    let r = env.run_jobs(&yaml, &["-j", "5", "--output", "all"]);
    assert_eq!(
        r.stdout, "result-4\nresult-3\nresult-2\nresult-1\nresult-0\n",
        "{r:?}"
    );
}

const MODES_YAML: &str = "jobs:
  - name: good
    shell: 'echo out-good; echo err-good >&2'
  - name: bad
    shell: 'echo out-bad; echo err-bad-1 >&2; echo err-bad-2 >&2; exit 4'
";

#[test]
fn output_mode_none_shows_no_job_output() {
    let env = Env::new();
    let r = env.run_jobs(MODES_YAML, &["--output", "none", "-j", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(!r.stderr.contains("err-bad"), "{r:?}");
    assert!(
        r.stderr.contains("FAILED") && r.stderr.contains("bad"),
        "{r:?}"
    );
}

#[test]
fn output_mode_failed_shows_the_stderr_tail_of_failed_jobs() {
    let env = Env::new();
    let r = env.run_jobs(MODES_YAML, &["-j", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("| err-bad-1\n") && r.stderr.contains("| err-bad-2\n"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("err-good"), "{r:?}");
    assert!(r.stderr.contains("2 jobs in"), "{r:?}");
    assert!(r.stderr.contains("1 succeeded, 1 failed"), "{r:?}");
}

#[test]
fn output_mode_all_groups_each_jobs_output() {
    let env = Env::new();
    let r = env.run_jobs(MODES_YAML, &["--output", "all", "-j", "1"]);
    assert_eq!(r.stdout, "out-good\nout-bad\n", "{r:?}");
    assert!(
        r.stderr.contains("err-good\n") && r.stderr.contains("err-bad-1\nerr-bad-2\n"),
        "{r:?}"
    );
}

#[test]
fn output_mode_stream_prefixes_live_lines() {
    let env = Env::new();
    let r = env.run_jobs(MODES_YAML, &["--output", "stream", "-j", "2"]);
    let mut out: Vec<&str> = r.stdout.lines().collect();
    out.sort();
    assert_eq!(out, ["bad\tout-bad", "good\tout-good"], "{r:?}");
    assert!(r.stderr.contains("good\terr-good\n"), "{r:?}");
    assert!(r.stderr.contains("bad\terr-bad-2\n"), "{r:?}");
}

#[test]
fn json_records_carry_the_completed_process() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: seven
    shell: 'printf hello; echo oops >&2; exit 7'
  - name: killed
    shell: 'kill -9 $$'
  - name: missing
    command: no-such-program-here --flag
  - df -h /
",
        &["--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(recs.len(), 4, "{r:?}");
    let seven = Run::record(&recs, "seven");
    assert_eq!(seven["returncode"], 7);
    assert_eq!(seven["status"], "failed");
    assert_eq!(seven["stdout"], "hello");
    assert_eq!(seven["stderr"], "oops\n");
    assert_eq!(seven["stdout_bytes"], 5);
    assert_eq!(seven["stdout_lossy"], false);
    assert_eq!(
        seven["args"],
        serde_json::json!(["sh", "-c", "printf hello; echo oops >&2; exit 7"])
    );
    for key in [
        "start", "end", "duration", "pid", "slot", "attempts", "index",
    ] {
        assert!(!seven[key].is_null(), "{key} missing in {seven}");
    }
    let killed = Run::record(&recs, "killed");
    assert_eq!(killed["signal"], 9);
    assert_eq!(killed["signal_name"], "SIGKILL");
    assert!(killed["returncode"].is_null());
    let missing = Run::record(&recs, "missing");
    assert_eq!(missing["status"], "spawn_error");
    assert!(missing["returncode"].is_null(), "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("command not found: no-such-program-here"),
        "{missing}"
    );
    let df = Run::record(&recs, "df-h");
    assert_eq!(df["status"], "succeeded");
    assert!(
        df["stdout"].as_str().unwrap().contains("Filesystem"),
        "{df}"
    );
}

#[test]
fn a_missing_program_is_a_record_not_a_crash() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - no-such-program-xyz\n  - true\n", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("NOSTART") && r.stderr.contains("command not found"),
        "{r:?}"
    );
    assert!(r.stderr.contains("1 succeeded, 1 could not start"), "{r:?}");
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: tree
    shell: 'sleep 100 & echo $! >> pids; sh -c \"sleep 100 & echo \\$! >> pids; wait\" & sleep 100'
    timeout: 500ms
    kill_after: 1s
",
        &["--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(recs[0]["status"], "timed_out", "{r:?}");
    assert_eq!(recs[0]["signal"], 15, "{r:?}");
    let pids = read_pids(&env.path("pids"));
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_gone(&pids, "a process survived");
}

#[test]
fn timeout_escalates_to_sigkill_after_the_grace() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:
  - name: stubborn
    shell: 'trap \"\" TERM; echo $$ > pid; while true; do sleep 0.05; done'
    timeout: 300ms
    kill_after: 300ms
",
        &["--json"],
    );
    let recs = r.json();
    assert_eq!(recs[0]["status"], "timed_out", "{r:?}");
    assert_eq!(recs[0]["signal"], 9, "{r:?}");
    assert_gone(&read_pids(&env.path("pid")), "a process survived");
}

#[test]
fn sigint_cancels_running_jobs_and_exits_130() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "concurrency: 2
jobs:
  - name: long-a
    shell: 'echo $$ >> pids; sleep 60'
  - name: long-b
    shell: 'echo $$ >> pids; sleep 60'
  - name: never
    command: touch never-ran
",
    );
    let child = env.spawn(&["jobs.yaml", "--json"]);
    await_pids(&env.path("pids"), 2);
    signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Run {
        code: 130,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    };
    let recs = r.json();
    assert_eq!(recs.len(), 3, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "cancelled", "{rec}");
    }
    assert!(!env.path("never-ran").exists());
    assert_gone(&read_pids(&env.path("pids")), "a process survived");
    // The store knows the run was interrupted.
    let show = env.run(&["runs"]);
    assert!(show.stdout.contains("interrupted"), "{show:?}");
}

#[test]
fn sigterm_exits_143() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - shell: 'echo $$ > pid; exec sleep 60'\n",
    );
    let child = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("pid"), 1);
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CANCELLED"));
}

#[test]
fn non_utf8_bytes_are_kept_exactly() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: bytes\n    command: [printf, '\\377\\376\\000abc\\n\\351t\\351']\n",
        &["--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs[0]["stdout_lossy"], true);
    assert_eq!(recs[0]["stdout_bytes"], 10);
    let logs = env.run(&["logs", "bytes"]);
    assert_eq!(logs.raw_stdout, b"\xff\xfe\x00abc\n\xe9t\xe9", "{logs:?}");
    // And --output all writes them through untouched.
    let r = env.run_jobs(
        "jobs:\n  - name: bytes\n    command: [printf, '\\377\\376\\000abc']\n",
        &["--output", "all"],
    );
    assert_eq!(r.raw_stdout, b"\xff\xfe\x00abc");
}

#[test]
fn a_job_env_replaces_an_inherited_variable_and_its_path_finds_programs() {
    let env = Env::new();
    std::fs::create_dir(env.path("bin")).unwrap();
    env.write("bin/greet", "#!/bin/sh\necho greetings from $0\n");
    let script = env.path("bin/greet");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = env.path("bin");
    let r = env.run_jobs(
        &format!(
            "jobs:
  - name: home
    shell: 'echo $HOME; env | grep -c ^HOME='
    env: {{ HOME: /elsewhere }}
  - name: found
    command: greet
    env: {{ PATH: '{}:/usr/bin:/bin' }}
",
            bin.display()
        ),
        &["--json", "-j", "1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    // Replaced, not added next to the inherited one.
    assert_eq!(Run::record(&recs, "home")["stdout"], "/elsewhere\n1\n");
    assert_eq!(
        Run::record(&recs, "found")["stdout"],
        format!("greetings from {}\n", script.display())
    );
}

#[test]
fn files_stdin_env_cwd_and_merge() {
    let env = Env::new();
    std::fs::create_dir(env.path("sub")).unwrap();
    env.write("input.txt", "line one\nline two\n");
    let r = env.run_jobs(
        "defaults:
  env: { GREETING: hello }
jobs:
  - name: append
    shell: 'echo run'
    stdout: { file: out.log, append: true }
  - name: truncate
    shell: 'echo only'
    stdout: { file: trunc.log }
  - name: where
    command: pwd
    cwd: sub
  - name: env
    shell: 'echo $GREETING $OTHER $ORCHESTRATE_JOB'
    env: { OTHER: 42 }
  - name: stdin-text
    command: wc -l
    stdin: \"a\\nb\\nc\\n\"
  - name: stdin-file
    command: cat
    stdin: { file: input.txt }
  - name: merged
    shell: 'echo to-out; echo to-err >&2'
    stderr: stdout
  - name: discarded
    shell: 'echo gone; echo gone >&2'
    stdout: null
    stderr: null
",
        &["--json", "-j", "1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    let get = |j: &str| Run::record(&recs, j).clone();
    assert_eq!(
        get("where")["stdout"].as_str().unwrap().trim_end(),
        env.path("sub").canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(get("env")["stdout"], "hello 42 env\n");
    assert_eq!(get("stdin-text")["stdout"].as_str().unwrap().trim(), "3");
    assert_eq!(get("stdin-file")["stdout"], "line one\nline two\n");
    assert_eq!(get("merged")["stdout"], "to-out\nto-err\n");
    assert_eq!(get("merged")["stderr"], "");
    assert_eq!(get("discarded")["stdout_bytes"], 0);
    assert_eq!(get("append")["stdout_bytes"], 4);
    // Appending across runs, like `>> out.log`; truncating like `>`.
    let r2 = env.run(&["jobs.yaml", "-j", "1"]);
    assert_eq!(r2.code, 0, "{r2:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("out.log")).unwrap(),
        "run\nrun\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("trunc.log")).unwrap(),
        "only\n"
    );
}

#[test]
fn a_leftover_background_process_does_not_hang_the_run() {
    let env = Env::new();
    let t0 = std::time::Instant::now();
    let r = env.run_jobs(
        "jobs:\n  - name: sneaky\n    shell: 'sleep 30 & echo $! > pid; echo started'\n",
        &["--json"],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the run waited for the leftover"
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs[0]["stdout"], "started\n");
    assert!(
        recs[0]["notes"][0].as_str().unwrap().contains("held open"),
        "{r:?}"
    );
    for pid in read_pids(&env.path("pid")) {
        signal(pid, "KILL");
    }
}

/// Peak RSS (VmHWM, KiB) of a running process, sampled until it exits.
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            && let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        {
            peak = peak.max(v);
        }
        if child.try_wait().unwrap().is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_gib_of_output_keeps_memory_flat() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: big\n    shell: 'head -c 1073741824 /dev/zero'\n",
    );
    let mut child = env.spawn(&["jobs.yaml"]);
    let peak = peak_rss_kib(&mut child);
    assert!(child.wait().unwrap().success());
    assert!(peak > 0 && peak < 64 * 1024, "peak RSS {peak} KiB");
    // (Not --json: that would inline a GiB of escaped NULs.)
    let show = env.run(&["show", "--job", "big"]);
    let line = show
        .stdout
        .lines()
        .find(|l| l.starts_with("stdout"))
        .unwrap();
    assert!(line.contains("1073741824 bytes, "), "{show:?}");
    let path = line.split(", ").nth(1).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len(), 1 << 30);
}

#[test]
fn check_prints_the_plan_and_runs_nothing() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - touch created\n  - name: shell\n    shell: 'echo hi | wc -c'\n    timeout: 90s\n",
    );
    let r = env.run(&["check", "jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("2 jobs"), "{r:?}");
    assert!(
        r.stdout.contains("touch-created") && r.stdout.contains("touch created"),
        "{r:?}"
    );
    assert!(r.stdout.contains("timeout 1m 30s"), "{r:?}");
    assert!(!env.path("created").exists());
    assert!(!env.state().exists(), "check must not create the store");
}

#[test]
fn demo_job_file_runs() {
    let env = Env::new();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/demo.yaml");
    let r = env.run(&[demo.to_str().unwrap(), "--json"]);
    // The demo fails on purpose (one failing job, one timeout).
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "fails-on-purpose")["returncode"], 3);
    assert_eq!(Run::record(&recs, "too-slow")["status"], "timed_out");
    assert_eq!(Run::record(&recs, "df-h")["status"], "succeeded");
}

#[test]
fn a_job_starts_in_its_directory_by_path_even_when_a_job_before_made_it_anew() {
    let env = Env::new();
    let w = env.dir.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let w_text = w.display().to_string();
    env.write(
        "jobs.yaml",
        &format!(
            "concurrency: 1\njobs:\n  - name: remake\n    shell: 'cd /; rm -rf {w_text}; mkdir {w_text}; touch {w_text}/marker'\n    cwd: {w_text}\n  - name: write\n    shell: 'ls; echo result > out.txt'\n    cwd: {w_text}\n    needs: [remake]\n"
        ),
    );
    // Started in that directory: the job's is then orchestrate's own.
    let jobs = env.dir.path().join("jobs.yaml");
    let out = env.cmd().current_dir(&w).arg(&jobs).output().unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(w.join("out.txt")).unwrap(),
        "result\n"
    );
    assert_eq!(env.run(&["logs", "write"]).stdout, "marker\n");
}
