//! A run's pack: captured streams of at most `PACK_LIMIT` bytes, moved out of their own files
//! once their job has ended, so that a run of many small jobs keeps one file for their output
//! instead of a folder and a file per job. While a job runs its output is a file of its own
//! (`tail -f`, `logs --follow`); only its end appends it here.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::stdio::CaptureRoot;
use crate::record::Packed;

/// The largest capture moved into the pack. Smaller ones cost more in their own inode and
/// folder (8 KiB of blocks at least) than their bytes; at 64 KiB a job's output is still one
/// write to append and small enough to read back in memory, while larger outputs keep their
/// own file, which readers stream.
pub const PACK_LIMIT: usize = 64 * 1024;

impl CaptureRoot {
    /// `<run folder>.pack`, beside the run's folder: a run whose outputs all moved here leaves
    /// no folder behind. Never a job's folder, which is always inside the run's.
    pub fn pack_path(&self) -> PathBuf {
        let mut name = self.0.as_os_str().to_owned();
        name.push(crate::record::PACK_SUFFIX);
        PathBuf::from(name)
    }

    /// The bytes of a packed capture, as a file in memory. A pack that is missing, not a
    /// regular file, not ours or writable by others, or shorter than the record says, is an
    /// error: never an empty output.
    pub(super) fn read_packed(&self, at: Packed) -> io::Result<File> {
        let pack = self.pack_path();
        let (Some(dir), Some(name)) = (pack.parent(), pack.file_name().and_then(|n| n.to_str()))
        else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no pack"));
        };
        let Some(f) = crate::sys::open_regular_beneath(dir, &[name])? else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the run's pack is missing (removed by hand?)",
            ));
        };
        private(&f.metadata()?)?;
        let mut bytes = vec![0u8; at.len.min(PACK_LIMIT as u64) as usize];
        f.read_exact_at(&mut bytes, at.offset)?;
        crate::sys::anonymous_file(&bytes)
    }
}

/// A pack must be ours and writable by us alone, as everything in the state dir.
fn private(meta: &std::fs::Metadata) -> io::Result<()> {
    use crate::sys::NotPrivate;
    match crate::sys::not_private(meta) {
        Some(why @ NotPrivate::Writable { .. }) => Err(io::Error::other(format!(
            "the run's pack: {why}; run `chmod go-w` on it"
        ))),
        Some(why) => Err(io::Error::other(format!("the run's pack: {why}"))),
        None => Ok(()),
    }
}

/// Appends `bytes` to the pack at `pack` in one write, and says where they start. Writers in
/// other processes (a background job's supervisor) append to the same pack: each write of an
/// O_APPEND file lands whole at the end, and the file position after it is its end.
pub(super) fn append(pack: &Path, bytes: &[u8]) -> io::Result<Packed> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // Ours alone: a symlink in its place is never followed, a FIFO never waited on.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(pack)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    // Never add to a pack someone else could have written into.
    private(&meta)?;
    let n = f.write(bytes)?;
    if n != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "a short write"));
    }
    let end = f.stream_position()?;
    Ok(Packed {
        offset: end - n as u64,
        len: n as u64,
    })
}
