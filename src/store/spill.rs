//! Records the store could not take (a full disk, a locked or read-only database), kept in a
//! file of their own, `spill/<run>.jsonl`, and folded into the history by the next run that
//! opens the store: a failure to record never loses a record silently.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{RunStore, create_private_dir, valid_run_id};
use crate::record::{CompletedProcess, Sealed};

/// Appends `recs` to the spill file of `run_id` under `root`; returns its path.
pub fn spill(root: &Path, run_id: &str, recs: &[Sealed]) -> std::io::Result<PathBuf> {
    let dir = root.join("spill");
    create_private_dir(&dir)?;
    let path = dir.join(format!("{run_id}.jsonl"));
    let mut text = String::new();
    for r in recs {
        text.push_str(&serde_json::to_string(&**r).expect("records serialize"));
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(path)
}

impl RunStore {
    /// Folds spill files into the history: each record into its run, then the file goes. A
    /// file that cannot be folded yet (the disk still full) stays for the next run.
    pub(super) fn fold_spills(&mut self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.root().join("spill")) else {
            return 0;
        };
        let mut folded = 0;
        for e in entries.flatten() {
            let path = e.path();
            let Some(run_id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .filter(|id| valid_run_id(id))
                .map(str::to_string)
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let recs: Vec<Sealed> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<CompletedProcess>(l).ok())
                .map(Sealed::trusted)
                .collect();
            if self.run(&run_id).is_err() {
                // Its run is gone (pruned): nothing to fold into.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if self.record_batch(&run_id, &recs).is_ok() {
                let _ = self.recount(&run_id);
                folded += recs.len();
                let _ = std::fs::remove_file(&path);
            }
        }
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Secrets, Status};
    use crate::store::NewRun;

    #[test]
    fn spilled_records_are_folded_into_their_run_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RunStore::open(dir.path()).unwrap();
        s.begin_run(&NewRun {
            id: "20260101-000000-000abcd".into(),
            job_file: None,
            job_file_hash: None,
            started: std::time::SystemTime::now(),
            total: 1,
        })
        .unwrap();
        drop(s);
        let rec =
            CompletedProcess::not_started("j", 0, vec!["x".into()], Status::Failed, "e".into());
        let path = spill(
            dir.path(),
            "20260101-000000-000abcd",
            &[Sealed::new(rec, &Secrets::default())],
        )
        .unwrap();
        let mut s = RunStore::open(dir.path()).unwrap();
        assert!(!path.exists(), "the spill file stayed");
        let recs = s.records("20260101-000000-000abcd").unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            s.run("20260101-000000-000abcd")
                .unwrap()
                .counts
                .get(Status::Failed),
            1
        );
    }
}
