//! `for_each`: the items, file or range a job fans out over.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Word;

/// What a job fans out over.
#[derive(Debug, Clone, PartialEq)]
pub enum ForEachSpec {
    Items(Vec<Item>),
    File(PathBuf),
    Range { start: i64, end: i64, step: i64 },
}

/// One item of `for_each`: a scalar, or a mapping whose fields are `{item.field}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Scalar(String),
    Map(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForEachMap {
    file: Option<PathBuf>,
    range: Option<Vec<i64>>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar item or a mapping of scalar fields")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Item, E> {
                Ok(Item::Scalar(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
                Ok(Item::Scalar(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                let m = BTreeMap::<String, Word>::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Item::Map(m.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ForEachSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ForEachSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of items, `{file: items.txt}` or `{range: [1, 100]}`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ForEachSpec, A::Error> {
                let mut items = Vec::new();
                while let Some(it) = seq.next_element::<Item>()? {
                    items.push(it);
                }
                Ok(ForEachSpec::Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ForEachSpec, A::Error> {
                let m = ForEachMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.file, m.range) {
                    (Some(f), None) => Ok(ForEachSpec::File(f)),
                    (None, Some(r)) => {
                        let (start, end, step) = match r.as_slice() {
                            [a, b] => (*a, *b, 1),
                            [a, b, c] => (*a, *b, *c),
                            _ => {
                                return Err(de::Error::custom(
                                    "range takes [first, last] or [first, last, step]",
                                ));
                            }
                        };
                        if step == 0 {
                            return Err(de::Error::custom("a range step cannot be 0"));
                        }
                        let count = (end as i128 - start as i128) / step as i128 + 1;
                        if count > MAX_ITEMS as i128 {
                            return Err(de::Error::custom(format!(
                                "the range has {count} items; at most {MAX_ITEMS} are allowed"
                            )));
                        }
                        Ok(ForEachSpec::Range { start, end, step })
                    }
                    _ => Err(de::Error::custom(
                        "for_each takes a list, `{file: path}` or `{range: [first, last]}`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Most jobs one job file may expand to.
pub const MAX_ITEMS: usize = 10_000_000;
