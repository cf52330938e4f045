//! Secret values (`secret_env`) kept out of everything orchestrate writes or prints.
//!
//! Two doors, and nothing else leaves: output bytes pass a [`Redactor`] as they are drained,
//! and a record becomes a [`Sealed`] record, with every text field redacted, before it may
//! reach the store, a reporter or JSON. The store and the reporters take only `Sealed`
//! records, so a new way for a job to end cannot forget redaction: it would not compile.

use std::path::PathBuf;
use std::sync::Arc;

use super::{CompletedProcess, ProcessIdentity};

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// The secret values of a run, longest first (so that a secret containing another is
/// redacted whole). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Secrets(Arc<Vec<String>>);

impl Secrets {
    pub fn new(values: Vec<String>) -> Secrets {
        // The forms a value takes on its way into a job: shell-quoted into a `shell:` script
        // (an item with a `'`), and without the trailing newline of a YAML block scalar
        // (`$(printenv X)` drops it).
        let mut values: Vec<String> = values
            .into_iter()
            .flat_map(|v| {
                let quoted = shell_words::quote(&v).into_owned();
                let trimmed = v.trim_end_matches(['\n', '\r']).to_string();
                [v, quoted, trimmed]
            })
            .collect();
        values.retain(|v| !v.is_empty());
        // Longest first, and equal ones side by side so that `dedup` removes every copy.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets(Arc::new(values))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut t = text.to_string();
        for s in self.0.iter() {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), REDACTED);
            }
        }
        t
    }

    fn in_place(&self, text: &mut String) {
        if self.0.iter().any(|s| text.contains(s.as_str())) {
            *text = self.text(text);
        }
    }

    fn path(&self, p: &mut PathBuf) {
        let s = p.to_string_lossy();
        if self.0.iter().any(|v| s.contains(v.as_str())) {
            *p = PathBuf::from(self.text(&s));
        }
    }

    /// A redactor for one output stream, or `None` when there is nothing to redact.
    pub fn redactor(&self) -> Option<Redactor> {
        (!self.is_empty()).then(|| Redactor {
            secrets: self.clone(),
            carry: Vec::new(),
        })
    }
}

/// A record with secrets redacted from every text field: the only form in which a record
/// leaves the executor (events, the store, reports).
#[derive(Clone, Debug, PartialEq)]
pub struct Sealed(CompletedProcess);

impl Sealed {
    pub fn new(mut rec: CompletedProcess, secrets: &Secrets) -> Sealed {
        if !secrets.is_empty() {
            let s = secrets;
            s.in_place(&mut rec.job);
            rec.args.iter_mut().for_each(|a| s.in_place(a));
            if let Some(cwd) = &mut rec.cwd {
                s.path(cwd);
            }
            if let Some(e) = &mut rec.error {
                s.in_place(e);
            }
            rec.notes.iter_mut().for_each(|n| s.in_place(n));
            if let Some(h) = &mut rec.host {
                s.in_place(h);
            }
            for out in [&mut rec.stdout, &mut rec.stderr] {
                if let Some(p) = &mut out.path {
                    s.path(p);
                }
            }
            rec.env_keys.iter_mut().for_each(|k| s.in_place(k));
            match &mut rec.stdin {
                Some(super::Stdin::Text(t)) => s.in_place(t),
                Some(super::Stdin::File(p)) => s.path(p),
                _ => {}
            }
        }
        Sealed(rec)
    }

    /// A record read back from the store or from a supervisor, which sealed it when it was
    /// written.
    pub fn trusted(rec: CompletedProcess) -> Sealed {
        Sealed(rec)
    }

    /// Names the job's process: an identity (pid, start time, boot, namespace) holds no text
    /// that could carry a secret.
    pub fn set_process(&mut self, process: Option<ProcessIdentity>) {
        self.0.process = process;
    }

    pub fn into_inner(self) -> CompletedProcess {
        self.0
    }
}

impl std::ops::Deref for Sealed {
    type Target = CompletedProcess;
    fn deref(&self) -> &CompletedProcess {
        &self.0
    }
}

/// Replaces secret values in a byte stream, also across chunk boundaries.
pub struct Redactor {
    secrets: Secrets,
    carry: Vec<u8>,
}

impl Redactor {
    /// Whether bytes are held back, waiting to see whether they start a secret.
    pub fn holds(&self) -> bool {
        !self.carry.is_empty()
    }

    /// The chunk as it may be kept; with `last`, nothing is held back.
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut p = 0;
        'scan: while p < buf.len() {
            let rest = &buf[p..];
            for s in self.secrets.values() {
                let s = s.as_bytes();
                if rest.starts_with(s) {
                    out.extend_from_slice(REDACTED.as_bytes());
                    p += s.len();
                    continue 'scan;
                }
                if !last && rest.len() < s.len() && s.starts_with(rest) {
                    // Maybe the start of a secret that the next chunk completes.
                    self.carry = rest.to_vec();
                    break 'scan;
                }
            }
            out.push(buf[p]);
            p += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_across_chunks_is_redacted() {
        let secrets = Secrets::new(vec!["hunter2".into()]);
        let mut r = secrets.redactor().unwrap();
        let mut out = r.feed(b"pw=hun", false);
        out.extend(r.feed(b"ter2!", false));
        out.extend(r.feed(b"", true));
        assert_eq!(out, b"pw=[REDACTED]!");
    }

    #[test]
    fn quoted_and_trimmed_forms_of_a_secret_are_redacted_too() {
        let s = Secrets::new(vec!["it's".into(), "block\n".into()]);
        assert_eq!(s.text("sh -c echo 'it'\\''s'"), "sh -c echo [REDACTED]");
        assert_eq!(s.text("pw=block!"), "pw=[REDACTED]!");
    }

    #[test]
    fn every_text_field_of_a_record_is_sealed() {
        let secrets = Secrets::new(vec!["s3cr3t".into()]);
        let mut rec = CompletedProcess::not_started(
            "call[s3cr3t]",
            0,
            vec!["echo".into(), "s3cr3t".into()],
            crate::record::Status::Skipped,
            "needs x, s3cr3t".into(),
        );
        rec.cwd = Some("/tmp/s3cr3t".into());
        rec.notes.push("s3cr3t".into());
        rec.host = Some("s3cr3t".into());
        rec.stdout.path = Some("/x/call[s3cr3t]/stdout".into());
        let sealed = Sealed::new(rec, &secrets);
        let json = serde_json::to_string(&*sealed).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
    }
}
