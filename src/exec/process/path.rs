//! Finding a bare program name on PATH, as execvp does.

use std::path::{Path, PathBuf};

/// Found programs by PATH value, then by name.
type ProgramCache = std::sync::Mutex<
    std::collections::HashMap<
        std::ffi::OsString,
        std::collections::HashMap<std::ffi::OsString, PathBuf>,
    >,
>;

/// Where a bare program name is found, as execvp looks: in each directory of `search` in turn
/// (an empty entry is the current directory, and relative entries are taken from `cwd`, the
/// child's directory), the first executable file. A found path is remembered per distinct
/// (PATH, program) when every entry is absolute, so that a stream of trivial jobs does not
/// look at each entry for every spawn; a miss is looked up again the next time (an earlier job
/// may install the program).
pub(super) fn find_in_path(
    program: &std::ffi::OsStr,
    search: &std::ffi::OsStr,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    static CACHE: std::sync::OnceLock<ProgramCache> = std::sync::OnceLock::new();
    if program.is_empty() {
        return None;
    }
    let entries = search.as_bytes().split(|&b| b == b':');
    let cacheable = entries.clone().all(|d| d.first() == Some(&b'/'));
    let cache = CACHE.get_or_init(Default::default);
    if cacheable
        && let Some(hit) = cache
            .lock()
            .expect("cache lock")
            .get(search)
            .and_then(|m| m.get(program))
    {
        return Some(hit.clone());
    }
    let found = entries.into_iter().find_map(|dir| {
        let dir = Path::new(std::ffi::OsStr::from_bytes(if dir.is_empty() {
            b"."
        } else {
            dir
        }));
        let candidate = match cwd {
            Some(cwd) if dir.is_relative() => cwd.join(dir).join(program),
            _ => dir.join(program),
        };
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })?;
    if cacheable {
        cache
            .lock()
            .expect("cache lock")
            .entry(search.to_owned())
            .or_default()
            .insert(program.to_owned(), found.clone());
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        use std::ffi::OsStr;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let tool = dir.path().join("bin/tool");
        let search = OsStr::new("/nonexistent-dir:bin");
        // A relative entry is taken from the child's directory; a miss is not remembered.
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            None
        );
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            Some(dir.path().join("bin/tool"))
        );
        // An empty entry is the (child's) current directory.
        let bin = dir.path().join("bin");
        assert_eq!(
            find_in_path(
                OsStr::new("tool"),
                OsStr::new("/nonexistent-dir:"),
                Some(&bin)
            ),
            Some(bin.join("tool"))
        );
        // A file without an execute bit is passed over.
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            find_in_path(OsStr::new("tool"), search, Some(dir.path())),
            None
        );
    }
}
