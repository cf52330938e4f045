//! The scheduler against a fake back end: no processes, only what the scheduler decides.
//! A job's first word says what the fake does: `ok`, `fail`, `sleep MS` (then succeeds, unless
//! the run stops it first), or `hang` (runs until the run stops it); a job stopped reports
//! itself cancelled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::backend::{Backend, Running};
use super::process::{JobCtx, wait_cancel};
use super::{Cancel, CaptureRoot, Event, ExecOptions, Local, ends, execute};
use crate::plan::{Plan, PlannedJob};
use crate::record::{CompletedProcess, Counts, Secrets, Status};

mod conditions;

/// What the fake saw: starts and ends in order, and how many jobs ran at once at most.
#[derive(Default)]
struct Fake {
    log: Mutex<Vec<String>>,
    now: AtomicUsize,
    most: AtomicUsize,
    /// The most jobs of group `g` at once.
    group_now: AtomicUsize,
    group_most: AtomicUsize,
}

impl Backend for Fake {
    fn run<'a>(&'a self, job: &'a PlannedJob, ctx: JobCtx) -> Running<'a> {
        Box::pin(self.job(job, ctx))
    }
}

impl Fake {
    async fn job(&self, job: &PlannedJob, mut ctx: JobCtx) -> CompletedProcess {
        let in_g = job.group.as_deref() == Some("g");
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        if in_g {
            let g = self.group_now.fetch_add(1, Ordering::SeqCst) + 1;
            self.group_most.fetch_max(g, Ordering::SeqCst);
        }
        self.log.lock().unwrap().push(format!("start {}", job.name));
        let status = match job.argv[0].as_str() {
            "ok" => Status::Succeeded,
            "fail" => Status::Failed,
            "sleep" => {
                let ms = job.argv[1].parse().unwrap();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Status::Succeeded,
                    _ = wait_cancel(&mut ctx.cancel) => Status::Cancelled,
                }
            }
            _ => {
                wait_cancel(&mut ctx.cancel).await;
                Status::Cancelled
            }
        };
        self.log.lock().unwrap().push(format!("end {}", job.name));
        self.now.fetch_sub(1, Ordering::SeqCst);
        if in_g {
            self.group_now.fetch_sub(1, Ordering::SeqCst);
        }
        let mut rec = ends::base(job);
        rec.status = status;
        rec.returncode = Some(i32::from(status != Status::Succeeded));
        rec.slot = Some(ctx.slot);
        rec
    }
}

/// Runs `yaml` with `concurrency` slots on the fake; returns its records by job name (in
/// job-file order) and what the fake saw.
fn run(yaml: &str, concurrency: usize, cancel: Cancel) -> (Vec<CompletedProcess>, Arc<Fake>) {
    run_plan(plan(yaml), concurrency, cancel)
}

fn plan(yaml: &str) -> Plan {
    Plan::from_text(std::path::Path::new("t.yaml"), yaml).unwrap()
}

fn run_plan(plan: Plan, concurrency: usize, cancel: Cancel) -> (Vec<CompletedProcess>, Arc<Fake>) {
    let plan = Arc::new(plan);
    let fake = Arc::new(Fake::default());
    let dir = tempfile::tempdir().unwrap();
    let opts = ExecOptions {
        concurrency,
        capture: CaptureRoot(dir.path().to_path_buf()),
        forward_output: false,
        launcher: Arc::new(Local),
        run_env: Vec::new(),
        secrets: Secrets::default(),
        background: None,
        backend: Some(fake.clone()),
        history: Default::default(),
    };
    let (tx, rx) = crate::exec::event_channel();
    let (_cancel_tx, cancel_rx) = watch::channel(cancel);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = rt.block_on(execute(plan.clone(), opts, tx, cancel_rx));
    let mut recs: Vec<CompletedProcess> = rx
        .try_iter()
        .filter_map(|ev| match ev {
            Event::JobFinished(r) => Some(r.into_inner()),
            _ => None,
        })
        .collect();
    assert_eq!(recs.len(), plan.jobs.len(), "every job ends as one record");
    assert_eq!(summary.total(), plan.jobs.len());
    recs.sort_by_key(|r| r.index);
    (recs, fake)
}

fn statuses(recs: &[CompletedProcess]) -> Vec<(&str, Status)> {
    recs.iter().map(|r| (r.job.as_str(), r.status)).collect()
}

fn log(fake: &Fake) -> Vec<String> {
    fake.log.lock().unwrap().clone()
}

#[test]
fn ready_jobs_start_in_job_file_order() {
    let (_, fake) = run("jobs: [ok a, ok b, ok c, ok d]", 1, Cancel::None);
    let starts: Vec<String> = log(&fake)
        .into_iter()
        .filter(|l| l.starts_with("start"))
        .collect();
    assert_eq!(
        starts,
        ["start ok-a", "start ok-b", "start ok-c", "start ok-d"]
    );
}

#[test]
fn no_more_jobs_run_at_once_than_there_are_slots() {
    let jobs: Vec<String> = (0..12).map(|i| format!("sleep 20 {i}")).collect();
    let (recs, fake) = run(&format!("jobs: [{}]", jobs.join(", ")), 3, Cancel::None);
    assert!(recs.iter().all(|r| r.status == Status::Succeeded));
    assert_eq!(fake.most.load(Ordering::SeqCst), 3);
    // Slots are 0..3 and reused.
    assert!(recs.iter().all(|r| r.slot.is_some_and(|s| s < 3)));
}

#[test]
fn a_group_limit_holds_below_the_concurrency() {
    let yaml = "groups: {g: 1}\njobs:\n".to_string()
        + &(0..6)
            .map(|i| format!("  - {{name: j{i}, command: sleep 15, group: g}}\n"))
            .collect::<String>()
        + "  - sleep 15\n";
    let (_, fake) = run(&yaml, 4, Cancel::None);
    assert_eq!(fake.group_most.load(Ordering::SeqCst), 1);
    assert!(
        fake.most.load(Ordering::SeqCst) >= 2,
        "the ungrouped job runs alongside"
    );
}

#[test]
fn a_job_starts_after_what_it_needs_ended() {
    let yaml = "jobs:\n  - {name: b, command: ok, needs: [a]}\n  - {name: a, command: sleep 20}\n";
    let (recs, fake) = run(yaml, 4, Cancel::None);
    assert_eq!(log(&fake), ["start a", "end a", "start b", "end b"]);
    assert_eq!(
        statuses(&recs),
        [("b", Status::Succeeded), ("a", Status::Succeeded)]
    );
}

#[test]
fn what_needs_a_failed_job_is_skipped_transitively_and_the_rest_runs() {
    let yaml = "jobs:\n  - {name: a, command: fail}\n  - {name: b, command: ok, needs: [a]}\n  - {name: c, command: ok, needs: [b]}\n  - {name: d, command: ok}\n";
    let (recs, fake) = run(yaml, 2, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("a", Status::Failed),
            ("b", Status::Skipped),
            ("c", Status::Skipped),
            ("d", Status::Succeeded)
        ]
    );
    assert_eq!(
        recs[1].error.as_deref(),
        Some("needs `a`, which failed (exit 1)")
    );
    assert_eq!(
        recs[2].error.as_deref(),
        Some("needs `b`, which was skipped")
    );
    assert!(
        !log(&fake)
            .iter()
            .any(|l| l.ends_with(" b") || l.ends_with(" c"))
    );
}

#[test]
fn on_failure_stop_starts_nothing_new() {
    let yaml = "on_failure: stop\njobs: [fail, ok x, ok y]";
    let (recs, fake) = run(yaml, 1, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("fail", Status::Failed),
            ("ok-x", Status::Skipped),
            ("ok-y", Status::Skipped)
        ]
    );
    assert!(
        recs[1]
            .error
            .as_deref()
            .unwrap()
            .contains("the run stops on failure")
    );
    assert_eq!(log(&fake), ["start fail", "end fail"]);
}

#[test]
fn on_failure_kill_stops_running_jobs_too() {
    let yaml = "on_failure: kill\njobs:\n  - {name: long, command: hang}\n  - {name: bad, command: fail}\n  - {name: late, command: ok, needs: [bad]}\n";
    let (recs, _) = run(yaml, 2, Cancel::None);
    assert_eq!(
        statuses(&recs),
        [
            ("long", Status::Cancelled),
            ("bad", Status::Failed),
            ("late", Status::Skipped)
        ]
    );
    assert_eq!(
        recs[0].error.as_deref(),
        Some("stopped: `bad` failed (exit 1) and the run stops on failure (on_failure: kill)")
    );
}

#[test]
fn a_run_cancelled_before_it_starts_starts_nothing() {
    let (recs, fake) = run("jobs: [ok a, ok b]", 2, Cancel::Graceful(15));
    assert!(recs.iter().all(|r| r.status == Status::Cancelled));
    assert_eq!(
        recs[0].error.as_deref(),
        Some("not started: the run was interrupted")
    );
    assert!(log(&fake).is_empty());
}
