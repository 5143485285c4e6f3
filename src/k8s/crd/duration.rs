//! Durations as written in orca's custom resources: one or more
//! `<digits><unit>` groups with the units `ms`, `s`, `m` and `h`, such as
//! `500ms`, `30s`, `1h30m`. A subset of Go's `time.ParseDuration` format,
//! without signs, fractions or `us`/`ns`.

use std::time::Duration;

use super::CrdError;

/// The schema `pattern` of a duration field. [`parse_duration`] accepts
/// exactly the strings this pattern matches (bar overflow).
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// Parses `1h30m`, `30s`, `500ms`, `0s`...
///
/// Groups may come in any order and repeat (`30s1m` is 90 s), as in Go.
pub fn parse_duration(input: &str) -> Result<Duration, CrdError> {
    let err = |reason: &'static str| CrdError::InvalidDuration {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty duration"));
    }
    let bytes = input.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(err("expected a number before each unit"));
        }
        let number: u64 = input[digits_start..i]
            .parse()
            .map_err(|_| err("number too large"))?;
        let rest = &input[i..];
        let (unit_millis, unit_len) = if rest.starts_with("ms") {
            (1u64, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(err("expected a unit: ms, s, m or h"));
        };
        i += unit_len;
        let millis = number
            .checked_mul(unit_millis)
            .ok_or_else(|| err("duration too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| err("duration too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1m1s500ms").unwrap(),
            Duration::from_millis(61_500)
        );
        assert_eq!(parse_duration("30s1m").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "1", "s", "1x", "1.5s", "-1s", "1 s", " 1s", "1s ", "1us", "h1", "1hh", "1msx",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn pattern_agrees_with_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for s in [
            "1h", "1h30m", "500ms", "0s", "", "1", "1x", "1.5s", "30s1m", "1msx", "m",
        ] {
            assert_eq!(re.is_match(s), parse_duration(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn error_names_input() {
        let e = parse_duration("1x").unwrap_err().to_string();
        assert!(e.contains("\"1x\""), "{e}");
    }
}
