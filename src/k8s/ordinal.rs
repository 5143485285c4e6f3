//! StatefulSet pod names: `<set>-<ordinal>`. One reading of the ordinal,
//! used by the operator and by the sandbox's StatefulSet controller.

/// The ordinal of `pod` in the StatefulSet `set`: the decimal number after
/// `<set>-`, as Kubernetes reads it (digits only, at most `i32::MAX`).
/// `None` for a name that is not one of the set's pods.
pub fn pod_ordinal(set: &str, pod: &str) -> Option<u32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u32>()
        .ok()
        .filter(|o| i32::try_from(*o).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_only_for_the_set() {
        for (set, pod, want) in [
            ("db", "db-0", Some(0)),
            ("db", "db-12", Some(12)),
            ("db", "db-007", Some(7)),
            ("db", "db-2147483647", Some(2_147_483_647)),
            ("db", "db-2147483648", None),
            ("db", "db-x", None),
            ("db", "db-", None),
            ("db", "db-+1", None),
            ("db", "db--1", None),
            ("db", "db-1 ", None),
            ("db", "dbx-1", None),
            ("db", "db-a-1", None),
            ("db", "db", None),
            ("db-a", "db-a-1", Some(1)),
            ("", "-3", Some(3)),
        ] {
            assert_eq!(pod_ordinal(set, pod), want, "{set:?} {pod:?}");
        }
    }
}
