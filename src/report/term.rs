//! Where progress bars are drawn. On a terminal, indicatif's own stderr target. With
//! `--progress always` and no terminal (CI logs, `2>&1 | tee`), indicatif draws nothing
//! (a hidden target): redrawing in place would leave carriage returns and half lines in the
//! file, and a job line would start after a bar. The reporter writes the bar there as whole
//! lines of its own instead (`Bars::forced_line`).

use std::io::IsTerminal;

use indicatif::ProgressDrawTarget;

/// Redraws per second.
const HZ: u8 = 10;

/// The draw target for bars on stderr, and whether they are forced (stderr is no terminal:
/// the reporter writes them as lines).
pub fn stderr_target() -> (ProgressDrawTarget, bool) {
    if std::io::stderr().is_terminal() {
        (ProgressDrawTarget::stderr_with_hz(HZ), false)
    } else {
        (ProgressDrawTarget::hidden(), true)
    }
}
