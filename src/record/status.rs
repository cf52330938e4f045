//! How a job ended and how a run ended: the one home of status names, of what counts as a
//! failure, and of how statuses are counted. The summary, `runs`, `show`, the progress bar,
//! JSON and the store's SQL all go through these types; no status name is spelled elsewhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    SpawnError,
    Skipped,
    /// Not run because it runs only if a job it needs fails (`if: failure`), and that job
    /// succeeded. Not a failure.
    NotNeeded,
    /// Started detached; its final record is written by its supervisor.
    Background,
    /// A background job whose supervisor vanished without writing a record.
    Lost,
    /// The job was running when its run was interrupted (orchestrate itself died).
    Interrupted,
    /// Started, and not ended when this record was written; the final record replaces it.
    /// One left in a run that died names a job that may have outlived it (a survivor).
    Running,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Succeeded,
        Status::Failed,
        Status::TimedOut,
        Status::Cancelled,
        Status::SpawnError,
        Status::Skipped,
        Status::NotNeeded,
        Status::Background,
        Status::Lost,
        Status::Interrupted,
        Status::Running,
    ];

    /// The name in JSON, the store and `--status` filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Cancelled => "cancelled",
            Status::SpawnError => "spawn_error",
            Status::Skipped => "skipped",
            Status::NotNeeded => "not_needed",
            Status::Background => "background",
            Status::Lost => "lost",
            Status::Interrupted => "interrupted",
            Status::Running => "running",
        }
    }

    /// The words people read: in summaries, tables and progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::TimedOut => "timed out",
            Status::Cancelled => "cancelled",
            Status::SpawnError => "could not start",
            Status::Skipped => "skipped",
            Status::NotNeeded => "not needed",
            Status::Background => "running in the background",
            Status::Lost => "lost",
            Status::Interrupted => "interrupted",
            Status::Running => "running",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether this outcome makes the run fail (exit code 1).
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            Status::Succeeded | Status::NotNeeded | Status::Background | Status::Running
        )
    }

    /// Whether the job has not ended yet (its record will be replaced by the final one).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Background | Status::Running)
    }

    /// `'a', 'b'` for SQL: the names of the statuses `pick` selects. Built from the enum, so
    /// the store's queries and `is_failure` cannot disagree.
    pub fn sql_list(pick: impl Fn(Status) -> bool) -> String {
        let names: Vec<String> = Status::ALL
            .into_iter()
            .filter(|s| pick(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        names.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended (or that it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// A job failed: ran and failed, timed out, was cancelled or skipped, could not start, or
    /// a background job of the run ended badly, also after the run itself ended.
    Failed,
    /// Stopped by a signal, or orchestrate died while it ran.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status of a run that ended, from its counts: the one rule the run's end, the
    /// store's recount (background jobs end later) and `runs` share.
    pub fn ended(interrupted: bool, counts: &Counts) -> RunStatus {
        if interrupted {
            RunStatus::Interrupted
        } else if counts.failed() > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Jobs counted by status: what every summary of a run shows, the same way everywhere. In
/// JSON (and in the store) an object by status name, of the statuses that occur.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts([usize; Status::ALL.len()]);

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (st, n) in self.nonzero() {
            map.serialize_entry(st.as_str(), &n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, usize>::deserialize(d)?;
        let mut c = Counts::default();
        for (name, n) in map {
            let st = Status::parse(&name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown status `{name}`")))?;
            c.add_n(st, n);
        }
        Ok(c)
    }
}

impl Counts {
    pub fn add(&mut self, status: Status) {
        self.add_n(status, 1);
    }

    pub fn add_n(&mut self, status: Status, n: usize) {
        self.0[status as usize] += n;
    }

    /// One job fewer of `status` (never below none).
    pub fn remove(&mut self, status: Status) {
        self.0[status as usize] = self.0[status as usize].saturating_sub(1);
    }

    pub fn get(&self, status: Status) -> usize {
        self.0[status as usize]
    }

    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// Jobs whose status makes the run fail.
    pub fn failed(&self) -> usize {
        self.nonzero()
            .filter(|(s, _)| s.is_failure())
            .map(|(_, n)| n)
            .sum()
    }

    /// The statuses that occur, in the order of `Status::ALL`, with their counts.
    pub fn nonzero(&self) -> impl Iterator<Item = (Status, usize)> + '_ {
        Status::ALL
            .into_iter()
            .map(|s| (s, self.get(s)))
            .filter(|(_, n)| *n > 0)
    }

    /// "succeeded=3 failed=1": the counts as a script reads them (`ORCHESTRATE_COUNTS`).
    pub fn pairs(&self) -> String {
        let parts: Vec<String> = self
            .nonzero()
            .map(|(s, n)| format!("{}={n}", s.as_str()))
            .collect();
        parts.join(" ")
    }

    /// "3 succeeded, 1 failed, 1 timed out": the counts as people read them.
    pub fn describe(&self) -> String {
        self.describe_noting(|_| None)
    }

    /// Like `describe`, with a remark after a status's count: "3 succeeded (1 flaky)".
    pub fn describe_noting(&self, remark: impl Fn(Status) -> Option<String>) -> String {
        let parts: Vec<String> = self
            .nonzero()
            .map(|(s, n)| match remark(s) {
                Some(r) => format!("{n} {} ({r})", s.label()),
                None => format!("{n} {}", s.label()),
            })
            .collect();
        if parts.is_empty() {
            "no jobs".to_string()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for st in Status::ALL {
            assert_eq!(Status::parse(st.as_str()), Some(st));
            assert_eq!(Status::ALL[st as usize], st);
        }
        for st in RunStatus::ALL {
            assert_eq!(RunStatus::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn counts_keep_statuses_apart() {
        let mut c = Counts::default();
        for s in [
            Status::Succeeded,
            Status::Failed,
            Status::TimedOut,
            Status::Skipped,
        ] {
            c.add(s);
        }
        assert_eq!(c.total(), 4);
        assert_eq!(c.failed(), 3);
        assert_eq!(
            c.describe(),
            "1 succeeded, 1 failed, 1 timed out, 1 skipped"
        );
        assert_eq!(RunStatus::ended(false, &c), RunStatus::Failed);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"succeeded":1,"failed":1,"timed_out":1,"skipped":1}"#
        );
        assert_eq!(serde_json::from_str::<Counts>(&json).unwrap(), c);
        assert_eq!(c.pairs(), "succeeded=1 failed=1 timed_out=1 skipped=1");
    }

    #[test]
    fn sql_lists_follow_the_enum() {
        assert_eq!(
            Status::sql_list(|s| !s.is_failure()),
            "'succeeded', 'not_needed', 'background', 'running'"
        );
    }
}
