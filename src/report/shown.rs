//! A job's output as the exports show it (`show --junit`, `report`): at most its last bytes,
//! decoded lossily, with what to say when it was cut or not captured. The caller reads it
//! through the one read-back path (`CaptureRoot::read_back`); this only holds the text.

use std::io::{Read, Seek, SeekFrom};

/// How much of a stream an export keeps: its end, where a failure says why.
pub const KEPT_BYTES: u64 = 64 * 1024;

/// One stream of one job, as an export shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    /// The last [`KEPT_BYTES`] (or fewer) of the stream, decoded lossily from a line start.
    pub text: String,
    /// Bytes the job wrote to the stream.
    pub total: u64,
    /// Only the end of the stream is in `text`.
    pub cut: bool,
    /// What stands instead of the bytes (not captured, unreadable), or besides them.
    pub note: Option<String>,
}

impl Shown {
    /// The end of a capture file, at most `keep` bytes, starting at a line when it was cut.
    pub fn from_file(mut f: std::fs::File, keep: u64) -> Shown {
        let total = f.metadata().map(|m| m.len()).unwrap_or(0);
        let start = total.saturating_sub(keep);
        let mut buf = Vec::new();
        let read = f
            .seek(SeekFrom::Start(start))
            .and_then(|_| f.take(keep).read_to_end(&mut buf));
        if let Err(e) = read {
            return Shown::note(total, format!("could not be read: {e}"));
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if start > 0
            && let Some(nl) = text.find('\n')
        {
            text.drain(..=nl);
        }
        Shown {
            text,
            total,
            cut: start > 0,
            note: None,
        }
    }

    /// A stream with nothing to show but a note.
    pub fn note(total: u64, note: String) -> Shown {
        Shown {
            total,
            note: Some(note),
            ..Shown::default()
        }
    }

    /// Its last `n` lines.
    pub fn last_lines(&self, n: usize) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// What to say about the text besides the text: cut, or not there.
    pub fn remark(&self) -> Option<String> {
        match (&self.note, self.cut) {
            (Some(n), _) => Some(n.clone()),
            (None, true) => Some(format!(
                "only the last {} KiB of {} bytes are shown; `orchestrate logs` prints all",
                KEPT_BYTES / 1024,
                self.total
            )),
            (None, false) => None,
        }
    }
}
