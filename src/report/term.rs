//! Where progress bars are drawn. On a terminal, indicatif's own stderr target; with
//! `--progress always` and no terminal (CI logs, `2>&1 | tee`), a target that draws anyway:
//! indicatif hides its stderr target there, and with it every line printed above the bars.
//! On that target the reporter writes its lines itself, with the bars cleared (`Bars::forced`).

use std::io::IsTerminal;

use indicatif::{ProgressDrawTarget, TermLike};

/// Redraws per second.
const HZ: u8 = 10;

/// The draw target for bars on stderr, whether or not it is a terminal, and whether it is
/// forced (stderr is no terminal).
pub fn stderr_target() -> (ProgressDrawTarget, bool) {
    if std::io::stderr().is_terminal() {
        (ProgressDrawTarget::stderr_with_hz(HZ), false)
    } else {
        let forced = Forced(console::Term::stderr());
        (
            ProgressDrawTarget::term_like_with_hz(Box::new(forced), HZ),
            true,
        )
    }
}

/// stderr as a terminal of the default size, for a reader that replays escape codes (a CI
/// log viewer) or does not mind them.
#[derive(Debug)]
struct Forced(console::Term);

impl TermLike for Forced {
    fn width(&self) -> u16 {
        self.0.size().1
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}
