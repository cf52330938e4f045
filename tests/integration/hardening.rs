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

/// Whether this test process runs as root.
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n"
}

const WORLD_WRITABLE: &str = "is writable by every user, and you run it as root";

#[test]
fn a_world_writable_job_file_gets_a_warning_when_run_as_root() {
    let env = Env::new();
    let path = env.write("jobs.yaml", "jobs:\n  - 'true'\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    if is_root() {
        assert!(r.stderr.contains(WORLD_WRITABLE), "{r:?}");
        // The same file run by someone else than root is no danger: no warning.
        let nobody = run_as_nobody(&env);
        assert_eq!(nobody.status.code(), Some(0), "{nobody:?}");
        let stderr = String::from_utf8_lossy(&nobody.stderr);
        assert!(!stderr.contains("warning"), "{stderr}");
    } else {
        assert!(!r.stderr.contains("warning"), "not root, yet warned: {r:?}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{r:?}");
}

/// Runs jobs.yaml as uid/gid 65534 (`setpriv`), with a state dir of its own.
fn run_as_nobody(env: &Env) -> std::process::Output {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("jobs.yaml")
        .current_dir(env.dir.path())
        .env("ORCHESTRATE_STATE_DIR", env.path("nobody-state"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs")
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files
}

/// Unsafe items (the job gets index names) and safe-but-tricky ones (they become names), plus
/// job names that need escaping as folder names: a leading dot, `\`, `%`, and two names that
/// would collide if `%` were not escaped. Each writes more than the run's pack takes, so that
/// its capture file stays where it was written.
const NAMES_YAML: &str = r#"jobs:
  - name: x
    command: [sh, -c, 'printf "%s\n" "$0"; head -c 70000 /dev/zero', '{item}']
    for_each: ['../../etc', '/abs', 'a/../../b', '..']
  - name: .dot
    command: [sh, -c, 'printf "%s\n" "$0"; head -c 70000 /dev/zero', '{item}']
    for_each: ['.hidden', '..up', '%2F', 'back\slash', '~', '$HOME', '*', '-n']
  - name: ..hidden
    command: [sh, -c, 'printf "%s\n" "$0"; head -c 70000 /dev/zero', 'two dots']
  - name: '%2E.hidden'
    command: [sh, -c, 'printf "%s\n" "$0"; head -c 70000 /dev/zero', 'escaped dot']
"#;

#[test]
fn item_names_never_escape_the_store() {
    let env = Env::new();
    let r = env.run_jobs(NAMES_YAML, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    let names: Vec<&str> = recs.iter().map(|r| r["job"].as_str().unwrap()).collect();
    // The safe items made names (so their folders come from the names), the unsafe ones did not.
    for name in [
        ".dot[.hidden]",
        ".dot[..up]",
        ".dot[back\\slash]",
        ".dot[%2F]",
        "x[0]",
    ] {
        assert!(names.contains(&name), "no job {name} in {names:?}");
    }
    assert_eq!(recs.len(), 14, "{names:?}");
    let run_dir = {
        let runs = env.state().join("runs").canonicalize().unwrap();
        let mut ids: Vec<_> = std::fs::read_dir(&runs).unwrap().flatten().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids.pop().unwrap().path()
    };
    let mut folders = std::collections::BTreeSet::new();
    for rec in &recs {
        let job = rec["job"].as_str().unwrap();
        let path = std::path::PathBuf::from(rec["stdout_path"].as_str().expect("a capture"));
        let real = path.canonicalize().unwrap();
        // One folder per job, right inside the run's folder, named plainly (never `.`, `..`
        // or hidden), holding what the job wrote.
        assert_eq!(
            real.file_name().unwrap(),
            "stdout",
            "{job}: {}",
            real.display()
        );
        let folder = real.parent().unwrap();
        assert_eq!(
            folder.parent().unwrap(),
            run_dir,
            "{job}: {}",
            real.display()
        );
        let component = folder.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!component.starts_with('.'), "{job}: folder {component}");
        let written = std::fs::read_to_string(&real).unwrap();
        assert_eq!(written, rec["stdout"].as_str().unwrap(), "{job}");
        assert_eq!(env.run(&["logs", job]).stdout, written, "logs {job}");
        assert!(
            folders.insert(component.clone()),
            "{job} shares {component}"
        );
    }
    // Nothing was written where the unsafe items would lead from the run's folder.
    for escaped in [
        env.state().join("etc"),
        env.state().join("runs/b"),
        env.state().join("runs/stdout"),
        run_dir.join("stdout"),
        std::path::PathBuf::from("/abs"),
        env.path("etc"),
        env.path("b"),
    ] {
        assert!(!escaped.exists(), "{} exists", escaped.display());
    }
    // The store holds the database, the lock and one capture file per job: nothing else.
    let captures: Vec<_> = files_under(&env.state())
        .into_iter()
        .filter(|f| f.starts_with("runs"))
        .collect();
    assert_eq!(captures.len(), 14, "{captures:?}");
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
    // The jobs succeeded, but the run could not keep their output: it says so, exit 70.
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(70), "{text}\n{stderr}");
    assert!(stderr.contains("could not be kept whole"), "{stderr}");
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

/// The pids of the processes (zombies excepted) in process group `pgid`.
fn members_of_group(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| crate::helpers::alive(pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(2))
                    .and_then(|g| g.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

#[test]
fn a_job_that_forks_a_thousand_processes_is_stopped_whole() {
    let env = Env::new();
    // The pid file comes first, so that it is there however few forks a slow machine managed
    // before the timeout; each fork notes itself, to show the group really grew.
    let r = env.run_jobs(
        "jobs:\n  - name: forker\n    shell: 'echo $$ > pid; for i in $(seq 1000); do sleep 60 & echo $! >> forks; done; wait'\n    timeout: 3s\n  - name: neighbour\n    command: echo fine\n",
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
    let pgid = read_pids(&env.path("pid"))[0];
    let forks = read_pids(&env.path("forks"));
    assert!(
        !forks.is_empty(),
        "the job forked nothing before its timeout"
    );
    // No process of its group is left. The limit only keeps a broken build from hanging the
    // suite: killed processes go at the kernel's pace, which a loaded machine slows down.
    assert!(
        wait_for(Duration::from_secs(120), || members_of_group(pgid)
            .is_empty()),
        "processes of the forker's group survived: {:?} ({} forks)",
        members_of_group(pgid),
        forks.len()
    );
}
