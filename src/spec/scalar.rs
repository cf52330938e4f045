//! What a YAML scalar is, resolved the way `serde_yaml::Value` resolves it (YAML 1.2 core
//! schema, with serde_yaml's own limits), so that the position index names jobs as `Value` did.

use yaml_rust2::parser::Tag;
use yaml_rust2::scanner::TScalarStyle;

/// A resolved scalar; equal scalars are equal mapping keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    /// The bits of the float, with one zero and one NaN.
    Float(u64),
    Text(String),
    /// A local tag (`!name`) and what it tags.
    Tagged(String, Box<Scalar>),
}

const CORE: &str = "tag:yaml.org,2002:";

/// The tag as written in full (`!!str` is `tag:yaml.org,2002:str`).
fn full(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// A local tag makes `Value` keep the node as tagged; core tags only steer resolution.
pub(super) fn is_local(tag: &Tag) -> bool {
    full(tag).starts_with('!')
}

/// The scalar `Value` would read, or `None` when it would refuse it.
pub(super) fn resolve(value: String, style: TScalarStyle, tag: Option<&Tag>) -> Option<Scalar> {
    let plain = style == TScalarStyle::Plain;
    let untagged = |value: String| {
        if plain {
            resolve_plain(value)
        } else {
            Some(Scalar::Text(value))
        }
    };
    let Some(tag) = tag else {
        return untagged(value);
    };
    let tag = full(tag);
    if tag.starts_with('!') {
        return Some(Scalar::Tagged(tag, Box::new(untagged(value)?)));
    }
    match tag.strip_prefix(CORE) {
        Some("bool") => bool_of(&value).map(Scalar::Bool),
        Some("int") => int_of(&value)?.ok().map(Scalar::Int),
        Some("float") => float_of(&value).map(float),
        Some("null") => is_null(&value).then_some(Scalar::Null),
        _ => Some(Scalar::Text(value)),
    }
}

fn resolve_plain(value: String) -> Option<Scalar> {
    if value.is_empty() || is_null(&value) {
        return Some(Scalar::Null);
    }
    if let Some(b) = bool_of(&value) {
        return Some(Scalar::Bool(b));
    }
    if let Some(int) = int_of(&value) {
        // Wider than 64 bits, `Value` has no number to hold it.
        return int.ok().map(Scalar::Int);
    }
    if !leading_zero_digits(&value)
        && let Some(f) = float_of(&value)
    {
        return Some(float(f));
    }
    Some(Scalar::Text(value))
}

fn float(f: f64) -> Scalar {
    let f = if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    };
    Scalar::Float(f.to_bits())
}

fn is_null(s: &str) -> bool {
    matches!(s, "null" | "Null" | "NULL" | "~")
}

fn bool_of(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `Some(Ok)` for an integer that fits 64 bits (signed or not), `Some(Err)` for one that fits
/// only 128, `None` for anything else. Decimal, `0x`, `0o` or `0b`, with one optional sign.
fn int_of(s: &str) -> Option<Result<i128, ()>> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.starts_with(['+', '-']) {
        return None;
    }
    let (radix, digits) = match body.get(..2) {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if leading_zero_digits(s) => return None,
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let (fits, fits_wide) = if negative {
        (magnitude <= 1 << 63, magnitude <= 1 << 127)
    } else {
        (magnitude <= u128::from(u64::MAX), true)
    };
    if fits {
        let n = magnitude as i128;
        Some(Ok(if negative { -n } else { n }))
    } else if fits_wide {
        Some(Err(()))
    } else {
        None
    }
}

fn float_of(s: &str) -> Option<f64> {
    let unsigned = match s.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => s,
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(s, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `0123` is text in YAML 1.2, not a number.
fn leading_zero_digits(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Option<Scalar> {
        resolve(s.to_string(), TScalarStyle::Plain, None)
    }

    #[test]
    fn plain_scalars_resolve_like_value() {
        assert_eq!(plain(""), Some(Scalar::Null));
        assert_eq!(plain("~"), Some(Scalar::Null));
        assert_eq!(plain("True"), Some(Scalar::Bool(true)));
        assert_eq!(plain("42"), Some(Scalar::Int(42)));
        assert_eq!(plain("-0x10"), Some(Scalar::Int(-16)));
        assert_eq!(plain("+0b11"), Some(Scalar::Int(3)));
        assert_eq!(plain("0123"), Some(Scalar::Text("0123".into())));
        assert_eq!(plain("18446744073709551616"), None);
        assert_eq!(
            plain("-9223372036854775808"),
            Some(Scalar::Int(i64::MIN.into()))
        );
        assert!(matches!(plain("1e3"), Some(Scalar::Float(_))));
        assert!(matches!(plain(".nan"), Some(Scalar::Float(_))));
        assert_eq!(plain("inf"), Some(Scalar::Text("inf".into())));
        assert_eq!(plain("0x"), Some(Scalar::Text("0x".into())));
        assert_eq!(plain("1_000"), Some(Scalar::Text("1_000".into())));
        let quoted = resolve("42".into(), TScalarStyle::SingleQuoted, None);
        assert_eq!(quoted, Some(Scalar::Text("42".into())));
    }
}
