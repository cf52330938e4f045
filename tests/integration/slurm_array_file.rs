//! Background Slurm fan-outs over a file's items as job arrays, against a real 3-node
//! cluster: a large file read as it goes, and a pipe, never one Slurm job per line.

use std::io::Write;

use crate::helpers::{Env, Run};
use crate::scale_out::{Exports, cluster_cmd, inspect_with, own_daemon, run_with};
use crate::slurm_array::{arrays_of, jobs_only, reset_rpcs, submits, text};
use crate::slurm_cluster::rpcs;

const FAN: &str = "executor: slurm\njobs:\n  - name: z\n    for_each: {file: ITEMS}\n    background: true\n    shell: 'echo {item} {slot}=$ORCHESTRATE_SLOT'\n";

#[test]
fn a_fan_out_over_a_large_items_file_goes_as_arrays_of_a_thousand_tasks() {
    let e = own_daemon!("mslurm-array-file");
    let env = Env::new();
    // Over 64 KiB: read as the jobs are dispatched, its length unknown when the run starts.
    let lines: Vec<String> = (0..1002)
        .map(|k| format!("item-{k:04}-{}", "x".repeat(60)))
        .collect();
    env.write("items.txt", &(lines.join("\n") + "\n"));
    reset_rpcs(e);
    let r = run_with(
        &env,
        e,
        &FAN.replace("ITEMS", "items.txt"),
        &["--json", "-j", "8"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 1002);
    assert!(
        recs.iter().all(|r| r["status"] == "background"),
        "{}",
        recs[0]
    );
    let (arrays, ids) = arrays_of(&recs);
    assert_eq!(arrays.len(), 2, "{:?}", &ids[..5]);
    assert!(ids.iter().all(|i| i.contains('_')), "{:?}", &ids[..5]);
    assert_eq!(submits(e), 2, "{:?}", rpcs(e));
    let z = Run::record(&recs, "z[1000]");
    assert_eq!(text(&z["slurm_job_id"]), format!("{}_0", arrays[1]), "{z}");
    // A task of the second array runs its own item (the first array's 1000 are cancelled).
    let c = cluster_cmd(e, "scancel").arg(&arrays[0]).status().unwrap();
    assert!(c.success());
    let w = inspect_with(&env, e, &["wait", "--timeout", "120s", "z[1001]"]);
    assert_eq!(w.code, 0, "{w:?}");
    let show = inspect_with(&env, e, &["show", "--job", "z[1001]", "--json"]).json();
    // `{slot}` is filled in as ORCHESTRATE_SLOT is: the slot of the job that submitted the array.
    let s = &z["slot"];
    let want = format!("{} {s}={s}\n", lines[1001]);
    assert_eq!(show[0]["stdout"], want, "{show:?}");
}

/// Runs the fan over `/dev/stdin`, fed `1..=n` by this test, against `e`.
fn run_on_stdin(env: &Env, e: &Exports, n: usize) -> Run {
    env.write("jobs.yaml", &FAN.replace("ITEMS", "/dev/stdin"));
    let mut child = env
        .cmd()
        .envs(e.iter().map(|(k, v)| (k, v)))
        .args(["jobs.yaml", "--json", "-j", "8"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for k in 1..=n {
        writeln!(stdin, "{k}").unwrap();
    }
    drop(stdin);
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn a_fan_out_over_a_pipe_goes_as_arrays_of_the_items_that_came() {
    let e = own_daemon!("mslurm-array-pipe");
    let env = Env::new();
    reset_rpcs(e);
    let r = run_on_stdin(&env, e, 300);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 300);
    assert!(
        recs.iter().all(|r| r["status"] == "background"),
        "{}",
        recs[0]
    );
    let (arrays, ids) = arrays_of(&recs);
    // A job per line would be 300 submissions; the items that came together go as one.
    let n = submits(e);
    assert!(n <= 10, "{n} submissions: {:?}", rpcs(e));
    assert!(arrays.len() as u64 <= n, "{arrays:?}");
    assert!(
        ids.iter().filter(|i| i.contains('_')).count() >= 290,
        "{ids:?}"
    );
    let _ = cluster_cmd(e, "scancel").args(&arrays).status();
}
