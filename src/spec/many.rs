//! Every independent error of a job file that does not deserialize, and a plain error for a
//! file that is not one YAML document (a TOML file given by mistake).
//!
//! serde stops at the first error. Each `jobs:` entry that fails on its own (tried on the
//! parsed `Value`, cheap) is deserialized again, alone, from the text, so that its error is
//! located and worded exactly as the first one is.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;

use super::{JobSpec, Source, yaml_error};
use crate::error::{MAX_SPEC_ERRORS, SpecError};

/// `first` with the errors of the other job entries that fail on their own, in file order.
pub(super) fn with_job_errors(source: &Source, first: SpecError) -> SpecError {
    let doc = match serde_yaml::from_str::<Value>(source.text) {
        Ok(doc) => doc,
        // The text stops being YAML after the first error (serde stopped before the parser
        // got there): that is a second error to fix, reported with it.
        Err(e) if e.location().is_some() && !e.to_string().contains("limit exceeded") => {
            let syntax = yaml_error::from_serde(source, &e);
            if (syntax.line, syntax.column) == (first.line, first.column) {
                return first;
            }
            return SpecError::many(vec![first, syntax], Some(0));
        }
        // Too large to read as a whole (aliases): the first error is all there is.
        Err(_) => return first,
    };
    let entries = match &doc {
        Value::Sequence(s) => s,
        Value::Mapping(m) => match m.get("jobs") {
            Some(Value::Sequence(s)) => s,
            _ => return first,
        },
        _ => return first,
    };
    let failing: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, v)| serde_yaml::from_value::<JobSpec>((*v).clone()).is_err())
        .map(|(i, _)| i)
        .collect();
    let mut errors = vec![first];
    let mut unseen = 0;
    for i in failing {
        if errors.len() > MAX_SPEC_ERRORS {
            unseen += 1;
            continue;
        }
        let alone = serde_yaml::Deserializer::from_str(source.text).deserialize_any(Only(i));
        if let Err(e) = alone {
            errors.push(yaml_error::from_serde(source, &e));
        }
    }
    SpecError::many(errors, Some(unseen))
}

/// The whole document with every job entry but one skipped.
struct Only(usize);

impl<'de> Visitor<'de> for Only {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with a `jobs:` list, or a list of jobs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let more = if i == self.0 {
                seq.next_element::<JobSpec>()?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Value>()? {
            if key.as_str() == Some("jobs") {
                map.next_value_seed(OnlySeed(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct OnlySeed(usize);

impl<'de> DeserializeSeed<'de> for OnlySeed {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(Only(self.0))
    }
}

/// serde_yaml's "more than one document" has no position: where the second document starts,
/// or where the text stops being YAML (`name = "x"` after `[package]`).
pub(super) fn second_document(source: &Source) -> SpecError {
    let hint = Some(
        "a job file is one YAML document: a mapping with a `jobs:` list, or a list of jobs"
            .to_string(),
    );
    let mut docs = serde_yaml::Deserializer::from_str(source.text);
    let stopped = docs
        .next()
        .and_then(|_| docs.next())
        .and_then(|d| IgnoredAny::deserialize(d).err());
    if let Some(e) = stopped
        && let Some(at) = e.location()
    {
        return SpecError::at(
            source.path,
            None,
            at.line(),
            at.column(),
            "this line does not continue the YAML above it: is this a job file?".to_string(),
            hint,
        )
        .with_source(source.text);
    }
    let line = second_start(source.text);
    let e = SpecError {
        hint,
        ..SpecError::plain(
            source.path,
            "holds more than one YAML document (`---`)".to_string(),
        )
    };
    match line {
        Some(l) => SpecError {
            line: Some(l),
            column: Some(1),
            ..e
        }
        .with_source(source.text),
        None => e,
    }
}

/// The line of the second `---` that starts a document (the first may open the file).
fn second_start(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if content {
                return Some(i + 1);
            }
        } else if !t.trim().is_empty() && !t.trim_start().starts_with('#') {
            content = true;
        }
    }
    None
}
