//! Kubernetes resource quantities, as far as a node agent needs them: parsing "100m", "1.5",
//! "512Mi", "1G", "2e3" into integers (milli-units for cpu, plain units for the rest) and
//! formatting them back the way the API server would canonicalise them.

use thiserror::Error;

/// A quantity that could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];
const DECIMAL: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    // "E" alone is exa; "E" followed by a number is an exponent (handled below).
    ("E", 18),
];

/// Parses a quantity and returns its value multiplied by `scale` (1000 for milli-units), rounded
/// up as the API server rounds fractional values.
pub fn parse_scaled(text: &str, scale: u128) -> Result<u128, QuantityError> {
    let err = || QuantityError(text.to_string());
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(err());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{}{}", int_part.trim_start_matches('+'), frac_part);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 30 {
        return Err(err());
    }
    let mantissa: u128 = digits.parse().map_err(|_| err())?;
    let frac_digits = i32::try_from(frac_part.len()).map_err(|_| err())?;

    // value = mantissa * 2^shift * 10^(exp10 - frac_digits) * scale
    let (shift, exp10) = if suffix.is_empty() {
        (0, 0)
    } else if let Some((_, s)) = BINARY.iter().find(|(n, _)| *n == suffix) {
        (*s, 0)
    } else if let Some((_, e)) = DECIMAL.iter().find(|(n, _)| *n == suffix) {
        (0, *e)
    } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        (0, exp.parse::<i32>().map_err(|_| err())?)
    } else {
        return Err(err());
    };
    let value = mantissa
        .checked_mul(scale)
        .and_then(|v| v.checked_mul(1u128 << shift))
        .ok_or_else(err)?;
    let exp = exp10 - frac_digits;
    if exp >= 0 {
        10u128
            .checked_pow(exp.unsigned_abs())
            .and_then(|p| value.checked_mul(p))
            .ok_or_else(err)
    } else {
        let div = 10u128.checked_pow(exp.unsigned_abs()).ok_or_else(err)?;
        Ok(value.div_ceil(div))
    }
}

/// Parses a cpu quantity into millicores.
pub fn parse_millis(text: &str) -> Result<u64, QuantityError> {
    u64::try_from(parse_scaled(text, 1000)?).map_err(|_| QuantityError(text.to_string()))
}

/// Parses a byte (or count) quantity into whole units.
pub fn parse_units(text: &str) -> Result<u64, QuantityError> {
    u64::try_from(parse_scaled(text, 1)?).map_err(|_| QuantityError(text.to_string()))
}

/// Formats millicores: whole cores as "2", the rest as "1500m".
pub fn format_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes as kubelet reports memory: in Ki when divisible, else plain bytes.
pub fn format_bytes(bytes: u64) -> String {
    if bytes != 0 && bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Formats bytes as Go's BinarySI quantities print: the largest binary suffix that divides
/// them exactly ("100Mi", "1536Ki"), else plain bytes.
pub fn format_binary(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    BINARY
        .iter()
        .rev()
        .find(|(_, shift)| bytes.is_multiple_of(1u64 << shift))
        .map_or_else(
            || bytes.to_string(),
            |(suffix, shift)| format!("{}{suffix}", bytes >> shift),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_formatting_takes_the_largest_exact_suffix() {
        assert_eq!(format_binary(100 << 20), "100Mi");
        assert_eq!(format_binary(1536 << 10), "1536Ki");
        assert_eq!(format_binary(1 << 30), "1Gi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_binary(0), "0");
    }

    #[test]
    fn parses_cpu_forms() {
        assert_eq!(parse_millis("100m"), Ok(100));
        assert_eq!(parse_millis("2"), Ok(2000));
        assert_eq!(parse_millis("1.5"), Ok(1500));
        assert_eq!(parse_millis("0.0001"), Ok(1), "fractions round up");
        assert_eq!(parse_millis("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_units("2E"),
            Ok(2_000_000_000_000_000_000),
            "E alone is exa"
        );
        assert_eq!(
            parse_units("2E3"),
            Ok(2000),
            "E with a number is an exponent"
        );
    }

    #[test]
    fn parses_byte_forms() {
        assert_eq!(parse_units("512Mi"), Ok(512 << 20));
        assert_eq!(parse_units("1G"), Ok(1_000_000_000));
        assert_eq!(parse_units("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_units("100"), Ok(100));
        assert_eq!(parse_units("1k"), Ok(1000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "m",
            "abc",
            "1x",
            "1..2",
            "-1",
            "1Zi",
            "99999999999999999999999999999Ei",
        ] {
            assert!(parse_units(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_like_the_api_server() {
        assert_eq!(format_millis(2000), "2");
        assert_eq!(format_millis(1500), "1500m");
        assert_eq!(format_bytes(2048), "2Ki");
        assert_eq!(format_bytes(1000), "1000");
    }
}
