//! What a failover of a dead primary may lose, decided from numbers and
//! GTID sets alone.
//!
//! - Semi-sync: an acknowledged write is on at least `wait_count` of the
//!   primary's `replicas` that acknowledge (those whose semi-sync replica
//!   side is on). A failover that keeps every such write needs a replica
//!   holding it among the reachable ones, for any choice of acknowledging
//!   replicas: `reachable >= replicas - wait_count + 1`. Below that, orca
//!   does not fail over by itself (a minority partition holding the
//!   primary and one replica would otherwise go on committing acknowledged
//!   writes nobody else has: split brain), and says so.
//! - Asynchronous replication: the transactions the dead primary had (at
//!   its last probe) that the successor lacks are possibly lost; they are
//!   reported.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::candidate::join;
use super::error::PlanError;
use crate::topology::{GtidSet, InstanceKey, Snapshot, Topology};

/// A primary as orca last saw it answer (the prober keeps its last
/// snapshot): what a failover needs of a primary that no longer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeenPrimary {
    pub key: InstanceKey,
    /// Its semi-sync primary side was on.
    pub semi_sync: bool,
    /// `rpl_semi_sync_master_wait_for_slave_count` (1 on MariaDB).
    pub wait_count: u32,
    /// Its executed GTID set.
    pub executed: Option<GtidSet>,
    /// Its replicas whose semi-sync replica side was off when orca last saw
    /// them: they acknowledge nothing, so no acknowledged write waits for
    /// them and the arithmetic leaves them out.
    #[serde(default)]
    pub not_acknowledging: BTreeSet<InstanceKey>,
}

impl LastSeenPrimary {
    /// From the primary's snapshot alone: every replica counts as one that
    /// acknowledges.
    pub fn of(s: &Snapshot) -> LastSeenPrimary {
        LastSeenPrimary {
            key: s.key.clone(),
            semi_sync: s.semi_sync.primary_enabled,
            wait_count: s.semi_sync.wait_count.max(1),
            executed: s.gtid.executed.clone(),
            not_acknowledging: BTreeSet::new(),
        }
    }

    /// From the primary's last snapshot and the last snapshots of the
    /// other instances: those that replicated from it with their semi-sync
    /// replica side off do not acknowledge.
    pub fn remembered<'a>(
        primary: &Snapshot,
        others: impl IntoIterator<Item = &'a Snapshot>,
    ) -> LastSeenPrimary {
        let mut last = LastSeenPrimary::of(primary);
        last.not_acknowledging = others
            .into_iter()
            .filter(|s| {
                s.replica.as_ref().is_some_and(|r| r.source == primary.key)
                    && !s.semi_sync.replica_enabled
            })
            .map(|s| s.key.clone())
            .collect();
        last
    }
}

/// What a failover of `failed` to `chosen` may lose. An automatic one
/// (`automatic`) of a semi-sync primary is refused when the reachable
/// replicas may miss an acknowledged write; a forced one goes on and says
/// so in the notes. The transactions `failed` had (as last seen) that
/// `chosen` lacks are returned.
pub fn assess(
    topo: &Topology,
    failed: &InstanceKey,
    chosen: &InstanceKey,
    last: Option<&LastSeenPrimary>,
    semi_sync: bool,
    automatic: bool,
    notes: &mut Vec<String>,
) -> Result<Option<LostTransactions>, PlanError> {
    let last = last.filter(|l| &l.key == failed);
    if last.map_or(semi_sync, |l| l.semi_sync) {
        let none = BTreeSet::new();
        let (quorum, unreachable) = AckQuorum::of(
            topo,
            failed,
            last.map_or(1, |l| l.wait_count),
            last.map_or(&none, |l| &l.not_acknowledging),
        );
        if let Some(why) = quorum.shortfall(failed) {
            if automatic {
                return Err(PlanError::Invalid(format!(
                    "{why} (unreachable: {}; a force failover goes on anyway)",
                    join(&unreachable)
                )));
            }
            notes.push(format!(
                "forced despite: {why}; acknowledged writes held only by {} are lost",
                join(&unreachable)
            ));
        }
    }
    let successor = topo.get(chosen).and_then(|n| n.snapshot.as_ref());
    let progress = successor.and_then(|s| {
        let received = s.replica.as_ref().and_then(|r| r.received());
        match (s.gtid.executed.clone(), received) {
            (Some(e), Some(r)) => e.union(&r).or(Some(e)),
            (e, r) => e.or(r),
        }
    });
    let lost = match (last.and_then(|l| l.executed.as_ref()), progress) {
        (Some(old), Some(new)) => possibly_lost(old, &new),
        _ => None,
    };
    if let Some(l) = &lost {
        notes.push(format!(
            "possibly lost: {} transaction(s) {failed} had at its last probe and {chosen} lacks: {}",
            l.count, l.gtids
        ));
    }
    Ok(lost)
}

/// The acknowledgement arithmetic of a semi-sync primary that is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckQuorum {
    /// The dead primary's replicas known to orca (reachable or not) that
    /// acknowledge writes.
    pub replicas: usize,
    /// Of those, the ones orca reaches.
    pub reachable: usize,
    /// Acknowledgements the primary waited for (at least 1).
    pub wait_count: u32,
}

impl AckQuorum {
    /// The arithmetic of a failover of `failed`, which waited for
    /// `wait_count` acknowledgements, in `topo`; its replicas in
    /// `not_acknowledging` do not count. Also returns the acknowledging
    /// replicas orca does not reach (those whose writes a failover may
    /// lose).
    pub fn of(
        topo: &Topology,
        failed: &InstanceKey,
        wait_count: u32,
        not_acknowledging: &BTreeSet<InstanceKey>,
    ) -> (AckQuorum, Vec<InstanceKey>) {
        let known: Vec<InstanceKey> = topo
            .get(failed)
            .map(|n| n.replicas.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !not_acknowledging.contains(k))
            .collect();
        let (reachable, mut unreachable): (Vec<_>, Vec<_>) = known
            .iter()
            .cloned()
            .partition(|k| topo.get(k).is_some_and(|n| n.reachable()));
        unreachable.sort();
        let quorum = AckQuorum {
            replicas: known.len(),
            reachable: reachable.len(),
            wait_count,
        };
        (quorum, unreachable)
    }

    /// Reachable replicas needed so that every acknowledged write is on one
    /// of them.
    pub fn needed(&self) -> usize {
        let wait = usize::try_from(self.wait_count.max(1)).unwrap_or(usize::MAX);
        self.replicas.saturating_sub(wait) + 1
    }

    pub fn met(&self) -> bool {
        self.reachable >= self.needed()
    }

    /// Why an automatic failover must not happen, or `None` when it may.
    pub fn shortfall(&self, failed: &InstanceKey) -> Option<String> {
        if self.met() {
            return None;
        }
        Some(format!(
            "semi-sync: {} of the {} replicas of {failed} that acknowledge writes {} reachable, and with waitCount {} every acknowledged write is on a reachable one only when {} are (replicas - waitCount + 1); an acknowledged write may be only on the unreachable ones, or {failed} may still be committing with them (a partition): no automatic failover",
            self.reachable,
            self.replicas,
            if self.reachable == 1 { "is" } else { "are" },
            self.wait_count.max(1),
            self.needed()
        ))
    }
}

/// Transactions the old primary had that the successor lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostTransactions {
    /// In the flavor's notation: a MySQL GTID set (`uuid:a-b`), or for
    /// MariaDB one `domain-server_id-seq` per domain (the old primary's
    /// last GTID there) with the first lost seq (`0-1-101..105`, or
    /// `0-1-105` when only one is lost).
    pub gtids: String,
    /// How many transactions (for MariaDB: seq numbers in the domains).
    pub count: u64,
}

/// `old` (the dead primary's executed set at its last probe) minus
/// `successor` (what the successor executed and received). `None` when
/// nothing is missing or the flavors differ.
pub fn possibly_lost(old: &GtidSet, successor: &GtidSet) -> Option<LostTransactions> {
    let lost = match (old, successor) {
        (GtidSet::MySql(_), _) => {
            let diff = old.subtract(successor)?;
            let set = diff.as_mysql()?;
            LostTransactions {
                gtids: set.to_string(),
                count: set.count(),
            }
        }
        (GtidSet::MariaDb(o), _) => {
            let s = successor.in_flavor(old.flavor())?;
            let s = s.as_mariadb()?;
            let mut parts = Vec::new();
            let mut count = 0;
            for g in o.subtract(s).gtids() {
                // Only the highest seq of a domain counts (the subtraction
                // keeps every server id beyond the successor).
                if o.domain_max(g.domain) != Some(g.seq) {
                    continue;
                }
                let first = s.domain_max(g.domain).map_or(1, |m| m + 1);
                count += (g.seq + 1).saturating_sub(first);
                parts.push(if first >= g.seq {
                    g.to_string()
                } else {
                    format!("{}-{}-{first}..{}", g.domain, g.server_id, g.seq)
                });
            }
            LostTransactions {
                gtids: parts.join(","),
                count,
            }
        }
    };
    (lost.count > 0).then_some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::recovery::{RecoveryOptions, dead_primary, force_failover};
    use crate::topology::Flavor;
    use crate::topology::testing::{down, key, replica_of, source_down, topology, with_gtid};

    #[test]
    fn ack_quorum() {
        // replicas, reachable, wait_count, met
        let table: &[(usize, usize, u32, bool)] = &[
            (3, 3, 1, true),
            (3, 2, 1, false), // primary + one replica cut off
            (3, 2, 2, true),  // two acks: one of any two is reachable
            (3, 1, 2, false),
            (3, 1, 3, true),
            (1, 1, 1, true),
            (1, 0, 1, false),
            (2, 1, 1, false),
            (2, 2, 1, true),
            (2, 1, 5, true), // a wait count above the replicas
            (3, 3, 0, true), // 0 read as 1
            (3, 2, 0, false),
            (0, 0, 1, false),
        ];
        for &(replicas, reachable, wait_count, met) in table {
            let q = AckQuorum {
                replicas,
                reachable,
                wait_count,
            };
            assert_eq!(q.met(), met, "{q:?}");
            let key = InstanceKey::new("p", 3306);
            assert_eq!(q.shortfall(&key).is_none(), met, "{q:?}");
        }
        let q = AckQuorum {
            replicas: 3,
            reachable: 2,
            wait_count: 1,
        };
        let why = q
            .shortfall(&InstanceKey::new("p", 3306))
            .unwrap_or_default();
        assert!(
            why.contains(
                "2 of the 3 replicas of p:3306 that acknowledge writes are reachable, and with waitCount 1 every acknowledged write is on a reachable one only when 3 are"
            ),
            "{why}"
        );
        assert!(why.contains("no automatic failover"), "{why}");
    }

    #[test]
    fn replicas_that_do_not_acknowledge_are_left_out_of_the_quorum() {
        // cut off, not acknowledging, wait count: (replicas, reachable,
        // met, unreachable acknowledging replicas)
        type Row = (
            &'static [&'static str],
            &'static [&'static str],
            u32,
            (usize, usize, bool, &'static [&'static str]),
        );
        let table: &[Row] = &[
            (&[], &[], 1, (3, 3, true, &[])),
            (&["r1"], &[], 1, (3, 2, false, &["r1"])),
            // the cut-off replica never acknowledges: the reachable ones
            // hold every acknowledged write
            (&["r1"], &["r1"], 1, (2, 2, true, &[])),
            // a reachable replica that does not acknowledge changes nothing
            (&["r1"], &["r2"], 1, (2, 1, false, &["r1"])),
            (&["r1", "r2"], &["r1"], 1, (2, 1, false, &["r2"])),
            (&["r1", "r2"], &["r1"], 2, (2, 1, true, &["r2"])),
            (&["r1"], &["r1", "r2", "r3"], 1, (0, 0, false, &[])),
        ];
        for &(cut, silent, wait, (replicas, reachable, met, lost)) in table {
            let topo = partitioned(cut);
            let silent: BTreeSet<InstanceKey> = silent.iter().map(|h| key(h)).collect();
            let (q, unreachable) = AckQuorum::of(&topo, &key("p"), wait, &silent);
            let want = AckQuorum {
                replicas,
                reachable,
                wait_count: wait,
            };
            assert_eq!(q, want, "{cut:?} {silent:?} wait {wait}");
            assert_eq!(q.met(), met, "{q:?}");
            let lost: Vec<InstanceKey> = lost.iter().map(|h| key(h)).collect();
            assert_eq!(unreachable, lost, "{cut:?} {silent:?} wait {wait}");
        }
    }

    #[test]
    fn the_last_seen_primary_names_its_replicas_that_do_not_acknowledge() {
        let mut p = with_gtid(crate::topology::testing::mariadb("p", 1), "0-1-100");
        p.semi_sync.primary_enabled = true;
        let mut r1 = replica_of("r1", 2, "p");
        r1.semi_sync.replica_enabled = false;
        let mut r2 = replica_of("r2", 3, "p");
        r2.semi_sync.replica_enabled = true;
        // not a replica of p: not its business
        let mut other = replica_of("x", 4, "q");
        other.semi_sync.replica_enabled = false;
        let last = LastSeenPrimary::remembered(&p, [&p, &r1, &r2, &other]);
        assert!(last.semi_sync);
        assert_eq!(last.wait_count, 1);
        assert_eq!(last.not_acknowledging, BTreeSet::from([key("r1")]));
        assert_eq!(LastSeenPrimary::of(&p).not_acknowledging, BTreeSet::new());
    }

    /// Primary + 3 semi-sync replicas; the primary and `cut` are out of
    /// reach.
    fn partitioned(cut: &[&str]) -> Topology {
        let mut snaps = Vec::new();
        let mut unreachable = vec![down("p", None)];
        for (i, r) in ["r1", "r2", "r3"].into_iter().enumerate() {
            if cut.contains(&r) {
                unreachable.push(down(r, Some("p")));
            } else {
                let mut s = with_gtid(source_down(replica_of(r, 2 + i as u32, "p")), "0-1-100");
                s.semi_sync.replica_enabled = true;
                snaps.push(s);
            }
        }
        topology(snaps, unreachable)
    }

    fn last_seen(wait_count: u32, semi_sync: bool, executed: &str) -> RecoveryOptions {
        let mut opts = RecoveryOptions::default();
        opts.candidate.semi_sync = semi_sync;
        opts.last_seen = Some(LastSeenPrimary {
            key: key("p"),
            semi_sync,
            wait_count,
            executed: Some(GtidSet::parse(Flavor::MariaDb, executed).expect("gtid")),
            not_acknowledging: BTreeSet::new(),
        });
        opts
    }

    #[test]
    fn semi_sync_failover_needs_every_acknowledged_write() {
        // cut off, wait count, automatic failover allowed
        let table: &[(&[&str], u32, bool)] = &[
            (&[], 1, true),
            (&["r1"], 1, false),
            (&["r1"], 2, true),
            (&["r1", "r2"], 2, false),
            (&["r1", "r2"], 3, true),
        ];
        for &(cut, wait, allowed) in table {
            let topo = partitioned(cut);
            let opts = last_seen(wait, true, "0-1-100");
            let auto = dead_primary(&topo, &key("p"), &opts);
            assert_eq!(auto.is_ok(), allowed, "{cut:?} wait {wait}: {auto:?}");
            if let Err(e) = auto {
                let why = e.to_string();
                assert!(why.contains("no automatic failover"), "{why}");
                assert!(why.contains("r1:3306"), "{why}");
            }
            // By hand it goes on, and says what may be lost.
            let forced = force_failover(&topo, &key("p"), &opts).expect("forced");
            assert_eq!(
                forced.notes.iter().any(|n| n.starts_with("forced despite")),
                !allowed,
                "{:?}",
                forced.notes
            );
        }
        // An asynchronous cluster fails over with replicas cut off.
        let topo = partitioned(&["r1"]);
        assert!(dead_primary(&topo, &key("p"), &last_seen(1, false, "0-1-100")).is_ok());
        // A cut-off replica that does not acknowledge holds no acknowledged
        // write the others lack: cut off, not acknowledging, allowed.
        let table: &[(&[&str], &[&str], bool)] = &[
            (&["r1"], &["r1"], true),
            (&["r1"], &["r2"], false),
            (&["r1", "r2"], &["r1"], false),
        ];
        for &(cut, silent, allowed) in table {
            let topo = partitioned(cut);
            let mut opts = last_seen(1, true, "0-1-100");
            if let Some(l) = opts.last_seen.as_mut() {
                l.not_acknowledging = silent.iter().map(|h| key(h)).collect();
            }
            let auto = dead_primary(&topo, &key("p"), &opts);
            assert_eq!(auto.is_ok(), allowed, "{cut:?} {silent:?}: {auto:?}");
        }
    }

    #[test]
    fn async_failover_reports_possibly_lost_transactions() {
        let topo = partitioned(&[]);
        let plan = dead_primary(&topo, &key("p"), &last_seen(1, false, "0-1-104")).expect("plan");
        let lost = plan.lost_transactions.expect("lost");
        assert_eq!((lost.gtids.as_str(), lost.count), ("0-1-101..104", 4));
        assert!(
            plan.notes.iter().any(|n| n.contains("possibly lost: 4")),
            "{:?}",
            plan.notes
        );
        let plan = dead_primary(&topo, &key("p"), &last_seen(1, false, "0-1-100")).expect("plan");
        assert_eq!(plan.lost_transactions, None);
        // Without a last snapshot nothing is claimed.
        let plan = dead_primary(&topo, &key("p"), &RecoveryOptions::default()).expect("plan");
        assert_eq!(plan.lost_transactions, None);
    }

    #[test]
    fn lost_gtids() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let v = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        // flavor, old, successor, lost (text, count)
        type Row = (Flavor, String, String, Option<(String, u64)>);
        let table: Vec<Row> = vec![
            (
                Flavor::MariaDb,
                "0-1-105".into(),
                "0-1-100".into(),
                Some(("0-1-101..105".into(), 5)),
            ),
            (
                Flavor::MariaDb,
                "0-1-101".into(),
                "0-1-100".into(),
                Some(("0-1-101".into(), 1)),
            ),
            (Flavor::MariaDb, "0-1-100".into(), "0-1-100".into(), None),
            (
                Flavor::MariaDb,
                "0-1-100".into(),
                "0-1-100,0-2-3".into(),
                None,
            ),
            // the successor wrote nothing yet in domain 1
            (
                Flavor::MariaDb,
                "0-1-10,1-1-3".into(),
                "0-1-10".into(),
                Some(("1-1-1..3".into(), 3)),
            ),
            // an older server id in the domain does not count twice
            (
                Flavor::MariaDb,
                "0-2-50,0-1-55".into(),
                "0-2-50".into(),
                Some(("0-1-51..55".into(), 5)),
            ),
            (
                Flavor::MariaDb,
                "0-1-7".into(),
                "".into(),
                Some(("0-1-1..7".into(), 7)),
            ),
            (
                Flavor::MySql,
                format!("{u}:1-105,{v}:1-3"),
                format!("{u}:1-100,{v}:1-3"),
                Some((format!("{u}:101-105"), 5)),
            ),
            (
                Flavor::MySql,
                format!("{u}:1-105"),
                format!("{u}:1-105,{v}:1"),
                None,
            ),
        ];
        for (flavor, old, successor, want) in table {
            let o = GtidSet::parse(flavor, &old).expect("old");
            let s = GtidSet::parse(flavor, &successor).expect("successor");
            let got = possibly_lost(&o, &s);
            assert_eq!(got.map(|l| (l.gtids, l.count)), want, "{old} - {successor}");
        }
        // Flavors that do not compare: nothing is claimed.
        let o = GtidSet::parse(Flavor::MariaDb, "0-1-5").expect("old");
        let s = GtidSet::parse(Flavor::MySql, &format!("{u}:1")).expect("successor");
        assert_eq!(possibly_lost(&o, &s), None);
    }
}
