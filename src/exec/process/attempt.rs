//! One attempt of a job: start its process, drain its pipes while waiting for it, enforce its
//! timeout and the run's cancellation on its whole process group, watch whether it runs slow,
//! and turn its end into the attempt's record.

use std::time::SystemTime;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::drain::Drain;
use super::pending::Pending;
use super::pipe::{Pipe, ReadBuf, read_now, read_opt};
use super::slow::SlowWatch;
use super::spawn::{
    Child, ChildExit, ChildIo, argv_for_slot, check_dir, spawn_child, spawn_failure,
};
use super::stdio::{FileTarget, Streams, open_streams};
use super::{JobCtx, Launch, PIPE_GRACE};
use crate::environ::JobEnv;
use crate::exec::remote::wrap::Control;
use crate::exec::{Cancel, Event, ends};
use crate::plan::PlannedJob;
use crate::record::{CompletedProcess, Sealed};
use crate::sys;

/// Runs one attempt and returns its record (never fails: what cannot start is a record).
pub(super) async fn run_attempt(job: &PlannedJob, ctx: &mut JobCtx) -> CompletedProcess {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let argv = argv_for_slot(job, ctx.slot);
    let env = JobEnv::for_job(job, &ctx.run_env, ctx.slot);
    let launch = ctx.launcher.launch(job, &argv, env);
    let host = ctx.launcher.host();
    let failed =
        |why: String| ends::spawn_error(job, ctx.slot, host.clone(), Some(&launch.env), why);
    let cwd = launch.cmd.get_current_dir();
    if let Err(why) = check_dir(cwd) {
        return failed(why);
    }
    let streams = match open_streams(job, ctx, cwd, &launch) {
        Ok(s) => s,
        Err(why) => return failed(why),
    };
    let child = match spawn_held(&launch, &streams.io).await {
        Ok(c) => c,
        Err(e) => return failed(spawn_failure(&job.argv[0], cwd, &e)),
    };
    let mut watch = Watch::start(job, ctx, child, streams);
    let mut running = ends::running(
        job,
        ctx.slot,
        watch.pgid,
        host.clone(),
        &launch.env,
        &ctx.capture,
    );
    running.started = started;
    running.finished = started;
    let _ = ctx.events.send(Event::JobStarted {
        index: job.index,
        pid: Some(watch.pgid),
        slot: ctx.slot,
        started,
        running: Some(Box::new(Sealed::new(running, &ctx.secrets))),
    });
    watch.run(ctx).await;
    let control = watch.finish(ctx).await;
    let mut rec = watch.record(job, ctx, control);
    rec.started = started;
    rec.duration = t0.elapsed();
    ends::with_env(&mut rec, &launch.env);
    rec
}

/// How long a job waits for file descriptors before its spawn counts as failed.
const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Spawns the job; when this process is out of file descriptors (other jobs hold them), the
/// job is held back and tried again as they free some, instead of failing.
async fn spawn_held(launch: &Launch, io: &[ChildIo; 3]) -> std::io::Result<Child> {
    if let Some(d) = &launch.delegate {
        return super::delegated::start_delegated(d.as_ref(), io);
    }
    let t0 = Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match spawn_child(&launch.cmd, launch.env_clear, io) {
            Err(e) if sys::out_of_descriptors(&e) && t0.elapsed() < HOLD_LIMIT => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A running attempt: its process, its pipes and drains, and where its stop stands.
pub(super) struct Watch {
    pub(super) pgid: u32,
    pub(super) child: ChildExit,
    pub(super) out: Option<Pipe>,
    pub(super) err: Option<Pipe>,
    pub(super) buf_o: ReadBuf,
    pub(super) buf_e: ReadBuf,
    pub(super) stdout_drain: Option<Drain>,
    pub(super) stderr_drain: Option<Drain>,
    pub(super) stdout_file: Option<FileTarget>,
    pub(super) stderr_file: Option<FileTarget>,
    pub(super) status: Option<std::process::ExitStatus>,
    pub(super) wait_error: Option<String>,
    pub(super) timeout: Option<std::time::Duration>,
    pub(super) timeout_at: Option<Instant>,
    pub(super) kill_after: std::time::Duration,
    pub(super) timed_out: bool,
    pub(super) cancelled: bool,
    pub(super) kill_at: Option<Instant>,
    pub(super) killed: bool,
    pub(super) pipe_deadline: Option<Instant>,
    pub(super) cancel_open: bool,
    pub(super) notes: Vec<String>,
    pub(super) index: usize,
    pub(super) slow: SlowWatch,
    pub(super) pending: Pending,
}

impl Watch {
    /// Spawns the process and takes over its pipes; stdin text is written by a task of its own.
    fn start(job: &PlannedJob, ctx: &JobCtx, mut child: Child, streams: Streams) -> Watch {
        let Streams {
            io,
            stdin_feed,
            mut stdout_drain,
            stderr_drain,
            merged_reader,
            stdout_file,
            stderr_file,
        } = streams;
        // The child has its ends of these: ours close now.
        drop(io);
        if let (Some(feed), Some(mut stdin)) = (stdin_feed, child.stdin.take()) {
            tokio::spawn(async move {
                // A job that does not read its input closes the pipe: that is not an error.
                if stdin.write_all(&feed.bytes).await.is_ok()
                    && let Some(f) = feed.then
                {
                    let mut f = tokio::fs::File::from_std(f);
                    let _ = tokio::io::copy(&mut f, &mut stdin).await;
                }
                let _ = stdin.shutdown().await;
            });
        }
        let mut out = child.stdout.take().map(Pipe::new);
        if let Some(r) = merged_reader {
            let fd = std::os::fd::OwnedFd::from(r);
            match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(rx) => out = Some(Pipe::new(rx)),
                Err(e) => {
                    if let Some(d) = &mut stdout_drain {
                        d.error = Some(format!("cannot read the output pipe: {e}"));
                    }
                }
            }
        }
        let err = child.stderr.take().map(Pipe::new);
        let from_start = stderr_drain.as_ref().is_some_and(|d| d.filter.is_some())
            && ctx.launcher.timeout_from_start();
        let mut watch = Watch {
            pgid: child.exit.pid,
            buf_o: ReadBuf::take(out.is_some()),
            buf_e: ReadBuf::take(err.is_some()),
            child: child.exit,
            out,
            err,
            stdout_drain,
            stderr_drain,
            stdout_file,
            stderr_file,
            status: None,
            wait_error: None,
            timeout: job.timeout,
            // A job that waits for a start line starts its clock then (`saw_start`).
            timeout_at: job
                .timeout
                .filter(|_| !from_start)
                .map(|t| Instant::now() + t),
            kill_after: job.kill_after,
            timed_out: false,
            cancelled: false,
            kill_at: None,
            killed: false,
            pipe_deadline: None,
            cancel_open: true,
            notes: Vec::new(),
            index: job.index,
            slow: SlowWatch::start(ctx),
            pending: Pending::new(from_start),
        };
        // A stop requested before the job started (a cancel racing with the spawn).
        if *ctx.cancel.borrow() != Cancel::None {
            watch.stop_gracefully(ctx);
        }
        watch
    }

    pub(super) fn control(&self) -> Option<&Control> {
        self.stderr_drain
            .as_ref()
            .and_then(|d| d.filter.as_ref())
            .map(|f| &f.control)
    }

    /// The wrapper's start line came: a timeout that counts from there starts now.
    fn check_start(&mut self) {
        let control = self.stderr_drain.as_ref().and_then(|d| d.filter.as_ref());
        if self.pending.saw_start(control.map(|f| &f.control))
            && self.timeout_at.is_none()
            && !self.timed_out
        {
            self.timeout_at = self.timeout.map(|t| Instant::now() + t);
        }
    }

    fn signal(&self, ctx: &JobCtx, sig: i32) {
        ctx.launcher.signal(self.pgid, sig, self.control());
    }

    /// TERM now, KILL after the job's grace.
    fn stop_gracefully(&mut self, ctx: &JobCtx) {
        self.cancelled = true;
        self.signal(ctx, sys::SIGTERM);
        let at = Instant::now() + self.kill_after;
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    /// Drains the pipes until the process ended and its pipes closed (or the grace for a
    /// leftover holding them ran out), stopping it on timeout or cancellation.
    async fn run(&mut self, ctx: &mut JobCtx) {
        let forward = ctx.forward_output;
        loop {
            if self.status.is_some() && self.out.is_none() && self.err.is_none() {
                return;
            }
            let pipes_open = self.out.is_some() || self.err.is_some();
            tokio::select! {
                r = read_opt(&mut self.out, &mut self.buf_o) => match r {
                    Ok(0) | Err(_) => self.out = None,
                    Ok(n) => keep(&mut self.stdout_drain, &self.buf_o.0[..n], forward, self.index, ctx),
                },
                r = read_opt(&mut self.err, &mut self.buf_e) => match r {
                    Ok(0) | Err(_) => self.err = None,
                    Ok(n) => {
                        keep(&mut self.stderr_drain, &self.buf_e.0[..n], forward, self.index, ctx);
                        self.check_start();
                    }
                },
                st = self.child.wait(pipes_open), if self.status.is_none() && self.wait_error.is_none() => {
                    if !self.exited(st, ctx) {
                        return;
                    }
                },
                _ = sleep_opt(self.timeout_at), if self.status.is_none() && !self.timed_out && !self.cancelled => {
                    self.timed_out = true;
                    self.signal(ctx, sys::SIGTERM);
                    self.kill_at = Some(Instant::now() + self.kill_after);
                },
                _ = sleep_opt(self.slow.at()), if self.status.is_none() => self.slow.passed(self.index, ctx),
                _ = sleep_opt(self.pending.ask_at()), if self.status.is_none() => {
                    let control = self.control().cloned();
                    self.pending.ask(ctx.launcher.as_ref(), control.as_ref()).await;
                },
                _ = sleep_opt(self.kill_at), if !self.killed => {
                    self.killed = true;
                    self.signal(ctx, sys::SIGKILL);
                },
                r = ctx.cancel.changed(), if self.cancel_open => self.cancel_changed(r.is_ok(), ctx),
                _ = sleep_opt(self.pipe_deadline), if self.status.is_some() => {
                    self.notes.push(format!(
                        "output still held open by a leftover process {} ms after the job exited; stopped reading",
                        PIPE_GRACE.as_millis()
                    ));
                    return;
                },
            }
        }
    }

    /// The process ended: its pipes are usually at their end by now, so they are read there,
    /// and the grace timer is armed only for one still open. False: waiting failed.
    fn exited(&mut self, st: std::io::Result<std::process::ExitStatus>, ctx: &JobCtx) -> bool {
        match st {
            Ok(st) => {
                self.status = Some(st);
                let (fwd, idx) = (ctx.forward_output, self.index);
                read_now(
                    &mut self.out,
                    &mut self.buf_o,
                    &mut self.stdout_drain,
                    fwd,
                    idx,
                    &ctx.events,
                );
                read_now(
                    &mut self.err,
                    &mut self.buf_e,
                    &mut self.stderr_drain,
                    fwd,
                    idx,
                    &ctx.events,
                );
            }
            Err(e) => {
                self.wait_error = Some(format!("waiting for the process failed: {e}"));
                return false;
            }
        }
        if self.out.is_some() || self.err.is_some() {
            self.pipe_deadline = Some(Instant::now() + PIPE_GRACE);
        }
        true
    }

    fn cancel_changed(&mut self, open: bool, ctx: &mut JobCtx) {
        if !open {
            self.cancel_open = false;
            return;
        }
        if self.status.is_some() {
            return;
        }
        let level = *ctx.cancel.borrow_and_update();
        match level {
            Cancel::None => {}
            Cancel::Graceful(_) => {
                if !self.cancelled {
                    self.stop_gracefully(ctx);
                }
            }
            Cancel::Hard => {
                self.cancelled = true;
                self.killed = true;
                self.signal(ctx, sys::SIGKILL);
            }
        }
    }

    /// After the loop: what survived a stop is swept, the drains flushed, and a stopped
    /// remote job made sure to be gone. Returns the wrapper's report, for a wrapped job.
    async fn finish(&mut self, ctx: &JobCtx) -> Option<Control> {
        let stopped = self.timed_out || self.cancelled;
        if stopped {
            // Whatever of the group survived the TERM (children that ignore it, or were
            // spawned after it); a delegated job's group is on the other side.
            match self.child.delegated() {
                true => self.signal(ctx, sys::SIGKILL),
                false => drop(sys::killpg(self.pgid, sys::SIGKILL)),
            }
        }
        for d in [&mut self.stdout_drain, &mut self.stderr_drain]
            .into_iter()
            .flatten()
        {
            let rest = d.finish();
            if ctx.forward_output {
                d.forward(self.index, &rest, &ctx.events);
                d.flush_partial(self.index, &ctx.events);
            }
        }
        let control = self.control().cloned();
        if stopped
            && let Some(c) = &control
            && let Some(sweep) = ctx.launcher.sweep_later(c)
        {
            sweep.await;
        }
        control
    }
}

/// Keeps a chunk read from a pipe, and passes its lines on for live display.
fn keep(drain: &mut Option<Drain>, chunk: &[u8], forward: bool, index: usize, ctx: &JobCtx) {
    if let Some(d) = drain {
        let kept = d.write(chunk);
        if forward {
            let kept = kept.into_owned();
            d.forward(index, &kept, &ctx.events);
        }
    }
}
