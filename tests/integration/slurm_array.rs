//! Background Slurm fan-outs as one job array (`sbatch --array`), against real 3-node
//! clusters: one Slurm job for the fan-out, every item its own record (output, exit code,
//! node), followed by `wait` and a run's `wait: true`, stopped with one `scancel`.

use crate::helpers::{Env, Run, wait_for};
use crate::scale_out::{Exports, cluster_cmd, inspect_with, own_daemon, run_with, spawn_with};
use crate::slurm_cluster::{rpcs, scancel_shim, with_path};

pub(crate) fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub(crate) fn reset_rpcs(e: &Exports) {
    let reset = cluster_cmd(e, "sdiag").arg("-r").output().unwrap();
    assert!(reset.status.success(), "{reset:?}");
}

/// Batch jobs the controller was asked to take since the last reset.
pub(crate) fn submits(e: &Exports) -> u64 {
    rpcs(e)
        .get("REQUEST_SUBMIT_BATCH_JOB")
        .copied()
        .unwrap_or(0)
}

/// The array ids of `recs`' Slurm ids (`ARRAY_TASK`), each once, and the tasks seen.
pub(crate) fn arrays_of(recs: &[serde_json::Value]) -> (Vec<String>, Vec<String>) {
    let ids: Vec<String> = recs.iter().map(|r| text(&r["slurm_job_id"])).collect();
    let mut arrays: Vec<String> = ids
        .iter()
        .map(|id| id.split('_').next().unwrap_or_default().to_string())
        .collect();
    arrays.sort();
    arrays.dedup();
    (arrays, ids)
}

/// A background fan-out of `n` `true` jobs on Slurm, its items a list (made up front).
fn background_fan(n: usize) -> String {
    let items: Vec<String> = (1..=n).map(|k| k.to_string()).collect();
    format!(
        "executor: slurm\njobs:\n  - name: f\n    for_each: [{}]\n    background: true\n    command: 'true'\n",
        items.join(", ")
    )
}

pub(crate) fn jobs_only(recs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    recs.into_iter().filter(|r| r["job"].is_string()).collect()
}

#[test]
fn a_background_fan_out_is_one_slurm_job_and_each_item_its_own_record() {
    let e = own_daemon!("mslurm-array");
    let env = Env::new();
    // An item's own output file, in append mode: what it held stays.
    env.write("out-5.txt", "before\n");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: bg\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n    background: true\n    env: {{ITEM: '{{item}}'}}\n    shell: 'echo $SLURMD_NODENAME; echo err $ITEM >&2; if [ {{item}} = 7 ]; then exit 3; fi'\n  - name: app\n    for_each: [5]\n    background: true\n    stdout: {{file: {out}, append: true}}\n    shell: 'echo appended'\n",
        out = env.path("out-5.txt").display()
    );
    reset_rpcs(e);
    let r = run_with(&env, e, &yaml, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let w = inspect_with(&env, e, &["wait", "--timeout", "180s"]);
    assert_eq!(w.code, 1, "one item failed: {w:?}");
    // The fan-out's 20 jobs were one batch job; `app` (alone in its entry) one more.
    assert_eq!(submits(e), 2, "{:?}", rpcs(e));
    let show = inspect_with(&env, e, &["show", "--json"]);
    let recs = jobs_only(show.json());
    let fan: Vec<_> = recs
        .iter()
        .filter(|r| text(&r["job"]).starts_with("bg["))
        .cloned()
        .collect();
    assert_eq!(fan.len(), 20, "{show:?}");
    let (arrays, ids) = arrays_of(&fan);
    assert_eq!(arrays.len(), 1, "one array for the fan-out: {ids:?}");
    let mut tasks: Vec<&str> = ids
        .iter()
        .filter_map(|i| i.split_once('_'))
        .map(|t| t.1)
        .collect();
    tasks.sort_by_key(|t| t.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(
        tasks,
        (0..20).map(|k| k.to_string()).collect::<Vec<_>>(),
        "{ids:?}"
    );
    for rec in &fan {
        let job = text(&rec["job"]);
        let item = job.trim_start_matches("bg[").trim_end_matches(']');
        let node = text(&rec["stdout"]).trim().to_string();
        assert!(["n1", "n2", "n3"].contains(&node.as_str()), "{rec}");
        assert_eq!(
            rec["host"],
            node.as_str(),
            "the record names its node: {rec}"
        );
        assert_eq!(text(&rec["stderr"]), format!("err {item}\n"), "{rec}");
        if item == "7" {
            assert_eq!(rec["status"], "failed", "{rec}");
            assert_eq!(rec["returncode"], 3, "{rec}");
        } else {
            assert_eq!(rec["status"], "succeeded", "{rec}");
            assert_eq!(rec["returncode"], 0, "{rec}");
        }
    }
    let out = std::fs::read_to_string(env.path("out-5.txt")).unwrap();
    assert_eq!(out, "before\nappended\n");
}

#[test]
fn a_waiting_run_follows_its_array_tasks_to_their_ends() {
    let e = own_daemon!("mslurm-array-wait");
    let env = Env::new();
    let yaml = "executor: slurm\nwait: true\njobs:\n  - name: w\n    for_each: [1, 2, 3, 4, 5, 6]\n    background: true\n    shell: 'sleep 1; echo done {item}; exit $(( {item} == 4 ))'\n  - name: after\n    executor: local\n    needs: [{job: w, if: always}]\n    command: echo after\n";
    reset_rpcs(e);
    let r = run_with(&env, e, yaml, &["--json", "-j", "3"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = jobs_only(r.json());
    let fan: Vec<_> = recs
        .iter()
        .filter(|r| text(&r["job"]).starts_with("w["))
        .cloned()
        .collect();
    assert_eq!(fan.len(), 6, "{r:?}");
    for rec in &fan {
        let item = text(&rec["job"])
            .trim_start_matches("w[")
            .trim_end_matches(']')
            .to_string();
        assert_eq!(text(&rec["stdout"]), format!("done {item}\n"), "{rec}");
        let want = if item == "4" { "failed" } else { "succeeded" };
        assert_eq!(rec["status"], want, "{rec}");
    }
    let arrays = arrays_of(&fan).0;
    assert_eq!(arrays.len(), 1, "{fan:#?}");
    assert_eq!(submits(e), 1, "{:?}", rpcs(e));
    // At most the run's concurrency in Slurm at once, as with a job per slot.
    let o = cluster_cmd(e, "scontrol")
        .args(["show", "job", "-o", &arrays[0]])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("ArrayTaskThrottle=3"), "{shown}");
    assert_eq!(Run::record(&recs, "after")["stdout"], "after\n");
}

#[test]
fn interrupting_a_run_waiting_for_an_array_cancels_it_with_one_scancel() {
    let e = own_daemon!("mslurm-array-cancel");
    let env = Env::new();
    let log = env.path("scancel.log");
    let path = scancel_shim(&env, &log);
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\nwait: true\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4, 5, 6]\n    background: true\n    shell: 'echo $$ >> {p}; sleep 120'\n",
        p = pids.display()
    );
    let child = spawn_with(&env, &with_path(e, path), &yaml, &["--json", "-j", "3"]);
    let started = wait_for(std::time::Duration::from_secs(90), || {
        crate::helpers::read_pids(&pids).len() == 3
    });
    assert!(started, "the tasks never started");
    crate::helpers::signal(child.id(), "INT");
    let r = Run::from(child.wait_with_output().unwrap());
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 6, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "cancelled", "{rec}");
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(calls.lines().count(), 1, "one scancel: {calls}");
    let array = calls.trim().to_string();
    // The whole array at once (its tasks not yet dispatched too), not each job's task.
    assert_eq!(calls.split_whitespace().count(), 1, "{calls}");
    for rec in recs.iter().filter(|r| r["slurm_job_id"].is_string()) {
        assert!(
            text(&rec["slurm_job_id"]).starts_with(&format!("{array}_")),
            "a task of {array}: {rec}"
        );
    }
    let q = cluster_cmd(e, "squeue")
        .args(["-h", "-r", "-j", &array, "-t", "PENDING,RUNNING"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&q.stdout).trim().is_empty(),
        "tasks of {array} still queued or running: {q:?}"
    );
}

#[test]
fn kill_stops_one_task_of_an_array_and_leaves_the_others() {
    let e = own_daemon!("mslurm-array-kill");
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: k\n    for_each: [1, 2, 3]\n    background: true\n    shell: 'sleep 2; echo ran {item}'\n  - name: long\n    for_each: [1, 2]\n    background: true\n    command: sleep 300\n";
    let r = run_with(&env, e, yaml, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let show = inspect_with(&env, e, &["show", "--json"]).json();
    let long: Vec<_> = show
        .iter()
        .filter(|r| text(&r["job"]).starts_with("long["))
        .cloned()
        .collect();
    let (arrays, ids) = arrays_of(&long);
    assert!(ids.iter().all(|i| i.contains('_')), "{ids:?}");
    assert_eq!(
        (arrays.len(), ids.len()),
        (1, 2),
        "two tasks of one array: {ids:?}"
    );
    let k = inspect_with(&env, e, &["kill", "long[1]"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("long[1] cancelled"), "{k:?}");
    let status = inspect_with(&env, e, &["status", "--json"]).json();
    let other = status
        .iter()
        .find(|r| r["job"] == "long[2]")
        .expect("long[2]");
    assert_eq!(other["status"], "background", "{status:?}");
    let k = inspect_with(&env, e, &["kill", "long[2]"]);
    assert_eq!(k.code, 0, "{k:?}");
    let w = inspect_with(
        &env,
        e,
        &["wait", "--timeout", "120s", "k[1]", "k[2]", "k[3]"],
    );
    assert_eq!(w.code, 0, "{w:?}");
    assert_eq!(w.stdout.matches(" succeeded ").count(), 3, "{w:?}");
}

#[test]
fn a_fan_out_the_controller_cannot_hold_is_refused_whole_before_any_submission() {
    let e = own_daemon!("mslurm-max160");
    let env = Env::new();
    // Slurm counts each task of an array against MaxJobCount: 300 tasks are more than 160, and
    // such an array is never accepted. It is refused at once (the controller's limits asked),
    // and so is every job of it; none is submitted (before: sbatch's own retries first, a
    // minute; and before arrays, 160 jobs running and 140 refused).
    let yaml = background_fan(300);
    reset_rpcs(e);
    let r = run_with(&env, e, &yaml, &["--json", "-j", "150"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 300, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "spawn_error", "{rec}");
        let err = text(&rec["error"]);
        assert!(err.contains("Slurm would never accept the array"), "{rec}");
        assert!(
            err.contains("300 tasks are more than the controller's MaxJobCount (160)"),
            "{rec}"
        );
        assert!(err.contains("the job array of its entry"), "{rec}");
    }
    assert_eq!(submits(e), 0, "{:?}", rpcs(e));
    let q = cluster_cmd(e, "squeue")
        .args(["-h", "-t", "all"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&q.stdout).trim().is_empty(),
        "{q:?}"
    );
}

/// A background fan-out of `n` items on `e` goes as batch jobs of their own, each noted `why`,
/// and all of them run.
fn goes_job_by_job(e: &Exports, n: usize, why: &str) {
    let env = Env::new();
    reset_rpcs(e);
    let r = run_with(&env, e, &background_fan(n), &["--json", "-j", "8"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), n, "{r:?}");
    for rec in &recs {
        assert_eq!(rec["status"], "background", "{rec}");
        assert!(
            !text(&rec["slurm_job_id"]).contains('_'),
            "not a task: {rec}"
        );
        assert!(rec["notes"].to_string().contains(why), "{rec}");
    }
    assert_eq!(submits(e), n as u64, "{:?}", rpcs(e));
    let w = inspect_with(&env, e, &["wait", "--timeout", "180s"]);
    assert_eq!(w.code, 0, "every job ran: {w:?}");
}

#[test]
fn a_fan_out_past_the_controllers_max_array_size_goes_job_by_job() {
    // 105 items: indices up to 104, past MaxArraySize=101. Slurm would refuse the array.
    let e = own_daemon!("mslurm-array101");
    goes_job_by_job(
        e,
        105,
        "its indices would pass the controller's MaxArraySize (101)",
    );
}

#[test]
fn a_fan_out_past_the_schedulers_max_array_tasks_goes_job_by_job() {
    // 60 items, more than SchedulerParameters=max_array_tasks=50: Slurm would refuse it.
    let e = own_daemon!("mslurm-tasks50");
    goes_job_by_job(
        e,
        60,
        "its 60 tasks are more than the controller's max_array_tasks (50",
    );
}

#[test]
fn a_lazy_range_fan_out_goes_as_arrays_of_a_thousand_tasks() {
    let e = own_daemon!("mslurm-array-lazy");
    let env = Env::new();
    // More than 1000 items: a fan whose jobs are made as they are dispatched (never a list),
    // and more than one array holds (Slurm's MaxArraySize).
    let yaml = "executor: slurm\njobs:\n  - name: z\n    for_each: {range: [1, 1200]}\n    background: true\n    shell: 'echo {item}'\n";
    reset_rpcs(e);
    let r = run_with(&env, e, yaml, &["--json", "-j", "8"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 1200);
    assert!(
        recs.iter().all(|r| r["status"] == "background"),
        "{:?}",
        recs[0]
    );
    let (arrays, ids) = arrays_of(&recs);
    assert_eq!(arrays.len(), 2, "{:?}", &ids[..5]);
    assert!(ids.iter().all(|i| i.contains('_')), "{:?}", &ids[..5]);
    assert_eq!(submits(e), 2, "{:?}", rpcs(e));
    let z = Run::record(&recs, "z[1001]");
    assert_eq!(text(&z["slurm_job_id"]), format!("{}_0", arrays[1]), "{z}");
    // An item of the second array runs as its own task and writes its own output (the first
    // array is cancelled: its 1000 tasks would take minutes on 5 CPUs).
    let c = cluster_cmd(e, "scancel").arg(&arrays[0]).status().unwrap();
    assert!(c.success());
    let w = inspect_with(&env, e, &["wait", "--timeout", "300s", "z[1001]"]);
    assert_eq!(w.code, 0, "{w:?}");
    let show = inspect_with(&env, e, &["show", "--job", "z[1001]", "--json"]).json();
    assert_eq!(show[0]["stdout"], "1001\n", "{show:?}");
    let _ = cluster_cmd(e, "scancel").args(&arrays).status();
}

#[test]
fn a_fan_out_whose_task_lines_would_hold_a_secret_goes_job_by_job() {
    let e = own_daemon!("mslurm-array-secret");
    let env = Env::new();
    const SECRET: &str = "s3cr3t-v4lue";
    let yaml = format!(
        "env: {{TOKEN: {SECRET}}}\nsecret_env: [TOKEN]\nexecutor: slurm\njobs:\n  - name: s\n    for_each: [1, 2, 3]\n    background: true\n    stdout: 'null'\n    stderr: 'null'\n    command: 'true {SECRET} {{item}}'\n"
    );
    let r = run_with(&env, e, &yaml, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = jobs_only(r.json());
    assert_eq!(recs.len(), 3, "{r:?}");
    for rec in &recs {
        assert!(
            rec["notes"].to_string().contains("not in a job array"),
            "{rec}"
        );
        assert!(!text(&rec["slurm_job_id"]).contains('_'), "{rec}");
    }
    let w = inspect_with(&env, e, &["wait", "--timeout", "120s"]);
    assert_eq!(w.code, 0, "{w:?}");
    let held = crate::helpers::files_holding(&env.state(), SECRET);
    assert!(held.is_empty(), "{held:?}");
}
