//! Keeping a cluster's members in replication, decided from the topology
//! and the cluster's membership (the pods, in Kubernetes): which members
//! to point at the primary, which cannot follow it, and whether a primary
//! that restarted read only may take writes again. Pure.

use std::collections::BTreeSet;

use super::step::{Plan, PlanKind, SourcePosition, Step};
use crate::topology::errant::extra_transactions;
use crate::topology::graph::Topology;
use crate::topology::{Flavor, GtidSet, InstanceKey, Snapshot};

/// Members to join to the primary, and those that cannot follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Joining {
    /// Stop, change source, start, for each member that joins.
    pub plan: Plan,
    /// Members holding transactions the primary lacks, with them.
    pub unjoinable: Vec<(InstanceKey, GtidSet)>,
}

/// Plans to point at `primary` every reachable read-only member that
/// replicates from nothing (a new member, a fenced former primary) or from
/// an address that is no member any more (with the primary side of
/// semi-sync off). A writable one is left to
/// fencing; one that holds transactions the primary lacks is reported;
/// members that are `leaving` are not touched.
pub fn join_members(
    topo: &Topology,
    primary: &InstanceKey,
    members: &BTreeSet<InstanceKey>,
    leaving: &BTreeSet<InstanceKey>,
) -> Joining {
    let mut plan = Plan::new(PlanKind::Repoint);
    plan.successor = Some(primary.clone());
    let mut unjoinable = Vec::new();
    let Some(psnap) = topo.get(primary).and_then(|n| n.snapshot.as_ref()) else {
        return Joining { plan, unjoinable };
    };
    for k in members
        .iter()
        .filter(|k| *k != primary && !leaving.contains(*k))
    {
        let Some(snap) = topo.get(k).and_then(|n| n.snapshot.as_ref()) else {
            continue;
        };
        let needs = match &snap.replica {
            None => true,
            Some(r) => !members.contains(&r.source),
        };
        if !needs || !snap.is_read_only() {
            continue;
        }
        if let Some(extra) = extra_transactions(snap, psnap) {
            unjoinable.push((k.clone(), extra));
            continue;
        }
        plan.steps.push(Step::StopReplica { on: k.clone() });
        plan.steps.push(Step::ChangeSource {
            on: k.clone(),
            source: primary.clone(),
            position: join_position(snap),
        });
        // A former primary with the primary side of semi-sync on would wait
        // for acknowledgements of every transaction it applies.
        if snap.semi_sync.primary_enabled {
            plan.steps.push(Step::SetSemiSyncPrimary {
                on: k.clone(),
                enabled: false,
                wait_count: 1,
            });
        }
        plan.steps.push(Step::StartReplica { on: k.clone() });
    }
    Joining { plan, unjoinable }
}

/// Where a joining member starts reading: a MariaDB member whose own
/// binary log goes beyond its `gtid_slave_pos` (a former primary, whose
/// last transactions are its own writes) starts from the end of its
/// binlog; from its stale `gtid_slave_pos` it would ask for transactions
/// it has (error 1950 under gtid_strict_mode, duplicates, or 1236).
fn join_position(snap: &Snapshot) -> SourcePosition {
    let Some(current) = snap.gtid.executed.as_ref() else {
        return SourcePosition::Gtid;
    };
    if snap.flavor != Flavor::MariaDb || current.is_empty() {
        return SourcePosition::Gtid;
    }
    let behind = match snap.gtid.slave_pos.as_ref() {
        Some(applied) => applied.contains(current) != Some(true),
        None => true,
    };
    if behind {
        SourcePosition::OwnBinlog
    } else {
        SourcePosition::Gtid
    }
}

/// A primary that restarted read only, without a failover, may take
/// writes again when it replicates from nothing, nothing else is writable
/// and it holds everything the instances replicating hold. A read-only
/// instance that replicates from nothing (a diverged former primary) is
/// not weighed: it cannot follow anyone and is reported by
/// [`join_members`]. Returns the plan.
pub fn reopen_primary(topo: &Topology, primary: &InstanceKey, semi_sync: bool) -> Option<Plan> {
    let snap = topo.get(primary)?.snapshot.as_ref()?;
    if !snap.is_read_only() || snap.replica.is_some() {
        return None;
    }
    let others: Vec<&Snapshot> = topo
        .nodes
        .values()
        .filter(|n| &n.key != primary)
        .filter_map(|n| n.snapshot.as_deref())
        .collect();
    let detached = |o: &Snapshot| o.is_read_only() && o.replica.is_none();
    if others
        .iter()
        .any(|o| !o.is_read_only() || (!detached(o) && extra_transactions(o, snap).is_some()))
    {
        return None;
    }
    let mut plan = Plan::new(PlanKind::ForceTakeover);
    plan.successor = Some(primary.clone());
    // The epoch before it takes writes (see `Step::RecordEpoch`).
    plan.steps.push(Step::RecordEpoch {
        on: primary.clone(),
    });
    // Semi-sync first: no write may be acknowledged without a replica.
    if semi_sync {
        plan.steps.push(Step::SetSemiSyncPrimary {
            on: primary.clone(),
            enabled: true,
            wait_count: snap.semi_sync.wait_count.max(1),
        });
    }
    plan.steps.push(Step::SetReadOnly {
        on: primary.clone(),
        read_only: false,
    });
    Some(plan)
}

/// What a failover interrupted past its point of no return still owes
/// its successor `primary`: forgetting its source, if it still has one
/// (a failover makes it writable first), then writable as
/// [`reopen_primary`] makes it, if it is not yet.
pub fn roll_forward_primary(
    topo: &Topology,
    primary: &InstanceKey,
    semi_sync: bool,
) -> Option<Plan> {
    let snap = topo.get(primary)?.snapshot.as_deref()?;
    if snap.replica.is_none() {
        return reopen_primary(topo, primary, semi_sync);
    }
    let mut forgotten = topo.clone();
    if let Some(s) = forgotten
        .nodes
        .get_mut(primary)
        .and_then(|n| n.snapshot.as_deref_mut())
    {
        s.replica = None;
    }
    let mut plan = Plan::new(PlanKind::ForceTakeover);
    plan.successor = Some(primary.clone());
    plan.steps = vec![
        Step::StopReplica {
            on: primary.clone(),
        },
        Step::ResetReplicaAll {
            on: primary.clone(),
        },
    ];
    if let Some(reopen) = reopen_primary(&forgotten, primary, semi_sync) {
        plan.steps.extend(reopen.steps);
    }
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::graph::Unreached;
    use crate::topology::testing::{key, mariadb, replica_of, with_gtid};

    fn ro(mut s: Snapshot) -> Snapshot {
        s.read_only = true;
        s
    }

    #[test]
    fn joins_new_and_stray_members_and_reports_diverged_ones() {
        let topo = Topology::build(
            vec![
                with_gtid(mariadb("p", 2), "0-2-10"),
                with_gtid(replica_of("ok", 3, "p"), "0-2-10"),
                ro(mariadb("new", 4)),
                with_gtid(replica_of("stray", 5, "gone"), "0-2-9"),
                with_gtid(ro(mariadb("old", 1)), "0-1-3"),
                mariadb("writable", 6),
            ],
            vec![Unreached::new(key("gone"), "refused")],
        );
        let members: BTreeSet<InstanceKey> = ["p", "ok", "new", "stray", "old", "writable"]
            .iter()
            .map(|h| key(h))
            .collect();
        let j = join_members(&topo, &key("p"), &members, &BTreeSet::new());
        let moved: Vec<&InstanceKey> = j
            .plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ChangeSource { on, .. } => Some(on),
                _ => None,
            })
            .collect();
        assert_eq!(moved, vec![&key("new"), &key("stray")]);
        // The stray one replicated (its slave_pos is unknown here, so it is
        // taken from its own binlog); the new one has no transactions.
        let positions: Vec<(&InstanceKey, &SourcePosition)> = j
            .plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ChangeSource { on, position, .. } => Some((on, position)),
                _ => None,
            })
            .collect();
        assert_eq!(
            positions,
            vec![
                (&key("new"), &SourcePosition::Gtid),
                (&key("stray"), &SourcePosition::OwnBinlog)
            ]
        );
        assert_eq!(j.unjoinable.len(), 1);
        assert_eq!(j.unjoinable[0].0, key("old"));
        assert_eq!(j.unjoinable[0].1.to_string(), "0-1-3");
        let leaving = BTreeSet::from([key("new")]);
        let j = join_members(&topo, &key("p"), &members, &leaving);
        assert!(j.plan.steps.iter().all(|s| s.target() != Some(&key("new"))));
    }

    #[test]
    fn a_former_primary_rejoins_from_the_end_of_its_own_binlog() {
        let gtid = |s: &str| GtidSet::parse(Flavor::MariaDb, s).ok();
        // Its own writes 0-1-1..10 are in its binlog; its slave_pos is
        // older (or empty: it never replicated).
        let mut old = with_gtid(ro(mariadb("old", 1)), "0-1-10");
        old.gtid.slave_pos = gtid("0-1-3");
        let mut never = with_gtid(ro(mariadb("never", 4)), "0-1-10");
        never.gtid.slave_pos = None;
        never.semi_sync.primary_enabled = true;
        // A replica that was detached: everything it has was replicated.
        let mut detached = with_gtid(ro(mariadb("detached", 3)), "0-1-10");
        detached.gtid.slave_pos = gtid("0-1-10");
        let topo = Topology::build(
            vec![
                with_gtid(mariadb("p", 2), "0-1-10,0-2-5"),
                old,
                never,
                detached,
            ],
            vec![],
        );
        let members: BTreeSet<InstanceKey> = ["p", "old", "never", "detached"]
            .iter()
            .map(|h| key(h))
            .collect();
        let j = join_members(&topo, &key("p"), &members, &BTreeSet::new());
        assert!(j.unjoinable.is_empty(), "{:?}", j.unjoinable);
        let lines: Vec<String> = j
            .plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::ChangeSource { .. }))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            lines,
            vec![
                "detached:3306: replicate from p:3306 (GTID)",
                "never:3306: replicate from p:3306 (GTID, from the end of its own binlog)",
                "old:3306: replicate from p:3306 (GTID, from the end of its own binlog)",
            ]
        );
        assert!(j.plan.steps.contains(&Step::SetSemiSyncPrimary {
            on: key("never"),
            enabled: false,
            wait_count: 1,
        }));
        assert_eq!(
            j.plan
                .steps
                .iter()
                .filter(|s| matches!(s, Step::SetSemiSyncPrimary { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn a_restarted_primary_reopens_only_when_nothing_is_ahead() {
        let restarted = || with_gtid(ro(mariadb("p", 2)), "0-2-10");
        let topo = Topology::build(
            vec![restarted(), with_gtid(replica_of("r", 3, "p"), "0-2-10")],
            vec![],
        );
        let plan = reopen_primary(&topo, &key("p"), true).unwrap();
        // The epoch first, then semi-sync, then writes.
        assert_eq!(
            plan.steps,
            vec![
                Step::RecordEpoch { on: key("p") },
                Step::SetSemiSyncPrimary {
                    on: key("p"),
                    enabled: true,
                    wait_count: 1,
                },
                Step::SetReadOnly {
                    on: key("p"),
                    read_only: false,
                },
            ]
        );
        assert_eq!(crate::plan::step::check_epoch_placement(&plan), Ok(()));
        let plan = reopen_primary(&topo, &key("p"), false).unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::RecordEpoch { on: key("p") },
                Step::SetReadOnly {
                    on: key("p"),
                    read_only: false,
                },
            ]
        );
        let ahead = Topology::build(
            vec![restarted(), with_gtid(replica_of("r", 3, "p"), "0-2-11")],
            vec![],
        );
        assert_eq!(reopen_primary(&ahead, &key("p"), false), None);
        let other_writable = Topology::build(vec![restarted(), mariadb("x", 4)], vec![]);
        assert_eq!(reopen_primary(&other_writable, &key("p"), false), None);
        let writable = Topology::build(vec![with_gtid(mariadb("p", 2), "0-2-10")], vec![]);
        assert_eq!(reopen_primary(&writable, &key("p"), false), None);
        // A diverged former primary, detached, does not keep it read only.
        let diverged = Topology::build(
            vec![
                restarted(),
                with_gtid(replica_of("r", 3, "p"), "0-2-10"),
                with_gtid(ro(mariadb("old", 1)), "0-1-3"),
            ],
            vec![],
        );
        assert!(reopen_primary(&diverged, &key("p"), false).is_some());
    }

    #[test]
    fn an_interrupted_successor_forgets_its_source_and_is_made_writable() {
        let p = || with_gtid(replica_of("p", 2, "old"), "0-1-10");
        let r = || with_gtid(replica_of("r", 3, "old"), "0-1-10");
        // Read only, its source still set: forgotten, then reopened.
        let topo = Topology::build(vec![ro(p()), r()], vec![]);
        let plan = roll_forward_primary(&topo, &key("p"), false).unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::StopReplica { on: key("p") },
                Step::ResetReplicaAll { on: key("p") },
                Step::RecordEpoch { on: key("p") },
                Step::SetReadOnly {
                    on: key("p"),
                    read_only: false,
                },
            ]
        );
        // Writable already (the failover made it so before the reset):
        // only forgotten.
        let mut writable = p();
        writable.read_only = false;
        let topo = Topology::build(vec![writable, r()], vec![]);
        let plan = roll_forward_primary(&topo, &key("p"), false).unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::StopReplica { on: key("p") },
                Step::ResetReplicaAll { on: key("p") },
            ]
        );
        // No source: as a restarted primary.
        let topo = Topology::build(vec![with_gtid(ro(mariadb("p", 2)), "0-2-10")], vec![]);
        assert_eq!(
            roll_forward_primary(&topo, &key("p"), false),
            reopen_primary(&topo, &key("p"), false)
        );
    }
}
