//! Recovery plans: a dead primary, a forced failover or takeover, a dead
//! intermediate primary. See "Recovery of a dead primary, step by step" in
//! the domain notes.
//!
//! The candidate is chosen from the topology a plan is made from. The
//! engine makes the plan again with fresh probes once the fence steps (IO
//! threads stopped, relay logs applied) have run, so the choice it acts on
//! sees every replica's final position.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::candidate::{
    CandidateOptions, Progress, PromotionRule, choose_candidate, direct_replicas, errant_of, join,
    lost_under,
};
use super::error::PlanError;
use super::legality::{LegalityOptions, Refusal, can_replicate_from, healthy, locate};
use super::step::{HookEvent, Plan, PlanKind, SourcePosition, Step};
use crate::topology::{InstanceKey, Snapshot, Topology};

/// Settings of a recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryOptions {
    pub candidate: CandidateOptions,
    /// Bound on waiting for a replica to apply its relay log.
    #[serde(with = "millis")]
    pub relay_apply_timeout: Duration,
    /// Bound on waiting for the target of a force takeover to execute
    /// everything a still reachable old primary has.
    #[serde(with = "millis")]
    pub catch_up_timeout: Duration,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            candidate: CandidateOptions::default(),
            relay_apply_timeout: Duration::from_secs(30),
            catch_up_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Recovery of a primary that is gone: fence its replicas (stop their IO
/// threads), let them apply what they received, promote the best
/// candidate, make the others replicate from it.
pub fn dead_primary(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &RecoveryOptions,
) -> Result<Plan, PlanError> {
    failover(topo, failed, opts, PlanKind::RecoverDeadPrimary)
}

/// A failover requested by hand: the primary is treated as dead now. When
/// it still answers it is fenced first (read only, client connections
/// killed) and left detached.
pub fn force_failover(
    topo: &Topology,
    primary: &InstanceKey,
    opts: &RecoveryOptions,
) -> Result<Plan, PlanError> {
    failover(topo, primary, opts, PlanKind::ForceFailover)
}

fn check_top(topo: &Topology, key: &InstanceKey) -> Result<(), PlanError> {
    let node = topo.get(key).ok_or_else(|| PlanError::not_found(key))?;
    if node.depth > 0 {
        let source = node
            .source
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(PlanError::Invalid(format!(
            "{key} replicates from {source}: it is not the top of its tree (for an intermediate primary use its own recovery)"
        )));
    }
    Ok(())
}

fn failover(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &RecoveryOptions,
    kind: PlanKind,
) -> Result<Plan, PlanError> {
    check_top(topo, failed)?;
    let choice = choose_candidate(topo, failed, &opts.candidate)?;
    let (replicas, _) = direct_replicas(topo, failed);
    let old = topo.get(failed).and_then(|n| n.snapshot.as_ref());

    let mut plan = Plan::new(kind);
    plan.failed = Some(failed.clone());
    plan.successor = Some(choice.chosen.clone());
    plan.notes = choice.notes;
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PreFailover,
    });
    let fenced = match (kind, old) {
        (PlanKind::ForceFailover, Some(old)) => {
            fence(&mut plan, old);
            plan.notes.push(format!(
                "{failed} is fenced (read only, client connections killed) and left detached"
            ));
            true
        }
        (PlanKind::ForceFailover, None) => {
            plan.notes.push(format!(
                "{failed} is unreachable and cannot be fenced: it must not come back writable"
            ));
            false
        }
        _ => {
            if old.is_some() {
                plan.notes.push(format!(
                    "{failed} answered the probe; this plan does not fence it (a force failover does)"
                ));
            }
            false
        }
    };
    for r in &replicas {
        plan.steps.push(Step::StopReplicaIo { on: r.key.clone() });
    }
    for r in &replicas {
        plan.steps.push(Step::WaitRelayApplied {
            on: r.key.clone(),
            timeout: opts.relay_apply_timeout,
        });
    }
    promote_and_repoint(
        &mut plan,
        topo,
        failed,
        &choice.chosen,
        &replicas,
        choice.lost,
    );
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostFailover,
    });
    plan.rollback = replicas
        .iter()
        .map(|r| Step::StartReplica { on: r.key.clone() })
        .collect();
    if fenced && let Some(old) = old.filter(|o| !o.is_read_only()) {
        plan.rollback.push(Step::SetReadOnly {
            on: old.key.clone(),
            read_only: false,
        });
    }
    Ok(plan)
}

/// Makes `old` refuse writes.
fn fence(plan: &mut Plan, old: &Snapshot) {
    plan.steps.push(Step::SetReadOnly {
        on: old.key.clone(),
        read_only: true,
    });
    plan.steps.push(Step::KillClientConnections {
        on: old.key.clone(),
    });
}

/// Promotes `chosen` (the point of no return is its reset), then makes
/// every other replica in `replicas` replicate from it, except the lost
/// ones, which are only stopped.
fn promote_and_repoint(
    plan: &mut Plan,
    topo: &Topology,
    failed: &InstanceKey,
    chosen: &InstanceKey,
    replicas: &[&Snapshot],
    lost: Vec<(InstanceKey, String)>,
) {
    plan.steps.push(Step::StopReplica { on: chosen.clone() });
    plan.point_of_no_return = plan.steps.len();
    plan.steps
        .push(Step::ResetReplicaAll { on: chosen.clone() });
    plan.steps.push(Step::SetReadOnly {
        on: chosen.clone(),
        read_only: false,
    });
    let is_lost = |k: &InstanceKey| lost.iter().any(|(l, _)| l == k);
    for r in replicas
        .iter()
        .filter(|r| &r.key != chosen && !is_lost(&r.key))
    {
        repoint(plan, &r.key, chosen);
    }
    for r in replicas.iter().filter(|r| is_lost(&r.key)) {
        plan.steps.push(Step::StopReplica { on: r.key.clone() });
    }
    if let Some(node) = topo.get(failed) {
        let unreachable: Vec<InstanceKey> = node
            .replicas
            .iter()
            .filter(|k| topo.get(k).is_some_and(|n| !n.reachable()))
            .cloned()
            .collect();
        if !unreachable.is_empty() {
            plan.notes.push(format!(
                "unreachable, not repointed (repoint when they return): {}",
                join(&unreachable)
            ));
        }
    }
    plan.lost_replicas = lost;
}

fn repoint(plan: &mut Plan, on: &InstanceKey, source: &InstanceKey) {
    plan.steps.push(Step::StopReplica { on: on.clone() });
    plan.steps.push(Step::ChangeSource {
        on: on.clone(),
        source: source.clone(),
        position: SourcePosition::Gtid,
    });
    plan.steps.push(Step::StartReplica { on: on.clone() });
}

/// Promotes `target`, a direct replica of `primary`, now: the primary is
/// discarded (fenced if it answers, and left detached). The target applies
/// what it has received (or, when the old primary answers, catches up with
/// it, bounded) without waiting for the other replicas.
pub fn force_takeover(
    topo: &Topology,
    primary: &InstanceKey,
    target: &InstanceKey,
    opts: &RecoveryOptions,
) -> Result<Plan, PlanError> {
    check_top(topo, primary)?;
    let target_snap = promotable_replica(topo, primary, target, &opts.candidate)?;
    if !target_snap.log_bin {
        return Err(PlanError::refused(
            target,
            Refusal::NoLogBin(target.clone()),
        ));
    }
    let (replicas, _) = direct_replicas(topo, primary);
    let old = topo.get(primary).and_then(|n| n.snapshot.as_ref());
    // What the target will have: its own transactions, and all of a
    // reachable old primary's once it has caught up.
    let reference = match old {
        Some(o) => Progress::of_replica(target_snap).union(&Progress::of_source(o)),
        None => Progress::of_replica(target_snap),
    };
    let (lost, lost_notes) = lost_under(target_snap, &reference, &replicas);

    let mut plan = Plan::new(PlanKind::ForceTakeover);
    plan.failed = Some(primary.clone());
    plan.successor = Some(target.clone());
    plan.notes
        .push(format!("{target} promoted by request, replacing {primary}"));
    plan.notes.extend(lost_notes);
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PreFailover,
    });
    if let Some(old) = old {
        fence(&mut plan, old);
        plan.steps.push(Step::WaitCaughtUp {
            on: target.clone(),
            of: primary.clone(),
            timeout: opts.catch_up_timeout,
        });
        plan.notes.push(format!(
            "{primary} is fenced (read only, client connections killed) and left detached"
        ));
    } else {
        plan.notes.push(format!(
            "{primary} is unreachable and cannot be fenced: it must not come back writable"
        ));
    }
    for r in &replicas {
        plan.steps.push(Step::StopReplicaIo { on: r.key.clone() });
    }
    plan.steps.push(Step::WaitRelayApplied {
        on: target.clone(),
        timeout: opts.relay_apply_timeout,
    });
    promote_and_repoint(&mut plan, topo, primary, target, &replicas, lost);
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostFailover,
    });
    plan.rollback = replicas
        .iter()
        .map(|r| Step::StartReplica { on: r.key.clone() })
        .collect();
    if let Some(old) = old.filter(|o| !o.is_read_only()) {
        plan.rollback.push(Step::SetReadOnly {
            on: old.key.clone(),
            read_only: false,
        });
    }
    Ok(plan)
}

/// `target` as a replica of `primary` that may be promoted by request:
/// a reachable direct replica, not must_not, without errant GTIDs.
pub(crate) fn promotable_replica<'a>(
    topo: &'a Topology,
    primary: &InstanceKey,
    target: &InstanceKey,
    opts: &CandidateOptions,
) -> Result<&'a Snapshot, PlanError> {
    let node = topo
        .get(target)
        .ok_or_else(|| PlanError::not_found(target))?;
    if node.source.as_ref() != Some(primary) {
        return Err(PlanError::NotAReplicaOf {
            instance: target.clone(),
            primary: primary.clone(),
        });
    }
    let snap = node
        .snapshot
        .as_ref()
        .ok_or_else(|| PlanError::refused(target, Refusal::Unreachable(target.clone())))?;
    if opts.rule(target) == PromotionRule::MustNot {
        return Err(PlanError::refused(
            target,
            Refusal::MustNotPromote(target.clone()),
        ));
    }
    if let Some(errant) = errant_of(topo, target) {
        return Err(PlanError::refused(
            target,
            Refusal::ErrantGtids {
                instance: target.clone(),
                errant: errant.to_string(),
            },
        ));
    }
    Ok(snap)
}

/// Recovery of a dead intermediate primary: each of its reachable replicas
/// moves under a sibling of the dead one (another replica of its source)
/// that the rules allow and that holds every transaction the replica has,
/// else under the dead one's own source. A replica that can go nowhere is
/// lost.
pub fn dead_intermediate_primary(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &RecoveryOptions,
) -> Result<Plan, PlanError> {
    let node = topo
        .get(failed)
        .ok_or_else(|| PlanError::not_found(failed))?;
    let Some(grand) = node.source.clone().filter(|s| topo.get(s).is_some()) else {
        return Err(PlanError::Invalid(format!(
            "{failed} has no known source: it is not an intermediate primary"
        )));
    };
    let (replicas, _) = direct_replicas(topo, failed);
    if replicas.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{failed} has no reachable replica to move"
        )));
    }
    // Siblings of the failed one, as new sources: reachable, preferred by
    // promotion rule, then by key; must_not ones are not made sources.
    let (mut siblings, _) = direct_replicas(topo, &grand);
    siblings.retain(|s| &s.key != failed && opts.candidate.rule(&s.key) != PromotionRule::MustNot);
    siblings.sort_by_key(|s| opts.candidate.rule(&s.key));
    let source_opts = LegalityOptions {
        max_lag_ms: opts.candidate.max_lag_ms.unwrap_or(u64::MAX),
        ..LegalityOptions::default()
    };

    let mut plan = Plan::new(PlanKind::RecoverDeadIntermediatePrimary);
    plan.failed = Some(failed.clone());
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PreFailover,
    });
    let mut destinations: Vec<InstanceKey> = Vec::new();
    for r in &replicas {
        let mine = Progress::of_replica(r);
        let mut refusals: Vec<String> = Vec::new();
        let mut dest: Option<InstanceKey> = None;
        for cand in siblings
            .iter()
            .map(|s| &s.key)
            .chain(std::iter::once(&grand))
        {
            match new_source_for(topo, r, cand, &mine, &source_opts) {
                Ok(()) => {
                    dest = Some(cand.clone());
                    break;
                }
                Err(why) => refusals.push(format!("{cand}: {why}")),
            }
        }
        match dest {
            Some(d) => {
                if plan.point_of_no_return == 0 {
                    plan.point_of_no_return = plan.steps.len() + 1;
                    plan.rollback.push(Step::StartReplica { on: r.key.clone() });
                }
                repoint(&mut plan, &r.key, &d);
                plan.notes.push(format!("{} moves under {d}", r.key));
                destinations.push(d);
            }
            None => {
                plan.lost_replicas.push((
                    r.key.clone(),
                    format!("no legal new source: {}", refusals.join("; ")),
                ));
            }
        }
    }
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostFailover,
    });
    destinations.sort();
    destinations.dedup();
    if destinations.len() == 1 {
        plan.successor = destinations.pop();
    }
    Ok(plan)
}

/// Whether replica `r` (with progress `mine`) may move under `source`
/// after its own source died.
fn new_source_for(
    topo: &Topology,
    r: &Snapshot,
    source: &InstanceKey,
    mine: &Progress,
    opts: &LegalityOptions,
) -> Result<(), String> {
    // Structure and settings, without the state of the moving replica;
    // the new source must be replicating and not lagging.
    can_replicate_from(topo, &r.key, source, &LegalityOptions::structural())
        .map_err(|e| e.to_string())?;
    let s = locate(topo, source).map_err(|e| e.to_string())?;
    healthy(topo, s, opts).map_err(|e| e.to_string())?;
    let theirs = if s.is_replica() {
        Progress::of_replica(s)
    } else {
        Progress::of_source(s)
    };
    // Coordinates of different sources do not compare: only GTID sets
    // decide here.
    let gtid_only = |p: &Progress| Progress {
        gtid: p.gtid.clone(),
        coordinates: None,
    };
    match gtid_only(&theirs).holds(&gtid_only(mine)) {
        Some(true) => Ok(()),
        Some(false) => Err(format!("it lacks transactions {} has", r.key)),
        None => Err("cannot compare GTID sets".to_string()),
    }
}
