//! The report's table of records: a row per record with the values it sorts by in `data-*`
//! attributes (the page's script reads only those), and a status filter listing the run's
//! statuses.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::SystemTime;

use super::{PageJob, anchor, svg};
use crate::record::{Status, format_duration};
use crate::report::escape::html;

/// The sortable columns: key, heading, numeric.
const COLUMNS: [(&str, &str, bool); 8] = [
    ("index", "#", true),
    ("job", "Job", false),
    ("status", "Status", false),
    ("outcome", "Outcome", false),
    ("start", "Start", true),
    ("duration", "Duration", true),
    ("attempts", "Attempts", true),
    ("place", "Slot / host", false),
];

pub(super) fn write_table(
    out: &mut dyn Write,
    jobs: &[PageJob],
    origin: SystemTime,
) -> io::Result<()> {
    writeln!(out, "<section id=\"records\"><h2>Jobs</h2>")?;
    let statuses: BTreeSet<Status> = jobs.iter().map(|j| j.rec.status).collect();
    write!(
        out,
        "<p class=\"controls\"><label>Status <select id=\"status-filter\"><option value=\"\">all</option><option value=\"failures\">any failure</option>"
    )?;
    for s in statuses {
        write!(
            out,
            "<option value=\"{}\">{}</option>",
            s.as_str(),
            html(s.label())
        )?;
    }
    writeln!(out, "</select></label> <span id=\"shown\"></span></p>")?;
    write!(out, "<table id=\"jobs\"><thead><tr>")?;
    for (key, head, num) in COLUMNS {
        let ty = if num { " data-type=\"num\"" } else { "" };
        write!(out, "<th data-key=\"{key}\"{ty}>{head}</th>")?;
    }
    writeln!(out, "<th>History</th><th>Command</th></tr></thead><tbody>")?;
    for (k, j) in jobs.iter().enumerate() {
        write_row(out, k, j, origin)?;
    }
    writeln!(out, "</tbody></table></section>")
}

fn write_row(out: &mut dyn Write, k: usize, j: &PageJob, origin: SystemTime) -> io::Result<()> {
    let r = &j.rec;
    let start = r.started.duration_since(origin).unwrap_or_default();
    let outcome = crate::report::outcome_text(r.returncode, r.signal);
    let place = match (&r.host, r.slot) {
        (Some(h), _) => h.clone(),
        (None, Some(s)) => format!("slot {s}"),
        (None, None) => "-".to_string(),
    };
    let status = crate::report::status_text(r.status.label(), r.flaky, r.carried_from.is_some());
    let fail = r.status.is_failure();
    let class = if fail {
        "st fail"
    } else if r.status == Status::Succeeded {
        "st"
    } else {
        "st other"
    };
    let hook = if r.hook.is_some() {
        " <small>(hook)</small>"
    } else {
        ""
    };
    writeln!(
        out,
        "<tr data-index=\"{k}\" data-job=\"{}\" data-status=\"{}\" data-failure=\"{}\" data-outcome=\"{}\" data-start=\"{:.3}\" data-duration=\"{:.3}\" data-attempts=\"{}\" data-place=\"{}\"><td class=\"num\">{}</td><td><a href=\"#{}\">{}</a>{hook}</td><td><span class=\"{class}\">{}</span></td><td>{}</td><td class=\"num\">+{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"cmd\"><code>{}</code></td></tr>",
        html(&r.job),
        r.status.as_str(),
        u8::from(fail),
        html(&outcome),
        start.as_secs_f64(),
        r.duration.as_secs_f64(),
        r.attempts,
        html(&place),
        if r.hook.is_some() {
            "hook".to_string()
        } else {
            r.index.to_string()
        },
        anchor(k),
        html(&r.job),
        html(&status),
        html(&outcome),
        html(&format_duration(start)),
        html(&format_duration(r.duration)),
        r.attempts,
        html(&place),
        svg::sparkline(&j.history),
        html(&shell_words::join(&r.args)),
    )
}
