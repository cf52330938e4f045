//! Lazy fan-out: a large range or a streamed items file is expanded as its jobs are
//! dispatched, not before (`plan::lazy`, `exec::fans`).

use std::process::{Command, Stdio};

use crate::helpers::{Env, Run};

/// A range above `plan::lazy::LAZY_MIN` (1000 items), so that it fans out lazily.
const ITEMS: usize = 1200;

fn statuses(recs: &[serde_json::Value], status: &str) -> usize {
    recs.iter().filter(|r| r["status"] == status).count()
}

#[test]
fn a_pipe_feeds_jobs_that_start_before_it_ends() {
    let env = Env::new();
    let n = 3_000;
    env.write(
        "jobs.yaml",
        "jobs:\n  - name: item\n    shell: 'test {item} != first || touch first.mark'\n    for_each: {file: /dev/stdin}\n",
    );
    // The feeder gives one item, then waits for that item's job to have run before it gives
    // the rest: a plan that read every item first would never see the mark.
    let feeder = format!(
        "echo first; i=0; while [ ! -e first.mark ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; \
         if [ -e first.mark ]; then echo seen > feeder.saw; fi; seq 2 {n}"
    );
    let mut feed = Command::new("sh")
        .arg("-c")
        .arg(&feeder)
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = env
        .cmd()
        .args(["jobs.yaml", "-q", "-j", "4"])
        .stdin(feed.stdout.take().unwrap())
        .output()
        .unwrap();
    feed.wait().unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        env.path("feeder.saw").exists(),
        "the first job ran only after the feeder ended"
    );
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), n, "one record per item");
    assert_eq!(statuses(&recs, "succeeded"), n);
    assert_eq!(
        Run::record(&recs, "item[0]")["args"][2],
        "test first != first || touch first.mark"
    );
    assert!(recs.iter().any(|r| r["job"] == format!("item[{}]", n - 1)));
}

#[test]
fn a_bad_line_late_in_an_items_file_names_its_line_and_the_other_jobs_keep_their_records() {
    let env = Env::new();
    // Over 64 KiB, the last entry: read as the jobs run.
    let mut items = Vec::new();
    for k in 1..=2000 {
        items.extend_from_slice(format!("item-{k:0>40}\n").as_bytes());
    }
    let bad_at = 1500;
    let start = (bad_at - 1) * 46;
    items.splice(start..start + 4, [0xff, 0xfe, b'x', b'y']);
    std::fs::write(env.path("items.txt"), &items).unwrap();
    let r = env.run_jobs(
        "jobs:\n  - name: each\n    command: ['true', '{item}']\n    for_each: {file: items.txt}\n",
        &["-q"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), 2000, "every line is a job: {}", recs.len());
    assert_eq!(statuses(&recs, "succeeded"), 1999);
    let bad = Run::record(&recs, &format!("each[{}]", bad_at - 1));
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains(&format!("items.txt:{bad_at}")), "{bad:#}");
    assert!(error.contains("not UTF-8"), "{bad:#}");
    assert!(r.stderr.contains(&format!("items.txt:{bad_at}")), "{r:?}");
}

#[test]
fn check_of_ten_million_items_prints_the_count_and_a_few_jobs() {
    let env = Env::new();
    let r = env.run(&["check", &env
        .write(
            "jobs.yaml",
            "jobs:\n  - name: sq\n    command: 'echo {item}'\n    for_each: {range: [1, 10000000]}\n",
        )
        .display()
        .to_string()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("10000000 jobs"), "{r:?}");
    assert!(
        r.stdout.contains("sq[1] ") && r.stdout.contains("echo 3"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("sq[4]"), "{r:?}");
    assert!(r.stdout.contains("9999997 more"), "{r:?}");
    assert!(r.stdout.lines().count() < 10, "{r:?}");
}

fn fan(extra: &str) -> String {
    format!(
        "jobs:\n  - name: square\n    shell: 'test {{item}} != 7 || exit 3; echo $(({{item}} * {{item}}))'\n    for_each: {{range: [1, {ITEMS}]}}\n{extra}"
    )
}

#[test]
fn only_one_item_of_a_lazy_fan_out_runs_that_item() {
    let env = Env::new();
    let r = env.run_jobs(&fan(""), &["--only", "square[5]", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["job"], "square[5]");
    assert_eq!(recs[0]["index"], 4, "its place in the job file");
}

#[test]
fn resume_of_a_lazy_fan_out_reruns_only_what_failed() {
    let env = Env::new();
    let first = env.run_jobs(&fan(""), &["-q"]);
    assert_eq!(first.code, 1, "{first:?}");
    let r = env.run_jobs(&fan(""), &["--resume", "last", "--json"]);
    let recs = r.json();
    let ran: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| !r["notes"].to_string().contains("carried over"))
        .collect();
    assert_eq!(ran.len(), 1, "{r:?}");
    assert_eq!(ran[0]["job"], "square[7]");
    let shown = env.run(&["show", "last", "--json"]).json();
    assert_eq!(shown.len(), ITEMS, "carried records and the rerun one");
}

#[test]
fn a_job_needing_a_lazy_fan_out_waits_for_every_item_and_hears_of_a_failure() {
    let env = Env::new();
    let after = "  - name: after\n    command: 'echo after'\n    needs: [square]\n  - name: handler\n    command: 'echo handled'\n    needs: [{job: square, if: failure}]\n";
    let r = env.run_jobs(&fan(after), &["-q"]);
    assert_eq!(r.code, 1, "{r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), ITEMS + 2, "{}", recs.len());
    let a = Run::record(&recs, "after");
    assert_eq!(a["status"], "skipped", "{a:#}");
    assert!(a["error"].as_str().unwrap().contains("square[7]"), "{a:#}");
    let h = Run::record(&recs, "handler");
    assert_eq!(h["status"], "succeeded", "{h:#}");
    let last_item = recs
        .iter()
        .filter(|r| r["job"].as_str().unwrap().starts_with("square["))
        .map(|r| r["end"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    assert!(h["start"].as_str().unwrap() >= last_item.as_str(), "{h:#}");
}

#[test]
fn ordered_output_of_a_lazy_fan_out_follows_the_items() {
    let env = Env::new();
    let yaml = format!(
        "jobs:\n  - name: n\n    shell: 'test $(({{item}} % 7)) = 0 && sleep 0.05; echo {{item}}'\n    for_each: {{range: [1, {ITEMS}]}}\n"
    );
    let r = env.run_jobs(&yaml, &["-j", "4", "--output", "ordered"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want: String = (1..=ITEMS).map(|k| format!("{k}\n")).collect();
    assert_eq!(r.stdout, want);
}
