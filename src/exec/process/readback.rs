//! Reading a job's output back (`logs`, `diff`, `show --json`, a run's reports, the library):
//! only from its capture file, found from the run's folder and the job's name, or from the
//! run's pack where a small capture moved when its job ended; never from the path a record
//! holds, since a record read back from the store could name any file.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::stdio::{CaptureRoot, job_dir_name};
use crate::exec::Stream;
use crate::record::CompletedProcess;
use crate::text::os_text;

/// Where one stream of a record can be read.
#[derive(Debug)]
pub enum Readback {
    /// The capture file, open; `None` when there is none (the job wrote nothing, or not yet).
    Captured(Option<File>),
    /// The job's own file (`stdout: {file: ...}`): named, never opened.
    Elsewhere(PathBuf),
    /// Not kept: discarded, inherited, or sent into the other stream.
    NotKept,
}

impl Readback {
    /// The capture file to read, if there is one.
    pub fn into_file(self) -> Option<File> {
        match self {
            Readback::Captured(f) => f,
            _ => None,
        }
    }
}

impl CaptureRoot {
    /// Opens `job`'s capture file of `stream`: `<folder>/<job dir>/<stream>`, each component
    /// opened without following a symlink, and only a regular file.
    pub fn open(&self, job: &str, stream: Stream) -> io::Result<Option<File>> {
        let dir = job_dir_name(job);
        crate::sys::open_regular_beneath(&self.0, &[&dir, stream.as_str()])
            .map_err(|e| not_read(stream, job, &self.path(job, stream), &e))
    }

    /// How `stream` of `rec` reads back: from its capture file in this folder, whatever path
    /// the record names.
    pub fn read_back(&self, rec: &CompletedProcess, stream: Stream) -> io::Result<Readback> {
        let out = stream.of(rec);
        if let (true, Some(at)) = (out.captured, out.packed) {
            let f = self
                .read_packed(at)
                .map_err(|e| not_read(stream, &rec.job, &self.pack_path(), &e))?;
            return Ok(Readback::Captured(Some(f)));
        }
        if out.captured {
            return Ok(Readback::Captured(self.open(&rec.job, stream)?));
        }
        Ok(out
            .path
            .clone()
            .map_or(Readback::NotKept, Readback::Elsewhere))
    }
}

/// Why `job`'s `stream` could not be read from `path`, keeping the error's kind.
fn not_read(stream: Stream, job: &str, path: &std::path::Path, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "the {} of `{job}` is not read from {}: {}",
            stream.as_str(),
            path.display(),
            os_text(e)
        ),
    )
}
