//! Binlog coordinates: a binary (or relay) log file name and a byte
//! position in it, such as `mysql-bin.000012:4567`.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// A position in a binary or relay log.
///
/// Ordering: by file base name (the text before the last `.`), then by the
/// file's numeric extension compared as a number (so `mysql-bin.000010`
/// follows `mysql-bin.000009`, and `mysql-bin.1000000` follows
/// `mysql-bin.999999` when the digit count grows), then by position. Files
/// of different base names are ordered by name only; such coordinates belong
/// to different logs and comparing them means little. A file without a
/// numeric extension sorts before every numbered file of the same base.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogCoordinates {
    pub file: String,
    pub pos: u64,
}

impl BinlogCoordinates {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogCoordinates {
            file: file.into(),
            pos,
        }
    }

    /// Reads `file:pos`. The file may contain `.`, `-` and even `:`; the
    /// split is at the last `:`. White space around either part is ignored.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |reason: &str| ParseError::Coordinates {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (file, pos) = s
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| err("expected file:position"))?;
        let (file, pos) = (file.trim(), pos.trim());
        if file.is_empty() {
            return Err(err("empty file name"));
        }
        if pos.is_empty() || !pos.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("position is not a number"));
        }
        let pos = pos
            .parse::<u64>()
            .map_err(|_| err("position is out of range"))?;
        Ok(BinlogCoordinates::new(file, pos))
    }

    /// The text before the last `.` of the file name (the whole name when
    /// it has no `.`): `mysql-bin` for `mysql-bin.000012`.
    pub fn file_base(&self) -> &str {
        match self.file.rsplit_once('.') {
            Some((base, _)) => base,
            None => &self.file,
        }
    }

    /// The numeric extension of the file name: 12 for `mysql-bin.000012`;
    /// `None` when the extension is missing or not a number.
    pub fn file_index(&self) -> Option<u64> {
        let (_, ext) = self.file.rsplit_once('.')?;
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        ext.parse().ok()
    }

    /// How many files `other` is past `self` (negative when it is before):
    /// `other.file_index() - self.file_index()`. `None` when the two files
    /// have different base names or either has no numeric extension.
    pub fn file_distance(&self, other: &BinlogCoordinates) -> Option<i64> {
        if self.file_base() != other.file_base() {
            return None;
        }
        let mine = i128::from(self.file_index()?);
        let theirs = i128::from(other.file_index()?);
        i64::try_from(theirs - mine).ok()
    }

    /// Whether both coordinates are in the same file.
    pub fn same_file(&self, other: &BinlogCoordinates) -> bool {
        self.file == other.file
    }
}

impl fmt::Display for BinlogCoordinates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl PartialOrd for BinlogCoordinates {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for BinlogCoordinates {
    fn cmp(&self, o: &Self) -> Ordering {
        self.file_base()
            .cmp(o.file_base())
            .then_with(|| match (self.file_index(), o.file_index()) {
                (Some(a), Some(b)) => a.cmp(&b),
                (None, None) => self.file.cmp(&o.file),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
            })
            .then_with(|| self.pos.cmp(&o.pos))
            // Same base, index and position but differently written files
            // (`x.10` and `x.0010`): keep `Ord` consistent with `Eq`.
            .then_with(|| self.file.cmp(&o.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> BinlogCoordinates {
        BinlogCoordinates::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let cases = [
            ("mysql-bin.000012:4567", "mysql-bin.000012", 4567),
            ("mysql-bin.000012:0", "mysql-bin.000012", 0),
            (" db-1-relay-bin.000003 : 4 ", "db-1-relay-bin.000003", 4),
            ("binlog:120", "binlog", 120),
            ("a:b.000001:9", "a:b.000001", 9),
            (
                "mariadb-bin.1000000:18446744073709551615",
                "mariadb-bin.1000000",
                u64::MAX,
            ),
        ];
        for (input, file, pos) in cases {
            let got = BinlogCoordinates::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
            assert_eq!(got, BinlogCoordinates::new(file, pos));
            assert_eq!(got.to_string(), format!("{file}:{pos}"));
            assert_eq!(c(&got.to_string()), got);
        }
        for bad in [
            "",
            "mysql-bin.000012",
            ":4",
            "mysql-bin.000012:",
            "mysql-bin.000012:x",
            "mysql-bin.000012:-1",
            "mysql-bin.000012:+1",
            "mysql-bin.000012:18446744073709551616",
        ] {
            assert!(
                matches!(
                    BinlogCoordinates::parse(bad),
                    Err(ParseError::Coordinates { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn file_index_and_base() {
        let cases = [
            ("mysql-bin.000012", "mysql-bin", Some(12)),
            ("mysql-bin.1000000", "mysql-bin", Some(1_000_000)),
            ("my.host-relay-bin.000002", "my.host-relay-bin", Some(2)),
            ("binlog", "binlog", None),
            ("binlog.", "binlog", None),
            ("binlog.index", "binlog", None),
            ("binlog.99999999999999999999999", "binlog", None),
        ];
        for (file, base, index) in cases {
            let co = BinlogCoordinates::new(file, 4);
            assert_eq!(co.file_base(), base, "{file}");
            assert_eq!(co.file_index(), index, "{file}");
        }
    }

    #[test]
    fn orders_by_file_then_position() {
        // Each is strictly before the next.
        let ascending = [
            "mysql-bin:5",
            "mysql-bin.000001:4",
            "mysql-bin.000001:1000",
            "mysql-bin.000002:4",
            "mysql-bin.000009:99999",
            "mysql-bin.000010:4",
            "mysql-bin.999999:123456",
            "mysql-bin.1000000:4",
            "mysql-bin.1000001:4",
        ];
        for pair in ascending.windows(2) {
            let (a, b) = (c(pair[0]), c(pair[1]));
            assert!(a < b, "{a} < {b}");
            assert!(b > a, "{b} > {a}");
            assert_ne!(a, b);
        }
        assert_eq!(c("x.000010:4").cmp(&c("x.000010:4")), Ordering::Equal);
        // Same index written differently: ordered, not equal.
        assert_ne!(c("x.10:4").cmp(&c("x.000010:4")), Ordering::Equal);
        assert!(c("x.10:4") < c("x.000011:4"));
        // Different logs: by base name.
        assert!(c("a-bin.000009:4") < c("b-bin.000001:4"));
        let mut v: Vec<_> = ascending.iter().rev().map(|s| c(s)).collect();
        v.sort();
        assert_eq!(v, ascending.iter().map(|s| c(s)).collect::<Vec<_>>());
    }

    #[test]
    fn file_distance() {
        let a = c("mysql-bin.000009:4");
        assert_eq!(a.file_distance(&c("mysql-bin.000012:4")), Some(3));
        assert_eq!(c("mysql-bin.000012:4").file_distance(&a), Some(-3));
        assert_eq!(a.file_distance(&a), Some(0));
        assert_eq!(
            c("mysql-bin.999999:4").file_distance(&c("mysql-bin.1000000:4")),
            Some(1)
        );
        assert_eq!(a.file_distance(&c("relay-bin.000012:4")), None);
        assert_eq!(a.file_distance(&c("mysql-bin:4")), None);
        assert!(a.same_file(&c("mysql-bin.000009:77")));
        assert!(!a.same_file(&c("mysql-bin.000010:4")));
    }

    #[test]
    fn serde_is_a_struct() {
        let co = c("mysql-bin.000012:4567");
        let json = serde_json::to_string(&co).unwrap();
        assert_eq!(json, r#"{"file":"mysql-bin.000012","pos":4567}"#);
        assert_eq!(
            serde_json::from_str::<BinlogCoordinates>(&json).unwrap(),
            co
        );
    }
}
