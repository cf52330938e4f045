//! Opening a file inside a folder of ours one component at a time, so that no symlink on the
//! way is followed; making folders of ours (0700).

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, fstat, open, openat};

/// Why a file or folder of the state dir is not ours alone: another user's, or writable by
/// others (who could then change what we read or run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPrivate {
    Owner { uid: u32, me: u32 },
    Writable { mode: u32 },
}

impl std::fmt::Display for NotPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotPrivate::Owner { uid, me } => {
                write!(f, "it belongs to uid {uid}, not to you (uid {me})")
            }
            NotPrivate::Writable { mode } => write!(f, "it is writable by others (mode {mode:o})"),
        }
    }
}

/// Whether what `meta` describes is ours alone, and if not, why.
pub fn not_private(meta: &std::fs::Metadata) -> Option<NotPrivate> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Some(NotPrivate::Owner {
            uid: meta.uid(),
            me,
        });
    }
    (meta.mode() & 0o022 != 0).then(|| NotPrivate::Writable {
        mode: meta.mode() & 0o7777,
    })
}

/// Whether the file system holding `path` has no block left for this process (for root, none
/// at all; others also lack the reserved ones).
pub fn no_space_left(path: &Path) -> bool {
    let Ok(v) = rustix::fs::statvfs(path) else {
        return false;
    };
    let left = if super::is_root() {
        v.f_bfree
    } else {
        v.f_bavail
    };
    v.f_blocks > 0 && left == 0
}

/// Opens `dir/parts[0]/…/parts[n]` for reading, refusing a symlink at `dir` itself and at
/// every part (each is opened with O_NOFOLLOW from the one before it, not by its whole path),
/// and anything but a regular file at the end (a FIFO is refused, not waited on). A missing
/// component is `Ok(None)`.
pub fn open_regular_beneath(dir: &Path, parts: &[&str]) -> io::Result<Option<File>> {
    let Some((last, folders)) = parts.split_last() else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let in_dir = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut at = match open(dir, in_dir, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(refused(e, true)),
    };
    for part in folders {
        at = match openat(&at, *part, in_dir, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(refused(e, true)),
        };
    }
    let file = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match openat(&at, *last, file, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(refused(e, false)),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    Ok(Some(File::from(fd)))
}

/// A file that lives in memory only, holding `bytes`, read from its start: what is read back
/// from elsewhere (a run's pack) is handed on as a file like any capture file.
pub fn anonymous_file(bytes: &[u8]) -> io::Result<File> {
    use std::io::{Seek, Write};
    let fd = rustix::fs::memfd_create("orchestrate-output", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut f = File::from(fd);
    f.write_all(bytes)?;
    f.rewind()?;
    Ok(f)
}

/// A file on disk in `dir` with no name (0600): gone with its last descriptor, whatever way
/// this process ends. Where the filesystem has no unnamed files, a named one is made and
/// unlinked at once.
pub fn unnamed_file(dir: &Path) -> io::Result<File> {
    let rw = OFlags::RDWR | OFlags::CLOEXEC;
    // EXCL: it can never be linked into the filesystem later.
    match open(
        dir,
        rw | OFlags::TMPFILE | OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => return Ok(File::from(fd)),
        Err(e) if e != rustix::io::Errno::OPNOTSUPP && e != rustix::io::Errno::ISDIR => {
            return Err(e.into());
        }
        Err(_) => {}
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = dir.join(format!(".spool-{}-{nanos}", std::process::id()));
    let fd = open(
        &path,
        rw | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )?;
    std::fs::remove_file(&path)?;
    Ok(File::from(fd))
}

/// The error of a component that could not be opened. Under O_NOFOLLOW a symlink fails as a
/// loop (ELOOP), or as "not a directory" where a folder was asked for: it is named as such.
fn refused(e: rustix::io::Errno, folder: bool) -> io::Error {
    use rustix::io::Errno;
    let why = match e {
        Errno::LOOP => "it is a symlink, which is never followed",
        Errno::NOTDIR if folder => "it is a symlink (never followed) or not a folder",
        _ => return e.into(),
    };
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// Creates `path` and any missing parents as 0700 whatever the umask (which can only take
/// bits away): the state dir and everything in it are the user's alone. Used for every folder
/// orchestrate makes under the state dir (the store, `locks/`, `cron/`, a run's Slurm files).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
