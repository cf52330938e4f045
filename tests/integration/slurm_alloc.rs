//! Slurm jobs of a run in one allocation, on worker steps that run job after job, on real
//! 3-node clusters (each test its own, so that the jobs and steps counted are the test's
//! alone): one Slurm job and a handful of steps for a fan-out, each record the job's own, a
//! fan-out larger than the controller's MaxJobCount, a timeout on a worker, a node dying
//! under one (`dying`), and the allocation given back when the run ends, is interrupted or
//! is killed.

use std::time::Duration;

use crate::helpers::{Env, Run, assert_gone, read_pids, signal, wait_for};
use crate::scale_out::{Exports, cluster_cmd, own_daemon, run_with, spawn_with};

mod dying;

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

pub(crate) fn job_records(r: &Run) -> Vec<serde_json::Value> {
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

/// Steps the controller made on cluster `e` (each worker is one).
pub(crate) fn steps_made(e: &Exports) -> u64 {
    crate::slurm_cluster::rpcs(e)
        .get("REQUEST_JOB_STEP_CREATE")
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_fan_out_runs_on_a_handful_of_worker_steps_and_each_record_is_the_jobs() {
    let e = own_daemon!("mslurm-alloc");
    let env = Env::new();
    // Item i: stdout and stderr of its own (stderr without a newline), exit i % 4, and every
    // seventh killed by a signal.
    let yaml = "executor: slurm\njobs:\n  - name: s\n    for_each: {range: [1, 60]}\n    shell: 'echo out{item} $SLURMD_NODENAME $SLURM_JOB_ID.$SLURM_STEP_ID; printf err{item} >&2; [ $(({item} % 7)) = 0 ] && kill -9 $$; exit $(({item} % 4))'\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "5"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 60, "{r:?}");
    let id = one_slurm_job(&recs);
    let mut nodes = std::collections::BTreeSet::new();
    let mut steps = std::collections::BTreeSet::new();
    for rec in &recs {
        let i: u64 = rec["job"].as_str().unwrap()[2..]
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let out = rec["stdout"].as_str().unwrap_or_default().to_string();
        let (head, rest) = out.split_once(' ').expect("out, node and step");
        assert_eq!(head, format!("out{i}"), "{rec}");
        let (node, step) = rest.trim().split_once(' ').expect("node and step");
        assert_eq!(
            rec["host"], node,
            "the record names the worker's node: {rec}"
        );
        assert!(step.starts_with(&format!("{id}.")), "{rec}");
        assert_eq!(
            rec["stderr"],
            format!("err{i}"),
            "nothing but the job's: {rec}"
        );
        assert_eq!(rec["notes"], serde_json::json!([]), "{rec}");
        let code = if i.is_multiple_of(7) { 137 } else { i % 4 };
        assert_eq!(rec["returncode"], code, "{rec}");
        let ok = if code == 0 { "succeeded" } else { "failed" };
        assert_eq!(rec["status"], ok, "{rec}");
        nodes.insert(node.to_string());
        steps.insert(step.to_string());
    }
    // 5 CPUs in all (2 + 1 + 2): an allocation of five tasks takes every node.
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
    assert!(steps.len() <= 5, "a worker step per task: {steps:?}");
    let made = steps_made(e);
    assert!(made <= 5, "60 jobs made {made} steps, not one each");
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
fn a_job_timing_out_on_a_worker_dies_whole_and_the_worker_runs_the_next() {
    let e = own_daemon!("mslurm-steptime");
    let env = Env::new();
    let (pids, step) = (env.path("pids"), env.path("step"));
    // The slow job leaves a child that ignores TERM: the KILL after it takes that too.
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: slow\n    timeout: 2s\n    kill_after: 1s\n    shell: 'echo $SLURM_STEP_ID > {s}; echo $$ >> {p}; (trap \"\" TERM; sleep 60) & echo $! >> {p}; echo started >&2; sleep 60'\n  - name: quick\n    for_each: [1, 2, 3, 4]\n    shell: 'sleep 3; echo ok $SLURM_STEP_ID'\n",
        p = pids.display(),
        s = step.display()
    );
    let r = run_with(&env, e, &yaml, &["--json", "-j", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = job_records(&r);
    let id = one_slurm_job(&recs);
    let slow = Run::record(&recs, "slow");
    assert_eq!(slow["status"], "timed_out", "{slow}");
    assert_eq!(slow["stderr"], "started\n", "{slow}");
    assert_eq!(slow["returncode"], serde_json::Value::Null, "{slow}");
    assert_eq!(slow["signal"], 15, "{slow}");
    let step = std::fs::read_to_string(&step).unwrap().trim().to_string();
    let mut after = 0;
    for rec in recs.iter().filter(|r| r["job"] != "slow") {
        assert_eq!(rec["status"], "succeeded", "the other jobs go on: {rec}");
        if rec["stdout"] == format!("ok {step}\n") {
            after += 1;
        }
    }
    assert!(
        after >= 1,
        "the slow job's worker ran a job after it: {recs:#?}"
    );
    assert!(steps_made(e) <= 2, "two workers for the five jobs");
    assert_gone(&read_pids(&pids), "the timed-out job's processes");
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

#[test]
fn a_job_on_a_worker_gets_its_environment_directory_and_files() {
    let e = own_daemon!("mslurm-workenv");
    let env = Env::new();
    let sub = env.path("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let sub = sub.canonicalize().unwrap();
    let yaml = format!(
        "executor: slurm\ninherit_env: false\nenv: {{A: one}}\njobs:\n  - name: e\n    for_each: [1, 2, 3]\n    cwd: {d}\n    env: {{B: two}}\n    stderr: stdout\n    shell: 'echo \"$A $B {{item}} $(pwd) $SLURMD_NODENAME\"; [ -z \"$HOME\" ] && echo no home; echo err >&2'\n  - name: f\n    stdout: {{file: {o}}}\n    shell: 'echo to the file'\n",
        d = sub.display(),
        o = env.path("out.txt").display()
    );
    let r = run_with(&env, e, &yaml, &["--json", "-j", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 4, "{r:?}");
    one_slurm_job(&recs);
    for i in 1..=3 {
        let rec = Run::record(&recs, &format!("e[{i}]"));
        let node = rec["host"].as_str().unwrap_or_default();
        assert_eq!(
            rec["stdout"],
            format!("one two {i} {} {node}\nno home\nerr\n", sub.display()),
            "{rec}"
        );
        assert_eq!(rec["stderr"], "", "merged into stdout: {rec}");
    }
    let out = std::fs::read_to_string(env.path("out.txt")).unwrap();
    assert_eq!(out, "to the file\n");
    assert!(steps_made(e) <= 2, "two workers for the four jobs");
}

#[test]
fn a_job_killing_its_own_wrapper_on_a_worker_fails_by_itself_not_by_its_node() {
    let e = own_daemon!("mslurm-wrapkill");
    let env = Env::new();
    let mark = env.path("killed");
    // Item 2 kills the wrapper that would report its exit status, once: its worker and node
    // are fine, so that attempt is the job's own failure, retried as such, not moved.
    let yaml = format!(
        "executor: slurm\non_host_failure: retry_elsewhere\njobs:\n  - name: w\n    retries: 1\n    for_each: [1, 2, 3]\n    shell: 'if [ {{item}} = 2 ] && mkdir {m} 2>/dev/null; then kill -9 $PPID; sleep 1; fi; echo ok'\n",
        m = mark.display()
    );
    let r = run_with(&env, e, &yaml, &["--json", "-j", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = job_records(&r);
    let w = Run::record(&recs, "w[2]");
    assert_eq!(w["status"], "succeeded", "{w}");
    assert_eq!(w["attempts"], 2, "{w}");
    assert_eq!(w["earlier_attempts"][0]["host_failed"], false, "{w}");
    assert_eq!(w["flaky"], true, "its own attempt failed: {w}");
    assert!(
        !w["notes"]
            .to_string()
            .contains("run again on another worker"),
        "{w}"
    );
}
