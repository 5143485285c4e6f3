//! Replicas that repair themselves: which member must be re-provisioned
//! by a physical copy, and from which members, best first. Pure.
//!
//! A member is re-provisioned when replication cannot bring it back:
//! - it holds transactions the primary lacks (errant: written on it
//!   directly, or a former primary's tail that never replicated);
//! - its source can no longer send what it needs (error 1236: the
//!   binary logs it would read from were purged, a scale-up or a lost
//!   volume after the retention).
//!
//! With `replicaRepair: auto` both are repaired without being asked;
//! with `manual`, only on request (the `orca.dev/reprovision` annotation,
//! the API's `reprovision` operation). Never two copies at once in a
//! cluster; never the primary as the target. The sources are the
//! healthy replicas of the primary (replicating, no errant transaction),
//! least behind first; the primary is a source only when it is alone.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::step::{Plan, PlanKind, SourcePosition, Step};
use crate::topology::errant::extra_transactions_of_replica;
use crate::topology::graph::Topology;
use crate::topology::{GtidSet, InstanceKey};

/// The replication error of a source that cannot send what the replica
/// asks for (MariaDB and MySQL: `ER_MASTER_FATAL_ERROR_READING_BINLOG`).
pub const SOURCE_CANNOT_SEND: u32 = 1236;

/// `spec.replicaRepair`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepairPolicy {
    /// Errant replicas and replicas their source cannot feed are
    /// re-provisioned without being asked.
    #[default]
    Auto,
    /// Only on request.
    Manual,
}

/// Why a member is re-provisioned.
#[derive(Debug, Clone, PartialEq)]
pub enum RepairReason {
    /// It holds these transactions, which the primary lacks.
    Errant(GtidSet),
    /// Its source cannot send what it needs (the error's text).
    SourceCannotSend(String),
    /// Asked for (by whom).
    Requested(String),
}

impl RepairReason {
    /// The reason's name (Events, status, records).
    pub fn name(&self) -> &'static str {
        match self {
            RepairReason::Errant(_) => "ErrantTransactions",
            RepairReason::SourceCannotSend(_) => "SourceCannotSend",
            RepairReason::Requested(_) => "Requested",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RepairReason::Errant(g) => format!("it holds transactions the primary lacks ({g})"),
            RepairReason::SourceCannotSend(e) => {
                format!("its source cannot send what it needs ({e})")
            }
            RepairReason::Requested(by) => format!("asked for by {by}"),
        }
    }
}

/// A re-provisioning to carry out.
#[derive(Debug, Clone, PartialEq)]
pub struct Repair {
    pub target: InstanceKey,
    pub reason: RepairReason,
    /// Where to copy from, best first (the next is tried when one fails).
    pub sources: Vec<InstanceKey>,
}

/// Why no re-provisioning is made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Nothing needs it.
    Nothing,
    /// A copy is under way in the cluster.
    CopyUnderWay,
    /// No member can be copied from.
    NoSource(InstanceKey),
    /// The target is the primary.
    TargetIsPrimary,
    /// The target is no member (or is leaving).
    NotAMember(InstanceKey),
    /// Needed, but the policy is manual (the reason, for the report).
    Manual(InstanceKey, String),
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Nothing => f.write_str("no member needs re-provisioning"),
            Hold::CopyUnderWay => f.write_str("a copy is already under way in this cluster"),
            Hold::NoSource(k) => write!(f, "no healthy member to copy {k} from"),
            Hold::TargetIsPrimary => f.write_str("the primary is never re-provisioned"),
            Hold::NotAMember(k) => write!(f, "{k} is no member of the cluster"),
            Hold::Manual(k, why) => write!(
                f,
                "{k} needs re-provisioning ({why}); replicaRepair is manual: annotate orca.dev/reprovision"
            ),
        }
    }
}

/// The members that need a copy, with why, in key order.
pub fn needing_copy(
    topo: &Topology,
    primary: &InstanceKey,
    members: &BTreeSet<InstanceKey>,
    leaving: &BTreeSet<InstanceKey>,
) -> Vec<(InstanceKey, RepairReason)> {
    let Some(psnap) = topo.get(primary).and_then(|n| n.snapshot.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in members
        .iter()
        .filter(|k| *k != primary && !leaving.contains(*k))
    {
        let Some(snap) = topo.get(k).and_then(|n| n.snapshot.as_ref()) else {
            continue;
        };
        // A writable member is a split brain for fencing, not a copy.
        if !snap.is_read_only() {
            continue;
        }
        if let Some(extra) = extra_transactions_of_replica(snap, psnap) {
            out.push((k.clone(), RepairReason::Errant(extra)));
        } else if let Some(r) = snap.replica.as_ref()
            && r.last_io_errno == SOURCE_CANNOT_SEND
        {
            out.push((
                k.clone(),
                RepairReason::SourceCannotSend(r.last_io_error.clone()),
            ));
        }
    }
    out
}

/// The members `target` can be copied from, best first: replicas of the
/// primary that replicate with no errant transaction, least behind first
/// (then by key); the primary only when it is alone (every other member
/// needs a copy too); none while another member may become a source.
pub fn copy_sources(
    topo: &Topology,
    primary: &InstanceKey,
    target: &InstanceKey,
    members: &BTreeSet<InstanceKey>,
    leaving: &BTreeSet<InstanceKey>,
) -> Vec<InstanceKey> {
    let Some(psnap) = topo.get(primary).and_then(|n| n.snapshot.as_ref()) else {
        return Vec::new();
    };
    let mut healthy: Vec<(u64, InstanceKey)> = members
        .iter()
        .filter(|k| *k != primary && *k != target && !leaving.contains(*k))
        .filter_map(|k| {
            let snap = topo.get(k)?.snapshot.as_ref()?;
            let r = snap.replica.as_ref()?;
            let fit = &r.source == primary
                && r.is_replicating()
                && snap.is_read_only()
                && extra_transactions_of_replica(snap, psnap).is_none();
            fit.then(|| (r.seconds_behind.unwrap_or(u64::MAX), k.clone()))
        })
        .collect();
    healthy.sort();
    let mut out: Vec<InstanceKey> = healthy.into_iter().map(|(_, k)| k).collect();
    // The primary only when it is alone: no other member, or every other
    // one needs a copy itself. A replica unseen or not replicating this
    // round may be a source the next: the copy waits for it.
    let broken: BTreeSet<InstanceKey> = needing_copy(topo, primary, members, leaving)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let alone = members
        .iter()
        .filter(|k| *k != primary && *k != target && !leaving.contains(*k))
        .all(|k| broken.contains(k));
    if out.is_empty() && alone {
        out.push(primary.clone());
    }
    out
}

/// The re-provisioning to start now, if any: the one `requested` (a
/// person's, whatever the policy) or, under `auto`, the first member
/// that needs it.
pub fn decide(
    topo: &Topology,
    primary: &InstanceKey,
    members: &BTreeSet<InstanceKey>,
    leaving: &BTreeSet<InstanceKey>,
    policy: RepairPolicy,
    copy_under_way: bool,
    requested: Option<(&InstanceKey, &str)>,
) -> Result<Repair, Hold> {
    let (target, reason) = match requested {
        Some((k, by)) => {
            if k == primary {
                return Err(Hold::TargetIsPrimary);
            }
            if !members.contains(k) || leaving.contains(k) {
                return Err(Hold::NotAMember(k.clone()));
            }
            (k.clone(), RepairReason::Requested(by.to_string()))
        }
        None => {
            let Some((k, why)) = needing_copy(topo, primary, members, leaving)
                .into_iter()
                .next()
            else {
                return Err(Hold::Nothing);
            };
            if policy == RepairPolicy::Manual {
                return Err(Hold::Manual(k, why.describe()));
            }
            (k, why)
        }
    };
    if copy_under_way {
        return Err(Hold::CopyUnderWay);
    }
    let sources = copy_sources(topo, primary, &target, members, leaving);
    if sources.is_empty() {
        return Err(Hold::NoSource(target));
    }
    Ok(Repair {
        target,
        reason,
        sources,
    })
}

/// The transactions `target` holds that the primary lacks, whatever the
/// repair's reason: what a copy discards, and so what is recorded (and
/// saved) first.
pub fn discarded(topo: &Topology, primary: &InstanceKey, target: &InstanceKey) -> Option<GtidSet> {
    let psnap = topo.get(primary)?.snapshot.as_ref()?;
    let snap = topo.get(target)?.snapshot.as_ref()?;
    extra_transactions_of_replica(snap, psnap)
}

/// How a member just provisioned by a copy joins the primary: from the
/// GTID position the copy carries (not the `gtid_slave_pos` it may have
/// brought from its source), replication started and awaited.
pub fn join_copied(target: &InstanceKey, primary: &InstanceKey, gtid: &str) -> Plan {
    let mut plan = Plan::new(PlanKind::Repoint);
    plan.successor = Some(primary.clone());
    plan.steps = vec![
        Step::StopReplica { on: target.clone() },
        Step::ChangeSource {
            on: target.clone(),
            source: primary.clone(),
            position: SourcePosition::Copied {
                gtid: gtid.to_string(),
            },
        },
        Step::StartReplica { on: target.clone() },
        Step::WaitReplicating {
            on: target.clone(),
            timeout: JOIN_WAIT,
        },
    ];
    plan
}

/// How long a copied member's joining waits for both threads to run.
pub const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::{behind, key, mariadb, replica_of, topology, with_gtid};

    fn ro(mut s: crate::topology::Snapshot) -> crate::topology::Snapshot {
        s.read_only = true;
        s
    }

    fn writable(mut s: crate::topology::Snapshot) -> crate::topology::Snapshot {
        s.read_only = false;
        s
    }

    fn purged(mut s: crate::topology::Snapshot) -> crate::topology::Snapshot {
        if let Some(r) = s.replica.as_mut() {
            r.io_running = crate::topology::instance::IoThreadState::No;
            r.last_io_errno = SOURCE_CANNOT_SEND;
            r.last_io_error = "Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged.".into();
        }
        s
    }

    fn set(hosts: &[&str]) -> BTreeSet<InstanceKey> {
        hosts.iter().map(|h| key(h)).collect()
    }

    /// A primary `p` (0-1-10), replicas `a` (2 s behind), `b` (in step),
    /// and the member under test `x`.
    fn cluster(x: crate::topology::Snapshot) -> Topology {
        topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                behind(ro(with_gtid(replica_of("a", 2, "p"), "0-1-10")), 2),
                ro(with_gtid(replica_of("b", 3, "p"), "0-1-10")),
                x,
            ],
            vec![],
        )
    }

    #[test]
    fn what_needs_a_copy_and_from_where() {
        let members = set(&["p", "a", "b", "x"]);
        let none = BTreeSet::new();
        // (member x, policy, requested, expected: Ok(reason name, sources) or Err(hold))
        type Want = Result<(&'static str, Vec<&'static str>), Hold>;
        let table: Vec<(
            &str,
            crate::topology::Snapshot,
            RepairPolicy,
            Option<&str>,
            Want,
        )> = vec![
            (
                "errant replica, auto",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10,0-4-1")),
                RepairPolicy::Auto,
                None,
                Ok(("ErrantTransactions", vec!["b", "a"])),
            ),
            (
                "a replica probed after the primary's newest writes, auto",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-14")),
                RepairPolicy::Auto,
                None,
                Err(Hold::Nothing),
            ),
            (
                "source cannot send (purged), auto",
                purged(ro(with_gtid(replica_of("x", 4, "p"), ""))),
                RepairPolicy::Auto,
                None,
                Ok(("SourceCannotSend", vec!["b", "a"])),
            ),
            (
                "errant replica, manual",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10,0-4-1")),
                RepairPolicy::Manual,
                None,
                Err(Hold::Manual(
                    key("x"),
                    "it holds transactions the primary lacks (0-4-1)".into(),
                )),
            ),
            (
                "a healthy replica needs nothing",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10")),
                RepairPolicy::Auto,
                None,
                Err(Hold::Nothing),
            ),
            (
                "a writable errant member is fencing's, not a copy's",
                writable(with_gtid(replica_of("x", 4, "p"), "0-1-10,0-4-1")),
                RepairPolicy::Auto,
                None,
                Err(Hold::Nothing),
            ),
            (
                "asked for, manual: done",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10")),
                RepairPolicy::Manual,
                Some("x"),
                Ok(("Requested", vec!["b", "a"])),
            ),
            (
                "asked for the primary: refused",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10")),
                RepairPolicy::Auto,
                Some("p"),
                Err(Hold::TargetIsPrimary),
            ),
            (
                "asked for a stranger: refused",
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10")),
                RepairPolicy::Auto,
                Some("nobody"),
                Err(Hold::NotAMember(key("nobody"))),
            ),
        ];
        for (what, x, policy, requested, want) in table {
            let topo = cluster(x);
            let req = requested.map(|h| (key(h), "someone".to_string()));
            let got = decide(
                &topo,
                &key("p"),
                &members,
                &none,
                policy,
                false,
                req.as_ref().map(|(k, by)| (k, by.as_str())),
            );
            let got = got.map(|r| {
                assert_eq!(r.target, key("x"), "{what}");
                (
                    r.reason.name(),
                    r.sources.iter().map(|k| k.host.clone()).collect::<Vec<_>>(),
                )
            });
            let want = want.map(|(n, s)| (n, s.into_iter().map(String::from).collect()));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn one_copy_at_a_time_and_the_primary_only_when_alone() {
        let topo = cluster(ro(with_gtid(replica_of("x", 4, "p"), "0-1-10,0-4-1")));
        let members = set(&["p", "a", "b", "x"]);
        let none = BTreeSet::new();
        assert_eq!(
            decide(
                &topo,
                &key("p"),
                &members,
                &none,
                RepairPolicy::Auto,
                true,
                None
            ),
            Err(Hold::CopyUnderWay)
        );
        // Without a healthy replica, the primary is the source.
        let alone = set(&["p", "x"]);
        let r = decide(
            &topo,
            &key("p"),
            &alone,
            &none,
            RepairPolicy::Auto,
            false,
            None,
        )
        .expect("a repair");
        assert_eq!(r.sources, vec![key("p")]);
        // A leaving replica is no source.
        let leaving = set(&["b"]);
        let r = decide(
            &topo,
            &key("p"),
            &members,
            &leaving,
            RepairPolicy::Auto,
            false,
            None,
        )
        .expect("a repair");
        assert_eq!(r.sources, vec![key("a")]);
        // A replica unseen this round may be a source the next: no copy
        // from the primary meanwhile.
        let unseen = set(&["p", "x", "z"]);
        assert_eq!(
            decide(
                &topo,
                &key("p"),
                &unseen,
                &none,
                RepairPolicy::Auto,
                false,
                None
            ),
            Err(Hold::NoSource(key("x")))
        );
        // Every other replica broken too: the primary is alone.
        let both = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                ro(with_gtid(replica_of("x", 4, "p"), "0-1-10,0-4-1")),
                ro(with_gtid(replica_of("y", 5, "p"), "0-1-10,0-5-1")),
            ],
            vec![],
        );
        let r = decide(
            &both,
            &key("p"),
            &set(&["p", "x", "y"]),
            &none,
            RepairPolicy::Auto,
            false,
            None,
        )
        .expect("a repair");
        assert_eq!((r.target, r.sources), (key("x"), vec![key("p")]));
    }

    #[test]
    fn a_copied_member_joins_from_the_copys_position_and_every_step_is_fenced() {
        let plan = join_copied(&key("x"), &key("p"), "0-1-57");
        assert_eq!(plan.successor, Some(key("p")));
        assert!(matches!(
            &plan.steps[1],
            Step::ChangeSource { on, source, position: SourcePosition::Copied { gtid } }
                if *on == key("x") && *source == key("p") && gtid == "0-1-57"
        ));
        assert!(plan.steps.iter().all(|s| s.target() == Some(&key("x"))));
        let changing = plan.steps.iter().filter(|s| s.mutates()).count();
        assert_eq!(changing, 3, "all but the wait change the server");
    }

    #[test]
    fn what_a_copy_discards_is_what_the_target_has_and_the_primary_lacks() {
        let topo = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                ro(with_gtid(replica_of("a", 2, "p"), "0-1-10")),
                ro(with_gtid(replica_of("x", 3, "p"), "0-1-10,1-7-3")),
            ],
            vec![],
        );
        assert_eq!(discarded(&topo, &key("p"), &key("a")), None);
        assert!(
            discarded(&topo, &key("p"), &key("x")).is_some_and(|g| g.to_string().contains("1-7-3"))
        );
        assert_eq!(discarded(&topo, &key("p"), &key("nobody")), None);
    }
}
