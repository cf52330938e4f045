//! Where a node of a job file stands, found by parsing the YAML again with positions.

/// One step of a path into the YAML document, to find where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Line and column (1-based) of the node at `path`, found with a parser that keeps positions.
/// Used for errors found after deserialization (duplicate names, bad command lines), which are
/// rare, so the second parse costs nothing on the happy path.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    enum Frame {
        Map { key: Option<String>, want_key: bool },
        Seq { next: usize },
    }
    struct Finder<'p> {
        target: &'p [Seg],
        stack: Vec<Frame>,
        found: Option<(usize, usize)>,
        first_key: bool,
    }
    impl Finder<'_> {
        /// The path of the node that starts now; `None` when the event is a mapping key.
        fn node_path(&mut self) -> Option<Vec<Seg>> {
            let mut path = Vec::with_capacity(self.stack.len());
            let n = self.stack.len();
            for (i, f) in self.stack.iter().enumerate() {
                let last = i + 1 == n;
                match f {
                    Frame::Map { key, want_key } => {
                        if last && *want_key {
                            return None;
                        }
                        let k = key.clone().unwrap_or_default();
                        let seg = self
                            .target
                            .iter()
                            .find_map(|s| match s {
                                Seg::Key(t) if *t == k => Some(Seg::Key(t)),
                                _ => None,
                            })
                            .unwrap_or(Seg::Key(""));
                        path.push(seg);
                    }
                    Frame::Seq { next } => path.push(Seg::Index(*next)),
                }
            }
            Some(path)
        }
        fn value_done(&mut self) {
            match self.stack.last_mut() {
                Some(Frame::Map { want_key, .. }) => *want_key = true,
                Some(Frame::Seq { next }) => *next += 1,
                None => {}
            }
        }
    }
    impl MarkedEventReceiver for Finder<'_> {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.found.is_some() {
                return;
            }
            match ev {
                Event::Scalar(s, ..) => {
                    if self.first_key {
                        self.found = Some((mark.line(), mark.col() + 1));
                        return;
                    }
                    if let Some(Frame::Map { key, want_key }) = self.stack.last_mut()
                        && *want_key
                    {
                        *key = Some(s);
                        *want_key = false;
                        return;
                    }
                    if self.node_path().as_deref() == Some(self.target) {
                        self.found = Some((mark.line(), mark.col() + 1));
                    }
                    self.value_done();
                }
                Event::Alias(_) => {
                    if let Some(Frame::Map { want_key, .. }) = self.stack.last_mut()
                        && *want_key
                    {
                        *want_key = false;
                        return;
                    }
                    self.value_done();
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if let Some(Frame::Map { want_key: true, .. }) = self.stack.last() {
                        // A complex key: treat it as a value-less key.
                        if let Some(Frame::Map { want_key, .. }) = self.stack.last_mut() {
                            *want_key = false;
                        }
                    } else if self.node_path().as_deref() == Some(self.target) {
                        if matches!(ev, Event::MappingStart(..)) {
                            // A block mapping's own mark is not where it starts on the line;
                            // its first key is.
                            self.first_key = true;
                        } else {
                            self.found = Some((mark.line(), mark.col() + 1));
                        }
                    }
                    self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                        Frame::Map {
                            key: None,
                            want_key: true,
                        }
                    } else {
                        Frame::Seq { next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.stack.pop();
                    self.value_done();
                }
                _ => {}
            }
        }
    }

    let mut finder = Finder {
        target: path,
        stack: Vec::new(),
        found: None,
        first_key: false,
    };
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut finder, false);
    finder.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_jobs_and_keys() {
        let text = "concurrency: 2\njobs:\n  - true\n  - name: b\n    command: echo 'x\n";
        assert_eq!(
            locate(text, &[Seg::Key("jobs"), Seg::Index(0)]),
            Some((3, 5))
        );
        assert_eq!(
            locate(text, &[Seg::Key("jobs"), Seg::Index(1)]),
            Some((4, 5))
        );
        assert_eq!(
            locate(
                text,
                &[Seg::Key("jobs"), Seg::Index(1), Seg::Key("command")]
            ),
            Some((5, 14))
        );
    }

    #[test]
    fn finds_in_top_level_list() {
        let text = "- true\n- false\n";
        assert_eq!(locate(text, &[Seg::Index(1)]), Some((2, 3)));
    }
}
