//! How far each need of a waiting job has got (how many of the jobs it names have ended, and
//! how), and whether its condition (`if: success | failure | always`) is met once they all
//! have. The scheduler keeps one `Waiting` per need and asks these questions.

use crate::plan::{Condition, Need};
use crate::record::Status;

/// One need of a job: how many of its jobs have not ended yet, and how those that did ended.
#[derive(Clone, Debug)]
pub(super) struct Waiting {
    left: usize,
    /// One of its jobs ended in a failure status.
    failed: bool,
    /// The first of its jobs that was not needed.
    unneeded: Option<usize>,
}

impl Waiting {
    /// `fan_jobs` says how many jobs a lazy fan-out the need names has.
    pub(super) fn new(need: &Need, fan_jobs: &dyn Fn(usize) -> usize) -> Waiting {
        Waiting {
            left: need.jobs.len() + need.fans.iter().map(|&f| fan_jobs(f)).sum::<usize>(),
            failed: false,
            unneeded: None,
        }
    }

    /// `count` of the need's jobs ended as `status`, the first of them job `done`.
    pub(super) fn ended(&mut self, done: usize, count: usize, status: Status) {
        self.left -= count;
        if status.is_failure() {
            self.failed = true;
        } else if status != Status::Succeeded {
            self.unneeded.get_or_insert(done);
        }
    }

    /// Whether every job the need names has ended.
    pub(super) fn settled(&self) -> bool {
        self.left == 0
    }

    /// Why the need is not met, once settled, if it is not; `name` gives a job's name. (A job
    /// that had to succeed and did not is a skip, decided when it ends: see [`skips`].)
    pub(super) fn unmet(&self, need: &Need, name: impl Fn(usize) -> String) -> Option<String> {
        let one = need.jobs.len() <= 1 && need.fans.is_empty();
        let n = &need.name;
        match (need.when, self.unneeded) {
            (Condition::Success, Some(u)) => {
                Some(format!("needs `{}`, which was not needed", name(u)))
            }
            (Condition::Failure, _) if self.failed => None,
            (Condition::Failure, Some(_)) if one => {
                Some(format!("runs only if `{n}` fails; it was not needed"))
            }
            (Condition::Failure, Some(u)) => Some(format!(
                "runs only if `{n}` fails; `{}` was not needed",
                name(u)
            )),
            (Condition::Failure, None) if one => {
                Some(format!("runs only if `{n}` fails; it succeeded"))
            }
            (Condition::Failure, None) => {
                Some(format!("runs only if `{n}` fails; all its jobs succeeded"))
            }
            _ => None,
        }
    }
}

/// Whether a job that ended as `status` makes what needs it this way skipped at once.
pub(super) fn skips(need: &Need, status: Status) -> bool {
    need.when == Condition::Success && status.is_failure()
}
