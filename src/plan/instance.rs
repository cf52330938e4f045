//! One job of an entry made from its template: the placeholders of its command, paths,
//! environment and input filled in with one group of items (`expand`).

use std::path::{Path, PathBuf};

use super::entry::{Body, Template};
use super::expand::{Subst, expand_argv, expand_text};
use super::locator::{EntryAt, Place};
use super::{Input, PlannedJob, Target};
use crate::error::SpecError;
use crate::spec::{OutputSpec, StdinSpec};

/// One job of the entry: the template with one group's values substituted (`sub`), or as is.
pub(super) fn instance(
    t: &Template,
    sub: Option<&Subst<'_>>,
    name: String,
    index: usize,
    ex: &EntryAt<'_>,
) -> Result<PlannedJob, SpecError> {
    fill(t, sub, name, index).map_err(|(key, msg)| match key {
        Some(k) => ex.err_key(k, msg, None),
        None => ex.err_here(msg, None),
    })
}

/// What substitution found wrong: the key it points at (none: the entry) and why.
pub(super) type Bad = (Option<&'static str>, String);

/// `instance` without a place for errors: lazy fan-out makes its jobs with it as they run.
pub(super) fn fill(
    t: &Template,
    sub: Option<&Subst<'_>>,
    name: String,
    index: usize,
) -> Result<PlannedJob, Bad> {
    let sh = |script: String| vec!["sh".to_string(), "-c".to_string(), script];
    let argv = match (&t.body, sub) {
        (Body::Argv(words), Some(sub)) => expand_argv(words, sub),
        (Body::Shell(script), Some(sub)) => expand_text(script, sub, true).map(sh),
        (Body::Argv(words), None) => Ok(words.clone()),
        (Body::Shell(script), None) => Ok(sh(script.clone())),
    }
    .map_err(|msg| (Some(t.body.key()), msg))?;
    let plain = |s: &str| -> Result<String, Bad> {
        match sub {
            Some(sub) => expand_text(s, sub, false).map_err(|msg| (None, msg)),
            None => Ok(s.to_string()),
        }
    };
    let plain_path =
        |p: &Path| -> Result<PathBuf, Bad> { Ok(PathBuf::from(plain(&p.to_string_lossy())?)) };
    let target_of = |spec: Option<&OutputSpec>| -> Result<Target, Bad> {
        Ok(match spec {
            Some(OutputSpec::File { path, append }) => Target::File {
                path: plain_path(path)?,
                append: *append,
            },
            other => Target::of(other),
        })
    };
    let mut env = Vec::with_capacity(t.env.len());
    for (k, v) in &t.env {
        env.push((k.clone(), plain(v)?));
    }
    Ok(PlannedJob {
        index,
        name,
        argv,
        cwd: t.cwd.as_deref().map(plain_path).transpose()?,
        env,
        stdin: match &t.stdin {
            None | Some(StdinSpec::Null) => Input::Null,
            Some(StdinSpec::Text(text)) => Input::Text(plain(text)?),
            Some(StdinSpec::File(p)) => Input::File(plain_path(p)?),
        },
        stdout: target_of(t.stdout.as_ref())?,
        stderr: target_of(t.stderr.as_ref())?,
        ..t.job.clone()
    })
}
