//! Starting a delegated job (`Launch::delegate`): the streams it would be given as a child,
//! handed to the process it runs through (a Slurm worker step) instead.

use std::fs::File;

use super::spawn::{Child, ChildIo, pipes};
use super::{Delegate, JobEnd};
use crate::sys;

/// Starts a delegated job: the streams the job would be given, handed to the process it
/// runs through, as pipes of ours (made as for a child) or files. It reads no stdin.
pub(super) fn start_delegated(d: &dyn Delegate, io: &[ChildIo; 3]) -> std::io::Result<Child> {
    use std::os::fd::AsFd;
    let (mut child, mut theirs) = pipes(&[ChildIo::Null, io_like(&io[1]), io_like(&io[2])])?;
    let mut end = |i: usize| -> std::io::Result<Option<JobEnd>> {
        Ok(match &io[i] {
            ChildIo::Null => None,
            ChildIo::Piped => {
                let w = theirs[i].take().expect("a pipe made above");
                sys::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&w))?;
                Some(JobEnd::Pipe(w))
            }
            ChildIo::Fd(fd) => Some(JobEnd::File(File::from(fd.try_clone()?))),
            ChildIo::Inherit if i == 1 => Some(JobEnd::File(File::from(
                std::io::stdout().as_fd().try_clone_to_owned()?,
            ))),
            ChildIo::Inherit => Some(JobEnd::File(File::from(
                std::io::stderr().as_fd().try_clone_to_owned()?,
            ))),
        })
    };
    let (out, err) = (end(1)?, end(2)?);
    let started = d.start(out, err)?;
    child.exit.delegate_to(started.pid, started.ended);
    Ok(child)
}

/// A stream's kind, for `pipes`, which makes the pipes of the `Piped` ones.
fn io_like(io: &ChildIo) -> ChildIo {
    match io {
        ChildIo::Piped => ChildIo::Piped,
        _ => ChildIo::Null,
    }
}
