//! Small text helpers every layer uses: OS error text, hashes, names made from command lines,
//! unified diffs.

/// The OS error text without Rust's " (os error 2)" suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A stable name from a command line: `df -h /home` → `df-h-home`.
pub fn slug(command: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in command.chars() {
        // The Hangul fillers are letters that show nothing: they part words like a space.
        if (c.is_alphanumeric() || c == '_' || c == '.') && !is_hidden(c) {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_matches('.').to_string();
    if out.is_empty() || out == "last" {
        "job".to_string()
    } else {
        out
    }
}

/// What changed from `old` to `new`, line by line, as a unified diff with 3 lines of context
/// under the two labels: `orchestrate diff`, and a notification's digest of a failing job.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Reads a text file the job file names (an `env_file`, an items file), refusing what could
/// hang or swamp the planner: anything but a regular file (a FIFO would block, `/dev/zero`
/// never ends) and files over `limit` bytes. Opened without blocking, so a FIFO is refused
/// rather than waited on.
pub fn read_regular_text(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    if meta.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "it is {} bytes, more than the {} MiB allowed",
                meta.len(),
                limit >> 20
            ),
        ));
    }
    let mut text = String::new();
    f.take(limit).read_to_string(&mut text)?;
    Ok(text)
}

/// Code points that print nothing, or change how the text around them reads, while taking no
/// visible room: Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15)
/// joined with the Cc and Cf general categories (UnicodeData.txt), which hold the bidi
/// controls (Bidi_Control, PropList.txt) too. Ranges are inclusive and sorted. A name holding
/// one reads on screen as another name.
const HIDDEN: &[(u32, u32)] = &[
    (0x0000, 0x001F),   // Cc: C0 controls
    (0x007F, 0x009F),   // Cc: DEL, C1 controls
    (0x00AD, 0x00AD),   // soft hyphen
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x0600, 0x0605),   // Cf: Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Cf: Arabic end of ayah
    (0x070F, 0x070F),   // Cf: Syriac abbreviation mark
    (0x0890, 0x0891),   // Cf: Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Cf: Arabic disputed end of ayah
    (0x115F, 0x1160),   // Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),   // Khmer inherent vowels
    (0x180B, 0x180F),   // Mongolian variation selectors, vowel separator
    (0x200B, 0x200F),   // zero width space, joiners, LRM, RLM
    (0x202A, 0x202E),   // bidi embeddings and overrides
    (0x2060, 0x206F),   // word joiner, invisible operators, bidi isolates, deprecated formats
    (0x3164, 0x3164),   // Hangul filler
    (0xFE00, 0xFE0F),   // variation selectors 1-16
    (0xFEFF, 0xFEFF),   // zero width no-break space (BOM)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xFFF0, 0xFFFB),   // reserved, interlinear annotation controls
    (0x110BD, 0x110BD), // Cf: Kaithi number sign
    (0x110CD, 0x110CD), // Cf: Kaithi number sign above
    (0x13430, 0x1343F), // Cf: Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol beam and phrase controls
    (0xE0000, 0xE0FFF), // tags, variation selectors 17-256, reserved
];

/// The first character of `s` that is hidden (see [`HIDDEN`]): a control character, or one
/// that shows nothing or reorders what follows.
pub fn hidden_char(s: &str) -> Option<char> {
    s.chars().find(|&c| is_hidden(c))
}

pub fn is_hidden(c: char) -> bool {
    let c = c as u32;
    HIDDEN
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// A job name as one safe path component: no `/`, no leading dot, no control characters.
pub fn job_dir_name(job: &str) -> String {
    let mut out = String::with_capacity(job.len());
    for (i, c) in job.chars().enumerate() {
        match c {
            '/' | '\\' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            '.' if i == 0 => out.push_str("%2E"),
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_ranges_are_sorted_and_cover_the_invisible_classes() {
        assert!(HIDDEN.windows(2).all(|w| w[0].1 < w[1].0));
        for c in [
            '\0',
            '\n',
            '\u{85}',
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{115f}',
            '\u{1160}',
            '\u{180e}',
            '\u{200b}',
            '\u{202e}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{3164}',
            '\u{fe00}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{ffa0}',
            '\u{e0000}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{e01ef}',
        ] {
            assert!(is_hidden(c), "{:04X}", c as u32);
        }
        for c in [
            'a',
            ' ',
            '-',
            '[',
            'é',
            '\u{a0}',
            '\u{ac00}',
            '\u{1f600}',
            '\u{10ffff}',
        ] {
            assert!(!is_hidden(c), "{:04X}", c as u32);
        }
        // A name made from a command never holds one.
        assert_eq!(slug("echo \u{3164} a\u{ffa0}b"), "echo-a-b");
        // Every control character Rust knows is among them.
        assert!(
            (0..=0x10FFFF)
                .filter_map(char::from_u32)
                .filter(|c| c.is_control())
                .all(is_hidden)
        );
    }
}
