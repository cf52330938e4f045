//! What a new user walking the README met: a state dir that is a file, a relative
//! XDG_STATE_HOME, tabs and a second error in a job file, what `--skip` leaves out, flags that
//! would do nothing together, hints that keep the value given, hook failures in `--log`, a
//! `needs` suggestion, the cron line's PATH and the commands' own manual pages.

use crate::helpers::*;

#[test]
fn a_state_dir_that_is_a_file_is_reported_by_every_command() {
    let env = Env::new();
    env.write("jobs.yaml", "jobs:\n  - 'true'\n");
    let file = env.write("afile", "not a folder\n");
    let file = file.to_str().unwrap();
    for argv in [
        &["--state-dir", file, "jobs.yaml"][..],
        &["runs", "--state-dir", file][..],
        &["status", "--state-dir", file][..],
        &["show", "--state-dir", file][..],
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 70, "{argv:?}: {r:?}");
        assert!(r.stderr.contains("is not a directory"), "{argv:?}: {r:?}");
    }
    assert_eq!(std::fs::read_to_string(file).unwrap(), "not a folder\n");
}

#[test]
fn a_relative_xdg_state_home_is_ignored_as_the_spec_says() {
    let env = Env::new();
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = env.cmd();
    cmd.env_remove("ORCHESTRATE_STATE_DIR")
        .env("XDG_STATE_HOME", "relative/x")
        .env("HOME", &home)
        .args(["runs"]);
    let r = Run::from(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("{}/.local/state/orchestrate", home.display())),
        "{r:?}"
    );
    assert!(!r.stderr.contains("relative/x"), "{r:?}");
}

#[test]
fn a_tab_and_an_error_after_the_first_are_named() {
    let env = Env::new();
    env.write("tab.yaml", "jobs:\n\t- echo hi\n");
    let r = env.run(&["check", "tab.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("tab.yaml:2:1: a tab character"), "{r:?}");
    assert!(r.stderr.contains("replace the tab with spaces"), "{r:?}");
    env.write(
        "bad.yaml",
        "jobs:\n  - name: backup\n    command: echo a\n    timout: 10s\n  - name: other\n    command: \"echo hello\n",
    );
    let r = env.run(&["bad.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("bad.yaml:4:5: unknown key `timout`"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("bad.yaml:6:14: this quoted string is never closed"),
        "{r:?}"
    );
}

#[test]
fn skip_says_what_it_leaves_out_for_needing_a_skipped_job() {
    let env = Env::new();
    let yaml = "jobs:\n  - {name: fetch, command: 'true'}\n  - {name: build, command: 'true', needs: [fetch]}\n  - {name: test, command: 'true', needs: [build]}\n  - {name: lint, command: 'true'}\n";
    let r = env.run_jobs(yaml, &["--skip", "fetch"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("--skip also leaves out what needs the skipped jobs: build, test"),
        "{r:?}"
    );
    let r = env.run_jobs(yaml, &["--skip", "lint"]);
    assert!(!r.stderr.contains("also leaves out"), "{r:?}");
}

#[test]
fn flags_that_would_do_nothing_together_are_refused_and_hints_keep_values() {
    let env = Env::new();
    env.write("jobs.yaml", "jobs:\n  - 'echo hi'\n");
    let tag = env.run(&["jobs.yaml", "--tag"]);
    assert_eq!(tag.code, 2, "{tag:?}");
    assert!(
        tag.stderr.contains("--tag labels printed job output"),
        "{tag:?}"
    );
    assert_eq!(env.run(&["jobs.yaml", "--tag", "--output", "all"]).code, 0);
    let json = env.run(&["jobs.yaml", "--json", "--output", "all", "--no-lock"]);
    assert_eq!(json.code, 2, "{json:?}");
    assert!(
        json.stderr.contains("--output all would do nothing"),
        "{json:?}"
    );
    assert!(json.stdout.is_empty(), "nothing ran: {json:?}");
    let jobs = env.run(&["-j", "2", "run", "jobs.yaml"]);
    assert_eq!(jobs.code, 2, "{jobs:?}");
    assert!(
        jobs.stderr.contains("orchestrate run ... --jobs 2"),
        "{jobs:?}"
    );
}

#[test]
fn the_log_has_the_failed_hook_as_the_terminal_does() {
    let env = Env::new();
    let yaml = "hooks:\n  on_exit: {shell: 'echo hook-said-this >&2; exit 3'}\njobs:\n  - 'true'\n";
    let r = env.run_jobs(yaml, &["--log", "run.log"]);
    assert!(r.stderr.contains("hook-said-this"), "{r:?}");
    let log = std::fs::read_to_string(env.path("run.log")).unwrap();
    assert!(log.contains("run.on_exit"), "{log}");
    assert!(log.contains("hook-said-this"), "{log}");
}

#[test]
fn a_need_on_an_unknown_job_never_suggests_the_job_itself() {
    let env = Env::new();
    let r = env.run_jobs("jobs:\n  - {name: a, command: 'true', needs: [b]}\n", &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown job `b`"), "{r:?}");
    assert!(!r.stderr.contains("did you mean `a`"), "{r:?}");
}

#[test]
fn the_cron_line_has_each_path_entry_once() {
    let env = Env::new();
    env.write("jobs.yaml", "jobs:\n  - 'true'\n");
    let mut cmd = env.cmd();
    cmd.env("PATH", "/usr/bin:/bin:/usr/bin:/bin").args([
        "cron",
        "jobs.yaml",
        "--schedule",
        "@daily",
    ]);
    let r = Run::from(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("PATH=/usr/bin:/bin "), "{r:?}");
}

#[test]
fn every_manual_page_has_the_exit_status() {
    let env = Env::new();
    let dir = env.path("man");
    let r = env.run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(pages.len() > 5, "{pages:?}");
    for p in pages {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(".SH \"EXIT STATUS\""), "{}", p.display());
    }
}

#[test]
fn hook_lines_line_up_with_the_jobs_lines() {
    let env = Env::new();
    let yaml = "hooks:\n  on_exit: {shell: 'true'}\njobs:\n  - name: build\n    shell: 'exit 2'\n    hooks: {on_failure: {shell: 'true'}}\n  - name: lint\n    command: 'true'\n";
    let r = env.run_jobs(yaml, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    let at: Vec<usize> = r
        .stderr
        .lines()
        .filter(|l| l.contains(" exit "))
        .map(|l| l.find(" exit ").unwrap())
        .collect();
    assert_eq!(at.len(), 4, "{r:?}");
    assert!(at.iter().all(|&c| c == at[0]), "{at:?}: {r:?}");
}
