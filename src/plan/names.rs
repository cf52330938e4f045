//! Job names: which names a user may give, the names made from commands and items, and how
//! names are kept unique across the file.

use std::collections::{HashMap, HashSet};

use super::PlannedJob;
use super::locator::Locator;
use crate::error::SpecError;
use crate::spec::{CommandSpec, Item, JobMap};

/// One entry of `jobs:` as the plan sees it (a fanned-out entry becomes several jobs).
pub(super) struct Entry {
    pub(super) base: String,
    pub(super) explicit: bool,
    pub(super) fanned: bool,
    pub(super) jobs: std::ops::Range<usize>,
    /// `needs:` as written, resolved once every entry is known.
    pub(super) needs: Vec<crate::spec::NeedSpec>,
    /// Its jobs are made as they run: `jobs` holds only its template (`plan::lazy`).
    pub(super) lazy: Option<Box<super::lazy::Pending>>,
}

/// Why a user-given job name cannot be used, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("it is empty".into())
    } else if let Some(c) = crate::text::hidden_char(name) {
        let what = if c.is_control() {
            "a control character (newline, tab, NUL, ...)"
        } else {
            "an invisible or direction-changing character"
        };
        Some(format!("it contains U+{:04X}, {what}", c as u32))
    } else if name.contains('/') {
        Some("it contains `/`".into())
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names".into())
    } else if name.len() > 200 {
        Some("it is longer than 200 bytes".into())
    } else if name == "last" {
        Some("`last` is reserved (it means the latest run)".into())
    } else {
        None
    }
}

/// `name` quoted for an error, its hidden characters written as `\u{...}`: Rust's `{:?}`
/// leaves the ones that are letters (the Hangul fillers) as they are, invisible.
fn shown(name: &str) -> String {
    format!("{name:?}")
        .chars()
        .map(|c| {
            if crate::text::is_hidden(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The entry's own `name:`, if it has one, must be usable.
pub(super) fn check_name(m: &JobMap, index: usize, loc: &Locator<'_>) -> Result<(), SpecError> {
    if let Some(name) = &m.name
        && let Some(problem) = name_problem(name)
    {
        return Err(loc.err(
            &loc.key(index, "name"),
            None,
            format!("invalid job name {}: {problem}", shown(name)),
            Some("use letters, digits, and `-_.:@+=,[]` in job names".to_string()),
        ));
    }
    Ok(())
}

/// The entry's name: its own, or one made from its command.
pub(super) fn base_name(m: &JobMap) -> String {
    match &m.name {
        Some(n) => n.clone(),
        None => crate::text::slug(&match (&m.command, &m.shell) {
            (Some(CommandSpec::Line(l)), _) => l.clone(),
            (_, Some(s)) => s.clone(),
            (Some(CommandSpec::Argv(w)), _) => w.join(" "),
            (None, None) => String::new(),
        }),
    }
}

/// The names of a fanned-out entry's jobs, one per group of items: `base[item]` when the items
/// make short, safe and unique labels (never with `chunk:`), else `base[index]`.
pub(super) fn item_names(base: &str, groups: &[Vec<Item>], chunked: bool) -> Vec<String> {
    let labels: Option<Vec<String>> = (!chunked).then(|| {
        groups
            .iter()
            .map(|g| match g.first() {
                Some(Item::Scalar(s)) => s.clone(),
                _ => String::new(),
            })
            .collect()
    });
    let usable = |ls: &Vec<String>| {
        let unique: HashSet<&String> = ls.iter().collect();
        unique.len() == ls.len()
            && ls.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 40
                    && name_problem(l).is_none()
                    && !l.contains(['[', ']', ' '])
            })
    };
    match labels.filter(usable) {
        Some(ls) => ls.iter().map(|l| format!("{base}[{l}]")).collect(),
        None => (0..groups.len()).map(|k| format!("{base}[{k}]")).collect(),
    }
}

/// Keeps secret values out of job names, which are printed, stored and used as folder names:
/// a name given in the file that holds one is an error; a name made from a command that holds
/// one is `job` instead; a fanned-out job whose item labels hold one is named by position.
pub(super) fn hide_secrets(
    entries: &mut [Entry],
    jobs: &mut [PlannedJob],
    secrets: &[String],
    loc: &Locator<'_>,
) -> Result<(), SpecError> {
    if secrets.is_empty() {
        return Ok(());
    }
    let holds = |t: &str| secrets.iter().any(|s| t.contains(s.as_str()));
    for (i, e) in entries.iter_mut().enumerate() {
        let range = e.jobs.clone();
        if e.explicit && holds(&e.base) {
            return Err(loc.err(
                &loc.key(i, "name"),
                None,
                "this job name holds the value of a secret variable (`secret_env`)".into(),
                Some("names are printed and stored: choose one without the secret".into()),
            ));
        }
        let old_base = e.base.clone();
        if !e.explicit && jobs[range.clone()].iter().any(|j| holds(&j.argv.join(" "))) {
            e.base = "job".to_string();
        }
        let labels_leak = e.fanned && jobs[range.clone()].iter().any(|j| holds(&j.name));
        if e.base == old_base && !labels_leak {
            continue;
        }
        for (k, j) in jobs[range].iter_mut().enumerate() {
            j.name = match (e.fanned, labels_leak) {
                (false, _) => e.base.clone(),
                (true, true) => format!("{}[{k}]", e.base),
                (true, false) => format!("{}{}", e.base, &j.name[old_base.len()..]),
            };
        }
    }
    Ok(())
}

/// Every job's name is its own: an explicit `sq[1]` beside the items of a fanned-out `sq` would
/// share a record and a folder with one of them.
pub(super) fn check_unique(jobs: &[PlannedJob], loc: &Locator<'_>) -> Result<(), SpecError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(jobs.len());
    for j in jobs {
        if let Some(&first) = seen.get(j.name.as_str()) {
            let other = jobs[first].entry;
            let line = loc
                .position(&loc.job(other))
                .map(|(l, _)| format!(" (also the name of a job on line {l})"))
                .unwrap_or_default();
            return Err(loc.err(
                &loc.job(j.entry),
                Some(j.name.clone()),
                format!("two jobs would be named `{}`{line}", j.name),
                Some("rename one: a name like `job[item]` is taken by a fanned-out `job`".into()),
            ));
        }
        seen.insert(&j.name, j.index);
    }
    Ok(())
}

/// Explicit names must be unique; the second of two is the error.
pub(super) fn check_duplicates(entries: &[Entry], loc: &Locator<'_>) -> Result<(), SpecError> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if !e.explicit {
            continue;
        }
        if let Some(&prev) = first_seen.get(e.base.as_str()) {
            let prev_line = loc
                .position(&loc.job(prev))
                .map(|(l, _)| format!(" (first defined on line {l})"))
                .unwrap_or_default();
            return Err(loc.err(
                &loc.key(i, "name"),
                None,
                format!("duplicate job name `{}`{prev_line}", e.base),
                Some("job names must be unique; rename one of them".to_string()),
            ));
        }
        first_seen.insert(&e.base, i);
    }
    Ok(())
}

/// Gives generated base names that collide a `-2`, `-3`, … suffix in job-file order, and renames
/// their jobs accordingly.
pub(super) fn make_unique_entries(entries: &mut [Entry], jobs: &mut [PlannedJob]) {
    let mut taken: HashSet<String> = entries
        .iter()
        .filter(|e| e.explicit)
        .map(|e| e.base.clone())
        .collect();
    // The next suffix to try per base name, so that 10,000 identical commands cost 10,000
    // steps, not 50 million.
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    for e in entries.iter_mut() {
        if e.explicit || taken.insert(e.base.clone()) {
            continue;
        }
        let n = next_suffix.entry(e.base.clone()).or_insert(2);
        let new = loop {
            let candidate = format!("{}-{n}", e.base);
            *n += 1;
            if taken.insert(candidate.clone()) {
                break candidate;
            }
        };
        for j in &mut jobs[e.jobs.clone()] {
            j.name = if e.fanned {
                format!("{new}{}", &j.name[e.base.len()..])
            } else {
                new.clone()
            };
        }
        e.base = new;
    }
}
