//! `orchestrate diff`: what changed in a job's output between two runs, as a unified diff.

use std::io::Write;

use super::InspectError;
use crate::error::exit;
use crate::store::RunStore;

pub(super) fn diff(
    db: &mut RunStore,
    job: &str,
    runs: &[String],
    stderr: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let (old_id, new_id) = match runs {
        [] => {
            let hist = db.history(job, 2)?;
            if hist.len() < 2 {
                return Err(InspectError::Usage(format!(
                    "`{job}` has run only once; nothing to compare yet"
                )));
            }
            (hist[1].0.clone(), hist[0].0.clone())
        }
        [a, b] => (db.resolve_run(a)?, db.resolve_run(b)?),
        _ => {
            return Err(InspectError::Usage(
                "give --run twice (older, then newer), or no --run for the last two".into(),
            ));
        }
    };
    let read = |db: &mut RunStore, id: &str| -> Result<Vec<u8>, InspectError> {
        let rec = db.record(id, job)?;
        let o = if stderr { &rec.stderr } else { &rec.stdout };
        Ok(match (&o.path, o.captured) {
            (Some(p), true) => std::fs::read(p)?,
            _ => Vec::new(),
        })
    };
    let a = read(db, &old_id)?;
    let b = read(db, &new_id)?;
    if a == b {
        writeln!(
            out,
            "no change in the {} of `{job}` between runs {old_id} and {new_id}",
            if stderr { "stderr" } else { "stdout" }
        )?;
        return Ok(exit::OK);
    }
    let a = String::from_utf8_lossy(&a);
    let b = String::from_utf8_lossy(&b);
    write!(
        out,
        "{}",
        crate::text::unified_diff(
            &a,
            &b,
            &format!("{job} @ {old_id}"),
            &format!("{job} @ {new_id}")
        )
    )?;
    Ok(exit::JOB_FAILED)
}
