//! The wrapper remote back ends (Slurm, ssh) run around a job's argv, and the control lines it
//! sends back.
//!
//! A remote client (`srun`, `ssh`) gives us one stdout, one stderr and one exit status, and the
//! exit status mixes the job's own code with the client's failures (ssh's 255, srun's errors). So
//! the job runs under a small `sh` script that writes two control lines to stderr: one when it
//! starts (its pid, which is also its process group, the Slurm job id, the node and the step), one with
//! the job's exact exit status when it ends. Each line begins with a marker that is random per
//! job, so no output can be mistaken for it; the stderr drain strips these lines wherever they
//! appear (also glued to a last line without a newline) and hands them to `control`. No trailer
//! means the client failed, whatever its exit status.
//!
//! The script adds nothing to the job's streams: the job gets the session's stderr as its own,
//! while the shell's own stderr goes to /dev/null, so its report of a child killed by a signal
//! (dash's `Killed`, `Segmentation fault`) is never in the job's stderr, as it is not locally.

use std::sync::atomic::{AtomicU64, Ordering};

pub use super::control::{Control, ControlFilter, Frame, FrameState};
use crate::environ::JobEnv;
use crate::plan::{PlannedJob, Target};

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
    // Fd 3 is the session's stderr; the job gets it as its fd 2 and never sees fd 3. The
    // subshell keeps the redirection out of the shell that waits (dash reports a child's death
    // on the stderr a command's redirection gave it), and it execs the job.
    cmd.insert(0, '(');
    cmd.push_str(match job.stderr {
        Target::Stdout => " 2>&1 3>&-)",
        Target::Null => " 2>/dev/null 3>&-)",
        _ => " 2>&3 3>&-)",
    });
    let run = match (&job.cwd, cd) {
        (Some(dir), true) => format!(
            "if cd {} 2>&3; then {cmd}; st=$?; else st=126; fi",
            q(&dir.to_string_lossy())
        ),
        _ => format!("{cmd}; st=$?"),
    };
    format!(
        "{setup}exec 3>&2 2>/dev/null; \
         printf '%s start %s %s %s %s\\n' {m} \"$$\" \"${{SLURM_JOB_ID:--}}\" \"${{SLURMD_NODENAME:-$(uname -n)}}\" \"${{SLURM_STEP_ID:--}}\" >&3; \
         {run}; printf '%s exit %s\\n' {m} \"$st\" >&3; exit \"$st\"",
        m = q(marker)
    )
}

/// Shell statements that give the job exactly `env` on top of the session's environment, or
/// instead of it with `clean` (every variable the session had is unset first).
pub fn exports(env: &JobEnv, clean: bool) -> String {
    exports_keeping(env, clean, None)
}

/// `exports`, where `clean` keeps the variables whose names begin with `keep` (Slurm's own,
/// as `srun --export=NAMES` does).
pub fn exports_keeping(env: &JobEnv, clean: bool, keep: Option<&str>) -> String {
    let mut s = String::new();
    if clean {
        let unset = match keep {
            Some(k) => format!("case $__k in {k}*) ;; *) unset \"$__k\" 2>/dev/null;; esac"),
            None => "unset \"$__k\" 2>/dev/null".to_string(),
        };
        s.push_str(&format!(
            "for __k in $(env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do {unset}; done; unset __k; "
        ));
    }
    for (k, v) in &env.vars {
        s.push_str(&format!("export {k}={}; ", shell_words::quote(v)));
    }
    s
}

/// The loop a Slurm worker step runs (under bash, for `set -m`: each job in a process group
/// of its own, killed whole, with the signals a job gets elsewhere, which `sh` without job
/// control would start with SIGINT and SIGQUIT ignored). It reads `job MARKER LEN` and LEN
/// bytes of a `script` (`worker_job`), or `kill MARKER SIGNAL` (`worker_kill`) for the job it
/// runs. A job's runner writes `MARKER begin` on stdout, runs the script, then `MARKER end` on
/// stdout and stderr (`control::Frame` cuts the streams there); when the runner itself is
/// killed, the loop writes the end lines for it. What the job left running is killed when
/// the next job starts, and when the loop ends: at EOF (the run closed it, or died) or when
/// Slurm ends the step. The loop's own stderr (bash's word on a killed job) goes nowhere. Its
/// first line on stdout, before any job's, names its node (`node NAME`).
pub const WORKER: &str = r#"exec 4>&2 2>/dev/null
printf 'node %s\n' "${SLURMD_NODENAME:-$(uname -n)}"
set -m
cur= curm=
trap '[ -n "$cur" ] && kill -9 -"$cur"; exit 143' TERM HUP INT
while IFS=' ' read -r what m a; do
  case $what in
  job)
    [ -n "$cur" ] && { kill -9 -"$cur"; wait "$cur"; }
    s=$(dd bs=1 count="$a")
    curm=$m
    ( trap : TERM INT HUP; printf '%s begin\n' "$m"; ( eval "$s" ); printf '%s end\n' "$m"; printf '%s end\n' "$m" >&2 ) </dev/null 2>&4 4>&- &
    cur=$! ;;
  kill)
    [ "$m" = "$curm" ] && [ -n "$cur" ] || continue
    kill -"$a" -"$cur"
    if [ "$a" = 9 ]; then
      wait "$cur"
      [ $? = 137 ] && { printf '%s end\n' "$m"; printf '%s end\n' "$m" >&4; }
    fi ;;
  esac
done
[ -n "$cur" ] && kill -9 -"$cur"
exit 0"#;

/// What a worker is sent to run one job: its marker and `script` (which starts with a trap,
/// so that a TERM for the job leaves the wrapper to report its status).
pub fn worker_job(marker: &str, script: &str) -> Vec<u8> {
    let mut b = format!("job {marker} ").into_bytes();
    b.extend(stdin_prefix(&format!("trap : TERM INT HUP; {script}")));
    b
}

/// What a worker is sent to signal the job of `marker` (and its whole process group).
pub fn worker_kill(marker: &str, signal: i32) -> Vec<u8> {
    format!("kill {marker} {signal}\n").into_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The script as `sh -c` runs it, its stderr through the filter: (stderr, control).
    fn sh(job: &PlannedJob, argv: &[&str]) -> (String, Control) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = std::process::Command::new("sh")
            .args(["-c", &script("__ORCH_t", job, &argv, "", false)])
            .output()
            .unwrap();
        let mut f = ControlFilter::new("__ORCH_t");
        let mut err = f.feed(&out.stderr, false);
        err.extend(f.feed(&[], true));
        (String::from_utf8_lossy(&err).into_owned(), f.control)
    }

    #[test]
    fn a_worker_runs_job_after_job_and_kills_one_whole() {
        use std::io::{Read, Write};
        let mut w = std::process::Command::new("bash")
            .args(["-c", WORKER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let job = PlannedJob::new(0, "w".into(), vec![]);
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = script(
            "__ORCH_1",
            &job,
            &argv(&["sh", "-c", "echo out; printf err >&2; exit 3"]),
            "",
            false,
        );
        let two = script(
            "__ORCH_2",
            &job,
            &argv(&["sh", "-c", "trap '' TERM; sleep 60 & echo $! >&2; sleep 60"]),
            "",
            false,
        );
        let stdin = w.stdin.as_mut().unwrap();
        stdin.write_all(&worker_job("__ORCH_1", &one)).unwrap();
        // The next job goes once this one ended (what it left running dies then).
        std::thread::sleep(std::time::Duration::from_millis(300));
        stdin.write_all(&worker_job("__ORCH_2", &two)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        // TERM first, which the job ignores; then KILL takes its group, the child with it.
        stdin.write_all(&worker_kill("__ORCH_2", 15)).unwrap();
        stdin.write_all(&worker_kill("__ORCH_2", 9)).unwrap();
        drop(w.stdin.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        w.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        w.stderr.take().unwrap().read_to_end(&mut err).unwrap();
        assert!(w.wait().unwrap().success());
        let part = |f: &mut Frame, b: &[u8]| f.feed(b, true).1;
        let mut filter = ControlFilter::new("__ORCH_1");
        let e1 = filter.feed(&part(&mut Frame::stderr("__ORCH_1"), &err), true);
        assert_eq!(part(&mut Frame::stdout("__ORCH_1"), &out), b"out\n");
        assert_eq!((e1.as_slice(), filter.control.exit), (&b"err"[..], Some(3)));
        let e2 =
            ControlFilter::new("__ORCH_2").feed(&part(&mut Frame::stderr("__ORCH_2"), &err), true);
        let child: i32 = String::from_utf8_lossy(&e2).trim().parse().unwrap();
        // Gone, or a zombie waiting for whoever adopted it.
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        assert!(
            matches!(state, None | Some('Z')),
            "the job's child went with its group: {stat}"
        );
    }

    #[test]
    fn a_job_killed_by_a_signal_leaves_its_stderr_as_it_was() {
        let job = PlannedJob::new(0, "k".into(), vec![]);
        let (err, c) = sh(&job, &["sh", "-c", "echo before >&2; kill -9 $$"]);
        assert_eq!(err, "before\n");
        assert_eq!(c.exit, Some(137));
        let (err, c) = sh(
            &job,
            &[
                "sh",
                "-c",
                "ls -l /proc/self/fd/3 2>&1 >/dev/null || echo no3 >&2",
            ],
        );
        assert_eq!(err, "no3\n", "the job does not get fd 3");
        assert_eq!(c.exit, Some(0));
    }
}
