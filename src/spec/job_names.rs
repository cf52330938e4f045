//! The names of a job file's jobs, read from the YAML events the way `serde_yaml::Value` reads
//! the document.
//!
//! Errors from serde name the job they are in. Those names used to come from parsing the text
//! into a `Value`, which refuses some documents that the typed parse had read as far as the
//! error: duplicate keys, nesting deeper than 128, aliases expanding past its repetition limit,
//! integers wider than 64 bits, a core tag on a value that does not fit it. A job is named only
//! when `Value` would have read the document, so error messages stay as they were.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use yaml_rust2::parser::{Event, Tag};

use super::scalar::{Scalar, is_local, resolve};

/// Collections `Value` reads nested inside each other, at most.
const MAX_DEPTH: usize = 128;

/// `Value` gives up after this many alias jumps per event of the document.
const JUMPS_PER_EVENT: u64 = 100;

/// One entry of `jobs:`, as far as its name goes.
#[derive(Debug, Clone)]
enum Entry {
    /// A bare command line.
    Text(String),
    /// A job mapping, with its `name:` if that is text.
    Mapping(Option<String>),
    Other,
}

/// What a node's parent, or an alias of it, needs to know of it.
#[derive(Debug, Clone)]
enum Shape {
    Scalar(Scalar),
    Map {
        tagged: bool,
        name: Option<String>,
        /// Only for the top-level mapping.
        jobs: Option<Vec<Entry>>,
    },
    /// The items are kept only where they may be jobs (under `jobs:`, or anchored).
    Seq(Vec<Entry>),
}

impl Shape {
    fn entry(&self) -> Entry {
        match self {
            Shape::Scalar(Scalar::Text(s)) => Entry::Text(s.clone()),
            Shape::Map {
                tagged: false,
                name,
                ..
            } => Entry::Mapping(name.clone()),
            _ => Entry::Other,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Shape::Scalar(Scalar::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// The items of a sequence, tagged or not (`Value::get` looks through tags).
    fn items(&self) -> Option<Vec<Entry>> {
        match self {
            Shape::Seq(items) => Some(items.clone()),
            _ => None,
        }
    }
}

/// A node read to its end: its shape, how deeply it nests, and how many alias jumps it takes.
#[derive(Debug)]
struct Node {
    shape: Shape,
    depth: usize,
    jumps: u64,
}

/// What the next value of a mapping is to its parent.
#[derive(Debug, Default)]
enum Role {
    #[default]
    Other,
    Name,
    Jobs,
}

/// An open collection.
#[derive(Debug, Default)]
struct Frame {
    map: bool,
    anchor: usize,
    tagged: bool,
    /// Deepest nesting among the children.
    depth: usize,
    jumps: u64,
    want_key: bool,
    role: Role,
    keys: HashSet<Scalar>,
    name: Option<String>,
    jobs: Option<Vec<Entry>>,
    /// A sequence whose items may be jobs.
    collect: bool,
    items: Vec<Entry>,
}

/// Reads the events of one document.
#[derive(Debug, Default)]
pub(super) struct NameRecorder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Node>,
    events: u64,
    /// `Value` would refuse the document.
    refused: bool,
}

impl NameRecorder {
    pub(super) fn on_event(&mut self, ev: Event) {
        if self.refused {
            return;
        }
        self.events += 1;
        match ev {
            Event::Scalar(value, style, anchor, tag) => match resolve(value, style, tag.as_ref()) {
                Some(s) => self.done(
                    anchor,
                    Node {
                        shape: Shape::Scalar(s),
                        depth: 0,
                        jumps: 0,
                    },
                ),
                None => self.refused = true,
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.deliver(&node, node.jumps.saturating_add(1)),
                None => self.refused = true,
            },
            Event::MappingStart(anchor, tag) => self.open(true, anchor, tag),
            Event::SequenceStart(anchor, tag) => self.open(false, anchor, tag),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            _ => self.events -= 1,
        }
    }

    /// The names, if the whole text parsed as one document that `Value` accepts.
    pub(super) fn finish(self, parsed_as_one: bool) -> JobNames {
        let jobs = match self.root {
            Some(root)
                if parsed_as_one
                    && !self.refused
                    && root.jumps <= self.events.saturating_mul(JUMPS_PER_EVENT) =>
            {
                match root.shape {
                    Shape::Map { jobs, .. } => jobs,
                    _ => None,
                }
            }
            _ => None,
        };
        JobNames { jobs }
    }

    fn open(&mut self, map: bool, anchor: usize, tag: Option<Tag>) {
        let under_jobs = self
            .stack
            .last()
            .is_some_and(|p| p.map && !p.want_key && matches!(p.role, Role::Jobs));
        self.stack.push(Frame {
            map,
            anchor,
            tagged: tag.as_ref().is_some_and(is_local),
            want_key: map,
            collect: !map && (anchor != 0 || under_jobs),
            ..Frame::default()
        });
    }

    fn close(&mut self) {
        let Some(f) = self.stack.pop() else {
            return;
        };
        let depth = f.depth + 1;
        if depth > MAX_DEPTH {
            self.refused = true;
            return;
        }
        let shape = if f.map {
            Shape::Map {
                tagged: f.tagged,
                name: f.name,
                jobs: f.jobs,
            }
        } else {
            Shape::Seq(f.items)
        };
        let jumps = f.jumps;
        self.done(
            f.anchor,
            Node {
                shape,
                depth,
                jumps,
            },
        );
    }

    fn done(&mut self, anchor: usize, node: Node) {
        if self.stack.is_empty() {
            self.root = Some(node);
            return;
        }
        self.deliver(&node, node.jumps);
        if anchor != 0 {
            self.anchors.insert(anchor, Rc::new(node));
        }
    }

    /// Hands a finished node (or what an alias stands for) to the open collection.
    fn deliver(&mut self, node: &Node, jumps: u64) {
        let top_level = self.stack.len() == 1;
        let Some(parent) = self.stack.last_mut() else {
            return;
        };
        parent.depth = parent.depth.max(node.depth);
        parent.jumps = parent.jumps.saturating_add(jumps);
        if !parent.map {
            if parent.collect {
                parent.items.push(node.shape.entry());
            }
        } else if parent.want_key {
            parent.want_key = false;
            parent.role = Role::Other;
            if let Shape::Scalar(key) = &node.shape {
                if let Scalar::Text(k) = key {
                    parent.role = match k.as_str() {
                        "name" => Role::Name,
                        "jobs" if top_level => Role::Jobs,
                        _ => Role::Other,
                    };
                }
                if !parent.keys.insert(key.clone()) {
                    self.refused = true;
                }
            }
        } else {
            parent.want_key = true;
            match std::mem::take(&mut parent.role) {
                Role::Name => parent.name = node.shape.text(),
                Role::Jobs => parent.jobs = node.shape.items(),
                Role::Other => {}
            }
        }
    }
}

/// The entries of `jobs:`, when the document is one whose jobs can be named.
#[derive(Debug)]
pub(super) struct JobNames {
    jobs: Option<Vec<Entry>>,
}

impl JobNames {
    pub(super) fn name(&self, index: usize) -> Option<String> {
        Some(match self.jobs.as_ref()?.get(index)? {
            Entry::Text(s) | Entry::Mapping(Some(s)) => s.clone(),
            Entry::Mapping(None) | Entry::Other => format!("#{}", index + 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::Positions;

    fn names(text: &str) -> Vec<Option<String>> {
        let p = Positions::new(text);
        (0..4).map(|i| p.job_name(i)).collect()
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        let mut out: Vec<_> = v.iter().map(|s| Some(s.to_string())).collect();
        out.resize(4, None);
        out
    }

    #[test]
    fn names_come_from_commands_and_name_keys() {
        assert_eq!(
            names("jobs:\n  - df -h\n  - name: b\n  - command: x\n  - 42\n"),
            some(&["df -h", "b", "#3", "#4"])
        );
        assert_eq!(
            names("jobs: [true, {name: 7}, {name: '7'}]"),
            some(&["#1", "#2", "7"])
        );
    }

    #[test]
    fn aliases_stand_for_their_anchors() {
        assert_eq!(
            names("x: &n a\ny: &j {name: *n}\njobs: [*n, *j, !t {name: c}]"),
            some(&["a", "a", "#3"])
        );
        assert_eq!(names("x: &l [p, {name: q}]\njobs: *l"), some(&["p", "q"]));
    }

    #[test]
    fn documents_value_refuses_name_no_job() {
        for text in [
            "jobs: [a]\nx: 1\nx: 2\n",
            "jobs: [a]\n---\njobs: [b]\n",
            "jobs: [a]\nx: 18446744073709551616\n",
            "jobs: [a]\nx: !!int nope\n",
            "jobs: [a]\nx: [unclosed\n",
            "- a\n- b\n",
        ] {
            assert_eq!(names(text), some(&[]), "{text}");
        }
        let deep = format!("jobs: [a]\nx: {}{}\n", "[".repeat(128), "]".repeat(128));
        assert_eq!(names(&deep), some(&[]));
        let fits = format!("jobs: [a]\nx: {}{}\n", "[".repeat(127), "]".repeat(127));
        assert_eq!(names(&fits), some(&["a"]));
    }
}
