//! Errors of the library, each carrying what it needs to be reported well, and the exit codes
//! they map to.

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit codes of `orchestrate`, as documented in the README.
pub mod exit {
    /// Every job succeeded.
    pub const OK: i32 = 0;
    /// At least one job failed (or timed out, was cancelled, could not start, was skipped).
    pub const JOB_FAILED: i32 = 1;
    /// Usage error or invalid job file: no job was started.
    pub const USAGE: i32 = 2;
    /// Another run of the same job file holds the lock.
    pub const LOCKED: i32 = 75;
    /// orchestrate could not do its own work (store unwritable, internal error).
    pub const SOFTWARE: i32 = 70;
    /// Interrupted by SIGINT (128 + 2).
    pub const SIGINT: i32 = 130;
    /// Interrupted by SIGTERM (128 + 15).
    pub const SIGTERM: i32 = 143;
}

/// A problem with a job file, located as precisely as the YAML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The job concerned, when known.
    pub job: Option<String>,
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
    /// The text of the offending line, for the caret display.
    pub source_line: Option<String>,
}

impl std::error::Error for SpecError {}

impl SpecError {
    pub fn plain(file: &Path, message: String) -> Self {
        SpecError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            job: None,
            message,
            hint: None,
            source_line: None,
        }
    }

    pub fn io(file: &Path, e: &std::io::Error) -> Self {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        SpecError::plain(file, format!("cannot read job file: {what}"))
    }

    pub fn at(
        file: &Path,
        job: Option<String>,
        line: usize,
        column: usize,
        message: String,
        hint: Option<String>,
    ) -> Self {
        SpecError {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            job,
            message,
            hint,
            source_line: None,
        }
    }

    /// Adds the offending line of `text`, for display under the message.
    pub fn with_source(mut self, text: &str) -> Self {
        if let Some(line) = self.line {
            self.source_line = text.lines().nth(line.saturating_sub(1)).map(|l| {
                let mut l = l.to_string();
                if l.len() > 200 {
                    let mut cut = 200;
                    while !l.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    l.truncate(cut);
                    l.push('…');
                }
                l
            });
        }
        self
    }

    /// Turns a serde_yaml error into a located, reworded error.
    pub fn from_yaml(file: &Path, text: &str, e: &serde_yaml::Error) -> Self {
        let raw = strip_marks(&e.to_string());
        // serde_yaml prefixes the path of the failing node ("jobs[2].timeout: ...").
        let (node_path, msg) = split_node_path(&raw);
        let (message, hint) = reword(&msg);
        let job = node_path.as_deref().and_then(|p| job_name_at(text, p));
        let mut message = message;
        if let Some(p) = &node_path
            && job.is_none()
            && !p.starts_with("jobs[")
        {
            message = format!("{message} (at `{p}`)");
        }
        let (line, column) = match e.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        SpecError {
            file: file.to_path_buf(),
            line,
            column,
            job,
            message,
            hint,
            source_line: None,
        }
        .with_source(text)
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(job) = &self.job {
            write!(f, " (in job `{job}`)")?;
        }
        if let (Some(line), Some(src)) = (self.line, &self.source_line) {
            let num = line.to_string();
            let pad = " ".repeat(num.len());
            write!(f, "\n {pad} |\n {num} | {src}")?;
            if let Some(col) = self.column {
                let caret_pad: String = src
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n {pad} | {caret_pad}^")?;
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

/// Removes serde_yaml's " at line N column M" (we print the position ourselves).
fn strip_marks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(" at line ") {
        let tail = &rest[i + " at line ".len()..];
        let digits = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        let after = &tail[digits..];
        if digits > 0 && after.starts_with(" column ") {
            let t2 = &after[" column ".len()..];
            let d2 = t2.chars().take_while(|c| c.is_ascii_digit()).count();
            if d2 > 0 {
                out.push_str(&rest[..i]);
                rest = &t2[d2..];
                continue;
            }
        }
        out.push_str(&rest[..i + " at line ".len()]);
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn split_node_path(s: &str) -> (Option<String>, String) {
    // A node path has no spaces and ends with ": " before the message.
    if let Some(i) = s.find(": ") {
        let head = &s[..i];
        let looks_like_path = !head.is_empty()
            && !head.contains(' ')
            && (head.contains('[')
                || head.contains('.')
                || head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            && !head.contains('`');
        if looks_like_path {
            return (Some(head.to_string()), s[i + 2..].to_string());
        }
    }
    (None, s.to_string())
}

/// serde's wording → ours, with a suggestion where one helps.
fn reword(msg: &str) -> (String, Option<String>) {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        let key = &rest[..end];
        let expected = expected_list(&rest[end..]);
        let hint = match suggest(key, &expected) {
            Some(s) => Some(format!("did you mean `{s}`?")),
            None if !expected.is_empty() => Some(format!(
                "valid keys here: {}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => None,
        };
        return (format!("unknown key `{key}`"), hint);
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        let key = &rest[..end];
        let hint = (key == "jobs").then(|| {
            "list the jobs under `jobs:`, e.g.\n      jobs:\n        - df -h /home".to_string()
        });
        return (format!("missing key `{key}`"), hint);
    }
    if msg.starts_with("repetition limit exceeded") || msg.starts_with("recursion limit exceeded") {
        return (
            format!("{msg}: the file expands to too much data (aliases or nesting)"),
            Some("job files do not need deep nesting or repeated alias expansion".to_string()),
        );
    }
    (msg.to_string(), None)
}

/// Parses "`, expected one of `a`, `b`" or "`, expected `a`" into the names.
fn expected_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut parts = s.split('`');
    parts.next();
    for (i, p) in parts.enumerate() {
        if i % 2 == 1 && !p.is_empty() {
            out.push(p.to_string());
        }
    }
    out
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn suggest<S: AsRef<str>>(word: &str, candidates: &[S]) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c = c.as_ref();
        let d = edit_distance(word, c);
        let limit = (word.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Edit distance counting a swap of two neighbours as one edit (`tset` → `test`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The name of the job at `jobs[i]` in a serde_yaml node path, read from the YAML if it parses.
fn job_name_at(text: &str, node_path: &str) -> Option<String> {
    let rest = node_path.strip_prefix("jobs[")?;
    let idx: usize = rest[..rest.find(']')?].parse().ok()?;
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let job = value.get("jobs")?.get(idx)?;
    match job {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Mapping(_) => match job.get("name") {
            Some(serde_yaml::Value::String(s)) => Some(s.clone()),
            _ => Some(format!("#{}", idx + 1)),
        },
        _ => Some(format!("#{}", idx + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_marks() {
        assert_eq!(
            strip_marks("bad thing at line 3 column 5, while parsing at line 2 column 1"),
            "bad thing, while parsing"
        );
    }

    #[test]
    fn suggests_close_keys() {
        assert_eq!(
            suggest("timout", &["timeout", "name"]),
            Some("timeout".into())
        );
        assert_eq!(suggest("zzz", &["timeout", "name"]), None);
        assert_eq!(suggest("tset", &["test", "build"]), Some("test".into()));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
