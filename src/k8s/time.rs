//! Timestamps as Kubernetes writes them: `metav1.Time` (RFC 3339, whole
//! seconds, UTC) and `metav1.MicroTime` (microseconds). The one clock of
//! the Kubernetes adapter's strings; the sandbox uses it too.

use jiff::Timestamp;

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `metav1.Time`: `2006-01-02T15:04:05Z`, truncated to the second as
/// Kubernetes does.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metav1.MicroTime`: `2006-01-02T15:04:05.000000Z`.
pub fn rfc3339_micros(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// The current time as a `metav1.Time` string.
pub fn now_string() -> String {
    rfc3339(now())
}

/// The current time as a `metav1.MicroTime` string.
pub fn now_micros() -> String {
    rfc3339_micros(now())
}

/// Parses a `metav1.Time` or `MicroTime` (any RFC 3339 timestamp).
pub fn parse(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_those_of_kubernetes() {
        for (nanos, time, micro) in [
            (0, "2025-01-02T03:04:05Z", "2025-01-02T03:04:05.000000Z"),
            (
                123_456_789,
                "2025-01-02T03:04:05Z",
                "2025-01-02T03:04:05.123456Z",
            ),
            (
                999_999_999,
                "2025-01-02T03:04:05Z",
                "2025-01-02T03:04:05.999999Z",
            ),
        ] {
            let t = Timestamp::new(1_735_787_045, nanos).unwrap();
            assert_eq!(rfc3339(t), time);
            assert_eq!(rfc3339_micros(t), micro);
            assert_eq!(parse(time).map(|p| p.as_second()), Some(t.as_second()));
            assert_eq!(
                parse(micro).map(|p| p.subsec_microsecond()),
                Some(t.subsec_microsecond())
            );
        }
        assert_eq!(parse("yesterday"), None);
        let s = now_string();
        assert!(s.ends_with('Z') && s.len() == 20, "{s}");
        let s = now_micros();
        assert!(s.ends_with('Z') && s.len() == 27, "{s}");
    }
}
