//! Instants and the clock they come from.
//!
//! Domain code never reads the system clock: it is handed a [`Clock`], so tests move time instead
//! of sleeping, and the engine can refuse to let time run backwards in the log.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::span::Span;

/// An absolute UTC instant with millisecond precision.
///
/// Serialised as RFC 3339 with exactly three fractional digits and a `Z` suffix
/// (`2026-11-23T20:40:00.000Z`), the only form accepted back, so a signed record has one
/// encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Earliest instant accepted (2000-01-01T00:00:00Z): anything older is a broken clock.
const MIN_MILLIS: i64 = 946_684_800_000;
/// Latest instant accepted (9999-12-31T23:59:59.999Z).
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch, if it lies in the accepted range
    /// (years 2000 to 9999).
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        (MIN_MILLIS..=MAX_MILLIS)
            .contains(&millis)
            .then_some(Self(millis))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `span`, or `None` past the accepted range.
    pub fn checked_add(self, span: Span) -> Option<Self> {
        let add = i64::try_from(span.as_secs()).ok()?.checked_mul(1000)?;
        Self::from_unix_millis(self.0.checked_add(add)?)
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// Parses the canonical RFC 3339 form and, for user input, any RFC 3339 instant or a bare
    /// date (`2026-11-23`, meaning its midnight UTC).
    pub fn parse_lenient(s: &str) -> Result<Self, String> {
        let dt = if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            dt.with_timezone(&Utc)
        } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).ok_or("invalid date")?)
        } else {
            return Err(format!(
                "{s:?} is not a time; use RFC 3339 (2026-11-23T08:00:00Z) or a date (2026-11-23)"
            ));
        };
        Self::from_unix_millis(dt.timestamp_millis())
            .ok_or_else(|| format!("{s:?} is outside the years 2000 to 9999"))
    }

    fn parse_canonical(s: &str) -> Option<Self> {
        let dt = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
        let ts = Self::from_unix_millis(dt.timestamp_millis())?;
        (ts.to_string() == s).then_some(ts)
    }

    fn datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.datetime().to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_canonical(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not a canonical UTC time like 2026-11-23T20:40:00.000Z"
            ))
        })
    }
}

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(Utc::now().timestamp_millis()).unwrap_or(Timestamp(MIN_MILLIS))
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `span`.
    pub fn advance(&self, span: Span) {
        let add = i64::try_from(span.as_secs()).unwrap_or(i64::MAX / 2000) * 1000;
        self.0.fetch_add(add, Ordering::SeqCst);
    }

    /// Sets the clock to `t`, forwards or backwards (to simulate a wall-clock jump).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips_and_is_the_only_form_accepted() {
        let t = Timestamp::from_unix_millis(1_795_466_400_123).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-23T20:40:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        for other in [
            "\"2026-11-23T20:40:00.123+00:00\"",
            "\"2026-11-23T20:40:00.12Z\"",
            "\"2026-11-23T20:40:00Z\"",
            "\"2026-11-23t20:40:00.123z\"",
        ] {
            assert!(
                serde_json::from_str::<Timestamp>(other).is_err(),
                "{other} is a second encoding of a signed instant"
            );
        }
    }

    #[test]
    fn lenient_parse_accepts_dates_and_offsets() {
        let d = Timestamp::parse_lenient("2026-11-23").unwrap();
        assert_eq!(d.to_string(), "2026-11-23T00:00:00.000Z");
        let o = Timestamp::parse_lenient("2026-11-23T01:00:00+01:00").unwrap();
        assert_eq!(o, d);
        assert!(Timestamp::parse_lenient("yesterday").is_err());
        assert!(Timestamp::parse_lenient("1970-01-01").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Timestamp::from_unix_millis(1_800_000_000_000).unwrap();
        let c = ManualClock::new(start);
        let shared = c.clone();
        c.advance(Span::from_secs(90));
        assert_eq!(shared.now().millis_since(start), 90_000);
        c.set(start);
        assert_eq!(shared.now(), start);
    }
}
