//! The one duration grammar, used by every flag (through clap's `value_parser`), every file field
//! (`pilum.yaml`, recipe declarations, pools files, through serde) and every script option.
//!
//! Grammar (humantime-style): one or more `<number><unit>` terms, optionally separated by spaces,
//! or a bare number of seconds. Numbers are decimal (`1.5h`); units are `ms`, `s`/`sec`/`secs`,
//! `m`/`min`/`mins`, `h`/`hr`/`hrs`/`hour`/`hours`, `d`/`day`/`days` (and the long spellings
//! `second(s)`, `minute(s)`). Examples: `250ms`, `90`, `90s`, `1m30s`, `1h 15m`, `2d`.
//!
//! Bounds: a duration is between 0 and [`MAX`] (366 days) inclusive; anything longer, negative,
//! not finite or with a term over the bound is an error, never a panic or an overflow. Fields
//! that must be positive (timeouts) use [`parse_positive`] or check [`is_zero`](Duration::is_zero)
//! themselves, so `0` reads as "no time" only where that means something.

use std::fmt;
use std::time::Duration;

/// The longest duration pilum accepts anywhere: 366 days.
pub(crate) const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a duration did not parse. All wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    Empty,
    /// A term without a number, or a number that does not parse (`m`, `1..5s`).
    BadNumber {
        text: String,
    },
    UnknownUnit {
        unit: String,
        text: String,
    },
    /// `1m30`: a number without a unit after another term.
    MissingUnit {
        number: String,
        text: String,
    },
    Negative {
        text: String,
    },
    TooLong {
        text: String,
    },
    /// `0` where a positive duration is required.
    Zero {
        text: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty duration (expected e.g. `30s`, `5m`, `1h30m`)"),
            Self::BadNumber { text } => {
                write!(f, "invalid duration `{text}` (expected e.g. `250ms`, `30s`, `5m`, `1h30m`)")
            }
            Self::UnknownUnit { unit, text } => write!(
                f,
                "unknown duration unit `{unit}` in `{text}` (use ms, s, m, h or d, e.g. `1m30s`)"
            ),
            Self::MissingUnit { number, text } => {
                write!(f, "missing unit after `{number}` in `{text}` (e.g. `1m30s`)")
            }
            Self::Negative { text } => write!(f, "duration `{text}` is negative"),
            Self::TooLong { text } => {
                write!(f, "duration `{text}` is longer than the maximum of 366 days")
            }
            Self::Zero { text } => write!(f, "duration `{text}` must be greater than zero"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parse a duration in the grammar above. `0` and `0s` are accepted.
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Some(rest) = t.strip_prefix('-')
        && !rest.is_empty()
    {
        return Err(DurationError::Negative { text: t.to_string() });
    }
    // A bare number is seconds.
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds_term(t, 1, t);
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(DurationError::BadNumber { text: t.to_string() });
        }
        let after = after.trim_start();
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, tail) = after.split_at(unit_len);
        // A unitless number is only allowed as the whole text (handled above).
        if unit.is_empty() {
            return Err(DurationError::MissingUnit { number: num.to_string(), text: t.into() });
        }
        let (mult_ms, is_ms) = match unit {
            "ms" | "msec" | "msecs" | "millis" => (1, true),
            "s" | "sec" | "secs" | "second" | "seconds" => (1, false),
            "m" | "min" | "mins" | "minute" | "minutes" => (60, false),
            "h" | "hr" | "hrs" | "hour" | "hours" => (3600, false),
            "d" | "day" | "days" => (86_400, false),
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_string(),
                    text: t.to_string(),
                });
            }
        };
        let term = if is_ms { millis_term(num, t)? } else { seconds_term(num, mult_ms, t)? };
        total = total.checked_add(term).ok_or_else(|| DurationError::TooLong { text: t.into() })?;
        if total > MAX {
            return Err(DurationError::TooLong { text: t.to_string() });
        }
        rest = tail.trim_start();
    }
    Ok(total)
}

/// Parse a duration that must be greater than zero (timeouts, intervals).
pub(crate) fn parse_positive(text: &str) -> Result<Duration, DurationError> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(DurationError::Zero { text: text.trim().to_string() });
    }
    Ok(d)
}

/// A number of seconds from a file or script (YAML `90`, `1.5`, Rhai `30`). Rejects negative,
/// non-finite and over-long values instead of panicking in `Duration::from_secs_f64`.
pub(crate) fn from_secs_f64(secs: f64) -> Result<Duration, DurationError> {
    let text = || format_number(secs);
    if secs.is_nan() {
        return Err(DurationError::BadNumber { text: text() });
    }
    if secs < 0.0 {
        return Err(DurationError::Negative { text: text() });
    }
    if !secs.is_finite() || secs > MAX.as_secs_f64() {
        return Err(DurationError::TooLong { text: text() });
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A whole number of seconds from a file or script (may be negative or huge: checked).
pub(crate) fn from_secs_i64(secs: i64) -> Result<Duration, DurationError> {
    if secs < 0 {
        return Err(DurationError::Negative { text: secs.to_string() });
    }
    let d = Duration::from_secs(secs.unsigned_abs());
    if d > MAX {
        return Err(DurationError::TooLong { text: secs.to_string() });
    }
    Ok(d)
}

/// For clap: `#[arg(value_parser = crate::duration::flag)]`.
pub(crate) fn flag(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

/// For clap, where zero is meaningless (timeouts).
pub(crate) fn positive_flag(text: &str) -> Result<Duration, String> {
    parse_positive(text).map_err(|e| e.to_string())
}

/// The shortest text in this grammar that reads back as `d` at millisecond precision:
/// `90s` → `1m30s`, `1500ms` → `1.5s`, `0` → `0s`.
pub(crate) fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (mins, rem) = (rem / 60_000, rem % 60_000);
    let (secs, millis) = (rem / 1000, rem % 1000);
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m")] {
        if n > 0 {
            s.push_str(&format!("{n}{unit}"));
        }
    }
    match (secs, millis) {
        (0, 0) => {}
        (0, m) if s.is_empty() => s.push_str(&format!("{m}ms")),
        (sec, 0) => s.push_str(&format!("{sec}s")),
        (sec, m) => {
            let frac = format!("{m:03}");
            s.push_str(&format!("{sec}.{}s", frac.trim_end_matches('0')));
        }
    }
    s
}

/// serde: a duration field written as text (`"1m30s"`) or a number of seconds (`90`, `1.5`).
/// `#[serde(deserialize_with = "crate::duration::deserialize")]`.
pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let raw = <Raw as serde::Deserialize>::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a duration such as `30s`, `5m`, `1h30m` or seconds")
    })?;
    match raw {
        Raw::Int(n) => from_secs_i64(n),
        Raw::Float(f) => from_secs_f64(f),
        Raw::Text(t) => parse(&t),
    }
    .map_err(serde::de::Error::custom)
}

fn seconds_term(num: &str, mult: u64, text: &str) -> Result<Duration, DurationError> {
    let n: f64 = num.parse().map_err(|_| DurationError::BadNumber { text: text.to_string() })?;
    let secs = n * mult as f64;
    if !secs.is_finite() || secs > MAX.as_secs_f64() {
        return Err(DurationError::TooLong { text: text.to_string() });
    }
    Ok(Duration::from_secs_f64(secs))
}

fn millis_term(num: &str, text: &str) -> Result<Duration, DurationError> {
    let n: f64 = num.parse().map_err(|_| DurationError::BadNumber { text: text.to_string() })?;
    let secs = n / 1000.0;
    if !secs.is_finite() || secs > MAX.as_secs_f64() {
        return Err(DurationError::TooLong { text: text.to_string() });
    }
    Ok(Duration::from_secs_f64(secs))
}

fn format_number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn grammar() {
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h 15m"), Duration::from_secs(4500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2 days"), Duration::from_secs(2 * 86_400));
        assert_eq!(ok("10 minutes"), Duration::from_secs(600));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok(" 5m "), Duration::from_secs(300));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in ["", "soon", "5 parsecs", "m", "1..5s", "-1", "-5s", "1s2", "5s x"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn bounds_are_errors_not_panics() {
        for huge in [
            "999999999999999999h",
            "18446744073709551615s",
            "9223372036854775807",
            "1e300",
            "367d",
            "366d1s",
        ] {
            assert!(parse(huge).is_err(), "{huge} should be rejected");
        }
        assert_eq!(ok("366d"), MAX);
        assert!(from_secs_f64(f64::INFINITY).is_err());
        assert!(from_secs_f64(f64::NAN).is_err());
        assert!(from_secs_f64(-1.0).is_err());
        assert!(from_secs_f64(1e300).is_err());
        assert!(from_secs_i64(i64::MAX).is_err());
        assert!(from_secs_i64(-1).is_err());
        assert_eq!(from_secs_i64(30).unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn positive_rejects_zero() {
        assert_eq!(parse_positive("0s"), Err(DurationError::Zero { text: "0s".into() }));
        assert!(parse_positive("1ms").is_ok());
    }

    #[test]
    fn format_reads_back() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(86_400 + 60), "1d1m"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(ok(s), d);
        }
    }

    #[test]
    fn serde_accepts_text_and_numbers() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize")]
            d: Duration,
        }
        let t: T = serde_yaml::from_str("d: 1m30s").unwrap();
        assert_eq!(t.d, Duration::from_secs(90));
        let t: T = serde_yaml::from_str("d: 2.5").unwrap();
        assert_eq!(t.d, Duration::from_millis(2500));
        for bad in ["d: .inf", "d: -1", "d: 9223372036854775807", "d: 1e300", "d: [1]"] {
            assert!(serde_yaml::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
