//! The store's form of a record: the JSON of a record row leaves out what the row's columns
//! hold (job, index, status, exit code, start), a fifth of its bytes, which `store` puts back
//! when it reads the row. Only the store writes this form (`in_stored_form`); everything else
//! that serializes a record (spill files, a supervisor's report) writes it whole.

use std::cell::Cell;

thread_local! {
    static STORED_FORM: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, whose serializing of records on this thread writes the store's form.
pub fn in_stored_form<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STORED_FORM.with(|s| s.set(false));
        }
    }
    STORED_FORM.with(|s| s.set(true));
    let _reset = Reset;
    f()
}

/// Whether a field a record row's columns hold is left out: while the store writes it.
pub(super) fn column_held<T>(_: &T) -> bool {
    STORED_FORM.with(Cell::get)
}
