//! Byte sizes: a plain integer (bytes) or a string with a binary unit: `"512KiB"`, `"1MiB"`.
//!
//! Only IEC units are accepted (`B`, `KiB`, `MiB`, `GiB`): `"1MB"` is ambiguous (10^6 or 2^20) and
//! is refused with a hint rather than guessed.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// The string is empty.
    Empty,
    /// No digits before the unit.
    MissingNumber,
    /// A unit other than `B`, `KiB`, `MiB`, `GiB`.
    UnknownUnit(String),
    /// The value does not fit 64 bits (or the target integer).
    Overflow,
    /// A negative integer.
    Negative,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty size"),
            Self::MissingNumber => f.write_str("a whole number must come before the unit"),
            Self::UnknownUnit(u) => {
                write!(f, "unknown unit {u:?} (use B, KiB, MiB or GiB)")
            }
            Self::Overflow => f.write_str("too large"),
            Self::Negative => f.write_str("must not be negative"),
        }
    }
}

impl std::error::Error for SizeError {}

/// Parses `"<digits>[unit]"` with unit `B`, `KiB`, `MiB` or `GiB` (no unit = bytes).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(if text.starts_with('-') {
            SizeError::Negative
        } else {
            SizeError::MissingNumber
        });
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::Overflow)?;
    let scale: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(SizeError::UnknownUnit(other.to_owned())),
    };
    n.checked_mul(scale).ok_or(SizeError::Overflow)
}

const EXPECTING: &str = r#"a size in bytes: an integer or a string such as "512KiB" or "1MiB""#;

/// Serde adapter for `u64` fields.
pub(crate) fn deserialize_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

/// Serde adapter for `usize` fields.
pub(crate) fn deserialize_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = d.deserialize_any(SizeVisitor)?;
    usize::try_from(n).map_err(|_| de::Error::custom(format!("size {n} is too large")))
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(|e| E::custom(format!("expected {EXPECTING}, got {v:?}: {e}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format!(
                "expected {EXPECTING}, got {v}: must not be negative"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
    }

    #[test]
    fn rejects_ambiguous_and_malformed_sizes() {
        assert_eq!(parse_size("1MB"), Err(SizeError::UnknownUnit("MB".into())));
        assert_eq!(parse_size("1k"), Err(SizeError::UnknownUnit("k".into())));
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("KiB"), Err(SizeError::MissingNumber));
        assert_eq!(parse_size("-1KiB"), Err(SizeError::Negative));
        assert_eq!(parse_size("17179869184GiB"), Err(SizeError::Overflow));
    }
}
