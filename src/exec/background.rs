//! Background jobs (`background: true`, like `cmd &`): orchestrate starts a copy of itself as a
//! supervisor in a new session; the supervisor starts the job, records its pid, waits for it
//! and writes its final record into the store, even after the run has ended.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::process::JobCtx;
use super::{Cancel, Event, ends};
use crate::plan::PlannedJob;
use crate::record::{CompletedProcess, ProcessIdentity, Status};
use crate::sys;

/// What the scheduler needs to start supervisors.
#[derive(Debug, Clone)]
pub struct BackgroundCtx {
    /// The orchestrate binary to re-execute.
    pub exe: PathBuf,
    pub state_dir: PathBuf,
    pub run_id: String,
    /// The run waits for its background jobs (`wait: true`).
    pub wait: bool,
}

/// Everything the supervisor needs, sent on its stdin (never written to disk: it may hold
/// secret values).
#[derive(Debug, Serialize, Deserialize)]
pub struct SuperviseSpec {
    pub state_dir: PathBuf,
    pub run_id: String,
    pub capture_root: PathBuf,
    pub job: PlannedJob,
    pub slot: usize,
    pub run_env: Vec<(String, String)>,
    pub secrets: Vec<String>,
    /// The run waits for this job and reports its end itself: `status` need not show it again.
    #[serde(default)]
    pub reported: bool,
    /// Notes from the job's history for its record (how `timeout: auto` was settled).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The supervisor's first line: the job started (`started PID`) or ended at once
/// (`record JSON`); in wait mode a `record JSON` line follows at the end.
pub const STARTED: &str = "started ";
pub const RECORD: &str = "record ";

fn failed(job: &PlannedJob, ctx: &JobCtx, status: Status, msg: String) -> CompletedProcess {
    let mut rec = ends::not_run(job, ctx.slot, None, status, msg);
    rec.background = true;
    rec
}

/// Starts a background job under its supervisor; with `wait`, follows it to its end.
pub async fn run_background(job: &PlannedJob, ctx: JobCtx, bg: &BackgroundCtx) -> CompletedProcess {
    let (mut child, supervisor_pid) = match start_supervisor(job, &ctx, bg).await {
        Ok(c) => c,
        Err(why) => return failed(job, &ctx, Status::SpawnError, why),
    };
    let Some(stdout) = child.stdout.take() else {
        return failed(
            job,
            &ctx,
            Status::Lost,
            "the supervisor has no output pipe".into(),
        );
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::select! {
        l = lines.next_line() => l.ok().flatten(),
        _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => None,
    };
    let Some(first) = first else {
        let why = format!("the supervisor (pid {supervisor_pid}) ended without starting the job");
        return failed(job, &ctx, Status::Lost, why);
    };
    if let Some(json) = first.strip_prefix(RECORD) {
        return parse_record(json, job, &ctx);
    }
    let pid: Option<u32> = first
        .strip_prefix(STARTED)
        .and_then(|p| p.trim().parse().ok());
    if !bg.wait {
        let mut rec = ends::running_background(job, ctx.slot, pid, &ctx.run_env, &ctx.capture);
        // The same record as the supervisor's own (which this one may replace): it names the
        // supervisor, so that `status` can tell a running job from a lost one.
        rec.supervisor = Some(ProcessIdentity::of(supervisor_pid));
        rec.process = pid.map(ProcessIdentity::of);
        rec.notes.push(format!(
            "running in the background (supervisor pid {supervisor_pid}); `orchestrate status` and `orchestrate wait` follow it"
        ));
        return rec;
    }
    let _ = ctx.events.send(Event::JobStarted {
        index: job.index,
        pid,
        slot: ctx.slot,
        started: SystemTime::now(),
        running: None,
    });
    follow(job, ctx, child, lines, supervisor_pid).await
}

/// Starts `orchestrate __supervise` in a session of its own and hands it the job's spec on
/// stdin (never on disk: it may hold secret values). Returns the child and its pid.
async fn start_supervisor(
    job: &PlannedJob,
    ctx: &JobCtx,
    bg: &BackgroundCtx,
) -> Result<(tokio::process::Child, u32), String> {
    let spec = SuperviseSpec {
        state_dir: bg.state_dir.clone(),
        run_id: bg.run_id.clone(),
        capture_root: ctx.capture.0.clone(),
        job: job.clone(),
        slot: ctx.slot,
        run_env: ctx.run_env.clone(),
        secrets: ctx.secrets.values().to_vec(),
        reported: bg.wait,
        notes: ctx.history.notes.clone(),
    };
    let mut cmd = std::process::Command::new(&bg.exe);
    cmd.arg("__supervise")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    sys::new_session(&mut cmd);
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| format!("cannot start the supervisor {}: {e}", bg.exe.display()))?;
    let supervisor_pid = child.id().unwrap_or(0);
    let json = serde_json::to_vec(&spec).expect("the spec serializes");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&json).await;
        let _ = stdin.shutdown().await;
    }
    Ok((child, supervisor_pid))
}

/// Waits for the supervisor's final record (the run waits for its background jobs); a stop
/// of the run is passed on to the supervisor, which stops the job as the run would.
async fn follow(
    job: &PlannedJob,
    mut ctx: JobCtx,
    mut child: tokio::process::Child,
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    supervisor_pid: u32,
) -> CompletedProcess {
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => if let Some(json) = l.strip_prefix(RECORD) {
                    let _ = child.wait().await;
                    return parse_record(json, job, &ctx);
                },
                _ => {
                    let _ = child.wait().await;
                    return failed(job, &ctx, Status::Lost, format!(
                        "the supervisor (pid {supervisor_pid}) ended without a record"
                    ));
                }
            },
            r = ctx.cancel.changed(), if !asked_to_stop => {
                if r.is_err() || *ctx.cancel.borrow() != Cancel::None {
                    let _ = sys::kill(supervisor_pid, sys::SIGTERM);
                    asked_to_stop = true;
                }
            }
        }
    }
}

fn parse_record(json: &str, job: &PlannedJob, ctx: &JobCtx) -> CompletedProcess {
    match serde_json::from_str::<CompletedProcess>(json) {
        Ok(mut rec) => {
            rec.background = true;
            rec
        }
        Err(e) => failed(
            job,
            ctx,
            Status::Lost,
            format!("unreadable record from the supervisor: {e}"),
        ),
    }
}
