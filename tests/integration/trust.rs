//! What the README promises about secrets, records and the terminal, tried as an attacker
//! would (each test is named after what broke).

use crate::helpers::{Env, files_holding};

/// Every path under `dir` whose name (not contents) holds `needle`.
fn names_holding(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(needle))
            {
                hits.push(p.clone());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    hits
}

/// The secret is nowhere: not in the outputs given, not in any file of the store, not in any
/// file or folder name under it.
fn assert_nowhere(env: &Env, secret: &str, outputs: &[(&str, &str)]) {
    for (what, text) in outputs {
        assert!(!text.contains(secret), "the secret is in {what}:\n{text}");
    }
    let files = files_holding(&env.state(), secret);
    assert!(files.is_empty(), "the secret is in {files:?}");
    let names = names_holding(&env.state(), secret);
    assert!(names.is_empty(), "the secret names {names:?}");
}

#[test]
fn a_secret_in_a_jobs_cwd_is_neither_stored_nor_printed() {
    let env = Env::new();
    let secret = "cwd-s3cr3t-9f2";
    std::fs::create_dir_all(env.path(secret)).unwrap();
    let dir = env.path(secret);
    let yaml = format!(
        "secret_env: [TOKEN]\nenv: {{TOKEN: {secret}}}\njobs:\n  - name: where\n    command: pwd\n    cwd: {}\n",
        dir.display()
    );
    let run = env.run_jobs(&yaml, &["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let show = env.run(&["show", "last", "--job", "where"]);
    let show_json = env.run(&["show", "last", "--json"]);
    let check = env.run(&["check", "jobs.yaml"]);
    let check_json = env.run(&["check", "jobs.yaml", "--json"]);
    assert!(check.stdout.contains("[REDACTED]"), "{check:?}");
    assert_nowhere(
        &env,
        secret,
        &[
            ("the run's --json records", &run.stdout),
            ("the run's stderr", &run.stderr),
            ("show --job", &show.stdout),
            ("show --json", &show_json.stdout),
            ("check", &check.stdout),
            ("check --json", &check_json.stdout),
        ],
    );
}

#[test]
fn secrets_set_from_items_never_become_job_names() {
    let env = Env::new();
    let keys = ["k3y-alpha-71c", "k3y-beta-0d4"];
    let yaml = format!(
        "secret_env: [KEY]\njobs:\n  - name: call\n    command: [sh, -c, 'test -n \"$KEY\"']\n    env: {{KEY: '{{item}}'}}\n    for_each: [{}]\n",
        keys.join(", ")
    );
    let run = env.run_jobs(&yaml, &["--json", "--output", "ordered"]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut names: Vec<String> = run
        .json()
        .iter()
        .map(|r| r["job"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["call[0]", "call[1]"]);
    let show = env.run(&["show", "last"]);
    let check = env.run(&["check", "jobs.yaml"]);
    for key in keys {
        assert_nowhere(
            &env,
            key,
            &[
                ("the run's output", &run.stdout),
                ("the run's stderr", &run.stderr),
                ("show", &show.stdout),
                ("check", &check.stdout),
            ],
        );
    }
}

#[test]
fn a_jobs_byte_count_is_of_what_is_stored_after_redaction() {
    let env = Env::new();
    let yaml = "secret_env: [PW]\nenv: {PW: hunter2-long-secret}\njobs:\n  - name: leak\n    shell: 'printf \"pw=%s\\n\" \"$PW\"'\n";
    let run = env.run_jobs(yaml, &["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let recs = run.json();
    let rec = crate::helpers::Run::record(&recs, "leak");
    // What the store keeps, as it reads back (from the run's pack, where this small capture
    // moved when the job ended).
    let stored = env.run(&["logs", "leak"]).raw_stdout;
    assert_eq!(stored, b"pw=[REDACTED]\n");
    assert_eq!(rec["stdout_bytes"], stored.len(), "{rec}");
}

#[test]
fn escape_sequences_from_a_job_do_not_reach_the_terminal() {
    let env = Env::new();
    // A failing job's stderr tail is shown by default: a title change, a bell, a colour and a
    // right-to-left override.
    let yaml = "jobs:\n  - name: evil\n    shell: 'printf \"\\033]0;pwned\\007\\033[31mred\\342\\200\\256txt\\n\" >&2; exit 1'\n";
    let run = env.run_jobs(yaml, &["--progress", "never"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(!run.stderr.contains('\u{7}'), "{:?}", run.stderr);
    assert!(!run.stderr.contains('\u{202e}'), "{:?}", run.stderr);
    assert!(run.stderr.contains("\\x1b]0;pwned\\x07"), "{}", run.stderr);
    assert!(run.stderr.contains("\\u{202e}txt"), "{}", run.stderr);
}

/// Runs a job file that must be refused: exit 2, nothing run, the message and its line.
fn refused(yaml: &str, message: &str, line: &str) {
    let env = Env::new();
    let run = env.run_jobs(yaml, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains(message), "{}", run.stderr);
    assert!(run.stderr.contains(line), "{}", run.stderr);
    assert!(
        !env.state().join("history.db").exists(),
        "a refused file ran"
    );
}

#[test]
fn impossible_success_codes_are_refused() {
    refused(
        "jobs:\n  - name: a\n    command: 'true'\n    success_codes: [0, -1, 256]\n",
        "exit code -1 cannot happen",
        "jobs.yaml:4:",
    );
}

#[test]
fn a_max_output_too_small_to_keep_anything_is_refused() {
    refused(
        "jobs:\n  - name: a\n    command: 'true'\n    max_output: 0\n",
        "at least 2 bytes",
        "jobs.yaml:4:",
    );
}

#[test]
fn invisible_and_direction_changing_characters_in_names_are_refused() {
    for c in ['\u{202e}', '\u{200b}'] {
        refused(
            &format!("jobs:\n  - name: \"ab{c}cd\"\n    command: 'true'\n"),
            "invisible or direction-changing",
            "jobs.yaml:2:",
        );
    }
}

#[test]
fn a_nul_in_an_environment_value_is_named_as_such() {
    refused(
        "jobs:\n  - name: a\n    command: 'true'\n    env: {GOOD_NAME: \"x\\0y\"}\n",
        "the value of environment variable `GOOD_NAME` contains a NUL byte",
        "jobs.yaml:4:",
    );
}

#[test]
fn a_job_file_named_with_a_newline_cannot_add_a_crontab_entry() {
    let env = Env::new();
    let name = "nightly\n* * * * * id > /tmp/PWNED\n.yaml";
    env.write(name, "jobs:\n  - 'true'\n");
    let run = env.run(&["cron", name, "--schedule", "@daily"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("control character"), "{}", run.stderr);
    assert!(
        !run.stdout.contains("PWNED"),
        "a line was printed: {}",
        run.stdout
    );
}

/// Runs orchestrate with `args` from a shell that first runs `prelude` (`umask 000`,
/// `ulimit -n 48`), with the test's environment.
fn after_shell(env: &Env, prelude: &str, args: &[&str]) -> crate::helpers::Run {
    let cmd = env.cmd();
    let script = format!("{prelude} || exit 99; exec \"$0\" \"$@\"");
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_orchestrate"))
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.current_dir(cmd.get_current_dir().unwrap());
    crate::helpers::Run::from(sh.output().unwrap())
}

fn under_umask_000(env: &Env, args: &[&str]) -> crate::helpers::Run {
    after_shell(env, "umask 000", args)
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_state_dir_its_folders_and_the_cron_log_are_private_whatever_the_umask() {
    let env = Env::new();
    env.write("nightly.yaml", "jobs:\n  - 'true'\n");
    // `cron` is often the first command on a new machine: it makes the state dir.
    let run = under_umask_000(&env, &["cron", "nightly.yaml", "--schedule", "@daily"]);
    assert_eq!(run.code, 0, "{run:?}");
    let state = env.state();
    assert_eq!(mode(&state), 0o700, "the state dir");
    assert_eq!(mode(&state.join("cron")), 0o700, "cron/");
    let log = crate::helpers::cron_log(&run.stdout);
    assert_eq!(
        log.parent().unwrap(),
        state.join("cron"),
        "{}",
        log.display()
    );
    assert_eq!(mode(&log), 0o600, "the cron log");
    let run = under_umask_000(&env, &["nightly.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mode(&state.join("locks")), 0o700, "locks/");
    for entry in std::fs::read_dir(state.join("locks")).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600, "a lock file");
    }
    assert_eq!(mode(&state.join("history.db")), 0o600, "history.db");
}

fn with_ulimit(env: &Env, ulimit: &str, args: &[&str]) -> crate::helpers::Run {
    after_shell(env, &format!("ulimit {ulimit}"), args)
}

const MANY: &str = "jobs:\n  - name: s\n    command: sleep 0.3\n    for_each: {range: [1, 60]}\n";

#[test]
fn many_jobs_at_once_under_a_low_soft_descriptor_limit_all_run() {
    let env = Env::new();
    env.write("many.yaml", MANY);
    // The soft limit alone is low (the hard one is not): it is raised at start.
    let run = with_ulimit(&env, "-Sn 48", &["many.yaml", "-j", "60", "--no-store"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("60 succeeded"), "{}", run.stderr);
}

#[test]
fn jobs_beyond_the_hard_descriptor_limit_wait_for_descriptors_instead_of_failing() {
    let env = Env::new();
    env.write("many.yaml", MANY);
    // Soft and hard at 48: 60 jobs at once cannot all have their pipes; some wait.
    let run = with_ulimit(&env, "-n 48", &["many.yaml", "-j", "60", "--no-store"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("60 succeeded"), "{}", run.stderr);
}

/// Sets the id of the oldest run to `id` in the database, as a forger with write access would.
fn forge_run_id(env: &Env, id: &str) {
    let db = rusqlite::Connection::open(env.state().join("history.db")).unwrap();
    db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let oldest: String = db
        .query_row("SELECT id FROM runs ORDER BY started_ms LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE records SET run_id = ?1 WHERE run_id = ?2",
        [id, &oldest],
    )
    .unwrap();
    db.execute("UPDATE runs SET id = ?1 WHERE id = ?2", [id, &oldest])
        .unwrap();
}

#[test]
fn a_forged_run_id_never_becomes_a_path_that_gc_removes() {
    let env = Env::new();
    let victim = env.path("rootdata");
    std::fs::create_dir_all(victim.join("keep")).unwrap();
    std::fs::write(victim.join("keep/file"), "precious").unwrap();
    for _ in 0..2 {
        assert_eq!(env.run_jobs("jobs:\n  - 'true'\n", &[]).code, 0);
    }
    let climb = format!(
        "../../{}",
        victim.strip_prefix(env.path("")).unwrap().display()
    );
    forge_run_id(&env, &climb);
    let gc = env.run(&["gc", "--keep-runs", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert_eq!(
        std::fs::read_to_string(victim.join("keep/file")).unwrap(),
        "precious",
        "gc removed a folder outside the store"
    );
}

#[test]
fn gc_removes_folders_left_without_a_run_and_never_follows_a_symlink() {
    let env = Env::new();
    assert_eq!(env.run_jobs("jobs:\n  - echo hi\n", &[]).code, 0);
    let runs = env.state().join("runs");
    // A gc killed between removing rows and folders left this (the old order).
    std::fs::create_dir_all(runs.join("20200101-000000-000dead/job")).unwrap();
    std::fs::write(runs.join("20200101-000000-000dead/job/stdout"), "x").unwrap();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("file"), "mine").unwrap();
    std::os::unix::fs::symlink(&outside, runs.join("20200101-000000-000beef")).unwrap();
    // A folder not named as runs are is someone else's: left alone.
    std::fs::create_dir_all(runs.join("exp1")).unwrap();
    let gc = env.run(&["gc", "--keep-runs", "100"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(
        !runs.join("20200101-000000-000dead").exists(),
        "the orphan stayed"
    );
    assert!(
        std::fs::symlink_metadata(runs.join("20200101-000000-000beef")).is_err(),
        "the symlink stayed"
    );
    assert!(
        runs.join("exp1").exists(),
        "a folder not made by orchestrate was removed"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("file")).unwrap(),
        "mine"
    );
    // The run that has a row keeps its folder (and exp1 stays).
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 2);
}

#[test]
fn retention_never_prunes_a_run_whose_background_job_still_runs() {
    let env = Env::new();
    let yaml = "retention: {runs: 1}\njobs:\n  - name: slow\n    shell: 'while [ ! -e go ]; do sleep 0.05; done; echo done; exit 4'\n    background: true\n";
    assert_eq!(env.run_jobs(yaml, &[]).code, 0);
    let first = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A second run of the same file applies `retention: {runs: 1}` to the first.
    assert_eq!(
        env.run_jobs("retention: {runs: 1}\njobs:\n  - 'true'\n", &[])
            .code,
        0
    );
    let ids: Vec<String> = env
        .run(&["runs", "--json"])
        .json()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.contains(&first),
        "the run with a live background job was pruned: {ids:?}"
    );
    std::fs::write(env.path("go"), "").unwrap();
    let w = env.run(&["wait", &first]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("exit 4"), "{w:?}");
}

#[test]
fn wait_gives_a_failed_background_jobs_outcome_whether_it_ended_before_or_while_waiting() {
    let env = Env::new();
    let yaml = "jobs:\n  - name: quick\n    shell: 'exit 3'\n    background: true\n";
    assert_eq!(env.run_jobs(yaml, &[]).code, 0);
    // Ended before anyone asked.
    assert!(crate::helpers::wait_for(
        std::time::Duration::from_secs(20),
        || { env.run(&["show", "last", "--json"]).json()[0]["status"] != "background" }
    ));
    let w = env.run(&["wait"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("quick failed exit 3"), "{w:?}");
    // By name, the same answer, however often asked.
    for _ in 0..2 {
        let w = env.run(&["wait", "quick"]);
        assert_eq!(w.code, 1, "{w:?}");
    }
}

#[test]
fn a_fifo_as_a_jobs_file_never_hangs_the_run() {
    let env = Env::new();
    for f in ["in.fifo", "out.fifo"] {
        let made = std::process::Command::new("mkfifo")
            .arg(env.path(f))
            .status();
        assert!(made.unwrap().success());
    }
    let yaml = "jobs:\n  - name: reads\n    command: cat\n    stdin: {file: in.fifo}\n  - name: writes\n    command: echo hi\n    stdout: {file: out.fifo}\n  - name: fine\n    command: 'true'\n";
    env.write("jobs.yaml", yaml);
    let mut child = env.spawn(&["jobs.yaml"]);
    let ended = crate::helpers::wait_for(std::time::Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = child.kill();
        panic!("the run hung on a FIFO");
    }
    let out = child.wait_with_output().unwrap();
    let run = crate::helpers::Run::from(out);
    assert_eq!(run.code, 1, "{run:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    let status = |job: &str| crate::helpers::Run::record(&recs, job)["status"].clone();
    // No writer: the reader sees the end of its input at once.
    assert_eq!(status("reads"), "succeeded");
    assert_eq!(status("writes"), "spawn_error");
    assert_eq!(status("fine"), "succeeded");
    let detail = env.run(&["show", "last", "--job", "writes"]);
    assert!(
        detail.stdout.contains("FIFO that nobody reads"),
        "{detail:?}"
    );
}

#[test]
fn env_files_and_item_files_that_are_not_small_regular_files_are_refused() {
    let env = Env::new();
    let sparse = std::fs::File::create(env.path("huge.env")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(env.path("items.fifo"))
        .status();
    assert!(made.unwrap().success());
    for (yaml, says) in [
        (
            "env_file: /dev/zero\njobs:\n  - 'true'\n",
            "not a regular file",
        ),
        (
            "env_file: huge.env\njobs:\n  - 'true'\n",
            "more than the 16 MiB allowed",
        ),
        (
            // A FIFO is read as a stream, as the jobs run: only the last entry may do that.
            "jobs:\n  - name: each\n    command: echo {item}\n    for_each: {file: items.fifo}\n  - 'true'\n",
            "must be the last entry",
        ),
    ] {
        let run = env.run_jobs(yaml, &[]);
        assert_eq!(run.code, 2, "{yaml}: {run:?}");
        assert!(run.stderr.contains(says), "{yaml}: {}", run.stderr);
    }
}

#[test]
fn a_job_file_that_is_a_device_is_refused_at_once() {
    let env = Env::new();
    for args in [vec!["check", "/dev/zero"], vec!["/dev/zero"]] {
        let run = env.run(&args);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    }
}

#[test]
fn a_state_dir_another_user_could_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    assert_eq!(env.run_jobs("jobs:\n  - 'true'\n", &[]).code, 0);
    let state = env.state();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = env.run_jobs("jobs:\n  - 'true'\n", &[]);
    assert_eq!(run.code, 70, "{run:?}");
    assert!(run.stderr.contains("writable by others"), "{}", run.stderr);
    let runs = env.run(&["runs"]);
    assert_eq!(runs.code, 70, "{runs:?}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    if crate::helpers::is_root() {
        // Owned by someone else (nobody), even with a strict mode.
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        let run = env.run_jobs("jobs:\n  - 'true'\n", &[]);
        assert_eq!(run.code, 70, "{run:?}");
        assert!(run.stderr.contains("not to you"), "{}", run.stderr);
    }
}

#[test]
fn a_lock_file_planted_as_a_symlink_is_never_followed() {
    let env = Env::new();
    assert_eq!(env.run_jobs("jobs:\n  - 'true'\n", &[]).code, 0);
    let victim = env.write("victim", "precious\n");
    let locks = env.state().join("locks");
    let lock = std::fs::read_dir(&locks)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let run = env.run_jobs("jobs:\n  - 'true'\n", &[]);
    assert_ne!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn without_home_the_state_dir_is_never_in_tmp() {
    let env = Env::new();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrate"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("runs")
        .current_dir(env.path(""));
    let out = crate::helpers::Run::from(cmd.output().unwrap());
    assert!(!out.stderr.contains("/tmp/.local"), "{out:?}");
    assert!(!out.stdout.contains("/tmp/.local"), "{out:?}");
}

#[test]
fn kill_stops_a_process_that_left_the_background_jobs_group() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: forever\n    shell: 'setsid sleep 300 & echo $! > pids; echo $$ >> pids; wait'\n    background: true\n",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    crate::helpers::await_pids(&env.path("pids"), 2);
    let k = env.run(&["kill", "forever"]);
    assert_eq!(k.code, 0, "{k:?}");
    crate::helpers::assert_gone(
        &crate::helpers::read_pids(&env.path("pids")),
        "a process that called setsid survived `kill`",
    );
}

#[test]
fn the_ssh_socket_folder_is_private_and_a_killed_runs_folder_is_cleaned_up() {
    use crate::scale_out::{ssh_head, sshd};
    use std::os::unix::fs::PermissionsExt;
    let Some(e) =
        sshd("trust::the_ssh_socket_folder_is_private_and_a_killed_runs_folder_is_cleaned_up")
    else {
        return;
    };
    // Left by a run killed with -9 (its pid no longer lives).
    let stale = std::path::Path::new("/tmp/orch-ssh-999999999-stale");
    std::fs::create_dir_all(stale).unwrap();
    let env = Env::new();
    let yaml = format!(
        "{}executor: ssh\nhosts: [orch-ssh]\njobs:\n  - name: look\n    shell: 'sleep 1'\n",
        ssh_head(e)
    );
    env.write("jobs.yaml", &yaml);
    let mut cmd = env.cmd();
    cmd.envs(e.iter().map(|(k, v)| (k, v)));
    let script = "umask 000; exec \"$0\" jobs.yaml";
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_orchestrate"));
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh.current_dir(env.path(""));
    let mut child = sh.spawn().unwrap();
    let prefix = format!("orch-ssh-{}-", child.id());
    let mut seen = None;
    crate::helpers::wait_for(std::time::Duration::from_secs(20), || {
        seen = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .find(|d| d.file_name().to_string_lossy().starts_with(&prefix))
            .map(|d| d.path());
        seen.is_some()
    });
    let dir = seen.expect("the run made its socket folder");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert!(child.wait().unwrap().success());
    assert_eq!(mode, 0o700, "{}", dir.display());
    assert!(!stale.exists(), "the stale socket folder stayed");
}

/// A small tmpfs of our own (root only), unmounted when dropped.
pub(crate) struct Tmpfs(pub(crate) std::path::PathBuf);

impl Tmpfs {
    /// A tmpfs over `env`'s state dir, or `None` (the test `test` then said it was skipped)
    /// where one cannot be mounted.
    pub(crate) fn state_dir(env: &crate::helpers::Env, opts: &str, test: &str) -> Option<Tmpfs> {
        let fs = Tmpfs::mount(env.state(), opts);
        if fs.is_none() {
            crate::helpers::skipped(test, "cannot mount a tmpfs (not root?)");
        }
        fs
    }

    pub(crate) fn mount(at: std::path::PathBuf, opts: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&at)
            .status()
            .ok()?
            .success();
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_run_that_fills_the_disk_exits_70_and_loses_no_record() {
    let env = Env::new();
    let Some(_fs) = Tmpfs::state_dir(
        &env,
        "size=640k,mode=0700",
        "trust::a_run_that_fills_the_disk",
    ) else {
        return;
    };
    // The first job fills the state dir's disk with its output; the others' records then
    // cannot be written.
    let mut yaml =
        String::from("jobs:\n  - name: filler\n    command: head -c 2000000 /dev/zero\n");
    for i in 0..20 {
        yaml.push_str(&format!(
            "  - name: later{i}\n    command: 'true'\n    needs: [filler]\n"
        ));
    }
    let run = env.run_jobs(&yaml, &["-q", "-j", "1"]);
    assert_eq!(run.code, 70, "{run:?}");
    assert!(run.stderr.contains("could not record"), "{}", run.stderr);
    // What the store could not take is on stderr (the disk is full: no spill file either),
    // every job of the run, none left out.
    let kept = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("{\"job\":"))
        .count();
    let stored = env.run(&["show", "last", "--json"]).json().len();
    assert_eq!(kept + stored, 21, "{}", run.stderr);
}

#[test]
fn secrets_in_a_slurm_background_jobs_captured_output_are_refused_before_anything_runs() {
    refused(
        "secret_env: [TOKEN]\nenv: {TOKEN: s3cr3t}\njobs:\n  - name: batch\n    command: echo $TOKEN\n    executor: slurm\n    background: true\n",
        "cannot be redacted",
        "jobs.yaml:7:",
    );
}

#[test]
fn yaml_tags_are_refused_rather_than_ignored() {
    refused(
        "jobs:\n  - name: a\n    command: !!python/object:os.system \"echo hi\"\n",
        "YAML tags such as `!!python/object:os.system` are not supported",
        "jobs.yaml:3:",
    );
    refused(
        "jobs:\n  - name: b\n    command: !!binary aGVsbG8=\n",
        "`!!binary`",
        "jobs.yaml:3:",
    );
}

/// Every process command line on the machine that holds `needle`.
fn cmdlines_holding(needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && c.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            hits.push(String::from_utf8_lossy(&c).replace('\0', " "));
        }
    }
    hits
}

#[test]
fn an_ssh_jobs_secrets_travel_over_the_connection_not_in_any_command_line() {
    use crate::scale_out::{ssh_head, sshd};
    let Some(e) =
        sshd("trust::an_ssh_jobs_secrets_travel_over_the_connection_not_in_any_command_line")
    else {
        return;
    };
    let env = Env::new();
    env.write("input.txt", "from a file\n");
    let secret = "ssh-s3cr3t-5a7e";
    // The job compares its variable with a file: its own command line holds no secret.
    env.write("expected", secret);
    let yaml = format!(
        "{1}executor: ssh\nhosts: [orch-ssh]\nsecret_env: [TOKEN]\nenv: {{TOKEN: {secret}}}\njobs:\n  - name: uses\n    shell: 'test \"$TOKEN\" = \"$(cat {0}/expected)\" && touch {0}/started && sleep 2 && echo ok'\n  - name: text\n    command: cat\n    stdin: \"typed\\n\"\n  - name: file\n    command: cat\n    stdin: {{file: input.txt}}\n",
        env.path("").display(),
        ssh_head(e),
    );
    env.write("jobs.yaml", &yaml);
    let mut cmd = env.cmd();
    cmd.envs(e.iter().map(|(k, v)| (k, v)))
        .args(["jobs.yaml", "--json"]);
    cmd.stdout(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    assert!(crate::helpers::wait_for(
        std::time::Duration::from_secs(20),
        || { env.path("started").exists() }
    ));
    let seen = cmdlines_holding(secret);
    let out = child.wait_with_output().unwrap();
    assert!(seen.is_empty(), "the secret is in command lines: {seen:?}");
    let run = crate::helpers::Run::from(out);
    assert_eq!(run.code, 0, "{run:?}");
    let recs = run.json();
    assert_eq!(crate::helpers::Run::record(&recs, "uses")["stdout"], "ok\n");
    assert_eq!(
        crate::helpers::Run::record(&recs, "text")["stdout"],
        "typed\n"
    );
    assert_eq!(
        crate::helpers::Run::record(&recs, "file")["stdout"],
        "from a file\n"
    );
}

#[test]
fn a_run_in_another_pid_namespace_is_not_taken_for_dead() {
    if !crate::helpers::is_root() {
        crate::helpers::skipped(
            "trust::a_run_in_another_pid_namespace",
            "needs root for unshare",
        );
        return;
    }
    let env = Env::new();
    env.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: hold\n    shell: 'touch {0}/started; while [ ! -e {0}/go ]; do sleep 0.05; done'\n",
            env.path("").display()
        ),
    );
    let mut cmd = std::process::Command::new("unshare");
    // Processes started first push orchestrate's pid there past numbers that exist here.
    cmd.args(["--pid", "--fork", "--mount-proc", "sh", "-c"])
        .arg("i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done; \"$0\" jobs.yaml")
        .arg(env!("CARGO_BIN_EXE_orchestrate"))
        .current_dir(env.path(""))
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        crate::helpers::skipped("trust::a_run_in_another_pid_namespace", "no unshare");
        return;
    };
    assert!(crate::helpers::wait_for(
        std::time::Duration::from_secs(20),
        || { env.path("started").exists() }
    ));
    // Its pid means nothing here: here it is no process at all.
    let runs = env.run(&["runs", "--json"]).json();
    let pid = runs[0]["pid"].as_u64().unwrap() as u32;
    if crate::helpers::alive(pid) {
        crate::helpers::skipped(
            "trust::a_run_in_another_pid_namespace",
            "its pid exists here too",
        );
    }
    assert_eq!(runs[0]["status"], "running", "{runs:?}");
    let gc = env.run(&["gc", "--keep-runs", "0"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    std::fs::write(env.path("go"), "").unwrap();
    assert!(child.wait().unwrap().success());
    let runs = env.run(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
}

#[test]
fn two_jobs_can_never_share_a_name() {
    refused(
        "jobs:\n  - name: \"sq[1]\"\n    shell: 'exit 5'\n  - name: sq\n    shell: 'echo {item}'\n    for_each: [1]\n",
        "two jobs would be named `sq[1]`",
        "jobs.yaml:4:",
    );
    refused(
        "secret_env: [P]\nenv: {P: alpha1-s3cr3t}\njobs:\n  - name: dump-alpha1-s3cr3t\n    command: 'true'\n",
        "holds the value of a secret variable",
        "jobs.yaml:4:",
    );
}

#[test]
fn a_state_dir_symlink_made_by_another_user_is_refused() {
    if !crate::helpers::is_root() {
        crate::helpers::skipped(
            "trust::a_state_dir_symlink_made_by_another_user",
            "needs root",
        );
        return;
    }
    let env = Env::new();
    let target = env.path("victim");
    std::fs::create_dir_all(target.join("runs/exp1")).unwrap();
    let link = env.path("state-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    env.write("jobs.yaml", "jobs:\n  - 'true'\n");
    let out = env
        .cmd()
        .env("ORCHESTRATE_STATE_DIR", &link)
        .arg("jobs.yaml")
        .output()
        .unwrap();
    let run = crate::helpers::Run::from(out);
    assert_eq!(run.code, 70, "{run:?}");
    assert!(
        run.stderr.contains("symlink made by uid 65534"),
        "{}",
        run.stderr
    );
    assert!(target.join("runs/exp1").exists());
    assert!(!target.join("history.db").exists());
}

#[test]
fn the_crontab_line_names_the_store_it_resolved() {
    let env = Env::new();
    env.write("nightly.yaml", "jobs:\n  - 'true'\n");
    let xdg = env.path("xdg");
    let out = env
        .cmd()
        .env_remove("ORCHESTRATE_STATE_DIR")
        .env("XDG_STATE_HOME", &xdg)
        .args(["cron", "nightly.yaml", "--schedule", "@daily"])
        .output()
        .unwrap();
    let run = crate::helpers::Run::from(out);
    assert_eq!(run.code, 0, "{run:?}");
    let want = format!(
        "ORCHESTRATE_STATE_DIR={}",
        xdg.join("orchestrate").display()
    );
    assert!(run.stdout.contains(&want), "{}", run.stdout);
}

#[test]
fn a_bad_env_file_line_is_reported_without_its_value() {
    let env = Env::new();
    env.write(
        "bad.env",
        "TOKEN=\"s3kr1t-multi\nline-part-of-the-secret\"\n",
    );
    let run = env.run_jobs(
        "secret_env: [TOKEN]\nenv_file: bad.env\njobs:\n  - echo hi\n",
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("bad.env:2:1"), "{}", run.stderr);
    assert!(!run.stderr.contains("line-part"), "{}", run.stderr);
}
