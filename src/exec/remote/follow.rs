//! The Slurm batch jobs a run follows to their end (`wait: true`): one sweep for all of them,
//! one `squeue` with every id (`sbatch::poll_all`), asked less often as the wait goes on,
//! instead of a query per job every half second.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::squeue::poll_all;
use crate::record::CompletedProcess;

/// The first sweep comes after this; each gap is twice the one before, up to `MAX_GAP`.
const FIRST: Duration = Duration::from_millis(500);
const MAX_GAP: Duration = Duration::from_secs(4);

type Entry = (CompletedProcess, oneshot::Sender<CompletedProcess>);

/// The jobs followed, and whether the sweeping task runs.
static FOLLOWED: Mutex<(Vec<Entry>, bool)> = Mutex::new((Vec::new(), false));

/// Returns the record of a submitted batch job once Slurm says it has ended.
pub async fn until_end(mut rec: CompletedProcess) -> CompletedProcess {
    // A task a sweep saw end before its job took it ends now.
    if super::squeue::seen_ended(&mut rec) {
        return rec;
    }
    let (tx, rx) = oneshot::channel();
    let keep = rec.clone();
    {
        let mut f = FOLLOWED.lock().unwrap_or_else(|e| e.into_inner());
        f.0.push((rec, tx));
        if !f.1 {
            f.1 = true;
            tokio::spawn(sweeps());
        }
    }
    // The sender is dropped only if the sweeping task is gone (the runtime is ending).
    rx.await.unwrap_or(keep)
}

async fn sweeps() {
    let mut gap = FIRST;
    loop {
        tokio::time::sleep(gap).await;
        gap = (gap * 2).min(MAX_GAP);
        let entries = {
            let mut f = FOLLOWED.lock().unwrap_or_else(|e| e.into_inner());
            // Those whose job no longer waits (the run dropped it) are let go.
            f.0.retain(|(_, tx)| !tx.is_closed());
            if f.0.is_empty() {
                f.1 = false;
                return;
            }
            std::mem::take(&mut f.0)
        };
        let (recs, txs): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
        let asked = tokio::task::spawn_blocking(move || {
            let mut recs = recs;
            let ended = poll_all(&mut recs);
            (recs, ended)
        })
        .await;
        let Ok((recs, ended)) = asked else {
            return;
        };
        let mut f = FOLLOWED.lock().unwrap_or_else(|e| e.into_inner());
        for ((rec, tx), ended) in recs.into_iter().zip(txs).zip(ended) {
            if ended {
                let _ = tx.send(rec);
            } else {
                f.0.push((rec, tx));
            }
        }
    }
}
