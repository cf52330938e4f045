//! Bad job files: each is a clear error naming file:line:column, exit 2, nothing started,
//! nothing written to the store.

use crate::helpers::Env;

/// Runs `yaml` (which also holds a job that would create `marker`) and checks the error.
fn rejects(yaml: &str, expected: &[&str]) {
    let env = Env::new();
    let r = env.run_jobs(yaml, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    for e in expected {
        assert!(r.stderr.contains(e), "expected {e:?} in:\n{}", r.stderr);
    }
    assert!(!env.path("marker").exists(), "a job ran");
    assert!(!env.state().exists(), "the store was touched");
}

const MARK: &str = "  - touch marker\n";

#[test]
fn unknown_key_with_suggestion() {
    rejects(
        &format!("jobs:\n{MARK}  - name: backup\n    command: tar\n    timout: 10s\n"),
        &[
            "jobs.yaml:5:5: unknown key `timout` (in job `backup`)",
            "did you mean `timeout`?",
            "5 |     timout: 10s",
        ],
    );
}

#[test]
fn unknown_top_level_key() {
    rejects(
        &format!("concurency: 2\njobs:\n{MARK}"),
        &[
            "jobs.yaml:1:1: unknown key `concurency`",
            "did you mean `concurrency`?",
        ],
    );
}

#[test]
fn wrong_type_for_timeout() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: true\n    timeout: [1]\n"),
        &["jobs.yaml:5:14:", "invalid type: sequence", "(in job `x`)"],
    );
}

#[test]
fn invalid_duration_text() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: true\n    timeout: soon\n"),
        &[
            "jobs.yaml:5:14:",
            "invalid timeout `soon`",
            "write a duration like `30s`",
            "or `auto`",
        ],
    );
}

#[test]
fn negative_timeout() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: true\n    timeout: -5\n"),
        &["jobs.yaml:5:14:", "duration `-5` is negative"],
    );
}

#[test]
fn empty_command() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: ''\n"),
        &["jobs.yaml:3:5:", "the command is empty", "(in job `x`)"],
    );
}

#[test]
fn empty_argv_list() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: []\n"),
        &["jobs.yaml:4:14:", "the command is empty"],
    );
}

#[test]
fn duplicate_names() {
    rejects(
        &format!("jobs:\n{MARK}  - name: a\n    command: true\n  - name: a\n    command: false\n"),
        &[
            "jobs.yaml:5:11: duplicate job name `a` (first defined on line 3)",
            "rename one",
        ],
    );
}

#[test]
fn unbalanced_quote() {
    rejects(
        &format!("jobs:\n{MARK}  - echo 'unterminated\n"),
        &[
            "jobs.yaml:3:5:",
            "a quote is not closed",
            "give the words as a list",
        ],
    );
}

#[test]
fn missing_file() {
    let env = Env::new();
    let r = env.run(&["nope.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("nope.yaml: cannot read job file: no such file"),
        "{r:?}"
    );
    assert!(!env.state().exists());
}

#[test]
fn invalid_yaml_syntax() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n   command: [unclosed\n"),
        &["jobs.yaml:4:4: did not find expected '-' indicator"],
    );
}

#[test]
fn tab_indentation() {
    rejects(&format!("jobs:\n{MARK}\t- true\n"), &["jobs.yaml:3:"]);
}

#[test]
fn command_and_shell_together() {
    rejects(
        &format!("jobs:\n{MARK}  - name: both\n    command: ls\n    shell: ls | wc\n"),
        &[
            "jobs.yaml:3:5:",
            "either `command:` or `shell:`, not both",
            "(in job `both`)",
        ],
    );
}

#[test]
fn neither_command_nor_shell() {
    rejects(
        &format!("jobs:\n{MARK}  - name: idle\n    timeout: 1s\n"),
        &["jobs.yaml:3:5:", "needs `command:` or `shell:`"],
    );
}

#[test]
fn empty_file() {
    rejects("", &["jobs.yaml: is empty"]);
    rejects("# only a comment\n", &["jobs.yaml: is empty"]);
}

#[test]
fn no_jobs_key() {
    rejects("concurrency: 2\n", &["jobs.yaml:1:1: missing key `jobs`"]);
}

#[test]
fn empty_job_list() {
    rejects("jobs: []\n", &["has no jobs"]);
}

#[test]
fn zero_concurrency() {
    rejects(
        &format!("concurrency: 0\njobs:\n{MARK}"),
        &["jobs.yaml:1:14:", "at least 1"],
    );
}

#[test]
fn unknown_output_target() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: true\n    stdout: out.log\n"),
        &[
            "jobs.yaml:5:13:",
            "unknown output target `out.log`",
            "{file: out.log}",
        ],
    );
}

#[test]
fn stdout_to_stdout() {
    rejects(
        &format!("jobs:\n{MARK}  - name: x\n    command: true\n    stdout: stdout\n"),
        &["jobs.yaml:5:13:", "for `stderr:`"],
    );
}

#[test]
fn job_name_with_slash_or_newline() {
    rejects(
        &format!("jobs:\n{MARK}  - name: ../escape\n    command: true\n"),
        &["jobs.yaml:3:11:", "invalid job name", "contains `/`"],
    );
    rejects(
        &format!("jobs:\n{MARK}  - name: \"two\\nlines\"\n    command: true\n"),
        &["jobs.yaml:3:11:", "control character"],
    );
}

#[test]
fn a_job_that_is_a_number() {
    rejects(
        &format!("jobs:\n{MARK}  - 42\n"),
        &["jobs.yaml:3:5:", "expected a command line"],
    );
}

#[test]
fn non_utf8_file() {
    let env = Env::new();
    std::fs::write(env.path("jobs.yaml"), b"jobs:\n  - echo \xff\n").unwrap();
    let r = env.run(&["jobs.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("jobs.yaml:2:10: the file is not valid UTF-8"),
        "{r:?}"
    );
}

#[test]
fn alias_bomb() {
    let mut yaml = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for n in names {
        yaml.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = n;
    }
    yaml.push_str(&format!("jobs:\n{MARK}"));
    rejects(&yaml, &["jobs.yaml:"]);
}

#[test]
fn check_reports_the_same_errors() {
    let env = Env::new();
    env.write("jobs.yaml", "jobs:\n  - name: x\n    comand: true\n");
    let r = env.run(&["check", "jobs.yaml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("did you mean `command`?"), "{r:?}");
}
