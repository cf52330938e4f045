//! Snapshots of what people read, for every way a job can end: a run's status lines and
//! summary, `show` (the table and one job's record), `status` and `runs`. What differs from one
//! run to the next is made fixed by `redact`, so each snapshot changes only when the output does.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::helpers::{Env, alive, await_pids, signal, wait_for};

/// The whole environment orchestrate gets: the jobs inherit it, and `show --job` lists its
/// names, which must not depend on the machine the tests run on.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn orchestrate(env: &Env) -> Command {
    let mut c = env.cmd();
    c.env_clear()
        .env("ORCHESTRATE_STATE_DIR", env.state())
        .env("PATH", PATH);
    c
}

/// Runs orchestrate and returns what a terminal would have shown, redacted: the command, its
/// exit code, then stdout and stderr (each only when not empty).
fn session(env: &Env, args: &[&str]) -> String {
    let out = orchestrate(env)
        .args(args)
        .output()
        .expect("run orchestrate");
    transcript(env, args, &out)
}

fn transcript(env: &Env, args: &[&str], out: &Output) -> String {
    let mut s = format!(
        "$ orchestrate {}\nexit {}\n",
        args.join(" "),
        out.status
            .code()
            .map_or("(killed by a signal)".to_string(), |c| c.to_string())
    );
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if !bytes.is_empty() {
            s.push_str(&format!("--- {name}\n{}", String::from_utf8_lossy(bytes)));
            if !s.ends_with('\n') {
                s.push_str("\n[no newline at the end]\n");
            }
        }
    }
    redact(&s, env.dir.path())
}

/// Kills the processes a test left running (a background job, a job of a killed run), also
/// when an assertion fails first.
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redaction

/// What varies between runs, replaced by fixed text:
/// - the test's temp dir by `[TMP]`;
/// - tokens of a fixed width by placeholders of the same width, so columns stay where they
///   are: RFC 3339 times (`YYYY-MM-DDTHH:MM:SS.fffZ`), run ids (`YYYYMMDD-HHMMSS-xxxxxxx`) and
///   clock times (`HH:MM:SS`);
/// - durations by `[DUR]` and pids (after the word `pid`, and in a `PID` column) by `[PID]`.
///   A configured duration (`timed out after 300ms`) is kept. Columns after a duration stay
///   where they were: the spaces after it absorb the difference, or, in a status line (where
///   durations are right-aligned), the spaces before it. A table with a `PID` column, whose
///   widths follow the pids, is laid out again as orchestrate lays tables out (two spaces
///   between columns).
fn redact(text: &str, tmp: &Path) -> String {
    let mut text = text.to_string();
    let mut dirs = vec![tmp.display().to_string()];
    if let Ok(real) = tmp.canonicalize() {
        dirs.push(real.display().to_string());
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dirs {
        text = text.replace(&d, "[TMP]");
    }
    let lines: Vec<String> = text
        .lines()
        .map(|l| same_gap_after_pid(&redact_spans(&fixed_width_tokens(l))))
        .collect();
    let mut out = relayout_pid_tables(lines).join("\n");
    out.push('\n');
    out
}

/// Whether `b[i..]` starts with `pat`, where `d` is a digit, `h` a lowercase hex digit, and
/// any other byte itself.
fn shaped(b: &[u8], i: usize, pat: &str) -> bool {
    let p = pat.as_bytes();
    i + p.len() <= b.len()
        && p.iter().zip(&b[i..]).all(|(&p, &c)| match p {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            _ => p == c,
        })
}

fn word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Run ids, RFC 3339 times and clock times, each by a placeholder of its own width.
fn fixed_width_tokens(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !word_byte(b[i - 1]);
        if starts_word && let Some((len, text)) = fixed_token_at(b, i) {
            out.extend_from_slice(text.as_bytes());
            i += len;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("only ASCII was replaced")
}

fn fixed_token_at(b: &[u8], i: usize) -> Option<(usize, String)> {
    let ends_word = |j: usize| j >= b.len() || !(word_byte(b[j]) || b[j] == b':');
    if shaped(b, i, "dddd-dd-ddTdd:dd:dd") {
        let mut j = i + 19;
        let mut text = "YYYY-MM-DDTHH:MM:SS".to_string();
        if j < b.len() && b[j] == b'.' {
            let digits = b[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            text.push('.');
            text.push_str(&"f".repeat(digits));
            j += 1 + digits;
        }
        if j < b.len() && b[j] == b'Z' {
            text.push('Z');
            j += 1;
        }
        return Some((j - i, text));
    }
    if shaped(b, i, "dddddddd-dddddd-hhhhhhh") && ends_word(i + 23) {
        return Some((23, "YYYYMMDD-HHMMSS-xxxxxxx".into()));
    }
    if shaped(b, i, "dd:dd:dd") && ends_word(i + 8) {
        return Some((8, "HH:MM:SS".into()));
    }
    None
}

/// The length of a duration as orchestrate prints them (`12ms`, `3.40s`, `1m05s`, `2h03m`)
/// at `b[i..]`.
fn duration_at(b: &[u8], i: usize) -> Option<usize> {
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let j = i + digits;
    let len = ["ms", ".dds", "mdds", "hddm"]
        .iter()
        .find(|unit| shaped(b, j, unit))
        .map(|unit| digits + unit.len())?;
    let end = i + len;
    (end >= b.len() || !word_byte(b[end])).then_some(len)
}

/// The labels a status line starts with (after its timestamp).
const STATUS_LABELS: [&str; 10] = [
    "ok",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "NOSTART",
    "SKIPPED",
    "BG",
    "LOST",
    "INTERRUPTED",
    "RETRY",
];

fn is_status_line(line: &str) -> bool {
    let rest = line.strip_prefix("YYYY-MM-DDTHH:MM:SSZ ").unwrap_or(line);
    STATUS_LABELS
        .iter()
        .any(|l| rest.strip_prefix(l).is_some_and(|r| r.starts_with(' ')))
}

/// Durations and pids, by placeholders, with the padding next to a duration adjusted so the
/// columns around it stay put.
fn redact_spans(line: &str) -> String {
    const DUR: &str = "[DUR]";
    const PID: &str = "[PID]";
    let b = line.as_bytes();
    let mut right_aligned = is_status_line(line);
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(word_byte(b[i - 1]) || b[i - 1] == b'.');
        let token = if starts_word { duration_at(b, i) } else { None };
        if let Some(len) = token.filter(|_| !out.ends_with("after ")) {
            if right_aligned {
                let before = out.len() - out.trim_end_matches(' ').len();
                out.truncate(out.len() - before);
                out.push_str(&" ".repeat((before + len).saturating_sub(DUR.len()).max(1)));
                out.push_str(DUR);
                right_aligned = false;
                i += len;
            } else {
                out.push_str(DUR);
                i += len;
                let after = b[i..].iter().take_while(|&&c| c == b' ').count();
                if after >= 2 && i + after < b.len() {
                    out.push_str(&" ".repeat((after + len).saturating_sub(DUR.len()).max(2)));
                    i += after;
                }
            }
            continue;
        }
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if starts_word && digits > 0 && follows_the_word_pid(&out) {
            out.push_str(PID);
            i += digits;
            continue;
        }
        let ch = line[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The gap between a redacted pid and the duration after it, made one width: the pid's
/// digits decide it (pids wrap to 3 digits on a fresh machine).
fn same_gap_after_pid(line: &str) -> String {
    let Some(at) = line.find("pid [PID] ") else {
        return line.to_string();
    };
    let start = at + "pid [PID]".len();
    let rest = &line[start..];
    let gap = rest.len() - rest.trim_start_matches(' ').len();
    if !rest[gap..].starts_with("[DUR]") {
        return line.to_string();
    }
    format!("{}    {}", &line[..start], &rest[gap..])
}

/// Whether `text` ends with the word `pid` and spaces.
fn follows_the_word_pid(text: &str) -> bool {
    let t = text.trim_end_matches(' ');
    t.len() < text.len()
        && t.strip_suffix("pid").is_some_and(|before| {
            !before
                .as_bytes()
                .last()
                .is_some_and(|&c| word_byte(c) || c == b'_')
        })
}

/// Tables with a `PID` column (`status`): the pids redacted, then laid out again with each
/// column as wide as its widest cell plus two spaces, the last one unpadded.
fn relayout_pid_tables(lines: Vec<String>) -> Vec<String> {
    let cells = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let header = cells(&lines[i]);
        let Some(pid_col) = header.iter().position(|c| c == "PID") else {
            out.push(lines[i].clone());
            i += 1;
            continue;
        };
        let mut table = vec![header];
        i += 1;
        while i < lines.len() && !lines[i].trim().is_empty() {
            let mut row = cells(&lines[i]);
            if let Some(c) = row.get_mut(pid_col)
                && c.bytes().all(|b| b.is_ascii_digit())
            {
                *c = "[PID]".into();
            }
            table.push(row);
            i += 1;
        }
        out.extend(lay_out(&table));
    }
    out
}

fn lay_out(table: &[Vec<String>]) -> Vec<String> {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            table
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    table
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            line
        })
        .collect()
}

#[test]
fn redaction_keeps_columns_in_place() {
    let tmp = Path::new("/tmp/orch-test-abc");
    let text = "\
2026-12-01T11:32:39Z ok        ok            exit 0        2ms
2026-12-01T11:32:40Z TIMEOUT   slow          SIGTERM     306ms  timed out after 300ms
2026-12-01T11:33:52Z BG        server  pid 32047      0ms  [supervisor pid 32045]
5 jobs in 3.35s: 1 succeeded; run 20261201-113239-758768e
0      ok            succeeded   exit 0               2ms       6          0
2      slow          timed_out   signal 15 (SIGTERM)  12.34s    0          0
start       2026-12-01T11:32:39.767Z
stdout      6 bytes, /tmp/orch-test-abc/state/runs/20261201-113239-758768e/ok/stdout
pid         30140
RUN                      JOB     PID     STARTED               STATE
20261201-113352-033c31a  server  320471  2026-12-01T11:33:52Z  running for 13ms
";
    let want = "\
YYYY-MM-DDTHH:MM:SSZ ok        ok            exit 0      [DUR]
YYYY-MM-DDTHH:MM:SSZ TIMEOUT   slow          SIGTERM     [DUR]  timed out after 300ms
YYYY-MM-DDTHH:MM:SSZ BG        server  pid [PID]    [DUR]  [supervisor pid [PID]]
5 jobs in [DUR]: 1 succeeded; run YYYYMMDD-HHMMSS-xxxxxxx
0      ok            succeeded   exit 0               [DUR]     6          0
2      slow          timed_out   signal 15 (SIGTERM)  [DUR]     0          0
start       YYYY-MM-DDTHH:MM:SS.fffZ
stdout      6 bytes, [TMP]/state/runs/YYYYMMDD-HHMMSS-xxxxxxx/ok/stdout
pid         [PID]
RUN                      JOB     PID    STARTED               STATE
YYYYMMDD-HHMMSS-xxxxxxx  server  [PID]  YYYY-MM-DDTHH:MM:SSZ  running for [DUR]
";
    assert_eq!(redact(text, tmp), want);
}

// ---------------------------------------------------------------------------------------------
// The snapshots

/// Succeeded, failed, timed out, could not start, skipped: one at a time (`-j 1`), so the
/// lines come in the job file's order (the skipped job is decided when its need fails).
const ENDINGS: &str = "\
jobs:
  - name: ok
    shell: 'echo hello'
  - name: broken
    shell: 'echo something went wrong >&2; exit 3'
  - name: slow
    command: sleep 5
    timeout: 300ms
  - name: missing
    command: no-such-program --flag
  - name: after-broken
    command: echo never
    needs: [broken]
";

#[test]
fn a_run_with_every_ending_and_its_records() {
    let env = Env::new();
    env.write("jobs.yaml", ENDINGS);
    let run = session(&env, &["jobs.yaml", "-j", "1", "--progress", "never"]);
    insta::assert_snapshot!("run_lines_and_summary", run);
    insta::assert_snapshot!("show_table", session(&env, &["show", "last"]));
    for job in ["ok", "broken", "slow", "missing", "after-broken"] {
        let detail = session(&env, &["show", "last", "--job", job]);
        insta::assert_snapshot!(format!("show_job_{job}"), detail);
    }
}

/// Cancelled: `trigger` fails once `long` has started (it waits for the file `long` writes),
/// and `on_failure: kill` stops `long`. The failure is reported before the kill is sent.
const CANCELLING: &str = "\
on_failure: kill
jobs:
  - name: long
    shell: 'touch started; exec sleep 30'
  - name: trigger
    shell: 'until [ -e started ]; do sleep 0.01; done; echo giving up >&2; exit 1'
    timeout: 20s
";

#[test]
fn a_job_cancelled_by_on_failure_kill() {
    let env = Env::new();
    env.write("cancel.yaml", CANCELLING);
    let run = session(&env, &["cancel.yaml", "-j", "2", "--progress", "never"]);
    insta::assert_snapshot!("cancelled_run_lines_and_summary", run);
    insta::assert_snapshot!("cancelled_show_table", session(&env, &["show", "last"]));
    let detail = session(&env, &["show", "last", "--job", "long"]);
    insta::assert_snapshot!("cancelled_show_job_long", detail);
}

/// The parent of a process, from /proc.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("job is running");
    stat.rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid in /proc stat")
}

/// Background while it runs; lost once its supervisor is killed with SIGKILL.
#[test]
fn a_background_job_running_then_lost() {
    let env = Env::new();
    env.write(
        "bg.yaml",
        "jobs:\n  - name: server\n    shell: 'exec sleep 60'\n    background: true\n",
    );
    let run = session(&env, &["bg.yaml", "--progress", "never"]);
    let out = orchestrate(&env)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let job_pid = rec["pid"].as_u64().expect("a pid") as u32;
    // The JSON records do not carry the supervisor's pid; it is the job's parent.
    let supervisor = parent_of(job_pid);
    let mut reap = Reap(vec![job_pid, supervisor]);
    insta::assert_snapshot!("background_run_lines_and_summary", run);
    insta::assert_snapshot!("background_status", session(&env, &["status"]));
    insta::assert_snapshot!("background_show_table", session(&env, &["show", "last"]));
    let detail = session(&env, &["show", "last", "--job", "server"]);
    insta::assert_snapshot!("background_show_job", detail);

    signal(supervisor, "KILL");
    assert!(
        wait_for(Duration::from_secs(10), || !alive(supervisor)),
        "the supervisor {supervisor} survived SIGKILL"
    );
    reap.0.retain(|&p| p != supervisor);
    insta::assert_snapshot!("lost_status", session(&env, &["status"]));
    let detail = session(&env, &["show", "last", "--job", "server"]);
    insta::assert_snapshot!("lost_show_job", detail);
    insta::assert_snapshot!("lost_status_again", session(&env, &["status"]));
}

/// Interrupted: orchestrate killed with SIGKILL while `hang` runs (after `first`'s record
/// reached the store); the next `runs` settles the run.
#[test]
fn a_run_killed_with_sigkill_is_interrupted() {
    let env = Env::new();
    env.write(
        "crash.yaml",
        "jobs:\n  - name: first\n    command: echo done\n  - name: hang\n    shell: 'echo $$ > hang.pid; exec sleep 60'\n  - name: later\n    command: echo later\n",
    );
    let args = ["crash.yaml", "-j", "1", "--progress", "never"];
    let child = orchestrate(&env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orchestrate");
    let mut reap = Reap(vec![child.id()]);
    reap.0.push(await_pids(&env.path("hang.pid"), 1)[0]);
    // `first` has its record, and `hang` is in the store as running.
    let both_recorded = || {
        orchestrate(&env)
            .args(["show", "last", "--json"])
            .output()
            .is_ok_and(|o| {
                let out = String::from_utf8_lossy(&o.stdout);
                out.contains("\"job\":\"first\"") && out.contains("\"status\":\"running\"")
            })
    };
    assert!(
        wait_for(Duration::from_secs(10), both_recorded),
        "`first` and the running `hang` never reached the store"
    );
    signal(child.id(), "KILL");
    let orchestrate_pid = child.id();
    let killed = child.wait_with_output().unwrap();
    reap.0.retain(|&p| p != orchestrate_pid);
    insta::assert_snapshot!("interrupted_run_lines", transcript(&env, &args, &killed));
    insta::assert_snapshot!("interrupted_runs", session(&env, &["runs"]));
    insta::assert_snapshot!("interrupted_show_table", session(&env, &["show", "last"]));
    let detail = session(&env, &["show", "last", "--job", "hang"]);
    insta::assert_snapshot!("interrupted_show_job_hang", detail);
}
