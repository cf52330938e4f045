//! Fan-out: the items of `for_each` (a list, a range or an items file) in chunks, and the
//! placeholders (`{item}`, `{item.FIELD}`, `{index}`, `{items}`) they fill in.

use std::path::Path;

use super::locator::{EntryAt, Place};
use crate::error::SpecError;
use crate::spec::{ForEachSpec, Item, JobMap};

/// What placeholders expand to for one expanded job.
pub(super) struct Subst<'a> {
    pub(super) item: Option<&'a Item>,
    pub(super) items: &'a [Item],
    pub(super) index: usize,
}

/// The items of a fanned-out entry, one group per job (one item each without `chunk:`);
/// `None` for an entry without `for_each:`.
pub(super) fn chunks_of(
    m: &JobMap,
    base_dir: &Path,
    ex: &EntryAt<'_>,
) -> Result<Option<Vec<Vec<Item>>>, SpecError> {
    let Some(fe) = &m.for_each else {
        if m.chunk.is_some() {
            return Err(ex.err_key("chunk", "`chunk:` needs `for_each:`".to_string(), None));
        }
        return Ok(None);
    };
    let items = items_of(fe, base_dir, ex)?;
    if items.is_empty() {
        return Err(ex.err_key("for_each", "`for_each:` has no items".to_string(), None));
    }
    let n = m.chunk.unwrap_or(1);
    if n == 0 {
        return Err(ex.err_key("chunk", "`chunk:` must be at least 1".into(), None));
    }
    if m.chunk.is_some() && items.iter().any(|i| matches!(i, Item::Map(_))) {
        return Err(ex.err_key(
            "chunk",
            "`chunk:` works on scalar items; these items are mappings".into(),
            None,
        ));
    }
    Ok(Some(items.chunks(n).map(<[Item]>::to_vec).collect()))
}

/// The items as listed, counted out of a range, or read from a file (one per non-blank line).
fn items_of(fe: &ForEachSpec, base_dir: &Path, ex: &EntryAt<'_>) -> Result<Vec<Item>, SpecError> {
    Ok(match fe {
        ForEachSpec::Items(v) => v.clone(),
        ForEachSpec::Range { start, end, step } => range_items(*start, *end, *step),
        ForEachSpec::File(f) => {
            let p = base_dir.join(f);
            let content =
                crate::text::read_regular_text(&p, crate::spec::MAX_FILE_BYTES).map_err(|e| {
                    ex.err_key(
                        "for_each",
                        format!(
                            "cannot read the items file {}: {}",
                            p.display(),
                            crate::text::os_text(&e)
                        ),
                        None,
                    )
                })?;
            content
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| Item::Scalar(l.to_string()))
                .collect()
        }
    })
}

/// `start`, `start + step`, … up to `end` inclusive, stopping short of overflow.
fn range_items(start: i64, end: i64, step: i64) -> Vec<Item> {
    let mut v = Vec::new();
    let mut x = start;
    while (step > 0 && x <= end) || (step < 0 && x >= end) {
        v.push(Item::Scalar(x.to_string()));
        match x.checked_add(step) {
            Some(n) => x = n,
            None => break,
        }
    }
    v
}

fn item_field<'a>(item: Option<&'a Item>, field: Option<&str>) -> Result<&'a str, String> {
    match (item, field) {
        (None, _) => Err(
            "`{item}` is only available in `for_each` jobs without `chunk`; use `{items}`".into(),
        ),
        (Some(Item::Scalar(s)), None) => Ok(s),
        (Some(Item::Scalar(_)), Some(f)) => {
            Err(format!("`{{item.{f}}}`: the items are not mappings"))
        }
        (Some(Item::Map(_)), None) => Err("the items are mappings: use `{item.FIELD}`".into()),
        (Some(Item::Map(m)), Some(f)) => m.get(f).map(String::as_str).ok_or_else(|| {
            let keys: Vec<&String> = m.keys().collect();
            match crate::error::suggest(f, &keys) {
                Some(s) => format!("an item has no field `{f}`; did you mean `{s}`?"),
                None => format!("an item has no field `{f}`"),
            }
        }),
    }
}

fn item_scalars(items: &[Item]) -> Vec<&str> {
    items
        .iter()
        .map(|i| match i {
            Item::Scalar(s) => s.as_str(),
            Item::Map(_) => "",
        })
        .collect()
}

/// Replaces `{item}`, `{item.FIELD}`, `{index}` and `{items}` in text; with `quote`, each
/// value is shell-quoted (for `shell:` jobs). `{slot}` is left for run time; other braces are
/// left alone (awk and friends use them).
pub(super) fn expand_text(text: &str, sub: &Subst<'_>, quote: bool) -> Result<String, String> {
    let q = |s: &str| -> String {
        if quote {
            shell_words::quote(s).into_owned()
        } else {
            s.to_string()
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let token = &after[..close];
        let value = match token {
            "item" => Some(q(item_field(sub.item, None)?)),
            "index" => Some(sub.index.to_string()),
            "items" => Some(
                item_scalars(sub.items)
                    .into_iter()
                    .map(q)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            t => match t.strip_prefix("item.") {
                Some(f) => Some(q(item_field(sub.item, Some(f))?)),
                None => None,
            },
        };
        match value {
            Some(v) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            // Not a placeholder: the brace stays, and the scan goes on right after it, so a
            // placeholder inside other braces (`{ test {item} -le 3; }`) is still filled.
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One argv word expanded: `{items}` alone becomes one word per item; elsewhere values are
/// substituted inside the word, which stays one word whatever the value holds.
fn expand_word(word: &str, sub: &Subst<'_>) -> Result<Vec<String>, String> {
    if word == "{items}" {
        return Ok(item_scalars(sub.items)
            .into_iter()
            .map(str::to_string)
            .collect());
    }
    Ok(vec![expand_text(word, sub, false)?])
}

/// An argv with every word expanded; it must still name a program.
pub(super) fn expand_argv(words: &[String], sub: &Subst<'_>) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        out.extend(expand_word(w, sub)?);
    }
    if out.is_empty() || out[0].is_empty() {
        return Err("the command is empty after substitution".into());
    }
    Ok(out)
}
