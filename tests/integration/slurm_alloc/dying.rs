//! A node dying under a run's workers: the job that ran there fails (or runs again
//! elsewhere, with retries), a job handed to its worker that had not started yet runs on
//! another worker, and the other workers go on; every node dying ends the run.

use std::time::Duration;

use super::{job_records, steps_made};
use crate::helpers::{Env, Run, wait_for};
use crate::scale_out::{Exports, cluster_cmd, own_daemon, spawn_with};
use crate::slurm_cluster::{slurmd_pid, stat};

/// The pid of the job's shell that wrote `pid_file` once it is whole.
fn job_pid(pid_file: &std::path::Path) -> u32 {
    assert!(
        wait_for(Duration::from_secs(60), || std::fs::read_to_string(
            pid_file
        )
        .is_ok_and(|p| p.ends_with('\n'))),
        "no job started on n2"
    );
    let p = std::fs::read_to_string(pid_file).unwrap();
    p.trim().parse().unwrap()
}

/// `pid` and its ancestors up to the worker's loop, the child of the node's slurmstepd,
/// and that slurmstepd last.
fn up_to_slurmstepd(pid: u32) -> Vec<u32> {
    let mut chain = vec![pid];
    let mut p = pid;
    while std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "slurmstepd")
    {
        p = stat(p, 1);
        chain.push(p);
    }
    chain
}

fn kill(sig: &str, targets: &[String]) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .args(targets)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills node `node` of cluster `kind` under the job `task` runs: its slurmd, the worker's
/// slurmstepd and the processes down from it to the job, and the job's process group. From the
/// top down, so that no wrapper outlives its job to report the job's end.
fn kill_node_under(kind: &str, node: &str, task: u32) {
    let group = format!("-{}", stat(task, 2));
    let all: Vec<String> = std::iter::once(slurmd_pid(kind, node))
        .chain(up_to_slurmstepd(task).into_iter().rev())
        .map(|p| p.to_string())
        .chain([group])
        .collect();
    kill("KILL", &all);
}

/// The admin says `node` is down: srun hears of the node's failure at once.
fn set_down(e: &Exports, node: &str) {
    let o = cluster_cmd(e, "scontrol")
        .args([
            "update",
            &format!("nodename={node}"),
            "state=down",
            "reason=dead",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// The run's end, within 60 s; a run that does not end is killed and the test fails `why`.
fn ended(child: std::process::Child, why: &str) -> Run {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => Run::from(out),
        Err(_) => {
            crate::helpers::signal(pid, "KILL");
            panic!("the run never ended: {why}")
        }
    }
}

#[test]
fn a_node_dying_fails_the_job_on_it_and_the_other_workers_go_on() {
    let e = own_daemon!("mslurm-dying-workers");
    let env = Env::new();
    let mark = env.path("n2");
    // The first job on n2 waits there; the test then kills the node under it.
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: {{range: [1, 20]}}\n    shell: 'if [ $SLURMD_NODENAME = n2 ] && mkdir {m} 2>/dev/null; then echo $$ > {m}/pid; sleep 60; fi; sleep 0.5; echo ok $SLURMD_NODENAME'\n",
        m = mark.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json", "-j", "5"]);
    let task = job_pid(&mark.join("pid"));
    // n2 dies: its slurmd, the worker's slurmstepd and everything below it.
    kill_node_under("mslurm-dying-workers", "n2", task);
    let r = Run::from(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 20, "{r:?}");
    // Only the job running there fails: one handed to n2's worker as n2 died, which never
    // started, runs on another worker.
    let failed: Vec<_> = recs.iter().filter(|r| r["status"] != "succeeded").collect();
    assert_eq!(
        failed.len(),
        1,
        "only the job on the dead node fails: {failed:#?}"
    );
    let f = failed[0];
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["host"], "n2", "{f}");
    // The KILL reaches the job's own processes and n2's daemons together: either the worker
    // died first (no exit status: srun's words), or it lived to report the job's end by the
    // KILL (137, as for any job killed on a worker).
    if f["returncode"].is_null() {
        let why = f["error"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("srun ended") && why.contains("without the job's exit status"),
            "{f}"
        );
        // Cut short by its node, not by its own doing; srun's words are notes.
        assert_eq!(f["host_failed"], true, "{f}");
        assert!(!f["stderr"].to_string().contains("srun:"), "{f}");
    } else {
        assert_eq!(f["returncode"], 137, "{f}");
    }
    for rec in recs.iter().filter(|r| r["status"] == "succeeded") {
        assert_eq!(
            rec["stdout"],
            format!("ok {}\n", rec["host"].as_str().unwrap()),
            "{rec}"
        );
        assert_eq!(rec["stderr"], "", "{rec}");
        assert_eq!(rec["attempts"], 1, "{rec}");
    }
}

#[test]
fn a_job_handed_to_a_dying_nodes_worker_runs_on_another_worker() {
    let e = own_daemon!("mslurm-dying-queued");
    let env = Env::new();
    let mark = env.path("n2");
    // The first job on n2 waits there until the test has stopped its worker's loop, then
    // ends: the next job handed to that worker waits in its stdin, never started.
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: {{range: [1, 30]}}\n    shell: 'if [ $SLURMD_NODENAME = n2 ] && mkdir {m} 2>/dev/null; then echo $$ > {m}/pid; while [ ! -e {m}/go ]; do sleep 0.05; done; fi; sleep 0.5; echo ok $SLURMD_NODENAME'\n",
        m = mark.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json", "-j", "5"]);
    let chain = up_to_slurmstepd(job_pid(&mark.join("pid")));
    let (stepd, worker) = (chain[chain.len() - 1], chain[chain.len() - 2]);
    kill("STOP", &[worker.to_string()]);
    std::fs::write(mark.join("go"), "").unwrap();
    // The worker's stdin holds the next job's script.
    let stdin = std::fs::File::open(format!("/proc/{worker}/fd/0")).expect("the worker's stdin");
    assert!(
        wait_for(Duration::from_secs(30), || rustix::io::ioctl_fionread(
            &stdin
        )
        .is_ok_and(|n| n > 0)),
        "no job was handed to n2's worker after its first"
    );
    // n2 dies, and the admin says so: srun hears of the node's failure at once.
    let slurmd = slurmd_pid("mslurm-dying-queued", "n2");
    kill("KILL", &[slurmd, stepd, worker].map(|p| p.to_string()));
    set_down(e, "n2");
    let r = Run::from(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "every job ran and succeeded: {r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 30, "{r:?}");
    let mut moved = Vec::new();
    for rec in &recs {
        let host = rec["host"].as_str().unwrap_or_default();
        assert_eq!(rec["stdout"], format!("ok {host}\n"), "{rec}");
        assert_eq!(
            rec["stderr"], "",
            "nothing of the dead worker's srun: {rec}"
        );
        assert_eq!(rec["attempts"], 1, "a move is no attempt: {rec}");
        if rec["notes"] != serde_json::json!([]) {
            moved.push(rec);
        }
    }
    let on_n2 = recs.iter().filter(|r| r["host"] == "n2").count();
    assert_eq!(
        on_n2, 1,
        "n2's worker ran no job after its first: {recs:#?}"
    );
    assert_eq!(moved.len(), 1, "one job moved: {recs:#?}");
    let m = moved[0];
    assert_ne!(m["host"], "n2", "{m}");
    assert_eq!(
        m["notes"][0],
        "moved here after: its Slurm worker on n2 ended before the job started (Node failure on n2)",
        "{m}"
    );
    assert!(
        steps_made(e) <= 5,
        "the job moved to a worker that was there"
    );
}

/// Runs 20 jobs on cluster `kind` (`e`), the first on n2 held there while n2 dies under it,
/// with `settings` on top of the job file: that job runs again on another worker as its
/// second attempt, the first marked `host_failed` (so the job is not flaky), its first note
/// starting `note`, and every job succeeds.
fn dying_under_a_job_runs_it_again(kind: &str, e: &Exports, settings: &str, note: &str) {
    let env = Env::new();
    let mark = env.path("n2");
    let yaml = format!(
        "executor: slurm\n{settings}jobs:\n  - name: s\n    for_each: {{range: [1, 20]}}\n    shell: 'if [ $SLURMD_NODENAME = n2 ] && mkdir {m} 2>/dev/null; then echo $$ > {m}/pid; sleep 60; fi; sleep 0.5; echo ok $SLURMD_NODENAME'\n",
        m = mark.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json", "-j", "5"]);
    let task = job_pid(&mark.join("pid"));
    kill_node_under(kind, "n2", task);
    set_down(e, "n2");
    // A retry that waited for a new step on CPUs the other workers hold would never end.
    let r = ended(child, "the retry waits for a worker");
    assert_eq!(r.code, 0, "the job ran again elsewhere: {r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 20, "{r:?}");
    let again: Vec<_> = recs.iter().filter(|r| r["attempts"] != 1).collect();
    assert_eq!(again.len(), 1, "{recs:#?}");
    let a = again[0];
    assert_eq!(a["attempts"], 2, "{a}");
    assert_eq!(a["earlier_attempts"][0]["status"], "failed", "{a}");
    // Its node failed, not the job: no flaky job.
    assert_eq!(a["earlier_attempts"][0]["host_failed"], true, "{a}");
    assert_eq!(a["flaky"], false, "{a}");
    assert_ne!(a["host"], "n2", "{a}");
    assert_eq!(
        a["stdout"],
        format!("ok {}\n", a["host"].as_str().unwrap()),
        "{a}"
    );
    // srun's words of the dead node are the client's, not the job's.
    assert_eq!(a["stderr"], "", "{a}");
    let first = a["notes"][0].as_str().unwrap_or_default();
    assert!(first.starts_with(note), "{a}");
    for rec in &recs {
        assert_eq!(rec["status"], "succeeded", "{rec}");
    }
}

#[test]
fn a_job_running_on_a_dying_node_with_retries_runs_again_on_another_worker() {
    let e = own_daemon!("mslurm-dying-retried");
    // Retried in place first: its dead worker never starts it, so it moves.
    let note = "moved here after: its Slurm worker on n2 ended before";
    dying_under_a_job_runs_it_again("mslurm-dying-retried", e, "defaults: {retries: 1}\n", note);
}

#[test]
fn with_retry_elsewhere_a_job_whose_node_dies_under_it_runs_on_another_worker() {
    let e = own_daemon!("mslurm-dying-elsewhere");
    // No retries: a move is no retry, and its attempt cut short is kept.
    let note = "attempt 1 on `n2` ended as its Slurm step or node failed";
    let settings = "on_host_failure: retry_elsewhere\n";
    dying_under_a_job_runs_it_again("mslurm-dying-elsewhere", e, settings, note);
}

#[test]
fn every_node_dying_fails_the_jobs_left_clearly_and_the_run_ends() {
    let e = own_daemon!("mslurm-dying-all");
    let env = Env::new();
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: {{range: [1, 10]}}\n    shell: 'echo $$ >> {p}; sleep 60'\n",
        p = pids.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json", "-j", "5"]);
    let tasks = crate::helpers::await_pids(&pids, 5);
    let mut all: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| slurmd_pid("mslurm-dying-all", n).to_string())
        .collect();
    for t in tasks {
        all.push(format!("-{}", stat(t, 2)));
        all.extend(up_to_slurmstepd(t).iter().map(|p| p.to_string()));
    }
    kill("KILL", &all);
    for n in ["n1", "n2", "n3"] {
        set_down(e, n);
    }
    let r = ended(child, "every node was gone");
    assert_eq!(r.code, 1, "{r:?}");
    let recs = job_records(&r);
    assert_eq!(recs.len(), 10, "{r:?}");
    let error = |r: &serde_json::Value| r["error"].as_str().unwrap_or_default().to_string();
    let (ran, left): (Vec<_>, Vec<_>) = recs.iter().partition(|r| r["host"].is_string());
    assert_eq!(ran.len(), 5, "the five jobs that ran: {recs:#?}");
    for rec in ran {
        assert_eq!(rec["status"], "failed", "{rec}");
        assert!(error(rec).starts_with("srun ended"), "{rec}");
    }
    for rec in left {
        assert_eq!(rec["status"], "spawn_error", "{rec}");
        assert_eq!(
            error(rec),
            "the run's Slurm allocation is gone, and the default partition has no node up \
             for another one (see `sinfo`)",
            "{rec}"
        );
    }
}
