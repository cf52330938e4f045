//! Where a remote job went before the place it ended on, one type for ssh hosts and Slurm
//! workers: the places it left before it started there (no attempt: it never ran there, so
//! neither its `retries:` nor `flaky` count them), and the attempts cut short there by the
//! host or node failing under them, kept as earlier attempts marked `host_failed` (a success
//! after them alone is no flaky job).

use std::borrow::Cow;

use crate::exec::process::JobCtx;
use crate::exec::{Event, ends};
use crate::plan::PlannedJob;
use crate::record::{Attempt, CompletedProcess, Status};

#[derive(Default)]
pub struct Moves {
    /// Why the job could not start where it went before.
    pub not_reached: Vec<String>,
    earlier: Vec<Attempt>,
    notes: Vec<String>,
}

impl Moves {
    /// How often the job moved: places it left before it started there, and attempts cut
    /// short by their host failing.
    pub fn moved(&self) -> usize {
        self.not_reached.len() + self.earlier.iter().filter(|a| a.host_failed).count()
    }

    /// The job left a place before it started there (`why`); the attempts `rec` ran before
    /// are kept as earlier ones. Returns how many there were.
    pub fn left(&mut self, why: String, rec: &mut CompletedProcess) -> u32 {
        let ran = std::mem::take(&mut rec.earlier_attempts);
        let count = ran.len() as u32;
        self.keep(ran);
        self.not_reached.push(why);
        count
    }

    /// How many attempts the job made before its next one.
    pub fn attempts(&self) -> u32 {
        self.earlier.len() as u32
    }

    /// `rec`'s attempt ended as its host or node failed under it: kept, with the attempts
    /// before it, as earlier attempts of the job, and `note` (given the attempt's number)
    /// says so. Returns the number of the job's next attempt.
    fn broke(&mut self, mut rec: CompletedProcess, note: impl FnOnce(u32) -> String) -> u32 {
        let before = std::mem::take(&mut rec.earlier_attempts);
        self.keep(before);
        let attempt = self.attempts() + 1;
        self.earlier.push(Attempt::of(&rec, attempt, true));
        self.notes.push(note(attempt));
        attempt + 1
    }

    /// `rec`'s attempt was cut short by its host or node failing under it: kept as `broke`
    /// keeps it (`note`), and the job goes on elsewhere with the retries its attempts before
    /// left it, one fewer when this move `spend`s one. The live report says `outcome`.
    pub fn go_on(
        &mut self,
        this: &mut Cow<'_, PlannedJob>,
        rec: CompletedProcess,
        (ctx, spend): (&JobCtx, bool),
        (note, outcome): (impl FnOnce(u32) -> String, String),
    ) {
        let used = rec.earlier_attempts.len() as u32 + u32::from(spend);
        let attempt = self.broke(rec, note);
        let retry = &mut this.to_mut().retry;
        retry.retries = retry.retries.saturating_sub(used);
        let _ = ctx.events.send(Event::JobRetrying {
            index: this.index,
            attempt,
            of: attempt + this.retry.retries,
            delay: std::time::Duration::ZERO,
            outcome,
        });
    }

    fn keep(&mut self, ran: Vec<Attempt>) {
        let n = self.attempts();
        self.earlier.extend(ran.into_iter().map(|mut a| {
            a.attempt += n;
            a
        }));
    }

    /// The record of a job interrupted before it started.
    pub fn interrupted(self, job: &PlannedJob, slot: usize) -> CompletedProcess {
        let why = "not started: the run was interrupted".to_string();
        self.end(ends::not_run(job, slot, None, Status::Cancelled, why))
    }

    /// The job found no place to run on: why it could not start anywhere is its error.
    pub fn unreached(
        mut self,
        job: &PlannedJob,
        slot: usize,
        host: Option<String>,
        why: Option<String>,
    ) -> CompletedProcess {
        self.not_reached.extend(why);
        let why = std::mem::take(&mut self.not_reached).join("; ");
        self.end(ends::not_run(job, slot, host, Status::SpawnError, why))
    }

    /// The job's record, with where it went before: the places it left before it started
    /// (for a record of a run that got somewhere), then the attempts cut short.
    pub fn end(self, mut rec: CompletedProcess) -> CompletedProcess {
        let ran = rec.host.is_some() || rec.status != Status::Cancelled;
        if ran && !self.not_reached.is_empty() {
            let note = format!("moved here after: {}", self.not_reached.join("; "));
            rec.notes.insert(0, note);
        }
        if self.earlier.is_empty() {
            return rec;
        }
        rec.after_attempts(self.earlier);
        let mut notes = self.notes;
        notes.append(&mut rec.notes);
        rec.notes = notes;
        rec
    }
}
