//! Where a job's standard streams come from and go to.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Where a stream goes: `capture` (the default), `inherit`, `null`, `stdout` (stderr only),
/// or a file `{file: path, append: true}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Capture,
    Inherit,
    Null,
    /// Merge into stdout (only valid for `stderr`).
    Stdout,
    File {
        path: PathBuf,
        append: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    file: PathBuf,
    #[serde(default)]
    append: bool,
}

impl<'de> Deserialize<'de> for OutputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OutputSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`capture`, `inherit`, `null`, `stdout` or a file mapping `{file: path, append: true}`",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OutputSpec, E> {
                match s {
                    "capture" | "pipe" => Ok(OutputSpec::Capture),
                    "inherit" => Ok(OutputSpec::Inherit),
                    "null" | "/dev/null" | "discard" => Ok(OutputSpec::Null),
                    "stdout" => Ok(OutputSpec::Stdout),
                    other => Err(E::custom(format!(
                        "unknown output target `{other}`; use `capture`, `inherit`, `null`, `stdout`, or `{{file: {other}}}` to write to a file"
                    ))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<OutputSpec, E> {
                Ok(OutputSpec::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OutputSpec, A::Error> {
                let t = FileTarget::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OutputSpec::File {
                    path: t.file,
                    append: t.append,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A job's standard input: text given inline, or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinSpec {
    Text(String),
    File(PathBuf),
    Null,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdinMap {
    file: Option<PathBuf>,
    text: Option<String>,
}

impl<'de> Deserialize<'de> for StdinSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StdinSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text, `{file: path}` or `{text: ...}`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StdinSpec, E> {
                Ok(StdinSpec::Text(s.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StdinSpec, E> {
                Ok(StdinSpec::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StdinSpec, A::Error> {
                let m = StdinMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.file, m.text) {
                    (Some(f), None) => Ok(StdinSpec::File(f)),
                    (None, Some(t)) => Ok(StdinSpec::Text(t)),
                    _ => Err(de::Error::custom(
                        "stdin takes exactly one of `file:` or `text:`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}
