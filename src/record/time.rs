//! Times and durations as records show them: RFC 3339 with milliseconds, short durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Milliseconds since the epoch (negative before it), as the store keeps times.
pub fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// RFC 3339 in UTC with milliseconds, as used in JSON and tables.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Short human duration: `12ms`, `3.40s`, `2m05s`, `1h02m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// A duration to a tenth of a second (`0.1s`, `12.0s`), longer ones as `format_duration`:
/// for texts that compare two durations.
pub fn format_tenths(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format_duration(d)
    }
}

pub(super) mod unix_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// A record's start and end as the store writes them: milliseconds since the epoch, shorter
/// than RFC 3339 text and with nothing to format. Text (records written before schema 8)
/// still reads.
pub(super) mod millis {
    use super::*;
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(to_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        d.deserialize_any(Millis)
    }

    struct Millis;

    impl de::Visitor<'_> for Millis {
        type Value = SystemTime;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("milliseconds since the epoch or an RFC 3339 time")
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<SystemTime, E> {
            Ok(from_millis(ms))
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<SystemTime, E> {
            i64::try_from(ms).map(from_millis).map_err(E::custom)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<SystemTime, E> {
            humantime::parse_rfc3339(s).map_err(E::custom)
        }
    }
}

pub(super) mod secs_f64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
