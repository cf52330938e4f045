//! Where the nodes of a job file stand: one pass of yaml-rust2 events over the text, kept as an
//! index of node paths and of the jobs' names, built only once an error needs it.
//!
//! serde_yaml reports the position of the node it failed on, but errors found after
//! deserialization (duplicate names, bad command lines) know only the node's path. Those are rare,
//! so the index costs nothing on the happy path, and a file with many errors is still parsed for
//! positions once (through `Source`).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::job_names::{JobNames, NameRecorder};
use crate::error::SpecError;

/// One step of a path into the YAML document, to find where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Line and column (1-based) of the node at `path`. Parses `text` on every call: to locate
/// several nodes of one file, build a `Source` (or `Positions`) once and ask it.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    Positions::new(text).locate(path)
}

/// A job file's text and its position index, built on first use and shared by later errors.
#[derive(Debug)]
pub struct Source<'t> {
    /// Labels errors.
    pub path: &'t Path,
    pub text: &'t str,
    positions: OnceCell<Positions>,
}

impl<'t> Source<'t> {
    pub fn new(path: &'t Path, text: &'t str) -> Self {
        Source {
            path,
            text,
            positions: OnceCell::new(),
        }
    }

    /// The index, parsed from the text the first time it is asked for.
    pub fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| Positions::new(self.text))
    }

    /// Line and column (1-based) of the node at `path`, if the document has it.
    pub fn locate(&self, path: &[Seg]) -> Option<(usize, usize)> {
        self.positions().locate(path)
    }

    /// The name of the job at `jobs[index]`, as an error should show it (see `Positions::job_name`).
    pub fn job_name(&self, index: usize) -> Option<String> {
        self.positions().job_name(index)
    }

    /// An error at the node at `path`, with its source line; unlocated when the node is not found.
    pub fn error_at(
        &self,
        path: &[Seg],
        job: Option<String>,
        message: String,
        hint: Option<String>,
    ) -> SpecError {
        let e = match self.locate(path) {
            Some((line, col)) if line != 0 => {
                SpecError::at(self.path, job, line, col, message, hint)
            }
            _ => SpecError {
                job,
                hint,
                ..SpecError::plain(self.path, message)
            },
        };
        e.with_source(self.text)
    }
}

/// Where each node of a job file's first YAML document starts, and the names of its jobs, from
/// a single pass of yaml-rust2 events over the text.
#[derive(Debug)]
pub struct Positions {
    paths: PathIndex,
    names: JobNames,
}

impl Positions {
    pub fn new(text: &str) -> Positions {
        let mut pass = Pass {
            documents: 0,
            paths: PathRecorder::default(),
            names: NameRecorder::default(),
        };
        // Positions come from the first document; a second one only means the jobs go unnamed.
        let parsed = Parser::new_from_str(text).load(&mut pass, true).is_ok();
        Positions {
            paths: pass.paths.index,
            names: pass.names.finish(parsed && pass.documents == 1),
        }
    }

    /// Line and column (1-based) of the node at `path`. A mapping stands where its first key
    /// does; an alias has no position of its own.
    pub fn locate(&self, path: &[Seg]) -> Option<(usize, usize)> {
        self.paths.find(path)
    }

    /// The name of the job at `jobs[index]` of the top-level mapping: a bare command line, the
    /// `name:` of a mapping, or `#N` (1-based) when it has none. `None` when the document is not
    /// one that `serde_yaml::Value` would read, the names' source before this index.
    pub fn job_name(&self, index: usize) -> Option<String> {
        self.names.name(index)
    }
}

/// The one receiver of the parser's events, feeding both halves of the index.
struct Pass {
    documents: usize,
    paths: PathRecorder,
    names: NameRecorder,
}

impl MarkedEventReceiver for Pass {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => self.documents += 1,
            Event::DocumentEnd | Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            _ if self.documents == 1 => {
                self.paths.on_event(&ev, mark);
                self.names.on_event(ev);
            }
            _ => {}
        }
    }
}

/// A node of the index; its number fits 32 bits, as a job file has fewer events than bytes.
type NodeId = u32;

const ROOT: NodeId = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No node has started at this path (yet).
    Unseen,
    /// A mapping started here and waits for its first key to take its position.
    Pending,
    /// Line and column, 1-based (a job file is at most 256 MiB, so they fit 32 bits).
    At(u32, u32),
}

/// Node paths as a trie: a node is a number, its children are found by key or by index.
/// Kept small, since a file may hold millions of `for_each` items.
#[derive(Debug)]
struct PathIndex {
    slots: Vec<Slot>,
    keys: HashMap<(NodeId, Box<str>), NodeId>,
    items: HashMap<NodeId, Vec<NodeId>>,
}

impl Default for PathIndex {
    fn default() -> Self {
        PathIndex {
            slots: vec![Slot::Unseen],
            keys: HashMap::new(),
            items: HashMap::new(),
        }
    }
}

impl PathIndex {
    fn fresh(slots: &mut Vec<Slot>) -> NodeId {
        slots.push(Slot::Unseen);
        (slots.len() - 1) as NodeId
    }

    fn key_child(&mut self, parent: NodeId, key: &str) -> NodeId {
        let slots = &mut self.slots;
        *self
            .keys
            .entry((parent, key.into()))
            .or_insert_with(|| Self::fresh(slots))
    }

    fn item_child(&mut self, parent: NodeId, index: usize) -> NodeId {
        let items = self.items.entry(parent).or_default();
        // Aliases take an index without a node of their own.
        while items.len() <= index {
            items.push(Self::fresh(&mut self.slots));
        }
        items[index]
    }

    /// The first node to start at a path keeps it (a later duplicate key does not move it).
    fn claim(&mut self, node: NodeId, slot: Slot) -> bool {
        let fresh = self.slots[node as usize] == Slot::Unseen;
        if fresh {
            self.slots[node as usize] = slot;
        }
        fresh
    }

    fn find(&self, path: &[Seg]) -> Option<(usize, usize)> {
        let mut node = ROOT;
        for seg in path {
            node = match seg {
                Seg::Key(k) => *self.keys.get(&(node, Box::from(*k)))?,
                Seg::Index(i) => *self.items.get(&node)?.get(*i)?,
            };
        }
        match self.slots[node as usize] {
            Slot::At(line, col) => Some((line as usize, col as usize)),
            Slot::Unseen | Slot::Pending => None,
        }
    }
}

enum Frame {
    Map {
        node: NodeId,
        key: Option<String>,
        want_key: bool,
    },
    Seq {
        node: NodeId,
        next: usize,
    },
}

/// Follows the events with a stack of open collections, recording where each node starts.
#[derive(Default)]
struct PathRecorder {
    index: PathIndex,
    stack: Vec<Frame>,
    /// Mappings started since the last scalar.
    pending: Vec<NodeId>,
}

impl PathRecorder {
    fn on_event(&mut self, ev: &Event, mark: Marker) {
        let at = Slot::At(mark.line() as u32, (mark.col() + 1) as u32);
        match ev {
            Event::Scalar(s, ..) => self.scalar(s, at),
            // An alias key or value has no position of its own.
            Event::Alias(_) if !self.take_key() => self.value_done(),
            Event::MappingStart(..) => self.start(true, at),
            Event::SequenceStart(..) => self.start(false, at),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }

    fn scalar(&mut self, s: &str, at: Slot) {
        // A block mapping's own mark is not where it starts on the line; its first key is.
        for node in self.pending.drain(..) {
            self.index.slots[node as usize] = at;
        }
        if let Some(Frame::Map { key, want_key, .. }) = self.stack.last_mut()
            && *want_key
        {
            *key = Some(s.to_string());
            *want_key = false;
            return;
        }
        let node = self.here();
        self.index.claim(node, at);
        self.value_done();
    }

    fn start(&mut self, map: bool, at: Slot) {
        let node = self.here();
        // A complex key is taken as a key without a name: it has no position, its contents do.
        if !self.take_key() {
            if map {
                if self.index.claim(node, Slot::Pending) {
                    self.pending.push(node);
                }
            } else if self.index.slots[node as usize] == Slot::Pending {
                // After an alias key (which repeats the key before it), a sequence can start at
                // the path of a mapping that is still waiting for its first key; it takes it.
                self.index.slots[node as usize] = at;
                self.pending.retain(|&n| n != node);
            } else {
                self.index.claim(node, at);
            }
        }
        self.stack.push(if map {
            Frame::Map {
                node,
                key: None,
                want_key: true,
            }
        } else {
            Frame::Seq { node, next: 0 }
        });
    }

    /// When a mapping waits for a key and gets an alias or a collection, takes it as that key.
    fn take_key(&mut self) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Map { want_key, .. }) if *want_key => {
                *want_key = false;
                true
            }
            _ => false,
        }
    }

    /// The node of the value starting now (inside a mapping, under its latest key).
    fn here(&mut self) -> NodeId {
        match self.stack.last() {
            None => ROOT,
            Some(Frame::Map { node, key, .. }) => {
                let node = *node;
                let key = key.as_deref().unwrap_or_default();
                self.index.key_child(node, key)
            }
            Some(Frame::Seq { node, next }) => self.index.item_child(*node, *next),
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { want_key, .. }) => *want_key = true,
            Some(Frame::Seq { next, .. }) => *next += 1,
            None => {}
        }
    }
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
    fn a_source_locates_errors_from_one_index() {
        let source = Source::new(Path::new("t.yaml"), "jobs:\n  - name: a\n    command: x\n");
        let here = [Seg::Key("jobs"), Seg::Index(0), Seg::Key("command")];
        let e = source.error_at(&here, None, "bad".into(), None);
        assert_eq!((e.line, e.column), (Some(3), Some(14)));
        assert_eq!(e.source_line.as_deref(), Some("    command: x"));
        let nowhere = [Seg::Key("jobs"), Seg::Index(5)];
        let e = source.error_at(&nowhere, Some("a".into()), "bad".into(), None);
        assert_eq!((e.line, e.job.as_deref()), (None, Some("a")));
        assert_eq!(source.job_name(0).as_deref(), Some("a"));
        assert!(std::ptr::eq(source.positions(), source.positions()));
    }

    #[test]
    fn a_mapping_stands_at_its_first_key() {
        let text = "jobs:\n  -\n    name: a\n  - {}\n  - x\n";
        let p = Positions::new(text);
        assert_eq!(p.locate(&[]), Some((1, 1)));
        assert_eq!(p.locate(&[Seg::Key("jobs"), Seg::Index(0)]), Some((3, 5)));
        // An empty mapping has no key of its own: it takes the next scalar's place.
        assert_eq!(p.locate(&[Seg::Key("jobs"), Seg::Index(1)]), Some((5, 5)));
        assert_eq!(p.locate(&[Seg::Key("jobs"), Seg::Index(3)]), None);
    }

    #[test]
    fn finds_in_top_level_list() {
        let text = "- true\n- false\n";
        assert_eq!(locate(text, &[Seg::Index(1)]), Some((2, 3)));
    }
}
