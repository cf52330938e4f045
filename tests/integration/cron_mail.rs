//! The installed crontab line, run as cron runs it (`sh -c`, cron's bare environment, from
//! `/`, no terminal): cron mails what the line prints, so it prints only failures, and the
//! log keeps every run's full report. A run by hand and a run from cron start their jobs in
//! the same folder.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::helpers::{Env, Run};

/// The crontab line orchestrate prints for `job_file`.
fn cron_line(env: &Env, job_file: &str) -> String {
    let r = env.run(&["cron", job_file, "--schedule", "*/5 * * * *"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_string()
}

/// Runs a crontab line's command as cron does: `sh -c` with cron's few variables, from `/`,
/// stdin from nowhere and no terminal. What it prints is what cron would mail.
pub fn run_as_cron(line: &str) -> Run {
    let fields = if line.starts_with('@') { 1 } else { 5 };
    let command = line
        .splitn(fields + 1, ' ')
        .nth(fields)
        .expect("a command after the schedule");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    Run::from(
        Command::new("/bin/sh")
            .args(["-c", command])
            .env_clear()
            .env("SHELL", "/bin/sh")
            .env("HOME", home)
            .env("LOGNAME", "root")
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("run sh"),
    )
}

#[test]
fn the_installed_line_prints_only_failures_and_logs_everything() {
    let env = Env::new();
    env.write(
        "nightly.yaml",
        "jobs:\n  - name: fine\n    command: echo all good\n  - name: export\n    shell: 'if [ -e fail ]; then echo disk quota exceeded >&2; exit 3; fi'\n",
    );
    let line = cron_line(&env, "nightly.yaml");
    assert!(
        !line.contains(">>"),
        "the line redirects the report: {line}"
    );
    let log = crate::helpers::cron_log(&line);

    let ok = run_as_cron(&line);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.stdout, "", "cron would mail this: {ok:?}");
    assert_eq!(ok.stderr, "", "cron would mail this: {ok:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("orchestrate: run "), "{text}");
    assert!(text.contains("ok        fine"), "{text}");
    assert!(text.contains("2 jobs in"), "{text}");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    std::fs::write(env.path("fail"), "").unwrap();
    let failed = run_as_cron(&line);
    assert_eq!(failed.code, 1, "{failed:?}");
    let mail = format!("{}{}", failed.stdout, failed.stderr);
    assert!(mail.contains("FAILED    export"), "{failed:?}");
    assert!(mail.contains("| disk quota exceeded"), "{failed:?}");
    assert!(
        !mail.contains("fine"),
        "a job that succeeded is mailed: {failed:?}"
    );
    // The log has both runs, the second one whole.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("orchestrate: run ").count(), 2, "{text}");
    assert!(text.contains("FAILED    export"), "{text}");
    assert!(text.contains("| disk quota exceeded"), "{text}");
    assert_eq!(text.matches("ok        fine").count(), 2, "{text}");
}

#[test]
fn a_log_that_is_not_a_regular_file_is_refused_before_any_job() {
    let env = Env::new();
    let fifo = env.path("log.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let r = env.run_jobs("jobs:\n  - touch ran\n", &["--log", fifo.to_str().unwrap()]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("not a regular file"), "{r:?}");
    assert!(!env.path("ran").exists(), "a job ran");
}

#[test]
fn jobs_start_in_the_job_files_folder_by_hand_and_from_cron() {
    let env = Env::new();
    env.write(
        "sub/jobs.yaml",
        "jobs:\n  - name: here\n    shell: 'pwd >> where'\n  - name: there\n    cwd: data\n    shell: 'pwd >> where'\n",
    );
    std::fs::create_dir_all(env.path("sub/data")).unwrap();
    // By hand, from the folder above the job file.
    let r = env.run(&["sub/jobs.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    // From cron, which starts in `/`.
    let line = cron_line(&env, "sub/jobs.yaml");
    assert_eq!(run_as_cron(&line).code, 0);
    let sub = env.path("sub").canonicalize().unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let here: Vec<String> = read(&env.path("sub/where"))
        .lines()
        .map(String::from)
        .collect();
    let there: Vec<String> = read(&env.path("sub/data/where"))
        .lines()
        .map(String::from)
        .collect();
    let canon = |l: &String| std::path::Path::new(l).canonicalize().unwrap();
    assert_eq!(here.len(), 2, "{here:?}");
    assert!(here.iter().all(|l| canon(l) == sub), "{here:?}");
    assert_eq!(there.len(), 2, "{there:?}");
    assert!(
        there.iter().all(|l| canon(l) == sub.join("data")),
        "{there:?}"
    );
    assert!(
        !env.path("where").exists(),
        "a job ran where orchestrate was started"
    );
}

#[test]
fn install_warns_when_no_cron_daemon_runs() {
    if Command::new("crontab").arg("-l").output().is_err() {
        crate::helpers::skipped("install_warns_when_no_cron_daemon_runs", "no crontab");
        return;
    }
    let env = Env::new();
    env.write("w.yaml", "jobs:\n  - 'true'\n");
    let _crontab = crate::helpers::crontab_lock();
    let daemon = Command::new("pgrep")
        .args(["-x", "cron|crond"])
        .output()
        .is_ok_and(|o| o.status.success());
    let r = env.run(&["cron", "w.yaml", "--schedule", "@daily", "--install"]);
    let removed = env.run(&["cron", "w.yaml", "--remove"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(removed.code, 0, "{removed:?}");
    assert_eq!(
        r.stderr.contains("no cron daemon is running"),
        !daemon,
        "daemon running: {daemon}; {r:?}"
    );
}
