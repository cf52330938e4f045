//! Every status name the store's SQL spells, each fragment written once, here, so that they
//! can later be generated from `record::Status`. A run's status is a record one, or
//! `running` while its orchestrate process lives.

/// A run's status while its orchestrate process lives (no record has it).
pub(super) const RUNNING: &str = "running";
/// A run whose orchestrate process went away without finishing it.
const INTERRUPTED: &str = "interrupted";
const SUCCEEDED: &str = "succeeded";
const BACKGROUND: &str = "background";

/// The record statuses a run's `succeeded` count holds (those that are not a failure: a
/// background job counts from its start); every other one counts in `failed`.
const COUNTED_OK: [&str; 2] = [SUCCEEDED, BACKGROUND];

/// A status name as an SQL string literal.
fn literal(name: &str) -> String {
    format!("'{name}'")
}

fn literals(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| literal(n)).collect();
    quoted.join(", ")
}

/// Records counted in their run's `succeeded`.
pub(super) fn record_counts_ok() -> String {
    format!("status IN ({})", literals(&COUNTED_OK))
}

/// Records counted in their run's `failed`.
pub(super) fn record_counts_failed() -> String {
    format!("status NOT IN ({})", literals(&COUNTED_OK))
}

/// A background job's record while the job runs.
pub(super) fn record_in_background() -> String {
    format!("status = {}", literal(BACKGROUND))
}

/// A background job's record once the job has ended.
pub(super) fn record_ended() -> String {
    format!("status != {}", literal(BACKGROUND))
}

/// The status a new run is inserted with, as an SQL value.
pub(super) fn running_value() -> String {
    literal(RUNNING)
}

/// Runs still marked running.
pub(super) fn run_running() -> String {
    format!("status = {}", literal(RUNNING))
}

/// The assignment that marks a run interrupted.
pub(super) fn set_run_interrupted() -> String {
    format!("status = {}", literal(INTERRUPTED))
}

/// Runs that ended other than succeeded (`runs --failed` lists them with those that had
/// failed jobs).
pub(super) fn run_ended_unsuccessfully() -> String {
    format!("status NOT IN ({})", literals(&[SUCCEEDED, RUNNING]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL must read exactly as it did when these fragments were written inline.
    #[test]
    fn fragments_read_as_before() {
        assert_eq!(record_counts_ok(), "status IN ('succeeded', 'background')");
        assert_eq!(
            record_counts_failed(),
            "status NOT IN ('succeeded', 'background')"
        );
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
