//! Plain-text tables for the inspection commands, and paths shown short.

use std::io::Write;
use std::path::Path;

/// A path under the current folder, relative to it; any other as it is.
pub(super) fn short_path(p: &str) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = Path::new(p).strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    p.to_string()
}

/// Rows in columns two spaces apart, the first row being the header; the last column is not
/// padded.
pub(super) fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
