//! `show RUN --timeline` on a terminal: a row per lane of a [`Timeline`], each attempt a bar
//! scaled to the width, a time axis, and a legend; failures and the critical path drawn with
//! characters of their own (and colors, when asked), so that they show in a log too.

use std::io::{self, Write};
use std::time::Duration;

use super::timeline::{Bar, Timeline};
use super::visible;
use crate::record::{CompletedProcess, format_duration};

/// How the chart is drawn.
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    /// Columns in all, label included.
    pub width: usize,
    pub color: bool,
}

const OK: char = '=';
const FAILED: char = 'x';
const CRITICAL: char = '#';
/// Lists of names (failed, not run) stop after this many.
const LISTED: usize = 10;

pub fn write_timeline(
    out: &mut dyn Write,
    tl: &Timeline,
    recs: &[CompletedProcess],
    style: TextStyle,
) -> io::Result<()> {
    if tl.lanes.is_empty() {
        writeln!(
            out,
            "(no job of this run started a process: nothing to draw)"
        )?;
        return write_lists(out, tl, recs);
    }
    let label_w = tl
        .lanes
        .iter()
        .map(|l| visible(&l.label).chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let axis_w = style.width.saturating_sub(label_w + 2).max(10);
    writeln!(out, "{:label_w$}  {}", "", axis_labels(tl.span, axis_w))?;
    for lane in &tl.lanes {
        let label: String = visible(&lane.label).chars().take(label_w).collect();
        let cells = draw_lane(&lane.bars, tl.span, axis_w);
        writeln!(out, "{label:<label_w$} │{}", paint(&cells, style.color))?;
    }
    writeln!(out, "{:label_w$} └{}", "", "─".repeat(axis_w))?;
    writeln!(
        out,
        "legend: |{OK}{OK}{OK} succeeded  |{FAILED}{FAILED}{FAILED} failed  |{CRITICAL}{CRITICAL}{CRITICAL} critical path (|{X}{X}{X} failed on it)",
        X = FAILED.to_ascii_uppercase()
    )?;
    if !tl.critical.is_empty() {
        let names: Vec<String> = tl.critical.iter().map(|&i| visible(&recs[i].job)).collect();
        let took = tl
            .critical_span(recs)
            .map_or(String::new(), |d| format!(" ({})", format_duration(d)));
        writeln!(out, "critical path: {}{took}", names.join(" → "))?;
    }
    write_lists(out, tl, recs)
}

/// The failed jobs and the jobs that never ran, by name.
fn write_lists(out: &mut dyn Write, tl: &Timeline, recs: &[CompletedProcess]) -> io::Result<()> {
    let failed: Vec<String> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status.is_failure() && r.attempts > 0)
        .map(|(_, r)| {
            // A job that could not start has no exit code: its status says what became of it.
            let how = match super::outcome_text(r.returncode, r.signal) {
                o if o == "-" => r.status.label().to_string(),
                o => o,
            };
            format!("{} ({how})", visible(&r.job))
        })
        .collect();
    let not_run: Vec<String> = tl
        .not_run
        .iter()
        .map(|&i| format!("{} ({})", visible(&recs[i].job), recs[i].status.label()))
        .collect();
    let carried = tl.carried_by_run(recs).into_iter().map(|(from, names)| {
        let names: Vec<String> = names.into_iter().map(visible).collect();
        (format!("carried from run {from}"), names)
    });
    let lists = [
        ("failed".to_string(), failed),
        ("not run".to_string(), not_run),
    ];
    for (what, names) in lists.into_iter().chain(carried) {
        if names.is_empty() {
            continue;
        }
        let more = names.len().saturating_sub(LISTED);
        let shown = names
            .into_iter()
            .take(LISTED)
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            writeln!(out, "{what}: {shown}, and {more} more")?;
        } else {
            writeln!(out, "{what}: {shown}")?;
        }
    }
    Ok(())
}

/// `0s` at the left, the span at the right, and quarter marks between where they fit.
fn axis_labels(span: Duration, width: usize) -> String {
    let mut line: Vec<char> = vec![' '; width];
    // The ends first: a quarter mark gives way to them.
    for q in [0u32, 4, 2, 1, 3] {
        let text = format_duration(span * q / 4);
        let len = text.chars().count();
        let at = (width * q as usize / 4).min(width.saturating_sub(len));
        let at = if q == 2 {
            at.saturating_sub(len / 2)
        } else {
            at
        };
        let free = line[at.saturating_sub(1)..(at + len + 1).min(width)]
            .iter()
            .all(|c| *c == ' ');
        if free && at + len <= width {
            for (k, c) in text.chars().enumerate() {
                line[at + k] = c;
            }
        }
    }
    line.into_iter().collect::<String>().trim_end().to_string()
}

/// What one cell of a lane shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Empty,
    /// The first cell of a bar (`|`), so that bars that touch stay apart.
    Start(Kind),
    Fill(Kind),
    Name(char, Kind),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ok,
    Failed,
    Critical,
    CriticalFailed,
}

impl Kind {
    fn of(b: &Bar) -> Kind {
        match (b.critical, b.failed()) {
            (true, true) => Kind::CriticalFailed,
            (true, false) => Kind::Critical,
            (false, true) => Kind::Failed,
            (false, false) => Kind::Ok,
        }
    }

    fn fill(self) -> char {
        match self {
            Kind::Ok => OK,
            Kind::Failed => FAILED,
            Kind::Critical => CRITICAL,
            Kind::CriticalFailed => FAILED.to_ascii_uppercase(),
        }
    }

    fn ansi(self) -> &'static str {
        match self {
            Kind::Ok => "\x1b[32m",
            Kind::Failed => "\x1b[31m",
            Kind::Critical => "\x1b[1;33m",
            Kind::CriticalFailed => "\x1b[1;31m",
        }
    }
}

/// The cells of one lane: each bar from its start column to its end column (at least one
/// cell), its name written into it where the bar has room for the name and some fill.
fn draw_lane(bars: &[Bar], span: Duration, width: usize) -> Vec<Cell> {
    let mut cells = vec![Cell::Empty; width];
    let at = |d: Duration| d.as_secs_f64() / span.as_secs_f64().max(1e-9) * width as f64;
    for b in bars {
        let kind = Kind::of(b);
        let c0 = (at(b.start).floor() as usize).min(width - 1);
        let c1 = (at(b.end).ceil() as usize).clamp(c0 + 1, width);
        let len = c1 - c0;
        for cell in &mut cells[c0..c1] {
            *cell = Cell::Fill(kind);
        }
        if len >= 2 {
            cells[c0] = Cell::Start(kind);
        }
        let name: Vec<char> = visible(&b.job).chars().collect();
        if !b.earlier && len >= name.len() + 4 {
            for (k, ch) in name.into_iter().enumerate() {
                cells[c0 + 2 + k] = Cell::Name(ch, kind);
            }
        }
    }
    cells
}

fn paint(cells: &[Cell], color: bool) -> String {
    let mut out = String::with_capacity(cells.len() * 2);
    let mut current: Option<Kind> = None;
    for cell in cells {
        let (ch, kind) = match *cell {
            Cell::Empty => (' ', None),
            Cell::Start(k) => ('|', Some(k)),
            Cell::Fill(k) => (k.fill(), Some(k)),
            Cell::Name(c, k) => (c, Some(k)),
        };
        if color && kind != current {
            out.push_str(kind.map_or("\x1b[0m", Kind::ansi));
            current = kind;
        }
        out.push(ch);
    }
    if color && current.is_some() {
        out.push_str("\x1b[0m");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Status;

    fn bar(job: &str, from: u64, to: u64, status: Status, critical: bool) -> Bar {
        Bar {
            rec: 0,
            job: job.into(),
            start: Duration::from_secs(from),
            end: Duration::from_secs(to),
            status,
            earlier: false,
            critical,
        }
    }

    #[test]
    fn bars_scale_to_the_width_and_show_how_they_ended() {
        let bars = [
            bar("build", 0, 5, Status::Succeeded, true),
            bar("t", 5, 10, Status::Failed, false),
        ];
        let line = paint(&draw_lane(&bars, Duration::from_secs(10), 20), false);
        assert_eq!(line, "|#build###|xtxxxxxxx");
        let colored = paint(&draw_lane(&bars, Duration::from_secs(10), 20), true);
        assert!(colored.contains("\x1b[31m|xtxxxxxxx"), "{colored:?}");
    }

    #[test]
    fn the_axis_names_its_ends() {
        let axis = axis_labels(Duration::from_secs(8), 40);
        assert!(axis.starts_with("0ms"), "{axis}");
        assert!(axis.ends_with("8.00s"), "{axis}");
        assert!(axis.contains("4.00s"), "{axis}");
    }
}
