//! Job output tagged with its job's name, line by line, as GNU parallel's `--tag` does:
//! `NAME<TAB>line`. `--output stream` always tags; `all` and `ordered` do with `--tag`.

/// Tags the lines of a stream read piece by piece. `at_start` says whether the next byte
/// begins a line; it carries across pieces.
pub(super) struct Tagger<'a> {
    name: &'a [u8],
    at_start: bool,
}

impl<'a> Tagger<'a> {
    pub(super) fn new(name: &'a str) -> Self {
        Tagger {
            name: name.as_bytes(),
            at_start: true,
        }
    }

    /// `piece` with each line that starts in it prefixed.
    pub(super) fn piece(&mut self, piece: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(piece.len() + self.name.len() + 1);
        for part in piece.split_inclusive(|&b| b == b'\n') {
            if self.at_start {
                out.extend_from_slice(self.name);
                out.push(b'\t');
            }
            out.extend_from_slice(part);
            self.at_start = part.ends_with(b"\n");
        }
        out
    }

    /// What ends the stream: a newline after a last line that had none, so that the next
    /// job's tag starts a line of its own.
    pub(super) fn end(&self) -> &'static [u8] {
        if self.at_start { b"" } else { b"\n" }
    }
}

/// One whole line (without its newline) tagged, newline included.
pub(super) fn line(name: &str, line: &[u8]) -> Vec<u8> {
    let mut t = Tagger::new(name);
    let mut out = t.piece(line);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_tagged_across_pieces() {
        let mut t = Tagger::new("sq[1]");
        let mut out = t.piece(b"one\ntw");
        out.extend(t.piece(b"o\nthree"));
        out.extend_from_slice(t.end());
        assert_eq!(out, b"sq[1]\tone\nsq[1]\ttwo\nsq[1]\tthree\n");
        let t = Tagger::new("x");
        assert_eq!(t.end(), b"");
        assert_eq!(line("a", b"hi"), b"a\thi\n");
    }
}
