//! The operation journal (`status.operation`) and what an operator that
//! finds one does with it. Pure.
//!
//! Before the first step of an operation that changes a server, and again
//! right before its point of no return (the successor's `RESET REPLICA
//! ALL`), the operator writes the operation's intent to status
//! ([`journal_write`], [`entry`]). Those two writes are the ones that
//! matter for an operator that stops in the middle: the first says an
//! operation started (so its fence may have run), the second that the
//! successor may be the primary now. The other steps are not journaled,
//! which keeps a failover as fast as it was: what the successor did is read
//! from the servers, not from status.
//!
//! An operator that starts (after a crash, or a new leader) and finds a
//! journal decides from it and from the topology it observes
//! ([`decide`]): the successor's reset ran (it replicates from nothing)
//! and it *is* the primary — roll forward; else the operation stopped
//! before its point of no return — roll back (replication restarted where
//! the fence stopped it, the old primary made writable again if it is
//! alive and holds everything), or, with the old primary gone, leave the
//! failure to the normal recovery. It never starts the operation again
//! from scratch. Apart from a journal, the `status.primary` it finds is
//! checked against the topology's writable root ([`reconcile_primary`]).

use std::collections::BTreeSet;

use super::crd::cluster::{OperationJournal, OperationKind};
use crate::plan::{Plan, PlanKind, SourcePosition, Step, membership};
use crate::topology::InstanceKey;
use crate::topology::errant::extra_transactions;
use crate::topology::graph::Topology;
use crate::topology::instance::IoThreadState;

/// The kind of an operation the engine ran on its own (an automatic
/// recovery), from its plan; `None` for plans that are no operation of
/// their own (repoints, joins).
pub fn kind_of(plan: PlanKind) -> Option<OperationKind> {
    match plan {
        PlanKind::RecoverDeadPrimary => Some(OperationKind::Failover),
        PlanKind::RecoverDeadIntermediatePrimary => Some(OperationKind::IntermediateRecovery),
        PlanKind::GracefulTakeover => Some(OperationKind::GracefulTakeover),
        PlanKind::ForceFailover => Some(OperationKind::ForceFailover),
        PlanKind::ForceTakeover => Some(OperationKind::ForceTakeover),
        _ => None,
    }
}

/// Whether the journal is written (and waited for) before `plan.steps[index]`,
/// a step that changes something: before the first such step of the
/// operation, and right before the step at the point of no return. A
/// later phase of an operation already journaled (`continued`: the
/// promotion after an automatic failover's fence) writes only at its
/// point of no return; each write is a round trip to the API server on
/// the failover's path. Rollback steps are not journaled: an operator
/// that resumes rolls back again, which is idempotent.
pub fn journal_write(plan: &Plan, index: usize, rollback: bool, continued: bool) -> bool {
    if rollback {
        return false;
    }
    let first = !continued && plan.steps.iter().position(Step::mutates) == Some(index);
    first || (index == plan.point_of_no_return && index < plan.steps.len())
}

/// The journal entry before `plan.steps[index]`. `pod` names an instance
/// (its pod, or its address).
#[allow(clippy::too_many_arguments)]
pub fn entry(
    id: &str,
    kind: OperationKind,
    plan: &Plan,
    index: usize,
    past_point_of_no_return: bool,
    epoch: Option<i64>,
    started_at: &str,
    pod: &dyn Fn(&InstanceKey) -> String,
) -> OperationJournal {
    OperationJournal {
        id: id.to_string(),
        kind,
        target: plan.successor.as_ref().map(pod),
        failed: plan.failed.as_ref().map(pod),
        epoch,
        step: u32::try_from(index + 1).unwrap_or(u32::MAX),
        steps: u32::try_from(plan.steps.len()).unwrap_or(u32::MAX),
        // Step texts name instances and settings, never credentials.
        step_name: plan.steps.get(index).map(|s| s.to_string()),
        point_of_no_return_passed: past_point_of_no_return,
        at_point_of_no_return: !past_point_of_no_return && index == plan.point_of_no_return,
        started_at: Some(started_at.to_string()),
    }
}

/// One instance as the topology shows it, named as status names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub pod: String,
    pub reachable: bool,
    pub writable: bool,
    /// The source it replicates from (its name), if it has one.
    pub source: Option<String>,
    /// Both replication threads run.
    pub replicating: bool,
    /// No other instance holds a transaction it lacks.
    pub holds_everything: bool,
}

/// The topology as the journal's decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub instances: Vec<Seen>,
}

impl Observed {
    /// `topo`, each instance named by `pod`.
    pub fn of(topo: &Topology, pod: &dyn Fn(&InstanceKey) -> String) -> Observed {
        let snaps: Vec<_> = topo
            .nodes
            .values()
            .filter_map(|n| n.snapshot.as_ref())
            .collect();
        let instances = topo
            .nodes
            .values()
            .map(|n| {
                let snap = n.snapshot.as_ref();
                Seen {
                    pod: pod(&n.key),
                    reachable: snap.is_some(),
                    writable: snap.is_some_and(|s| !s.is_read_only()),
                    source: snap
                        .and_then(|s| s.replica.as_ref())
                        .map(|r| pod(&r.source)),
                    replicating: snap
                        .and_then(|s| s.replica.as_ref())
                        .is_some_and(|r| r.is_replicating()),
                    holds_everything: snap.is_some_and(|s| {
                        snaps
                            .iter()
                            .filter(|o| o.key != s.key)
                            .all(|o| extra_transactions(o, s).is_none())
                    }),
                }
            })
            .collect();
        Observed { instances }
    }

    fn get(&self, pod: &str) -> Option<&Seen> {
        self.instances.iter().find(|s| s.pod == pod)
    }

    /// Reachable instances that replicate from `source` with a thread
    /// stopped (as a fence leaves them), `source` itself apart.
    fn stopped_under(&self, source: Option<&str>) -> Vec<String> {
        self.instances
            .iter()
            .filter(|s| s.reachable && !s.replicating && s.source.is_some())
            .filter(|s| source.is_none_or(|src| s.source.as_deref() == Some(src)))
            .map(|s| s.pod.clone())
            .collect()
    }
}

/// What an operator does with the journal it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No operation was running.
    Nothing,
    /// The successor's reset ran: it is the primary. Status, labels and
    /// the primary Service follow; it is made writable if it is not yet;
    /// the replicas still under the old primary are repointed to it; the
    /// old primary is fenced when it answers.
    RollForward {
        primary: String,
        old: Option<String>,
    },
    /// Stopped before the point of no return, the old primary alive:
    /// replication restarted on `restart`, and the old primary made
    /// writable again (`unfence`) when the fence made it read only and it
    /// holds everything. It keeps the role.
    RollBack {
        primary: Option<String>,
        restart: Vec<String>,
        unfence: Option<String>,
    },
    /// Stopped before the point of no return and the old primary does not
    /// answer (or cannot take the role back): replication restarted on
    /// `restart`, and the failure is left to the normal recovery.
    Abandon { restart: Vec<String>, why: String },
}

/// The decision on `journal`, found in status when an operator starts,
/// from what the servers show (`seen`).
pub fn decide(journal: Option<&OperationJournal>, seen: &Observed) -> Resume {
    let Some(j) = journal else {
        return Resume::Nothing;
    };
    let old = j.failed.clone();
    let target = j.target.as_deref().and_then(|t| seen.get(t));
    if j.kind == OperationKind::Operation {
        // A refactoring or an instance operation promotes nobody: the
        // replicas it stopped are started again, nothing else is undone.
        return Resume::Abandon {
            restart: seen.stopped_under(None),
            why: format!("the operation {} was interrupted", j.id),
        };
    }
    if j.kind == OperationKind::IntermediateRecovery {
        // The orphans of a dead intermediate primary: those already moved
        // replicate; the others are restarted and recovered as a failure.
        return Resume::Abandon {
            restart: seen.stopped_under(old.as_deref()),
            why: "an intermediate recovery was interrupted".into(),
        };
    }
    // Reset ran: the successor replicates from nothing. Or the journal
    // says so, or that the reset was about to run (it may have: a
    // promoted successor may not answer, its writes waiting for a
    // semi-sync acknowledgement no replica sends yet), and the successor
    // does not answer now: it is never replaced by another promotion.
    // A failover (every promotion but a graceful takeover) makes its
    // successor writable before it forgets its source, and its point of
    // no return is the epoch, the first write on the successor, after
    // the fence and the relay wait: writable, past it, or at it (the
    // write may be in the successor's binary log), it rolls forward too.
    let epoch_first = j.kind != OperationKind::GracefulTakeover;
    let forward = match target {
        Some(t) if t.reachable => {
            t.source.is_none()
                || t.writable
                || j.point_of_no_return_passed
                || (epoch_first && j.at_point_of_no_return)
        }
        _ => j.point_of_no_return_passed || j.at_point_of_no_return,
    };
    if let (true, Some(primary)) = (forward, j.target.clone()) {
        return Resume::RollForward { primary, old };
    }
    // Before the point of no return: the successor too may have stopped
    // replicating (a takeover stops it before its reset).
    let restart = seen.stopped_under(old.as_deref());
    let Some(o) = old.as_deref().and_then(|o| seen.get(o)) else {
        return Resume::Abandon {
            restart,
            why: "the operation was interrupted before its point of no return and the primary it replaces is unknown".into(),
        };
    };
    if !o.reachable {
        return Resume::Abandon {
            restart,
            why: format!(
                "the operation was interrupted before its point of no return and {} does not answer",
                o.pod
            ),
        };
    }
    if o.source.is_some() {
        return Resume::Abandon {
            restart,
            why: format!(
                "the operation was interrupted before its point of no return and {} replicates from another instance",
                o.pod
            ),
        };
    }
    if !o.writable && !o.holds_everything {
        return Resume::Abandon {
            restart,
            why: format!(
                "the operation was interrupted before its point of no return and {} lacks transactions another instance holds",
                o.pod
            ),
        };
    }
    Resume::RollBack {
        primary: old.clone(),
        restart,
        unfence: (!o.writable).then(|| o.pod.clone()),
    }
}

/// The primary status should name, when the `status.primary` found
/// (`recorded`) is contradicted by the topology: the only writable
/// instance that replicates from nothing, unless it is a former primary
/// still to be fenced (`pending`). `None` keeps what status says (it
/// agrees, or the topology does not say otherwise: no writable root, or
/// two).
pub fn reconcile_primary(
    recorded: Option<&str>,
    seen: &Observed,
    pending: &BTreeSet<String>,
) -> Option<String> {
    let roots: Vec<&Seen> = seen
        .instances
        .iter()
        .filter(|s| s.reachable && s.writable && s.source.is_none())
        .filter(|s| !pending.contains(&s.pod))
        .collect();
    let [root] = roots.as_slice() else {
        return None;
    };
    (recorded != Some(root.pod.as_str())).then(|| root.pod.clone())
}

/// Replication restarted on `on` (a rollback: the fence stopped it).
pub fn restart_plan(kind: PlanKind, on: &[InstanceKey]) -> Plan {
    let mut plan = Plan::new(kind);
    plan.steps = on
        .iter()
        .map(|k| Step::StartReplica { on: k.clone() })
        .collect();
    plan
}

/// The old primary made writable again after a fence that did not lead
/// to a promotion: its write lock (if this operator holds one) released,
/// the epoch recorded, writable — provided it still holds everything
/// ([`membership::reopen_primary`] decides). `None` when it may not.
pub fn unfence_plan(topo: &Topology, old: &InstanceKey, semi_sync: bool) -> Option<Plan> {
    let reopen = membership::reopen_primary(topo, old, semi_sync)?;
    let mut plan = Plan::new(PlanKind::GracefulTakeover);
    plan.failed = Some(old.clone());
    plan.steps.push(Step::UnlockWrites { on: old.clone() });
    plan.steps.extend(reopen.steps);
    Some(plan)
}

/// The replicas still under the old primary `old` (or under nothing
/// reachable but stopped) repointed to the primary an interrupted
/// operation promoted: stop, change source, start. Those holding
/// transactions the new primary lacks are left to the join path, which
/// reports them.
pub fn repoint_plan(topo: &Topology, primary: &InstanceKey, old: Option<&InstanceKey>) -> Plan {
    let mut plan = Plan::new(PlanKind::Repoint);
    plan.successor = Some(primary.clone());
    // A primary that does not answer is repointed to all the same: its
    // writes may wait for the semi-sync acknowledgement of these very
    // replicas, and if it is dead they are its replicas to recover from.
    // The failover chose it as the most advanced of them; a replica that
    // holds more stops at its GTID check instead of diverging.
    let psnap = topo.get(primary).and_then(|n| n.snapshot.as_ref());
    for n in topo.nodes.values() {
        if &n.key == primary || Some(&n.key) == old {
            continue;
        }
        let Some(snap) = n.snapshot.as_ref() else {
            continue;
        };
        let Some(r) = snap.replica.as_ref() else {
            continue;
        };
        if Some(&r.source) != old || !snap.is_read_only() {
            continue;
        }
        if psnap.is_some_and(|p| extra_transactions(snap, p).is_some()) {
            continue;
        }
        plan.steps.push(Step::StopReplica { on: n.key.clone() });
        plan.steps.push(Step::ChangeSource {
            on: n.key.clone(),
            source: primary.clone(),
            position: SourcePosition::Gtid,
        });
        plan.steps.push(Step::StartReplica { on: n.key.clone() });
    }
    plan
}

/// Whether a replica's IO thread is stopped (not merely connecting).
pub fn io_stopped(topo: &Topology, key: &InstanceKey) -> bool {
    topo.get(key)
        .and_then(|n| n.snapshot.as_ref())
        .and_then(|s| s.replica.as_ref())
        .is_some_and(|r| r.io_running == IoThreadState::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::{
        down, io_stopped as stopped, key, mariadb, replica_of, topology, with_gtid,
    };

    fn name(k: &InstanceKey) -> String {
        k.host.clone()
    }

    fn journal(kind: OperationKind, target: &str, failed: &str, passed: bool) -> OperationJournal {
        OperationJournal {
            id: "c-x-1".into(),
            kind,
            target: Some(target.into()),
            failed: Some(failed.into()),
            epoch: Some(3),
            step: 6,
            steps: 12,
            step_name: None,
            point_of_no_return_passed: passed,
            at_point_of_no_return: false,
            started_at: None,
        }
    }

    fn ro(mut s: crate::topology::Snapshot) -> crate::topology::Snapshot {
        s.read_only = true;
        s
    }

    #[test]
    fn resume_decisions() {
        let failover = |passed| journal(OperationKind::Failover, "r1", "p", passed);
        let takeover = |passed| journal(OperationKind::GracefulTakeover, "r1", "p", passed);
        let g = |s, gtid| with_gtid(s, gtid);
        // The old primary dead, the fence ran (IO threads stopped).
        let fenced_dead = topology(
            vec![
                g(stopped(replica_of("r1", 2, "p")), "0-1-10"),
                g(stopped(replica_of("r2", 3, "p")), "0-1-9"),
            ],
            vec![down("p", None)],
        );
        // ... and the successor was reset, not yet writable.
        let reset_dead = topology(
            vec![
                g(ro(mariadb("r1", 2)), "0-1-10"),
                g(stopped(replica_of("r2", 3, "p")), "0-1-9"),
            ],
            vec![down("p", None)],
        );
        // A takeover fenced the old primary (read only) and stopped its
        // successor before the reset.
        let takeover_fenced = topology(
            vec![
                g(ro(mariadb("p", 1)), "0-1-10"),
                g(
                    crate::topology::testing::sql_stopped(stopped(replica_of("r1", 2, "p"))),
                    "0-1-10",
                ),
                g(replica_of("r2", 3, "p"), "0-1-10"),
            ],
            vec![],
        );
        // The old primary still writable (only the hooks ran).
        let untouched = topology(
            vec![
                g(mariadb("p", 1), "0-1-10"),
                g(replica_of("r1", 2, "p"), "0-1-10"),
            ],
            vec![],
        );
        // The old primary read only but behind a replica (a write the
        // replica has that it lacks cannot be).
        let old_behind = topology(
            vec![
                g(ro(mariadb("p", 1)), "0-1-9"),
                g(stopped(replica_of("r1", 2, "p")), "0-1-10"),
            ],
            vec![],
        );
        // ... and the successor made writable before it forgot its source
        // (a failover resets it last).
        let mut writable_successor = stopped(replica_of("r1", 2, "p"));
        writable_successor.read_only = false;
        let writable_dead = topology(
            vec![
                g(writable_successor, "0-1-10"),
                g(stopped(replica_of("r2", 3, "p")), "0-1-9"),
            ],
            vec![down("p", None)],
        );
        let successor_down = topology(
            vec![g(stopped(replica_of("r2", 3, "p")), "0-1-9")],
            vec![down("p", None), down("r1", Some("p"))],
        );
        let obs = |t: &Topology| Observed::of(t, &name);
        let forward = |old: &str| Resume::RollForward {
            primary: "r1".into(),
            old: Some(old.into()),
        };
        let table: Vec<(&str, Option<OperationJournal>, &Topology, Resume)> = vec![
            ("no journal", None, &fenced_dead, Resume::Nothing),
            (
                "the reset ran: roll forward",
                Some(failover(false)),
                &reset_dead,
                forward("p"),
            ),
            (
                "the successor writable, its source still set: roll forward",
                Some(failover(false)),
                &writable_dead,
                forward("p"),
            ),
            (
                "past the point of no return (the epoch), the successor read only with its source: roll forward",
                Some(failover(true)),
                &fenced_dead,
                forward("p"),
            ),
            (
                "the journal says past the reset, the successor agrees",
                Some(failover(true)),
                &reset_dead,
                forward("p"),
            ),
            (
                "past the reset, the successor down: still forward",
                Some(failover(true)),
                &successor_down,
                forward("p"),
            ),
            (
                "before the reset, old primary dead: left to recovery",
                Some(failover(false)),
                &fenced_dead,
                Resume::Abandon {
                    restart: vec!["r1".into(), "r2".into()],
                    why: "the operation was interrupted before its point of no return and p does not answer".into(),
                },
            ),
            (
                "at the reset, successor down, old dead: forward, never another promotion",
                Some(OperationJournal {
                    at_point_of_no_return: true,
                    ..failover(false)
                }),
                &successor_down,
                forward("p"),
            ),
            (
                "a failover at its epoch, the successor answers, read only with its source: forward",
                Some(OperationJournal {
                    at_point_of_no_return: true,
                    ..failover(false)
                }),
                &fenced_dead,
                forward("p"),
            ),
            (
                "a takeover at its reset, the successor answers, not reset: back",
                Some(OperationJournal {
                    at_point_of_no_return: true,
                    ..takeover(false)
                }),
                &takeover_fenced,
                Resume::RollBack {
                    primary: Some("p".into()),
                    restart: vec!["r1".into()],
                    unfence: Some("p".into()),
                },
            ),
            (
                "before the reset, successor down, old dead",
                Some(failover(false)),
                &successor_down,
                Resume::Abandon {
                    restart: vec!["r2".into()],
                    why: "the operation was interrupted before its point of no return and p does not answer".into(),
                },
            ),
            (
                "takeover before the reset: back, the old primary unfenced",
                Some(takeover(false)),
                &takeover_fenced,
                Resume::RollBack {
                    primary: Some("p".into()),
                    restart: vec!["r1".into()],
                    unfence: Some("p".into()),
                },
            ),
            (
                "nothing changed yet: back, nothing to unfence",
                Some(takeover(false)),
                &untouched,
                Resume::RollBack {
                    primary: Some("p".into()),
                    restart: vec![],
                    unfence: None,
                },
            ),
            (
                "the old primary lacks a transaction: not made writable",
                Some(takeover(false)),
                &old_behind,
                Resume::Abandon {
                    restart: vec!["r1".into()],
                    why: "the operation was interrupted before its point of no return and p lacks transactions another instance holds".into(),
                },
            ),
            (
                "the successor replicates again: never promoted twice",
                Some(failover(false)),
                &untouched,
                Resume::RollBack {
                    primary: Some("p".into()),
                    restart: vec![],
                    unfence: None,
                },
            ),
            (
                "an intermediate recovery: restarted and recovered again",
                Some(journal(OperationKind::IntermediateRecovery, "r1", "p", false)),
                &fenced_dead,
                Resume::Abandon {
                    restart: vec!["r1".into(), "r2".into()],
                    why: "an intermediate recovery was interrupted".into(),
                },
            ),
            (
                "a refactoring: its stopped replicas started, nothing promoted",
                Some(journal(OperationKind::Operation, "r1", "p", true)),
                &fenced_dead,
                Resume::Abandon {
                    restart: vec!["r1".into(), "r2".into()],
                    why: "the operation c-x-1 was interrupted".into(),
                },
            ),
        ];
        for (what, j, t, want) in table {
            assert_eq!(decide(j.as_ref(), &obs(t)), want, "{what}");
        }
    }

    #[test]
    fn status_primary_follows_the_writable_root() {
        let g = |s, gtid| with_gtid(s, gtid);
        let normal = topology(
            vec![
                g(mariadb("p", 1), "0-1-5"),
                g(replica_of("r1", 2, "p"), "0-1-5"),
            ],
            vec![],
        );
        let promoted = topology(
            vec![
                g(mariadb("r1", 2), "0-1-5"),
                g(replica_of("r2", 3, "r1"), "0-1-5"),
            ],
            vec![down("p", None)],
        );
        let two = topology(
            vec![g(mariadb("p", 1), "0-1-5"), g(mariadb("r1", 2), "0-1-5")],
            vec![],
        );
        let none = topology(
            vec![
                g(ro(mariadb("p", 1)), "0-1-5"),
                g(replica_of("r1", 2, "p"), "0-1-5"),
            ],
            vec![],
        );
        let pending_p: BTreeSet<String> = ["p".to_string()].into();
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a Topology,
            BTreeSet<String>,
            Option<&'a str>,
        );
        let table: Vec<Case> = vec![
            ("agrees", Some("p"), &normal, BTreeSet::new(), None),
            (
                "no primary recorded",
                None,
                &normal,
                BTreeSet::new(),
                Some("p"),
            ),
            (
                "promoted, status not written",
                Some("p"),
                &promoted,
                BTreeSet::new(),
                Some("r1"),
            ),
            (
                "two writable roots: no guess",
                Some("p"),
                &two,
                BTreeSet::new(),
                None,
            ),
            (
                "a former primary to fence is never chosen",
                Some("r1"),
                &two,
                pending_p.clone(),
                None,
            ),
            (
                "the only root is to be fenced",
                Some("r1"),
                &normal,
                pending_p,
                None,
            ),
            (
                "no writable root: kept",
                Some("p"),
                &none,
                BTreeSet::new(),
                None,
            ),
        ];
        for (what, recorded, t, pending, want) in table {
            assert_eq!(
                reconcile_primary(recorded, &Observed::of(t, &name), &pending).as_deref(),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn journal_writes_before_the_first_change_and_the_point_of_no_return() {
        let mut plan = Plan::new(PlanKind::RecoverDeadPrimary);
        plan.steps = vec![
            Step::WaitRelayApplied {
                on: key("r1"),
                timeout: std::time::Duration::from_secs(1),
            },
            Step::StopReplicaIo { on: key("r1") },
            Step::StopReplica { on: key("r1") },
            Step::ResetReplicaAll { on: key("r1") },
            Step::RecordEpoch { on: key("r1") },
            Step::SetReadOnly {
                on: key("r1"),
                read_only: false,
            },
        ];
        plan.point_of_no_return = 3;
        let written = |continued| -> Vec<usize> {
            (0..plan.steps.len())
                .filter(|&i| journal_write(&plan, i, false, continued))
                .collect()
        };
        assert_eq!(written(false), vec![1, 3]);
        // A later phase of the same operation: its point of no return only.
        assert_eq!(written(true), vec![3]);
        assert!(!journal_write(&plan, 1, true, false), "rollback steps");
        // A fence phase: its point of no return is past its last step.
        plan.steps.truncate(3);
        plan.point_of_no_return = 3;
        let written: Vec<usize> = (0..3)
            .filter(|&i| journal_write(&plan, i, false, false))
            .collect();
        assert_eq!(written, vec![1]);
    }

    #[test]
    fn entries_name_pods_and_steps() {
        let mut plan = Plan::new(PlanKind::RecoverDeadPrimary);
        plan.failed = Some(key("p"));
        plan.successor = Some(key("r1"));
        plan.steps = vec![
            Step::StopReplica { on: key("r1") },
            Step::ResetReplicaAll { on: key("r1") },
        ];
        plan.point_of_no_return = 1;
        let at = |step| {
            entry(
                "c-1",
                OperationKind::Failover,
                &plan,
                step,
                false,
                Some(4),
                "2026-01-01T00:00:00Z",
                &|k: &InstanceKey| format!("pod-{}", k.host),
            )
        };
        let e = at(1);
        assert_eq!(e.step, 2);
        assert_eq!(e.steps, 2);
        assert_eq!(e.target.as_deref(), Some("pod-r1"));
        assert_eq!(e.failed.as_deref(), Some("pod-p"));
        assert_eq!(e.step_name, Some(plan.steps[1].to_string()));
        assert!(!e.point_of_no_return_passed);
        assert!(e.at_point_of_no_return);
        let first = at(0);
        assert!(!first.at_point_of_no_return);
        assert_eq!(kind_of(PlanKind::Repoint), None);
        assert_eq!(
            kind_of(PlanKind::RecoverDeadPrimary),
            Some(OperationKind::Failover)
        );
    }

    #[test]
    fn roll_forward_repoints_what_is_left_under_the_old_primary() {
        let g = |s, gtid| with_gtid(s, gtid);
        let t = topology(
            vec![
                g(ro(mariadb("r1", 2)), "0-1-10"),
                g(stopped(replica_of("r2", 3, "p")), "0-1-9"),
                g(replica_of("r3", 4, "r1"), "0-1-10"),
                g(stopped(replica_of("ahead", 5, "p")), "0-1-11"),
            ],
            vec![down("p", None)],
        );
        let plan = repoint_plan(&t, &key("r1"), Some(&key("p")));
        let on: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ChangeSource { on, source, .. } if source == &key("r1") => {
                    Some(on.host.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(on, vec!["r2".to_string()]);
        assert_eq!(plan.steps.len(), 3);
        // The new primary does not answer (its writes waiting for a
        // semi-sync acknowledgement): its siblings are repointed to it.
        let t = topology(
            vec![g(stopped(replica_of("r2", 3, "p")), "0-1-9")],
            vec![down("p", None), down("r1", None)],
        );
        let plan = repoint_plan(&t, &key("r1"), Some(&key("p")));
        assert_eq!(
            plan.steps,
            vec![
                Step::StopReplica { on: key("r2") },
                Step::ChangeSource {
                    on: key("r2"),
                    source: key("r1"),
                    position: SourcePosition::Gtid,
                },
                Step::StartReplica { on: key("r2") },
            ]
        );
        let restart = restart_plan(PlanKind::RecoverDeadPrimary, &[key("r2")]);
        assert_eq!(restart.steps, vec![Step::StartReplica { on: key("r2") }]);
        assert!(io_stopped(&t, &key("r2")));
        assert!(!io_stopped(&t, &key("r3")));
    }

    #[test]
    fn unfencing_needs_an_old_primary_that_holds_everything() {
        let g = |s, gtid| with_gtid(s, gtid);
        let ok = topology(
            vec![
                g(ro(mariadb("p", 1)), "0-1-10"),
                g(stopped(replica_of("r1", 2, "p")), "0-1-10"),
            ],
            vec![],
        );
        let plan = unfence_plan(&ok, &key("p"), false).expect("a plan");
        assert_eq!(plan.steps[0], Step::UnlockWrites { on: key("p") });
        assert!(plan.steps.contains(&Step::RecordEpoch { on: key("p") }));
        assert!(crate::plan::writable_without_epoch(&plan.steps).is_empty());
        let behind = topology(
            vec![
                g(ro(mariadb("p", 1)), "0-1-9"),
                g(stopped(replica_of("r1", 2, "p")), "0-1-10"),
            ],
            vec![],
        );
        assert_eq!(unfence_plan(&behind, &key("p"), false), None);
    }
}
