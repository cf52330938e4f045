//! Pipes: making them, sizing them, and reading what they hold without blocking.
// unsafe only to lend rustix the raw descriptor numbers the callers hold.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

/// Lends `fd` to one call. The public functions take raw numbers: their callers keep each
/// descriptor owned (by an `OwnedFd` or a tokio pipe end) and pass its number.
fn with_fd<T>(
    fd: RawFd,
    call: impl FnOnce(BorrowedFd<'_>) -> rustix::io::Result<T>,
) -> io::Result<T> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is not -1, and the caller keeps it open until this returns; the borrow
    // ends with the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(call(fd)?)
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Makes reads and writes on `fd` non-blocking. The flags are set outright (one call, not a
/// read and a write of them): meant for a pipe end just made, whose only flag is its mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    with_fd(fd, |fd| {
        rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)
    })
}

/// Makes a descriptor opened with O_NONBLOCK blocking again, keeping its other flags (a job's
/// files are opened without blocking, then handed to it as it expects them).
pub fn clear_nonblocking(fd: RawFd) -> io::Result<()> {
    with_fd(fd, |fd| {
        let flags = rustix::fs::fcntl_getfl(fd)?;
        rustix::fs::fcntl_setfl(fd, flags - rustix::fs::OFlags::NONBLOCK)
    })
}

/// Sets the capacity of a pipe (F_SETPIPE_SZ); the kernel rounds it up to a power of two pages.
pub fn set_pipe_size(fd: RawFd, size: usize) -> io::Result<()> {
    if libc::c_int::try_from(size).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe size too large",
        ));
    }
    with_fd(fd, |fd| rustix::pipe::fcntl_setpipe_size(fd, size)).map(drop)
}

/// One read(2) from `fd` into the capacity of `buf` (cleared first); on a non-blocking
/// descriptor, `WouldBlock` when nothing is there yet.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    loop {
        let read = if buf.capacity() == 0 {
            // rustix asserts that a vector it reads into has room; the kernel answers as before.
            with_fd(fd, |fd| rustix::io::read(fd, &mut [0u8; 0][..]))
        } else {
            // Into the spare capacity, which needs no zeroing first; the length becomes n.
            with_fd(fd, |fd| {
                rustix::io::read(fd, rustix::buffer::spare_capacity(buf))
            })
        };
        match read {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
