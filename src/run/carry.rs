//! The records `--resume` carries over, written into the new run as it begins: read again
//! from the run resumed a page at a time, so that carrying millions of them holds a page.

use crate::plan::resume::Carried;
use crate::record::Sealed;
use crate::store::{Result, RunStore};

/// Records read and written at a time.
pub(super) const PAGE: usize = 2048;

/// Writes into run `run_id` the records `carried` keeps of the run it resumes, each at its
/// job's place in the job file now, saying where it comes from.
pub(super) fn write(s: &mut RunStore, carried: &Carried, run_id: &str) -> Result<()> {
    let from = &carried.from;
    let mut after = None;
    loop {
        let (page, last) = s.succeeded_page(from, after.as_ref(), PAGE)?;
        let batch: Vec<Sealed> = page
            .into_iter()
            .filter_map(|mut r| {
                r.index = carried.index_of(&r.job)?;
                r.notes
                    .push(format!("succeeded in run {from}; carried over by --resume"));
                r.carried_from = Some(from.clone());
                // Read back from the store, sealed when they were first written.
                Some(Sealed::trusted(r))
            })
            .collect();
        s.record_batch(run_id, &batch)?;
        match last {
            Some(l) => after = Some(l),
            None => return Ok(()),
        }
    }
}
