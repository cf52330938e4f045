//! `orchestrate logs`: a job's captured output copied byte for byte, and with `--follow` kept
//! copying while the job runs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::InspectError;
use crate::error::exit;
use crate::exec::{Stream, job_dir_name};
use crate::store::{self, RunStore};

pub(super) fn logs(
    db: &mut RunStore,
    run: &str,
    job: &str,
    stderr: bool,
    follow: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let run_id = db.resolve_run(run)?;
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let path = db
        .run_dir(&run_id)
        .join(job_dir_name(job))
        .join(stream.as_str());
    let mut offset = 0u64;
    match db.record(&run_id, job) {
        Ok(rec) if follow && rec.status.is_running() => {
            copy_unrecorded(db, &run_id, job, &path, follow, out)
        }
        Ok(rec) => {
            let o = match stream {
                Stream::Stdout => &rec.stdout,
                Stream::Stderr => &rec.stderr,
            };
            if !o.captured
                && let Some(p) = &o.path
            {
                return Err(InspectError::Usage(format!(
                    "the {} of `{job}` was not captured; it went to {}",
                    stream.as_str(),
                    p.display()
                )));
            }
            copy_new(&path, &mut offset, out)?;
            Ok(exit::OK)
        }
        Err(store::StoreError::NotFound(msg)) => {
            // No record yet: the job may still be running, or was when the run died.
            let running = db.run(&run_id)?.status == crate::record::RunStatus::Running;
            if !(path.exists() || follow && running) {
                return Err(InspectError::Store(store::StoreError::NotFound(msg)));
            }
            copy_unrecorded(db, &run_id, job, &path, follow, out)
        }
        Err(e) => Err(e.into()),
    }
}

/// The output of a job without a final record, once, or with `follow` until the job ends (or
/// its run, or its supervisor, ends without it).
fn copy_unrecorded(
    db: &mut RunStore,
    run_id: &str,
    job: &str,
    path: &Path,
    follow: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let mut offset = 0u64;
    loop {
        copy_new(path, &mut offset, out)?;
        if !follow {
            return Ok(exit::OK);
        }
        if !still_going(db, run_id, job)? {
            copy_new(path, &mut offset, out)?;
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the job may still write: its record says it runs, and what records its end (its
/// run, or a background job's supervisor) is still there to do so.
fn still_going(db: &mut RunStore, run_id: &str, job: &str) -> Result<bool, InspectError> {
    let run_live = |db: &mut RunStore| -> Result<bool, InspectError> {
        Ok(db.run(run_id)?.status == crate::record::RunStatus::Running)
    };
    match db.record(run_id, job) {
        Ok(r) if r.status == crate::record::Status::Background => {
            Ok(r.supervisor.as_ref().is_some_and(|s| s.may_live()))
        }
        Ok(r) if r.status.is_running() => run_live(db),
        Ok(_) => Ok(false),
        Err(store::StoreError::NotFound(_)) => run_live(db),
        Err(e) => Err(e.into()),
    }
}

/// Copies what the file holds past `offset`, and moves `offset` on; no file yet is no output.
fn copy_new(path: &Path, offset: &mut u64, out: &mut dyn Write) -> std::io::Result<()> {
    if let Ok(mut f) = std::fs::File::open(path) {
        f.seek(SeekFrom::Start(*offset))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            *offset += n as u64;
        }
        out.flush()?;
    }
    Ok(())
}
