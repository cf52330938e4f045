//! Scalar values with a meaning of their own: words, counts, sizes, durations, path lists.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::MAX_CONCURRENCY;

/// A positive count (group limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub usize);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v < 1 {
            Err(de::Error::custom(format!(
                "a limit must be at least 1, not {v}"
            )))
        } else if v as usize > MAX_CONCURRENCY {
            Err(de::Error::custom(format!(
                "a limit of {v} is too large (at most {MAX_CONCURRENCY})"
            )))
        } else {
            Ok(Limit(v as usize))
        }
    }
}

/// One path or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathList(pub Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PathList, E> {
                Ok(PathList(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathList, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    v.push(p);
                }
                Ok(PathList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size: a number, or text like `500M`, `2G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as `500M` or `2G`, or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size `{v}` is negative")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size(s).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `500M`, `2G`, `1024`: bytes, with binary multiples.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{s}`; write it like `500M` or `2G`"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("invalid size unit in `{s}` (use K, M, G or T)")),
    };
    Ok((n * mult as f64) as u64)
}

/// A scalar taken as text: `sleep 1` in an argv list or `PORT: 8080` in `env` are words too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(pub String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Word;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Word, E> {
                Ok(Word(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: humantime text (`30s`, `10m`, `1h 30m`) or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

/// Longer than any sensible timeout, short enough that adding it to `Instant::now()` never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn checked<E: de::Error>(d: Duration) -> Result<DurationSpec, E> {
                if d > MAX_DURATION {
                    Err(E::custom("duration is too long (at most 100 years)"))
                } else {
                    Ok(DurationSpec(d))
                }
            }
        }
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `30s`, `10m` or `1h 30m`, or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationSpec, E> {
                let t = s.trim();
                if t.starts_with('-') {
                    return Err(E::custom(format!("duration `{s}` is negative")));
                }
                match humantime::parse_duration(t) {
                    Ok(d) => V::checked(d),
                    Err(e) => Err(E::custom(format!(
                        "invalid duration `{s}`: {e}; write it like `30s`, `10m` or `1h 30m`"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                V::checked(Duration::from_secs(v.min(MAX_DURATION.as_secs() + 1)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationSpec, E> {
                if v < 0 {
                    Err(E::custom(format!("duration `{v}` is negative")))
                } else {
                    self.visit_u64(v as u64)
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationSpec, E> {
                if !v.is_finite() || v < 0.0 {
                    return Err(E::custom(format!(
                        "duration `{v}` must be a non-negative number of seconds"
                    )));
                }
                match Duration::try_from_secs_f64(v) {
                    Ok(d) => V::checked(d),
                    Err(_) => Err(E::custom("duration is too long (at most 100 years)")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A job's `timeout:`: a duration, or `auto`, which the run settles from the job's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutSpec {
    After(Duration),
    Auto,
}

impl<'de> Deserialize<'de> for TimeoutSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use de::value::{F64Deserializer, I64Deserializer, StrDeserializer, U64Deserializer};
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeoutSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `30s`, `10m` or `1h 30m`, or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TimeoutSpec, E> {
                let t = s.trim();
                if t == "auto" {
                    return Ok(TimeoutSpec::Auto);
                }
                if t.starts_with(char::is_alphabetic) {
                    return Err(E::custom(format!(
                        "invalid timeout `{s}`; write a duration like `30s`, `10m` or `1h 30m`, or `auto` to take it from the job's history"
                    )));
                }
                DurationSpec::deserialize(StrDeserializer::<E>::new(s)).map(TimeoutSpec::from)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeoutSpec, E> {
                DurationSpec::deserialize(U64Deserializer::<E>::new(v)).map(TimeoutSpec::from)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeoutSpec, E> {
                DurationSpec::deserialize(I64Deserializer::<E>::new(v)).map(TimeoutSpec::from)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimeoutSpec, E> {
                DurationSpec::deserialize(F64Deserializer::<E>::new(v)).map(TimeoutSpec::from)
            }
        }
        d.deserialize_any(V)
    }
}

impl From<DurationSpec> for TimeoutSpec {
    fn from(d: DurationSpec) -> Self {
        TimeoutSpec::After(d.0)
    }
}
