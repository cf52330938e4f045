//! An ssh job file whose only host freezes, without `retry_elsewhere`: the jobs on it fail
//! after one keep-alive window, and the jobs still waiting for it fail at once, saying the
//! host is down, instead of each trying it.

use std::time::{Duration, Instant};

use crate::helpers::{Env, wait_for};
use crate::ssh_hosts::{PORT, Thaw, finish, head, hosts, records, started_on, text};

#[test]
fn ssh_jobs_of_a_frozen_only_host_fail_within_its_keepalive_window_and_the_rest_at_once() {
    let test = "ssh_down::ssh_jobs_of_a_frozen_only_host_fail_within_its_keepalive_window_and_the_rest_at_once";
    let Some(h) = hosts(test, "alone", 1) else {
        return;
    };
    let a = &h.hosts[0];
    let env = Env::new();
    let d = env.path("");
    let yaml = format!(
        "{}  - name: j\n    shell: 'touch {}/started-{{item}}-${{SSH_CONNECTION##* }}; sleep 3; {PORT}'\n    for_each: [1, 2, 3, 4, 5, 6]\n",
        head(&h, 2).replace("on_host_failure: retry_elsewhere\n", ""),
        d.display()
    );
    env.write("jobs.yaml", &yaml);
    let child = env.spawn(&["jobs.yaml", "--json"]);
    assert!(
        wait_for(Duration::from_secs(30), || started_on(&d, &a.port) == 2),
        "two jobs did not start"
    );
    a.signal_all("STOP");
    let _thaw = Thaw(a);
    let t0 = Instant::now();
    let r = finish(child);
    // Loose: one keep-alive window and one connect attempt, not a minute per job.
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    assert_eq!(r.code, 1, "{r:?}");
    let recs = r.json();
    let js = records(&recs, "j[");
    assert_eq!(js.len(), 6, "{r:?}");
    let broke = js.iter().filter(|rec| rec["status"] == "failed").count();
    assert_eq!(broke, 2, "{recs:#?}");
    for rec in &js {
        let t = text(rec);
        if rec["status"] == "failed" {
            assert!(t.contains("broke") && t.contains("cannot reach"), "{rec}");
        } else {
            assert_eq!(rec["status"], "spawn_error", "{rec}");
            assert!(
                t.contains(&format!("ssh host `{}` is down since", a.alias)),
                "{rec}"
            );
        }
    }
}
