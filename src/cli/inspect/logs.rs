//! `orchestrate logs`: a job's captured output copied byte for byte, and with `--follow` kept
//! copying while the job runs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::{InspectError, not_captured, read_back};
use crate::error::exit;
use crate::exec::{CaptureRoot, Readback, Stream};
use crate::store::{self, RunStore};

/// Where `logs` looks for the job: a run given (`--run`), else its latest run (of a job file).
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    pub run: Option<&'a str>,
    pub job_file: Option<&'a str>,
}

pub(super) fn logs(
    db: &mut RunStore,
    at: At,
    job: &str,
    stderr: bool,
    follow: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let run_id = super::run_of_job(db, job, at.run, at.job_file)?;
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let captures = CaptureRoot(db.run_dir(&run_id));
    // Opened afresh at every look: `--follow` sees the file appear.
    let open = || captures.open(job, stream);
    match db.record(&run_id, job) {
        Ok(rec) => match read_back(db.root(), &run_id, &rec, stream)? {
            // Running or not: there is nothing here to follow.
            Readback::Elsewhere(p) => Err(InspectError::Usage(not_captured(job, stream, &p))),
            _ if follow && rec.status.is_running() => {
                copy_unrecorded(db, (&run_id, job, stream), &open, follow, out)
            }
            Readback::Captured(mut f) => {
                let mut copied = 0;
                copy_from(f.as_mut(), &mut copied, out)?;
                if copied == 0 {
                    note_other_stream(db.root(), &run_id, &rec, stream, at)?;
                }
                Ok(exit::OK)
            }
            Readback::NotKept => Ok(exit::OK),
        },
        Err(store::StoreError::NotFound(msg)) => {
            // No record yet: the job may still be running, or was when the run died.
            let running = db.run_is_running(&run_id)?;
            if !(open()?.is_some() || follow && running) {
                return Err(InspectError::Store(store::StoreError::NotFound(msg)));
            }
            copy_unrecorded(db, (&run_id, job, stream), &open, follow, out)
        }
        Err(e) => Err(e.into()),
    }
}

/// The stream asked for is empty and the other is not: a line on stderr says how to see it,
/// so that nothing printed does not read as "no output" (stdout stays the bytes of the job).
fn note_other_stream(
    root: &std::path::Path,
    run_id: &str,
    rec: &crate::record::CompletedProcess,
    empty: Stream,
    at: At,
) -> std::io::Result<()> {
    let (other, flag) = match empty {
        Stream::Stdout => (Stream::Stderr, " --stderr"),
        Stream::Stderr => (Stream::Stdout, ""),
    };
    let Readback::Captured(Some(f)) = read_back(root, run_id, rec, other)? else {
        return Ok(());
    };
    let len = f.metadata()?.len();
    if len > 0 {
        let (job, word) = (&rec.job, shell_words::quote(&rec.job));
        let run = match (at.run, at.job_file) {
            (Some(r), _) => format!(" --run {r}"),
            (None, Some(f)) => format!(" --job-file {}", shell_words::quote(f)),
            (None, None) => String::new(),
        };
        eprintln!(
            "orchestrate: {} of `{job}` is empty; its {} has {len} byte{}: orchestrate logs {word}{run}{flag}",
            empty.as_str(),
            other.as_str(),
            if len == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The output of a job without a final record, once, or with `follow` until the job ends (or
/// its run, or its supervisor, ends without it). The file is kept open once it appeared: a
/// small capture leaves it for the run's pack when its job ends, and what the open file still
/// holds is read to its end. A file never seen is read from the final record instead.
fn copy_unrecorded(
    db: &mut RunStore,
    (run_id, job, stream): (&str, &str, Stream),
    open: &dyn Fn() -> std::io::Result<Option<std::fs::File>>,
    follow: bool,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let mut offset = 0u64;
    let mut file = None;
    let mut seen = Followed::default();
    loop {
        // A retried job's next attempt writes a new file: the old one is read to its end first.
        if let Some(new) = open()?
            && !file.as_ref().is_some_and(|f| same_file(f, &new))
        {
            copy_from(file.as_mut(), &mut offset, out)?;
            (file, offset) = (Some(new), 0);
        }
        copy_from(file.as_mut(), &mut offset, out)?;
        if !follow {
            return Ok(exit::OK);
        }
        if !still_going(db, (run_id, job), &mut seen)? {
            if file.is_none() {
                file = match db.record(run_id, job) {
                    Ok(rec) => read_back(db.root(), run_id, &rec, stream)?.into_file(),
                    Err(_) => open()?,
                };
            }
            copy_from(file.as_mut(), &mut offset, out)?;
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn same_file(a: &std::fs::File, b: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// What `still_going` learned of the job at its first look at its record: where the record
/// is, and the supervisor of a background job. Later looks read the status column alone, by
/// the record's key: a job of a run of 10^6 jobs is not searched for by name every 100 ms.
#[derive(Default)]
struct Followed {
    index: Option<usize>,
    supervisor: Option<crate::record::ProcessIdentity>,
}

/// Whether the job may still write: its record says it runs, and what records its end (its
/// run, or a background job's supervisor) is still there to do so.
fn still_going(
    db: &mut RunStore,
    (run_id, job): (&str, &str),
    seen: &mut Followed,
) -> Result<bool, InspectError> {
    use crate::record::Status;
    let status = match seen.index {
        Some(index) => db.status_at(run_id, index, job)?,
        None => db.find_record(run_id, job)?.map(|r| {
            seen.index = Some(r.index);
            seen.supervisor = r.supervisor;
            r.status
        }),
    };
    match status {
        Some(Status::Background) => {
            if seen.supervisor.is_none()
                && let Some(index) = seen.index
            {
                // Named once its supervisor wrote the record.
                seen.supervisor = db.record_at(run_id, index, job)?.supervisor;
            }
            Ok(seen.supervisor.as_ref().is_some_and(|s| s.may_live()))
        }
        Some(s) if !s.is_running() => Ok(false),
        // Running, or no record yet: its run writes how it ends, if the run still runs.
        _ => Ok(db.run_is_running(run_id)?),
    }
}

/// Copies what the file holds past `offset`, and moves `offset` on; no file yet is no output.
fn copy_from(
    file: Option<&mut std::fs::File>,
    offset: &mut u64,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if let Some(f) = file {
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
