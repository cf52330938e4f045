//! Errors of the library, each carrying what it needs to be reported well, and the exit codes
//! they map to. serde_yaml's errors become `SpecError`s in `spec`, the one module that knows YAML.

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
    /// A run or job named on the command line is not in the history (`show RUN`, `logs JOB`).
    pub const NOT_FOUND: i32 = 3;
    /// Another run of the same job file holds the lock.
    pub const LOCKED: i32 = 75;
    /// orchestrate could not do its own work (store unwritable, internal error).
    pub const SOFTWARE: i32 = 70;
    /// `orchestrate wait --timeout` ran out before the jobs ended (as timeout(1) says it).
    pub const WAIT_TIMEOUT: i32 = 124;
    /// Interrupted by SIGHUP (128 + 1).
    pub const SIGHUP: i32 = 129;
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
    /// The file's other independent errors, reported after this one, as a compiler does.
    pub more: Vec<SpecError>,
}

/// Most errors of one job file reported at once; past that, how many more there are.
pub const MAX_SPEC_ERRORS: usize = 20;

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
            more: Vec::new(),
        }
    }

    /// The errors of one file as one, in file order: the first, with the others after it
    /// (at most [`MAX_SPEC_ERRORS`], then a line saying that there are more). `unseen`: how
    /// many errors are known to exist beyond `errors`, `None` when the search stopped early.
    pub fn many(mut errors: Vec<SpecError>, unseen: Option<usize>) -> SpecError {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup_by(|a, b| (a.line, a.column, &a.message) == (b.line, b.column, &b.message));
        let cut = errors.len().saturating_sub(MAX_SPEC_ERRORS);
        errors.truncate(MAX_SPEC_ERRORS);
        let mut errors = errors.into_iter();
        let mut first = errors.next().expect("at least one error");
        first.more.extend(errors.flat_map(|mut e| {
            let more = std::mem::take(&mut e.more);
            std::iter::once(e).chain(more)
        }));
        let note = match unseen.map(|n| n + cut) {
            Some(0) => None,
            Some(n) => Some(format!("{n} more error{} not shown", plural(n))),
            None => Some("more errors not shown".to_string()),
        };
        if let Some(note) = note {
            let file = first.file.clone();
            first
                .more
                .push(SpecError::plain(&file, format!("{note}; fix these first")));
        }
        first
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
            more: Vec::new(),
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
        // The printer puts `error: ` before the first; each further one starts the same way,
        // after a blank line.
        for e in &self.more {
            write!(f, "\n\nerror: {e}")?;
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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

#[cfg(test)]
mod tests {
    use super::*;

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
