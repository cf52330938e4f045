//! Run ids: made from the time, so that they sort by it, and checked before they become
//! folder names.

use std::time::SystemTime;

/// Whether `id` can be a run id, and so a folder name directly inside `runs/`: what
/// `new_run_id` makes, or at least nothing that could climb out (`/`, `..`) or hide (a
/// leading dot). Every id read back from the database is checked before it touches a path.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `name` is exactly what `new_run_id` makes (`20261201-112836-11988aa`): the only
/// names in `runs/` that gc may take for a run's folder. A folder of another shape is not
/// ours, whatever the database says.
pub fn looks_like_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 23
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-'
        && b[16..].iter().all(u8::is_ascii_hexdigit)
}

/// `id` as one path component: an id read from a forged database never climbs out of
/// `runs/` (`/` and a leading `.` are escaped).
pub fn as_component(id: &str) -> String {
    let mut s = id.replace('%', "%25").replace('/', "%2F");
    if s.starts_with('.') {
        s.replace_range(..1, "%2E");
    }
    if s.is_empty() {
        s.push_str("%00");
    }
    s
}

/// A new run id: UTC time to the millisecond (so ids sort by time) and a random suffix.
pub fn new_run_id(now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    // 2026-11-26T01:15:10.123Z -> 20261126-011510-123
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let suffix = random_hex4();
    format!(
        "{}-{}-{}{}",
        &digits[..8],
        &digits[8..14],
        &digits[14..17],
        suffix
    )
}

fn random_hex4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:04x}", h.finish() & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::from_millis;

    #[test]
    fn only_run_ids_are_taken_for_run_folders() {
        assert!(looks_like_run_id(&new_run_id(std::time::SystemTime::now())));
        assert!(!looks_like_run_id("exp1"));
        assert_eq!(as_component("../../x"), "%2E.%2F..%2Fx");
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id(from_millis(1_700_000_000_000));
        let b = new_run_id(from_millis(1_700_000_000_001));
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20231114-221320-0001234".len());
    }
}
