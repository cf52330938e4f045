//! `orchestrate report RUN -o run.html`: one self-contained page (no external script, style,
//! font or image) with the run's Gantt chart, its records in a table that sorts and filters,
//! each job's output, and each job's duration over its past runs. Every text from the run
//! (names, arguments, output, errors) is escaped (`report::escape`); the only script is the
//! page's own (`assets::SCRIPT`), which holds no data.

mod assets;
mod svg;
mod table;

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use super::escape::{html, html_lines};
use super::shown::Shown;
use super::timeline::Timeline;
use crate::record::{CompletedProcess, Status, format_duration, format_time};

/// The run the page is about.
#[derive(Debug, Clone)]
pub struct PageRun {
    pub id: String,
    pub job_file: Option<String>,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    pub status: String,
    /// The jobs counted by status, as `runs` says it (`3 succeeded, 1 failed`).
    pub counts: String,
}

/// One record with what the page shows of it.
#[derive(Debug, Clone)]
pub struct PageJob {
    pub rec: CompletedProcess,
    pub stdout: Shown,
    pub stderr: Shown,
    /// The job's past runs in runs of the same job file, oldest first, this one included.
    pub history: Vec<PastRun>,
}

/// One earlier (or this) run of a job, for its sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRun {
    pub duration: Duration,
    pub status: Status,
    /// The run the page is about.
    pub this: bool,
}

/// Writes the page. Hooks' records may be among `jobs`: they are listed and their output
/// shown, but they are no bars on the timeline.
pub fn write_html(out: &mut dyn Write, run: &PageRun, jobs: &[PageJob]) -> io::Result<()> {
    // Timeline positions index `job_recs`; the page's anchors go by position in `jobs`.
    let positions: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].rec.hook.is_none())
        .collect();
    let job_recs: Vec<CompletedProcess> = positions.iter().map(|&i| jobs[i].rec.clone()).collect();
    let now = SystemTime::now();
    let tl = Timeline::new(&job_recs, run.started, now);
    let title = format!("orchestrate run {}", run.id);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{}</style></head><body>\n",
        html(&title),
        assets::STYLE
    )?;
    write_header(out, run)?;
    writeln!(out, "<section id=\"timeline\"><h2>Timeline</h2>")?;
    if tl.lanes.is_empty() {
        writeln!(
            out,
            "<p class=\"note\">No job of this run started a process.</p>"
        )?;
    } else {
        let link = |i: usize| anchor(positions[i]);
        writeln!(out, "{}", svg::gantt(&tl, &job_recs, &link))?;
    }
    write_legend(out, &tl, &job_recs)?;
    writeln!(out, "</section>")?;
    table::write_table(out, jobs, run.started)?;
    writeln!(out, "<section id=\"output\"><h2>Output</h2>")?;
    for (k, j) in jobs.iter().enumerate() {
        write_output(out, k, j)?;
    }
    writeln!(out, "</section>")?;
    write!(out, "<script>{}</script>\n</body></html>\n", assets::SCRIPT)
}

/// The id of the output section of the job at position `k` on the page.
fn anchor(k: usize) -> String {
    format!("job-{k}")
}

fn write_header(out: &mut dyn Write, run: &PageRun) -> io::Result<()> {
    let took = run
        .ended
        .and_then(|e| e.duration_since(run.started).ok())
        .map_or("still running".to_string(), format_duration);
    let failed = run.status != "succeeded" && run.status != "running";
    writeln!(
        out,
        "<header><h1>Run <code>{}</code></h1><p class=\"meta\"><span>job file <code>{}</code></span><span>started {}</span><span>took {}</span><span class=\"st{}\" id=\"run-status\">{}</span><span>{}</span></p></header>",
        html(&run.id),
        html(run.job_file.as_deref().unwrap_or("-")),
        html(&format_time(run.started)),
        html(&took),
        if failed { " fail" } else { "" },
        html(&run.status),
        html(&run.counts)
    )
}

fn write_legend(out: &mut dyn Write, tl: &Timeline, recs: &[CompletedProcess]) -> io::Result<()> {
    write!(
        out,
        "<p class=\"legend\"><span><svg class=\"swatch\" viewBox=\"0 0 10 6\"><rect class=\"bar\" width=\"10\" height=\"6\"/></svg>succeeded</span><span><svg class=\"swatch\" viewBox=\"0 0 10 6\"><rect class=\"bar failed\" width=\"10\" height=\"6\"/></svg>failed (pale: an earlier attempt)</span><span><svg class=\"swatch\" viewBox=\"0 0 10 6\"><rect class=\"bar critical\" width=\"10\" height=\"6\"/></svg>critical path of needs</span></p>"
    )?;
    if !tl.critical.is_empty() {
        let names: Vec<String> = tl.critical.iter().map(|&i| html(&recs[i].job)).collect();
        let took = tl
            .critical_span(recs)
            .map_or(String::new(), |d| format!(" ({})", format_duration(d)));
        writeln!(
            out,
            "<p id=\"critical-path\">Critical path: {}{took}</p>",
            names.join(" → ")
        )?;
    }
    for (from, names) in tl.carried_by_run(recs) {
        let names: Vec<String> = names.into_iter().map(html).collect();
        writeln!(
            out,
            "<p class=\"carried\">Carried from run <code>{}</code> (not run again, not on the timeline): {}</p>",
            html(from),
            names.join(", ")
        )?;
    }
    Ok(())
}

/// A job's stdout and stderr, open when it failed.
fn write_output(out: &mut dyn Write, k: usize, j: &PageJob) -> io::Result<()> {
    let r = &j.rec;
    let fail = r.status.is_failure();
    let hook = r
        .hook
        .as_ref()
        .map_or(String::new(), |h| format!(" (hook: {})", html(h)));
    writeln!(
        out,
        "<details id=\"{}\" class=\"job{}\"{}><summary>{}{hook} — <span class=\"st{}\">{}</span> {}</summary>",
        anchor(k),
        if fail { " fail" } else { "" },
        if fail { " open" } else { "" },
        html(&r.job),
        if fail { " fail" } else { "" },
        html(r.status.label()),
        html(&super::outcome_text(r.returncode, r.signal))
    )?;
    writeln!(
        out,
        "<p><code class=\"args\">{}</code></p>",
        html(&shell_words::join(&r.args))
    )?;
    if let Some(e) = &r.error {
        writeln!(out, "<p class=\"error\">{}</p>", html(e))?;
    }
    if r.attempts == 0 {
        writeln!(out, "<p class=\"note\">It never started a process.</p>")?;
        return writeln!(out, "</details>");
    }
    for (name, s) in [("stdout", &j.stdout), ("stderr", &j.stderr)] {
        write!(out, "<h4>{name} <small>({} bytes)</small></h4>", s.total)?;
        if let Some(remark) = s.remark() {
            write!(out, "<p class=\"note\">{}</p>", html(&remark))?;
        }
        if !s.text.is_empty() {
            write!(
                out,
                "<pre class=\"stream {name}\">{}</pre>",
                html_lines(&s.text)
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "</details>")
}
