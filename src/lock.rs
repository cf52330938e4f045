//! The overlap lock: one run of a job file at a time, as cron users expect (`flock -n`).
//! The kernel drops the lock when its holder dies, so a killed run never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How a run treats a lock held by another run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// No lock at all (`--no-lock`).
    Off,
    /// Give up at once (the default).
    #[default]
    NoWait,
    /// Wait for it, forever or up to a limit (`--wait-lock [D]`).
    Wait(Option<Duration>),
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", busy(job_file, holder, *waited))]
    Busy {
        job_file: String,
        holder: String,
        /// How long `--wait-lock D` waited before giving up.
        waited: Option<Duration>,
    },
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a run did not start: another holds the lock, and what to do about it.
fn busy(job_file: &str, holder: &str, waited: Option<Duration>) -> String {
    match waited {
        None => format!(
            "{job_file} is already running{holder}; not starting a second run (use --wait-lock to wait, or --no-lock)"
        ),
        Some(d) => format!(
            "{job_file} is still running{holder} after waiting {} for it; not starting a second run (wait longer with --wait-lock, or use --no-lock)",
            humantime::format_duration(d)
        ),
    }
}

/// The lock file of a job file: its name for people, a hash of its absolute path for uniqueness.
pub fn lock_path(state_dir: &Path, job_file: &Path) -> PathBuf {
    let abs = std::path::absolute(job_file).unwrap_or_else(|_| job_file.to_path_buf());
    let hash = crate::text::sha256_hex(abs.as_os_str().as_encoded_bytes());
    let stem = crate::text::slug(
        &abs.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    state_dir
        .join("locks")
        .join(format!("{stem}-{}.lock", &hash[..12]))
}

pub fn acquire(
    state_dir: &Path,
    job_file: &Path,
    mode: LockMode,
) -> Result<Option<RunLock>, LockError> {
    if mode == LockMode::Off {
        return Ok(None);
    }
    let path = lock_path(state_dir, job_file);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::store::create_private_dir(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Never through a symlink: one planted there would make us truncate its target.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io)?;
    let t0 = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let give_up = match mode {
                    LockMode::NoWait => true,
                    LockMode::Wait(Some(limit)) => t0.elapsed() >= limit,
                    LockMode::Wait(None) | LockMode::Off => false,
                };
                if give_up {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(LockError::Busy {
                        job_file: job_file.display().to_string(),
                        holder: if holder.is_empty() {
                            String::new()
                        } else {
                            format!(" ({holder})")
                        },
                        waited: match mode {
                            LockMode::Wait(limit) => limit,
                            _ => None,
                        },
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    // Say who holds it, for the next run's message.
    let note = format!(
        "since {}, pid {}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        std::process::id()
    );
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(note.as_bytes()).map_err(io)?;
    Ok(Some(RunLock { _file: file, path }))
}
