//! `subprocess.run(["df", "-h", "/home"], stdout=PIPE)`, from Rust.
//!
//!     cargo run --example subprocess_run

fn main() -> Result<(), orchestrate::Error> {
    let done = orchestrate::run(["df", "-h", "/"])?;
    let rec = &done.record;
    println!("args:       {:?}", rec.args);
    println!("returncode: {:?}", rec.returncode);
    println!("status:     {}", rec.status);
    println!("duration:   {:?}", rec.duration);
    print!("stdout:\n{}", done.stdout_text());

    // A program that does not exist is a record, not a panic (the shell would say 127).
    let missing = orchestrate::run(["no-such-program"])?;
    println!(
        "missing:    {} ({:?}): {}",
        missing.record.status,
        missing.record.returncode,
        missing.record.error.as_deref().unwrap_or("")
    );
    Ok(())
}
