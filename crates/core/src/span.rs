//! Lengths of time written the way people write them: `30m`, `2h`, `1h30m`, `1d`.
//!
//! A [`Span`] is a whole number of seconds. [`Span::parse`] is strict, because spans come from
//! policy files and requests that end up in the signed log: one form per component (`<digits>`
//! then one of `d`, `h`, `m`, `s`), units in that order and each at most once, no spaces, no
//! sign, not zero, and at most [`Span::MAX`] (366 days). [`Display`](fmt::Display) gives the
//! canonical form, which parses back to the same span.
//!
//! ```
//! use breakglass_core::span::Span;
//!
//! let span = Span::parse("90m").unwrap();
//! assert_eq!(span.as_secs(), 5400);
//! assert_eq!(span.to_string(), "1h30m");
//! assert!(Span::parse("0m").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The example every parse error ends with, so a user always sees the expected shape.
const EXPECTED: &str = "expected a duration like 30m, 2h or 1h30m";

/// A length of time in whole seconds.
///
/// Serialised as its canonical display string (`"1h30m"`) and parsed back with [`Span::parse`],
/// so serialised spans obey the same limits as typed ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Span(u64);

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanError {
    /// The string was empty.
    #[error("empty duration; {EXPECTED}")]
    Empty,
    /// The string does not have the `<digits><unit>…` shape.
    #[error("invalid duration {input:?}: {detail}; {EXPECTED}")]
    Malformed {
        /// The offending text (shortened when very long).
        input: String,
        /// What exactly is wrong with it.
        detail: String,
    },
    /// Every component was zero.
    #[error("duration {input:?} is zero; {EXPECTED}")]
    Zero {
        /// The offending text (shortened when very long).
        input: String,
    },
    /// The span is longer than [`Span::MAX`].
    #[error("duration {input:?} exceeds the maximum of {max}")]
    TooLong {
        /// The offending text (shortened when very long).
        input: String,
        /// The longest span accepted.
        max: Span,
    },
}

impl Span {
    /// The longest span [`Span::parse`] accepts: 366 days.
    pub const MAX: Span = Span(366 * DAY);

    /// A span of `secs` seconds.
    ///
    /// Unlike [`Span::parse`] this accepts any value, zero and spans over [`Span::MAX`]
    /// included: it is for spans computed by code, not typed by people.
    pub const fn from_secs(secs: u64) -> Self {
        Span(secs)
    }

    /// The length in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The length in milliseconds, as timestamps count (saturating for spans past any date).
    pub const fn as_millis(self) -> i64 {
        if self.0 > (i64::MAX / 1000) as u64 {
            i64::MAX
        } else {
            self.0 as i64 * 1000
        }
    }

    /// The sum of two spans, or `None` if it overflows `u64` seconds.
    pub fn checked_add(self, other: Span) -> Option<Span> {
        self.0.checked_add(other.0).map(Span)
    }

    /// Parses a duration such as `30m`, `2h`, `1h30m` or `1d12h`.
    ///
    /// Accepted: one or more components `<digits><unit>`, units `d`, `h`, `m`, `s` in that order
    /// and each at most once, with no spaces or sign. The total must be more than zero and at
    /// most [`Span::MAX`].
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        if text.is_empty() {
            return Err(SpanError::Empty);
        }
        let malformed = |detail: String| SpanError::Malformed {
            input: shorten(text),
            detail,
        };
        let too_long = || SpanError::TooLong {
            input: shorten(text),
            max: Span::MAX,
        };
        if text.starts_with(['+', '-']) {
            return Err(malformed("a duration has no sign".into()));
        }

        let mut total: u64 = 0;
        // Index in UNITS of the last unit seen, so units must strictly increase.
        let mut last_unit: Option<usize> = None;
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, _)) = chars.peek() {
            let mut number: Option<u64> = Some(0);
            let mut digits = 0usize;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                number = number
                    .and_then(|n| n.checked_mul(10))
                    .and_then(|n| n.checked_add(u64::from(d)));
                digits += 1;
                chars.next();
            }
            let Some((_, unit)) = chars.next() else {
                let number = &text[start..];
                return Err(malformed(format!(
                    "{number} has no unit (use d, h, m or s)"
                )));
            };
            let Some(index) = UNITS.iter().position(|&(u, _)| u == unit) else {
                return Err(malformed(if unit.is_whitespace() {
                    "spaces are not allowed".to_owned()
                } else if digits == 0 {
                    format!("unexpected {unit:?}")
                } else {
                    format!("unknown unit {unit:?} (use d, h, m or s)")
                }));
            };
            if digits == 0 {
                return Err(malformed(format!("missing number before {unit:?}")));
            }
            match last_unit {
                Some(last) if last == index => {
                    return Err(malformed(format!("unit {unit:?} appears twice")));
                }
                Some(last) if last > index => {
                    return Err(malformed("units must come in the order d, h, m, s".into()));
                }
                _ => {}
            }
            last_unit = Some(index);
            let secs = number
                .and_then(|n| n.checked_mul(UNITS[index].1))
                .and_then(|n| total.checked_add(n))
                .ok_or_else(too_long)?;
            total = secs;
        }
        if total == 0 {
            return Err(SpanError::Zero {
                input: shorten(text),
            });
        }
        if total > Span::MAX.0 {
            return Err(too_long());
        }
        Ok(Span(total))
    }
}

/// Units in the order they must appear, with their length in seconds.
const UNITS: [(char, u64); 4] = [('d', DAY), ('h', HOUR), ('m', MINUTE), ('s', 1)];

/// Keeps error messages one short line even when the input is huge.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 32;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        text.chars().take(LIMIT).collect::<String>() + "…"
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, secs) in UNITS {
            let n = rest / secs;
            rest %= secs;
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Span::parse(s)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpanVisitor;

        impl Visitor<'_> for SpanVisitor {
            type Value = Span;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(SpanVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_match_timestamps_and_saturate() {
        assert_eq!(Span::from_secs(90).as_millis(), 90_000);
        assert_eq!(Span::MAX.as_millis(), 366 * 86_400_000);
        assert_eq!(Span::from_secs(u64::MAX).as_millis(), i64::MAX);
    }

    #[test]
    fn parses_and_prints_canonical_forms() {
        for (text, secs, canonical) in [
            ("30m", 1800, "30m"),
            ("2h", 7200, "2h"),
            ("1h30m", 5400, "1h30m"),
            ("90m", 5400, "1h30m"),
            ("45s", 45, "45s"),
            ("2d", 2 * DAY, "2d"),
            ("1d2h", DAY + 2 * HOUR, "1d2h"),
            ("1d0h5s", DAY + 5, "1d5s"),
            ("0h1m", 60, "1m"),
            ("366d", 366 * DAY, "366d"),
            ("1d2h3m4s", DAY + 2 * HOUR + 3 * MINUTE + 4, "1d2h3m4s"),
        ] {
            let span = Span::parse(text).unwrap_or_else(|e| panic!("{text} is valid: {e}"));
            assert_eq!(span.as_secs(), secs, "{text} is {secs} seconds");
            assert_eq!(span.to_string(), canonical, "{text} prints canonically");
            assert_eq!(
                Span::parse(canonical),
                Ok(span),
                "the canonical form of {text} parses back to the same span"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in [
            "",
            "0m",
            "0s",
            "-5m",
            "+5m",
            "5",
            "m",
            "1h1h",
            "30m1h",
            "5 m",
            " 5m",
            "5m ",
            "5M",
            "1.5h",
            "5w",
            "99999999999999999999s",
            "367d",
            "366d1s",
            "٣m",
        ] {
            let err = Span::parse(text).expect_err(text);
            assert!(
                err.to_string().contains("30m") || matches!(err, SpanError::TooLong { .. }),
                "the message for {text:?} shows an example or the limit: {err}"
            );
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let msg = |t: &str| Span::parse(t).unwrap_err().to_string();
        assert_eq!(
            msg("5"),
            "invalid duration \"5\": 5 has no unit (use d, h, m or s); expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(
            msg("30m1h"),
            "invalid duration \"30m1h\": units must come in the order d, h, m, s; expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(
            msg("1h1h"),
            "invalid duration \"1h1h\": unit 'h' appears twice; expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(
            msg("0m"),
            "duration \"0m\" is zero; expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(msg("367d"), "duration \"367d\" exceeds the maximum of 366d");
        assert_eq!(
            msg("99999999999999999999s"),
            "duration \"99999999999999999999s\" exceeds the maximum of 366d"
        );
        assert_eq!(
            msg("5 m"),
            "invalid duration \"5 m\": spaces are not allowed; expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(
            msg("-5m"),
            "invalid duration \"-5m\": a duration has no sign; expected a duration like 30m, 2h or 1h30m"
        );
        assert_eq!(
            msg("m"),
            "invalid duration \"m\": missing number before 'm'; expected a duration like 30m, 2h or 1h30m"
        );
    }

    #[test]
    fn long_inputs_are_shortened_in_messages() {
        let long = "1".repeat(500) + "x";
        let msg = Span::parse(&long).unwrap_err().to_string();
        assert!(
            msg.len() < 200,
            "a 501-character input gives a short message: {msg}"
        );
    }

    #[test]
    fn arithmetic_and_ordering() {
        let a = Span::from_secs(60);
        let b = Span::parse("1h").unwrap();
        assert!(a < b);
        assert_eq!(a.checked_add(b), Some(Span::from_secs(3660)));
        assert_eq!(Span::from_secs(u64::MAX).checked_add(a), None);
        assert_eq!(Span::from_secs(0).to_string(), "0s");
    }

    #[test]
    fn serde_uses_the_display_string() {
        let span = Span::parse("90m").unwrap();
        assert_eq!(serde_json::to_string(&span).unwrap(), "\"1h30m\"");
        assert_eq!(serde_json::from_str::<Span>("\"1h30m\"").unwrap(), span);
        let err = serde_json::from_str::<Span>("\"0m\"").unwrap_err();
        assert!(err.to_string().contains("is zero"), "{err}");
        assert!(
            serde_json::from_str::<Span>("5400").is_err(),
            "a bare number is ambiguous and refused"
        );
    }
}
