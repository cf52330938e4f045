//! `hooks:` (of the run, and of a job) and `notify:`: what runs, and who is told, once jobs end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{CommandSpec, DurationSpec, Word};

/// The hooks of the run or of one job; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSpec {
    pub on_success: Option<HookSpec>,
    pub on_failure: Option<HookSpec>,
    pub on_exit: Option<HookSpec>,
}

impl HooksSpec {
    pub fn is_empty(&self) -> bool {
        self.on_success.is_none() && self.on_failure.is_none() && self.on_exit.is_none()
    }
}

/// One hook: a command like a job's, without what only jobs have (`needs`, `for_each`,
/// `background`, `retries`, outputs).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub command: Option<CommandSpec>,
    pub shell: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, Word>,
    pub timeout: Option<DurationSpec>,
    pub cwd: Option<PathBuf>,
}

/// `notify:`: where the run's outcome is sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// POSTed the run's summary as JSON.
    pub webhook: Option<String>,
    /// healthchecks.io style: `/start`, then the URL itself or `/fail`.
    pub ping: Option<String>,
    /// Mailed the summary through sendmail.
    pub mail: Option<String>,
    #[serde(default)]
    pub when: NotifyWhen,
}

/// Which runs the webhook and the mail are sent for (the ping goes out for every run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyWhen {
    Always,
    /// Every failed run.
    #[default]
    Failure,
    /// A run that fails after one that did not, one that recovers, and a digest of a streak of
    /// failures at its 2nd, 4th, 8th, … run.
    Change,
}
