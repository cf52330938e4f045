//! `orchestrate gc`: old runs and their output removed, by the limits given.

use std::io::Write;
use std::time::Duration;

use super::InspectError;
use crate::error::exit;
use crate::store::{Retention, RunStore};

pub(super) fn gc(
    db: &mut RunStore,
    keep_runs: Option<usize>,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    if keep_runs.is_none() && max_age.is_none() && max_bytes.is_none() {
        return Err(InspectError::Usage(
            "say what to keep: --keep-runs N, --max-age DURATION and/or --max-bytes SIZE".into(),
        ));
    }
    let rep = db.gc(
        &Retention {
            max_runs: keep_runs,
            max_age,
            max_bytes,
        },
        None,
    )?;
    removed(rep.runs_removed, rep.bytes_removed, out)?;
    Ok(exit::OK)
}

/// The line `gc` ends with.
pub(super) fn removed(runs: usize, bytes: u64, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "removed {runs} run{} ({bytes} bytes of output)",
        if runs == 1 { "" } else { "s" },
    )
}
