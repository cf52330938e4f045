//! The environment orchestrate itself started with, read once: the base every job's
//! environment is built on (unless the job file says `inherit_env: false`).

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
