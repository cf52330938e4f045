//! A run's pack as a reader can find it: damaged, missing, not private, or not yet named by a
//! stored record. None of these reads as an empty output or a short listing.

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::{Env, wait_for};

/// Runs one job `a` that prints `mine` and returns the path of its run's pack.
fn one_packed_run(env: &Env) -> PathBuf {
    let r = env.run_jobs("jobs:\n  - name: a\n    command: echo mine\n", &["-q"]);
    assert_eq!(r.code, 0, "{r:?}");
    let id = env.run(&["runs", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pack = env.state().join("runs").join(format!("{id}.pack"));
    assert!(pack.is_file(), "no pack at {}", pack.display());
    pack
}

#[test]
fn a_missing_pack_is_an_error_in_logs_and_show_json_not_an_empty_output() {
    let env = Env::new();
    let pack = one_packed_run(&env);
    std::fs::remove_file(&pack).unwrap();
    let r = env.run(&["logs", "a"]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("missing"), "{r:?}");
    let r = env.run(&["show", "--json"]);
    assert_eq!(r.code, 70, "a listing cut short must not succeed: {r:?}");
    assert!(r.stderr.contains("`a`"), "{r:?}");
}

#[test]
fn a_pack_that_is_a_folder_stops_show_json_with_an_error() {
    let env = Env::new();
    let pack = one_packed_run(&env);
    std::fs::remove_file(&pack).unwrap();
    std::fs::create_dir(&pack).unwrap();
    let r = env.run(&["show", "--json"]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("is not read from"), "{r:?}");
}

#[test]
fn a_pack_writable_by_others_is_not_read() {
    let env = Env::new();
    let pack = one_packed_run(&env);
    std::fs::set_permissions(&pack, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let r = env.run(&["logs", "a"]);
    assert_eq!(r.code, 70, "{r:?}");
    assert!(r.stderr.contains("writable by others"), "{r:?}");
    assert!(!r.stdout.contains("mine"), "{r:?}");
}

#[test]
fn output_copied_into_the_pack_stays_readable_when_the_run_is_killed_before_its_record() {
    let env = Env::new();
    // `r` ends after its running record is stored; `hold` keeps the run going.
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: r\n    shell: 'sleep 1; echo payload'\n  - name: hold\n    shell: 'sleep 4'\n",
    );
    let mut child = env.spawn(&["jobs.yaml", "-q", "-j", "2"]);
    let runs = env.state().join("runs");
    let packed = || {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".pack")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
    };
    assert!(wait_for(Duration::from_secs(20), packed), "no pack");
    // Before the final record's commit (finished records wait up to 200 ms for company).
    child.kill().unwrap();
    let _ = child.wait();
    let r = env.run(&["logs", "r"]);
    assert_eq!(r.stdout, "payload\n", "{r:?}");
}
