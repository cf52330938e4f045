//! Hardening: escaped processes, output caps, unsafe job files, hostile names.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::helpers::{Env, assert_gone, await_pids, read_pids, signal, wait_for};

/// A job whose grandchild leaves the job's process group (setsid), so that killing the group
/// does not reach it.
const ESCAPER: &str =
    "    shell: 'setsid sh -c \"echo \\$\\$ >> escaped; exec sleep 100\" & sleep 100'\n";

#[test]
fn processes_that_escaped_the_group_do_not_survive_a_timeout() {
    let env = Env::new();
    let r = env.run_jobs(
        &format!("jobs:\n  - name: escaper\n{ESCAPER}    timeout: 300ms\n"),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let pids = read_pids(&env.path("escaped"));
    assert_eq!(pids.len(), 1);
    assert_gone(&pids, "escaped");
}

#[test]
fn processes_that_escaped_the_group_do_not_survive_sigterm() {
    let env = Env::new();
    env.write("jobs.yaml", &format!("jobs:\n  - name: escaper\n{ESCAPER}"));
    let child = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("escaped"), 1);
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert_gone(&read_pids(&env.path("escaped")), "escaped");
}

#[test]
fn max_output_keeps_head_and_tail() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: chatty\n    shell: 'seq 1 100000'\n    max_output: 1K\n",
        &["--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let rec = &r.json()[0];
    assert_eq!(rec["stdout_bytes"], 588895);
    assert!(
        rec["notes"][0]
            .as_str()
            .unwrap()
            .contains("kept the first 512 and the last 512 of 588895 bytes"),
        "{rec}"
    );
    let logs = env.run(&["logs", "chatty"]).stdout;
    assert!(logs.starts_with("1\n2\n3\n"), "{logs}");
    assert!(logs.ends_with("99999\n100000\n"), "{logs}");
    assert!(logs.contains("[orchestrate: 587871 bytes left out here by max_output]"));
    assert!(logs.len() < 1200);
}

#[test]
fn a_world_writable_job_file_gets_a_warning_when_run_as_root() {
    let env = Env::new();
    let path = env.write("jobs.yaml", "jobs:\n  - 'true'\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert_eq!(r.code, 0);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    if root {
        assert!(
            r.stderr
                .contains("is writable by every user, and you run it as root"),
            "{r:?}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert!(!r.stderr.contains("warning"), "{r:?}");
}

#[test]
fn item_names_never_escape_the_store() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: x\n    command: echo {item}\n    for_each: ['../../etc', '/abs', 'a/../../b', '..']\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Every capture file is inside the run folder.
    let runs = env.state().join("runs");
    let mut found = 0;
    let mut stack = vec![runs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            assert!(p.starts_with(&runs));
            if p.is_dir() {
                stack.push(p);
            } else {
                found += 1;
            }
        }
    }
    assert_eq!(found, 4);
    assert!(!env.dir.path().join("etc").exists() && !env.path("b").exists());
}

/// Runs `yaml` as jobs.yaml with `--json` and `args` under a file-size limit of 8 MiB
/// (`ulimit -f`); returns the output and its stdout as text.
fn run_under_file_size_limit(yaml: &str, args: &str) -> (std::process::Output, String) {
    let env = Env::new();
    env.write("jobs.yaml", yaml);
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -f 8192; exec {} jobs.yaml --json {args}",
                env!("CARGO_BIN_EXE_orchestrate")
            ),
        ])
        .current_dir(env.dir.path())
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

#[test]
fn a_full_disk_while_capturing_truncates_and_the_run_goes_on() {
    // A file-size limit makes capture writes fail as a full disk would (EFBIG instead of ENOSPC).
    let (out, text) = run_under_file_size_limit(
        "jobs:\n  - name: flood\n    shell: 'head -c 20000000 /dev/zero'\n  - name: after\n    command: echo still running\n    needs: [flood]\n",
        "-j 1",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flood = recs.iter().find(|r| r["job"] == "flood").unwrap();
    assert_eq!(flood["stdout_bytes"], 20000000);
    assert!(
        flood["notes"][0]
            .as_str()
            .unwrap()
            .contains("stdout capture truncated"),
        "{flood}"
    );
    let after = recs.iter().find(|r| r["job"] == "after").unwrap();
    assert_eq!(after["stdout"], "still running\n");
}

#[test]
fn a_job_writing_past_the_file_size_limit_gets_sigxfsz_as_from_a_shell() {
    // orchestrate survives the limit itself (its own writes fail with EFBIG), but its jobs
    // must not inherit that: a job writing past the limit is stopped by SIGXFSZ.
    let (out, text) = run_under_file_size_limit(
        "jobs:\n  - name: big\n    shell: 'head -c 20000000 /dev/zero > big.out'\n",
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    // sh reports its child's signal as 128 + 25.
    assert_eq!(rec["returncode"], 128 + 25, "{rec}");
}

#[test]
fn a_job_that_forks_a_thousand_processes_is_stopped_whole() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: forker\n    shell: 'for i in $(seq 1000); do sleep 60 & done; echo $$ > pid; wait'\n    timeout: 3s\n  - name: neighbour\n    command: echo fine\n",
        &["--json", "-j", "2"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let forker = recs.iter().find(|x| x["job"] == "forker").unwrap();
    assert_eq!(forker["status"], "timed_out");
    assert_eq!(
        recs.iter().find(|x| x["job"] == "neighbour").unwrap()["stdout"],
        "fine\n"
    );
    // No process of its group is left.
    let pgid = read_pids(&env.path("pid"))[0];
    assert!(
        wait_for(Duration::from_secs(10), || {
            std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    return true;
                };
                crate::helpers::alive(pid)
                    .then(|| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
                    .flatten()
                    .is_none_or(|stat| {
                        stat.rsplit(')')
                            .next()
                            .and_then(|r| r.split_whitespace().nth(2))
                            .and_then(|g| g.parse::<u32>().ok())
                            != Some(pgid)
                    })
            })
        }),
        "processes of the forker's group survived"
    );
}
