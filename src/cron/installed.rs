//! Our lines in a crontab, read back: each one's schedule, job file, state dir and log, as
//! `orchestrate cron --install` wrote them (found by their marker comment).

use std::path::PathBuf;

/// One installed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub schedule: String,
    pub job_file: PathBuf,
    /// `ORCHESTRATE_STATE_DIR=` of the line; `None`: the default one.
    pub state_dir: Option<PathBuf>,
    /// `--log FILE` (or, in lines of older versions, `>> FILE`).
    pub log: Option<PathBuf>,
}

const MARK: &str = " # orchestrate: ";

/// Undoes `cron_escape`: cron reads `\%` as `%`; `\\` is a backslash.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(n) = chars.clone().next()
            && (n == '%' || n == '\\')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Every line of ours in `crontab` (comments, other lines and malformed ones are passed over).
pub fn parse_all(crontab: &str) -> Vec<Installed> {
    crontab.lines().filter_map(parse_line).collect()
}

/// A line of ours split into its schedule and its command as the shell gets it (cron's
/// escapes undone, the marker left out).
pub fn split_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let head = &line[..line.rfind(MARK)?];
    let words: Vec<&str> = head.split_whitespace().collect();
    let n = if words.first()?.starts_with('@') {
        1
    } else {
        5
    };
    if words.len() <= n {
        return None;
    }
    Some((words[..n].join(" "), unescape(&words[n..].join(" "))))
}

fn parse_line(line: &str) -> Option<Installed> {
    let line = line.trim();
    let at = line.rfind(MARK)?;
    let job_file = PathBuf::from(unescape(&line[at + MARK.len()..]));
    let (schedule, command) = split_line(line)?;
    let tokens = shell_words::split(&command).ok()?;
    let state_dir = tokens
        .iter()
        .find_map(|t| t.strip_prefix("ORCHESTRATE_STATE_DIR="))
        .map(PathBuf::from);
    let log = tokens
        .windows(2)
        .find(|w| w[0] == "--log" || w[0] == ">>")
        .map(|w| PathBuf::from(&w[1]));
    Some(Installed {
        schedule,
        job_file,
        state_dir,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn reads_back_what_line_writes() {
        let line = crate::cron::line(
            "*/15 * * * *",
            Path::new("/srv/my jobs/50%.yaml"),
            Path::new("/usr/bin/orchestrate"),
            "/usr/bin:/bin",
            Some(Path::new("/var/state")),
            Path::new("/var/state/cron/50.log"),
        )
        .unwrap();
        let text = format!("# a comment\nMAILTO=me\n0 1 * * * other job\n{line}\n");
        let found = parse_all(&text);
        assert_eq!(
            found,
            vec![Installed {
                schedule: "*/15 * * * *".into(),
                job_file: "/srv/my jobs/50%.yaml".into(),
                state_dir: Some("/var/state".into()),
                log: Some("/var/state/cron/50.log".into()),
            }]
        );
        let daily =
            parse_all("@daily cd / && x /a.yaml --quiet >> /l.log 2>&1 # orchestrate: /a.yaml");
        assert_eq!(daily[0].schedule, "@daily");
        assert_eq!(daily[0].log, Some("/l.log".into()));
    }
}
