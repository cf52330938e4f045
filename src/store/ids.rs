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
    fn run_ids_sort_by_time() {
        let a = new_run_id(from_millis(1_700_000_000_000));
        let b = new_run_id(from_millis(1_700_000_000_001));
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20231114-221320-0001234".len());
    }
}
