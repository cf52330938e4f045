//! The settings of a run resolved from flags and the job file: conflicting flags are refused
//! before anything runs, and a flag given wins over the job file.

use crate::helpers::Env;

const YAML: &str = "jobs:\n  - name: a\n    shell: 'touch marker; exit 1'\n  - name: b\n    shell: 'touch marker'\n";

#[test]
fn fail_fast_with_on_failure_is_a_usage_error() {
    let env = Env::new();
    for args in [
        &["--fail-fast", "--on-failure", "continue"][..],
        &["run", "--on-failure", "stop", "--fail-fast"][..],
    ] {
        env.write("jobs.yaml", YAML);
        let mut all = args.to_vec();
        all.push("jobs.yaml");
        let r = env.run(&all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{r:?}");
        assert!(r.stderr.contains("--fail-fast"), "{r:?}");
        assert!(r.stderr.contains("--on-failure"), "{r:?}");
        assert!(r.stderr.contains("cannot be used with"), "{r:?}");
        assert!(!env.path("marker").exists(), "{args:?}: a job ran");
        assert!(!env.state().exists(), "{args:?}: the store was touched");
    }
}

#[test]
fn on_failure_flag_overrides_the_job_file() {
    let env = Env::new();
    // The job file says stop; the flag says continue, so `b` runs after `a` failed.
    let r = env.run_jobs(
        &format!("on_failure: stop\n{YAML}"),
        &["-j", "1", "--on-failure", "continue", "--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    assert_eq!(
        crate::helpers::Run::record(&recs, "b")["status"],
        "succeeded"
    );
}
