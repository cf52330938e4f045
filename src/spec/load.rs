//! Reading a job file: size and encoding checks, then the one serde pass over its text.

use std::path::Path;

use super::{JobFile, Source, many, yaml_error};
use crate::error::SpecError;

/// More jobs in flight than this is a typo, not a plan (and would exhaust file descriptors).
pub const MAX_CONCURRENCY: usize = 4096;

/// Largest job file read, to keep a runaway file from eating memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads and parses a job file. Errors name the file, line and column.
pub fn load(path: &Path) -> Result<(JobFile, String), SpecError> {
    let meta = std::fs::metadata(path).map_err(|e| SpecError::io(path, &e))?;
    if meta.is_dir() {
        return Err(SpecError::plain(
            path,
            "is a directory; give the path of a YAML job file".to_string(),
        ));
    }
    if !meta.is_file() {
        // A device never ends (`/dev/zero`) and a FIFO may never be written: neither can be
        // checked for size first, nor read to the end for sure.
        return Err(SpecError::plain(
            path,
            "is not a regular file (a device, a FIFO or a socket); save the job file to a file first"
                .to_string(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(SpecError::plain(
            path,
            format!(
                "is {} bytes; job files are limited to {} MiB",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let bytes = read_at_most(path, MAX_FILE_BYTES).map_err(|e| SpecError::io(path, &e))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let (line, col) = line_col_of_offset(e.as_bytes(), at);
            return Err(SpecError::at(
                path,
                None,
                line,
                col,
                "the file is not valid UTF-8".to_string(),
                None,
            ));
        }
    };
    let file = parse(path, &text)?;
    Ok((file, text))
}

/// The file's bytes, at most `limit` of them (it may have grown since it was measured).
fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses job-file text; `path` only labels errors.
pub fn parse(path: &Path, text: &str) -> Result<JobFile, SpecError> {
    if text.trim().is_empty() || only_comments(text) {
        return Err(SpecError::plain(
            path,
            "is empty; a job file lists jobs, e.g.\n  jobs:\n    - df -h /home".to_string(),
        ));
    }
    let source = Source::new(path, text);
    let file = serde_yaml::from_str::<JobFile>(text).map_err(|e| {
        if e.to_string().contains("more than one document") {
            return many::second_document(&source);
        }
        many::with_job_errors(&source, yaml_error::from_serde(&source, &e))
    })?;
    if let Some((line, col, tag)) = super::tags::first_refused_tag(text) {
        return Err(SpecError::at(
            path,
            None,
            line,
            col,
            format!("YAML tags such as `{tag}` are not supported in job files"),
            Some("remove the tag: values are read as plain strings, numbers and lists".into()),
        )
        .with_source(text));
    }
    Ok(file)
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

fn line_col_of_offset(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::{CommandSpec, JobSpec, TimeoutSpec};

    fn p(text: &str) -> Result<JobFile, SpecError> {
        parse(Path::new("t.yaml"), text)
    }

    #[test]
    fn short_and_long_forms() {
        let f = p("concurrency: 3\njobs:\n  - df -h /home\n  - name: u\n    command: [uname, -a]\n  - shell: echo hi | wc -c\n").unwrap();
        assert_eq!(f.concurrency, Some(3));
        assert_eq!(f.jobs.len(), 3);
        assert!(matches!(&f.jobs[0], JobSpec::Short(s) if s == "df -h /home"));
        match &f.jobs[1] {
            JobSpec::Full(m) => assert_eq!(
                m.command,
                Some(CommandSpec::Argv(vec!["uname".into(), "-a".into()]))
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn top_level_list() {
        let f = p("- true\n- false\n").unwrap();
        assert_eq!(f.jobs.len(), 2);
    }

    #[test]
    fn durations() {
        let f = p("jobs:\n  - name: a\n    command: sleep 1\n    timeout: 1m 30s\n  - name: b\n    command: x\n    timeout: 2.5\n").unwrap();
        let JobSpec::Full(a) = &f.jobs[0] else {
            panic!()
        };
        assert_eq!(a.timeout, Some(TimeoutSpec::After(Duration::from_secs(90))));
        let JobSpec::Full(b) = &f.jobs[1] else {
            panic!()
        };
        assert_eq!(
            b.timeout,
            Some(TimeoutSpec::After(Duration::from_millis(2500)))
        );
    }

    #[test]
    fn unknown_key_has_location() {
        let e = p("jobs:\n  - name: a\n    command: true\n    timout: 1s\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(4), Some(5)), "{e}");
        assert!(e.to_string().contains("did you mean `timeout`"), "{e}");
    }
}
