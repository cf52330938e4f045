//! What the run's hooks and notifications are told, gathered by the event thread as records
//! come: every record as the JSON line `--json` prints, in a file of the run's folder
//! (`ORCHESTRATE_RECORDS`), and the jobs that failed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use crate::notify::FailedJob;
use crate::record::{CompletedProcess, write_json_record};

/// Failed jobs named to hooks and notifications at most; every record is in the file.
pub const MAX_FAILED_NAMED: usize = 1000;

/// The most bytes of names in `ORCHESTRATE_FAILED_JOBS`.
const MAX_NAMES_BYTES: usize = 64 * 1024;

/// Gathers the facts while the run goes on.
pub struct Gather {
    path: PathBuf,
    /// The run's capture folder, where the records' outputs are read back.
    files: crate::exec::CaptureRoot,
    file: Option<BufWriter<File>>,
    error: Option<String>,
    failed: Vec<FailedJob>,
    failed_total: usize,
    /// The run's id, which the records carry.
    run_id: String,
}

/// What was gathered once every record came.
#[derive(Debug)]
pub struct Facts {
    /// The file of records (also the run hooks' stdin).
    pub records: PathBuf,
    /// Why the file could not be written whole, if it could not.
    pub error: Option<String>,
    /// The failed jobs in job-file order, at most `MAX_FAILED_NAMED`.
    pub failed: Vec<FailedJob>,
    /// How many jobs failed in all.
    pub failed_total: usize,
}

/// The file of a run's records: a dot name, which no job's output folder has.
pub fn records_path(run_dir: &Path) -> PathBuf {
    let p = run_dir.join(".records.jsonl");
    // Absolute: a hook with a `cwd:` of its own finds it too.
    std::path::absolute(&p).unwrap_or(p)
}

impl Gather {
    pub fn new(run_dir: &Path, run_id: &str) -> Gather {
        let path = records_path(run_dir);
        let (file, error) = match crate::exec::hooks::private_file(&path) {
            Ok(f) => (Some(BufWriter::new(f)), None),
            Err(e) => (None, Some(crate::text::os_text(&e))),
        };
        Gather {
            path,
            files: crate::exec::CaptureRoot(run_dir.to_path_buf()),
            file,
            error,
            run_id: run_id.to_string(),
            failed: Vec::new(),
            failed_total: 0,
        }
    }

    /// One finished record: a job's (`hook` unset) or a hook's.
    pub fn record(&mut self, rec: &CompletedProcess) {
        let outputs = [crate::exec::Stream::Stdout, crate::exec::Stream::Stderr].map(|s| {
            self.files
                .read_back(rec, s)
                .ok()
                .and_then(|r| r.into_file())
        });
        if let Some(f) = &mut self.file
            && let Err(e) = write_json_record(
                f,
                &self.run_id,
                rec,
                crate::environ::inherited_env_keys(),
                outputs,
            )
        {
            self.error = Some(crate::text::os_text(&e));
            self.file = None;
        }
        if rec.hook.is_some() || !rec.status.is_failure() {
            return;
        }
        self.failed_total += 1;
        if self.failed.len() < MAX_FAILED_NAMED {
            self.failed.push(FailedJob {
                index: rec.index,
                name: rec.job.clone(),
                status: rec.status,
                outcome: rec.outcome(),
                error: rec.error.clone(),
                stderr: (rec.stderr.captured && rec.stderr.bytes > 0).then(|| {
                    crate::notify::StderrOf {
                        files: self.files.clone(),
                        record: Box::new(rec.clone()),
                    }
                }),
            });
        }
    }

    pub fn finish(mut self) -> Facts {
        if let Some(mut f) = self.file.take()
            && let Err(e) = f.flush()
        {
            self.error = Some(crate::text::os_text(&e));
        }
        self.failed.sort_by_key(|f| f.index);
        Facts {
            records: self.path,
            error: self.error,
            failed: self.failed,
            failed_total: self.failed_total,
        }
    }
}

impl Facts {
    /// `ORCHESTRATE_FAILED_JOBS`: the names, one per line, as many as fit in 64 KiB (one
    /// environment string may hold 128 KiB at most: more and the hook could not start).
    pub fn failed_names(&self) -> String {
        let mut out = String::new();
        for f in &self.failed {
            if out.len() + f.name.len() + 1 > MAX_NAMES_BYTES {
                break;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&f.name);
        }
        out
    }
}
