//! `orchestrate report RUN -o run.html` in a real headless browser (Debian's chromium): the
//! page's DOM after its script ran, sorted and filtered through the URL's hash as a click
//! would, text from jobs shown literally, a screenshot; and clicks through the DevTools
//! protocol.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{Env, skipped, wait_for};

const XSS: &str = "<script>alert(1)</script>";

const JOBS: &str = r#"
jobs:
  - name: xss
    command: ["sh", "-c", "echo \"$0\"; echo \"$0\" >&2; exit 1", "<script>alert(1)</script>"]
  - name: quick
    shell: echo quick
  - name: slow
    shell: sleep 1.5; echo slow
  - name: big
    shell: seq 1 40000
  - name: after-xss
    needs: [xss]
    shell: echo never
"#;

/// The browser, or `None` (and a skip line) when it is not installed; under CI it must be.
fn chromium(test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is required under CI (.ci/run installs it)");
        }
        skipped(test, "no chromium in /usr/bin (apt-get install chromium)");
    }
    found
}

/// Runs headless chromium on `url` with `args`, its profile in `env`'s folder.
fn browse(browser: &Path, env: &Env, args: &[&str], url: &str) -> Vec<u8> {
    let profile = env.path("chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let ended = wait_for(Duration::from_secs(120), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromium did not finish within 2 minutes on {url}");
    }
    reader.join().unwrap().unwrap()
}

fn dom(browser: &Path, env: &Env, page: &Path, hash: &str) -> String {
    let url = format!("file://{}{hash}", page.display());
    String::from_utf8(browse(browser, env, &["--dump-dom"], &url)).unwrap()
}

/// The rows of the jobs table in the order the DOM has them: (job, hidden).
fn rows(dom: &str) -> Vec<(String, bool)> {
    dom.split("<tr data-index=")
        .skip(1)
        .map(|row| {
            let head = &row[..row.find('>').unwrap()];
            let job = head.split("data-job=\"").nth(1).unwrap();
            let job = job[..job.find('"').unwrap()].to_string();
            (job, head.contains(" hidden"))
        })
        .collect()
}

#[test]
fn report_is_one_page_escaped_sortable_filterable_with_history() {
    let Some(browser) = chromium("report_is_one_page_escaped_sortable_filterable_with_history")
    else {
        return;
    };
    let env = Env::new();
    for _ in 0..2 {
        let run = env.run_jobs(JOBS, &["-q"]);
        assert_eq!(run.code, 1, "{run:?}");
    }
    let page = env.path("run.html");
    let made = env.run(&["report", "last", "-o", page.to_str().unwrap()]);
    assert_eq!(made.code, 0, "{made:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched from anywhere.
    for outside in ["<link", " src=", "href=\"http", "url(", "@import"] {
        assert!(
            !html.contains(outside),
            "the page loads something ({outside})"
        );
    }
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains(XSS), "job text is escaped");

    let plain = dom(&browser, &env, &page, "");
    assert_eq!(
        plain.matches("<script").count(),
        1,
        "the DOM has one script: {plain}"
    );
    assert!(!plain.contains(XSS));
    // The DOM serializes text back with `<` escaped: the page shows the text, literally,
    // in the job's output and in its command.
    let literal = "&lt;script&gt;alert(1)&lt;/script&gt;";
    assert!(
        plain.contains(&format!("<pre class=\"stream stdout\">{literal}")),
        "{plain}"
    );
    assert!(
        plain.contains(&format!("<pre class=\"stream stderr\">{literal}")),
        "{plain}"
    );
    assert!(plain.contains(literal) && plain.contains("code class=\"args\""));
    // A bar per job that ran (the skipped one has none), a sparkline of both runs per job.
    let gantt = plain.split("id=\"gantt\"").nth(1).expect("a timeline");
    let gantt = &gantt[..gantt.find("</svg>").unwrap()];
    assert_eq!(gantt.matches("<rect class=\"bar").count(), 4, "{gantt}");
    assert_eq!(
        gantt.matches("<rect class=\"bar failed").count(),
        1,
        "{gantt}"
    );
    assert_eq!(
        plain.matches("class=\"spark\" data-runs=\"2\"").count(),
        4,
        "{plain}"
    );
    assert!(
        plain.contains("5 of 5 jobs shown"),
        "the script ran: {plain}"
    );
    // The big output is cut to its end, and says so.
    assert!(plain.contains("only the last 64 KiB of"), "{plain}");
    assert!(
        plain.contains("\n40000\n") && !plain.contains(">1\n2\n3\n"),
        "the end is kept"
    );

    let sorted = rows(&dom(&browser, &env, &page, "#sort=duration&order=desc"));
    assert_eq!(sorted.len(), 5);
    assert_eq!(sorted[0].0, "slow", "longest first: {sorted:?}");
    let by_name = rows(&dom(&browser, &env, &page, "#sort=job"));
    let names: Vec<&str> = by_name.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(names, ["after-xss", "big", "quick", "slow", "xss"]);

    let filtered = rows(&dom(&browser, &env, &page, "#status=failed"));
    let shown: Vec<&str> = filtered
        .iter()
        .filter(|(_, hidden)| !hidden)
        .map(|(j, _)| j.as_str())
        .collect();
    assert_eq!(shown, ["xss"], "{filtered:?}");
    assert_eq!(filtered.len(), 5, "filtered rows are hidden, not removed");

    let shot = env.path("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    browse(
        &browser,
        &env,
        &[&arg, "--window-size=1200,900"],
        &format!("file://{}", page.display()),
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a page with content, not a blank one: {} bytes",
        png.len()
    );
}

#[test]
fn report_goes_to_stdout_without_a_file_and_names_an_unknown_run() {
    let env = Env::new();
    env.run_jobs("jobs:\n  - name: a\n    shell: echo a\n", &["-q"]);
    let page = env.run(&["report"]);
    assert_eq!(page.code, 0, "{page:?}");
    assert!(page.stdout.starts_with("<!DOCTYPE html>"), "{page:?}");
    assert!(page.stdout.trim_end().ends_with("</html>"));
    let none = env.run(&["report", "nosuchrun", "-o", "x.html"]);
    assert_eq!(none.code, 3, "{none:?}");
    assert!(
        none.stderr.contains("no run matches `nosuchrun`"),
        "{none:?}"
    );
    assert!(!env.path("x.html").exists());
}

/// Headless chromium driven over its DevTools protocol (a small WebSocket client over a
/// TcpStream): the page is loaded, then clicked as a person would.
struct Devtools {
    child: std::process::Child,
    ws: Option<std::net::TcpStream>,
    next: u64,
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Devtools {
    fn open(browser: &Path, env: &Env, url: &str) -> Devtools {
        let profile = env.path("chromium-devtools");
        let child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Made at once, so that chromium is stopped whatever fails below.
        let mut dt = Devtools {
            child,
            ws: None,
            next: 0,
        };
        let port_file = profile.join("DevToolsActivePort");
        let ready = wait_for(Duration::from_secs(60), || {
            std::fs::read_to_string(&port_file).is_ok_and(|t| t.lines().count() >= 2)
        });
        assert!(ready, "chromium wrote no DevToolsActivePort");
        let text = std::fs::read_to_string(&port_file).unwrap();
        let port: u16 = text.lines().next().unwrap().parse().unwrap();
        let mut target = None;
        wait_for(Duration::from_secs(60), || {
            target = page_socket(port);
            target.is_some()
        });
        let path = target.expect("a page target");
        let mut ws = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        std::io::Write::write_all(&mut ws, handshake.as_bytes()).unwrap();
        let head = read_until(&mut ws, b"\r\n\r\n");
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        dt.ws = Some(ws);
        dt
    }

    /// Evaluates `js` in the page and returns its value as a string.
    fn eval(&mut self, js: &str) -> String {
        use std::io::{Read, Write};
        self.next += 1;
        let ws = self.ws.as_mut().expect("connected");
        let msg = serde_json::json!({"id": self.next, "method": "Runtime.evaluate",
            "params": {"expression": js, "returnByValue": true}})
        .to_string();
        // A client frame: text, final, masked (with a zero key, which leaves the bytes as
        // they are), its length in 16 bits.
        let mut frame = vec![0x81u8, 0x80 | 126];
        frame.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(msg.as_bytes());
        ws.write_all(&frame).unwrap();
        loop {
            let mut h = [0u8; 2];
            ws.read_exact(&mut h).unwrap();
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    ws.read_exact(&mut b).unwrap();
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    ws.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut body = vec![0u8; len];
            ws.read_exact(&mut body).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["id"] == self.next {
                let value = &v["result"]["result"]["value"];
                return value.as_str().map_or(value.to_string(), str::to_string);
            }
        }
    }
}

/// The DevTools WebSocket path of the page chromium opened, once it lists one.
fn page_socket(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    // The server keeps the connection open: read the head, then Content-Length bytes.
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })?
        .parse()
        .ok()?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let list: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let page = list.as_array()?.iter().find(|t| t["type"] == "page")?;
    let url = page["webSocketDebuggerUrl"].as_str()?;
    Some(url[url.find("/devtools/")?..].to_string())
}

fn read_until(s: &mut std::net::TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(end) {
        std::io::Read::read_exact(s, &mut b).unwrap();
        got.push(b[0]);
    }
    got
}

#[test]
fn clicking_a_heading_sorts_and_choosing_a_status_filters() {
    let Some(browser) = chromium("clicking_a_heading_sorts_and_choosing_a_status_filters") else {
        return;
    };
    let env = Env::new();
    assert_eq!(env.run_jobs(JOBS, &["-q"]).code, 1);
    let page = env.path("run.html");
    assert_eq!(env.run(&["report", "-o", page.to_str().unwrap()]).code, 0);
    let mut dt = Devtools::open(&browser, &env, &format!("file://{}", page.display()));
    let loaded = wait_for(Duration::from_secs(60), || {
        dt.eval("document.readyState + ':' + document.getElementById('shown').textContent")
            == "complete:5 of 5 jobs shown"
    });
    assert!(loaded, "the page and its script never ran");
    let order = "Array.from(document.querySelectorAll('#jobs tbody tr')).filter(r => !r.hidden).map(r => r.dataset.job).join(',')";
    let click = "document.querySelector('th[data-key=duration]').click()";
    dt.eval(click);
    assert!(
        dt.eval(order).ends_with(",slow"),
        "shortest first: {}",
        dt.eval(order)
    );
    dt.eval(click);
    assert!(
        dt.eval(order).starts_with("slow,"),
        "a second click: longest first"
    );
    assert_eq!(dt.eval("location.hash"), "#sort=duration&order=desc");
    dt.eval("var s = document.getElementById('status-filter'); s.value = 'failed'; s.dispatchEvent(new Event('change'))");
    assert_eq!(dt.eval(order), "xss");
    assert_eq!(
        dt.eval("document.getElementById('shown').textContent"),
        "1 of 5 jobs shown"
    );
}
