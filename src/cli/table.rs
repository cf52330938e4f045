//! Plain-text tables for the inspection commands, and paths shown short.

use std::io::Write;
use std::path::Path;

/// A stored (absolute) path shown short, in a form that never reads as a wrong relative
/// path: `./…` under the current folder, `~/…` under $HOME, any other as it is.
pub(super) fn short_path(p: &str) -> String {
    let path = Path::new(p);
    if !path.is_absolute() {
        return p.to_string();
    }
    let under = |dir: &Path, lead: &str| {
        let rel = path.strip_prefix(dir).ok()?;
        // From `/` every path is "under" it: the absolute one reads better.
        (!rel.as_os_str().is_empty() && dir.is_absolute() && dir.parent().is_some())
            .then(|| format!("{lead}/{}", rel.display()))
    };
    if let Ok(cwd) = std::env::current_dir()
        && let Some(s) = under(&cwd, ".")
    {
        return s;
    }
    let home = std::env::var_os("HOME");
    if let Some(home) = home
        && let Some(s) = under(Path::new(&home), "~")
    {
        return s;
    }
    p.to_string()
}

/// Rows in columns two spaces apart, the first row being the header; the last column is not
/// padded.
pub(super) fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths = Vec::new();
    for r in rows {
        widen(&mut widths, r);
    }
    for r in rows {
        writeln!(out, "{}", table_line(r, &widths))?;
    }
    Ok(())
}

/// Makes `widths` hold each column's widest cell so far, `row` included: a table streamed
/// row by row takes its widths in a first pass.
pub(super) fn widen(widths: &mut Vec<usize>, row: &[String]) {
    if widths.len() < row.len() {
        widths.resize(row.len(), 0);
    }
    for (w, cell) in widths.iter_mut().zip(row) {
        *w = (*w).max(cell.chars().count());
    }
}

/// One row laid out in `widths`: every column padded to its widest cell, then two spaces.
pub(super) fn table_line(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (c, cell) in row.iter().enumerate() {
        line.push_str(cell);
        if c + 1 < row.len() {
            let w = widths.get(c).copied().unwrap_or(0);
            line.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
    }
    line.trim_end().to_string()
}
