//! A serde_yaml error turned into a `SpecError`: located, reworded, and naming its job.

use super::Source;
use crate::error::{SpecError, suggest};

/// Turns a serde_yaml error into a located, reworded error.
pub(super) fn from_serde(source: &Source, e: &serde_yaml::Error) -> SpecError {
    if let Some(err) = unclosed_quote(source, e) {
        return err;
    }
    let raw = strip_marks(&e.to_string());
    // serde_yaml prefixes the path of the failing node ("jobs[2].timeout: ...").
    let (node_path, msg) = split_node_path(&raw);
    let (message, hint) = match tab_at(source, e) {
        Some(()) => (
            "a tab character: YAML indents with spaces only".to_string(),
            Some("replace the tab with spaces".to_string()),
        ),
        None => reword(&msg),
    };
    let job = node_path.as_deref().and_then(|p| job_name_at(source, p));
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
        file: source.path.to_path_buf(),
        line,
        column,
        job,
        message,
        hint,
        source_line: None,
        more: Vec::new(),
    }
    .with_source(source.text)
}

/// A quoted string never closed is reported by the parser at the end of the file, where it
/// gave up; the place to fix is where the string starts, which libyaml names too.
fn unclosed_quote(source: &Source, e: &serde_yaml::Error) -> Option<SpecError> {
    let text = e.to_string();
    let at = text
        .split("while scanning a quoted scalar at line ")
        .nth(1)?;
    let (line, rest) = at.split_once(" column ")?;
    let line: usize = line.parse().ok()?;
    let column: usize = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some(
        SpecError::at(
            source.path,
            None,
            line,
            column,
            "this quoted string is never closed".to_string(),
            Some("add the closing quote on this line".to_string()),
        )
        .with_source(source.text),
    )
}

/// Whether the parser stopped at a tab (libyaml: "found character that cannot start any
/// token"), which YAML never allows for indentation.
fn tab_at(source: &Source, e: &serde_yaml::Error) -> Option<()> {
    let loc = e.location()?;
    let line = source.text.lines().nth(loc.line().checked_sub(1)?)?;
    let at = line.chars().nth(loc.column().saturating_sub(1))?;
    (e.to_string().contains("cannot start any token") && (at == '\t' || line.starts_with('\t')))
        .then_some(())
}

/// The name of the job at `jobs[i]` in a serde_yaml node path, as the position index knows it.
fn job_name_at(source: &Source, node_path: &str) -> Option<String> {
    let rest = node_path.strip_prefix("jobs[")?;
    let idx: usize = rest[..rest.find(']')?].parse().ok()?;
    source.job_name(idx)
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
}
