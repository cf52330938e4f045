//! `subprocess.run(["df", "-h", "/home"], stdout=PIPE)`, from Rust.
//!
//!     cargo run --example subprocess_run

fn main() -> Result<(), orchestrate::Error> {
    let done = orchestrate::run(["df", "-h", "/"])?;
    let rec = &done.record;
    // CompletedProcess(args=['df', '-h', '/'], returncode=0), as Python shows it.
    let args: Vec<String> = rec.args.iter().map(|a| format!("'{a}'")).collect();
    println!(
        "CompletedProcess(args=[{}], {})",
        args.join(", "),
        returncode(rec)
    );
    println!("status:     {}", rec.status);
    println!("duration:   {:?}", rec.duration);
    print!("stdout:\n{}", done.stdout_text());

    // A program that does not exist is a record, not a panic with no exit code (no process ran), as Python raises.
    let missing = orchestrate::run(["no-such-program"])?;
    println!(
        "missing:    {} ({}): {}",
        missing.record.status,
        returncode(&missing.record),
        missing.record.error.as_deref().unwrap_or("")
    );
    Ok(())
}

/// As Python shows it: `returncode=0`, or `returncode=-15` for a job killed by SIGTERM.
fn returncode(rec: &orchestrate::CompletedProcess) -> String {
    match (rec.returncode, rec.signal) {
        (Some(code), _) => format!("returncode={code}"),
        (None, Some(sig)) => format!("returncode=-{sig}"),
        (None, None) => "returncode=None".to_string(),
    }
}
