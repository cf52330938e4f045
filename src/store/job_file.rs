//! How `--job-file F` names the job file of a run: the path as stored, or a tail of it that
//! starts after a `/` (its file name, or its last folders and the name). One rule, in Rust and
//! in SQL, so that every command that takes `--job-file` picks the same runs.

/// Whether the job file stored as `path` is the one `given` names.
pub fn names(path: &str, given: &str) -> bool {
    path == given
        || path
            .strip_suffix(given)
            .is_some_and(|head| head.ends_with('/'))
}

/// The same test in SQL, of column `col` against the parameter `p` (`?2`; a bare `?` is
/// bound three times). Not LIKE: a `%` or `_` in a file name is a plain character.
pub(super) fn sql(col: &str, p: &str) -> String {
    format!("({col} = {p} OR substr({col}, -length({p}) - 1) = '/' || {p})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_after_a_slash_names_the_file_and_wildcards_are_plain() {
        assert!(names("/srv/jobs/a_b.yaml", "a_b.yaml"));
        assert!(names("/srv/jobs/a_b.yaml", "jobs/a_b.yaml"));
        assert!(names("a_b.yaml", "a_b.yaml"));
        assert!(!names("/srv/jobs/xa_b.yaml", "a_b.yaml"));
        assert!(!names("/srv/jobs/aXb.yaml", "a_b.yaml"));
        assert!(!names("/srv/jobs/a.yaml", "%a.yaml"));
    }

    #[test]
    fn the_sql_test_agrees_with_the_rust_one() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let q = format!("SELECT {}", sql("?1", "?2"));
        for (path, given) in [
            ("/srv/jobs/a_b.yaml", "a_b.yaml"),
            ("/srv/jobs/a_b.yaml", "jobs/a_b.yaml"),
            ("a_b.yaml", "a_b.yaml"),
            ("/srv/jobs/xa_b.yaml", "a_b.yaml"),
            ("/srv/jobs/aXb.yaml", "a_b.yaml"),
            ("/srv/jobs/a.yaml", "%a.yaml"),
            ("/srv/é/ü.yaml", "ü.yaml"),
            ("b", "/a/b"),
        ] {
            let got: bool = conn.query_row(&q, [path, given], |r| r.get(0)).unwrap();
            assert_eq!(got, names(path, given), "{path} {given}");
        }
    }
}
