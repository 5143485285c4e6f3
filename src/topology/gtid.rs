//! GTID sets of both flavors and their algebra.
//!
//! - MySQL: a GTID is `source:gno` where the source is a server UUID,
//!   optionally with a tag (MySQL 8.4). A GTID set is a set of such GTIDs,
//!   printed as `uuid:1-5:7-9,uuid2:1-3` or, tagged, `uuid:1-3:tag:5-6`.
//!   [`MySqlGtidSet`] is an exact set of transactions.
//! - MariaDB: a GTID is `domain-server_id-seq`. The server variables hold
//!   *positions*: the last GTID per domain (`gtid_binlog_pos`,
//!   `gtid_current_pos`, `gtid_slave_pos`) or per (domain, server_id)
//!   (`gtid_binlog_state`). [`MariaDbGtidPos`] holds either kind, and its
//!   algebra reads a position as "everything up to this seq in this domain".
//! - [`GtidSet`] is either of them, as a snapshot stores it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ParseError;
use super::instance::Flavor;

/// The largest transaction number MySQL accepts (2^63 - 1).
pub const MYSQL_MAX_GNO: u64 = u64::MAX >> 1;

/// The longest tag MySQL accepts, in characters.
pub const MYSQL_MAX_TAG_LEN: usize = 32;

fn gtid_err(input: &str, reason: impl Into<String>) -> ParseError {
    ParseError::Gtid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------
// MySQL
// ---------------------------------------------------------------------------

/// One source of MySQL GTIDs: a server UUID (lower-case, dashed) and an
/// optional tag (lower-case).
type SourceKey = (String, Option<String>);

/// A MySQL GTID set, e.g. `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7`.
///
/// Invariant: every source in the map has at least one interval; intervals
/// are inclusive, sorted, and merged (neither overlapping nor adjacent), so
/// two equal sets compare equal structurally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MySqlGtidSet {
    sets: BTreeMap<SourceKey, Vec<(u64, u64)>>,
}

/// Reads `8-4-4-4-12` hex digits; returns the lower-cased UUID.
fn parse_uuid(input: &str, text: &str) -> Result<String, ParseError> {
    let ok = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(gtid_err(
            input,
            format!("{text:?} is not a UUID (8-4-4-4-12 hex digits)"),
        ))
    }
}

/// Reads a tag `[a-z_][a-z0-9_]{0,31}`; upper case is accepted and folded,
/// as MySQL does.
fn parse_tag(input: &str, text: &str) -> Result<String, ParseError> {
    let tag = text.to_ascii_lowercase();
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit());
    if first_ok && rest_ok && tag.len() <= MYSQL_MAX_TAG_LEN {
        Ok(tag)
    } else {
        Err(gtid_err(
            input,
            format!("{text:?} is not a GTID tag ([a-z_][a-z0-9_]{{0,31}})"),
        ))
    }
}

fn parse_gno(input: &str, text: &str) -> Result<u64, ParseError> {
    let bad = || {
        gtid_err(
            input,
            format!("{text:?} is not a transaction number from 1 to {MYSQL_MAX_GNO}"),
        )
    };
    if !all_digits(text) {
        return Err(bad());
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=MYSQL_MAX_GNO).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

/// Reads `n` or `n-m` (inclusive, `n <= m`).
fn parse_interval(input: &str, text: &str) -> Result<(u64, u64), ParseError> {
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (parse_gno(input, a.trim())?, parse_gno(input, b.trim())?),
        None => {
            let n = parse_gno(input, text)?;
            (n, n)
        }
    };
    if end < start {
        return Err(gtid_err(
            input,
            format!("interval {text:?} ends before it starts"),
        ));
    }
    Ok((start, end))
}

/// Sorts and merges overlapping or adjacent inclusive intervals in place.
fn normalize(v: &mut Vec<(u64, u64)>) {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

/// `a - b` for two normalized interval lists.
fn subtract_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(start, end) in a {
        while j < b.len() && b[j].1 < start {
            j += 1;
        }
        let mut cur = start;
        let mut covered = false;
        let mut k = j;
        while k < b.len() && b[k].0 <= end {
            let (bs, be) = b[k];
            if bs > cur {
                out.push((cur, bs - 1));
            }
            if be >= end {
                covered = true;
                break;
            }
            cur = be + 1;
            k += 1;
        }
        if !covered {
            out.push((cur, end));
        }
        j = k;
    }
    out
}

/// Whether the normalized list `a` covers the inclusive interval `(s, e)`.
fn covers(a: &[(u64, u64)], (s, e): (u64, u64)) -> bool {
    // The last interval of `a` starting at or before `s` is the only candidate,
    // because `a` is merged.
    let idx = a.partition_point(|&(start, _)| start <= s);
    idx > 0 && a[idx - 1].1 >= e
}

impl MySqlGtidSet {
    /// Reads a GTID set as MySQL prints it: `uuid:1-5:7,uuid2:1-3`, with any
    /// white space (MySQL puts `\n` after each comma), upper- or lower-case
    /// hex, and MySQL 8.4 tags (`uuid:tag:1-5`, `uuid:1-3:tag:5-6`; a tag
    /// applies to the intervals after it). Empty elements between commas are
    /// skipped, as MySQL does. The empty string is the empty set.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut sets: BTreeMap<SourceKey, Vec<(u64, u64)>> = BTreeMap::new();
        for element in s.split(',') {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            let Some((uuid_text, rest)) = element.split_once(':') else {
                return Err(gtid_err(
                    s,
                    format!("{element:?} has no transaction numbers"),
                ));
            };
            let uuid = parse_uuid(s, uuid_text.trim())?;
            let mut tag: Option<String> = None;
            // A tag was read and no interval after it yet.
            let mut pending_tag = false;
            for part in rest.split(':') {
                let part = part.trim();
                if part.is_empty() {
                    return Err(gtid_err(s, format!("empty field in {element:?}")));
                }
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let interval = parse_interval(s, part)?;
                    sets.entry((uuid.clone(), tag.clone()))
                        .or_default()
                        .push(interval);
                    pending_tag = false;
                } else {
                    if pending_tag {
                        return Err(gtid_err(
                            s,
                            format!("{element:?} has a tag without transaction numbers"),
                        ));
                    }
                    tag = Some(parse_tag(s, part)?);
                    pending_tag = true;
                }
            }
            if pending_tag {
                return Err(gtid_err(
                    s,
                    format!("{element:?} ends with a tag without transaction numbers"),
                ));
            }
        }
        for v in sets.values_mut() {
            normalize(v);
        }
        Ok(MySqlGtidSet { sets })
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// All transactions in either set.
    pub fn union(&self, o: &Self) -> Self {
        let mut sets = self.sets.clone();
        for (key, ivs) in &o.sets {
            let v = sets.entry(key.clone()).or_default();
            v.extend_from_slice(ivs);
            normalize(v);
        }
        MySqlGtidSet { sets }
    }

    /// The transactions of `self` that are not in `o`.
    pub fn subtract(&self, o: &Self) -> Self {
        let mut sets = BTreeMap::new();
        for (key, ivs) in &self.sets {
            let rest = match o.sets.get(key) {
                Some(other) => subtract_intervals(ivs, other),
                None => ivs.clone(),
            };
            if !rest.is_empty() {
                sets.insert(key.clone(), rest);
            }
        }
        MySqlGtidSet { sets }
    }

    /// The transactions in both sets.
    pub fn intersection(&self, o: &Self) -> Self {
        self.subtract(&self.subtract(o))
    }

    /// `self ⊇ o`: every transaction of `o` is in `self`.
    pub fn contains(&self, o: &Self) -> bool {
        o.sets.iter().all(|(key, ivs)| match self.sets.get(key) {
            Some(mine) => ivs.iter().all(|&iv| covers(mine, iv)),
            None => false,
        })
    }

    /// Whether the single GTID `uuid[:tag]:gno` is in the set. The UUID and
    /// tag are compared case-insensitively.
    pub fn contains_gtid(&self, uuid: &str, tag: Option<&str>, gno: u64) -> bool {
        let key = (
            uuid.trim().to_ascii_lowercase(),
            tag.map(|t| t.trim().to_ascii_lowercase()),
        );
        self.sets
            .get(&key)
            .is_some_and(|ivs| covers(ivs, (gno, gno)))
    }

    /// The number of transactions in the set (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.sets
            .values()
            .flatten()
            .fold(0u64, |acc, &(s, e)| acc.saturating_add(e - s + 1))
    }

    /// The set without any transaction of the given server UUIDs, whatever
    /// their tag. The UUIDs are compared case-insensitively.
    pub fn without_sources(&self, uuids: &[&str]) -> Self {
        let drop: BTreeSet<String> = uuids
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .collect();
        MySqlGtidSet {
            sets: self
                .sets
                .iter()
                .filter(|((uuid, _), _)| !drop.contains(uuid))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The set restricted to the transactions of the given server UUIDs
    /// (any tag), compared case-insensitively.
    pub fn only_sources(&self, uuids: &[&str]) -> Self {
        let keep: BTreeSet<String> = uuids
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .collect();
        MySqlGtidSet {
            sets: self
                .sets
                .iter()
                .filter(|((uuid, _), _)| keep.contains(uuid))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The distinct server UUIDs in the set, sorted, lower-case.
    pub fn sources(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (uuid, _) in self.sets.keys() {
            if out.last() != Some(&uuid.as_str()) {
                out.push(uuid);
            }
        }
        out
    }

    /// Every interval as `(uuid, tag, first, last)` (inclusive), in
    /// canonical order. Handy to inject empty transactions for each GTID.
    pub fn intervals(&self) -> impl Iterator<Item = (&str, Option<&str>, u64, u64)> + '_ {
        self.sets.iter().flat_map(|((uuid, tag), ivs)| {
            ivs.iter()
                .map(move |&(s, e)| (uuid.as_str(), tag.as_deref(), s, e))
        })
    }
}

impl fmt::Display for MySqlGtidSet {
    /// Canonical text: sources sorted by UUID, the untagged intervals of a
    /// UUID first and then each tag with its intervals
    /// (`uuid:1-3:tag:5-6`), single transactions printed alone, elements
    /// joined by `,` without spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current: Option<&str> = None;
        for ((uuid, tag), ivs) in &self.sets {
            if current != Some(uuid.as_str()) {
                if current.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(uuid)?;
                current = Some(uuid);
            }
            if let Some(tag) = tag {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in ivs {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

/// One MariaDB GTID, `domain-server_id-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MariaDbGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl MariaDbGtid {
    /// Reads one `domain-server_id-seq`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        parse_mariadb_gtid(s, s.trim())
    }
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

fn parse_mariadb_gtid(input: &str, text: &str) -> Result<MariaDbGtid, ParseError> {
    let bad = || {
        gtid_err(
            input,
            format!("{text:?} is not a MariaDB GTID (domain-server_id-seq)"),
        )
    };
    let mut parts = text.split('-');
    let (Some(d), Some(s), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !(all_digits(d) && all_digits(s) && all_digits(n)) {
        return Err(bad());
    }
    Ok(MariaDbGtid {
        domain: d.parse().map_err(|_| bad())?,
        server_id: s.parse().map_err(|_| bad())?,
        seq: n.parse().map_err(|_| bad())?,
    })
}

/// A MariaDB GTID position or binlog state: the last seq per
/// (domain, server_id).
///
/// The algebra reads a position as "every transaction up to this seq in its
/// domain" (MariaDB orders transactions within a domain by seq):
/// - `contains(o)`: in each domain of `o`, `self`'s highest seq is at least
///   `o`'s highest seq;
/// - `union`: per (domain, server_id), the higher seq;
/// - `subtract(o)`: the entries of `self` beyond `o`'s highest seq in their
///   domain (or in a domain `o` lacks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MariaDbGtidPos {
    entries: BTreeMap<(u32, u32), u64>,
}

impl MariaDbGtidPos {
    /// Reads a comma-separated list of `domain-server_id-seq`, as in
    /// `gtid_binlog_pos`, `gtid_current_pos`, `gtid_slave_pos` or
    /// `gtid_binlog_state`; white space around elements is ignored. When a
    /// (domain, server_id) appears twice the higher seq wins. The empty
    /// string is the empty position.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.trim().is_empty() {
            return Ok(MariaDbGtidPos::default());
        }
        let mut gtids = Vec::new();
        for element in s.split(',') {
            let element = element.trim();
            if element.is_empty() {
                return Err(gtid_err(s, "empty element in a MariaDB GTID list"));
            }
            gtids.push(parse_mariadb_gtid(s, element)?);
        }
        Ok(MariaDbGtidPos::from_gtids(gtids))
    }

    /// Builds a position from GTIDs; for a repeated (domain, server_id) the
    /// higher seq wins.
    pub fn from_gtids(gtids: impl IntoIterator<Item = MariaDbGtid>) -> Self {
        let mut entries: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        for g in gtids {
            let seq = entries.entry((g.domain, g.server_id)).or_insert(g.seq);
            *seq = (*seq).max(g.seq);
        }
        MariaDbGtidPos { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The GTIDs, sorted by (domain, server_id).
    pub fn gtids(&self) -> Vec<MariaDbGtid> {
        self.entries
            .iter()
            .map(|(&(domain, server_id), &seq)| MariaDbGtid {
                domain,
                server_id,
                seq,
            })
            .collect()
    }

    /// The seq recorded for exactly this (domain, server_id).
    pub fn get(&self, domain: u32, server_id: u32) -> Option<u64> {
        self.entries.get(&(domain, server_id)).copied()
    }

    /// The domains present, sorted.
    pub fn domains(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.entries.keys().map(|&(d, _)| d).collect();
        out.dedup();
        out
    }

    /// The highest seq in `domain`, whatever the server_id.
    pub fn domain_max(&self, domain: u32) -> Option<u64> {
        self.entries
            .range((domain, 0)..=(domain, u32::MAX))
            .map(|(_, &seq)| seq)
            .max()
    }

    /// One GTID per domain, the one with the highest seq (on a tie, the
    /// lowest server_id): what `gtid_binlog_pos` is to `gtid_binlog_state`.
    pub fn per_domain(&self) -> Self {
        let mut best: BTreeMap<u32, MariaDbGtid> = BTreeMap::new();
        for g in self.gtids() {
            match best.get(&g.domain) {
                Some(b) if b.seq >= g.seq => {}
                _ => {
                    best.insert(g.domain, g);
                }
            }
        }
        MariaDbGtidPos::from_gtids(best.into_values())
    }

    /// Per (domain, server_id), the higher seq.
    pub fn union(&self, o: &Self) -> Self {
        let mut entries = self.entries.clone();
        for (&key, &seq) in &o.entries {
            let mine = entries.entry(key).or_insert(seq);
            *mine = (*mine).max(seq);
        }
        MariaDbGtidPos { entries }
    }

    /// The entries of `self` whose seq is beyond `o`'s highest seq in the
    /// same domain, or whose domain `o` lacks.
    pub fn subtract(&self, o: &Self) -> Self {
        MariaDbGtidPos {
            entries: self
                .entries
                .iter()
                .filter(|&(&(domain, _), &seq)| o.domain_max(domain).is_none_or(|m| seq > m))
                .map(|(&k, &v)| (k, v))
                .collect(),
        }
    }

    /// For every domain of `o`, `self`'s highest seq in that domain is at
    /// least `o`'s.
    pub fn contains(&self, o: &Self) -> bool {
        o.domains()
            .into_iter()
            .all(|d| match (self.domain_max(d), o.domain_max(d)) {
                (Some(mine), Some(theirs)) => mine >= theirs,
                (None, Some(_)) => false,
                (_, None) => true,
            })
    }
}

impl fmt::Display for MariaDbGtidPos {
    /// Canonical text: `domain-server_id-seq` sorted by (domain, server_id),
    /// joined by `,` without spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.gtids().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Either flavor
// ---------------------------------------------------------------------------

/// A GTID set of either flavor.
///
/// The empty set is flavor-neutral: the text of an empty set is `""` for
/// both flavors, so deserializing cannot know its flavor (it reads as an
/// empty MariaDB position). To keep values stable across a serde round trip,
/// an empty set of one flavor equals an empty set of the other (`==`), and
/// the binary operations accept an empty operand of the other flavor as the
/// empty set of their own flavor. Only two non-empty sets of different
/// flavors are a flavor mismatch (the operations return `None`).
#[derive(Debug, Clone)]
pub enum GtidSet {
    MySql(MySqlGtidSet),
    MariaDb(MariaDbGtidPos),
}

static EMPTY_MYSQL: MySqlGtidSet = MySqlGtidSet {
    sets: BTreeMap::new(),
};
static EMPTY_MARIADB: MariaDbGtidPos = MariaDbGtidPos {
    entries: BTreeMap::new(),
};

/// Two operands of the same flavor.
enum Pair<'a> {
    MySql(&'a MySqlGtidSet, &'a MySqlGtidSet),
    MariaDb(&'a MariaDbGtidPos, &'a MariaDbGtidPos),
}

impl GtidSet {
    /// Reads a set in the given flavor's text (see [`MySqlGtidSet::parse`]
    /// and [`MariaDbGtidPos::parse`]).
    pub fn parse(flavor: Flavor, s: &str) -> Result<Self, ParseError> {
        Ok(match flavor {
            Flavor::MySql => GtidSet::MySql(MySqlGtidSet::parse(s)?),
            Flavor::MariaDb => GtidSet::MariaDb(MariaDbGtidPos::parse(s)?),
        })
    }

    /// Reads a set whose flavor is told by its text: with a `:` it is MySQL,
    /// a `d-s-n` list is MariaDB, and the empty string is an empty MariaDB
    /// position (see the type's note on empty sets). This is what
    /// deserializing does.
    pub fn parse_any(s: &str) -> Result<Self, ParseError> {
        if s.contains(':') {
            Ok(GtidSet::MySql(MySqlGtidSet::parse(s)?))
        } else {
            Ok(GtidSet::MariaDb(MariaDbGtidPos::parse(s)?))
        }
    }

    /// The empty set of a flavor.
    pub fn empty(flavor: Flavor) -> Self {
        match flavor {
            Flavor::MySql => GtidSet::MySql(MySqlGtidSet::default()),
            Flavor::MariaDb => GtidSet::MariaDb(MariaDbGtidPos::default()),
        }
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            GtidSet::MySql(_) => Flavor::MySql,
            GtidSet::MariaDb(_) => Flavor::MariaDb,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MySql(s) => s.is_empty(),
            GtidSet::MariaDb(p) => p.is_empty(),
        }
    }

    /// How many transactions: a MySQL set's count; for a MariaDB position,
    /// which keeps only the last of each domain and server, the number of
    /// its entries (at least one transaction each).
    pub fn count(&self) -> u64 {
        match self {
            GtidSet::MySql(s) => s.count(),
            GtidSet::MariaDb(p) => p.entries.len() as u64,
        }
    }

    /// This set in `flavor`: itself when it has that flavor, the empty set
    /// of `flavor` when it is empty, `None` otherwise.
    pub fn in_flavor(&self, flavor: Flavor) -> Option<GtidSet> {
        if self.flavor() == flavor {
            Some(self.clone())
        } else if self.is_empty() {
            Some(GtidSet::empty(flavor))
        } else {
            None
        }
    }

    pub fn as_mysql(&self) -> Option<&MySqlGtidSet> {
        match self {
            GtidSet::MySql(s) => Some(s),
            GtidSet::MariaDb(_) => None,
        }
    }

    pub fn as_mariadb(&self) -> Option<&MariaDbGtidPos> {
        match self {
            GtidSet::MariaDb(p) => Some(p),
            GtidSet::MySql(_) => None,
        }
    }

    fn pair<'a>(&'a self, o: &'a GtidSet) -> Option<Pair<'a>> {
        match (self, o) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => Some(Pair::MySql(a, b)),
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => Some(Pair::MariaDb(a, b)),
            (GtidSet::MySql(a), GtidSet::MariaDb(b)) if b.is_empty() => {
                Some(Pair::MySql(a, &EMPTY_MYSQL))
            }
            (GtidSet::MariaDb(a), GtidSet::MySql(b)) if b.is_empty() => {
                Some(Pair::MariaDb(a, &EMPTY_MARIADB))
            }
            (GtidSet::MySql(a), GtidSet::MariaDb(b)) if a.is_empty() => {
                Some(Pair::MariaDb(&EMPTY_MARIADB, b))
            }
            (GtidSet::MariaDb(a), GtidSet::MySql(b)) if a.is_empty() => {
                Some(Pair::MySql(&EMPTY_MYSQL, b))
            }
            _ => None,
        }
    }

    /// `self ⊇ o`; `None` on a flavor mismatch.
    pub fn contains(&self, o: &GtidSet) -> Option<bool> {
        Some(match self.pair(o)? {
            Pair::MySql(a, b) => a.contains(b),
            Pair::MariaDb(a, b) => a.contains(b),
        })
    }

    /// `self ⊋ o`: `self` has everything `o` has, and more; `None` on a
    /// flavor mismatch.
    pub fn is_ahead_of(&self, o: &GtidSet) -> Option<bool> {
        Some(self.contains(o)? && !o.contains(self)?)
    }

    /// `None` on a flavor mismatch.
    pub fn union(&self, o: &GtidSet) -> Option<GtidSet> {
        Some(match self.pair(o)? {
            Pair::MySql(a, b) => GtidSet::MySql(a.union(b)),
            Pair::MariaDb(a, b) => GtidSet::MariaDb(a.union(b)),
        })
    }

    /// `None` on a flavor mismatch.
    pub fn subtract(&self, o: &GtidSet) -> Option<GtidSet> {
        Some(match self.pair(o)? {
            Pair::MySql(a, b) => GtidSet::MySql(a.subtract(b)),
            Pair::MariaDb(a, b) => GtidSet::MariaDb(a.subtract(b)),
        })
    }
}

impl PartialEq for GtidSet {
    /// Same flavor and same content; an empty set equals the empty set of
    /// the other flavor too.
    fn eq(&self, o: &GtidSet) -> bool {
        match (self, o) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => a == b,
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => a == b,
            _ => self.is_empty() && o.is_empty(),
        }
    }
}

impl Eq for GtidSet {}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MySql(s) => s.fmt(f),
            GtidSet::MariaDb(p) => p.fmt(f),
        }
    }
}

impl Serialize for GtidSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GtidSet {
    /// The canonical text; the flavor is detected as [`GtidSet::parse_any`]
    /// does, so an empty set comes back as an empty MariaDB position.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GtidSet::parse_any(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U3: &str = "f00dcafe-0000-4000-8000-00000000beef";

    fn my(s: &str) -> MySqlGtidSet {
        MySqlGtidSet::parse(s).unwrap()
    }

    fn ma(s: &str) -> MariaDbGtidPos {
        MariaDbGtidPos::parse(s).unwrap()
    }

    // ----- MySQL parsing and printing -----

    #[test]
    fn mysql_parses_and_prints_canonically() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("   ", ""),
            (&format!("{U1}:1-5"), &format!("{U1}:1-5")),
            (&format!("{U1}:7"), &format!("{U1}:7")),
            (&format!("{U1}:7-7"), &format!("{U1}:7")),
            // Merging: overlapping, adjacent, unsorted.
            (&format!("{U1}:7-9:1-5"), &format!("{U1}:1-5:7-9")),
            (&format!("{U1}:1-5:6-9"), &format!("{U1}:1-9")),
            (&format!("{U1}:1-5:3-8:20"), &format!("{U1}:1-8:20")),
            // Sources sorted, the same UUID in two elements merged.
            (&format!("{U2}:1-3,{U1}:1-5"), &format!("{U1}:1-5,{U2}:1-3")),
            (&format!("{U1}:1-3,{U1}:4-5"), &format!("{U1}:1-5")),
            // Real MySQL output: upper case, "\n" after commas.
            (
                "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n4E11FA47-71CA-11E1-9E33-C80AA9429562:1-3:5",
                &format!("{U1}:1-5,{U2}:1-3:5"),
            ),
            (
                &format!("{U1}:1-5,\n{U2}:1-3,\n{U3}:10-20"),
                &format!("{U1}:1-5,{U2}:1-3,{U3}:10-20"),
            ),
            (
                &format!("  {U1} : 1 - 5 ,\r\n {U2}:1  "),
                &format!("{U1}:1-5,{U2}:1"),
            ),
            // Empty specifications between commas are skipped, as MySQL does.
            (&format!("{U1}:1,,{U2}:2,"), &format!("{U1}:1,{U2}:2")),
            // Tags (MySQL 8.4).
            (&format!("{U1}:tag:1-5"), &format!("{U1}:tag:1-5")),
            (&format!("{U1}:1-3:tag:5-6"), &format!("{U1}:1-3:tag:5-6")),
            (&format!("{U1}:Tag_1:5"), &format!("{U1}:tag_1:5")),
            (
                &format!("{U1}:bb:1:aa:2-3:1,{U1}:aa:4,{U1}:1"),
                &format!("{U1}:1:aa:1-4:bb:1"),
            ),
            (&format!("{U1}:_x:1,{U1}:1-2"), &format!("{U1}:1-2:_x:1")),
            (
                &format!("{U1}:{}:1", "a".repeat(32)),
                &format!("{U1}:{}:1", "a".repeat(32)),
            ),
            (
                &format!("{U1}:1-{MYSQL_MAX_GNO}"),
                &format!("{U1}:1-{MYSQL_MAX_GNO}"),
            ),
        ];
        for (input, want) in cases {
            let set =
                MySqlGtidSet::parse(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
            assert_eq!(set.to_string(), *want, "printing {input:?}");
            assert_eq!(my(want), set, "round trip of {input:?}");
        }
    }

    #[test]
    fn mysql_rejects_bad_input() {
        let bad = [
            U1.to_string(),                                  // no intervals
            format!("{U1}:"),                                // empty field
            format!("{U1}::1"),                              // empty field
            format!("{U1}:1:"),                              // trailing colon
            format!("{U1}:0"),                               // gno 0
            format!("{U1}:0-5"),                             // gno 0
            format!("{U1}:5-3"),                             // end < start
            format!("{U1}:1-"),                              // open interval
            format!("{U1}:-5"),                              // tag? no: '-' not a tag char
            format!("{U1}:1-2-3"),                           // too many dashes
            format!("{U1}:+5"),                              // sign
            format!("{U1}:1x"),                              // not a number
            format!("{U1}:{}", u64::MAX),                    // beyond 2^63-1
            format!("{U1}:9223372036854775808"),             // 2^63
            format!("{U1}:99999999999999999999999"),         // overflow
            format!("{U1}:tag"),                             // tag without intervals
            format!("{U1}:1:tag"),                           // tag without intervals
            format!("{U1}:a:b:1"),                           // tag without intervals
            format!("{U1}:1tag:1"),                          // tag starting with a digit
            format!("{U1}:ta-g:1"),                          // bad tag char
            format!("{U1}:t\u{e9}g:1"),                      // non-ASCII tag
            format!("{U1}:{}:1", "a".repeat(33)),            // tag too long
            "3e11fa47-71ca-11e1-9e33-c80aa942956:1".into(),  // short UUID
            "3e11fa4771ca11e19e33c80aa9429562:1".into(),     // no dashes
            "3e11fa47-71ca-11e1-9e33-c80aa942956z:1".into(), // not hex
            "3e11fa47_71ca-11e1-9e33-c80aa9429562:1".into(), // wrong separator
            "1:1".into(),
            "0-1-100".into(), // a MariaDB GTID
        ];
        for input in bad {
            let err = MySqlGtidSet::parse(&input);
            assert!(
                matches!(err, Err(ParseError::Gtid { .. })),
                "{input:?} accepted: {err:?}"
            );
        }
    }

    #[test]
    fn mysql_operations() {
        let a = my(&format!("{U1}:1-10,{U2}:1-5"));
        let b = my(&format!("{U1}:3-4:8,{U3}:1"));
        assert_eq!(
            a.union(&b).to_string(),
            format!("{U1}:1-10,{U2}:1-5,{U3}:1")
        );
        assert_eq!(
            a.subtract(&b).to_string(),
            format!("{U1}:1-2:5-7:9-10,{U2}:1-5")
        );
        assert_eq!(a.intersection(&b).to_string(), format!("{U1}:3-4:8"));
        assert_eq!(a.count(), 15);
        assert_eq!(b.count(), 4);
        assert!(a.contains(&my(&format!("{U1}:2-9"))));
        assert!(a.contains(&MySqlGtidSet::default()));
        assert!(!a.contains(&b));
        assert!(!a.contains(&my(&format!("{U1}:10-11"))));
        assert!(!a.contains(&my(&format!("{U1}:tag:1"))));
        assert!(a.contains_gtid(U1, None, 10));
        assert!(a.contains_gtid(&U1.to_uppercase(), None, 1));
        assert!(!a.contains_gtid(U1, None, 11));
        assert!(!a.contains_gtid(U1, Some("tag"), 1));
        assert_eq!(
            a.without_sources(&[&U2.to_uppercase()]).to_string(),
            format!("{U1}:1-10")
        );
        assert_eq!(a.only_sources(&[U2]).to_string(), format!("{U2}:1-5"));
        assert_eq!(a.union(&b).sources(), vec![U1, U2, U3]);

        let tagged = my(&format!("{U1}:1-3:tag:5-6,{U2}:x:1"));
        assert_eq!(tagged.sources(), vec![U1, U2]);
        assert_eq!(tagged.count(), 6);
        assert_eq!(
            tagged.without_sources(&[U1]).to_string(),
            format!("{U2}:x:1")
        );
        assert_eq!(
            tagged.subtract(&my(&format!("{U1}:1-3"))).to_string(),
            format!("{U1}:tag:5-6,{U2}:x:1")
        );
        assert!(tagged.contains_gtid(U1, Some("TAG"), 6));
        let ivs: Vec<_> = tagged.intervals().collect();
        assert_eq!(
            ivs,
            vec![
                (U1, None, 1, 3),
                (U1, Some("tag"), 5, 6),
                (U2, Some("x"), 1, 1)
            ]
        );
        let huge = my(&format!(
            "{U1}:1-{MYSQL_MAX_GNO},{U2}:1-{MYSQL_MAX_GNO},{U3}:1-5"
        ));
        assert_eq!(huge.count(), u64::MAX);
    }

    #[test]
    fn interval_subtraction_edges() {
        type Ivs = &'static [(u64, u64)];
        let cases: &[(Ivs, Ivs, Ivs)] = &[
            (&[(1, 10)], &[], &[(1, 10)]),
            (&[(1, 10)], &[(1, 10)], &[]),
            (&[(1, 10)], &[(0, 20)], &[]),
            (&[(1, 10)], &[(1, 1)], &[(2, 10)]),
            (&[(1, 10)], &[(10, 10)], &[(1, 9)]),
            (&[(1, 10)], &[(3, 4), (6, 7)], &[(1, 2), (5, 5), (8, 10)]),
            (&[(1, 3), (5, 9)], &[(2, 6)], &[(1, 1), (7, 9)]),
            (&[(1, 3), (5, 9), (20, 30)], &[(4, 25)], &[(1, 3), (26, 30)]),
            (&[(5, 6)], &[(1, 2), (8, 9)], &[(5, 6)]),
        ];
        for (a, b, want) in cases {
            assert_eq!(subtract_intervals(a, b), *want, "{a:?} - {b:?}");
        }
    }

    // ----- MariaDB parsing and printing -----

    #[test]
    fn mariadb_parses_and_prints_canonically() {
        let cases = [
            ("", ""),
            (" ", ""),
            ("0-1-100", "0-1-100"),
            ("1-2-50,0-1-100", "0-1-100,1-2-50"),
            ("0-1-100, 0-2-7,\n1-2-50", "0-1-100,0-2-7,1-2-50"),
            ("0-1-5,0-1-100,0-1-7", "0-1-100"),
            ("0-1-0", "0-1-0"),
            (
                "4294967295-4294967295-18446744073709551615",
                "4294967295-4294967295-18446744073709551615",
            ),
        ];
        for (input, want) in cases {
            let pos =
                MariaDbGtidPos::parse(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
            assert_eq!(pos.to_string(), want, "printing {input:?}");
            assert_eq!(ma(want), pos, "round trip of {input:?}");
        }
    }

    #[test]
    fn mariadb_rejects_bad_input() {
        for input in [
            "0-1",
            "0-1-2-3",
            "0-1-x",
            "a-1-2",
            "0--2",
            "-1-2",
            "0-1-",
            "0-1-+2",
            "0-1-2,",
            "0-1-2,,0-2-3",
            "4294967296-1-2",
            "0-4294967296-2",
            "0-1-18446744073709551616",
            "0 - 1 - 2",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
        ] {
            let err = MariaDbGtidPos::parse(input);
            assert!(
                matches!(err, Err(ParseError::Gtid { .. })),
                "{input:?} accepted: {err:?}"
            );
        }
        assert!(MariaDbGtid::parse("0-1").is_err());
        assert_eq!(
            MariaDbGtid::parse(" 1-2-3 ").unwrap(),
            MariaDbGtid {
                domain: 1,
                server_id: 2,
                seq: 3
            }
        );
    }

    #[test]
    fn mariadb_operations() {
        let state = ma("0-1-100,0-2-120,1-2-50");
        assert_eq!(state.domains(), vec![0, 1]);
        assert_eq!(state.domain_max(0), Some(120));
        assert_eq!(state.domain_max(1), Some(50));
        assert_eq!(state.domain_max(2), None);
        assert_eq!(state.get(0, 1), Some(100));
        assert_eq!(state.get(1, 1), None);
        assert_eq!(state.per_domain().to_string(), "0-2-120,1-2-50");
        assert_eq!(
            state.gtids()[0],
            MariaDbGtid {
                domain: 0,
                server_id: 1,
                seq: 100
            }
        );

        let pos = ma("0-2-120,1-2-50");
        assert!(state.contains(&pos));
        assert!(pos.contains(&state), "a position covers its domains' state");
        assert!(state.contains(&ma("0-3-110")));
        assert!(!state.contains(&ma("0-3-121")));
        assert!(!state.contains(&ma("2-1-1")));
        assert!(state.contains(&MariaDbGtidPos::default()));
        assert!(!MariaDbGtidPos::default().contains(&state));

        assert_eq!(
            state.union(&ma("0-1-130,2-5-1")).to_string(),
            "0-1-130,0-2-120,1-2-50,2-5-1"
        );
        assert_eq!(state.subtract(&ma("0-9-110")).to_string(), "0-2-120,1-2-50");
        assert_eq!(state.subtract(&ma("0-9-120,1-1-60")).to_string(), "");
        assert_eq!(state.subtract(&MariaDbGtidPos::default()), state);
    }

    // ----- Either flavor -----

    #[test]
    fn gtid_set_dispatches_on_flavor() {
        let m = GtidSet::parse(Flavor::MySql, &format!("{U1}:1-5")).unwrap();
        let m2 = GtidSet::parse(Flavor::MySql, &format!("{U1}:1-3")).unwrap();
        let d = GtidSet::parse(Flavor::MariaDb, "0-1-5").unwrap();
        let d2 = GtidSet::parse(Flavor::MariaDb, "0-1-3").unwrap();
        assert_eq!(m.flavor(), Flavor::MySql);
        assert_eq!(d.flavor(), Flavor::MariaDb);
        assert!(GtidSet::parse(Flavor::MySql, "0-1-5").is_err());
        assert!(GtidSet::parse(Flavor::MariaDb, &format!("{U1}:1")).is_err());

        assert_eq!(m.contains(&m2), Some(true));
        assert_eq!(m2.contains(&m), Some(false));
        assert_eq!(m.is_ahead_of(&m2), Some(true));
        assert_eq!(m.is_ahead_of(&m), Some(false));
        assert_eq!(d.is_ahead_of(&d2), Some(true));
        assert_eq!(d2.is_ahead_of(&d), Some(false));
        assert_eq!(m.subtract(&m2).unwrap().to_string(), format!("{U1}:4-5"));
        assert_eq!(d.union(&d2), Some(d.clone()));

        // Mismatch.
        assert_eq!(m.contains(&d), None);
        assert_eq!(m.is_ahead_of(&d), None);
        assert_eq!(d.union(&m), None);
        assert_eq!(d.subtract(&m), None);
        assert_ne!(m, d);

        // The empty set is flavor-neutral.
        let em = GtidSet::empty(Flavor::MySql);
        let ed = GtidSet::empty(Flavor::MariaDb);
        assert_eq!(em, ed);
        assert!(em.is_empty() && ed.is_empty());
        assert_eq!(m.contains(&ed), Some(true));
        assert_eq!(ed.contains(&m), Some(false));
        assert_eq!(ed.is_ahead_of(&m), Some(false));
        assert_eq!(m.is_ahead_of(&ed), Some(true));
        assert_eq!(ed.union(&m), Some(m.clone()));
        assert_eq!(ed.union(&m).unwrap().flavor(), Flavor::MySql);
        assert_eq!(m.subtract(&ed), Some(m.clone()));
        assert_eq!(ed.subtract(&m).map(|s| s.is_empty()), Some(true));
        assert_eq!(em.contains(&ed), Some(true));
        assert_eq!(m.in_flavor(Flavor::MariaDb), None);
        assert_eq!(
            ed.in_flavor(Flavor::MySql).map(|s| s.flavor()),
            Some(Flavor::MySql)
        );
        assert_eq!(m.as_mysql().map(|s| s.count()), Some(5));
        assert!(m.as_mariadb().is_none());
        assert_eq!(d.as_mariadb().map(|p| p.domain_max(0)), Some(Some(5)));
    }

    #[test]
    fn gtid_set_serde() {
        let cases = [
            (
                GtidSet::parse(Flavor::MySql, &format!("{U2}:1,\n{U1}:1-5:tag:7")).unwrap(),
                format!("\"{U1}:1-5:tag:7,{U2}:1\""),
            ),
            (
                GtidSet::parse(Flavor::MariaDb, "1-2-3,0-1-5").unwrap(),
                "\"0-1-5,1-2-3\"".to_string(),
            ),
            (GtidSet::empty(Flavor::MariaDb), "\"\"".to_string()),
            (GtidSet::empty(Flavor::MySql), "\"\"".to_string()),
        ];
        for (set, json) in cases {
            assert_eq!(serde_json::to_string(&set).unwrap(), json);
            let back: GtidSet = serde_json::from_str(&json).unwrap();
            assert_eq!(back, set);
            if !set.is_empty() {
                assert_eq!(back.flavor(), set.flavor());
            }
        }
        let empty: GtidSet = serde_json::from_str("\"\"").unwrap();
        assert_eq!(empty.flavor(), Flavor::MariaDb);
        let upper: GtidSet = serde_json::from_str(&format!("\"{}:1\"", U1.to_uppercase())).unwrap();
        assert_eq!(upper.to_string(), format!("{U1}:1"));
        assert!(serde_json::from_str::<GtidSet>("\"garbage\"").is_err());
        assert!(serde_json::from_str::<GtidSet>("\"x:1\"").is_err());
        assert!(serde_json::from_str::<GtidSet>("5").is_err());
    }

    // ----- Properties -----

    const UUIDS: [&str; 3] = [U1, U2, U3];
    const TAGS: [Option<&str>; 3] = [None, Some("aa"), Some("b_1")];

    prop_compose! {
        fn mysql_set()(parts in prop::collection::vec((0..3usize, 0..3usize, 1..60u64, 0..8u64), 0..8))
            -> MySqlGtidSet {
            let text: Vec<String> = parts
                .iter()
                .map(|&(u, t, s, len)| match TAGS[t] {
                    Some(tag) => format!("{}:{tag}:{s}-{}", UUIDS[u], s + len),
                    None => format!("{}:{s}-{}", UUIDS[u], s + len),
                })
                .collect();
            my(&text.join(",\n"))
        }
    }

    prop_compose! {
        fn mariadb_pos()(parts in prop::collection::vec((0..3u32, 1..4u32, 0..50u64), 0..6))
            -> MariaDbGtidPos {
            MariaDbGtidPos::from_gtids(
                parts
                    .into_iter()
                    .map(|(domain, server_id, seq)| MariaDbGtid { domain, server_id, seq }),
            )
        }
    }

    /// The set as single transactions, the model the algebra is checked against.
    fn expand(s: &MySqlGtidSet) -> BTreeSet<(String, Option<String>, u64)> {
        s.intervals()
            .flat_map(|(u, t, a, b)| {
                (a..=b).map(move |n| (u.to_string(), t.map(str::to_string), n))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn mysql_matches_model(a in mysql_set(), b in mysql_set()) {
            let (ma_, mb) = (expand(&a), expand(&b));
            prop_assert_eq!(expand(&a.union(&b)), ma_.union(&mb).cloned().collect());
            prop_assert_eq!(expand(&a.subtract(&b)), ma_.difference(&mb).cloned().collect());
            prop_assert_eq!(expand(&a.intersection(&b)), ma_.intersection(&mb).cloned().collect());
            prop_assert_eq!(a.contains(&b), ma_.is_superset(&mb));
            prop_assert_eq!(a.count(), ma_.len() as u64);
        }

        #[test]
        fn mysql_algebra(a in mysql_set(), b in mysql_set(), c in mysql_set()) {
            prop_assert_eq!(a.union(&b), b.union(&a));
            prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
            prop_assert_eq!(a.union(&a), a.clone());
            prop_assert!(a.union(&b).contains(&a));
            prop_assert!(a.union(&b).contains(&b));
            prop_assert!(a.subtract(&b).intersection(&b).is_empty());
            prop_assert!(!b.contains(&a.subtract(&b)) || a.subtract(&b).is_empty());
            prop_assert_eq!(a.subtract(&b).union(&a.intersection(&b)), a.clone());
            prop_assert_eq!(a.subtract(&b).is_empty(), b.contains(&a));
            prop_assert!(a.contains(&a));
            prop_assert!(a.contains(&a.subtract(&b)));
            if a.contains(&b) && b.contains(&c) {
                prop_assert!(a.contains(&c));
            }
            let (x, y) = (a.union(&b).union(&c), b.union(&c));
            prop_assert!(x.contains(&y) && y.contains(&c) && x.contains(&c));
            prop_assert_eq!(a.union(&b).count(), a.count() + b.subtract(&a).count());
            prop_assert_eq!(my(&a.to_string()), a.clone());
            let dropped = a.without_sources(&[U1]);
            prop_assert!(!dropped.sources().contains(&U1));
            prop_assert_eq!(dropped.union(&a.only_sources(&[U1])), a.clone());
        }

        #[test]
        fn mariadb_algebra(a in mariadb_pos(), b in mariadb_pos(), c in mariadb_pos()) {
            prop_assert_eq!(a.union(&b), b.union(&a));
            prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
            prop_assert_eq!(a.union(&a), a.clone());
            prop_assert!(a.union(&b).contains(&a));
            prop_assert!(a.union(&b).contains(&b));
            prop_assert!(b.union(&a.subtract(&b)).contains(&a));
            prop_assert_eq!(a.subtract(&b).is_empty(), b.contains(&a));
            prop_assert_eq!(a.union(&a.subtract(&b)), a.clone());
            prop_assert!(a.subtract(&b).subtract(&b).eq(&a.subtract(&b)));
            prop_assert!(a.contains(&a));
            prop_assert!(a.per_domain().contains(&a) && a.contains(&a.per_domain()));
            if a.contains(&b) && b.contains(&c) {
                prop_assert!(a.contains(&c));
            }
            let (x, y) = (a.union(&b).union(&c), b.union(&c));
            prop_assert!(x.contains(&y) && y.contains(&c) && x.contains(&c));
            prop_assert_eq!(ma(&a.to_string()), a.clone());
        }

        #[test]
        fn gtid_set_round_trips(a in mysql_set(), b in mariadb_pos()) {
            for set in [GtidSet::MySql(a.clone()), GtidSet::MariaDb(b.clone())] {
                let json = serde_json::to_string(&set).unwrap();
                prop_assert_eq!(serde_json::from_str::<GtidSet>(&json).unwrap(), set.clone());
                prop_assert_eq!(GtidSet::parse(set.flavor(), &set.to_string()).unwrap(), set.clone());
                prop_assert_eq!(set.is_ahead_of(&set), Some(false));
            }
        }
    }
}
