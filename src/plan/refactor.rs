//! Refactoring plans: move replicas around a live topology, each move
//! checked by [`can_replicate_from`]. See "Refactoring and its safety
//! rules" in the domain notes. Every move is: stop replication, replicate
//! from the new source by GTID, start replication, wait (bounded) until
//! both threads run.

use std::time::Duration;

use super::candidate::{CandidateOptions, choose_candidate, direct_replicas, join};
use super::error::PlanError;
use super::legality::{LegalityOptions, Refusal, can_replicate_from};
use super::step::{Plan, PlanKind, SourcePosition, Step};
use crate::topology::instance::IoThreadState;
use crate::topology::{InstanceKey, Snapshot, Topology};

/// How long a moved replica may take to have both threads running.
pub const WAIT_REPLICATING: Duration = Duration::from_secs(10);

/// Moves `instance` to replicate from `below`, any instance the rules
/// allow.
pub fn relocate(
    topo: &Topology,
    instance: &InstanceKey,
    below: &InstanceKey,
) -> Result<Plan, PlanError> {
    let (snap, current) = moving_replica(topo, instance)?;
    if topo.get(below).is_none() {
        return Err(PlanError::not_found(below));
    }
    if current == below {
        return Err(PlanError::Invalid(format!(
            "{instance} already replicates from {below}"
        )));
    }
    check(topo, instance, below, &LegalityOptions::default())?;
    Ok(moves_plan(
        PlanKind::Relocate,
        below,
        &[(snap, below.clone())],
        current,
    ))
}

/// Moves `instance` up one level: it replicates from its source's source.
pub fn move_up(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let (snap, current) = moving_replica(topo, instance)?;
    let grand = topo
        .get(current)
        .and_then(|n| n.source.clone())
        .filter(|g| topo.get(g).is_some() && g != instance);
    let depth = topo.get(instance).map_or(0, |n| n.depth);
    let Some(grand) = grand.filter(|_| depth >= 2) else {
        return Err(PlanError::Invalid(format!(
            "{instance} replicates from {current}, the top of its tree: there is no level above to move to"
        )));
    };
    check(topo, instance, &grand, &LegalityOptions::default())?;
    Ok(moves_plan(
        PlanKind::MoveUp,
        &grand,
        &[(snap, grand.clone())],
        current,
    ))
}

/// Moves `instance` below `sibling`, another replica of its source.
pub fn move_below(
    topo: &Topology,
    instance: &InstanceKey,
    sibling: &InstanceKey,
) -> Result<Plan, PlanError> {
    let (snap, current) = moving_replica(topo, instance)?;
    let sib = topo
        .get(sibling)
        .ok_or_else(|| PlanError::not_found(sibling))?;
    if sibling != instance && sib.source.as_ref() != Some(current) {
        return Err(PlanError::Invalid(format!(
            "{instance} and {sibling} do not replicate from the same source"
        )));
    }
    check(topo, instance, sibling, &LegalityOptions::default())?;
    Ok(moves_plan(
        PlanKind::MoveBelow,
        sibling,
        &[(snap, sibling.clone())],
        current,
    ))
}

/// Points `instance` at `to` (by default, at its current source again:
/// a restart of its replication by GTID). The rules are checked except
/// lag and running threads, so a broken replica can be repaired.
pub fn repoint(
    topo: &Topology,
    instance: &InstanceKey,
    to: Option<&InstanceKey>,
) -> Result<Plan, PlanError> {
    let (snap, current) = moving_replica(topo, instance)?;
    let to = to.unwrap_or(current);
    if topo.get(to).is_none() {
        return Err(PlanError::not_found(to));
    }
    check(topo, instance, to, &LegalityOptions::structural())?;
    Ok(moves_plan(
        PlanKind::Repoint,
        to,
        &[(snap, to.clone())],
        current,
    ))
}

/// Makes every sibling of `instance` (the other replicas of its source)
/// replicate from it; refused unless every move is legal.
pub fn take_siblings(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let (_, current) = moving_replica(topo, instance)?;
    let node = topo
        .get(current)
        .ok_or_else(|| PlanError::not_found(current))?;
    let mut siblings: Vec<&InstanceKey> = node.replicas.iter().filter(|k| *k != instance).collect();
    siblings.sort();
    siblings.dedup();
    if siblings.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{instance} has no siblings to take"
        )));
    }
    let mut moves = Vec::new();
    for sib in siblings {
        check(topo, sib, instance, &LegalityOptions::default())?;
        let snap = topo
            .get(sib)
            .and_then(|n| n.snapshot.as_deref())
            .ok_or_else(|| PlanError::refused(sib, Refusal::Unreachable(sib.clone())))?;
        moves.push((snap, instance.clone()));
    }
    Ok(moves_plan(
        PlanKind::TakeSiblings,
        instance,
        &moves,
        current,
    ))
}

/// Picks the best of `instance`'s replicas (the candidate choice's
/// ranking and rules) and moves the others below it. Replicas the rules
/// keep from moving stay where they are, with a note.
pub fn regroup_replicas(
    topo: &Topology,
    instance: &InstanceKey,
    opts: &CandidateOptions,
) -> Result<Plan, PlanError> {
    if topo.get(instance).is_none() {
        return Err(PlanError::not_found(instance));
    }
    let (replicas, unreachable) = direct_replicas(topo, instance);
    if replicas.len() < 2 {
        return Err(PlanError::Invalid(format!(
            "{instance} has fewer than two reachable replicas: nothing to regroup"
        )));
    }
    let opts = CandidateOptions {
        semi_sync: false,
        ..opts.clone()
    };
    let choice = choose_candidate(topo, instance, &opts)?;
    let chosen = &choice.chosen;
    let mut moves = Vec::new();
    let mut notes = vec![format!(
        "{chosen} chosen to take the other replicas of {instance} (ranking: {})",
        join(&choice.ranking)
    )];
    let mut first_refusal = None;
    for r in replicas.iter().filter(|r| &r.key != chosen) {
        match can_replicate_from(topo, &r.key, chosen, &LegalityOptions::default()) {
            Ok(()) => moves.push((*r, chosen.clone())),
            Err(refusal) => {
                notes.push(format!("{} stays under {instance}: {refusal}", r.key));
                first_refusal.get_or_insert((r.key.clone(), refusal));
            }
        }
    }
    if moves.is_empty()
        && let Some((k, refusal)) = first_refusal
    {
        return Err(PlanError::refused(&k, refusal));
    }
    if !unreachable.is_empty() {
        notes.push(format!(
            "unreachable, left under {instance}: {}",
            join(&unreachable)
        ));
    }
    let mut plan = moves_plan(PlanKind::RegroupReplicas, chosen, &moves, instance);
    plan.notes.extend(notes);
    Ok(plan)
}

/// A reachable replica and its current source.
fn moving_replica<'a>(
    topo: &'a Topology,
    instance: &InstanceKey,
) -> Result<(&'a Snapshot, &'a InstanceKey), PlanError> {
    let node = topo
        .get(instance)
        .ok_or_else(|| PlanError::not_found(instance))?;
    let snap = node
        .snapshot
        .as_ref()
        .ok_or_else(|| PlanError::refused(instance, Refusal::Unreachable(instance.clone())))?;
    match (&node.source, &snap.replica) {
        (Some(source), Some(_)) => Ok((snap, source)),
        _ => Err(PlanError::Invalid(format!(
            "{instance} is not a replica: only replicas are moved"
        ))),
    }
}

fn check(
    topo: &Topology,
    replica: &InstanceKey,
    source: &InstanceKey,
    opts: &LegalityOptions,
) -> Result<(), PlanError> {
    can_replicate_from(topo, replica, source, opts).map_err(|r| PlanError::refused(replica, r))
}

/// The plan of a list of moves. The point of no return is the first
/// change of source; before it, the first replica is started again if its
/// replication was running.
fn moves_plan(
    kind: PlanKind,
    successor: &InstanceKey,
    moves: &[(&Snapshot, InstanceKey)],
    from: &InstanceKey,
) -> Plan {
    let mut plan = Plan::new(kind);
    plan.successor = Some(successor.clone());
    for (i, (snap, source)) in moves.iter().enumerate() {
        let on = &snap.key;
        plan.steps.push(Step::StopReplica { on: on.clone() });
        if i == 0 {
            plan.point_of_no_return = plan.steps.len();
            let running = snap
                .replica
                .as_ref()
                .is_some_and(|r| r.sql_running || r.io_running != IoThreadState::No);
            if running {
                plan.rollback.push(Step::StartReplica { on: on.clone() });
            }
        }
        plan.steps.push(Step::ChangeSource {
            on: on.clone(),
            source: source.clone(),
            position: SourcePosition::Gtid,
        });
        plan.steps.push(Step::StartReplica { on: on.clone() });
        plan.steps.push(Step::WaitReplicating {
            on: on.clone(),
            timeout: WAIT_REPLICATING,
        });
        let old = snap
            .replica
            .as_ref()
            .map_or_else(|| from.clone(), |r| r.source.clone());
        plan.notes
            .push(format!("{on} moves from {old} to {source}"));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::candidate::PromotionRule;
    use crate::topology::testing::{down, key, mariadb, replica_of, topology, with_gtid};

    fn r(host: &str, id: u32, source: &str, pos: &str) -> Snapshot {
        with_gtid(replica_of(host, id, source), pos)
    }

    /// p with replicas r1, r2, r3.
    fn star() -> Topology {
        topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("r1", 11, "p", "0-1-10"),
                r("r2", 12, "p", "0-1-12"),
                r("r3", 13, "p", "0-1-11"),
            ],
            vec![],
        )
    }

    /// p → a → b → c.
    fn chain() -> Topology {
        topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                r("a", 2, "p", "0-1-10"),
                r("b", 3, "a", "0-1-10"),
                r("c", 4, "b", "0-1-10"),
            ],
            vec![],
        )
    }

    fn steps(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.to_string()).collect()
    }

    fn one_move(on: &str, to: &str) -> Vec<String> {
        vec![
            format!("{on}:3306: stop replication"),
            format!("{on}:3306: replicate from {to}:3306 (GTID)"),
            format!("{on}:3306: start replication"),
            format!("{on}:3306: wait until replicating (at most 10s)"),
        ]
    }

    fn has_line(plan: &Plan, line: &str) {
        let text = plan.to_string();
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }

    #[test]
    fn single_moves() {
        type Case<'a> = (&'a str, Result<Plan, PlanError>, PlanKind, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                "relocate",
                relocate(&chain(), &key("c"), &key("p")),
                PlanKind::Relocate,
                "c",
                "p",
            ),
            (
                "move up",
                move_up(&chain(), &key("c")),
                PlanKind::MoveUp,
                "c",
                "a",
            ),
            (
                "move below",
                move_below(&star(), &key("r1"), &key("r2")),
                PlanKind::MoveBelow,
                "r1",
                "r2",
            ),
            (
                "repoint to its source",
                repoint(&star(), &key("r1"), None),
                PlanKind::Repoint,
                "r1",
                "p",
            ),
            (
                "repoint elsewhere",
                repoint(&chain(), &key("c"), Some(&key("a"))),
                PlanKind::Repoint,
                "c",
                "a",
            ),
        ];
        for (name, plan, kind, on, to) in cases {
            let plan = plan.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(plan.kind, kind, "{name}");
            assert_eq!(steps(&plan), one_move(on, to), "{name}");
            assert_eq!(plan.successor, Some(key(to)), "{name}");
            assert_eq!(plan.failed, None, "{name}");
            assert_eq!(plan.point_of_no_return, 1, "{name}");
            assert_eq!(
                plan.rollback,
                vec![Step::StartReplica { on: key(on) }],
                "{name}"
            );
            has_line(
                &plan,
                &format!("   2. {on}:3306: replicate from {to}:3306 (GTID)"),
            );
            has_line(
                &plan,
                &format!("   1. {on}:3306: stop replication (undone on failure)"),
            );
        }
        let plan = move_up(&chain(), &key("c")).unwrap();
        has_line(&plan, "plan: move-up, successor a:3306");
        has_line(&plan, "  note: c:3306 moves from b:3306 to a:3306");
    }

    #[test]
    fn refusals_and_invalid_requests() {
        let cases: Vec<(&str, Result<Plan, PlanError>, &str)> = vec![
            (
                "relocate below its own replica",
                relocate(&chain(), &key("a"), &key("c")),
                "refused for a:3306: c:3306 replicates, directly or not, from a:3306: that would make a cycle",
            ),
            (
                "relocate below itself",
                relocate(&chain(), &key("b"), &key("b")),
                "refused for b:3306: b:3306 cannot replicate from itself",
            ),
            (
                "relocate where it already is",
                relocate(&chain(), &key("b"), &key("a")),
                "b:3306 already replicates from a:3306",
            ),
            (
                "relocate below nothing",
                relocate(&chain(), &key("b"), &key("zz")),
                "zz:3306 is not in the topology",
            ),
            (
                "relocate the primary",
                relocate(&chain(), &key("p"), &key("c")),
                "p:3306 is not a replica: only replicas are moved",
            ),
            (
                "move up at depth 1",
                move_up(&chain(), &key("a")),
                "a:3306 replicates from p:3306, the top of its tree: there is no level above to move to",
            ),
            (
                "move below a non-sibling",
                move_below(&chain(), &key("c"), &key("a")),
                "c:3306 and a:3306 do not replicate from the same source",
            ),
            (
                "move below itself",
                move_below(&star(), &key("r1"), &key("r1")),
                "refused for r1:3306: r1:3306 cannot replicate from itself",
            ),
            (
                "repoint a primary",
                repoint(&star(), &key("p"), None),
                "p:3306 is not a replica: only replicas are moved",
            ),
            (
                "take siblings of an only child",
                take_siblings(&chain(), &key("b")),
                "b:3306 has no siblings to take",
            ),
            (
                "regroup one replica",
                regroup_replicas(&chain(), &key("a"), &CandidateOptions::default()),
                "a:3306 has fewer than two reachable replicas: nothing to regroup",
            ),
            (
                "missing",
                move_up(&chain(), &key("zz")),
                "zz:3306 is not in the topology",
            ),
        ];
        for (name, got, message) in cases {
            let err = got.expect_err(name);
            assert_eq!(err.to_string(), message, "{name}");
        }
    }

    #[test]
    fn repoint_repairs_a_broken_replica_but_relocate_does_not() {
        let mut broken = r("r1", 11, "p", "0-1-10");
        if let Some(c) = broken.replica.as_mut() {
            c.io_running = IoThreadState::No;
            c.sql_running = false;
            c.seconds_behind = None;
        }
        let t = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                broken,
                r("r2", 12, "p", "0-1-12"),
            ],
            vec![],
        );
        let err = relocate(&t, &key("r1"), &key("r2")).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("r1"), Refusal::NotReplicating(key("r1")))
        );
        let plan = repoint(&t, &key("r1"), Some(&key("r2"))).unwrap();
        assert_eq!(steps(&plan), one_move("r1", "r2"));
        // Its replication was stopped: nothing to start again on failure.
        assert!(plan.rollback.is_empty());
        // Structural rules still hold for repoint.
        let t = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("r1", 11, "p", "0-1-10"),
            ],
            vec![down("gone", Some("p"))],
        );
        let err = repoint(&t, &key("r1"), Some(&key("gone"))).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("r1"), Refusal::Unreachable(key("gone")))
        );
    }

    #[test]
    fn take_siblings_moves_every_sibling() {
        let plan = take_siblings(&star(), &key("r2")).unwrap();
        assert_eq!(plan.kind, PlanKind::TakeSiblings);
        assert_eq!(plan.successor, Some(key("r2")));
        let mut want = one_move("r1", "r2");
        want.extend(one_move("r3", "r2"));
        assert_eq!(steps(&plan), want);
        assert_eq!(plan.point_of_no_return, 1);
        has_line(&plan, "plan: take-siblings, successor r2:3306");
        // One illegal sibling refuses the whole plan.
        let mut snaps = vec![
            with_gtid(mariadb("p", 1), "0-1-12"),
            r("r1", 11, "p", "0-1-10"),
            r("r2", 12, "p", "0-1-12"),
        ];
        let mut r3 = r("r3", 13, "p", "0-1-11");
        r3.binlog_format = "STATEMENT".into();
        snaps.push(r3);
        let err = take_siblings(&topology(snaps, vec![]), &key("r2")).unwrap_err();
        assert!(
            matches!(&err, PlanError::Refused { instance, refusal } if *instance == key("r3") && matches!(**refusal, Refusal::BinlogFormat { .. })),
            "{err}"
        );
    }

    #[test]
    fn regroup_replicas_under_the_best() {
        let plan = regroup_replicas(&star(), &key("p"), &CandidateOptions::default()).unwrap();
        assert_eq!(plan.kind, PlanKind::RegroupReplicas);
        assert_eq!(plan.successor, Some(key("r2")));
        let mut want = one_move("r1", "r2");
        want.extend(one_move("r3", "r2"));
        assert_eq!(steps(&plan), want);
        has_line(
            &plan,
            "  note: r2:3306 chosen to take the other replicas of p:3306 (ranking: r2:3306, r3:3306, r1:3306)",
        );
        // Promotion rules take part.
        let opts = CandidateOptions {
            rules: [(key("r2"), PromotionRule::MustNot)].into(),
            ..CandidateOptions::default()
        };
        let plan = regroup_replicas(&star(), &key("p"), &opts).unwrap();
        assert_eq!(plan.successor, Some(key("r3")));
        // A replica that may not move stays, with a note.
        let mut snaps = vec![
            with_gtid(mariadb("p", 1), "0-1-12"),
            r("r1", 11, "p", "0-1-10"),
            r("r2", 12, "p", "0-1-12"),
            r("r3", 13, "p", "0-1-12"),
        ];
        snaps[3].server_id = 12;
        let plan = regroup_replicas(
            &topology(snaps, vec![]),
            &key("p"),
            &CandidateOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.successor, Some(key("r2")));
        assert_eq!(steps(&plan), one_move("r1", "r2"));
        assert!(
            plan.notes.iter().any(|n| n.starts_with(
                "r3:3306 stays under p:3306: r3:3306 and r2:3306 have the same server_id 12"
            )),
            "{:?}",
            plan.notes
        );
    }
}
