//! Ready for cron and for people: terminal vs. plain output, quiet mode, the overlap lock,
//! crontab lines, environments and secrets, signals, completions.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Env, Run, await_pids, read_pids, signal, wait_for};

/// Runs orchestrate under a pseudo-terminal (`script`), returning what the terminal showed.
fn under_pty(env: &Env, args: &str, extra_env: &[(&str, &str)]) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_orchestrate"));
    let mut c = Command::new("script");
    c.args(["-qfec", &cmd, "/dev/null"])
        .current_dir(env.dir.path())
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().expect("script(1) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SLOW3: &str = "jobs:\n  - name: one\n    shell: 'echo working; sleep 0.6'\n  - name: two\n    shell: 'sleep 0.6'\n  - name: three\n    shell: 'sleep 0.6; exit 1'\n";

#[test]
fn a_terminal_gets_progress_bars_and_colors() {
    let env = Env::new();
    env.write("jobs.yaml", SLOW3);
    let screen = under_pty(&env, "jobs.yaml -j 2", &[]);
    assert!(screen.contains("jobs"), "no bar in {screen:?}");
    assert!(screen.contains("/3 jobs"), "no bar counter in {screen:?}");
    assert!(screen.contains("\x1b[32mok"), "no green ok in {screen:?}");
    assert!(
        screen.contains("\x1b[31mFAILED"),
        "no red FAILED in {screen:?}"
    );
    // NO_COLOR turns colors off but keeps the bars.
    let plain = under_pty(&env, "jobs.yaml -j 2", &[("NO_COLOR", "1")]);
    assert!(!plain.contains("\x1b[32m"), "{plain:?}");
    assert!(plain.contains("/3 jobs"), "{plain:?}");
    // --progress never: no bars even on a terminal.
    let nobars = under_pty(&env, "jobs.yaml -j 2 --progress never", &[]);
    assert!(!nobars.contains("/3 jobs"), "{nobars:?}");
}

#[test]
fn without_a_terminal_lines_are_plain_and_timestamped() {
    let env = Env::new();
    let r = env.run_jobs(SLOW3, &["-j", "3"]);
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains('\x1b'), "escape codes in {r:?}");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("    |") && !l.contains(" jobs in "))
        .collect();
    assert_eq!(lines.len(), 3, "one line per job: {r:?}");
    for line in lines {
        let ts = &line[..20];
        assert!(
            ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "no timestamp: {line}"
        );
    }
}

#[test]
fn color_always_forces_colors_without_a_terminal() {
    let env = Env::new();
    let r = env.run_jobs(SLOW3, &["-j", "3", "--color", "always"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("\x1b[32mok"), "{r:?}");
    assert!(r.stderr.contains("\x1b[31mFAILED"), "{r:?}");
}

#[test]
fn progress_always_forces_bars_without_a_terminal() {
    let env = Env::new();
    let r = env.run_jobs(SLOW3, &["-j", "3", "--progress", "always"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("/3 jobs"), "no progress bar: {r:?}");
    // The failed job is still reported, bars or not.
    assert!(
        r.stderr.contains("three"),
        "the failed job is not reported: {r:?}"
    );
}

#[test]
fn quiet_prints_nothing_on_success_and_the_failure_on_failure() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - echo hello\n  - 'true'\n", &["--quiet"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "");
    let r = env.run_jobs(
        "jobs:\n  - name: fine\n    command: echo hello\n  - name: broken\n    shell: 'echo disk full >&2; exit 2'\n",
        &["-q"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("FAILED    broken"), "{r:?}");
    assert!(r.stderr.contains("| disk full"), "{r:?}");
    assert!(!r.stderr.contains("fine"), "{r:?}");
    assert!(r.stderr.contains("1 succeeded, 1 failed"), "{r:?}");
}

#[test]
fn a_second_run_of_the_same_file_is_locked_out() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - shell: 'echo $$ > pid; exec sleep 30'\n",
    );
    let mut first = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("pid"), 1);
    let second = env.run(&["jobs.yaml"]);
    assert_eq!(second.code, 75, "{second:?}");
    assert!(
        second
            .stderr
            .contains("jobs.yaml is already running (since "),
        "{second:?}"
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{second:?}"
    );
    // A different job file is not affected.
    env.write("other.yaml", "jobs:\n  - 'true'\n");
    assert_eq!(env.run(&["other.yaml"]).code, 0);
    // --no-lock runs the same file while the lock is held (the lock is the file's path: the
    // holder read its jobs already, so a quick job can take their place).
    std::fs::write(env.path("jobs.yaml"), "jobs:\n  - 'true'\n").unwrap();
    let still_locked = env.run(&["jobs.yaml"]);
    assert_eq!(still_locked.code, 75, "{still_locked:?}");
    let unlocked = env.run(&["jobs.yaml", "--no-lock"]);
    assert_eq!(unlocked.code, 0, "{unlocked:?}");
    // kill -9 of the holder releases the lock at once.
    signal(first.id(), "KILL");
    first.wait().unwrap();
    for pid in read_pids(&env.path("pid")) {
        signal(pid, "KILL");
    }
    let after = env.run(&["jobs.yaml"]);
    assert_eq!(after.code, 0, "{after:?}");
}

#[test]
fn wait_lock_waits_for_the_running_one() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - shell: 'echo started >> log; sleep 1; echo done >> log'\n",
    );
    let mut first = env.spawn(&["jobs.yaml"]);
    assert!(wait_for(Duration::from_secs(10), || env
        .path("log")
        .exists()));
    let second = env.run(&["jobs.yaml", "--wait-lock", "30s"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(first.wait().unwrap().success());
    let log = std::fs::read_to_string(env.path("log")).unwrap();
    assert_eq!(log, "started\ndone\nstarted\ndone\n", "the runs overlapped");
    // --no-lock lets two run at once.
    std::fs::remove_file(env.path("log")).unwrap();
    let mut a = env.spawn(&["jobs.yaml"]);
    assert!(wait_for(Duration::from_secs(10), || env
        .path("log")
        .exists()));
    let b = env.run(&["jobs.yaml", "--no-lock"]);
    assert_eq!(b.code, 0, "{b:?}");
    assert!(a.wait().unwrap().success());
    let log = std::fs::read_to_string(env.path("log")).unwrap();
    assert!(log.starts_with("started\nstarted\n"), "{log}");
}

#[test]
fn cron_prints_validates_installs_and_removes_a_line() {
    let env = Env::new();
    env.write("nightly.yaml", "jobs:\n  - df -h /\n");
    let r = env.run(&["cron", "nightly.yaml", "--schedule", "*/15 * * * *"]);
    assert_eq!(r.code, 0, "{r:?}");
    let abs = env.path("nightly.yaml").canonicalize().unwrap();
    let line = r.stdout.trim();
    assert!(line.starts_with("*/15 * * * * cd "), "{line}");
    assert!(
        line.contains(&format!(" {} --quiet --log ", abs.display())),
        "{line}"
    );
    assert!(line.contains(" PATH="), "{line}");
    assert!(line.contains(env!("CARGO_BIN_EXE_orchestrate")), "{line}");
    assert!(
        line.ends_with(&format!("# orchestrate: {}", abs.display())),
        "{line}"
    );
    let bad = env.run(&["cron", "nightly.yaml", "--schedule", "*/15 * * *"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("a schedule has 5 fields"), "{bad:?}");
    let bad = env.run(&["cron", "nightly.yaml", "--schedule", "0 24 * * *"]);
    assert!(
        bad.stderr.contains("hour 24 is out of range 0-23"),
        "{bad:?}"
    );

    if Command::new("crontab").arg("-V").output().is_err()
        && Command::new("which")
            .arg("crontab")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    {
        assert!(std::env::var_os("CI").is_none(), "crontab is missing on CI");
        eprintln!("crontab is not installed: skipping the --install part (apt-get install cron)");
        return;
    }
    let crontab = || {
        String::from_utf8_lossy(&Command::new("crontab").arg("-l").output().unwrap().stdout)
            .into_owned()
    };
    let _crontab = crate::helpers::crontab_lock();
    let before = crontab();
    let marker = format!("# orchestrate: {}", abs.display());
    for _ in 0..2 {
        let r = env.run(&["cron", "nightly.yaml", "--schedule", "@daily", "--install"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let installed = crontab();
    assert_eq!(
        installed.lines().filter(|l| l.ends_with(&marker)).count(),
        1,
        "{installed}"
    );
    assert!(
        installed
            .lines()
            .any(|l| l.starts_with("@daily ") && l.ends_with(&marker))
    );
    let r = env.run(&["cron", "nightly.yaml", "--remove"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("removed"), "{r:?}");
    let after = crontab();
    assert!(!after.contains(&marker), "{after}");
    assert_eq!(after.trim(), before.trim(), "other crontab lines changed");
}

#[test]
fn job_files_of_the_same_name_in_two_folders_never_share_a_cron_log() {
    let env = Env::new();
    let mut logs = Vec::new();
    for dir in ["a", "b"] {
        env.write(
            &format!("{dir}/jobs.yaml"),
            &format!("jobs:\n  - name: fails\n    shell: echo tail-of-{dir} >&2; exit 1\n"),
        );
        let r = env.run(&["cron", &format!("{dir}/jobs.yaml"), "--schedule", "@daily"]);
        assert_eq!(r.code, 0, "{r:?}");
        let line = r.stdout.trim();
        let log = crate::helpers::cron_log(line);
        assert_eq!(log.parent().unwrap(), env.state().join("cron"));
        // What cron would run: the line without its schedule (the marker is a comment).
        let ran = Command::new("sh")
            .arg("-c")
            .arg(line.strip_prefix("@daily ").unwrap())
            .output()
            .unwrap();
        assert_eq!(ran.status.code(), Some(1), "the job fails");
        logs.push(log);
    }
    assert_ne!(logs[0], logs[1], "both job files append to one log");
    for (log, mine, theirs) in [(&logs[0], "a", "b"), (&logs[1], "b", "a")] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains(&format!("tail-of-{mine}")), "{text}");
        assert!(!text.contains(&format!("tail-of-{theirs}")), "{text}");
    }
    for log in &logs {
        let name = log.file_name().unwrap().to_str().unwrap().to_string();
        // Still readable: the job file's name comes first.
        assert!(
            name.starts_with("jobs-") && name.ends_with(".log"),
            "{name}"
        );
    }
    // The same job file keeps its log from one `orchestrate cron` to the next.
    let again = env.run(&["cron", "a/jobs.yaml", "--schedule", "@hourly"]);
    assert_eq!(crate::helpers::cron_log(again.stdout.trim()), logs[0]);
}

#[test]
fn environment_files_paths_clean_envs_and_keys() {
    let env = Env::new();
    env.write(
        "vars.env",
        "# settings\nexport GREETING=hello\nQUOTED=\"two words\"\n\n",
    );
    std::fs::create_dir(env.path("bin")).unwrap();
    let tool = env.write("bin/mytool", "#!/bin/sh\necho mytool ran\n");
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = env.run_jobs(
        "env_file: vars.env
path: [bin]
env: { EXTRA: x }
jobs:
  - name: vars
    shell: 'echo $GREETING/$QUOTED/$EXTRA'
  - name: tool
    command: mytool
",
        &["--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "vars")["stdout"], "hello/two words/x\n");
    assert_eq!(Run::record(&recs, "tool")["stdout"], "mytool ran\n");
    let keys = Run::record(&recs, "vars")["env_keys"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        keys.contains(&"GREETING".into()) && keys.contains(&"HOME".into()),
        "{keys:?}"
    );
    // By default a job inherits orchestrate's environment, and its record names what it got.
    let out = env
        .cmd()
        .args(["jobs.yaml", "--json"])
        .env("LEAKY", "inherited")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let vars = Run::record(&recs, "vars");
    assert_eq!(vars["stdout"], "hello/two words/x\n", "{vars}");
    assert!(
        vars["env_keys"]
            .as_array()
            .unwrap()
            .contains(&"LEAKY".into()),
        "{vars}"
    );
    // inherit_env: false starts from nothing but what the file gives (and a PATH).
    env.write(
        "clean.yaml",
        "inherit_env: false\nenv: {ONLY: me}\njobs:\n  - name: envdump\n    command: env\n",
    );
    let out = env
        .cmd()
        .args(["clean.yaml", "--json"])
        .env("LEAKY", "inherited")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let dump = rec["stdout"].as_str().unwrap();
    assert!(dump.contains("ONLY=me"), "{dump}");
    assert!(dump.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{dump}");
    assert!(!dump.contains("LEAKY"), "{dump}");
    assert!(
        !rec["env_keys"]
            .as_array()
            .unwrap()
            .contains(&"LEAKY".into())
    );
    let bad = env.run_jobs("env_file: missing.env\njobs:\n  - 'true'\n", &[]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("jobs.yaml:1:11: cannot read env_file"),
        "{bad:?}"
    );
}

#[test]
fn secrets_never_reach_the_store_or_the_output() {
    let env = Env::new();
    let secret = "hunter2-very-secret";
    env.write("secret.env", &format!("TOKEN={secret}\n"));
    let r = env.run_jobs(
        "env_file: secret.env
secret_env: [TOKEN]
jobs:
  - name: leaky
    shell: 'echo token is $TOKEN; echo err $TOKEN >&2; printf %s $TOKEN | cut -c1-7; exit 1'
",
        &["--json"],
    );
    assert_eq!(r.code, 1);
    assert!(
        !r.stdout.contains(secret) && !r.stderr.contains(secret),
        "{r:?}"
    );
    let rec = &r.json()[0];
    assert_eq!(rec["stdout"], "token is [REDACTED]\nhunter2\n");
    assert_eq!(rec["stderr"], "err [REDACTED]\n");
    for args in [
        &["--output", "all"][..],
        &["--output", "stream"][..],
        &[][..],
    ] {
        let r = env.run(&[&["jobs.yaml"], args].concat());
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{r:?}"
        );
    }
    // Nothing under the state dir holds the value.
    let mut stack = vec![env.state()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "secret found in {}",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn sighup_is_ignored_without_a_terminal() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - shell: 'echo $$ > pid; sleep 0.8'\n",
    );
    let child = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("pid"), 1);
    signal(child.id(), "HUP");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_second_sigint_kills_at_once() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: stubborn\n    shell: 'trap \"\" TERM; echo $$ > pid; while true; do sleep 0.1; done'\n    kill_after: 60s\n",
    );
    let child = env.spawn(&["jobs.yaml", "--json"]);
    await_pids(&env.path("pid"), 1);
    let t0 = Instant::now();
    signal(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the second Ctrl-C did not kill at once"
    );
    assert_eq!(out.status.code(), Some(130));
    let rec: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(rec["status"], "cancelled");
    assert_eq!(rec["signal"], 9);
}

#[test]
fn completions_and_man_page() {
    let env = Env::new();
    for (shell, needle) in [
        ("bash", "complete -F _orchestrate"),
        ("zsh", "#compdef orchestrate"),
        ("fish", "complete -c orchestrate"),
    ] {
        let r = env.run(&["completions", shell]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stdout.contains(needle),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
    }
    let man = env.run(&["man"]);
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.contains(".TH orchestrate 1"),
        "{}",
        &man.stdout[..200]
    );
    assert!(man.stdout.contains("wait\\-lock"));
}
