//! `orchestrate diff`: what changed in a job's output between two runs, as a unified diff.

use std::io::{Read, Write};

use super::{InspectError, not_captured, read_back};
use crate::error::exit;
use crate::exec::{Readback, Stream};
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
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let read = |db: &mut RunStore, id: &str| -> Result<Vec<u8>, InspectError> {
        let rec = db.record(id, job)?;
        let mut bytes = Vec::new();
        match read_back(db.root(), id, &rec, stream)? {
            Readback::Captured(Some(mut f)) => {
                f.read_to_end(&mut bytes)?;
            }
            Readback::Captured(None) | Readback::NotKept => {}
            Readback::Elsewhere(p) => {
                let msg = not_captured(job, stream, &p);
                return Err(InspectError::Usage(format!("{msg} (run {id})")));
            }
        }
        Ok(bytes)
    };
    let a = read(db, &old_id)?;
    let b = read(db, &new_id)?;
    if a == b {
        writeln!(
            out,
            "no change in the {} of `{job}` between runs {old_id} and {new_id}",
            stream.as_str()
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
