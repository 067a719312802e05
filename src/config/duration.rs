//! Durations written as an integer and a unit: `"50us"`, `"500ms"`, `"60s"`, `"10m"`, `"8h"`, `"1d"`.
//!
//! A bare number is refused on purpose: `timeout = 60` does not say whether it means seconds or
//! milliseconds, and guessing wrong is a silent misconfiguration.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The string is empty.
    Empty,
    /// No digits before the unit (e.g. `"s"`, `"-5s"`, `"1.5s"`).
    MissingNumber,
    /// Digits without a unit (e.g. `"60"`).
    MissingUnit,
    /// A unit other than `us`, `ms`, `s`, `m`, `h`, `d`.
    UnknownUnit(String),
    /// The value does not fit a `Duration`.
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty duration"),
            Self::MissingNumber => f.write_str("a whole number must come before the unit"),
            Self::MissingUnit => f.write_str("a unit is required (us, ms, s, m, h or d)"),
            Self::UnknownUnit(u) => write!(f, "unknown unit {u:?} (use us, ms, s, m, h or d)"),
            Self::Overflow => f.write_str("too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `"<digits><unit>"` with unit `us`, `ms`, `s`, `m`, `h` or `d`; surrounding spaces are
/// ignored.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::MissingNumber);
    }
    let unit = unit.trim_start();
    if unit.is_empty() {
        return Err(DurationError::MissingUnit);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    let secs_per_unit: u64 = match unit {
        // Microseconds for the runtime's spin and preemption knobs.
        "us" => return Ok(Duration::from_micros(n)),
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => return Err(DurationError::UnknownUnit(other.to_owned())),
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or(DurationError::Overflow)
}

/// Formats a duration back into the configuration syntax, choosing the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000 != 0 {
        // Sub-microsecond precision cannot be written in the syntax; say so instead of rounding.
        return format!("{d:?}");
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}us", d.as_micros());
    }
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s != 0 && s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// Serde adapter: `#[serde(deserialize_with = "duration::deserialize")]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

const EXPECTING: &str = r#"a duration such as "500ms", "60s", "10m" or "8h""#;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(|e| E::custom(format!("expected {EXPECTING}, got {v:?}: {e}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "expected {EXPECTING} (a string with a unit), got the bare number {v}"
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "expected {EXPECTING} (a string with a unit), got the bare number {v}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3 s"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_malformed_durations() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("60"), Err(DurationError::MissingUnit));
        assert_eq!(parse_duration("s"), Err(DurationError::MissingNumber));
        assert_eq!(parse_duration("-5s"), Err(DurationError::MissingNumber));
        assert_eq!(
            parse_duration("1.5s"),
            Err(DurationError::UnknownUnit(".5s".into()))
        );
        assert_eq!(
            parse_duration("5sec"),
            Err(DurationError::UnknownUnit("sec".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(8 * 3600)), "8h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(250)), "250us");
        for text in ["20us", "1500ms", "59s", "7m", "3h", "2d"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
