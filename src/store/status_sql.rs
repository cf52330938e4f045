//! The status names the store's SQL spells, each fragment built here from `record::Status`
//! and `record::RunStatus`, so that the queries and the enums cannot disagree.

use crate::record::{RunStatus, Status};

/// A status name as an SQL string literal (the names are fixed identifiers: no quoting needed).
fn literal(name: &str) -> String {
    format!("'{name}'")
}

/// A background job's record while the job runs.
pub(super) fn record_in_background() -> String {
    format!("status = {}", literal(Status::Background.as_str()))
}

/// A background job's record once the job has ended.
pub(super) fn record_ended() -> String {
    format!("status != {}", literal(Status::Background.as_str()))
}

/// The status a new run is inserted with, as an SQL value.
pub(super) fn running_value() -> String {
    literal(RunStatus::Running.as_str())
}

/// Runs still marked running.
pub(super) fn run_running() -> String {
    format!("status = {}", literal(RunStatus::Running.as_str()))
}

/// The assignment that marks a run interrupted.
pub(super) fn set_run_interrupted() -> String {
    format!("status = {}", literal(RunStatus::Interrupted.as_str()))
}

/// Runs that ended other than succeeded (`runs --failed` lists them with those that had
/// failed jobs).
pub(super) fn run_ended_unsuccessfully() -> String {
    format!(
        "status NOT IN ({}, {})",
        literal(RunStatus::Succeeded.as_str()),
        literal(RunStatus::Running.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_name_the_enums_statuses() {
        assert_eq!(record_in_background(), "status = 'background'");
        assert_eq!(record_ended(), "status != 'background'");
        assert_eq!(running_value(), "'running'");
        assert_eq!(run_running(), "status = 'running'");
        assert_eq!(set_run_interrupted(), "status = 'interrupted'");
        assert_eq!(
            run_ended_unsuccessfully(),
            "status NOT IN ('succeeded', 'running')"
        );
    }
}
