//! `show RUN --timeline | --junit | --csv`: a run's records in another form, and how an
//! export reads a job's output (through [`read_back`](super::read_back) only).

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::{InspectError, not_captured, read_back};
use crate::cli::args::ShowExport;
use crate::error::exit;
use crate::exec::{Readback, Stream};
use crate::record::{CompletedProcess, format_duration};
use crate::report::{self, Shown, TextStyle, Timeline};
use crate::store::RunStore;

/// Columns of a timeline when stdout is no terminal and COLUMNS is unset.
const DEFAULT_WIDTH: usize = 100;

pub(super) fn show_export(
    db: &mut RunStore,
    run: &str,
    export: ShowExport,
    out: &mut dyn Write,
) -> Result<i32, InspectError> {
    let id = db.resolve_run(run)?;
    let row = db.run(&id)?;
    // Hooks and notifications are no jobs: no bar, no test case, no joblog line.
    let recs: Vec<CompletedProcess> = db
        .records(&id)?
        .into_iter()
        .filter(|r| r.hook.is_none())
        .collect();
    let job_file = row.job_file.clone().unwrap_or_else(|| "-".to_string());
    if export.csv {
        report::write_joblog(out, &recs)?;
    } else if export.junit {
        let run = report::JunitRun {
            id: &id,
            job_file: &job_file,
            started: row.started,
            duration: row.duration().unwrap_or_default(),
        };
        let root = db.root().to_path_buf();
        let mut output = |r: &CompletedProcess| {
            [Stream::Stdout, Stream::Stderr].map(|s| shown(&root, &id, r, s, report::KEPT_BYTES))
        };
        report::write_junit(out, &run, &recs, &mut output)?;
    } else {
        writeln!(
            out,
            "run {id}  {}  {}  {}",
            report::visible(&job_file),
            row.duration().map_or("-".into(), format_duration),
            row.status
        )?;
        let tl = Timeline::new(&recs, row.started, std::time::SystemTime::now());
        report::write_timeline(out, &tl, &recs, terminal_style())?;
    }
    Ok(exit::OK)
}

/// The width and colors of a timeline on stdout: COLUMNS, else the terminal's width, else
/// [`DEFAULT_WIDTH`]; colors on a terminal unless NO_COLOR is set.
fn terminal_style() -> TextStyle {
    let tty = std::io::stdout().is_terminal();
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    let width = columns
        .or_else(|| tty.then(|| console::Term::stdout().size().1 as usize))
        .unwrap_or(DEFAULT_WIDTH);
    TextStyle {
        width,
        color: super::diff::colored(crate::cli::When::Auto),
    }
}

/// One stream of a record as an export shows it: at most its last `keep` bytes from its
/// capture file, or a note saying why there is nothing to read.
pub(super) fn shown(
    root: &Path,
    run_id: &str,
    rec: &CompletedProcess,
    stream: Stream,
    keep: u64,
) -> Shown {
    let total = stream.of(rec).bytes;
    match read_back(root, run_id, rec, stream) {
        Ok(Readback::Captured(Some(f))) => Shown::from_file(f, keep),
        Ok(Readback::Captured(None)) => Shown {
            total,
            ..Shown::default()
        },
        Ok(Readback::Elsewhere(path)) => Shown::note(total, not_captured(&rec.job, stream, &path)),
        // A job that wrote nothing, or never ran: nothing to say.
        Ok(Readback::NotKept) if total == 0 => Shown::default(),
        Ok(Readback::NotKept) => Shown::note(
            total,
            format!("the {} of this job was not kept", stream.as_str()),
        ),
        Err(e) => Shown::note(total, e.to_string()),
    }
}
