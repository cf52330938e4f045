//! Calls into the operating system that the standard library does not make: signals,
//! process groups, posix_spawn, pipes, waiting for children, and what /proc tells of them.
//! Through the safe wrappers of nix and rustix; the little `unsafe` left lives in the
//! submodules that need it, each block with the reason it is sound.

mod fs;
mod pipe;
mod procfs;
mod signal;
mod spawn;
mod wait;

pub use fs::{
    NotPrivate, anonymous_file, create_private_dir, no_space_left, not_private,
    open_regular_beneath, unnamed_file,
};
pub use pipe::{clear_nonblocking, pipe, read_into, set_nonblocking, set_pipe_size};
pub use procfs::{
    boot_id, children_of, group_has_live_member, pid_namespace, process_gone, process_group_of,
    process_named, process_start_ticks,
};
pub use signal::{SIGHUP, SIGINT, SIGKILL, SIGTERM, ignore_file_size_signal, kill, killpg};
pub use spawn::{Spawn, new_session, spawn};
pub use wait::{pidfd_open, try_wait, wait_blocking};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether this process may write `path`: `access(W_OK)`, which also says no (EROFS) on a
/// read-only mount, where root's permissions do not help.
pub fn may_write(path: &std::path::Path) -> std::io::Result<()> {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).map_err(Into::into)
}

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), so that
/// processes a job detached from its group still end up as our children, where a sweep finds
/// them.
pub fn become_subreaper() -> bool {
    nix::sys::prctl::set_child_subreaper(true).is_ok()
}

/// Raises the soft limit of open files to the hard one, as servers do: the usual soft limit
/// (1024) is far below what `-j 500` needs (three descriptors a job, and the store's), while
/// the hard limit is usually much higher. Returns the limit in force.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        if setrlimit(Resource::Nofile, lim).is_err() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    lim.current
}

/// Whether an error means this process (or the system) is out of file descriptors.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
