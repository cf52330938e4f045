//! `--resume` of a fan-out fed by a pipe: the pipe is read again, kept on disk (a pipe cannot
//! be read twice, and each earlier record is compared with the job its item makes now), and
//! only what failed or changed runs.

use std::io::Write;
use std::process::Stdio;

use crate::helpers::{Env, Run};

const FAN: &str =
    "jobs:\n  - name: z\n    for_each: {file: /dev/stdin}\n    shell: 'test {item} != 5'\n";

/// Runs the fan with `input` on its stdin, and `args`.
fn fed(env: &Env, input: &[u8], args: &[&str]) -> Run {
    let mut child = env
        .cmd()
        .arg("jobs.yaml")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

fn items(k: impl Iterator<Item = String>) -> Vec<u8> {
    k.map(|s| s + "\n").collect::<String>().into_bytes()
}

#[test]
fn resume_of_a_piped_fan_out_reruns_what_failed_or_changed_and_carries_the_rest() {
    let env = Env::new();
    env.write("jobs.yaml", FAN);
    let first = fed(
        &env,
        &items((1..=40).map(|k| k.to_string())),
        &["-q", "-j", "2"],
    );
    assert_eq!(first.code, 1, "item 5 fails: {first:?}");
    // The same items again, but the 8th is another: z[7]'s job is not the one that succeeded.
    let again = items((1..=40).map(|k| if k == 8 { "80".into() } else { k.to_string() }));
    let r = fed(&env, &again, &["--resume", "last", "--json", "-j", "2"]);
    assert_eq!(r.code, 1, "item 5 fails again: {r:?}");
    assert_eq!(r.json().len(), 2, "only what ran is printed: {r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), 40, "{r:?}");
    let ran: Vec<&str> = recs
        .iter()
        .filter(|r| r["carried_from"].is_null())
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["z[4]", "z[7]"], "{r:?}");
    assert_eq!(Run::record(&recs, "z[7]")["args"][2], "test 80 != 5");
    assert_eq!(Run::record(&recs, "z[7]")["status"], "succeeded");
    // Nothing of the kept items is left behind in the state dir.
    let held = crate::helpers::files_holding(&env.state(), "80");
    assert!(
        held.iter().all(|p| !p.to_string_lossy().contains("spool")),
        "{held:?}"
    );
}

#[test]
fn a_bad_line_of_a_resumed_pipe_is_named_by_the_pipe_and_its_line() {
    let env = Env::new();
    env.write("jobs.yaml", FAN);
    let first = fed(&env, b"1\n2\n3\n", &["-q"]);
    assert_eq!(first.code, 0, "{first:?}");
    let r = fed(
        &env,
        b"1\n2\n\xff\xfe\n4\n",
        &["--resume", "last", "--json"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    let bad = Run::record(&recs, "z[2]");
    assert_eq!(bad["status"], "spawn_error", "{bad}");
    assert_eq!(
        bad["error"], "/dev/stdin:3: the line is not UTF-8 text",
        "{bad}"
    );
    assert_eq!(Run::record(&recs, "z[3]")["status"], "succeeded");
    assert!(!Run::record(&recs, "z[0]")["carried_from"].is_null());
}

#[test]
fn resume_of_a_huge_piped_fan_out_holds_none_of_its_jobs() {
    // Made up front, as --resume of a pipe did, 100,000 jobs took about 150 MB.
    const HUGE: usize = 100_000;
    let env = Env::new();
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: z\n    for_each: {file: /dev/stdin}\n    shell: 'if [ {item} -le 3 ]; then exit 0; fi; echo $PPID >> pids; sleep 30'\n",
    );
    let first = fed(&env, b"1\n2\n3\n", &["-q"]);
    assert_eq!(first.code, 0, "{first:?}");
    let (mut c, rss) = crate::streaming::timed(&env, &["jobs.yaml", "--resume", "last", "-j", "2"]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&items((1..=HUGE).map(|k| k.to_string())));
    });
    assert_eq!(
        crate::streaming::interrupt_at(&env, &mut child, 2),
        Some(130)
    );
    feeder.join().unwrap();
    let counts = env.run(&["runs", "--json"]).json()[0]["counts"].clone();
    // The two running and the item read ahead are cancelled; lines not read are no jobs, as
    // for any items file.
    assert_eq!(counts["succeeded"], 3, "carried: {counts}");
    assert!(counts["cancelled"].as_u64() >= Some(2), "{counts}");
    if let Some(mb) = rss.as_deref().and_then(crate::streaming::peak_mb) {
        assert!(mb < 100, "--resume of a pipe of {HUGE} items took {mb} MB");
    }
}
