//! A job file with mistakes: every independent one is reported at once, each with its file,
//! line and column, and a file that is not YAML at all gets a plain message.

use crate::helpers::Env;

#[test]
fn a_cargo_toml_given_as_the_job_file_is_refused_with_its_line_in_plain_words() {
    let env = Env::new();
    let toml = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    std::fs::copy(&toml, env.path("Cargo.toml")).unwrap();
    for args in [&["Cargo.toml"][..], &["check", "Cargo.toml"][..]] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.starts_with(
                "error: Cargo.toml:2:1: this line does not continue the YAML above it: is this a job file?\n"
            ),
            "{r:?}"
        );
        assert!(r.stderr.contains(" 2 | name = \"orchestrate\""), "{r:?}");
        assert!(!r.stderr.contains("deserializ"), "serde's words: {r:?}");
    }
}

#[test]
fn every_bad_job_entry_is_reported_not_only_the_first() {
    let env = Env::new();
    let yaml = "jobs:\n  - name: a\n    command: x\n    timout: 1s\n  - name: ok\n    command: x\n  - name: b\n    command: x\n    timeout: banana\n";
    for args in [&["jobs.yaml"][..], &["check", "jobs.yaml"][..]] {
        env.write("jobs.yaml", yaml);
        let r = env.run(args);
        assert_eq!(r.code, 2, "{r:?}");
        let heads: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(heads.len(), 2, "{r:?}");
        assert!(
            heads[0].starts_with("error: jobs.yaml:4:5: unknown key `timout` (in job `a`)"),
            "{r:?}"
        );
        assert!(
            heads[1].starts_with("error: jobs.yaml:9:14: invalid timeout `banana`"),
            "{r:?}"
        );
        assert!(!env.state().exists(), "{r:?}");
    }
}

#[test]
fn errors_found_while_planning_are_reported_for_every_job() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: a\n    command: \"echo 'oops\"\n  - name: b\n    shell: ''\n  - name: c\n    command: 'touch ran'\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.starts_with("error: jobs.yaml:3:14: "), "{r:?}");
    assert!(
        r.stderr
            .contains("\n\nerror: jobs.yaml:5:12: the shell script is empty (in job `b`)\n"),
        "{r:?}"
    );
    assert!(!env.path("ran").exists(), "a job ran: {r:?}");
}

#[test]
fn at_most_twenty_errors_are_shown_and_the_rest_counted() {
    let env = Env::new();
    let mut yaml = String::from("jobs:\n");
    for i in 0..25 {
        yaml.push_str(&format!("  - name: j{i}\n    command: x\n    timout: 1s\n"));
    }
    let r = env.run_jobs(&yaml, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    let heads: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(heads.len(), 21, "{r:?}");
    assert!(heads[19].contains("(in job `j19`)"), "{r:?}");
    assert_eq!(
        heads[20], "error: jobs.yaml: 5 more errors not shown; fix these first",
        "{r:?}"
    );
}
