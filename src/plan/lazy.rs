//! Lazy fan-out: an entry with many items (a large `range:`, a large or streamed `file:`) is
//! kept as one template and its item source, and its jobs are made one at a time as they are
//! dispatched (`Fan::job`), so that planning and running hold no list of its jobs.

use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use super::entry::Template;
use super::expand::Subst;
use super::instance::fill;
use super::locator::{EntryAt, Place};
use super::{Need, PlannedJob, definition_hash};
use crate::error::SpecError;
use crate::spec::{ForEachSpec, Item, JobMap, MAX_ITEMS};

/// A range with more items than this fans out lazily.
pub const LAZY_MIN: usize = 1000;

/// A regular items file larger than this is read as it goes (when it is the last entry).
pub const LAZY_FILE_BYTES: u64 = 64 * 1024;

/// Longest item line read from a stream.
pub(super) const MAX_LINE: usize = 1 << 20;

/// Where a lazy fan's items come from.
#[derive(Debug, Clone)]
pub enum FanSource {
    /// `start + k * step`, `count` of them.
    Range { start: i64, step: i64 },
    /// One item per non-blank line, read as the jobs are dispatched.
    File(PathBuf),
}

/// One fanned-out entry of the plan whose jobs are made as they are dispatched.
#[derive(Debug, Clone)]
pub struct Fan {
    /// The plan index of its first job; its jobs are `first..first + count`.
    pub first: usize,
    /// How many jobs it has; `None` for a file, whose length is known once it is read.
    pub count: Option<usize>,
    /// The jobs' base name: item `k` is `base[item]` for a range, `base[k]` for a file.
    pub base: String,
    pub source: FanSource,
    /// What every job waits for (the needs of the entry).
    pub needs: Vec<Need>,
    /// Which of its jobs run, when a narrowed run (`--only`, `--skip`, `--resume`, `rerun`)
    /// keeps only some: `None` keeps them all.
    pub picks: Option<Arc<super::picks::Picks>>,
    pub(super) template: Arc<FanTemplate>,
    /// A stream read to its end for `--resume` (`spool`): its items are read from here.
    pub(super) spool: Option<Arc<std::fs::File>>,
}

/// The entry's settings, as every one of its jobs gets them before the item is filled in.
#[derive(Debug)]
pub(super) struct FanTemplate {
    pub(super) t: Template,
    /// Where its jobs start (`build::in_job_file_dir`).
    pub(super) start_dir: PathBuf,
}

/// A lazy entry as planning sees it until the plan is built: its template job stands in the
/// job list for all its jobs.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) count: Option<usize>,
    pub(super) source: FanSource,
    pub(super) template: Template,
}

/// A stream's item: its text, or why line `line` is no item.
pub enum ReadItem {
    Item(String),
    Bad { line: usize, why: String },
}

impl Fan {
    /// Whether plan index `index` is one of this fan's jobs that run (a file's: read or not).
    pub fn holds(&self, index: usize) -> bool {
        index >= self.first && self.kept(index - self.first)
    }

    /// The name of job `k`, made without making the job.
    pub fn name(&self, k: usize) -> String {
        match self.source {
            FanSource::Range { start, step } => {
                format!("{}[{}]", self.base, start + step * k as i64)
            }
            FanSource::File(_) => format!("{}[{k}]", self.base),
        }
    }

    /// Whether its items come from a pipe, a FIFO or a device: they can be read only once.
    pub fn is_stream(&self) -> bool {
        match &self.source {
            FanSource::Range { .. } => false,
            FanSource::File(p) => {
                self.spool.is_none() && std::fs::metadata(p).is_ok_and(|m| !m.is_file())
            }
        }
    }

    /// The group every job of the fan is in.
    pub fn group(&self) -> Option<&String> {
        self.template.t.job.group.as_ref()
    }

    /// Item `k` of a range.
    pub fn range_item(&self, k: usize) -> Option<String> {
        match self.source {
            FanSource::Range { start, step } => Some((start + step * k as i64).to_string()),
            FanSource::File(_) => None,
        }
    }

    /// Job `k`, its placeholders filled with `item`; an error says why the item makes no job.
    pub fn job(&self, k: usize, item: &str) -> Result<PlannedJob, String> {
        let item = Item::Scalar(item.to_string());
        let sub = Subst {
            item: Some(&item),
            items: std::slice::from_ref(&item),
            index: k,
        };
        let tt = &self.template;
        let mut job = fill(&tt.t, Some(&sub), self.name(k), self.first + k).map_err(|b| b.1)?;
        self.settle(&mut job);
        Ok(job)
    }

    /// Job `k` as the template has it, items not filled in: what a record of an item that
    /// makes no job describes.
    pub fn stub(&self, k: usize) -> PlannedJob {
        let mut job = PlannedJob {
            index: self.first + k,
            name: self.name(k),
            argv: self.template.t.body.argv_text(),
            ..self.template.t.job.clone()
        };
        self.settle(&mut job);
        job
    }

    fn settle(&self, job: &mut PlannedJob) {
        job.file_index = job.index;
        job.needs = self.needs.clone();
        super::build::in_job_file_dir(job, &self.template.start_dir);
        job.def_hash = definition_hash(job);
    }

    /// The reader of a file's items, on a thread of its own, `wake` called after each item;
    /// `None` for a range.
    pub fn open(&self, wake: Box<dyn Fn() + Send>) -> Option<mpsc::Receiver<ReadItem>> {
        let FanSource::File(path) = &self.source else {
            return None;
        };
        let (tx, rx) = mpsc::sync_channel(1024);
        let shown = path.clone();
        // A spool is opened anew (from its start) through its descriptor.
        let path = match &self.spool {
            Some(f) => PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
            None => path.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("orchestrate-items".into())
            .spawn(move || {
                read_items(&path, &shown, &tx, &*wake);
                // The end is told once the channel is closed: a look after this wake sees it
                // ended, never an empty channel that no later wake would look at again.
                drop(tx);
                wake();
            });
        if let Err(e) = spawned {
            let (tx, rx) = mpsc::sync_channel(1);
            let why = format!("cannot start the items reader: {e}");
            let _ = tx.send(ReadItem::Bad { line: 0, why });
            return Some(rx);
        }
        Some(rx)
    }
}

/// Reads `path` line by line into `tx` until it ends or nobody listens; messages name it
/// `shown`.
fn read_items(path: &Path, shown: &Path, tx: &mpsc::SyncSender<ReadItem>, wake: &dyn Fn()) {
    let shown = shown.display();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let why = format!(
                "cannot read the items file {shown}: {}",
                crate::text::os_text(&e)
            );
            let _ = tx.send(ReadItem::Bad { line: 0, why });
            wake();
            return;
        }
    };
    let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let (mut line, mut items) = (0usize, 0usize);
    loop {
        line += 1;
        let got = match next_line(&mut r, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let why = format!("{shown}:{line}: cannot read: {}", crate::text::os_text(&e));
                let _ = tx.send(ReadItem::Bad { line, why });
                break;
            }
        };
        if got > MAX_LINE {
            // No end of line in sight (a device, a binary file): the rest is not read.
            let why = format!("{shown}:{line}: the line is longer than {MAX_LINE} bytes");
            let _ = tx.send(ReadItem::Bad { line, why });
            break;
        }
        let item = item_of(&buf).map_err(|w| format!("{shown}:{line}: {w}"));
        let sent = match item {
            Ok(None) => continue,
            Ok(Some(_)) if items >= MAX_ITEMS => {
                let why = format!("{shown}:{line}: more than {MAX_ITEMS} items");
                let _ = tx.send(ReadItem::Bad { line, why });
                break;
            }
            Ok(Some(s)) => tx.send(ReadItem::Item(s)),
            Err(why) => tx.send(ReadItem::Bad { line, why }),
        };
        items += 1;
        if sent.is_err() {
            return;
        }
        wake();
    }
}

/// The next line of `r` into `buf`, with its end of line: its length, 0 at the end, more than
/// `MAX_LINE` for a line with no end in sight (a device, a binary file), where reading stops.
pub(super) fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    r.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', buf)
}

/// One line as an item: `None` for a blank line.
pub(super) fn item_of(buf: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(buf).map_err(|_| "the line is not UTF-8 text".to_string())?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.contains('\0') {
        return Err("the line holds a NUL byte".into());
    }
    Ok((!text.trim().is_empty()).then(|| text.to_string()))
}

/// How entry `m` fans out lazily, if it does: a range of more than `LAZY_MIN` items, or, in
/// the last entry, an items file that is no regular file or is larger than
/// `LAZY_FILE_BYTES`. `chunk:` keeps the list.
pub(super) fn source_of(
    m: &JobMap,
    base_dir: &Path,
    last: bool,
    ex: &EntryAt<'_>,
) -> Result<Option<(Option<usize>, FanSource)>, SpecError> {
    if m.chunk.is_some() {
        return Ok(None);
    }
    match &m.for_each {
        Some(ForEachSpec::Range { start, end, step }) => {
            let count = (i128::from(*end) - i128::from(*start)) / i128::from(*step) + 1;
            Ok((count > LAZY_MIN as i128).then(|| {
                let source = FanSource::Range {
                    start: *start,
                    step: *step,
                };
                (Some(count as usize), source)
            }))
        }
        Some(ForEachSpec::File(f)) => {
            let p = base_dir.join(f);
            let meta = std::fs::metadata(&p).ok();
            let stream = meta.as_ref().is_some_and(|m| !m.is_file());
            let big = meta
                .as_ref()
                .is_some_and(|m| m.is_file() && m.len() > LAZY_FILE_BYTES);
            if stream && !last {
                return Err(ex.err_key(
                    "for_each",
                    format!(
                        "{} is read as a stream, so this must be the last entry of `jobs:`",
                        p.display()
                    ),
                    Some(
                        "move this entry to the end of `jobs:`; `needs` may name it from anywhere"
                            .into(),
                    ),
                ));
            }
            Ok(((stream || big) && last).then_some((None, FanSource::File(p))))
        }
        _ => Ok(None),
    }
}

/// The first item of a lazy source, to check the template with before anything runs (a
/// file's first line is not read: it may be a stream).
pub(super) fn probe_item(source: &FanSource) -> String {
    match source {
        FanSource::Range { start, .. } => start.to_string(),
        FanSource::File(_) => "item".to_string(),
    }
}

/// Where a job of the list being planned went: into the plan's jobs, or it stood for a fan.
#[derive(Clone, Copy)]
enum At {
    Job(usize),
    Fan(usize),
}

/// The planned jobs with each lazy entry's template taken out into a `Fan`, renumbered in
/// plan order (a fan takes as many indices as it has items), needs on a template turned into
/// needs on its fan. Also returns the size of the index space (`Plan::file_jobs`).
pub(super) fn split(
    entries: &mut [super::names::Entry],
    jobs: Vec<PlannedJob>,
    start_dir: &Path,
) -> (Vec<PlannedJob>, Vec<Fan>, usize) {
    let mut pending: std::collections::HashMap<usize, Box<Pending>> = entries
        .iter_mut()
        .filter_map(|e| Some((e.jobs.start, e.lazy.take()?)))
        .collect();
    if pending.is_empty() {
        let n = jobs.len();
        return (jobs, Vec::new(), n);
    }
    let mut at = Vec::with_capacity(jobs.len());
    let (mut out, mut fans, mut next) = (Vec::new(), Vec::new(), 0usize);
    let mut fan_needs = Vec::new();
    for mut j in jobs {
        if let Some(p) = pending.remove(&j.index) {
            at.push(At::Fan(fans.len()));
            fan_needs.push(std::mem::take(&mut j.needs));
            fans.push(Fan {
                first: next,
                count: p.count,
                base: j.name,
                source: p.source,
                needs: Vec::new(),
                picks: None,
                spool: None,
                template: Arc::new(FanTemplate {
                    t: p.template,
                    start_dir: start_dir.to_path_buf(),
                }),
            });
            // A stream is the last entry: nothing is numbered after it.
            next += p.count.unwrap_or(MAX_ITEMS);
        } else {
            at.push(At::Job(next));
            j.index = next;
            j.file_index = next;
            out.push(j);
            next += 1;
        }
    }
    for j in &mut out {
        renumber(&mut j.needs, &at);
    }
    for (f, mut needs) in fans.iter_mut().zip(fan_needs) {
        renumber(&mut needs, &at);
        f.needs = needs;
    }
    (out, fans, next)
}

fn renumber(needs: &mut [Need], at: &[At]) {
    for n in needs {
        let old = std::mem::take(&mut n.jobs);
        for i in old {
            match at[i] {
                At::Job(j) => n.jobs.push(j),
                At::Fan(f) => n.fans.push(f),
            }
        }
    }
}
