//! `executor: slurm` and `executor: ssh` against a real single-node Slurm cluster and a real sshd
//! on 127.0.0.1, started once per test process by ../shared/cluster's scripts and stopped when
//! it ends (`daemons`).

use std::sync::OnceLock;

use crate::helpers::{Env, Run, assert_gone, read_pids, skipped};

pub(crate) use crate::daemons::Exports;

/// The daemon's exports, or `None` when it cannot run here: then `test` is skipped, and says so
/// on stderr. Under CI the daemon must run.
pub(crate) fn daemon(
    cell: &'static OnceLock<Result<Exports, String>>,
    what: &str,
    test: &str,
) -> Option<&'static Exports> {
    let got = cell.get_or_init(|| crate::daemons::start(what));
    match got {
        Ok(e) => Some(e),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the {what} test daemon is required under CI but could not start: {why}")
        }
        Err(why) => {
            skipped(test, &format!("no {what} test daemon ({why})"));
            None
        }
    }
}

/// The test daemon `kind` that the test calling it has to itself (started once, stopped when
/// the test process ends), or a return from that test when it cannot start outside CI. The
/// skip line names the test, taken from the path of a function declared inside it.
macro_rules! own_daemon {
    ($kind:expr) => {{
        fn here() {}
        let test = std::any::type_name_of_val(&here);
        let test = test.trim_end_matches("::here");
        let test = test.split_once("::").map_or(test, |(_, t)| t);
        static CELL: std::sync::OnceLock<Result<crate::scale_out::Exports, String>> =
            std::sync::OnceLock::new();
        match crate::scale_out::daemon(&CELL, $kind, test) {
            Some(e) => e,
            None => return,
        }
    }};
}
pub(crate) use own_daemon;

/// Runs `yaml`, whose job `slow` writes its shell's and its child's pids to `pids` and must
/// time out: it does, and neither process is left.
fn slow_times_out_and_leaves_nothing(
    env: &Env,
    e: &Exports,
    yaml: &str,
    pids: &std::path::Path,
    why: &str,
) {
    let r = run_with(env, e, yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(Run::record(&r.json(), "slow")["status"], "timed_out");
    let pids = read_pids(pids);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_gone(&pids, why);
}

/// The Slurm test cluster for `test` (its name, for the skip line).
pub(crate) fn slurm(test: &str) -> Option<&'static Exports> {
    static CELL: OnceLock<Result<Exports, String>> = OnceLock::new();
    daemon(&CELL, "slurm", test)
}

/// The sshd test host for `test` (its name, for the skip line).
pub(crate) fn sshd(test: &str) -> Option<&'static Exports> {
    static CELL: OnceLock<Result<Exports, String>> = OnceLock::new();
    daemon(&CELL, "sshd", test)
}

pub(crate) fn get<'a>(e: &'a Exports, key: &str) -> &'a str {
    e.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{key} not exported: {e:?}"))
}

/// A Slurm (or ssh) client command that talks to the test cluster `e`.
pub(crate) fn cluster_cmd(e: &Exports, program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.envs(e.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Starts orchestrate on `yaml` (written as jobs.yaml) against cluster `e`, its output piped.
pub(crate) fn spawn_with(env: &Env, e: &Exports, yaml: &str, args: &[&str]) -> std::process::Child {
    env.write("jobs.yaml", yaml);
    env.cmd()
        .envs(e.iter().map(|(k, v)| (k, v)))
        .arg("jobs.yaml")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn run_with(env: &Env, exports: &Exports, yaml: &str, args: &[&str]) -> Run {
    env.write("jobs.yaml", yaml);
    let mut cmd = env.cmd();
    cmd.envs(exports.iter().map(|(k, v)| (k, v)))
        .arg("jobs.yaml")
        .args(args);
    let o = cmd.output().expect("run orchestrate");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

pub(crate) fn ssh_head(e: &Exports) -> String {
    format!("ssh: {{config: {}}}\n", get(e, "ORCH_SSH_CONFIG"))
}

#[test]
fn ssh_exit_codes_and_streams_are_exact() {
    let Some(e) = sshd("scale_out::ssh_exit_codes_and_streams_are_exact") else {
        return;
    };
    let env = Env::new();
    let yaml = format!(
        "{}executor: ssh\nhosts: [orch-ssh]\njobs:\n  - name: ok\n    shell: 'echo out; echo err >&2'\n  - name: three\n    shell: 'exit 3'\n  - name: remote255\n    shell: 'echo before; exit 255'\n",
        ssh_head(e)
    );
    let r = run_with(&env, e, &yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let ok = Run::record(&recs, "ok");
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["stdout"], "out\n");
    assert_eq!(ok["stderr"], "err\n");
    assert_eq!(ok["host"], "orch-ssh");
    assert_eq!(Run::record(&recs, "three")["returncode"], 3);
    let r255 = Run::record(&recs, "remote255");
    assert_eq!(r255["status"], "failed", "{r255}");
    assert_eq!(r255["returncode"], 255, "a remote 255 is the job's: {r255}");
    assert_eq!(r255["error"], serde_json::Value::Null, "{r255}");
    assert_eq!(r255["stdout"], "before\n");
}

#[test]
fn ssh_timeout_kills_the_remote_process_group() {
    let Some(e) = sshd("scale_out::ssh_timeout_kills_the_remote_process_group") else {
        return;
    };
    let env = Env::new();
    let pids = env.path("pids");
    let yaml = format!(
        "{}jobs:\n  - name: slow\n    executor: ssh\n    hosts: [orch-ssh]\n    timeout: 1s\n    kill_after: 1s\n    shell: 'echo $$ >> {p}; sleep 60 & echo $! >> {p}; wait'\n",
        ssh_head(e),
        p = pids.display()
    );
    slow_times_out_and_leaves_nothing(
        &env,
        e,
        &yaml,
        &pids,
        "remote processes survived the timeout",
    );
}

#[test]
fn ssh_unreachable_host_fails_clearly_and_retry_elsewhere_moves_jobs() {
    let Some(e) =
        sshd("scale_out::ssh_unreachable_host_fails_clearly_and_retry_elsewhere_moves_jobs")
    else {
        return;
    };
    let env = Env::new();
    let yaml = format!(
        "{}executor: ssh\nhosts: ['root@127.0.0.1:1']\njobs:\n  - name: nowhere\n    command: 'true'\n",
        ssh_head(e)
    );
    let r = run_with(&env, e, &yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let rec = Run::record(&r.json(), "nowhere").clone();
    assert_eq!(rec["status"], "spawn_error", "{rec}");
    let err = rec["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("cannot reach ssh host `root@127.0.0.1:1`"),
        "{err}"
    );

    let yaml = format!(
        "{}executor: ssh\nhosts: ['root@127.0.0.1:1', orch-ssh]\non_host_failure: retry_elsewhere\njobs:\n  - name: moved\n    command: 'echo fine'\n    for_each: [1, 2, 3]\n",
        ssh_head(e)
    );
    let r = run_with(&env, e, &yaml, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for rec in r.json().iter().filter(|r| r["job"].is_string()) {
        assert_eq!(rec["host"], "orch-ssh", "{rec}");
        assert_eq!(rec["stdout"], "fine\n", "{rec}");
    }
}

#[test]
fn slurm_exit_codes_streams_job_id_and_node() {
    let Some(e) = slurm("scale_out::slurm_exit_codes_streams_job_id_and_node") else {
        return;
    };
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: ok\n    shell: 'echo out; echo err >&2'\n  - name: three\n    shell: 'exit 3'\n  - name: nopart\n    command: 'true'\n    slurm: {partition: no-such-partition}\n";
    let r = run_with(&env, e, yaml, &["--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let ok = Run::record(&recs, "ok");
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["stdout"], "out\n");
    assert_eq!(ok["stderr"], "err\n");
    assert!(
        ok["slurm_job_id"]
            .as_str()
            .is_some_and(|id| id.parse::<u64>().is_ok()),
        "{ok}"
    );
    assert!(ok["host"].is_string(), "{ok}");
    assert_eq!(Run::record(&recs, "three")["returncode"], 3);
    let bad = Run::record(&recs, "nopart");
    assert_eq!(bad["returncode"], serde_json::Value::Null, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("srun failed"),
        "{bad}"
    );
}

#[test]
fn slurm_timeout_cancels_the_step() {
    let Some(e) = slurm("scale_out::slurm_timeout_cancels_the_step") else {
        return;
    };
    let env = Env::new();
    let pids = env.path("pids");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: slow\n    timeout: 2s\n    kill_after: 1s\n    shell: 'echo $$ >> {p}; sleep 60 & echo $! >> {p}; wait'\n",
        p = pids.display()
    );
    slow_times_out_and_leaves_nothing(
        &env,
        e,
        &yaml,
        &pids,
        "the step's processes survived the timeout",
    );
}

#[test]
fn slurm_jobs_in_flight_respect_the_concurrency_bound() {
    let Some(e) = slurm("scale_out::slurm_jobs_in_flight_respect_the_concurrency_bound") else {
        return;
    };
    let env = Env::new();
    let log = env.path("stamps");
    let yaml = format!(
        "executor: slurm\njobs:\n  - name: s\n    for_each: [1, 2, 3, 4]\n    shell: 'echo start >> {l}; sleep 1; echo end >> {l}'\n",
        l = log.display()
    );
    let r = run_with(&env, e, &yaml, &["-j", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let stamps = std::fs::read_to_string(&log).expect("stamps");
    let (mut now, mut max) = (0i32, 0i32);
    for s in stamps.lines() {
        now += if s == "start" { 1 } else { -1 };
        max = max.max(now);
    }
    assert_eq!(stamps.lines().count(), 8, "{stamps}");
    assert_eq!(max, 2, "{stamps}");
}

#[test]
fn bad_executor_settings_are_job_file_errors() {
    let env = Env::new();
    let r = env.run_jobs(
        "jobs:\n  - name: a\n    command: 'true'\n    executor: slurmm\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("jobs.yaml:4:"), "{r:?}");
    let r = env.run_jobs(
        "executor: ssh\njobs:\n  - name: a\n    command: 'true'\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("jobs.yaml:1:"), "{r:?}");
    assert!(r.stderr.contains("needs `hosts:`"), "{r:?}");
    let r = env.run_jobs(
        "jobs:\n  - name: a\n    command: 'true'\n    hosts: [x]\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("jobs.yaml:4:"), "{r:?}");
    assert!(r.stderr.contains("executor: ssh"), "{r:?}");
}

/// orchestrate with the cluster's environment (SLURM_CONF).
pub(crate) fn inspect_with(env: &Env, exports: &Exports, args: &[&str]) -> Run {
    let o = env
        .cmd()
        .envs(exports.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run orchestrate");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

#[test]
fn slurm_background_job_through_sbatch_is_collected_by_wait() {
    let Some(e) = slurm("scale_out::slurm_background_job_through_sbatch_is_collected_by_wait")
    else {
        return;
    };
    let env = Env::new();
    let yaml = "executor: slurm\njobs:\n  - name: batch\n    shell: 'echo from slurm; echo on stderr >&2; sleep 1; exit 3'\n    background: true\n";
    let r = run_with(&env, e, yaml, &[]);
    // The run ends at once; Slurm has the job.
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("BG        batch  slurm "), "{r:?}");
    let status = inspect_with(&env, e, &["status", "--json"]).json();
    assert_eq!(status.len(), 1, "{status:?}");
    let w = inspect_with(&env, e, &["wait", "--timeout", "120s"]);
    assert_eq!(w.code, 1, "{w:?}");
    assert!(w.stdout.contains("batch failed exit 3"), "{w:?}");
    let show = inspect_with(&env, e, &["show", "--job", "batch", "--json"]).json();
    assert!(
        show[0]["slurm_job_id"]
            .as_str()
            .is_some_and(|id| id.parse::<u64>().is_ok()),
        "{show:?}"
    );
    assert_eq!(show[0]["stdout"], "from slurm\n");
    assert_eq!(show[0]["stderr"], "on stderr\n");

    // kill cancels it in Slurm and records it so.
    let yaml =
        "executor: slurm\njobs:\n  - name: long\n    command: sleep 300\n    background: true\n";
    let r = run_with(&env, e, yaml, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let k = inspect_with(&env, e, &["kill", "long"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.contains("long cancelled"), "{k:?}");
    let id = inspect_with(&env, e, &["show", "--job", "long", "--json"]).json()[0]["slurm_job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let q = cluster_cmd(e, "squeue")
        .args(["-h", "-j", &id, "-t", "PENDING,RUNNING"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&q.stdout).trim().is_empty(),
        "job {id} still queued or running"
    );

    // wait: true follows the job to its end within the run.
    let yaml = "executor: slurm\nwait: true\njobs:\n  - name: bgw\n    shell: 'echo waited'\n    background: true\n  - name: after\n    executor: local\n    command: echo after\n    needs: [bgw]\n";
    let r = run_with(&env, e, yaml, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(Run::record(&recs, "bgw")["stdout"], "waited\n");
    assert_eq!(Run::record(&recs, "after")["stdout"], "after\n");
}
