//! The wrapper remote back ends (Slurm, ssh) run around a job's argv, and the control lines it
//! sends back.
//!
//! A remote client (`srun`, `ssh`) gives us one stdout, one stderr and one exit status, and the
//! exit status mixes the job's own code with the client's failures (ssh's 255, srun's errors). So
//! the job runs under a small `sh` script that writes two control lines to stderr: one when it
//! starts (its pid, which is also its process group, the Slurm job id and the node), one with
//! the job's exact exit status when it ends. Each line begins with a marker that is random per
//! job, so no output can be mistaken for it; the stderr drain strips these lines wherever they
//! appear (also glued to a last line without a newline) and hands them here. No trailer means
//! the client failed, whatever its exit status.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::environ::JobEnv;
use crate::plan::{PlannedJob, Target};

/// Most bytes kept of what the client wrote before the job started (its own error messages).
const EARLY_MAX: usize = 4096;

/// A marker unique to this job: time, pid and a counter, hashed.
pub fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{now}:{}:{n}", std::process::id());
    format!("__ORCH_{}", &crate::text::sha256_hex(seed.as_bytes())[..20])
}

/// The `sh` script that runs `argv` and reports around it. `setup` runs first, in the same
/// shell (`exports` for ssh; empty for Slurm, whose tasks get the variables through srun's
/// own environment). With `cd`, it changes to the job's directory first (ssh: the job's `cwd`
/// is on the remote host). No variable value is ever in a command line here: argv would show
/// it to every user in /proc.
pub fn script(marker: &str, job: &PlannedJob, argv: &[String], setup: &str, cd: bool) -> String {
    let q = |s: &str| shell_words::quote(s).into_owned();
    // A first word with `=` would be taken for an assignment: `command` runs it as a name.
    let mut cmd = String::from(if argv[0].contains('=') {
        "command "
    } else {
        ""
    });
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            cmd.push(' ');
        }
        cmd.push_str(&q(a));
    }
    // Merging and discarding happen remotely, so the local stderr pipe carries only what the
    // job's stderr target wants (see `process::stdio`).
    match job.stderr {
        Target::Stdout => cmd.push_str(" 2>&1"),
        Target::Null => cmd.push_str(" 2>/dev/null"),
        _ => {}
    }
    let run = match (&job.cwd, cd) {
        (Some(dir), true) => format!(
            "if cd {} ; then {cmd}; st=$?; else st=126; fi",
            q(&dir.to_string_lossy())
        ),
        _ => format!("{cmd}; st=$?"),
    };
    format!(
        "{setup}printf '%s start %s %s %s\\n' {m} \"$$\" \"${{SLURM_JOB_ID:--}}\" \"${{SLURMD_NODENAME:-$(uname -n)}}\" >&2; \
         {run}; printf '%s exit %s\\n' {m} \"$st\" >&2; exit \"$st\"",
        m = q(marker)
    )
}

/// Shell statements that give the job exactly `env` on top of the session's environment, or
/// instead of it with `clean` (every variable the session had is unset first).
pub fn exports(env: &JobEnv, clean: bool) -> String {
    let mut s = String::new();
    if clean {
        s.push_str(
            "for __k in $(env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do unset \"$__k\" 2>/dev/null; done; unset __k; ",
        );
    }
    for (k, v) in &env.vars {
        s.push_str(&format!("export {k}={}; ", shell_words::quote(v)));
    }
    s
}

/// The remote command that runs a script sent on stdin: a line with its length in bytes,
/// then the script, read exactly (the job's own input follows it on the same stream).
pub const STDIN_BOOTSTRAP: &str =
    "exec sh -c 'IFS= read -r n && s=$(dd bs=1 count=\"$n\" 2>/dev/null) && eval \"$s\"'";

/// What is sent on stdin ahead of the job's own input, for `STDIN_BOOTSTRAP`.
pub fn stdin_prefix(script: &str) -> Vec<u8> {
    let mut p = format!("{}\n", script.len()).into_bytes();
    p.extend_from_slice(script.as_bytes());
    p
}

/// What the wrapper reported.
#[derive(Debug, Default, Clone)]
pub struct Control {
    /// The wrapper's pid, which leads the job's process group on the remote side.
    pub pgid: Option<u32>,
    pub slurm_job_id: Option<String>,
    pub node: Option<String>,
    /// The job's exact exit status.
    pub exit: Option<i32>,
    /// What the client wrote on stderr before the job started (its own error messages).
    pub early: Vec<u8>,
    pub started: bool,
}

impl Control {
    /// The client's early stderr as one line, for an error message.
    pub fn early_text(&self) -> String {
        let t = String::from_utf8_lossy(&self.early);
        let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines.join("; ")
    }
}

/// Removes control lines from a stderr byte stream, also across chunk boundaries.
pub struct ControlFilter {
    marker: Vec<u8>,
    carry: Vec<u8>,
    pub control: Control,
}

impl ControlFilter {
    pub fn new(marker: &str) -> Self {
        ControlFilter {
            marker: marker.as_bytes().to_vec(),
            carry: Vec::new(),
            control: Control::default(),
        }
    }

    /// The bytes of `chunk` that belong to the job's stderr.
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut p = 0;
        while p < buf.len() {
            let rest = &buf[p..];
            match find(rest, &self.marker) {
                Some(i) => {
                    out.extend_from_slice(&rest[..i]);
                    let line = &rest[i..];
                    match line.iter().position(|&b| b == b'\n') {
                        Some(nl) => {
                            let body = String::from_utf8_lossy(&line[self.marker.len()..nl]);
                            self.control_line(&body);
                            p += i + nl + 1;
                        }
                        // Not a control line after all if it grows without end.
                        None if last || line.len() > 1024 => {
                            out.extend_from_slice(line);
                            p = buf.len();
                        }
                        None => {
                            self.carry = line.to_vec();
                            p = buf.len();
                        }
                    }
                }
                None => {
                    let keep = if last {
                        0
                    } else {
                        partial_prefix(rest, &self.marker)
                    };
                    out.extend_from_slice(&rest[..rest.len() - keep]);
                    self.carry = rest[rest.len() - keep..].to_vec();
                    p = buf.len();
                }
            }
        }
        if !self.control.started && self.control.early.len() < EARLY_MAX {
            let room = EARLY_MAX - self.control.early.len();
            self.control
                .early
                .extend_from_slice(&out[..out.len().min(room)]);
        }
        out
    }

    fn control_line(&mut self, body: &str) {
        let words: Vec<&str> = body.split_whitespace().collect();
        let c = &mut self.control;
        match words.as_slice() {
            ["start", pid, job, node, ..] => {
                c.started = true;
                c.pgid = pid.parse().ok();
                c.slurm_job_id = (*job != "-").then(|| job.to_string());
                c.node = Some(node.to_string());
            }
            ["exit", code] => c.exit = code.parse().ok(),
            _ => {}
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest end of `hay` that begins `needle`: it may continue in the next chunk.
fn partial_prefix(hay: &[u8], needle: &[u8]) -> usize {
    let max = hay.len().min(needle.len() - 1);
    (1..=max)
        .rev()
        .find(|&k| hay[hay.len() - k..] == needle[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Control) {
        let mut f = ControlFilter::new("__ORCH_x");
        let mut out = Vec::new();
        for c in chunks {
            out.extend(f.feed(c, false));
        }
        out.extend(f.feed(&[], true));
        (out, f.control)
    }

    #[test]
    fn strips_control_lines_split_across_chunks() {
        let (out, c) = run(&[
            b"srun: warn\n__OR",
            b"CH_x start 42 7 n1\nerr1\nlast without newline__ORCH",
            b"_x exit 255\n",
        ]);
        assert_eq!(out, b"srun: warn\nerr1\nlast without newline");
        assert_eq!(c.pgid, Some(42));
        assert_eq!(c.slurm_job_id.as_deref(), Some("7"));
        assert_eq!(c.node.as_deref(), Some("n1"));
        assert_eq!(c.exit, Some(255));
        assert_eq!(c.early, b"srun: warn\n");
    }

    #[test]
    fn a_lookalike_is_output() {
        let (out, c) = run(&[b"__ORC", b"H not the marker\n__ORCH"]);
        assert_eq!(out, b"__ORCH not the marker\n__ORCH");
        assert!(!c.started && c.exit.is_none());
    }
}
