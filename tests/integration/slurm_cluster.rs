//! Slurm jobs against real daemons: what a record holds (the job's streams only, srun's and
//! slurmstepd's words as notes or the error), a timeout that counts from the job's start, the
//! queue's wait told, a full controller, and jobs spread over the nodes of a 3-node cluster.
//! Each cluster that a test disturbs (a full queue, a stopped slurmd) is its own.

use crate::helpers::{Env, Run, wait_for};
use crate::scale_out::{
    Exports, cluster_cmd, own_daemon, run_with, slurm, spawn_with, ssh_head, sshd,
};

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn notes(v: &serde_json::Value) -> String {
    v["notes"].to_string()
}

#[test]
fn slurm_records_hold_only_the_jobs_streams() {
    let Some(e) = slurm("slurm_cluster::slurm_records_hold_only_the_jobs_streams") else {
        return;
    };
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: killed\n    shell: 'echo before >&2; kill -9 $$'\n  - name: segv\n    shell: 'kill -SEGV $$'\n  - name: three\n    shell: 'echo e3 >&2; exit 3'\n  - name: slow\n    timeout: 2s\n    kill_after: 1s\n    shell: 'echo started >&2; sleep 60'\n  - name: nopart\n    command: 'true'\n    slurm: {partition: no-such-partition}\n";
    let r = run_with(&env, e, yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let killed = Run::record(&recs, "killed");
    assert_eq!(
        killed["stderr"], "before\n",
        "the shell's `Killed` is not the job's: {killed}"
    );
    assert_eq!(Run::record(&recs, "segv")["stderr"], "", "{recs:?}");
    let three = Run::record(&recs, "three");
    assert_eq!(three["stderr"], "e3\n", "{three}");
    assert_eq!(three["returncode"], 3, "{three}");
    assert!(!notes(three).contains("Exited with exit code"), "{three}");
    let slow = Run::record(&recs, "slow");
    assert_eq!(slow["status"], "timed_out", "{slow}");
    assert_eq!(
        slow["stderr"], "started\n",
        "slurmstepd's banner is a note: {slow}"
    );
    assert_eq!(
        slow["returncode"],
        serde_json::Value::Null,
        "srun's code is not the job's: {slow}"
    );
    assert!(slow["signal"].is_i64(), "{slow}");
    // A worker step stops the job alone: no step is cancelled, so no banner either.
    assert!(!notes(slow).contains("CANCELLED AT"), "{slow}");
    let bad = Run::record(&recs, "nopart");
    assert_eq!(bad["status"], "spawn_error", "{bad}");
    assert!(
        text(&bad["error"]).contains("invalid partition specified: no-such-partition"),
        "srun's own message reaches the record: {bad}"
    );
}

#[test]
fn ssh_jobs_killed_by_a_signal_keep_their_stderr_as_it_was() {
    let Some(e) = sshd("slurm_cluster::ssh_jobs_killed_by_a_signal_keep_their_stderr_as_it_was")
    else {
        return;
    };
    let env = Env::new();
    let yaml = format!(
        "{}executor: ssh\nhosts: [orch-ssh]\njobs:\n  - name: killed\n    shell: 'echo before >&2; kill -9 $$'\n  - name: input\n    shell: 'cat; echo err >&2'\n    stdin: 'in'\n",
        ssh_head(e)
    );
    let r = run_with(&env, e, &yaml, &["--json"]);
    let recs = r.json();
    assert_eq!(Run::record(&recs, "killed")["stderr"], "before\n", "{r:?}");
    let input = Run::record(&recs, "input");
    assert_eq!(input["stdout"], "in", "{input}");
    assert_eq!(input["stderr"], "err\n", "{input}");
}

/// sbatch on cluster `e`, returning the job id. Its output goes nowhere: without `--output`
/// Slurm writes `slurm-ID.out` into the test's working directory, the repository.
fn sbatch(e: &Exports, args: &[&str]) -> String {
    let o = cluster_cmd(e, "sbatch")
        .args(["--parsable", "--output=/dev/null"])
        .args(args)
        .output()
        .expect("sbatch");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn slurm_timeout_counts_from_the_start_and_the_wait_in_the_queue_is_noted() {
    let e = own_daemon!("mslurm-queue");
    // Every CPU of the cluster taken for 7 s: the job waits in the queue, then runs 1 s.
    sbatch(e, &["--exclusive", "-N3", "--wrap", "sleep 7"]);
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: waits\n    timeout: 3s\n    shell: 'sleep 1; echo ran'\n";
    let r = run_with(&env, e, yaml, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = Run::record(&r.json(), "waits").clone();
    assert_eq!(
        rec["status"], "succeeded",
        "the wait is not the job's time: {rec}"
    );
    assert_eq!(rec["stdout"], "ran\n", "{rec}");
    let n = notes(&rec);
    assert!(n.contains("in Slurm's queue: Resources"), "{rec}");
}

#[test]
fn slurm_jobs_spread_over_the_nodes_and_record_theirs() {
    let e = own_daemon!("mslurm-spread");
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4, 5]\n    shell: 'sleep 2; echo $SLURMD_NODENAME'\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut nodes = std::collections::BTreeSet::new();
    for rec in r.json().iter().filter(|r| r["job"].is_string()) {
        let node = text(&rec["stdout"]).trim().to_string();
        assert_eq!(
            rec["host"],
            node.as_str(),
            "the record names the job's node: {rec}"
        );
        nodes.insert(node);
    }
    // 5 CPUs in all (2 + 1 + 2): five jobs at once take every node.
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
}

#[test]
fn a_full_slurm_controller_is_told_and_not_a_timeout() {
    let e = own_daemon!("mslurm-full");
    // The controller keeps ended jobs (MinJobAge) and takes fewer than 3: these fill it.
    for _ in 0..2 {
        sbatch(e, &["--wrap", "true"]);
    }
    let env = Env::new();
    // Alone in its settings, `one` is a Slurm job of its own; the others share an allocation.
    let yaml = "executor: slurm\njobs:\n  - name: t\n    for_each: [1, 2, 3, 4]\n    timeout: 3s\n    command: 'true'\n  - name: one\n    slurm: {cpus: 1}\n    timeout: 3s\n    command: 'true'\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "5"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs: Vec<_> = r
        .json()
        .into_iter()
        .filter(|r| r["job"].is_string())
        .collect();
    assert_eq!(recs.len(), 5, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "spawn_error", "{rec}");
        let err = text(&rec["error"]);
        assert!(
            err.contains("Slurm did not accept the") && err.contains("MaxJobCount"),
            "{rec}"
        );
    }
    let one = Run::record(&recs, "one");
    assert!(
        notes(one).contains("for the Slurm controller to accept the job"),
        "{one}"
    );
    let t = Run::record(&recs, "t[1]");
    assert!(
        text(&t["error"]).contains("the run's allocation (salloc)"),
        "{t}"
    );
}

/// The pid in `STATE/slurmd-NODE.pid` of the cluster `kind`.
pub(crate) fn slurmd_pid(kind: &str, node: &str) -> u32 {
    let dir = crate::daemons::state_dir(std::process::id(), kind);
    let p = std::fs::read_to_string(format!("{dir}/slurmd-{node}.pid")).expect("slurmd pid file");
    p.trim().parse().expect("a pid")
}

#[test]
fn a_node_dying_mid_run_fails_its_job_clearly_and_spares_the_others() {
    let e = own_daemon!("mslurm-dying");
    let env = Env::new();
    let mark = env.path("on-n2");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: doomed\n    slurm: {{extra_args: ['--nodelist=n2']}}\n    shell: 'echo $$ > {m}; sleep 60'\n  - name: fine\n    slurm: {{extra_args: ['--nodelist=n1']}}\n    shell: 'sleep 3; echo fine'\n",
        m = mark.display()
    );
    let child = spawn_with(&env, e, &yaml, &["--json"]);
    assert!(
        wait_for(std::time::Duration::from_secs(30), || mark.exists()),
        "the job never started on n2"
    );
    // n2 dies: its slurmd and everything it ran.
    let task: u32 = std::fs::read_to_string(&mark)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The job's shell runs under the wrapper, which slurmstepd started.
    let stepd = stat(stat(task, 1), 1);
    crate::helpers::signal(slurmd_pid("mslurm-dying", "n2"), "KILL");
    crate::helpers::signal(stepd, "KILL");
    let group = format!("-{}", stat(task, 2));
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .status();
    let out = child.wait_with_output().unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let doomed = Run::record(&recs, "doomed");
    assert_eq!(doomed["status"], "failed", "{doomed}");
    assert_eq!(doomed["host"], "n2", "{doomed}");
    assert_eq!(doomed["returncode"], serde_json::Value::Null, "{doomed}");
    assert!(text(&doomed["error"]).starts_with("srun ended"), "{doomed}");
    assert_eq!(Run::record(&recs, "fine")["stdout"], "fine\n", "{recs:?}");
}

/// Field `n` after the command of /proc/PID/stat (1: the parent, 2: the process group).
pub(crate) fn stat(pid: u32, n: usize) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(n).unwrap().parse().unwrap()
}

/// `e` with `PATH` set to `path` (a shim's folder first), for `spawn_with`.
pub(crate) fn with_path(e: &Exports, path: String) -> Exports {
    let mut e = e.clone();
    e.push(("PATH".to_string(), path));
    e
}

/// sdiag's RPC counts by message type on cluster `e`.
/// Puts a shim in front of the real `scancel` that logs each start's arguments to `log`, and
/// returns the PATH that finds it first.
pub(crate) fn scancel_shim(env: &Env, log: &std::path::Path) -> String {
    let real = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join("scancel"))
        .find(|p| p.is_file())
        .expect("scancel on PATH");
    let shim = env.write(
        "bin/scancel",
        &format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    );
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        env.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub(crate) fn rpcs(e: &Exports) -> std::collections::HashMap<String, u64> {
    let o = cluster_cmd(e, "sdiag").output().expect("sdiag");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let by_type = text
        .split("by message type")
        .nth(1)
        .and_then(|t| t.split("by user").next())
        .unwrap_or_default()
        .to_string();
    by_type
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let count = l.split("count:").nth(1)?.split_whitespace().next()?;
            Some((name.to_string(), count.parse().ok()?))
        })
        .collect()
}

#[test]
fn wait_asks_slurm_about_all_its_background_jobs_at_once() {
    let e = own_daemon!("mslurm-bg");
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: bg\n    for_each: [1, 2, 3, 4, 5, 6]\n    shell: 'sleep 4; echo done'\n    background: true\n";
    let r = run_with(&env, e, yaml, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let reset = cluster_cmd(e, "sdiag").arg("-r").output().unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let w = crate::scale_out::inspect_with(&env, e, &["wait", "--timeout", "120s"]);
    assert_eq!(w.code, 0, "{w:?}");
    assert_eq!(w.stdout.matches(" succeeded ").count(), 6, "{w:?}");
    let n = rpcs(e);
    // One squeue per sweep (squeue asks for one job alone when only one is left), not one
    // query per job every 100 ms (six jobs for 4 s were about 240 queries).
    let get = |k: &str| n.get(k).copied().unwrap_or(0);
    let info = get("REQUEST_JOB_INFO") + get("REQUEST_JOB_INFO_SINGLE");
    assert!((1..=10).contains(&info), "{n:?}");
}

#[test]
fn interrupting_many_slurm_jobs_cancels_them_with_one_scancel() {
    let e = own_daemon!("mslurm-cancel");
    let env = Env::new();
    // The real scancel, behind a shim that logs each time it is started.
    let log = env.path("scancel.log");
    let path = scancel_shim(&env, &log);
    let pids = env.path("pids");
    // With `time:` each job is a step of its own (a job on a worker step is stopped by its
    // worker, with no scancel at all).
    let yaml = format!(
        "executor: slurm\nslurm: {{time: '5'}}\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4]\n    shell: 'echo $$ >> {p}; sleep 60'\n",
        p = pids.display()
    );
    let child = spawn_with(&env, &with_path(e, path), &yaml, &["--json", "-j", "4"]);
    let started = wait_for(std::time::Duration::from_secs(60), || {
        crate::helpers::read_pids(&pids).len() == 4
    });
    assert!(started, "the jobs never all started");
    crate::helpers::signal(child.id(), "INT");
    let r = Run::from(child.wait_with_output().unwrap());
    let recs: Vec<_> = r
        .json()
        .into_iter()
        .filter(|r| r["job"].is_string())
        .collect();
    assert_eq!(recs.len(), 4, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "cancelled", "{rec}");
        assert_eq!(rec["returncode"], serde_json::Value::Null, "{rec}");
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    // One scancel for the four; two at most when the sruns end spread out on a loaded
    // machine (one each before).
    assert!(
        calls.lines().count() <= 2,
        "one scancel for the four jobs: {calls}"
    );
    assert_eq!(calls.split_whitespace().count(), 4, "{calls}");
    // The four are steps of the run's allocation: each is cancelled alone (`ALLOC.STEP`).
    assert!(
        calls.split_whitespace().all(|id| id.contains('.')),
        "steps cancelled, never the allocation: {calls}"
    );
}

#[test]
fn a_run_follows_its_slurm_batch_jobs_with_one_query_per_sweep() {
    let e = own_daemon!("mslurm-follow");
    let reset = cluster_cmd(e, "sdiag").arg("-r").output().unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let env = Env::new();
    let yaml = "executor: slurm\nwait: true\njobs:\n  - name: bg\n    for_each: [1, 2, 3, 4, 5]\n    shell: 'sleep 4; echo done'\n    background: true\n";
    let r = run_with(&env, e, yaml, &["--json", "-j", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs: Vec<_> = r
        .json()
        .into_iter()
        .filter(|r| r["job"].is_string())
        .collect();
    assert_eq!(recs.len(), 5, "{r:?}");
    assert!(recs.iter().all(|r| r["stdout"] == "done\n"), "{recs:#?}");
    let n = rpcs(e);
    let get = |k: &str| n.get(k).copied().unwrap_or(0);
    // Five jobs for about 5 s were about 50 single-job queries (each job every 0.5 s).
    let info = get("REQUEST_JOB_INFO") + get("REQUEST_JOB_INFO_SINGLE");
    assert!((1..=10).contains(&info), "{n:?}");
}
