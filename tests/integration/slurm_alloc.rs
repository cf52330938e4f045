//! Slurm jobs of a run as steps of one allocation, on real 3-node clusters (each test its own,
//! so that the jobs counted are the test's alone): one Slurm job for a fan-out, a fan-out
//! larger than the controller's MaxJobCount, steps spread over the nodes, a step's timeout,
//! and the allocation given back when the run ends, is interrupted or is killed.

use std::time::Duration;

use crate::helpers::{Env, Run, assert_gone, read_pids, signal, wait_for};
use crate::scale_out::{Exports, cluster_cmd, own_daemon, run_with, spawn_with};

/// The Slurm jobs cluster `e` holds or held lately (ended ones are kept for `MinJobAge`):
/// (id, name, state).
fn slurm_jobs(e: &Exports) -> Vec<(String, String, String)> {
    let o = cluster_cmd(e, "squeue")
        .args(["-h", "-t", "all", "-o", "%i|%j|%T"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split('|');
            Some((
                p.next()?.trim().to_string(),
                p.next()?.to_string(),
                p.next()?.to_string(),
            ))
        })
        .collect()
}

/// Slurm job `id` no longer holds anything (ended, not completing).
fn ended(e: &Exports, id: &str) -> bool {
    slurm_jobs(e)
        .iter()
        .filter(|(i, _, _)| i == id)
        .all(|(_, _, st)| {
            !["RUNNING", "PENDING", "COMPLETING", "CONFIGURING"].contains(&st.as_str())
        })
}

fn job_records(r: &Run) -> Vec<serde_json::Value> {
    r.json()
        .into_iter()
        .filter(|r| r["job"].is_string())
        .collect()
}

/// The one Slurm job id every record names (fails when they name more than one).
fn one_slurm_job(recs: &[serde_json::Value]) -> String {
    let ids: std::collections::BTreeSet<String> = recs
        .iter()
        .map(|r| r["slurm_job_id"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one Slurm job for all the steps: {ids:?}");
    ids.into_iter().next().unwrap()
}

#[test]
fn a_fan_out_runs_as_steps_of_one_slurm_job_spread_over_the_nodes() {
    let e = own_daemon!("mslurm-alloc");
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: s\n    for_each: {range: [1, 60]}\n    shell: 'sleep 0.3; echo $SLURMD_NODENAME $SLURM_JOB_ID.$SLURM_STEP_ID'\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 60, "{r:?}");
    let id = one_slurm_job(&recs);
    let mut nodes = std::collections::BTreeSet::new();
    let mut steps = std::collections::BTreeSet::new();
    for rec in &recs {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        let out = rec["stdout"].as_str().unwrap_or_default().to_string();
        let (node, step) = out.trim().split_once(' ').expect("node and step");
        assert_eq!(rec["host"], node, "the record names the step's node: {rec}");
        assert!(step.starts_with(&format!("{id}.")), "{rec}");
        nodes.insert(node.to_string());
        steps.insert(step.to_string());
    }
    assert_eq!(steps.len(), 60, "a step each: {steps:?}");
    // 5 CPUs in all (2 + 1 + 2): an allocation of five tasks takes every node.
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
    let jobs = slurm_jobs(e);
    assert_eq!(jobs.len(), 1, "60 jobs were one Slurm job: {jobs:?}");
    assert!(jobs[0].1.starts_with("orchestrate-"), "{jobs:?}");
    assert!(
        wait_for(Duration::from_secs(30), || ended(e, &id)),
        "the allocation was given back: {:?}",
        slurm_jobs(e)
    );
}

#[test]
fn a_fan_out_larger_than_max_job_count_succeeds() {
    let e = own_daemon!("mslurm-max20");
    let env = Env::new();
    // The controller takes at most 20 jobs, ended ones included (MinJobAge): 60 Slurm jobs
    // of their own were refused from the 21st on.
    let yaml = "executor: slurm\njobs:\n  - name: t\n    for_each: {range: [1, 60]}\n    command: 'true'\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "4"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 60, "{r:?}");
    assert!(recs.iter().all(|r| r["status"] == "succeeded"), "{recs:#?}");
    one_slurm_job(&recs);
}

#[test]
fn a_step_times_out_alone_and_the_allocation_is_given_back() {
    let e = own_daemon!("mslurm-steptime");
    let env = Env::new();
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: slow\n    timeout: 2s\n    kill_after: 1s\n    shell: 'echo $$ >> {p}; echo started >&2; sleep 60'\n  - name: quick\n    for_each: [1, 2, 3]\n    shell: 'sleep 3; echo ok'\n",
        p = pids.display()
    );
    let r = run_with(&env, e, &yaml, &["--json", "-j", "4"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = job_records(&r);
    let id = one_slurm_job(&recs);
    let slow = Run::record(&recs, "slow");
    assert_eq!(slow["status"], "timed_out", "{slow}");
    assert_eq!(slow["stderr"], "started\n", "{slow}");
    assert!(slow["notes"].to_string().contains("CANCELLED AT"), "{slow}");
    for rec in recs.iter().filter(|r| r["job"] != "slow") {
        assert_eq!(rec["status"], "succeeded", "the other steps go on: {rec}");
        assert_eq!(rec["stdout"], "ok\n", "{rec}");
    }
    assert_gone(&read_pids(&pids), "the timed-out step's processes");
    assert!(
        wait_for(Duration::from_secs(30), || ended(e, &id)),
        "the allocation was given back: {:?}",
        slurm_jobs(e)
    );
}

/// Starts a run of four steps that sleep, waits until they all run, sends `sig` to the run
/// and returns its end, the steps' pids and the allocation's id.
fn stop_a_run(e: &Exports, env: &Env, sig: &str) -> (Run, Vec<u32>, String) {
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4]\n    shell: 'echo $$ >> {p}; sleep 60'\n",
        p = pids.display()
    );
    let child = spawn_with(env, e, &yaml, &["--json", "-j", "4"]);
    let started = wait_for(Duration::from_secs(60), || read_pids(&pids).len() == 4);
    assert!(started, "the steps never all started");
    let running: Vec<_> = slurm_jobs(e)
        .into_iter()
        .filter(|(_, _, st)| st == "RUNNING")
        .collect();
    assert_eq!(running.len(), 1, "four steps of one Slurm job: {running:?}");
    signal(child.id(), sig);
    let r = Run::from(child.wait_with_output().unwrap());
    (r, read_pids(&pids), running[0].0.clone())
}

#[test]
fn an_interrupted_or_killed_run_leaves_no_allocation() {
    let e = own_daemon!("mslurm-stopalloc");
    let env = Env::new();
    let (r, pids, id) = stop_a_run(e, &env, "INT");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 4, "{r:?}");
    assert!(recs.iter().all(|r| r["status"] == "cancelled"), "{recs:#?}");
    assert_eq!(one_slurm_job(&recs), id);
    assert!(
        ended(e, &id),
        "the run gave its allocation back before it ended: {:?}",
        slurm_jobs(e)
    );
    assert_gone(&pids, "the cancelled steps' processes");

    // SIGKILL: the run cannot give anything back; the allocation goes with its process.
    let env = Env::new();
    let (_, pids, id) = stop_a_run(e, &env, "KILL");
    assert!(
        wait_for(Duration::from_secs(30), || ended(e, &id)),
        "the allocation of a killed run was given back: {:?}",
        slurm_jobs(e)
    );
    assert!(
        wait_for(Duration::from_secs(30), || pids
            .iter()
            .all(|p| !crate::helpers::alive(*p))),
        "the steps of a killed run ended with its allocation"
    );
}

#[test]
fn an_allocation_cancelled_mid_run_is_replaced_for_the_jobs_left() {
    let e = own_daemon!("mslurm-realloc");
    let env = Env::new();
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4, 5, 6]\n    shell: 'echo $$ >> {p}; sleep 2; echo ok'\n",
        p = pids.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json", "-j", "2"]);
    assert!(
        wait_for(Duration::from_secs(60), || read_pids(&pids).len() >= 2),
        "the first steps never started"
    );
    let first: Vec<_> = slurm_jobs(e)
        .into_iter()
        .filter(|(_, _, st)| st == "RUNNING")
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    // An admin (or a time limit) ends the allocation under the run.
    let o = cluster_cmd(e, "scancel").arg(&first[0].0).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let r = Run::from(child.wait_with_output().unwrap());
    let recs = job_records(&r);
    assert_eq!(recs.len(), 6, "{r:?}");
    let ok: Vec<_> = recs.iter().filter(|r| r["status"] == "succeeded").collect();
    assert!(
        ok.len() >= 4,
        "the jobs left run in a new allocation: {recs:#?}"
    );
    for rec in &ok {
        assert_ne!(rec["slurm_job_id"], first[0].0.as_str(), "{rec}");
    }
    let later = slurm_jobs(e);
    assert!(later.len() >= 2, "{later:?}");
}
