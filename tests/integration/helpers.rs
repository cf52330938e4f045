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
        // The tests' HTTP servers are on 127.0.0.1: nothing may send their requests elsewhere.
        for v in [
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            c.env_remove(v);
        }
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

/// One request a `TestServer` took.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for the test that starts it: it answers each request
/// with the next of its statuses (200 once they are used up), one request per connection,
/// and records what it was sent. It stops when dropped.
pub struct TestServer {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<HttpRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(statuses: &[u16]) -> TestServer {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let mut statuses: std::collections::VecDeque<u16> = statuses.iter().copied().collect();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let status = statuses.pop_front().unwrap_or(200);
                        if let Some(req) = serve_one(conn, status) {
                            seen.lock().unwrap().push(req);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TestServer {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then a `Content-Length` body) and answers `status`.
fn serve_one(conn: std::net::TcpStream, status: u16) -> Option<HttpRequest> {
    use std::io::{BufRead, BufReader, Read, Write};
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let reason = if status < 400 { "OK" } else { "Error" };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// A URL where nothing listens: a port that was just free.
pub fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

impl Env {
    /// A stand-in `sendmail` in `bin/` (put first on PATH by `cmd_with_bin`) that appends
    /// its arguments and the message it is given to `mail.log`, one `---` line after each.
    pub fn fake_sendmail(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let log = self.path("mail.log");
        let script = format!(
            "#!/bin/sh\n{{ echo \"ARGS: $*\"; cat; echo; echo ---; }} >> '{}'\n",
            log.display()
        );
        let p = self.write("bin/sendmail", &script);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        log
    }

    /// Runs with `bin/` of the test's folder first on PATH.
    pub fn run_with_bin(&self, args: &[&str]) -> Run {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Run::from(
            self.cmd()
                .args(args)
                .env("PATH", path)
                .output()
                .expect("run orchestrate"),
        )
    }
}

/// The messages a stand-in sendmail logged, each split into its `ARGS:` line and the rest.
pub fn mails(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split("\n---\n")
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let (args, msg) = m.split_once('\n').unwrap_or((m, ""));
            (args.to_string(), msg.to_string())
        })
        .collect()
}
