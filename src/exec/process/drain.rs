//! Draining one output stream of a job: control lines of a remote wrapper removed, secrets
//! redacted, `max_output` applied, written to its capture file (created on the first byte) or
//! to the job's own target, and split into lines for live display.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::exec::remote::wrap;
use crate::exec::{Event, EventSink, Stream};
use crate::record::{Packed, Redactor, Secrets, StoredOutput};

/// One output stream being drained into its capture file.
pub(super) struct Drain {
    pub stream: Stream,
    pub path: PathBuf,
    file: Option<File>,
    bytes: u64,
    pub error: Option<String>,
    partial: Vec<u8>,
    redactor: Option<Redactor>,
    cap: Option<Cap>,
    /// Set when max_output dropped bytes.
    pub truncated: Option<String>,
    pub sink: Sink,
    /// Strips a remote wrapper's control lines (stderr of remote jobs).
    pub filter: Option<wrap::ControlFilter>,
    /// The run's pack, where a small capture moves once the job ended (`pack`).
    pub pack: Option<PathBuf>,
    /// Bytes written to the capture file.
    written: u64,
    /// Where the capture stands in the pack, once it moved there.
    packed: Option<Packed>,
}

/// `max_output`: the head goes to the file as it comes; the tail waits in memory (at most
/// 4 MiB) until the job ends.
struct Cap {
    head_limit: u64,
    head_written: u64,
    tail_limit: usize,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Cap {
    fn new(max: u64) -> Cap {
        let tail_limit = (max / 2).min(4 << 20) as usize;
        Cap {
            head_limit: max - tail_limit as u64,
            head_written: 0,
            tail_limit,
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }
}

/// Where a drain writes.
pub(super) enum Sink {
    /// A capture file, created on the first byte.
    Capture,
    /// The job's own target (a file, or orchestrate's stderr): remote jobs' stderr passes
    /// through here to have its control lines removed.
    Own(File),
    Discard,
}

impl Drain {
    pub(super) fn new(
        stream: Stream,
        path: PathBuf,
        secrets: &Secrets,
        max_output: Option<u64>,
    ) -> Self {
        Drain {
            stream,
            path,
            file: None,
            bytes: 0,
            error: None,
            partial: Vec::new(),
            cap: max_output.map(Cap::new),
            truncated: None,
            redactor: secrets.redactor(),
            sink: Sink::Capture,
            filter: None,
            pack: None,
            written: 0,
            packed: None,
        }
    }

    /// Writes a chunk as it should be kept (control lines removed, secrets redacted); returns
    /// those bytes.
    pub(super) fn write<'a>(&mut self, chunk: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        let chunk: Cow<'a, [u8]> = match &mut self.filter {
            Some(f) => Cow::Owned(f.feed(chunk, false)),
            None => Cow::Borrowed(chunk),
        };
        let kept: Cow<'a, [u8]> = match &mut self.redactor {
            Some(r) => Cow::Owned(r.feed(&chunk, false)),
            None => chunk,
        };
        // What is kept is what is counted: a redacted secret counts as `[REDACTED]`.
        self.bytes += kept.len() as u64;
        self.store(&kept);
        kept
    }

    /// Writes what the filter and the redactor still hold at the end of the stream.
    pub(super) fn finish(&mut self) -> Vec<u8> {
        let tail = match &mut self.filter {
            Some(f) => f.feed(&[], true),
            None => Vec::new(),
        };
        let rest = match &mut self.redactor {
            Some(r) if r.holds() || !tail.is_empty() => r.feed(&tail, true),
            _ => tail,
        };
        self.bytes += rest.len() as u64;
        self.store(&rest);
        // With max_output: the kept tail goes after the head, behind a marker if bytes were dropped.
        if let Some(cap) = self.cap.take() {
            let kept: Vec<u8> = cap.tail.into_iter().collect();
            if cap.dropped > 0 {
                let marker = format!(
                    "\n[orchestrate: {} bytes left out here by max_output]\n",
                    cap.dropped
                );
                self.write_file(marker.as_bytes());
                self.truncated = Some(format!(
                    "{} truncated by max_output: kept the first {} and the last {} of {} bytes",
                    self.stream.as_str(),
                    cap.head_written,
                    kept.len(),
                    self.bytes
                ));
            }
            self.write_file(&kept);
        }
        self.move_to_pack();
        rest
    }

    /// A whole capture of at most `PACK_LIMIT` bytes is copied into the run's pack (its file
    /// goes once the record is stored); one that could not be packed simply stays a file.
    fn move_to_pack(&mut self) {
        let (Some(pack), Some(file), None, Sink::Capture) =
            (&self.pack, &self.file, &self.error, &self.sink)
        else {
            return;
        };
        if self.written > super::pack::PACK_LIMIT as u64 {
            return;
        }
        let mut bytes = vec![0u8; self.written as usize];
        let read = std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, 0);
        if let Ok(at) = read.and_then(|()| super::pack::append(pack, &bytes)) {
            // The file stays until the record that says where the bytes went is stored
            // (`RunStore` removes it then): a reader of the running record, or of a run
            // killed before that, still finds them there.
            self.file = None;
            self.packed = Some(at);
        }
    }

    fn store(&mut self, chunk: &[u8]) {
        if self.error.is_some() || chunk.is_empty() {
            return; // keep draining so the job never blocks on a full pipe
        }
        let head_len = match (&mut self.cap, &self.sink) {
            (Some(cap), Sink::Capture) => {
                let room = cap.head_limit.saturating_sub(cap.head_written) as usize;
                let head_len = room.min(chunk.len());
                cap.head_written += head_len as u64;
                cap.tail.extend(&chunk[head_len..]);
                let over = cap.tail.len().saturating_sub(cap.tail_limit);
                if over > 0 {
                    cap.tail.drain(..over);
                    cap.dropped += over as u64;
                }
                head_len
            }
            _ => chunk.len(),
        };
        self.write_file(&chunk[..head_len]);
    }

    fn write_file(&mut self, chunk: &[u8]) {
        if self.error.is_some() || chunk.is_empty() {
            return;
        }
        match &mut self.sink {
            Sink::Capture => {}
            Sink::Discard => return,
            Sink::Own(f) => {
                if let Err(e) = f.write_all(chunk) {
                    self.error = Some(format!(
                        "{} output lost after an error writing {}: {e}",
                        self.stream.as_str(),
                        self.path.display()
                    ));
                }
                return;
            }
        }
        if self.file.is_none() {
            match open_capture(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    self.error = Some(format!(
                        "cannot create capture file {}: {e}",
                        self.path.display()
                    ));
                    return;
                }
            }
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(chunk)
        {
            self.error = Some(format!(
                "{} capture truncated after an error writing {}: {e}",
                self.stream.as_str(),
                self.path.display()
            ));
        }
        if self.error.is_none() {
            self.written += chunk.len() as u64;
        }
    }

    /// Splits a chunk into lines for live output (`--output stream`, progress lines).
    pub(super) fn forward(&mut self, index: usize, chunk: &[u8], events: &EventSink) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > 64 * 1024 {
            let line = std::mem::take(&mut self.partial);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
        }
    }

    pub(super) fn flush_partial(&mut self, index: usize, events: &EventSink) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let _ = events.send(Event::Output {
                index,
                stream: self.stream,
                line,
            });
        }
    }

    pub(super) fn stored(&self) -> StoredOutput {
        if !matches!(self.sink, Sink::Capture) {
            return StoredOutput::default();
        }
        StoredOutput {
            path: (self.file.is_some() || self.packed.is_some()).then(|| self.path.clone()),
            bytes: self.bytes,
            captured: true,
            incomplete: self.error.is_some(),
            packed: self.packed,
        }
    }
}

/// A file of the run folder for this user alone (0600, its folders 0700, never through a
/// symlink), made empty: capture files, and the records files hooks are given.
pub(crate) fn open_capture(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        // Read too: a small capture is read back once its job ended, to go into the pack.
        .read(true)
        .truncate(true)
        .mode(0o600)
        // Capture files are ours: a symlink in their place is never followed.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}
