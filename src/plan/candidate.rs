//! Candidate choice: which replica replaces a failed (or departing)
//! source. See "Candidate choice" in the domain notes.
//!
//! Candidates are the reachable direct replicas of the instance being
//! replaced. Some are set aside with a reason (promotion rule must_not, no
//! binary log, no log_replica_updates while others lack some of what it
//! replicated, errant
//! GTIDs, a delayed replica, a version above the lowest among the replicas,
//! a binlog format other than the most common, too much lag). The others
//! are ranked by progress (GTID superset of what each executed and
//! received, else executed source coordinates), then log_replica_updates, then lower version, then
//! promotion rule. The chosen one should hold every transaction any other
//! candidate holds; replicas that hold transactions it lacks, or that
//! cannot replicate from it, are lost: they are left detached and reported
//! rather than made to diverge.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::PlanError;
use super::legality::{compatible, format_rank};
use crate::topology::errant::errant_gtids;
use crate::topology::instance::Flavor;
use crate::topology::{BinlogCoordinates, GtidSet, InstanceKey, Snapshot, Topology};

/// How much an instance is wanted as a new primary (the pod annotation
/// `orca.dev/promotion-rule`, and a FailoverPolicy's `promotionRules`,
/// whose schema is derived from this type).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PromotionRule {
    /// Chosen over neutral pods that are as advanced.
    Prefer,
    /// No preference.
    #[default]
    Neutral,
    /// Chosen only when no prefer or neutral pod qualifies.
    PreferNot,
    /// Never promoted.
    MustNot,
}

impl PromotionRule {
    /// Every rule, most wanted first.
    pub const ALL: [PromotionRule; 4] = [
        PromotionRule::Prefer,
        PromotionRule::Neutral,
        PromotionRule::PreferNot,
        PromotionRule::MustNot,
    ];

    /// The name used in YAML, JSON and the `orca.dev/promotion-rule`
    /// annotation.
    pub fn name(self) -> &'static str {
        match self {
            PromotionRule::Prefer => "prefer",
            PromotionRule::Neutral => "neutral",
            PromotionRule::PreferNot => "prefer_not",
            PromotionRule::MustNot => "must_not",
        }
    }

    /// Whether an instance with this rule may be promoted at all.
    pub fn allows_promotion(self) -> bool {
        self != PromotionRule::MustNot
    }
}

impl fmt::Display for PromotionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PromotionRule {
    type Err = PlanError;

    /// Reads `prefer`, `neutral`, `prefer_not` or `must_not` (white space
    /// around is ignored); anything else is an error, never a default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        PromotionRule::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                PlanError::Invalid(format!(
                    "unknown promotion rule {name:?}: expected prefer, neutral, prefer_not or must_not"
                ))
            })
    }
}

/// What the candidate choice takes into account besides the topology.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateOptions {
    /// Promotion rule per instance; an instance not listed is neutral.
    pub rules: BTreeMap<InstanceKey, PromotionRule>,
    /// Set aside replicas lagging more than this, in milliseconds (`None`:
    /// no limit). An unknown lag does not set a replica aside.
    pub max_lag_ms: Option<u64>,
    /// Semi-synchronous replication is on: an acknowledged write lives on
    /// at least one replica, so only a candidate holding every replica's
    /// transactions may be chosen.
    pub semi_sync: bool,
}

impl CandidateOptions {
    pub fn rule(&self, key: &InstanceKey) -> PromotionRule {
        self.rules.get(key).copied().unwrap_or_default()
    }
}

/// The outcome of a candidate choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateChoice {
    pub chosen: InstanceKey,
    /// The candidates that were not set aside, best first (the chosen one
    /// may not be first: a prefer_not candidate yields to one holding as
    /// much).
    pub ranking: Vec<InstanceKey>,
    /// Replicas set aside, with the reason.
    pub excluded: Vec<(InstanceKey, String)>,
    /// Replicas that cannot follow the chosen one, with the reason.
    pub lost: Vec<(InstanceKey, String)>,
    pub notes: Vec<String>,
}

/// How far an instance has got: its executed GTID set (with, for a
/// replica, what it received), and, as a fallback,
/// the source coordinates it has executed up to (for a replica) or its own
/// binlog position (for the source itself). Coordinates only compare
/// between replicas of the same source, and with that source.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Progress {
    pub gtid: Option<GtidSet>,
    pub coordinates: Option<BinlogCoordinates>,
}

impl Progress {
    /// A replica's progress on its source: what it executed and what its
    /// IO thread received (it has it once its relay log is applied; with
    /// semi-sync, what it received may be an acknowledged write no other
    /// replica has).
    pub fn of_replica(s: &Snapshot) -> Progress {
        let received = s.replica.as_ref().and_then(|r| r.received());
        let gtid = match (&s.gtid.executed, received) {
            (Some(e), Some(r)) => e.union(&r).or_else(|| Some(e.clone())),
            (e, r) => e.clone().or(r),
        };
        Progress {
            gtid,
            coordinates: s.replica.as_ref().and_then(|r| r.exec_source.clone()),
        }
    }

    /// A source's own progress, comparable with its replicas'.
    pub fn of_source(s: &Snapshot) -> Progress {
        Progress {
            gtid: s.gtid.executed.clone(),
            coordinates: s.binlog.clone(),
        }
    }

    /// Everything either has.
    pub fn union(&self, o: &Progress) -> Progress {
        let gtid = match (&self.gtid, &o.gtid) {
            (Some(a), Some(b)) => a.union(b),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let coordinates = match (&self.coordinates, &o.coordinates) {
            (Some(a), Some(b)) if a.file_base() == b.file_base() => Some(a.max(b).clone()),
            (Some(_), Some(_)) => None,
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Progress { gtid, coordinates }
    }

    /// Whether `self` has every transaction `o` has; `None` when it cannot
    /// be told. GTID sets decide when both are known and of one flavor;
    /// otherwise coordinates in the same binlog do.
    pub fn holds(&self, o: &Progress) -> Option<bool> {
        if let (Some(a), Some(b)) = (&self.gtid, &o.gtid)
            && let Some(c) = a.contains(b)
        {
            return Some(c);
        }
        self.compare_coordinates(o).map(|c| c != Ordering::Less)
    }

    /// Which is further: GTID containment, and when neither set contains
    /// the other (or sets are unknown), the executed coordinates. `None`
    /// when nothing tells.
    pub fn compare(&self, o: &Progress) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (&self.gtid, &o.gtid) {
            match (a.contains(b), b.contains(a)) {
                (Some(true), Some(true)) => return Some(Ordering::Equal),
                (Some(true), Some(false)) => return Some(Ordering::Greater),
                (Some(false), Some(true)) => return Some(Ordering::Less),
                _ => {}
            }
        }
        self.compare_coordinates(o)
    }

    fn compare_coordinates(&self, o: &Progress) -> Option<Ordering> {
        match (&self.coordinates, &o.coordinates) {
            (Some(a), Some(b)) if a.file_base() == b.file_base() => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// The errant GTIDs of `key`, if it has any. The graph computes them
/// against a reachable source. When the source is unreachable (a dead
/// primary), a transaction counts as errant when it is errant against
/// every reachable sibling: no other replica of that source has it.
pub(crate) fn errant_of(topo: &Topology, key: &InstanceKey) -> Option<GtidSet> {
    let node = topo.get(key)?;
    if let Some(e) = node.errant.as_ref().filter(|e| !e.is_empty()) {
        return Some(e.clone());
    }
    let snap = node.snapshot.as_ref()?;
    let source = topo.get(node.source.as_ref()?)?;
    if source.snapshot.is_some() {
        return None;
    }
    // Without the UUID of the dead source, its own newest transactions
    // could not be told from errant ones.
    if snap.flavor == Flavor::MySql
        && snap
            .replica
            .as_ref()
            .and_then(|r| r.source_uuid.as_ref())
            .is_none()
    {
        return None;
    }
    let mut found: Option<GtidSet> = None;
    for sibling in source.replicas.iter().filter(|k| *k != key) {
        let Some(sib) = topo.get(sibling).and_then(|n| n.snapshot.as_ref()) else {
            continue;
        };
        let errant = errant_gtids(snap, sib, &[])?;
        found.get_or_insert(errant);
    }
    found
}

/// The direct replicas of `key`: reachable ones with their snapshot, and
/// the keys of unreachable ones, each in key order.
pub(crate) fn direct_replicas<'a>(
    topo: &'a Topology,
    key: &InstanceKey,
) -> (Vec<&'a Snapshot>, Vec<InstanceKey>) {
    let mut reachable = Vec::new();
    let mut unreachable = Vec::new();
    let Some(node) = topo.get(key) else {
        return (reachable, unreachable);
    };
    let mut keys: Vec<&InstanceKey> = node.replicas.iter().filter(|k| *k != key).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match topo.get(k).and_then(|n| n.snapshot.as_ref()) {
            Some(s) => reachable.push(s),
            None => unreachable.push(k.clone()),
        }
    }
    (reachable, unreachable)
}

/// The replicas among `others` that cannot follow `successor`, whose
/// progress will be `reference`: those holding transactions it lacks, and
/// those the replication rules forbid under it (as a new primary).
pub(crate) fn lost_under(
    successor: &Snapshot,
    reference: &Progress,
    others: &[&Snapshot],
) -> (Vec<(InstanceKey, String)>, Vec<String>) {
    let mut lost = Vec::new();
    let mut notes = Vec::new();
    for r in others.iter().filter(|r| r.key != successor.key) {
        match reference.holds(&Progress::of_replica(r)) {
            Some(false) => {
                lost.push((r.key.clone(), AHEAD.to_string()));
                continue;
            }
            Some(true) => {}
            None => notes.push(format!(
                "cannot compare the progress of {} with {} (no GTID sets or coordinates in one binlog)",
                r.key, successor.key
            )),
        }
        if let Err(refusal) = compatible(r, successor, false, false) {
            lost.push((
                r.key.clone(),
                format!("cannot replicate from {}: {refusal}", successor.key),
            ));
        }
    }
    (lost, notes)
}

/// The reason given for a replica ahead of the chosen candidate.
pub const AHEAD: &str = "ahead of the candidate: would diverge";

/// Chooses the replica that replaces `failed` among its reachable direct
/// replicas.
pub fn choose_candidate(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &CandidateOptions,
) -> Result<CandidateChoice, PlanError> {
    if topo.get(failed).is_none() {
        return Err(PlanError::not_found(failed));
    }
    let (replicas, unreachable) = direct_replicas(topo, failed);
    let mut excluded: Vec<(InstanceKey, String)> = unreachable
        .into_iter()
        .map(|k| (k, "unreachable".to_string()))
        .collect();
    let mut notes = Vec::new();

    let lowest_version = replicas.iter().map(|s| s.version.major_minor()).min();
    let common_format = most_common_format(&replicas);
    let mut eligible: Vec<&Snapshot> = Vec::new();
    for s in &replicas {
        match exclusion(topo, s, &replicas, lowest_version, &common_format, opts) {
            Some(why) => excluded.push((s.key.clone(), why)),
            None => eligible.push(s),
        }
    }
    if eligible.is_empty() {
        return Err(PlanError::NoCandidate {
            failed: failed.clone(),
            reasons: excluded,
        });
    }

    let progress: BTreeMap<&InstanceKey, Progress> = replicas
        .iter()
        .map(|s| (&s.key, Progress::of_replica(s)))
        .collect();
    let progress_of = |k: &InstanceKey| progress.get(k).cloned().unwrap_or_default();

    // Rank: fewest candidates strictly further, then log_replica_updates,
    // lower version, promotion rule, key. A total order even when progress
    // is only partly comparable.
    let ahead_count = |s: &Snapshot| {
        let mine = progress_of(&s.key);
        eligible
            .iter()
            .filter(|o| o.key != s.key)
            .filter(|o| progress_of(&o.key).compare(&mine) == Some(Ordering::Greater))
            .count()
    };
    let mut ranked: Vec<Ranked> = eligible
        .iter()
        .map(|s| {
            (
                ahead_count(s),
                !s.log_replica_updates,
                s.version.triple(),
                opts.rule(&s.key),
                *s,
            )
        })
        .collect();
    ranked.sort_by(|a, b| (a.0, a.1, a.2, a.3, &a.4.key).cmp(&(b.0, b.1, b.2, b.3, &b.4.key)));
    let ranking: Vec<InstanceKey> = ranked.iter().map(|r| r.4.key.clone()).collect();

    // Who must the chosen one hold: with semi-sync, every reachable
    // replica (an acknowledged write may be on any); otherwise every
    // other candidate.
    let must_hold: Vec<&Snapshot> = if opts.semi_sync {
        replicas.clone()
    } else {
        eligible.clone()
    };
    let qualifies = |s: &Snapshot| {
        let mine = progress_of(&s.key);
        must_hold.iter().filter(|o| o.key != s.key).all(|o| {
            match mine.holds(&progress_of(&o.key)) {
                Some(held) => held,
                None => !opts.semi_sync,
            }
        })
    };
    let qualified: Vec<&Snapshot> = ranked
        .iter()
        .map(|r| r.4)
        .filter(|s| qualifies(s))
        .collect();
    let preferred = qualified
        .iter()
        .find(|s| opts.rule(&s.key) != PromotionRule::PreferNot)
        .or_else(|| qualified.first())
        .copied();

    let chosen: &Snapshot = match preferred {
        Some(s) => {
            if opts.rule(&s.key) == PromotionRule::PreferNot {
                notes.push(format!(
                    "{} has the promotion rule prefer_not but no other candidate holds as much",
                    s.key
                ));
            } else if let Some(first) = ranked.first().map(|r| r.4)
                && first.key != s.key
                && opts.rule(&first.key) == PromotionRule::PreferNot
            {
                notes.push(format!(
                    "{} ranks first but has the promotion rule prefer_not; {} holds as much",
                    first.key, s.key
                ));
            }
            s
        }
        None if opts.semi_sync => {
            let mut reasons = excluded;
            reasons.extend(ranking.iter().map(|k| {
                (
                    k.clone(),
                    "does not hold every replica's transactions (semi-sync: acknowledged writes may be elsewhere)"
                        .to_string(),
                )
            }));
            return Err(PlanError::NoCandidate {
                failed: failed.clone(),
                reasons,
            });
        }
        None => {
            let first = ranked
                .first()
                .map(|r| r.4)
                .ok_or_else(|| PlanError::invalid("no ranked candidate"))?;
            notes.push(format!(
                "no candidate holds every other candidate's transactions; {} ranks first",
                first.key
            ));
            first
        }
    };
    notes.insert(
        0,
        format!(
            "candidate {} chosen among {} (ranking: {})",
            chosen.key,
            ranking.len(),
            join(&ranking)
        ),
    );
    for (k, why) in &excluded {
        notes.push(format!("{k} set aside: {why}"));
    }
    let (lost, lost_notes) = lost_under(chosen, &progress_of(&chosen.key), &replicas);
    notes.extend(lost_notes);

    Ok(CandidateChoice {
        chosen: chosen.key.clone(),
        ranking,
        excluded,
        lost,
        notes,
    })
}

/// A candidate with its sort key: candidates strictly further, no
/// log_replica_updates, version, promotion rule.
type Ranked<'a> = (usize, bool, (u32, u32, u32), PromotionRule, &'a Snapshot);

/// Why `s` may not be promoted, if it may not.
fn exclusion(
    topo: &Topology,
    s: &Snapshot,
    replicas: &[&Snapshot],
    lowest_version: Option<(u32, u32)>,
    common_format: &Option<String>,
    opts: &CandidateOptions,
) -> Option<String> {
    if opts.rule(&s.key) == PromotionRule::MustNot {
        return Some("promotion rule must_not".into());
    }
    if !s.log_bin {
        return Some("no binary log (log_bin is off)".into());
    }
    // Without log_replica_updates, what it replicated is not in its binary
    // log: it can feed only replicas that already hold all of it.
    if !s.log_replica_updates {
        let mine = Progress::of_replica(s);
        let needy: Vec<String> = replicas
            .iter()
            .filter(|o| o.key != s.key)
            .filter(|o| Progress::of_replica(o).holds(&mine) != Some(true))
            .map(|o| o.key.to_string())
            .collect();
        if !needy.is_empty() {
            return Some(format!(
                "log_replica_updates is off and other replicas would need to replicate what it holds from it ({})",
                needy.join(", ")
            ));
        }
    }
    if let Some(errant) = errant_of(topo, &s.key) {
        return Some(format!("errant GTIDs {errant}"));
    }
    if let Some(delay) = s.replica.as_ref().map(|r| r.sql_delay).filter(|d| *d > 0) {
        return Some(format!("delayed replica (SQL_Delay {delay} s)"));
    }
    if let Some(lowest) = lowest_version
        && s.version.major_minor() > lowest
    {
        let (major, minor) = s.version.major_minor();
        return Some(format!(
            "version {major}.{minor} is above the lowest among the replicas ({}.{}): a replica must never be older than its source",
            lowest.0, lowest.1
        ));
    }
    if let Some(common) = common_format
        && !s.binlog_format.eq_ignore_ascii_case(common)
    {
        return Some(format!(
            "binlog_format {} differs from the most common among the replicas ({common})",
            s.binlog_format.to_ascii_uppercase()
        ));
    }
    if let (Some(max), Some(lag)) = (opts.max_lag_ms, topo.get(&s.key).and_then(|n| n.lag_ms))
        && lag > max
    {
        return Some(format!("lags {lag} ms, above the limit of {max} ms"));
    }
    None
}

/// The binlog format most replicas log; on a tie, the one fewer replicas
/// would choke on (STATEMENT before MIXED before ROW).
fn most_common_format(replicas: &[&Snapshot]) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in replicas {
        *counts
            .entry(s.binlog_format.trim().to_ascii_uppercase())
            .or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|(fa, ca), (fb, cb)| {
            ca.cmp(cb).then_with(|| {
                // Lower rank wins a tie: reverse the comparison.
                let ra = format_rank(fa).unwrap_or(u8::MAX);
                let rb = format_rank(fb).unwrap_or(u8::MAX);
                rb.cmp(&ra).then_with(|| fb.cmp(fa))
            })
        })
        .map(|(f, _)| f)
}

pub(crate) fn join(keys: &[InstanceKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Snapshot;
    use crate::topology::testing::{
        down, key, mariadb, replica_of, source_gone, topology, with_gtid, with_version,
    };

    /// A replica of the dead primary `p` at MariaDB position `pos`.
    fn r(host: &str, id: u32, pos: &str) -> Snapshot {
        with_gtid(source_gone(replica_of(host, id, "p")), pos)
    }

    /// `p` is dead; `replicas` replicated from it.
    fn dead(replicas: Vec<Snapshot>) -> Topology {
        topology(replicas, vec![down("p", None)])
    }

    fn rules(list: &[(&str, PromotionRule)]) -> CandidateOptions {
        CandidateOptions {
            rules: list.iter().map(|(h, r)| (key(h), *r)).collect(),
            ..CandidateOptions::default()
        }
    }

    fn choose(t: &Topology, opts: &CandidateOptions) -> CandidateChoice {
        choose_candidate(t, &key("p"), opts).expect("a candidate")
    }

    #[test]
    fn promotion_rules_parse_and_print() {
        for (text, rule, may_be_promoted) in [
            ("prefer", PromotionRule::Prefer, true),
            ("neutral", PromotionRule::Neutral, true),
            ("prefer_not", PromotionRule::PreferNot, true),
            (" must_not ", PromotionRule::MustNot, false),
            (" prefer\n", PromotionRule::Prefer, true),
        ] {
            assert_eq!(text.parse::<PromotionRule>().unwrap(), rule);
            assert_eq!(rule.to_string(), text.trim());
            assert_eq!(
                serde_json::to_string(&rule).unwrap(),
                format!("\"{}\"", text.trim()),
                "serde and FromStr agree"
            );
            assert_eq!(rule.allows_promotion(), may_be_promoted, "{rule}");
        }
        assert_eq!(
            PromotionRule::ALL.map(PromotionRule::name),
            ["prefer", "neutral", "prefer_not", "must_not"]
        );
        assert_eq!(PromotionRule::default(), PromotionRule::Neutral);
        for bad in ["", "Prefer", "prefer-not", "must not", "never"] {
            let err = bad.parse::<PromotionRule>().unwrap_err();
            assert!(err.to_string().contains("unknown promotion rule"), "{err}");
            assert!(err.to_string().contains("prefer_not"), "{err}");
        }
    }

    #[test]
    fn every_exclusion_has_its_reason() {
        let base = || vec![r("r1", 11, "0-1-10"), r("r2", 12, "0-1-10")];
        let with_x = |x: Snapshot| {
            let mut v = base();
            v.push(x);
            v
        };
        let x = || r("x", 20, "0-1-10");
        let cases: Vec<(&str, Topology, CandidateOptions, &str)> = vec![
            (
                "must_not",
                dead(with_x(x())),
                rules(&[("x", PromotionRule::MustNot)]),
                "promotion rule must_not",
            ),
            (
                "no log_bin",
                dead(with_x({
                    let mut s = x();
                    s.log_bin = false;
                    s
                })),
                CandidateOptions::default(),
                "no binary log",
            ),
            (
                "no log_replica_updates while others lack what it holds",
                dead(with_x({
                    let mut s = r("x", 20, "0-1-11");
                    s.log_replica_updates = false;
                    s
                })),
                CandidateOptions::default(),
                "log_replica_updates is off",
            ),
            (
                "errant GTIDs (dead primary: against every sibling)",
                dead(with_x(r("x", 20, "0-1-10,0-20-11"))),
                CandidateOptions::default(),
                "errant GTIDs 0-20-11",
            ),
            (
                "errant GTIDs (live source)",
                topology(
                    vec![
                        with_gtid(mariadb("p", 1), "0-1-10"),
                        with_gtid(replica_of("r1", 11, "p"), "0-1-10"),
                        with_gtid(replica_of("x", 20, "p"), "0-1-10,0-20-11"),
                    ],
                    vec![],
                ),
                CandidateOptions::default(),
                "errant GTIDs 0-20-11",
            ),
            (
                "delayed",
                dead(with_x({
                    let mut s = x();
                    if let Some(c) = s.replica.as_mut() {
                        c.sql_delay = 3600;
                    }
                    s
                })),
                CandidateOptions::default(),
                "delayed replica (SQL_Delay 3600 s)",
            ),
            (
                "version above the lowest",
                dead(vec![
                    with_version(r("r1", 11, "0-1-10"), "10.6.16-MariaDB"),
                    with_version(r("x", 20, "0-1-10"), "10.11.6-MariaDB"),
                ]),
                CandidateOptions::default(),
                "version 10.11 is above the lowest among the replicas (10.6)",
            ),
            (
                "binlog format not the most common",
                dead(with_x({
                    let mut s = x();
                    s.binlog_format = "statement".into();
                    s
                })),
                CandidateOptions::default(),
                "binlog_format STATEMENT differs from the most common among the replicas (ROW)",
            ),
            (
                "lag",
                dead(with_x({
                    let mut s = replica_of("x", 20, "p");
                    if let Some(c) = s.replica.as_mut() {
                        c.seconds_behind = Some(60);
                    }
                    with_gtid(s, "0-1-10")
                })),
                CandidateOptions {
                    max_lag_ms: Some(10_000),
                    ..CandidateOptions::default()
                },
                "lags 60000 ms, above the limit of 10000 ms",
            ),
            (
                "unreachable",
                topology(base(), vec![down("p", None), down("x", Some("p"))]),
                CandidateOptions::default(),
                "unreachable",
            ),
        ];
        for (name, t, opts, reason) in cases {
            let c = choose(&t, &opts);
            assert_ne!(c.chosen, key("x"), "{name}");
            assert!(!c.ranking.contains(&key("x")), "{name}");
            let why = c
                .excluded
                .iter()
                .find(|(k, _)| *k == key("x"))
                .map(|(_, w)| w.as_str());
            assert!(
                why.is_some_and(|w| w.contains(reason)),
                "{name}: {why:?} lacks {reason:?}"
            );
            assert!(
                c.notes.iter().any(|n| n.starts_with("x:3306 set aside: ")),
                "{name}: {:?}",
                c.notes
            );
        }
    }

    #[test]
    fn what_is_not_excluded() {
        // Alone, or with replicas that hold all it has, a replica without
        // log_replica_updates can be promoted.
        let mut x = r("x", 20, "0-1-10");
        x.log_replica_updates = false;
        let c = choose(&dead(vec![x.clone()]), &CandidateOptions::default());
        assert_eq!(c.chosen, key("x"));
        let c = choose(
            &dead(vec![x, r("r1", 11, "0-1-10")]),
            &CandidateOptions::default(),
        );
        assert_eq!(c.ranking, vec![key("r1"), key("x")]);
        assert!(c.excluded.is_empty());
        // Unknown lag does not exclude; a lower version does not either.
        let c = choose(
            &dead(vec![
                r("r1", 11, "0-1-10"),
                with_version(r("r2", 12, "0-1-10"), "10.6.16-MariaDB"),
            ]),
            &CandidateOptions {
                max_lag_ms: Some(1),
                ..CandidateOptions::default()
            },
        );
        assert_eq!(c.excluded.len(), 1, "{:?}", c.excluded);
        assert_eq!(c.chosen, key("r2"));
    }

    #[test]
    fn no_candidate_lists_every_reason() {
        let mut nolog = r("r2", 12, "0-1-10");
        nolog.log_bin = false;
        let t = topology(
            vec![r("r1", 11, "0-1-10"), nolog],
            vec![down("p", None), down("r3", Some("p"))],
        );
        let err =
            choose_candidate(&t, &key("p"), &rules(&[("r1", PromotionRule::MustNot)])).unwrap_err();
        let PlanError::NoCandidate { failed, reasons } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(failed, &key("p"));
        let keys: Vec<&InstanceKey> = reasons.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&key("r3"), &key("r1"), &key("r2")]);
        assert_eq!(
            err.to_string(),
            "no candidate to replace p:3306: r3:3306: unreachable; r1:3306: promotion rule must_not; r2:3306: no binary log (log_bin is off)"
        );
        let lonely = dead(vec![]);
        let err = choose_candidate(&lonely, &key("p"), &CandidateOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no candidate to replace p:3306: it has no replicas"
        );
        let err =
            choose_candidate(&lonely, &key("nope"), &CandidateOptions::default()).unwrap_err();
        assert_eq!(err, PlanError::NotFound(key("nope")));
    }

    #[test]
    fn ranking_order() {
        let lru_off = |mut s: Snapshot| {
            s.log_replica_updates = false;
            s
        };
        let v = |s: Snapshot, raw: &str| with_version(s, raw);
        // (case, replicas, rules, expected ranking)
        let cases: Vec<(&str, Vec<Snapshot>, CandidateOptions, Vec<&str>)> = vec![
            (
                "most advanced first",
                vec![
                    r("a", 11, "0-1-10"),
                    r("b", 12, "0-1-12"),
                    r("c", 13, "0-1-11"),
                ],
                CandidateOptions::default(),
                vec!["b", "c", "a"],
            ),
            (
                "then log_replica_updates",
                vec![lru_off(r("a", 11, "0-1-10")), r("b", 12, "0-1-10")],
                CandidateOptions::default(),
                vec!["b", "a"],
            ),
            (
                "then the lower version",
                vec![
                    v(r("a", 11, "0-1-10"), "10.11.9-MariaDB"),
                    v(r("b", 12, "0-1-10"), "10.11.2-MariaDB"),
                ],
                CandidateOptions::default(),
                vec!["b", "a"],
            ),
            (
                "then the promotion rule",
                vec![
                    r("a", 11, "0-1-10"),
                    r("b", 12, "0-1-10"),
                    r("c", 13, "0-1-10"),
                ],
                rules(&[
                    ("a", PromotionRule::PreferNot),
                    ("c", PromotionRule::Prefer),
                ]),
                vec!["c", "b", "a"],
            ),
            (
                // (a replica without log_replica_updates ahead of others is
                // set aside, so progress never meets that criterion)
                "progress beats version and rule",
                vec![
                    v(r("a", 11, "0-1-11"), "10.11.9-MariaDB"),
                    v(r("b", 12, "0-1-10"), "10.11.1-MariaDB"),
                ],
                rules(&[("b", PromotionRule::Prefer)]),
                vec!["a", "b"],
            ),
            (
                "log_replica_updates beats version and rule",
                vec![
                    lru_off(v(r("a", 11, "0-1-10"), "10.11.1-MariaDB")),
                    v(r("b", 12, "0-1-10"), "10.11.9-MariaDB"),
                ],
                rules(&[("a", PromotionRule::Prefer)]),
                vec!["b", "a"],
            ),
            (
                "version beats rule",
                vec![
                    v(r("a", 11, "0-1-10"), "10.11.9-MariaDB"),
                    v(r("b", 12, "0-1-10"), "10.11.1-MariaDB"),
                ],
                rules(&[("a", PromotionRule::Prefer)]),
                vec!["b", "a"],
            ),
            (
                "per-domain positions",
                vec![
                    r("a", 11, "0-1-10,1-1-5"),
                    r("b", 12, "0-1-10,1-1-7"),
                    r("c", 13, "0-1-10"),
                ],
                CandidateOptions::default(),
                vec!["b", "a", "c"],
            ),
        ];
        for (name, replicas, opts, want) in cases {
            let c = choose(&dead(replicas), &opts);
            let want: Vec<InstanceKey> = want.into_iter().map(key).collect();
            assert_eq!(c.ranking, want, "{name}");
            assert_eq!(c.chosen, want[0], "{name}");
            assert!(c.lost.is_empty(), "{name}: {:?}", c.lost);
        }
    }

    #[test]
    fn coordinates_decide_when_gtid_sets_do_not() {
        use crate::topology::BinlogCoordinates;
        let at = |mut s: Snapshot, pos: u64| {
            if let Some(c) = s.replica.as_mut() {
                c.exec_source = Some(BinlogCoordinates::new("bin.000003", pos));
            }
            s
        };
        // Neither set contains the other: coordinates rank, and the one
        // behind by coordinates is lost (it has what the chosen lacks).
        let t = dead(vec![
            at(r("a", 11, "0-1-10,1-1-5"), 900),
            at(r("b", 12, "0-1-9,1-1-7"), 500),
        ]);
        let c = choose(&t, &CandidateOptions::default());
        assert_eq!(c.ranking, vec![key("a"), key("b")]);
        assert_eq!(c.lost, vec![(key("b"), AHEAD.to_string())]);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("no candidate holds every other candidate's transactions")),
            "{:?}",
            c.notes
        );
        // No GTID sets at all: coordinates alone.
        let mut a = at(source_gone(replica_of("a", 11, "p")), 100);
        let mut b = at(source_gone(replica_of("b", 12, "p")), 200);
        a.gtid.executed = None;
        b.gtid.executed = None;
        let c = choose(&dead(vec![a, b]), &CandidateOptions::default());
        assert_eq!(c.ranking, vec![key("b"), key("a")]);
        assert!(c.lost.is_empty());
    }

    #[test]
    fn replicas_ahead_of_the_candidate_are_lost() {
        // The most advanced replica must not be promoted: it is lost.
        let t = dead(vec![
            r("ahead", 11, "0-1-12"),
            r("b", 12, "0-1-10"),
            r("c", 13, "0-1-11"),
        ]);
        let c = choose(&t, &rules(&[("ahead", PromotionRule::MustNot)]));
        assert_eq!(c.chosen, key("c"));
        assert_eq!(c.lost, vec![(key("ahead"), AHEAD.to_string())]);
        // A replica with errant transactions is set aside and lost.
        let t = dead(vec![
            r("errant", 11, "0-1-10,0-11-11"),
            r("b", 12, "0-1-10"),
        ]);
        let c = choose(&t, &CandidateOptions::default());
        assert_eq!(c.chosen, key("b"));
        assert_eq!(c.lost, vec![(key("errant"), AHEAD.to_string())]);
        // A replica that cannot replicate from the chosen one is lost.
        let mut stmt = r("stmt", 13, "0-1-10");
        stmt.binlog_format = "STATEMENT".into();
        let t = dead(vec![r("a", 11, "0-1-10"), r("b", 12, "0-1-10"), stmt]);
        let c = choose(&t, &CandidateOptions::default());
        assert_eq!(c.chosen, key("a"));
        assert_eq!(c.lost.len(), 1);
        assert_eq!(c.lost[0].0, key("stmt"));
        assert!(
            c.lost[0].1.starts_with(
                "cannot replicate from a:3306: stmt:3306 logs binlog_format STATEMENT"
            ),
            "{}",
            c.lost[0].1
        );
    }

    #[test]
    fn semi_sync_only_promotes_a_replica_holding_everything() {
        let t = dead(vec![
            r("ahead", 11, "0-1-12"),
            r("b", 12, "0-1-10"),
            r("c", 13, "0-1-10"),
        ]);
        let mut opts = rules(&[("ahead", PromotionRule::MustNot)]);
        assert_eq!(choose(&t, &opts).chosen, key("b"));
        opts.semi_sync = true;
        let err = choose_candidate(&t, &key("p"), &opts).unwrap_err();
        let PlanError::NoCandidate { reasons, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(reasons.len(), 3);
        assert!(
            err.to_string()
                .contains("b:3306: does not hold every replica's transactions (semi-sync"),
            "{err}"
        );
        // The one ahead is a fine candidate with semi-sync when allowed.
        let opts = CandidateOptions {
            semi_sync: true,
            ..CandidateOptions::default()
        };
        let c = choose(&t, &opts);
        assert_eq!(c.chosen, key("ahead"));
        assert!(c.lost.is_empty());
    }

    #[test]
    fn received_counts_as_much_as_executed() {
        // "a" received 0-1-12 (its SQL thread is behind); "b" executed
        // 0-1-11; "c" has 0-1-10.
        let received = |mut s: Snapshot, pos: &str| {
            if let Some(c) = s.replica.as_mut() {
                c.gtid_io_pos = Some(pos.into());
            }
            s
        };
        let t = || {
            dead(vec![
                received(r("a", 11, "0-1-10"), "0-1-12"),
                received(r("b", 12, "0-1-11"), "0-1-11"),
                r("c", 13, "0-1-10"),
            ])
        };
        // (case, options, chosen, or the error's text)
        let semi = CandidateOptions {
            semi_sync: true,
            ..CandidateOptions::default()
        };
        let cases: Vec<(&str, CandidateOptions, Result<&str, &str>)> = vec![
            (
                "the one that received most",
                CandidateOptions::default(),
                Ok("a"),
            ),
            ("with semi-sync too", semi.clone(), Ok("a")),
            (
                // b executed most but lacks what a received: with
                // semi-sync it would lose an acknowledged write.
                "semi-sync: never one lacking what another received",
                CandidateOptions {
                    rules: [(key("a"), PromotionRule::MustNot)].into(),
                    ..semi
                },
                Err("b:3306: does not hold every replica's transactions"),
            ),
        ];
        for (name, opts, want) in cases {
            match (choose_candidate(&t(), &key("p"), &opts), want) {
                (Ok(c), Ok(host)) => {
                    assert_eq!(c.chosen, key(host), "{name}");
                    assert!(c.lost.is_empty(), "{name}: {:?}", c.lost);
                }
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{name}: {e}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn prefer_not_yields_to_a_candidate_holding_as_much() {
        let v = |s: Snapshot, raw: &str| with_version(s, raw);
        // pn ranks first (lower version) but is prefer_not; b holds as much.
        let t = dead(vec![
            v(r("pn", 11, "0-1-10"), "10.11.1-MariaDB"),
            v(r("b", 12, "0-1-10"), "10.11.6-MariaDB"),
        ]);
        let c = choose(&t, &rules(&[("pn", PromotionRule::PreferNot)]));
        assert_eq!(c.ranking, vec![key("pn"), key("b")]);
        assert_eq!(c.chosen, key("b"));
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("prefer_not; b:3306 holds as much"))
        );
        // pn is ahead: nobody else qualifies, so pn is chosen.
        let t = dead(vec![r("pn", 11, "0-1-11"), r("b", 12, "0-1-10")]);
        let c = choose(&t, &rules(&[("pn", PromotionRule::PreferNot)]));
        assert_eq!(c.chosen, key("pn"));
        assert!(c.lost.is_empty());
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("pn:3306 has the promotion rule prefer_not but no other"))
        );
    }

    #[test]
    fn mysql_errant_replica_of_a_dead_primary() {
        use crate::topology::testing::{mysql_replica_of, with_mysql_gtid};
        const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        const U3: &str = "5e11fa47-71ca-11e1-9e33-c80aa9429562";
        const U4: &str = "6e11fa47-71ca-11e1-9e33-c80aa9429562";
        let m = |host: &str, id: u32, uuid: &str, set: &str| {
            source_gone(with_mysql_gtid(
                mysql_replica_of(host, id, uuid, "p", U1),
                set,
            ))
        };
        let t = dead(vec![
            m("r1", 11, U2, &format!("{U1}:1-10")),
            m("r2", 12, U3, &format!("{U1}:1-12")),
            m("r3", 13, U4, &format!("{U1}:1-10,{U4}:1")),
        ]);
        let c = choose(&t, &CandidateOptions::default());
        assert_eq!(c.chosen, key("r2"));
        assert_eq!(c.ranking, vec![key("r2"), key("r1")]);
        assert_eq!(
            c.excluded,
            vec![(key("r3"), format!("errant GTIDs {U4}:1"))]
        );
        assert_eq!(c.lost, vec![(key("r3"), AHEAD.to_string())]);
        // Without the dead source's UUID nothing is called errant: r3 and
        // r2 are then incomparable, and the ranking decides.
        let mut r3 = m("r3", 13, U4, &format!("{U1}:1-10,{U4}:1"));
        if let Some(c) = r3.replica.as_mut() {
            c.source_uuid = None;
        }
        let t = dead(vec![m("r2", 12, U3, &format!("{U1}:1-12")), r3]);
        let c = choose(&t, &CandidateOptions::default());
        assert!(c.excluded.is_empty(), "{:?}", c.excluded);
    }

    #[test]
    fn most_common_format_prefers_the_safer_one_on_a_tie() {
        let mut a = mariadb("a", 1);
        a.binlog_format = "ROW".into();
        let mut b = mariadb("b", 2);
        b.binlog_format = "statement".into();
        assert_eq!(most_common_format(&[&a, &b]), Some("STATEMENT".into()));
        let c = mariadb("c", 3);
        assert_eq!(most_common_format(&[&a, &b, &c]), Some("ROW".into()));
        assert_eq!(most_common_format(&[]), None);
    }
}
