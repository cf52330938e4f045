//! A stream's items kept for `--resume`: a pipe cannot be read twice, and resuming compares
//! each earlier record with the job its item makes now, so the stream is first read to its
//! end into an unnamed file on disk (0600, in the state dir, gone with the process), which the
//! comparison and the run then read as a regular items file. Memory stays flat whatever the
//! item count; the cost is that the run's first job waits for the stream's end, and the disk
//! holds the stream while the run lasts. The copy stops where the reader would (a line past
//! `MAX_LINE`, more than `MAX_ITEMS` items), so a device that never ends is not copied
//! forever, and messages name the items file as given.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::lazy::{MAX_LINE, item_of, next_line};
use super::{Fan, FanSource};
use crate::spec::MAX_ITEMS;

impl Fan {
    /// A stream's items read to their end into an unnamed file in `dir`, which its jobs are
    /// then read from; a range or a regular file stays as it is.
    pub fn spool(&mut self, dir: &Path) -> Result<(), String> {
        let FanSource::File(path) = &self.source else {
            return Ok(());
        };
        if !self.is_stream() {
            return Ok(());
        }
        let shown = path.display();
        let file = crate::sys::unnamed_file(dir)
            .map_err(|e| format!("cannot keep the items of {shown} in {}: {e}", dir.display()))?;
        copy_lines(path, &file).map_err(|e| format!("cannot read the items of {shown}: {e}"))?;
        self.spool = Some(Arc::new(file));
        Ok(())
    }
}

/// Copies `from` into `to` line by line, as far as the items reader would read it.
fn copy_lines(from: &Path, to: &std::fs::File) -> std::io::Result<()> {
    let mut r = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(from)?);
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, to);
    let (mut buf, mut items) = (Vec::new(), 0usize);
    loop {
        let n = next_line(&mut r, &mut buf)?;
        w.write_all(&buf)?;
        if n == 0 || n > MAX_LINE || !buf.ends_with(b"\n") {
            break;
        }
        if !matches!(item_of(&buf), Ok(None)) {
            items += 1;
            if items > MAX_ITEMS {
                break;
            }
        }
    }
    w.flush()
}
