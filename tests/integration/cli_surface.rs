//! The command line as the README and `--help` describe it: flags before a command, mistyped
//! commands, a fresh state directory, the manual pages, and the wording of a few refusals.

use std::collections::BTreeSet;

use crate::helpers::*;

/// Two runs of a job whose stdout changes, for `diff`.
fn two_runs(env: &Env) {
    env.write("n", "1\n");
    env.write("jobs.yaml", "jobs:\n  - name: count\n    command: cat n\n");
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
    env.write("n", "2\n");
    assert_eq!(env.run(&["jobs.yaml"]).code, 0);
}

#[test]
fn flags_before_a_command_count_or_are_refused() {
    let env = Env::new();
    two_runs(&env);
    // --json before a command that has --json is its --json.
    let runs = env.run(&["--json", "runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert_eq!(runs.json().len(), 2, "{runs:?}");
    let show = env.run(&["--json", "show"]);
    assert_eq!(show.json()[0]["job"], "count", "{show:?}");
    // --color for diff, before or after it.
    for argv in [
        &["diff", "count", "--color", "always"][..],
        &["--color", "always", "diff", "count"][..],
    ] {
        let d = env.run(argv);
        assert_eq!(d.code, 1, "{argv:?}: {d:?}");
        assert!(d.stdout.contains("\x1b[31m-1\x1b[0m\n"), "{argv:?}: {d:?}");
        assert!(d.stdout.contains("\x1b[32m+2\x1b[0m\n"), "{argv:?}: {d:?}");
    }
    let plain = env.run(&["diff", "count"]);
    assert!(plain.stdout.contains("\n-1\n+2\n"), "{plain:?}");
    assert!(!plain.stdout.contains('\x1b'), "{plain:?}");
    // Any other flag of a run, or a job file, before a command is a usage error naming it.
    for (argv, named) in [
        (&["-q", "runs"][..], "--quiet"),
        (&["--output", "all", "show"][..], "--output"),
        (&["-j", "2", "run", "jobs.yaml"][..], "--jobs"),
        (&["--json", "logs", "count"][..], "--json"),
        (&["jobs.yaml", "runs"][..], "`jobs.yaml`"),
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert!(r.stderr.contains(named), "{argv:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{argv:?}: {r:?}");
    }
    let file_first = env.run(&["jobs.yaml", "runs"]);
    assert!(
        file_first
            .stderr
            .contains("orchestrate runs --job-file jobs.yaml"),
        "{file_first:?}"
    );
    // Nothing ran for a refused command line: still two runs.
    assert_eq!(env.run(&["runs", "--json"]).json().len(), 2);
}

#[test]
fn a_mistyped_command_is_not_read_as_a_job_file() {
    let env = Env::new();
    let r = env.run(&["rnus"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("no job file `rnus`; did you mean `orchestrate runs`?"),
        "{r:?}"
    );
    // A job file of that name is a job file.
    env.write("shwo", "jobs:\n  - touch ran\n");
    let ran = env.run(&["shwo"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(env.path("ran").exists());
    // A name close to no command is a missing job file, as before.
    let far = env.run(&["nightly-backup.yaml"]);
    assert_eq!(far.code, 2, "{far:?}");
    assert!(far.stderr.contains("cannot read job file"), "{far:?}");
}

#[test]
fn a_fresh_state_dir_lists_nothing_and_names_nothing() {
    let env = Env::new();
    for argv in [
        &["runs"][..],
        &["runs", "--json"],
        &["status"],
        &["status", "--json"],
        &["wait"],
        &["gc", "--keep-runs", "5"],
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 0, "{argv:?}: {r:?}");
        if argv.contains(&"--json") || argv == ["wait"] {
            assert!(r.stdout.is_empty(), "{argv:?}: {r:?}");
        }
    }
    assert!(env.run(&["runs"]).stderr.contains("no runs yet"));
    // Listing created nothing.
    assert!(!env.state().exists());
    for argv in [
        &["show"][..],
        &["show", "20250101"],
        &["logs", "build"],
        &["history", "build"],
        &["diff", "build"],
        &["wait", "build"],
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 3, "{argv:?}: {r:?}");
        assert!(r.stderr.contains("no history yet"), "{argv:?}: {r:?}");
    }
    // With a history, what is named and not there exits 3 as well; a usage error stays 2.
    two_runs(&env);
    for argv in [
        &["show", "19990101"][..],
        &["logs", "nosuch"],
        &["show", "--job", "nosuch"],
        &["kill", "count"],
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 3, "{argv:?}: {r:?}");
    }
    assert_eq!(env.run(&["diff", "count", "--run", "last"]).code, 2);
}

/// Every `name(1)` a page refers to.
fn page_refs(page: &str) -> BTreeSet<String> {
    let plain = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "");
    let mut refs = BTreeSet::new();
    for (i, _) in plain.match_indices("(1)") {
        let name: String = plain[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() {
            refs.insert(name);
        }
    }
    refs
}

#[test]
fn the_manual_names_only_pages_that_it_writes() {
    let env = Env::new();
    let dir = env.path("man");
    let r = env.run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "orchestrate.1",
        "orchestrate-runs.1",
        "orchestrate-cron-status.1",
    ] {
        assert!(written.contains(page), "{page} not in {written:?}");
    }
    assert!(
        !written
            .iter()
            .any(|p| p.contains("help") || p.contains("supervise"))
    );
    for page in &written {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for name in page_refs(&text) {
            assert!(
                written.contains(&format!("{name}.1")),
                "{page} refers to {name}(1), which is not written: {written:?}"
            );
        }
    }
    // `man` alone prints the main page.
    let main = env.run(&["man"]);
    assert_eq!(main.code, 0);
    let page = std::fs::read_to_string(dir.join("orchestrate.1")).unwrap();
    assert_eq!(main.stdout, page);
    for needle in [
        ".SH \"EXIT STATUS\"",
        "\\fB3\\fR",
        "\\fB70\\fR",
        "\\fB124\\fR",
        "\\fB129, 130, 143\\fR",
        ".SH \"JOB FILE\"",
        "\\fBretry_delay\\fR",
        "\\fBon_host_failure\\fR",
        ".SH \"FILES\"",
        ".SH \"ENVIRONMENT\"",
        "XDG_STATE_HOME",
        "NO_COLOR",
        "history.db",
    ] {
        assert!(page.contains(needle), "the main page lacks {needle}");
    }
}

#[test]
fn help_says_every_exit_code_and_the_real_state_dir() {
    let env = Env::new();
    let xdg = env.path("xdg");
    let r = Run::from(
        env.cmd()
            .arg("--help")
            .env_remove("ORCHESTRATE_STATE_DIR")
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let text = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for code in ["2 ", "3 ", "70 ", "75 ", "124 ", "129, 130, 143 "] {
        assert!(
            text.contains(&format!(" {code}")),
            "no exit code {code}: {text}"
        );
    }
    let here = format!("(here: {}/orchestrate)", xdg.display());
    assert!(text.contains(&here), "{text}");
    // The commands without a state directory neither offer nor take one.
    for cmd in ["man", "completions"] {
        let help = env.run(&[cmd, "--help"]);
        assert!(!help.stdout.contains("--state-dir"), "{help:?}");
    }
    let fish = env.run(&["completions", "fish"]).stdout;
    let offered = |cmd: &str| {
        fish.lines().any(|l| {
            l.contains(&format!("__fish_orchestrate_using_subcommand {cmd}\""))
                && l.contains("-l state-dir")
        })
    };
    assert!(offered("runs") && offered("show"), "{fish}");
    assert!(!offered("man") && !offered("completions"), "{fish}");
    for argv in [
        &["man", "--state-dir", "x"][..],
        &["--state-dir", "x", "completions", "bash"],
    ] {
        let r = env.run(argv);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert!(r.stderr.contains("does not use a state directory"), "{r:?}");
    }
    // gc says that it needs a limit, before it opens anything.
    let gc_help = env.run(&["gc", "--help"]);
    assert!(
        gc_help
            .stdout
            .contains("<--keep-runs <N>|--max-age <DURATION>|--max-bytes <SIZE>>"),
        "{gc_help:?}"
    );
    let gc = env.run(&["gc"]);
    assert_eq!(gc.code, 2, "{gc:?}");
    assert!(gc.stderr.contains("required"), "{gc:?}");
}

#[test]
fn wait_lock_running_out_says_how_long_and_who_holds_it() {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - shell: 'echo $$ > pid; exec sleep 30'\n",
    );
    let mut first = env.spawn(&["jobs.yaml"]);
    await_pids(&env.path("pid"), 1);
    let second = env.run(&["jobs.yaml", "--wait-lock", "1s"]);
    assert_eq!(second.code, 75, "{second:?}");
    assert!(
        second.stderr.contains("still running (since ")
            && second.stderr.contains(&format!("pid {})", first.id()))
            && second.stderr.contains("after waiting 1s for it"),
        "{second:?}"
    );
    assert!(
        !second.stderr.contains("use --wait-lock to wait"),
        "{second:?}"
    );
    signal(first.id(), "KILL");
    first.wait().unwrap();
    for pid in read_pids(&env.path("pid")) {
        signal(pid, "KILL");
    }
}

#[test]
fn refusals_say_what_and_why_in_plain_words() {
    let env = Env::new();
    let cron = env.run(&["cron", "nosuch.yaml", "--schedule", "@daily"]);
    assert_eq!(cron.code, 2, "{cron:?}");
    assert!(
        cron.stderr
            .contains("nosuch.yaml: cannot read job file: no such file"),
        "{cron:?}"
    );
    assert!(!cron.stderr.contains("os error"), "{cron:?}");
    // -q chooses what is shown: with --output it is a usage error, and nothing runs.
    env.write("jobs.yaml", "jobs:\n  - touch ran\n");
    let quiet = env.run(&["-q", "--output", "all", "jobs.yaml"]);
    assert_eq!(quiet.code, 2, "{quiet:?}");
    assert!(
        quiet.stderr.contains("--quiet") && quiet.stderr.contains("--output"),
        "{quiet:?}"
    );
    assert!(!env.path("ran").exists());
}

#[test]
fn the_subprocess_example_prints_returncode_as_python_does() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_orchestrate"));
    let example = bin.parent().unwrap().join("examples/subprocess_run");
    // Built from the current source: `cargo test --test integration` builds no example, and
    // one left from an earlier build would be tested instead.
    // Without the variables cargo gave this test, which would make it build everything anew.
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME")
            || (name.starts_with("RUST") && !name.starts_with("RUSTUP"))
        {
            cargo.env_remove(&*name);
        }
    }
    let built = cargo
        .args([
            "build",
            "-q",
            "--example",
            "subprocess_run",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .status()
        .expect("cargo build --example");
    assert!(built.success());
    let out = std::process::Command::new(&example)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CompletedProcess(args=['df', '-h', '/'], returncode=0)"),
        "{text}"
    );
    assert!(text.contains("(returncode=None)"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}
