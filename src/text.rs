//! Small text helpers every layer uses: OS error text, hashes, names made from command lines,
//! unified diffs.

/// The OS error text without Rust's " (os error 2)" suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A stable name from a command line: `df -h /home` → `df-h-home`.
pub fn slug(command: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in command.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_matches('.').to_string();
    if out.is_empty() || out == "last" {
        "job".to_string()
    } else {
        out
    }
}

/// What changed from `old` to `new`, line by line, as a unified diff with 3 lines of context
/// under the two labels: `orchestrate diff`, and a notification's digest of a failing job.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Reads a text file the job file names (an `env_file`, an items file), refusing what could
/// hang or swamp the planner: anything but a regular file (a FIFO would block, `/dev/zero`
/// never ends) and files over `limit` bytes. Opened without blocking, so a FIFO is refused
/// rather than waited on.
pub fn read_regular_text(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    if meta.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "it is {} bytes, more than the {} MiB allowed",
                meta.len(),
                limit >> 20
            ),
        ));
    }
    let mut text = String::new();
    f.take(limit).read_to_string(&mut text)?;
    Ok(text)
}
