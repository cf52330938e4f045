//! A record row read back whole. Its JSON leaves out what its columns hold (the store writes
//! it `in_stored_form`), so every read of a record selects `RECORD` (or `record_columns` of a
//! table alias) and decodes with `RecordRow::decode`, which puts the columns back. A row
//! written before that form (its JSON whole, beginning with the job's name) is read as it is.

use std::fmt::Write;

use crate::record::CompletedProcess;

/// The columns a record is read from, in `RecordRow::at`'s order.
pub(super) const RECORD: &str = "idx, job, status, returncode, started_ms, record";

/// `RECORD` of the table called `alias` in a join.
pub(super) fn record_columns(alias: &str) -> String {
    RECORD
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) struct RecordRow {
    idx: i64,
    job: String,
    status: String,
    returncode: Option<i64>,
    started_ms: i64,
    json: String,
}

impl RecordRow {
    /// The `RECORD` columns of `row`, from column `at` on.
    pub(super) fn at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RecordRow> {
        Ok(RecordRow {
            idx: row.get(at)?,
            job: row.get(at + 1)?,
            status: row.get(at + 2)?,
            returncode: row.get(at + 3)?,
            started_ms: row.get(at + 4)?,
            json: row.get(at + 5)?,
        })
    }

    /// The job's index, from its column.
    pub(super) fn index(&self) -> usize {
        self.idx as usize
    }

    /// The job's name, from its column.
    pub(super) fn job(&self) -> &str {
        &self.job
    }

    /// The record, its columns put back into its JSON.
    pub(super) fn decode(&self) -> serde_json::Result<CompletedProcess> {
        if self.json.starts_with("{\"job\":") {
            return serde_json::from_str(&self.json);
        }
        let rest = self.json.strip_prefix('{').unwrap_or(&self.json);
        let mut full = String::with_capacity(self.json.len() + self.job.len() + 96);
        full.push_str("{\"job\":");
        full.push_str(&serde_json::to_string(&self.job)?);
        let status = serde_json::to_string(&self.status)?;
        let code = self
            .returncode
            .map_or("null".to_string(), |c| c.to_string());
        let _ = write!(
            full,
            ",\"index\":{},\"status\":{status},\"returncode\":{code},\"started\":{}",
            self.idx, self.started_ms
        );
        if !rest.starts_with('}') {
            full.push(',');
        }
        full.push_str(rest);
        serde_json::from_str(&full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Status, in_stored_form};

    #[test]
    fn a_record_in_the_stores_form_reads_back_whole_and_an_old_row_as_it_is() {
        let mut rec = CompletedProcess::not_started(
            "a[\"x\"]",
            7,
            vec!["true".into()],
            Status::Failed,
            "no".into(),
        );
        rec.returncode = Some(3);
        // Times as the JSON keeps them, to the millisecond.
        rec.started = crate::record::from_millis(1_796_000_000_123);
        rec.finished = crate::record::from_millis(1_796_000_000_456);
        let full = serde_json::to_string(&rec).unwrap();
        let stored = in_stored_form(|| serde_json::to_string(&rec).unwrap());
        assert!(stored.len() < full.len(), "{stored}");
        assert!(!stored.contains("\"job\""), "{stored}");
        // The flag ends with the closure: what follows is written whole again.
        assert_eq!(serde_json::to_string(&rec).unwrap(), full);
        let row = |json: String| RecordRow {
            idx: 7,
            job: rec.job.clone(),
            status: "failed".into(),
            returncode: Some(3),
            started_ms: crate::record::to_millis(rec.started),
            json,
        };
        assert_eq!(row(stored).decode().unwrap(), rec);
        assert_eq!(row(full).decode().unwrap(), rec);
    }
}
