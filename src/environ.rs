//! The environment of jobs: the one orchestrate itself started with (read once, the base of
//! every job's environment unless the job file says `inherit_env: false`), and [`JobEnv`],
//! the variables one job is given, computed once per attempt and reported as sent.

use crate::plan::PlannedJob;

/// The variables a job gets, in the order they are applied (a later one wins), and whether it
/// also has orchestrate's own environment. Built once per attempt; the back end applies it
/// and the record lists exactly these names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobEnv {
    pub vars: Vec<(String, String)>,
    /// The job starts from orchestrate's environment (else from an empty one, or, on an ssh
    /// host, from the remote login's).
    pub inherited: bool,
}

impl JobEnv {
    /// The run's variables (`ORCHESTRATE_RUN`), the job's name and slot, then the job's own.
    pub fn for_job(job: &PlannedJob, run_vars: &[(String, String)], slot: usize) -> JobEnv {
        let mut vars = Vec::with_capacity(run_vars.len() + job.env.len() + 2);
        vars.extend(run_vars.iter().cloned());
        vars.push(("ORCHESTRATE_JOB".to_string(), job.name.clone()));
        vars.push(("ORCHESTRATE_SLOT".to_string(), slot.to_string()));
        vars.extend(job.env.iter().cloned());
        JobEnv {
            vars,
            inherited: !job.env_clear,
        }
    }

    /// The names, sorted, each once: what the record keeps (never the values).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.vars.iter().map(|(k, _)| k.clone()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Sets the variables on a command (its own environment handling decides the base).
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }
}

/// The environment this process started with, each variable as its name and `NAME=value`;
/// read once (orchestrate never changes its own environment).
pub fn inherited_env() -> &'static [(std::ffi::OsString, std::ffi::CString)] {
    static ENV: std::sync::OnceLock<Vec<(std::ffi::OsString, std::ffi::CString)>> =
        std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.clone(), env_entry(&k, &v).ok()?)))
            .collect()
    })
}

/// `NAME=value`, as the environment passed to exec holds it.
pub fn env_entry(
    name: &std::ffi::OsStr,
    value: &std::ffi::OsStr,
) -> Result<std::ffi::CString, std::ffi::NulError> {
    use std::os::unix::ffi::OsStrExt;
    let mut kv = Vec::with_capacity(name.len() + value.len() + 1);
    kv.extend_from_slice(name.as_bytes());
    kv.push(b'=');
    kv.extend_from_slice(value.as_bytes());
    std::ffi::CString::new(kv)
}

/// Names of orchestrate's own environment variables, read once.
pub fn inherited_env_keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        inherited_env()
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    })
}
