//! Event time and durations as the contract writes them.
//!
//! Times travel as RFC 3339 strings with an offset and are kept as UTC microseconds,
//! which is more than the millisecond precision the contract asks for and keeps
//! comparisons and arithmetic integer-exact. They are written back in UTC with a `Z`:
//! three fractional digits, or six when the time carries sub-millisecond precision.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in UTC, in microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A span of time in microseconds (never negative in a valid policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

/// Why a time or duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339 with an offset.
    #[error("not an RFC 3339 time with an offset (e.g. 2025-08-12T01:02:03.456Z): {0:?}")]
    BadTime(String),
    /// Outside the range the guard can represent.
    #[error("time out of range: {0:?}")]
    OutOfRange(String),
    /// Not a duration such as `600s`, `10m`, `24h`, `1h30m`.
    #[error("not a duration such as \"600s\", \"10m\", \"24h\" or \"1h30m\": {0:?}")]
    BadDuration(String),
}

impl Timestamp {
    /// The instant `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis * 1_000)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The current wall-clock time. Only the shell calls this; the engine never does.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Parses an RFC 3339 time with an offset.
    ///
    /// # Errors
    /// [`TimeError::BadTime`] when the text is not RFC 3339 with an offset,
    /// [`TimeError::OutOfRange`] when it cannot be represented.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        if let Some(micros) = parse_common_rfc3339(text.as_bytes()) {
            return Ok(Timestamp(micros));
        }
        let parsed =
            DateTime::parse_from_rfc3339(text).map_err(|_| TimeError::BadTime(text.to_owned()))?;
        Ok(Timestamp(parsed.timestamp_micros()))
    }

    /// This instant as a chrono UTC time.
    pub fn to_utc(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// This instant plus a span, saturating at the representable range.
    pub fn plus(self, span: Span) -> Self {
        Timestamp(self.0.saturating_add(span.0))
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub fn whole_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant minus a span, saturating at the representable range.
    pub fn minus(self, span: Span) -> Self {
        Timestamp(self.0.saturating_sub(span.0))
    }

    /// The span from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

/// The hot path of [`Timestamp::parse`]: `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)` with
/// every field in range, as the Do layer writes it. Anything else (a space or
/// lower-case separator, a leap second, more than nine fractional digits, a date that
/// does not exist) returns `None` and goes to chrono, which has the last word.
fn parse_common_rfc3339(b: &[u8]) -> Option<i64> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let frac = num(&rest[1..1 + digits])?;
        // Scale to nanoseconds, then truncate to microseconds as chrono does.
        micros = frac * 10i64.pow(9 - digits as u32) / 1_000;
        rest = &rest[1 + digits..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3_600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = if self.0 % 1_000 == 0 {
            SecondsFormat::Millis
        } else {
            SecondsFormat::Micros
        };
        f.write_str(&self.to_utc().to_rfc3339_opts(format, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::from_text(&text).map_err(serde::de::Error::custom)
    }
}

impl Timestamp {
    /// A message's time as its JSON text gives it: RFC 3339 with an offset, within
    /// the years 1–9999 (what formats back cleanly).
    ///
    /// # Errors
    /// [`TimeError`] when the text is not such a time.
    pub fn from_text(text: &str) -> Result<Self, TimeError> {
        let ts = Timestamp::parse(text)?;
        if !(-62_135_596_800_000_000..=253_402_300_799_999_999).contains(&ts.0) {
            return Err(TimeError::OutOfRange(text.to_owned()));
        }
        Ok(ts)
    }
}

impl Span {
    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: i64) -> Self {
        Span(micros)
    }

    /// A span of whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Span(secs * 1_000_000)
    }

    /// The length of this span, whichever its direction.
    pub const fn abs(self) -> Self {
        Span(self.0.saturating_abs())
    }

    /// Microseconds in this span.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses `"600s"`, `"10m"`, `"24h"`, `"1h30m"`, `"1.5s"`, `"250ms"`, `"7d"`.
    ///
    /// # Errors
    /// [`TimeError::BadDuration`] for anything else, including an empty string and a
    /// bare number without a unit.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::BadDuration(text.to_owned());
        let mut rest = text;
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad());
            }
            let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let micros_per_unit = match &rest[..unit_len] {
                "us" => 1.0,
                "ms" => 1e3,
                "s" => 1e6,
                "m" => 60e6,
                "h" => 3_600e6,
                "d" => 86_400e6,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total += value * micros_per_unit;
        }
        if !total.is_finite() || total > i64::MAX as f64 / 2.0 {
            return Err(bad());
        }
        Ok(Span(total.round() as i64))
    }
}

impl fmt::Display for Span {
    /// Writes the span the way the contract's reasons do: `600 s`, or `1.5 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1_000_000 == 0 {
            write!(f, "{} s", self.0 / 1_000_000)
        } else {
            write!(f, "{} s", self.0 as f64 / 1e6)
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1_000_000 == 0 {
            s.collect_str(&format_args!("{}s", self.0 / 1_000_000))
        } else {
            s.collect_str(&format_args!("{}us", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A span in the largest unit that states it exactly (`10m`, `24h`, `1500ms`, `7us`;
/// `0` for none): what settings and policies are written back with, and read again
/// by [`Span::parse`].
pub fn exact_span(span: Span) -> String {
    let micros = span.0;
    if micros == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("h", 3_600_000_000i64),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if micros % size == 0 {
            return format!("{}{unit}", micros / size);
        }
    }
    format!("{micros}us")
}

/// Writes a span for people: `1h02m`, `4m10s`, `950ms`.
pub fn human_span(span: Span) -> String {
    let micros = span.0.max(0);
    let secs = micros / 1_000_000;
    if secs == 0 {
        return format!("{}ms", micros / 1_000);
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_writes_utc_with_z() {
        let t = Timestamp::parse("2025-08-12T10:02:03+09:00").unwrap();
        assert_eq!(t.to_string(), "2025-08-12T01:02:03.000Z");
        let t = Timestamp::parse("2025-08-12T01:02:03.456789Z").unwrap();
        assert_eq!(t.to_string(), "2025-08-12T01:02:03.456789Z");
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for text in [
            "2025-08-12T01:02:03Z",
            "2025-08-12T01:02:03.4Z",
            "2025-08-12T01:02:03.123456789Z",
            "2024-02-29T23:59:59.999+09:00",
            "1970-01-01T00:00:00-00:30",
            "2000-03-01T00:00:00.000001Z",
            "1969-12-31T23:59:59.5Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(
                parse_common_rfc3339(text.as_bytes()),
                Some(chrono),
                "{text}"
            );
        }
        for text in [
            "2025-02-29T00:00:00Z",
            "2025-08-12 01:02:03Z",
            "2025-08-12T01:02:60Z",
            "2025-08-12T01:02:03",
            "2025-13-01T00:00:00Z",
            "2025-08-12T01:02:03.Z",
        ] {
            assert_eq!(parse_common_rfc3339(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn refuses_times_without_offset() {
        assert!(Timestamp::parse("2025-08-12T01:02:03").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn durations_in_contract_forms() {
        assert_eq!(Span::parse("600s").unwrap(), Span::from_secs(600));
        assert_eq!(Span::parse("10m").unwrap(), Span::from_secs(600));
        assert_eq!(Span::parse("24h").unwrap(), Span::from_secs(86_400));
        assert_eq!(Span::parse("1h30m").unwrap(), Span::from_secs(5_400));
        assert_eq!(Span::parse("250ms").unwrap(), Span::from_micros(250_000));
        for bad in ["", "10", "m", "10x", "-5s", "1..2s"] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

#[cfg(test)]
mod fast_path_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the fast path accepts, chrono accepts with the same instant; what
        /// chrono refuses, the fast path refuses too.
        #[test]
        fn fast_path_never_disagrees_with_chrono(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62, s in 0u32..62,
            frac in proptest::option::of("[0-9]{0,11}"), off in proptest::option::of((any::<bool>(), 0u32..26, 0u32..62)),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let off = off.map_or_else(|| "Z".to_owned(), |(neg, oh, om)| format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }));
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}");
            let chrono = DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_micros()).ok();
            if let Some(fast) = parse_common_rfc3339(text.as_bytes()) {
                prop_assert_eq!(Some(fast), chrono, "{}", text);
            }
            if chrono.is_none() {
                prop_assert_eq!(parse_common_rfc3339(text.as_bytes()), None, "{}", text);
            }
        }
    }
}
