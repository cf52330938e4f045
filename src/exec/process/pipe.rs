//! A job's output pipes as read here: grown once a read fills the buffer, read into buffers
//! reused per worker thread, and read to their end without waiting once the job exited.

use tokio::io::AsyncReadExt;

use super::drain::Drain;
use crate::exec::EventSink;
use crate::sys;

const READ_BUF: usize = 64 * 1024;

/// A job's output pipe, read here.
pub(super) struct Pipe {
    pub rx: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    pub fd: std::os::fd::RawFd,
    /// Whether growing was tried (it is tried once).
    tried: bool,
    /// Whether this pipe holds part of the growth budget.
    charged: bool,
}

/// What a pipe grows to once a read fills the buffer: a job writing that much blocks less
/// often, and each wakeup here moves more (measured: 200 jobs writing 1 MiB each took about a
/// fifth less time than with the default 64 KiB).
const PIPE_GROWN: usize = 1 << 20;

/// Pipe capacity grown at once in this process, at most: the kernel counts pipe buffers per
/// user, and past its soft limit (64 MiB by default) the user's new pipes get two pages, which
/// would slow the jobs' own pipelines; eight runs at once stay under it.
const PIPE_GROWTH_BUDGET: usize = 8 << 20;

static PIPE_GROWTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Pipe {
    pub(super) fn new<R>(rx: R) -> Pipe
    where
        R: tokio::io::AsyncRead + std::os::fd::AsRawFd + Send + 'static,
    {
        Pipe {
            fd: rx.as_raw_fd(),
            rx: Box::pin(rx),
            tried: false,
            charged: false,
        }
    }

    /// Grows the pipe, once, within the budget; a failure (a limit) leaves it as it was.
    fn grow(&mut self) {
        use std::sync::atomic::Ordering;
        if std::mem::replace(&mut self.tried, true) {
            return;
        }
        let before = PIPE_GROWTH.fetch_add(PIPE_GROWN, Ordering::Relaxed);
        if before + PIPE_GROWN <= PIPE_GROWTH_BUDGET
            && sys::set_pipe_size(self.fd, PIPE_GROWN).is_ok()
        {
            self.charged = true;
        } else {
            PIPE_GROWTH.fetch_sub(PIPE_GROWN, Ordering::Relaxed);
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.charged {
            PIPE_GROWTH.fetch_sub(PIPE_GROWN, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A read buffer of `READ_BUF` bytes, taken from this thread's spares and given back when
/// dropped: a job's two buffers would otherwise be allocated and freed for every job, and
/// allocations that large make the allocator tidy up its free lists each time (measured: a
/// tenth of a worker's time with 3,000 trivial jobs).
pub(super) struct ReadBuf(pub Vec<u8>);

/// Spare buffers kept per thread, at most (two per job a worker runs at once, and some).
const SPARE_BUFS: usize = 16;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ReadBuf {
    /// A buffer, or an empty one (no allocation) when `needed` is false.
    pub(super) fn take(needed: bool) -> ReadBuf {
        if !needed {
            return ReadBuf(Vec::new());
        }
        let spare = SPARE.with_borrow_mut(Vec::pop);
        ReadBuf(spare.unwrap_or_else(|| Vec::with_capacity(READ_BUF)))
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() == READ_BUF {
            // At thread exit the spares may be gone already; the buffer is then just freed.
            let _ = SPARE.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE_BUFS {
                    s.push(buf);
                }
            });
        }
    }
}

/// Reads into the spare capacity of `buf` (cleared first): no zeroing of a fresh buffer for
/// every job, most of which write little or nothing. Cancel-safe.
pub(super) async fn read_opt(r: &mut Option<Pipe>, buf: &mut ReadBuf) -> std::io::Result<usize> {
    let buf = &mut buf.0;
    buf.clear();
    match r {
        Some(p) => {
            let n = p.rx.read_buf(buf).await?;
            if n == buf.capacity() {
                p.grow();
            }
            Ok(n)
        }
        None => std::future::pending().await,
    }
}

/// Reads what a pipe holds without waiting, a few times at most (a process the job left may
/// still be writing), and drops it at its end: as the select branch reading it would.
pub(super) fn read_now(
    pipe: &mut Option<Pipe>,
    buf: &mut ReadBuf,
    drain: &mut Option<Drain>,
    forward: bool,
    index: usize,
    events: &EventSink,
) {
    for _ in 0..4 {
        let Some(p) = pipe else { return };
        match sys::read_into(p.fd, &mut buf.0) {
            Ok(0) => *pipe = None,
            Ok(n) => {
                if let Some(d) = drain {
                    let kept = d.write(&buf.0[..n]);
                    if forward {
                        let kept = kept.into_owned();
                        d.forward(index, &kept, events);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => *pipe = None,
        }
    }
}
