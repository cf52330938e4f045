//! One `scancel` for many Slurm jobs: the jobs of a run stopped together (Ctrl-C, a halt) each
//! ask for their Slurm job to be cancelled, and the asks that come close together go out as one
//! `scancel ID...` instead of one process (and its controller connection) each.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// The first ask waits until no other has joined it for `QUIET` (jobs stopped together end
/// spread out on a loaded machine), at most `GATHER_MAX`.
const QUIET: Duration = Duration::from_millis(200);
const GATHER_MAX: Duration = Duration::from_secs(2);

struct Batch {
    ids: Vec<String>,
    done: watch::Receiver<bool>,
}

static PENDING: Mutex<Option<Batch>> = Mutex::new(None);

/// Cancels Slurm job `id`, together with the other jobs asked for at about the same time;
/// returns once the `scancel` that holds it has ended.
pub async fn cancel(id: String) {
    let (lead, mut done) = {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        match pending.as_mut() {
            Some(b) => {
                if !b.ids.contains(&id) {
                    b.ids.push(id);
                }
                (None, b.done.clone())
            }
            None => {
                let (tx, rx) = watch::channel(false);
                *pending = Some(Batch {
                    ids: vec![id],
                    done: rx.clone(),
                });
                (Some(tx), rx)
            }
        }
    };
    let Some(tx) = lead else {
        let _ = done.wait_for(|d| *d).await;
        return;
    };
    let t0 = tokio::time::Instant::now();
    let mut seen = 1;
    loop {
        tokio::time::sleep(QUIET).await;
        let now = PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |b| b.ids.len());
        if now == seen || t0.elapsed() >= GATHER_MAX {
            break;
        }
        seen = now;
    }
    let ids = PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .map(|b| b.ids)
        .unwrap_or_default();
    let mut cmd = std::process::Command::new("scancel");
    cmd.args(&ids);
    crate::exec::process::run_stop_command(cmd).await;
    let _ = tx.send(true);
}
