//! Go's duration syntax (`time.ParseDuration`), as kubelet's config file and flags write
//! durations: `10s`, `1m0s`, `2h45m`, `1.5h`, `300ms`, `0`. Written by hand: the crates that parse
//! durations (humantime and the like) take a different, wider syntax (`1 day`, spaces), so a value
//! kubelet would refuse would pass here.
//!
//! Rules kept from Go: a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), an optional leading sign, and the lone `0`.
//! Arithmetic is in integer nanoseconds and, as in Go, anything above 2^63-1 ns (about 292 years)
//! overflows. Unlike Go a negative duration is refused: no kubelet setting takes one.

use std::time::Duration;

use thiserror::Error;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("empty")]
    Empty,
    #[error("a number needs a unit (ns, us, ms, s, m, h)")]
    MissingUnit,
    #[error("unknown unit {0:?} (ns, us, ms, s, m, h)")]
    UnknownUnit(String),
    #[error("expected a number")]
    ExpectedNumber,
    #[error("must not be negative")]
    Negative,
    #[error("too long")]
    Overflow,
}

/// The largest duration Go represents: i64::MAX nanoseconds.
const MAX_NANOS: u128 = 9_223_372_036_854_775_807;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Splits the leading ASCII digits off `s`.
fn digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a Go duration.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, tail) = digits(rest);
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(after) => digits(after),
            None => ("", tail),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::ExpectedNumber);
        }
        let unit_end = tail
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit);
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit(unit.into()))?;
        total += component(whole, fraction, scale)?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
        rest = tail;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, nanos))
}

/// `whole.fraction` units in nanoseconds; the fraction's digits beyond a nanosecond truncate.
fn component(whole: &str, fraction: &str, scale: u128) -> Result<u128, DurationError> {
    let mut value: u128 = 0;
    for d in whole.bytes() {
        value = value * 10 + u128::from(d - b'0');
        if value > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
    }
    let mut nanos = value * scale;
    let (mut numerator, mut denominator) = (0u128, 1u128);
    // 19 digits already resolve below a nanosecond of an hour; the rest cannot change the sum.
    for d in fraction.bytes().take(19) {
        numerator = numerator * 10 + u128::from(d - b'0');
        denominator *= 10;
    }
    nanos += numerator * scale / denominator;
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn kubelets_written_forms_parse() {
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1m0s"), Duration::from_secs(60));
        assert_eq!(ok("2h45m"), Duration::from_secs(2 * 3600 + 45 * 60));
        assert_eq!(ok("4h0m0s"), Duration::from_secs(4 * 3600));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0"), Duration::ZERO, "Go accepts a lone 0");
        assert_eq!(ok("+5m"), Duration::from_secs(300));
    }

    #[test]
    fn fractions_and_small_units() {
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("1us"), Duration::from_micros(1));
        assert_eq!(ok("1\u{b5}s"), Duration::from_micros(1));
        assert_eq!(ok("1\u{3bc}s"), Duration::from_micros(1));
        assert_eq!(ok("1h1m1s1ms1us1ns"), Duration::new(3661, 1_001_001));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(
            ok("0.0000000009s"),
            Duration::ZERO,
            "below a nanosecond truncates"
        );
    }

    #[test]
    fn what_go_refuses_is_refused() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("-"), Err(DurationError::Empty));
        assert_eq!(parse("10"), Err(DurationError::MissingUnit));
        assert_eq!(parse("1m30"), Err(DurationError::MissingUnit));
        assert_eq!(parse("abc"), Err(DurationError::ExpectedNumber));
        assert_eq!(parse("s"), Err(DurationError::ExpectedNumber));
        assert_eq!(parse("."), Err(DurationError::ExpectedNumber));
        assert_eq!(parse("10x"), Err(DurationError::UnknownUnit("x".into())));
        assert_eq!(parse("1d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(parse("1 s"), Err(DurationError::UnknownUnit(" s".into())));
        assert!(parse("10s ").is_err());
    }

    #[test]
    fn negative_durations_are_refused_but_minus_zero_is_zero() {
        assert_eq!(parse("-1s"), Err(DurationError::Negative));
        assert_eq!(parse("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse("-0"), Ok(Duration::ZERO));
    }

    #[test]
    fn go_overflow_bound() {
        // 2562047h47m16.854775807s is i64::MAX nanoseconds: the last value Go accepts.
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::new(9_223_372_036, 854_775_807)
        );
        assert_eq!(
            parse("2562047h47m16.854775808s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse("9999999999999999999h"), Err(DurationError::Overflow));
        assert_eq!(
            parse("99999999999999999999999999999999999999s"),
            Err(DurationError::Overflow)
        );
    }
}
