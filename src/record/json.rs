//! Records as JSON lines, for `--json` runs, `show --json` and the records hooks are given: the record's fields, then its
//! stdout and stderr streamed from the capture files into JSON strings. The one writer of
//! them, so that every record has the same fields.

use std::fs::File;
use std::io::{self, Read, Write};

use super::{CompletedProcess, format_time};

/// One record as a JSON line: the record's fields, with stdout and stderr inline as text
/// (decoded lossily, `*_lossy` saying so) and their byte counts. Output is streamed from the
/// capture files, so a large output never sits in memory whole. `outputs` are its stdout and
/// stderr as they read back (`CaptureRoot::read_back`). `run` is the id of the run the record
/// belongs to. Every record has every field, `null` where it does not apply: a reader can
/// take the keys of one for the keys of all.
pub fn write_json_record(
    w: &mut dyn Write,
    run: &str,
    rec: &CompletedProcess,
    inherited_env: &[String],
    outputs: [Option<File>; 2],
) -> io::Result<()> {
    let head = serde_json::json!({
        "run": run,
        "job": rec.job,
        "index": rec.index,
        "args": rec.args,
        "cwd": rec.cwd,
        "returncode": rec.returncode,
        "signal": rec.signal,
        "signal_name": rec.signal.map(super::signal_name),
        "status": rec.status,
        "error": rec.error,
        "pid": rec.pid,
        "slot": rec.slot,
        "start": format_time(rec.started),
        "end": format_time(rec.finished),
        "duration": (rec.duration.as_secs_f64() * 1e6).round() / 1e6,
        "attempts": rec.attempts,
        "flaky": rec.flaky,
        "host_failed": rec.host_failed,
        "host": rec.host,
        "notes": rec.notes,
        "stdout_bytes": rec.stdout.bytes,
        "stderr_bytes": rec.stderr.bytes,
        "stdout_path": rec.stdout.file_now(),
        "stderr_path": rec.stderr.file_now(),
        "earlier_attempts": rec.earlier_attempts,
        "env_keys": rec.all_env_keys(inherited_env),
        "hook": rec.hook,
        "slurm_job_id": rec.slurm_job_id,
        "carried_from": rec.carried_from,
    });
    let mut text = serde_json::to_string(&head).map_err(io::Error::other)?;
    text.pop(); // the closing brace: the inline outputs follow
    w.write_all(text.as_bytes())?;
    for (name, out) in ["stdout", "stderr"].into_iter().zip(outputs) {
        write!(w, ",\"{name}\":")?;
        let lossy = match out {
            Some(f) => write_json_string_from_file(w, f)?,
            None => {
                w.write_all(b"\"\"")?;
                false
            }
        };
        write!(w, ",\"{name}_lossy\":{lossy}")?;
    }
    w.write_all(b"}\n")
}

/// Writes a file's bytes as one JSON string, decoding UTF-8 lossily chunk by chunk.
/// Returns whether anything had to be replaced.
fn write_json_string_from_file(w: &mut dyn Write, mut f: File) -> io::Result<bool> {
    w.write_all(b"\"")?;
    let mut lossy = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        // Keep an incomplete UTF-8 sequence at the end for the next chunk.
        let keep = match std::str::from_utf8(&carry) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_none() => carry.len() - e.valid_up_to(),
            Err(_) => {
                // Invalid somewhere; an incomplete tail may still follow the invalid part.
                incomplete_tail(&carry)
            }
        };
        let cut = carry.len() - keep;
        let piece = String::from_utf8_lossy(&carry[..cut]);
        if matches!(piece, std::borrow::Cow::Owned(_)) {
            lossy = true;
        }
        write_escaped(w, &piece)?;
        carry.drain(..cut);
    }
    if !carry.is_empty() {
        lossy = true;
        write_escaped(w, &String::from_utf8_lossy(&carry))?;
    }
    w.write_all(b"\"")?;
    Ok(lossy)
}

/// Length of a trailing incomplete (but so far valid) UTF-8 sequence.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let start = b.len() - back;
        let lead = b[start];
        let need = if lead >= 0xF0 {
            4
        } else if lead >= 0xE0 {
            3
        } else if lead >= 0xC0 {
            2
        } else {
            continue;
        };
        return if need > back { back } else { 0 };
    }
    0
}

fn write_escaped(w: &mut dyn Write, s: &str) -> io::Result<()> {
    let quoted = serde_json::to_string(s).map_err(io::Error::other)?;
    w.write_all(&quoted.as_bytes()[1..quoted.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_tails() {
        assert_eq!(incomplete_tail(b"ab\xE2\x82"), 2);
        assert_eq!(incomplete_tail(b"ab\xE2\x82\xAC"), 0);
        assert_eq!(incomplete_tail(b"ab"), 0);
    }
}
