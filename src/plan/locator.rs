//! Where in the job file an error points: paths to its nodes, and errors built at them.

use std::path::Path;

use crate::error::SpecError;
use crate::spec::{self, Seg};

/// The job file's name, text and shape: enough to turn a node's path into an error at its line.
pub(super) struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
    /// Positions come from one index of the text, made at the first error.
    source: spec::Source<'a>,
    /// The file is a bare list of jobs, so entries stand at the top, not under `jobs:`.
    list_form: bool,
}

impl<'a> Locator<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str, list_form: bool) -> Self {
        Locator {
            path,
            text,
            source: spec::Source::new(path, text),
            list_form,
        }
    }

    /// Line and column (1-based) of the node at `segs`. Every position is looked up here, so
    /// that how positions are found can change in one place.
    pub(super) fn position(&self, segs: &[Seg]) -> Option<(usize, usize)> {
        self.source.locate(segs)
    }

    /// A top-level key.
    pub(super) fn top(key: &'static str) -> Vec<Seg> {
        vec![Seg::Key(key)]
    }

    /// Entry `i` of `jobs:`.
    pub(super) fn job(&self, i: usize) -> Vec<Seg> {
        if self.list_form {
            vec![Seg::Index(i)]
        } else {
            vec![Seg::Key("jobs"), Seg::Index(i)]
        }
    }

    /// Key `key` of entry `i` of `jobs:`.
    pub(super) fn key(&self, i: usize, key: &'static str) -> Vec<Seg> {
        let mut segs = self.job(i);
        segs.push(Seg::Key(key));
        segs
    }

    /// An error at the node `segs`, with its source line; a plain one if the node is not found.
    pub(super) fn err(
        &self,
        segs: &[Seg],
        job: Option<String>,
        message: String,
        hint: Option<String>,
    ) -> SpecError {
        let (line, col) = self.position(segs).unwrap_or((0, 0));
        let e = if line == 0 {
            SpecError {
                job,
                hint,
                ..SpecError::plain(self.path, message)
            }
        } else {
            SpecError::at(self.path, job, line, col, message, hint)
        };
        e.with_source(self.text)
    }
}

/// One entry of `jobs:`: where it stands, and the name its errors carry (if it has one).
pub(super) struct EntryAt<'a> {
    pub(super) loc: &'a Locator<'a>,
    pub(super) index: usize,
    pub(super) label: Option<String>,
}

impl EntryAt<'_> {
    /// One key of the entry.
    pub(super) fn key(&self, key: &'static str) -> Vec<Seg> {
        self.loc.key(self.index, key)
    }
}

/// A node whose errors point at it or at one of its keys: a `jobs:` entry, or a hook. The
/// errors are built here once, from where the node stands and the name it carries.
pub(super) trait Place {
    /// What the node is, for messages: "job", "hook".
    fn what(&self) -> &'static str;
    fn loc(&self) -> &Locator<'_>;
    /// The node itself.
    fn here(&self) -> Vec<Seg>;
    /// The job name its errors carry, if any.
    fn label(&self) -> Option<String>;

    /// An error about this node at `segs`.
    fn err(&self, segs: &[Seg], message: String, hint: Option<String>) -> SpecError {
        self.loc().err(segs, self.label(), message, hint)
    }

    /// An error about this node, pointing at the node.
    fn err_here(&self, message: String, hint: Option<String>) -> SpecError {
        self.err(&self.here(), message, hint)
    }

    /// An error about this node, pointing at one of its keys.
    fn err_key(&self, key: &'static str, message: String, hint: Option<String>) -> SpecError {
        let mut segs = self.here();
        segs.push(Seg::Key(key));
        self.err(&segs, message, hint)
    }

    /// At one of its keys when the node has it written out, else at the node (the short
    /// form `- df -h` has no `command:` key: the entry is the command).
    fn err_key_or_here(
        &self,
        key: &'static str,
        message: String,
        hint: Option<String>,
    ) -> SpecError {
        let mut segs = self.here();
        segs.push(Seg::Key(key));
        if self.loc().position(&segs).is_some() {
            self.err(&segs, message, hint)
        } else {
            self.err_here(message, hint)
        }
    }
}

impl Place for EntryAt<'_> {
    fn what(&self) -> &'static str {
        "job"
    }
    fn loc(&self) -> &Locator<'_> {
        self.loc
    }
    fn here(&self) -> Vec<Seg> {
        self.loc.job(self.index)
    }
    fn label(&self) -> Option<String> {
        self.label.clone()
    }
}

/// A hook (`hooks.on_failure` of the run, or of a job): where it stands, and the job it
/// belongs to, if any.
pub(super) struct HookAt<'a> {
    pub(super) loc: &'a Locator<'a>,
    pub(super) base: Vec<Seg>,
    pub(super) label: Option<String>,
}

impl Place for HookAt<'_> {
    fn what(&self) -> &'static str {
        "hook"
    }
    fn loc(&self) -> &Locator<'_> {
        self.loc
    }
    fn here(&self) -> Vec<Seg> {
        self.base.clone()
    }
    fn label(&self) -> Option<String> {
        self.label.clone()
    }
}
