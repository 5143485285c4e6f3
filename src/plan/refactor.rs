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
            .and_then(|n| n.snapshot.as_ref())
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
