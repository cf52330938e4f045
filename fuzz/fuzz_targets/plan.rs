//! Job-file loading and planning must never panic, hang or blow up on any input: every byte
//! string is either a plan or a located error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match orchestrate::Plan::from_text(std::path::Path::new("fuzz.yaml"), text) {
        Ok(plan) => {
            // A plan is fully valid: names unique, needs in range, argv non-empty.
            let mut names = std::collections::HashSet::new();
            for j in &plan.jobs {
                assert!(names.insert(j.name.clone()), "duplicate name {}", j.name);
                assert!(!j.argv.is_empty() && !j.argv[0].is_empty());
                assert!(j.needed_jobs().all(|n| n < plan.jobs.len()));
            }
        }
        Err(e) => {
            // Errors render (with their caret line) without panicking.
            let _ = e.to_string();
        }
    }
});
