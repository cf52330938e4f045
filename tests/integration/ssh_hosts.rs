//! ssh hosts that fail, against real sshd daemons of their own (`daemons::SshHosts`): a host
//! killed or frozen under running jobs, a lost ControlMaster, a host that comes back. Each
//! job prints the port of the sshd it ran under (`$SSH_CONNECTION`), so a record's `host` is
//! checked against where the job really ran.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemons::{SshHost, SshHosts};
use crate::helpers::{Env, Run, skipped, wait_for};

/// This test's own hosts, or `None` (the test is skipped) when sshd cannot run here.
pub(crate) fn hosts(test: &str, name: &str, n: usize) -> Option<SshHosts> {
    match SshHosts::start(name, n) {
        Ok(h) => Some(h),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the sshd test hosts are required under CI but could not start: {why}")
        }
        Err(why) => {
            skipped(test, &format!("no sshd test hosts ({why})"));
            None
        }
    }
}

/// The job file's top: every host of `h`, `slots` per host, moving jobs off failed hosts.
pub(crate) fn head(h: &SshHosts, slots: usize) -> String {
    let names: Vec<&str> = h.hosts.iter().map(|x| x.alias.as_str()).collect();
    format!(
        "concurrency: 8\nexecutor: ssh\nhosts: [{}]\nssh: {{config: {}, slots: {slots}}}\non_host_failure: retry_elsewhere\njobs:\n",
        names.join(", "),
        h.config.display()
    )
}

/// A shell line that prints the port of the sshd the job runs under.
pub(crate) const PORT: &str = "echo ${SSH_CONNECTION##* }";

/// A local job that waits for `DIR/go`, saying first that it waits (`DIR/waiting`).
fn gate(dir: &Path, needs: &str) -> String {
    let d = dir.display();
    format!(
        "  - name: gate\n    executor: local\n    needs: [{needs}]\n    shell: 'touch {d}/waiting; while [ ! -e {d}/go ]; do sleep 0.05; done'\n"
    )
}

pub(crate) fn records<'a>(recs: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| r["job"].as_str().is_some_and(|j| j.starts_with(prefix)))
        .collect()
}

/// The host a record's job ran on, by the port it printed; and the record's `host` must say so.
fn ran_on<'a>(h: &'a SshHosts, rec: &Value) -> &'a SshHost {
    let port = rec["stdout"].as_str().unwrap_or_default().trim();
    let host = h
        .hosts
        .iter()
        .find(|x| x.port == port)
        .unwrap_or_else(|| panic!("ran under no test host: {rec}"));
    assert_eq!(rec["host"], host.alias.as_str(), "{rec}");
    host
}

pub(crate) fn text(rec: &Value) -> String {
    format!("{} {}", rec["notes"], rec["error"])
}

/// Waits until `path` exists.
fn await_file(path: &Path, limit: Duration) {
    assert!(
        wait_for(limit, || path.exists()),
        "{} never appeared",
        path.display()
    );
}

/// Waits until `host` accepted a login after the `before` it had: a probe reached it.
fn await_login(host: &SshHost, before: usize) {
    assert!(
        wait_for(Duration::from_secs(60), || host.logins() > before),
        "no probe logged in to {} again",
        host.alias
    );
}

/// Sends CONT to a host stopped with STOP when dropped.
pub(crate) struct Thaw<'a>(pub(crate) &'a SshHost);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        if !self.0.processes().is_empty() {
            self.0.signal_all("CONT");
        }
    }
}

pub(crate) fn finish(child: std::process::Child) -> Run {
    Run::from(child.wait_with_output().expect("wait for orchestrate"))
}

/// Started files `DIR/started-ITEM-PORT` of the jobs running now.
pub(crate) fn started_on(dir: &Path, port: &str) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("started-") && n.ends_with(&format!("-{port}"))
        })
        .count()
}

#[test]
fn ssh_jobs_spread_over_two_hosts_one_login_each() {
    let Some(h) = hosts(
        "ssh_hosts::ssh_jobs_spread_over_two_hosts_one_login_each",
        "spread",
        2,
    ) else {
        return;
    };
    let env = Env::new();
    let before: Vec<usize> = h.hosts.iter().map(SshHost::logins).collect();
    let yaml = format!(
        "{}  - name: j\n    shell: 'sleep 0.3; {PORT}'\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8]\n",
        head(&h, 2)
    );
    env.write("jobs.yaml", &yaml);
    let r = finish(env.spawn(&["jobs.yaml", "--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    let js = records(&recs, "j[");
    assert_eq!(js.len(), 8, "{r:?}");
    for x in &h.hosts {
        let n = js
            .iter()
            .filter(|rec| ran_on(&h, rec).alias == x.alias)
            .count();
        assert!(n >= 2, "only {n} jobs on {}: {recs:#?}", x.alias);
    }
    for (x, b) in h.hosts.iter().zip(before) {
        assert_eq!(
            x.logins() - b,
            1,
            "{}: one master, no login per job",
            x.alias
        );
    }
}

/// Waits until the first jobs started two on each of the two hosts.
fn two_started_on_each(d: &Path, ports: [&str; 2], yaml: &str, child: &mut std::process::Child) {
    assert!(
        wait_for(Duration::from_secs(30), || ports
            .iter()
            .all(|p| started_on(d, p) == 2)),
        "the first jobs did not start two on each host: {:?} {yaml} {:?}",
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        child.try_wait()
    );
}

#[test]
fn ssh_host_killed_mid_run_its_jobs_move_and_later_jobs_avoid_it_until_it_is_back() {
    let test =
        "ssh_hosts::ssh_host_killed_mid_run_its_jobs_move_and_later_jobs_avoid_it_until_it_is_back";
    let Some(h) = hosts(test, "killed", 2) else {
        return;
    };
    let (a, b) = (&h.hosts[0], &h.hosts[1]);
    let env = Env::new();
    let d = env.path("");
    let dd = d.display();
    let yaml = format!(
        "{}  - name: first\n    shell: 'touch {dd}/started-{{item}}-${{SSH_CONNECTION##* }}; sleep 4; {PORT}'\n    for_each: [1, 2, 3, 4]\n  - name: later\n    needs: [first]\n    shell: '{PORT}'\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8]\n{}  - name: again\n    needs: [gate]\n    shell: 'sleep 0.5; {PORT}'\n    for_each: [1, 2, 3, 4]\n",
        head(&h, 2),
        gate(&d, "later")
    );
    env.write("jobs.yaml", &yaml);
    let mut child = env.spawn(&["jobs.yaml", "--json"]);
    two_started_on_each(&d, [&a.port, &b.port], &yaml, &mut child);
    a.signal_all("KILL");
    await_file(&d.join("waiting"), Duration::from_secs(60));
    let logins = a.logins();
    a.restart();
    // The restart's own test login, then a probe's master.
    await_login(a, logins + 1);
    std::fs::write(d.join("go"), "").unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();

    let mut moved = 0;
    for rec in records(&recs, "first[") {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        if rec["attempts"] == 2 {
            moved += 1;
            assert_eq!(ran_on(&h, rec).alias, b.alias, "{rec}");
            let first = &rec["earlier_attempts"][0];
            assert_eq!(first["attempt"], 1, "{rec}");
            assert_eq!(first["status"], "failed", "{rec}");
            assert_eq!(first["host_failed"], true, "{rec}");
            // Its host failed, not the job: no flaky job.
            assert_eq!(rec["flaky"], false, "{rec}");
            let notes = text(rec);
            assert!(
                notes.contains(&format!("attempt 1 on `{}`", a.alias)) && notes.contains("broke"),
                "{rec}"
            );
        } else {
            assert_eq!(ran_on(&h, rec).alias, b.alias, "{rec}");
        }
    }
    assert_eq!(
        moved, 2,
        "the two jobs on the killed host ran again: {recs:#?}"
    );
    // Later jobs never tried the dead host: no "Connection refused" beyond the two moved
    // jobs' own notes (the reopen of the master they lost).
    for rec in records(&recs, "later[") {
        assert_eq!(ran_on(&h, rec).alias, b.alias, "{rec}");
        assert!(!text(rec).contains(&a.alias), "{rec}");
    }
    let refused = recs
        .iter()
        .filter(|r| text(r).contains("Connection refused"))
        .count();
    assert!(
        refused <= 2,
        "{refused} records tried the dead host: {recs:#?}"
    );
    // Back up after its probe: used again.
    let last = records(&recs, "again[");
    assert!(
        last.iter().any(|rec| ran_on(&h, rec).alias == a.alias),
        "the restarted host was not used again: {last:#?}"
    );
}

#[test]
fn ssh_frozen_host_costs_its_jobs_one_keepalive_window_and_is_used_again_when_it_thaws() {
    let test = "ssh_hosts::ssh_frozen_host_costs_its_jobs_one_keepalive_window_and_is_used_again_when_it_thaws";
    let Some(h) = hosts(test, "frozen", 2) else {
        return;
    };
    let (a, b) = (&h.hosts[0], &h.hosts[1]);
    let env = Env::new();
    let d = env.path("");
    let dd = d.display();
    let yaml = format!(
        "{}  - name: first\n    shell: 'touch {dd}/started-{{item}}-${{SSH_CONNECTION##* }}; sleep 3; {PORT}'\n    for_each: [1, 2, 3, 4]\n{}  - name: again\n    needs: [gate]\n    shell: 'sleep 0.5; {PORT}'\n    for_each: [1, 2, 3, 4]\n",
        head(&h, 2),
        gate(&d, "first")
    );
    env.write("jobs.yaml", &yaml);
    let t0 = Instant::now();
    let mut child = env.spawn(&["jobs.yaml", "--json"]);
    two_started_on_each(&d, [&a.port, &b.port], &yaml, &mut child);
    let logins = a.logins();
    a.signal_all("STOP");
    // Thawed whatever happens below, so that the host can be stopped at the end.
    let thaw = Thaw(a);
    await_file(&d.join("waiting"), Duration::from_secs(90));
    let moved_after = t0.elapsed();
    drop(thaw);
    await_login(a, logins);
    std::fs::write(d.join("go"), "").unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    // Loose: the jobs did not wait for the frozen host (minutes), only for its keep-alive
    // window and one reconnect attempt.
    assert!(moved_after < Duration::from_secs(45), "{moved_after:?}");
    let mut moved = 0;
    for rec in records(&recs, "first[") {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(ran_on(&h, rec).alias, b.alias, "{rec}");
        if rec["attempts"] == 2 {
            moved += 1;
            let first = &rec["earlier_attempts"][0];
            let at = |k: &str| humantime::parse_rfc3339(first[k].as_str().unwrap()).unwrap();
            let took = at("finished").duration_since(at("started")).unwrap();
            assert!(
                took < Duration::from_secs(30),
                "the frozen attempt took {took:?}: {rec}"
            );
            assert!(text(rec).contains(&format!("on `{}`", a.alias)), "{rec}");
        }
    }
    assert_eq!(
        moved, 2,
        "the two jobs on the frozen host ran again: {recs:#?}"
    );
    let last = records(&recs, "again[");
    assert!(
        last.iter().any(|rec| ran_on(&h, rec).alias == a.alias),
        "the thawed host was not used again: {last:#?}"
    );
    // The first master, then the one master a probe opened after the thaw.
    assert!(a.logins() - logins <= 1, "{} logins", a.logins() - logins);
}

#[test]
fn ssh_lost_master_is_reopened_once_for_all_jobs() {
    let Some(h) = hosts(
        "ssh_hosts::ssh_lost_master_is_reopened_once_for_all_jobs",
        "master",
        1,
    ) else {
        return;
    };
    let a = &h.hosts[0];
    let env = Env::new();
    let d = env.path("");
    let yaml = format!(
        "{}  - name: first\n    shell: '{PORT}'\n{}  - name: later\n    needs: [gate]\n    shell: '{PORT}'\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8]\n",
        head(&h, 4),
        gate(&d, "first")
    );
    env.write("jobs.yaml", &yaml);
    let before = a.logins();
    let child = env.spawn(&["jobs.yaml", "--json"]);
    await_file(&d.join("waiting"), Duration::from_secs(30));
    let socket = format!("ControlPath=/tmp/orch-ssh-{}-", child.id());
    let masters: Vec<(u32, String)> = crate::daemons::naming(&socket)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("ControlMaster=yes"))
        .collect();
    assert_eq!(masters.len(), 1, "{masters:?}");
    crate::helpers::signal(masters[0].0, "KILL");
    std::fs::write(d.join("go"), "").unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    for rec in records(&recs, "later[") {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(ran_on(&h, rec).alias, a.alias, "{rec}");
    }
    // The first master and the one that replaced it: no login per job.
    assert_eq!(a.logins() - before, 2, "logins to {}", a.alias);
}

#[test]
fn a_master_left_by_a_killed_run_is_closed_by_the_next_run() {
    let Some(h) = hosts(
        "ssh_hosts::a_master_left_by_a_killed_run_is_closed_by_the_next_run",
        "orphan",
        1,
    ) else {
        return;
    };
    let env = Env::new();
    let d = env.path("");
    let yaml = format!(
        "{}  - name: first\n    shell: '{PORT}'\n{}",
        head(&h, 1),
        gate(&d, "first")
    );
    env.write("jobs.yaml", &yaml);
    let mut child = env.spawn(&["jobs.yaml"]);
    await_file(&d.join("waiting"), Duration::from_secs(30));
    let socket = format!("ControlPath=/tmp/orch-ssh-{}-", child.id());
    let masters = || -> Vec<u32> {
        crate::daemons::naming(&socket)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("ControlMaster=yes"))
            .map(|(p, _)| p)
            .collect()
    };
    crate::helpers::signal(child.id(), "KILL");
    let _ = child.wait();
    std::fs::write(d.join("go"), "").unwrap();
    assert_eq!(masters().len(), 1, "the killed run's master outlives it");
    // Any later run with an ssh job sweeps the dead run's sockets.
    env.write(
        "again.yaml",
        &format!("{}  - name: again\n    shell: '{PORT}'\n", head(&h, 1)),
    );
    let r = env.run(&["again.yaml"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        wait_for(Duration::from_secs(10), || masters().is_empty()),
        "the killed run's master still runs: {:?}",
        masters()
    );
}

#[test]
fn a_job_moved_off_a_failed_host_keeps_the_retries_it_used() {
    let test = "ssh_hosts::a_job_moved_off_a_failed_host_keeps_the_retries_it_used";
    let Some(h) = hosts(test, "retried", 2) else {
        return;
    };
    let env = Env::new();
    let d = env.path("");
    let dd = d.display();
    // Attempt 1 fails by itself (its retry used); attempt 2 runs until its host is killed (a
    // move, no retry); attempt 3, on the other host, fails by itself: no retry is left.
    let yaml = format!(
        "{}  - name: r\n    retries: 1\n    shell: 'if [ ! -e {dd}/once ]; then touch {dd}/once; exit 1; fi; if [ -e {dd}/ran ]; then exit 2; fi; {PORT} > {dd}/ran.tmp; mv {dd}/ran.tmp {dd}/ran; sleep 30'\n",
        head(&h, 2)
    );
    env.write("jobs.yaml", &yaml);
    let child = env.spawn(&["jobs.yaml", "--json"]);
    await_file(&d.join("ran"), Duration::from_secs(60));
    let port = std::fs::read_to_string(d.join("ran")).unwrap();
    let host = h.hosts.iter().find(|x| x.port == port.trim()).unwrap();
    host.signal_all("KILL");
    let r = finish(child);
    assert_eq!(r.code, 1, "{r:?}");
    let rec = &r.json()[0];
    assert_eq!(rec["attempts"], 3, "one retry in all, and one move: {rec}");
    assert_eq!(rec["returncode"], 2, "{rec}");
    assert_eq!(rec["earlier_attempts"][0]["host_failed"], false, "{rec}");
    assert_eq!(rec["earlier_attempts"][1]["host_failed"], true, "{rec}");
}
