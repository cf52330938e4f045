//! Run a whole job file from Rust, as `orchestrate FILE` would, and use the exit code.
//!
//!     cargo run --example run_file -- jobs/demo.yaml

use std::path::PathBuf;

fn main() {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("jobs/demo.yaml"));
    let opts = orchestrate::RunOptions {
        // Keep this run out of the history; capture to a temporary folder.
        store: false,
        keep_records: true,
        ..Default::default()
    };
    match orchestrate::run_file(&path, opts) {
        Ok(outcome) => {
            for (rec, _) in &outcome.records {
                println!("{:<20} {:<10} {}", rec.job, rec.status, rec.outcome());
            }
            std::process::exit(outcome.exit_code);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
