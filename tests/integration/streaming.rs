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

/// Runs orchestrate under `/usr/bin/time`: how it ended and its peak RSS in MB (`None`
/// where there is no `/usr/bin/time`: then only the behaviour is checked).
fn measured(env: &Env, args: &[&str]) -> (Run, Option<u64>) {
    let (mut c, rss) = timed(env, args);
    let r = Run::from(c.output().unwrap());
    (r, rss.and_then(|f| peak_mb(&f)))
}

/// `orchestrate ARGS` under `/usr/bin/time -f %M -o FILE` when it is there, with FILE.
pub(crate) fn timed(env: &Env, args: &[&str]) -> (Command, Option<std::path::PathBuf>) {
    let time = std::path::Path::new("/usr/bin/time");
    if !time.exists() {
        let mut c = env.cmd();
        c.args(args);
        return (c, None);
    }
    let file = env.path("peak-rss.txt");
    let mut c = Command::new(time);
    c.args(["-f", "%M", "-o"])
        .arg(&file)
        .arg(env!("CARGO_BIN_EXE_orchestrate"))
        .args(args)
        .current_dir(env.dir.path())
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .stdin(Stdio::null());
    (c, Some(file))
}

pub(crate) fn peak_mb(file: &std::path::Path) -> Option<u64> {
    peak_kb(file).map(|kb| kb / 1024)
}

fn peak_kb(file: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().last()?.trim().parse().ok()
}

/// Making every job of a fan of this many items takes well over 150 MB.
const HUGE: usize = 200_000;

fn huge_fan() -> String {
    format!(
        "jobs:\n  - name: big\n    command: 'echo {{item}}'\n    for_each: {{range: [1, {HUGE}]}}\n  - name: after\n    command: 'echo after'\n    needs: [big]\n"
    )
}

#[test]
fn only_one_item_of_a_huge_fan_out_makes_only_that_job() {
    let env = Env::new();
    env.write("jobs.yaml", &huge_fan());
    let (r, rss) = measured(&env, &["jobs.yaml", "--only", "big[5]", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["job"], "big[5]");
    assert_eq!(recs[0]["index"], 4, "its place in the job file");
    assert_eq!(recs[0]["args"], serde_json::json!(["echo", "5"]));
    if let Some(mb) = rss {
        assert!(mb < 100, "--only of one item took {mb} MB");
    }
}

#[test]
fn rerun_of_one_job_of_a_huge_fan_out_makes_only_that_job() {
    let env = Env::new();
    env.write("jobs.yaml", &huge_fan());
    let first = env.run(&["jobs.yaml", "--only", "big[7]", "-q"]);
    assert_eq!(first.code, 0, "{first:?}");
    let (r, rss) = measured(&env, &["rerun", "last", "big[7]", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recs = r.json();
    assert_eq!(recs.len(), 1, "{r:?}");
    assert_eq!(recs[0]["job"], "big[7]");
    assert_eq!(recs[0]["args"], serde_json::json!(["echo", "7"]));
    if let Some(mb) = rss {
        assert!(mb < 100, "rerun of one item took {mb} MB");
    }
}

#[test]
fn skip_of_items_of_a_lazy_fan_out_runs_the_others_and_leaves_out_what_needs_it() {
    let env = Env::new();
    let after = "  - name: after\n    command: 'echo after'\n    needs: [square]\n";
    let r = env.run_jobs(
        &fan(after),
        &[
            "--skip",
            "square[7]",
            "--skip",
            "square[9]",
            "-q",
            "-j",
            "4",
        ],
    );
    assert_eq!(r.code, 0, "square[7] fails, and it is skipped: {r:?}");
    assert!(r.stderr.contains("after"), "{r:?}");
    let recs = env.run(&["show", "last", "--json"]).json();
    assert_eq!(recs.len(), ITEMS - 2, "{}", recs.len());
    assert!(
        !recs
            .iter()
            .any(|r| r["job"] == "square[7]" || r["job"] == "after")
    );
    assert_eq!(Run::record(&recs, "square[10]")["index"], 9);
}

/// Waits for `n` pids in `pids` and interrupts the run they name.
pub(crate) fn interrupt_at(env: &Env, child: &mut std::process::Child, n: usize) -> Option<i32> {
    let pids = crate::helpers::await_pids(&env.path("pids"), n);
    crate::helpers::signal(pids[n - 1], "INT");
    child.wait().unwrap().code()
}

#[test]
fn an_interrupted_huge_fan_out_stores_every_record_and_resumes_without_making_its_jobs() {
    // Half of HUGE: still far past what --resume took when it made every job (about 2.6 KB
    // a job), and half the records to write under Ctrl-C.
    const HUGE: usize = 100_000;
    let env = Env::new();
    // Items up to 900 succeed (up to 1000 once resumed); the next two hold both slots, and
    // Ctrl-C leaves the other items never started.
    env.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: big\n    shell: 'if [ {{item}} -le 900 ]; then exit 0; fi; if [ -e resumed ] && [ {{item}} -le 1000 ]; then exit 0; fi; echo $PPID >> pids; sleep 30'\n    for_each: {{range: [1, {HUGE}]}}\n  - name: after\n    command: 'true'\n    needs: [big]\n"
        ),
    );
    let counts = |env: &Env| env.run(&["runs", "--json"]).json()[0]["counts"].clone();
    let (mut c, rss) = timed(&env, &["jobs.yaml", "-q", "-j", "2"]);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(interrupt_at(&env, &mut child, 2), Some(130));
    let first = counts(&env);
    assert_eq!(first["succeeded"], 900, "{first}");
    assert_eq!(
        first["cancelled"],
        HUGE - 900,
        "every job ends as one record: {first}"
    );
    assert_eq!(first["skipped"], 1, "{first}");
    if let Some(mb) = rss.as_deref().and_then(peak_mb) {
        assert!(mb < 100, "an interrupted run of {HUGE} jobs took {mb} MB");
    }
    env.write("resumed", "");
    let (mut c, rss) = timed(&env, &["jobs.yaml", "--resume", "last", "-j", "2"]);
    let err = std::fs::File::create(env.path("resumed.err")).unwrap();
    let mut child = c.stdout(Stdio::null()).stderr(err).spawn().unwrap();
    assert_eq!(interrupt_at(&env, &mut child, 4), Some(130));
    let said = std::fs::read_to_string(env.path("resumed.err")).unwrap();
    assert!(
        said.contains("900 jobs already succeeded"),
        "{}",
        &said[..500.min(said.len())]
    );
    assert!(
        said.contains("900 carried from run"),
        "{}",
        &said[said.len().saturating_sub(500)..]
    );
    let second = counts(&env);
    assert_eq!(second["succeeded"], 1000, "900 carried, 100 run: {second}");
    assert_eq!(second["cancelled"], HUGE - 1000, "{second}");
    if let Some(mb) = rss.as_deref().and_then(peak_mb) {
        assert!(mb < 100, "--resume of a run of {HUGE} jobs took {mb} MB");
    }
    let carried = env.run(&["logs", "big[900]", "--run", "last"]);
    assert_eq!(
        carried.code, 0,
        "a carried record is the run's: {carried:?}"
    );
}

/// Peak RSS in KB of a run where a fan of `items` is skipped (a job it needs fails), and the
/// record of the job needing the fan (no store: its writes would be most of the time).
fn skipped_fan_rss(items: usize) -> (Option<u64>, serde_json::Value) {
    let env = Env::new();
    env.write(
        "jobs.yaml",
        &format!(
            "jobs:\n  - name: a\n    command: 'false'\n  - name: big\n    command: 'echo {{item}}'\n    needs: [a]\n    for_each: {{range: [1, {items}]}}\n  - name: after\n    command: 'echo after'\n    needs: [big]\n"
        ),
    );
    let (mut c, rss) = timed(&env, &["jobs.yaml", "-q", "--no-store", "--json"]);
    let r = Run::from(c.output().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), items + 2);
    let skipped = lines.iter().filter(|l| l.contains(r#""status":"skipped""#));
    assert_eq!(skipped.count(), items + 1);
    let after = lines
        .iter()
        .find(|l| l.contains(r#""job":"after""#))
        .unwrap();
    (
        rss.as_deref().and_then(peak_kb),
        serde_json::from_str(after).unwrap(),
    )
}

#[test]
fn a_skipped_huge_fan_out_is_recorded_job_by_job_without_holding_its_jobs() {
    let (small, _) = skipped_fan_rss(HUGE / 40);
    let (big, after) = skipped_fan_rss(HUGE * 3 / 5);
    assert_eq!(after["status"], "skipped", "{after:#}");
    let why = after["error"].as_str().unwrap();
    assert!(why.contains("big[1]") && why.contains("skipped"), "{why}");
    if let (Some(small), Some(big)) = (small, big) {
        // Before, every skipped job waited in a queue to be passed on: 13 MB more here. (The
        // records in the event channel, at most 4,096, may differ by a few MB.)
        assert!(
            big < small + 5120,
            "{small} KB for 5,000 items, {big} KB for 120,000"
        );
    }
}
