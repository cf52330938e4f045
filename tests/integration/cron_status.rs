//! `orchestrate cron status` against the real crontab: the last run and its outcome, the
//! next due time, missed runs (due, but cron never started the job file), refused overlaps
//! and failing streaks, and an exit code that can itself be monitored.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::cron_mail::run_as_cron;
use crate::helpers::{Env, wait_for};

/// The user's crontab, put back as it was when the test ends (also when it fails).
struct CrontabBack(String);

impl Drop for CrontabBack {
    fn drop(&mut self) {
        let mut child = Command::new("crontab")
            .arg("-")
            .stdin(Stdio::piped())
            .spawn()
            .expect("crontab -");
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(self.0.as_bytes());
        let _ = child.wait();
    }
}

fn crontab() -> Option<String> {
    let out = Command::new("crontab").arg("-l").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the job file's line and returns it.
fn install(env: &Env, file: &str, schedule: &str) -> String {
    let r = env.run(&["cron", file, "--schedule", schedule, "--install"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_string()
}

fn status_of<'a>(all: &'a [serde_json::Value], file: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|s| s["job_file"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("no line for {file}: {all:?}"))
}

#[test]
fn cron_status_shows_missed_runs_failures_and_overlaps() {
    let Some(before) = crontab() else {
        crate::helpers::skipped("cron_status", "no crontab command");
        return;
    };
    let _lock = crate::helpers::crontab_lock();
    let others = before.contains("# orchestrate: ");
    let _back = CrontabBack(before);
    let env = Env::new();
    env.write("yearly.yaml", "jobs:\n  - name: ok\n    command: 'true'\n");
    env.write("hourly.yaml", "jobs:\n  - name: ok\n    command: 'true'\n");
    env.write(
        "broken.yaml",
        "jobs:\n  - name: export\n    shell: 'echo no space >&2; exit 3'\n",
    );
    env.write(
        "slow.yaml",
        "jobs:\n  - name: wait\n    shell: 'while [ ! -e go ]; do sleep 0.05; done'\n",
    );
    let yearly = install(&env, "yearly.yaml", "0 0 1 1 *");
    let hourly = install(&env, "hourly.yaml", "0 * * * *");
    let broken = install(&env, "broken.yaml", "*/5 * * * *");
    let slow = install(&env, "slow.yaml", "*/5 * * * *");

    // Cron ran the yearly one (by hand, as cron would), the broken one twice.
    assert_eq!(run_as_cron(&yearly).code, 0);
    assert_eq!(run_as_cron(&broken).code, 1);
    assert_eq!(run_as_cron(&broken).code, 1);
    // The slow one overlapped itself: the second start was refused.
    let first = std::thread::spawn(move || run_as_cron(&slow));
    let slow_line = crontab().unwrap();
    let slow_line = slow_line
        .lines()
        .find(|l| l.contains("slow.yaml"))
        .unwrap()
        .to_string();
    assert!(wait_for(Duration::from_secs(10), || env
        .run(&["runs", "--json"])
        .stdout
        .contains("slow.yaml")));
    assert_eq!(run_as_cron(&slow_line).code, 75);
    std::fs::write(env.path("go"), "").unwrap();
    assert_eq!(first.join().unwrap().code, 0);
    // The hourly one was installed three hours ago (its log says so) and never started
    // since: the machine was off.
    let three_hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::write(
        crate::helpers::cron_log(&hourly),
        format!(
            "{} orchestrate: run 20200101-000000-0000000 of {} started\n",
            humantime::format_rfc3339_seconds(three_hours_ago),
            env.path("hourly.yaml").display()
        ),
    )
    .unwrap();

    let status = env.run(&["cron", "status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    let all = status.json();
    let y = status_of(&all, "/yearly.yaml");
    assert_eq!(y["last_status"], "succeeded", "{y}");
    assert_eq!(y["missed"].as_array().unwrap().len(), 0, "{y}");
    assert!(y["next_due"].as_str().unwrap().contains("-01-01T"), "{y}");
    assert_eq!(y["problems"].as_array().unwrap().len(), 0, "{y}");
    let h = status_of(&all, "/hourly.yaml");
    let missed = h["missed"].as_array().unwrap().len();
    assert!((2..=3).contains(&missed), "{h}");
    assert!(h["problems"].to_string().contains("missed run"), "{h}");
    let b = status_of(&all, "/broken.yaml");
    assert_eq!(b["failing_runs"], 2, "{b}");
    assert!(
        b["problems"].to_string().contains("failing for 2 runs"),
        "{b}"
    );
    let s = status_of(&all, "/slow.yaml");
    assert_eq!(s["refused"], 1, "{s}");
    assert_eq!(s["last_status"], "succeeded", "{s}");

    let table = env.run(&["cron", "status"]);
    assert_eq!(table.code, 1, "{table:?}");
    assert!(table.stdout.contains("JOB FILE"), "{table:?}");
    assert!(
        table
            .stdout
            .contains("was the machine off, or cron stopped?"),
        "{table:?}"
    );

    // With only the healthy line left, cron status exits 0.
    for f in ["hourly.yaml", "broken.yaml", "slow.yaml"] {
        assert_eq!(env.run(&["cron", f, "--remove"]).code, 0);
    }
    let ok = env.run(&["cron", "status"]);
    let ours: Vec<&str> = ok
        .stdout
        .lines()
        .filter(|l| l.contains(&*env.dir.path().to_string_lossy()))
        .collect();
    assert_eq!(ours.len(), 1, "{ok:?}");
    if !others {
        assert_eq!(ok.code, 0, "{ok:?}");
    }
    assert_eq!(env.run(&["cron", "yearly.yaml", "--remove"]).code, 0);
}

#[test]
fn a_job_file_deleted_after_install_is_reported_and_its_line_can_be_removed() {
    let Some(before) = crontab() else {
        crate::helpers::skipped("cron_status_gone", "no crontab command");
        return;
    };
    let _lock = crate::helpers::crontab_lock();
    let _back = CrontabBack(before);
    let env = Env::new();
    env.write("gone.yaml", "jobs:\n  - 'true'\n");
    install(&env, "gone.yaml", "0 3 * * *");
    std::fs::remove_file(env.path("gone.yaml")).unwrap();
    let status = env.run(&["cron", "status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    let all = status.json();
    let g = status_of(&all, "/gone.yaml");
    assert!(
        g["problems"].to_string().contains("the job file is gone"),
        "{g}"
    );
    let removed = env.run(&["cron", "gone.yaml", "--remove"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(
        removed.stdout.contains("removed the crontab line"),
        "{removed:?}"
    );
    assert!(!crontab().unwrap().contains("gone.yaml"));
}
