//! Stopping what a job left on a remote side: the commands remote back ends run to signal a
//! job there (`ssh host kill`, `scancel`). Local signals go straight to the job's process
//! group (`Launcher::signal`).

use std::process::Stdio;
use std::time::Duration;

/// How long a remote stop (`ssh host kill`, `scancel`) may take before we give up on it.
const STOP_COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Runs a stop command to its end (or its time limit), with no input or output.
pub async fn run_stop_command(cmd: std::process::Command) {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // Best effort: the local client is killed anyway, and a stop that fails (host gone, job
    // already ended) has nothing left to stop.
    if let Ok(mut child) = cmd.spawn() {
        let _ = tokio::time::timeout(STOP_COMMAND_LIMIT, child.wait()).await;
    }
}

/// Starts a stop command without waiting for it: the job's own loop keeps draining while the
/// remote side stops.
pub fn spawn_stop_command(cmd: std::process::Command) {
    tokio::spawn(run_stop_command(cmd));
}
