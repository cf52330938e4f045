//! `show RUN --csv`: a run as GNU parallel's `--joblog` has it (Seq, Host, Starttime,
//! JobRuntime, Send, Receive, Exitval, Signal, Command), as CSV with a header row. As in
//! parallel's log, only jobs that ran are listed, a local job's host is `:`, times are
//! seconds with three decimals, Receive counts stdout bytes, and a job killed by a signal has
//! Exitval 0 and the signal's number (a job with neither, -1).

use std::io::{self, Write};

use super::escape::csv;
use crate::record::CompletedProcess;

pub const HEADER: [&str; 9] = [
    "Seq",
    "Host",
    "Starttime",
    "JobRuntime",
    "Send",
    "Receive",
    "Exitval",
    "Signal",
    "Command",
];

/// Writes the header, then a row for each record of a job that ran in this run (hooks are
/// best left out). A record `--resume` carried over ran in the earlier run, and is in that
/// run's log, as parallel's `--resume` leaves the earlier lines where they are.
pub fn write_joblog(out: &mut dyn Write, recs: &[CompletedProcess]) -> io::Result<()> {
    writeln!(out, "{}", HEADER.join(","))?;
    for r in recs.iter().filter(|r| super::timeline::ran(r)) {
        writeln!(out, "{}", row(r).map(|c| csv(&c)).join(","))?;
    }
    Ok(())
}

fn row(r: &CompletedProcess) -> [String; 9] {
    let start = r
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let exitval = match (r.returncode, r.signal) {
        (Some(code), _) => code,
        (None, Some(_)) => 0,
        (None, None) => -1,
    };
    [
        (r.index + 1).to_string(),
        r.host.clone().unwrap_or_else(|| ":".to_string()),
        format!("{:.3}", start.as_secs_f64()),
        format!("{:.3}", r.duration.as_secs_f64()),
        "0".to_string(),
        r.stdout.bytes.to_string(),
        exitval.to_string(),
        r.signal.unwrap_or(0).to_string(),
        shell_words::join(&r.args),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Status, from_millis};

    #[test]
    fn rows_are_parallels_columns_quoted_as_csv() {
        let mut r = CompletedProcess::not_started(
            "a",
            4,
            vec!["sh".into(), "-c".into(), "echo a,b".into()],
            Status::Failed,
            String::new(),
        );
        r.attempts = 1;
        r.started = from_millis(1_700_000_000_123);
        r.duration = std::time::Duration::from_millis(2500);
        r.signal = Some(9);
        r.stdout.bytes = 12;
        let mut out = Vec::new();
        write_joblog(&mut out, &[r]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Seq,Host,Starttime,JobRuntime,Send,Receive,Exitval,Signal,Command\n\
             5,:,1700000000.123,2.500,0,12,0,9,\"sh -c 'echo a,b'\"\n"
        );
    }
}
