//! A small builder: a temp dir with a job file, a private state dir, and the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            raw_stdout: o.stdout,
        }
    }

    /// The JSON lines of stdout.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect()
    }

    pub fn record<'a>(recs: &'a [serde_json::Value], job: &str) -> &'a serde_json::Value {
        recs.iter()
            .find(|r| r["job"] == job)
            .unwrap_or_else(|| panic!("no record for {job} in {recs:#?}"))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("orch-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orchestrate"));
        c.current_dir(self.dir.path())
            .env("ORCHESTRATE_STATE_DIR", self.state())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        c
    }

    /// Starts orchestrate without waiting (stdout and stderr piped: read them with
    /// `wait_with_output`, or leave them; a run's report fits in a pipe).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orchestrate")
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().expect("run orchestrate"))
    }

    /// Writes `jobs.yaml` and runs it with extra args.
    pub fn run_jobs(&self, yaml: &str, args: &[&str]) -> Run {
        self.write("jobs.yaml", yaml);
        let mut all = vec!["jobs.yaml"];
        all.extend_from_slice(args);
        self.run(&all)
    }
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Waits (up to 10 s) until `path` holds at least `n` pids, which jobs write to say they
/// started, and returns them.
pub fn await_pids(path: &Path, n: usize) -> Vec<u32> {
    assert!(
        wait_for(Duration::from_secs(10), || read_pids(path).len() >= n),
        "{} never held {n} pids",
        path.display()
    );
    read_pids(path)
}

/// Asserts that every one of `pids` is gone (or a zombie) within 10 s.
pub fn assert_gone(pids: &[u32], what: &str) {
    for &pid in pids {
        assert!(
            wait_for(Duration::from_secs(10), || !alive(pid)),
            "{what}: pid {pid} survived (all: {pids:?})"
        );
    }
}

/// Every file under `dir` (any depth) whose bytes contain `needle`: the SQLite database, its
/// -wal and -shm files, capture files, locks, logs.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Says loudly that a test did not test anything. It writes to the process's stderr directly,
/// past the test harness's capture (which would swallow an `eprintln!` of a passing test), so
/// the line shows in a plain `cargo test`.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// Whether the tests run as root (some checks need another user to exist).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Tests that change the user's crontab hold this: `crontab -l` then `crontab -` is a
/// read-modify-write, and two at once would lose a line.
pub fn crontab_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The log a crontab line appends its report to (the word after `--log`).
pub fn cron_log(line: &str) -> PathBuf {
    let rest = line
        .split_once(" --log ")
        .unwrap_or_else(|| panic!("no log in {line}"))
        .1;
    PathBuf::from(&shell_words::split(rest).unwrap()[0])
}
