//! The environment jobs start from (inherited or not, `env_file:`, top-level `env:`, `path:`),
//! each job's variables on top of it, and the secret values to redact from what they print.

use std::collections::BTreeMap;
use std::path::Path;

use super::PlannedJob;
use super::locator::{EntryAt, Locator, Place};
use crate::error::SpecError;
use crate::spec::{Defaults, JobFile, JobMap};

/// PATH when nothing gives one, as cron gives it.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The environment every job starts from: inherited (unless `inherit_env: false`), then
/// `env_file:`, then top-level `env:`, then `path:` in front of PATH.
pub(super) fn global_env(
    file: &JobFile,
    base_dir: &Path,
    loc: &Locator<'_>,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for f in &file.env_file {
        read_env_file(&base_dir.join(f), loc, &mut env)?;
    }
    for (k, v) in &file.env {
        env.push((k.clone(), v.0.clone()));
    }
    if !file.inherit_env && !env.iter().any(|(k, _)| k == "PATH") {
        // A clean environment still needs a PATH to find programs.
        env.push(("PATH".to_string(), FALLBACK_PATH.to_string()));
    }
    if !file.path.is_empty() {
        let current = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                file.inherit_env
                    .then(|| std::env::var("PATH").ok())
                    .flatten()
            })
            .unwrap_or_else(|| FALLBACK_PATH.to_string());
        let mut dirs: Vec<String> = file.path.clone();
        dirs.push(current);
        env.push(("PATH".to_string(), dirs.join(":")));
    }
    Ok(env)
}

/// The largest env_file read: far beyond any real one, and small enough to read at once.
const ENV_FILE_LIMIT: u64 = 16 << 20;

/// Appends the variables of one `env_file:` to `env`; a bad line is reported in that file.
fn read_env_file(
    p: &Path,
    loc: &Locator<'_>,
    env: &mut Vec<(String, String)>,
) -> Result<(), SpecError> {
    let content = crate::text::read_regular_text(p, ENV_FILE_LIMIT).map_err(|e| {
        loc.err(
            &Locator::top("env_file"),
            None,
            format!(
                "cannot read env_file {}: {}",
                p.display(),
                crate::text::os_text(&e)
            ),
            None,
        )
    })?;
    for (n, line) in content.lines().enumerate() {
        match parse_env_line(line) {
            Ok(Some(kv)) => env.push(kv),
            Ok(None) => {}
            Err(msg) => {
                // No snippet of the line: env files hold secrets, and an error is printed
                // (and mailed, under cron).
                return Err(SpecError::at(
                    p,
                    None,
                    n + 1,
                    1,
                    msg,
                    Some("write KEY=VALUE lines".into()),
                ));
            }
        }
    }
    Ok(())
}

/// One job's variables: the global environment, then `defaults.env`, then the job's own.
pub(super) fn job_env(
    global: &[(String, String)],
    d: &Defaults,
    m: &JobMap,
    ex: &EntryAt<'_>,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut env: BTreeMap<String, String> = global.iter().cloned().collect();
    for (k, v) in d.env.iter().chain(m.env.iter()) {
        env.insert(k.clone(), v.0.clone());
    }
    check_env(&env, ex)?;
    Ok(env)
}

/// Every name and value can be put in an environment (no `=` in names, no NUL anywhere).
pub(super) fn check_env(env: &BTreeMap<String, String>, at: &dyn Place) -> Result<(), SpecError> {
    if let Some(k) = env.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
        return Err(at.err_key(
            "env",
            format!("invalid environment variable name {k:?}"),
            None,
        ));
    }
    if let Some(k) = env.iter().find(|(_, v)| v.contains('\0')).map(|(k, _)| k) {
        return Err(at.err_key(
            "env",
            format!("the value of environment variable `{k}` contains a NUL byte"),
            Some("an environment value cannot hold NUL; remove it".into()),
        ));
    }
    Ok(())
}

/// The values of the secret variables, as each job (and hook) will see them, longest first (so that a
/// secret containing another is redacted whole).
pub(super) fn secret_values<'j>(
    keys: &[String],
    jobs: impl Iterator<Item = &'j PlannedJob> + Clone,
    inherit: bool,
) -> Vec<String> {
    let mut vals: Vec<String> = Vec::new();
    for k in keys {
        for j in jobs.clone() {
            if let Some((_, v)) = j.env.iter().find(|(key, _)| key == k) {
                vals.push(v.clone());
            }
        }
        if inherit && let Ok(v) = std::env::var(k) {
            vals.push(v);
        }
    }
    vals.retain(|v| !v.is_empty());
    vals.sort_by_key(|v| std::cmp::Reverse(v.len()));
    vals.dedup();
    vals
}

/// `KEY=VALUE`, `export KEY=VALUE`, quotes around the value, comments and blank lines.
fn parse_env_line(line: &str) -> Result<Option<(String, String)>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
    let Some((k, v)) = t.split_once('=') else {
        return Err("expected KEY=VALUE (the line is not shown: it may hold a secret)".into());
    };
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid variable name `{}`",
            k.chars().take(40).collect::<String>()
        ));
    }
    let v = v.trim();
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Ok(Some((k.to_string(), v.to_string())))
}
