//! Instants and the clock they come from.
//!
//! Domain code never reads the system clock: it is handed a [`Clock`], so tests move time instead
//! of sleeping, and the engine can refuse to let time run backwards in the log.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
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

    /// Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`, the only form written. Fixed positions, so the
    /// form is canonical by construction (no offsets, no other precision, no leap seconds).
    fn parse_canonical(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 24 {
            return None;
        }
        for (i, sep) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ] {
            if b[i] != sep {
                return None;
            }
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second, milli) =
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let millis = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli;
        Self::from_unix_millis(millis)
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// The canonical text, `YYYY-MM-DDTHH:MM:SS.mmmZ`, as fixed-size ASCII.
    fn canonical_bytes(self) -> [u8; 24] {
        let (days, ms) = (self.0.div_euclid(86_400_000), self.0.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (0..width).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, ms / 3_600_000);
        put(14, 2, ms / 60_000 % 60);
        put(17, 2, ms / 1000 % 60);
        put(20, 3, ms % 1000);
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = self.canonical_bytes();
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let out = self.canonical_bytes();
        s.serialize_str(std::str::from_utf8(&out).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::from_str_with(d, "a UTC time like 2026-11-23T20:40:00.000Z", |s| {
            Self::parse_canonical(s).ok_or_else(|| {
                format!("{s:?} is not a canonical UTC time like 2026-11-23T20:40:00.000Z")
            })
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

/// A wall clock that never runs slower than real time: its reading is the later of the wall
/// clock's and the wall time when it was made plus the monotonic time elapsed since. A wall clock
/// stepped back (by an operator, or NTP) therefore never delays an expiry; one stepped forward
/// only brings expiries earlier.
#[derive(Clone)]
pub struct SteadyClock {
    wall: Arc<dyn Clock>,
    started: std::time::Instant,
    started_wall: Timestamp,
}

impl SteadyClock {
    /// Follows `wall` from now on.
    pub fn new(wall: Arc<dyn Clock>) -> Self {
        let started_wall = wall.now();
        SteadyClock {
            wall,
            started: std::time::Instant::now(),
            started_wall,
        }
    }
}

impl std::fmt::Debug for SteadyClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteadyClock")
            .field("started_wall", &self.started_wall)
            .finish_non_exhaustive()
    }
}

impl Clock for SteadyClock {
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let floor = Timestamp(self.started_wall.0.saturating_add(elapsed).min(MAX_MILLIS));
        self.wall.now().max(floor)
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

    #[test]
    fn a_steady_clock_ignores_a_wall_clock_stepped_back_and_follows_one_stepped_forward() {
        let start = Timestamp::parse_lenient("2026-11-24T12:00:00Z").unwrap();
        let wall = ManualClock::new(start);
        let steady = SteadyClock::new(Arc::new(wall.clone()));
        assert!(steady.now() >= start);
        wall.set(Timestamp::from_unix_millis(start.unix_millis() - 3_600_000).unwrap());
        assert!(steady.now() >= start, "a step back does not take it back");
        let ahead = Timestamp::from_unix_millis(start.unix_millis() + 3_600_000).unwrap();
        wall.set(ahead);
        assert_eq!(steady.now(), ahead, "a step forward is followed");
    }

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
    fn fast_format_and_parse_agree_with_chrono_everywhere() {
        // Every day boundary of four centuries plus odd instants, against chrono's formatting.
        let mut ms = MIN_MILLIS;
        while ms < 13_000_000_000_000 {
            for t in [ms, ms + 1, ms + 86_399_999, ms + 45_296_789] {
                let ts = Timestamp::from_unix_millis(t).unwrap();
                let expected = Utc
                    .timestamp_millis_opt(t)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                assert_eq!(ts.to_string(), expected, "formatting {t}");
                assert_eq!(
                    Timestamp::parse_canonical(&expected),
                    Some(ts),
                    "parsing {expected}"
                );
            }
            ms += 86_400_000 * 7 + 3_600_000;
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        for s in [
            "2026-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-01-01T00:00:60.000Z",
            "2026-01-01T00:00:00.000+",
            "+026-01-01T00:00:00.000Z",
        ] {
            assert_eq!(
                Timestamp::parse_canonical(s),
                None,
                "{s} is not a valid instant"
            );
        }
        assert!(Timestamp::parse_canonical("2024-02-29T23:59:59.999Z").is_some());
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
