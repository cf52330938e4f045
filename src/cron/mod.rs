//! `orchestrate cron`: a ready crontab line for a job file, and its installation into the
//! user's crontab (through `crontab -`, so cron sees the change), found again by its marker.

mod installed;
mod schedule;

pub use installed::{Installed, parse_all, split_line};
pub use schedule::Schedule;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Checks a 5-field cron expression or an `@daily`-style nickname.
pub fn validate(expr: &str) -> Result<(), String> {
    let e = expr.trim();
    if let Some(nick) = e.strip_prefix('@') {
        return match nick {
            "reboot" | "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight"
            | "hourly" => Ok(()),
            _ => Err(format!(
                "unknown schedule `{e}`; nicknames are @reboot, @yearly, @monthly, @weekly, @daily, @hourly"
            )),
        };
    }
    let fields: Vec<&str> = e.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "a schedule has 5 fields (minute hour day-of-month month day-of-week), `{e}` has {}",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, &MONTHS, 1),
        ("day of week", 0, 7, &DAYS, 0),
    ];
    for (field, (what, lo, hi, names, name_base)) in fields.iter().zip(specs) {
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| v.eq_ignore_ascii_case(n)) {
                return Ok(i as u32 + name_base);
            }
            let n: u32 = v
                .parse()
                .map_err(|_| format!("`{v}` is not a valid {what} in `{field}`"))?;
            if n < lo || n > hi {
                return Err(format!("{what} {n} is out of range {lo}-{hi} in `{field}`"));
            }
            Ok(n)
        };
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let s: u32 = s
                        .parse()
                        .map_err(|_| format!("step `{s}` is not a number in `{field}`"))?;
                    if s == 0 || s > hi {
                        return Err(format!(
                            "a step of {s} makes no sense for a {what} in `{field}`"
                        ));
                    }
                    (r, Some(s))
                }
                None => (part, None),
            };
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(format!("range {a}-{b} is backwards in `{field}`"));
                    }
                }
                None => {
                    value(range)?;
                    if step.is_some() {
                        return Err(format!("`{part}`: a step needs `*` or a range before it"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The comment that marks our line for a job file.
pub fn marker(job_file: &Path) -> String {
    cron_escape(&format!("# orchestrate: {}", job_file.display()))
}

/// Cron treats `%` as a newline in commands and `\` as its escape; escape both.
fn cron_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%")
}

fn q(p: &Path) -> String {
    shell_words::quote(&p.to_string_lossy()).into_owned()
}

/// A newline (or any control character) in a part of the line would end the crontab entry
/// there and start another, which cron would run: such a part is refused.
fn check_part(what: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(format!(
            "the {what} `{}` holds a control character ({:?}), which would split the crontab line; rename it",
            text.escape_debug(),
            c
        )),
    }
}

/// The crontab line: the schedule, then a command with absolute paths, the PATH that works
/// now, quiet mode (cron mails only failures) and the full report appended to a log.
pub fn line(
    schedule: &str,
    job_file: &Path,
    exe: &Path,
    path_env: &str,
    state_dir: Option<&Path>,
    log: &Path,
) -> Result<String, String> {
    check_part("schedule", schedule)?;
    check_part("job file path", &job_file.to_string_lossy())?;
    check_part("orchestrate path", &exe.to_string_lossy())?;
    check_part("PATH", path_env)?;
    check_part("log path", &log.to_string_lossy())?;
    if let Some(sd) = state_dir {
        check_part("state dir", &sd.to_string_lossy())?;
    }
    let dir = job_file.parent().unwrap_or(Path::new("/"));
    let mut cmd = format!("cd {} && PATH={}", q(dir), shell_words::quote(path_env));
    if let Some(sd) = state_dir {
        cmd.push_str(&format!(" ORCHESTRATE_STATE_DIR={}", q(sd)));
    }
    // No redirection: orchestrate appends its full report to the log itself and prints only
    // what failed, which cron mails.
    cmd.push_str(&format!(
        " {} {} --quiet --log {}",
        q(exe),
        q(job_file),
        q(log)
    ));
    Ok(format!(
        "{} {} {}",
        schedule.trim(),
        cron_escape(&cmd),
        marker(job_file)
    ))
}

/// The user's crontab (empty when there is none).
pub fn read_crontab() -> Result<String, String> {
    let out = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `crontab -l`: {e} (is cron installed?)"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("no crontab") {
        Ok(String::new())
    } else {
        Err(format!("`crontab -l` failed: {}", err.trim()))
    }
}

fn write_crontab(text: &str) -> Result<(), String> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `crontab -`: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to `crontab -`: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for `crontab -`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`crontab -` refused the new crontab: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The installed line of a job file, if there is one.
pub fn installed_line(job_file: &Path) -> Result<Option<String>, String> {
    let mark = marker(job_file);
    Ok(read_crontab()?
        .lines()
        .find(|l| l.ends_with(&mark))
        .map(str::to_string))
}

/// Whether a cron daemon runs on this machine (Vixie cron and cronie, busybox, fcron, dcron).
pub fn daemon_running() -> bool {
    crate::sys::process_named(&["cron", "crond", "fcron", "dcron", "cronie"])
}

/// Adds `line` (replacing an earlier line for the same job file). Returns whether it replaced one.
pub fn install(line: &str, job_file: &Path) -> Result<bool, String> {
    let current = read_crontab()?;
    let mark = marker(job_file);
    let mut replaced = false;
    let mut lines: Vec<&str> = Vec::new();
    for l in current.lines() {
        if l.ends_with(&mark) {
            replaced = true;
        } else {
            lines.push(l);
        }
    }
    lines.push(line);
    let mut text = lines.join("\n");
    text.push('\n');
    write_crontab(&text)?;
    Ok(replaced)
}

/// Removes the line for a job file. Returns whether there was one.
pub fn remove(job_file: &Path) -> Result<bool, String> {
    let current = read_crontab()?;
    let mark = marker(job_file);
    if !current.lines().any(|l| l.ends_with(&mark)) {
        return Ok(false);
    }
    let mut text: String = current
        .lines()
        .filter(|l| !l.ends_with(&mark))
        .collect::<Vec<_>>()
        .join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_crontab(&text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        for ok in [
            "*/15 * * * *",
            "0 3 * * mon-fri",
            "5,35 0-6/2 1 jan *",
            "@daily",
            "0 0 1 1 7",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "*/0 * * * *",
            "0 25 * * *",
            "@sometimes",
            "5-1 * * * *",
            "x * * * *",
            "*/61 * * * *",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_is_escaped() {
        let l = line(
            "@hourly",
            Path::new("/srv/jobs/a%b.yaml"),
            Path::new("/usr/bin/orchestrate"),
            "/usr/bin:/bin",
            None,
            Path::new("/var/log/x.log"),
        )
        .unwrap();
        assert!(l.contains("a\\%b.yaml"), "{l}");
        assert!(l.ends_with("# orchestrate: /srv/jobs/a\\%b.yaml"), "{l}");
    }

    #[test]
    fn backslashes_are_escaped_for_cron() {
        let l = line(
            "@hourly",
            Path::new("/srv/a\\%b/j.yaml"),
            Path::new("/usr/bin/orchestrate"),
            "/bin",
            None,
            Path::new("/var/log/x.log"),
        )
        .unwrap();
        assert!(l.contains("a\\\\\\%b"), "{l}");
    }

    #[test]
    fn a_newline_in_any_part_refuses_the_line() {
        let ok = Path::new("/srv/a.yaml");
        let exe = Path::new("/usr/bin/orchestrate");
        let log = Path::new("/var/log/x.log");
        let evil = Path::new("/srv/a\n* * * * * id > /tmp/PWNED\n.yaml");
        assert!(line("@hourly", evil, exe, "/bin", None, log).is_err());
        assert!(line("@hourly", ok, exe, "/bin\n* * * * * id", None, log).is_err());
        assert!(line("@hourly", ok, exe, "/bin", Some(evil), log).is_err());
        assert!(line("@hourly", ok, exe, "/bin", None, evil).is_err());
        assert!(line("@hourly", ok, exe, "/bin", None, log).is_ok());
    }
}
