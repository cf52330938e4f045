//! The supervisor of one background job: `orchestrate __supervise` (started by a run, in its
//! own session, with its spec on stdin). It starts the job, records it as running with its
//! pid, waits for it, and records how it ended, whatever became of the run meanwhile.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::watch;

use crate::exec::background::{RECORD, STARTED, SuperviseSpec};
use crate::exec::process::{self, CaptureRoot, JobCtx};
use crate::exec::{Cancel, Event, Local};
use crate::record::ProcessIdentity;
use crate::record::{Sealed, Secrets, Status};
use crate::store::RunStore;
use crate::sys;

/// This process, as a supervisor others can check on.
pub fn me() -> ProcessIdentity {
    ProcessIdentity::of(std::process::id())
}

fn say(line: &str) {
    // The run may have stopped listening (it does not wait): that is fine.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `orchestrate __supervise`: reads the spec, runs the job, records it; the exit code says
/// only whether the supervisor itself could work (2: no spec, 70: no runtime).
pub fn supervise() -> i32 {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 2;
    }
    let Ok(spec) = serde_json::from_slice::<SuperviseSpec>(&input) else {
        return 2;
    };
    drop(input);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 70;
    };
    let me = me();
    let (tx, rx) = crate::exec::event_channel();
    let (cancel_tx, cancel_rx) = watch::channel(Cancel::None);
    let secrets = Secrets::new(spec.secrets.clone());
    let watcher = record_when_started(&spec, &me, &secrets, rx);
    let ctx = JobCtx {
        slot: spec.slot,
        capture: CaptureRoot(spec.capture_root.clone()),
        events: tx,
        forward_output: false,
        cancel: cancel_rx,
        launcher: Arc::new(Local),
        run_env: spec.run_env.clone(),
        secrets: secrets.clone(),
        // No slow warning: no run hears this supervisor's events.
        history: crate::exec::JobHistory {
            slow: None,
            notes: spec.notes.clone(),
        },
        slow_told: false,
    };
    let job = spec.job.clone();
    // Processes the job detaches from its group (setsid) become our children when their
    // parent dies, so that a stopped job can be swept whole, as a run sweeps its jobs.
    sys::become_subreaper();
    let mut rec = rt.block_on(async move {
        stop_on_signals(cancel_tx);
        process::run_job(&job, ctx).await
    });
    if matches!(rec.status, Status::Cancelled | Status::TimedOut) {
        crate::run::sweep_orphans();
    }
    let _ = watcher.join();
    rec.background = true;
    rec.supervisor = Some(me);
    let rec = Sealed::new(rec, &secrets);
    if let Ok(mut store) = RunStore::open(&spec.state_dir) {
        // A busy database is waited for (busy timeout); keep trying a little beyond that.
        for _ in 0..5 {
            if store
                .put_background_seen(&spec.run_id, &rec, spec.reported)
                .is_ok()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    say(&format!(
        "{RECORD}{}",
        serde_json::to_string(&*rec).expect("records serialize")
    ));
    rt.shutdown_background();
    0
}

/// Records the job as running as soon as it has a pid, and tells the run it started.
fn record_when_started(
    spec: &SuperviseSpec,
    me: &ProcessIdentity,
    secrets: &Secrets,
    rx: mpsc::Receiver<Event>,
) -> std::thread::JoinHandle<()> {
    let state_dir = spec.state_dir.clone();
    let run_id = spec.run_id.clone();
    let job = spec.job.clone();
    let me = me.clone();
    let secrets = secrets.clone();
    let run_env = spec.run_env.clone();
    let capture = CaptureRoot(spec.capture_root.clone());
    std::thread::spawn(move || {
        let mut store = RunStore::open(&state_dir).ok();
        for ev in rx {
            if let Event::JobStarted {
                pid, slot, started, ..
            } = ev
            {
                let mut rec =
                    crate::exec::ends::running_background(&job, slot, pid, &run_env, &capture);
                rec.started = started;
                rec.finished = started;
                rec.supervisor = Some(me.clone());
                rec.process = pid.map(ProcessIdentity::of);
                let rec = Sealed::new(rec, &secrets);
                if let Some(s) = &mut store {
                    let _ = s.put_background(&run_id, &rec);
                }
                say(&format!("{STARTED}{}", pid.unwrap_or(0)));
            }
        }
    })
}

/// No terminal to lose: SIGHUP changes nothing. TERM/INT (`orchestrate kill`, the run being
/// interrupted while it waits) stop the job gracefully.
fn stop_on_signals(cancel_tx: watch::Sender<Cancel>) {
    use tokio::signal::unix::{SignalKind, signal};
    let hup = signal(SignalKind::hangup());
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    if let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (hup, term, int) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => {}
                    _ = term.recv() => { let _ = cancel_tx.send(Cancel::Graceful(sys::SIGTERM)); }
                    _ = int.recv() => { let _ = cancel_tx.send(Cancel::Graceful(sys::SIGINT)); }
                }
            }
        });
    }
}
