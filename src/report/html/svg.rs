//! The report's charts as inline SVG: the run's Gantt chart (a [`Timeline`]: a row per slot
//! or host, a bar per attempt, failures red, the critical path outlined, each bar a link to
//! its job's output) and the sparkline of a job's duration over its past runs.

use std::fmt::Write as _;
use std::time::Duration;

use super::PastRun;
use crate::record::{CompletedProcess, format_duration};
use crate::report::escape::html;
use crate::report::timeline::Timeline;

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 140.0;
const ROW: f64 = 22.0;
const TOP: f64 = 22.0;

/// The Gantt chart. `anchor` names the output section of a record (by its position).
pub fn gantt(tl: &Timeline, recs: &[CompletedProcess], anchor: &dyn Fn(usize) -> String) -> String {
    let height = TOP + ROW * tl.lanes.len() as f64 + 6.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"gantt\" id=\"gantt\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let plot = WIDTH - LABEL - 10.0;
    let x = |d: Duration| LABEL + d.as_secs_f64() / tl.span.as_secs_f64().max(1e-9) * plot;
    for q in 0..=4u32 {
        let at = tl.span * q / 4;
        let anchor_end = if q == 4 { " text-anchor=\"end\"" } else { "" };
        let _ = write!(
            s,
            "<line class=\"tick\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{height}\"/><text x=\"{0:.1}\" y=\"14\"{anchor_end}>{1}</text>",
            x(at),
            format_duration(at)
        );
    }
    for (row, lane) in tl.lanes.iter().enumerate() {
        let y = TOP + ROW * row as f64 + 3.0;
        let _ = write!(
            s,
            "<g class=\"lane\"><text class=\"lane-label\" x=\"4\" y=\"{:.1}\">{}</text>",
            y + 12.0,
            html(&lane.label)
        );
        for b in &lane.bars {
            let rec = &recs[b.rec];
            let mut class = String::from("bar");
            for (on, name) in [
                (b.failed(), " failed"),
                (b.earlier, " attempt"),
                (b.critical, " critical"),
            ] {
                if on {
                    class.push_str(name);
                }
            }
            let (x0, x1) = (x(b.start), x(b.end));
            let what = if b.earlier { "earlier attempt, " } else { "" };
            let _ = write!(
                s,
                "<a href=\"#{}\"><rect class=\"{class}\" data-job=\"{}\" x=\"{x0:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{:.1}\"><title>{}: {what}{} in {}</title></rect></a>",
                anchor(b.rec),
                html(&rec.job),
                (x1 - x0).max(1.5),
                ROW - 6.0,
                html(&rec.job),
                b.status.label(),
                format_duration(b.end.saturating_sub(b.start)),
            );
            // The name inside the bar where it fits (about 7 units a character).
            if !b.earlier && x1 - x0 > 7.0 * rec.job.chars().count() as f64 + 8.0 {
                let _ = write!(
                    s,
                    "<text class=\"bar-label\" x=\"{:.2}\" y=\"{:.1}\">{}</text>",
                    x0 + 4.0,
                    y + 12.0,
                    html(&rec.job)
                );
            }
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// A job's duration over its past runs, oldest first: a line, a dot per run (red where it
/// failed), this run's dot outlined.
pub fn sparkline(past: &[PastRun]) -> String {
    if past.is_empty() {
        return String::new();
    }
    let (w, h) = (100.0, 24.0);
    let most = past.iter().map(|p| p.duration).max().unwrap_or_default();
    let most = most.as_secs_f64().max(1e-3);
    let step = if past.len() > 1 {
        (w - 6.0) / (past.len() - 1) as f64
    } else {
        0.0
    };
    let pt = |i: usize, d: Duration| {
        (
            3.0 + step * i as f64,
            h - 3.0 - d.as_secs_f64() / most * (h - 6.0),
        )
    };
    let mut title = format!("duration in the last {} runs:", past.len());
    let mut points = String::new();
    let mut dots = String::new();
    for (i, p) in past.iter().enumerate() {
        let (x, y) = pt(i, p.duration);
        let _ = write!(points, "{x:.1},{y:.1} ");
        let mut class = String::new();
        if p.status.is_failure() {
            class.push_str("failed ");
        }
        if p.this {
            class.push_str("now");
        }
        let _ = write!(
            dots,
            "<circle class=\"{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{}\"/>",
            class.trim_end(),
            if p.this { 2.6 } else { 1.6 }
        );
        let _ = write!(title, " {}", format_duration(p.duration));
    }
    format!(
        "<svg class=\"spark\" data-runs=\"{}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title><polyline points=\"{}\"/>{dots}</svg>",
        past.len(),
        html(&title),
        points.trim_end()
    )
}
