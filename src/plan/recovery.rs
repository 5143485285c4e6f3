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
use super::loss::{LastSeenPrimary, assess};
use super::step::{HookEvent, Plan, PlanKind, SourcePosition, Step, fence_steps, unfence_steps};
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
    /// The failed primary as last seen, when it no longer answers (the
    /// engine sets it from the prober's memory for each recovery).
    #[serde(default, skip)]
    pub last_seen: Option<LastSeenPrimary>,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            candidate: CandidateOptions::default(),
            relay_apply_timeout: Duration::from_secs(30),
            catch_up_timeout: Duration::from_secs(10),
            last_seen: None,
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

/// Why replica `r` does not apply its relay log by itself now (a
/// configured delay, a stopped SQL thread), if it does not.
fn not_applying(r: &Snapshot) -> Option<String> {
    let status = r.replica.as_ref()?;
    if status.sql_delay > 0 {
        Some(format!("delayed replica, SQL_Delay {} s", status.sql_delay))
    } else if !status.sql_running {
        Some("the SQL thread is stopped".to_string())
    } else {
        None
    }
}

/// Whether waiting for `r` to apply its relay log can end well.
fn applies_relay(r: &Snapshot) -> bool {
    not_applying(r).is_none()
}

/// The candidate choice of a failover: replicas that do not apply their
/// relay log (delayed, SQL thread stopped) are chosen only when no other
/// replica can be (the plan then makes the chosen one apply it first).
fn choose_applying(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &CandidateOptions,
) -> Result<super::candidate::CandidateChoice, PlanError> {
    let choice = match choose_candidate(topo, failed, opts) {
        Err(PlanError::NoCandidate { .. }) => {
            // Delayed replicas as a last resort: seen without their delay.
            let mut undelayed = topo.clone();
            for n in undelayed.nodes.values_mut() {
                if let Some(r) = n.snapshot.as_mut().and_then(|s| s.replica.as_mut()) {
                    r.sql_delay = 0;
                }
            }
            match choose_candidate(&undelayed, failed, opts) {
                Ok(mut c) => {
                    c.notes.push(format!(
                        "{} is a delayed replica but no other replica can be promoted",
                        c.chosen
                    ));
                    return Ok(c);
                }
                Err(_) => choose_candidate(topo, failed, opts)?,
            }
        }
        other => other?,
    };
    let (replicas, _) = direct_replicas(topo, failed);
    let idle: Vec<&Snapshot> = replicas
        .iter()
        .copied()
        .filter(|r| !applies_relay(r))
        .collect();
    if !idle.iter().any(|r| r.key == choice.chosen) {
        return Ok(choice);
    }
    let mut stricter = opts.clone();
    for r in &idle {
        stricter.rules.insert(r.key.clone(), PromotionRule::MustNot);
    }
    match choose_candidate(topo, failed, &stricter) {
        Ok(mut better) => {
            for r in idle
                .iter()
                .filter(|r| opts.rule(&r.key) != PromotionRule::MustNot)
            {
                let why = not_applying(r).unwrap_or_default();
                let aside = format!("{} set aside", r.key);
                better.notes.retain(|n| !n.starts_with(&aside));
                better.notes.push(format!("{aside}: {why}"));
                for (k, reason) in better.excluded.iter_mut() {
                    if k == &r.key {
                        *reason = why.clone();
                    }
                }
            }
            Ok(better)
        }
        Err(_) => {
            let mut choice = choice;
            choice.notes.push(format!(
                "{} does not apply its relay log by itself but no other replica can be promoted",
                choice.chosen
            ));
            Ok(choice)
        }
    }
}

fn failover(
    topo: &Topology,
    failed: &InstanceKey,
    opts: &RecoveryOptions,
    kind: PlanKind,
) -> Result<Plan, PlanError> {
    check_top(topo, failed)?;
    let (replicas, _) = direct_replicas(topo, failed);
    let old = topo.get(failed).and_then(|n| n.snapshot.as_deref());
    let last = last_seen(old, failed, opts);
    // A semi-sync cluster (the primary's side on when it was last seen, or
    // any replica's): the candidate must hold what any replica received.
    let mut candidate = opts.candidate.clone();
    candidate.semi_sync |= semi_sync_cluster(&replicas, last.as_ref());
    let choice = choose_applying(topo, failed, &candidate)?;

    let mut plan = Plan::new(kind);
    plan.failed = Some(failed.clone());
    plan.successor = Some(choice.chosen.clone());
    plan.notes = choice.notes;
    plan.lost_transactions = assess(
        topo,
        failed,
        &choice.chosen,
        last.as_ref(),
        candidate.semi_sync,
        kind == PlanKind::RecoverDeadPrimary,
        &mut plan.notes,
    )?;
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PreFailover,
    });
    let fenced = match (kind, old) {
        (PlanKind::ForceFailover, Some(old)) => {
            fence(&mut plan, old);
            plan.notes.push(format!(
                "{failed} is fenced (clients killed, read only, writes locked for every account while orca runs) and left detached"
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
        if applies_relay(r) {
            plan.steps.push(Step::WaitRelayApplied {
                on: r.key.clone(),
                timeout: opts.relay_apply_timeout,
            });
        } else {
            plan.notes.push(format!(
                "{}: no relay log wait ({})",
                r.key,
                not_applying(r).unwrap_or_default()
            ));
        }
    }
    // A chosen replica that does not apply by itself applies first; if it
    // cannot, the failover stops before anything is promoted.
    if replicas
        .iter()
        .any(|r| r.key == choice.chosen && !applies_relay(r))
    {
        plan.steps.push(Step::ApplyRelayNow {
            on: choice.chosen.clone(),
            timeout: opts.relay_apply_timeout,
        });
    }
    promote_and_repoint(
        &mut plan,
        topo,
        failed,
        last.as_ref(),
        &choice.chosen,
        &replicas,
        choice.lost,
        opts.relay_apply_timeout,
    );
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostFailover,
    });
    plan.rollback = replicas
        .iter()
        .map(|r| Step::StartReplica { on: r.key.clone() })
        .collect();
    if fenced && let Some(old) = old {
        plan.rollback.extend(unfence_steps(old));
    }
    Ok(plan)
}

/// A failover plan cut in the phases the engine runs one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct FencePhases {
    /// Pre-failover hooks and IO threads stopped. A failure here (a veto,
    /// an IO thread that would not stop) abandons the failover: the
    /// plan's rollback restarts replication.
    pub fence: Plan,
    /// Relay log waits. A wait that fails is reported and does not undo
    /// the fence: the candidate is chosen again from what was applied.
    pub waits: Vec<Step>,
}

/// The steps at the start of a failover plan that make its fence: hooks,
/// IO threads stopped, relay logs applied.
pub fn fence_len(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .position(|s| {
            !matches!(
                s,
                Step::RunHooks { .. } | Step::StopReplicaIo { .. } | Step::WaitRelayApplied { .. }
            )
        })
        .unwrap_or(plan.steps.len())
}

/// Cuts the fence of a failover plan (see [`FencePhases`]).
pub fn fence_phases(plan: &Plan) -> FencePhases {
    let end = fence_len(plan);
    let mut fence = plan.clone();
    let (waits, stops): (Vec<Step>, Vec<Step>) = plan.steps[..end]
        .iter()
        .cloned()
        .partition(|s| matches!(s, Step::WaitRelayApplied { .. }));
    fence.steps = stops;
    fence.point_of_no_return = fence.steps.len();
    FencePhases { fence, waits }
}

/// What is left of a failover plan made again once its fence has run:
/// the promotion and the repointing. Its rollback (replication restarted)
/// still runs if a step before the promotion fails, since nothing was
/// promoted then.
pub fn after_fence(plan: &Plan) -> Plan {
    let skip = fence_len(plan);
    let mut rest = plan.clone();
    rest.steps.drain(..skip);
    rest.point_of_no_return = plan.point_of_no_return.saturating_sub(skip);
    rest
}

/// The plan that abandons a failover whose fence ran: replication
/// restarted on every replica the fence stopped, nothing promoted.
pub fn abandon(plan: &Plan) -> Plan {
    let mut undo = Plan::new(plan.kind);
    undo.failed = plan.failed.clone();
    undo.steps = plan.rollback.clone();
    undo.point_of_no_return = 0;
    undo
}

/// Makes `old` refuse writes from every account (see [`fence_steps`]).
fn fence(plan: &mut Plan, old: &Snapshot) {
    plan.steps.extend(fence_steps(&old.key));
}

/// Promotes `chosen` once it has executed everything it received (the
/// point of no return is its reset; semi-sync goes on before it is
/// writable), then makes every other replica in `replicas` replicate from
/// it, except the lost ones, which are only stopped.
/// The replaced primary as it answers now, else as it was last seen.
fn last_seen(
    old: Option<&Snapshot>,
    failed: &InstanceKey,
    opts: &RecoveryOptions,
) -> Option<LastSeenPrimary> {
    old.map(LastSeenPrimary::of)
        .or_else(|| opts.last_seen.clone().filter(|l| &l.key == failed))
}

/// Whether the cluster replicates semi-synchronously: the primary's side
/// was on when last seen, or a replica's is on.
fn semi_sync_cluster(replicas: &[&Snapshot], last: Option<&LastSeenPrimary>) -> bool {
    replicas.iter().any(|r| r.semi_sync.replica_enabled) || last.is_some_and(|l| l.semi_sync)
}

#[allow(clippy::too_many_arguments)]
fn promote_and_repoint(
    plan: &mut Plan,
    topo: &Topology,
    failed: &InstanceKey,
    last: Option<&LastSeenPrimary>,
    chosen: &InstanceKey,
    replicas: &[&Snapshot],
    lost: Vec<(InstanceKey, String)>,
    relay_apply_timeout: Duration,
) {
    plan.steps.push(Step::WaitReceivedApplied {
        on: chosen.clone(),
        timeout: relay_apply_timeout,
    });
    // The point of no return is the epoch, the first write on the
    // candidate: its default connection receives nothing any more (the
    // fence stopped its IO thread), so it is made writable first and
    // forgets its source after the others replicate from it. A semi-sync
    // IO thread of a hung source may still be stopping in the background
    // (MariaDB), and every statement on the connection waits for it.
    plan.point_of_no_return = plan.steps.len();
    // The epoch before it can take writes, and before semi-sync: with its
    // primary side on and no replica yet, the write would wait for an
    // acknowledgement nobody sends.
    plan.steps.push(Step::RecordEpoch { on: chosen.clone() });
    // The new primary waits for as many acknowledgements as the old one.
    if semi_sync_cluster(replicas, last) {
        plan.steps.push(Step::SetSemiSyncPrimary {
            on: chosen.clone(),
            enabled: true,
            wait_count: last.map_or(1, |l| l.wait_count),
        });
    }
    plan.steps.push(Step::SetReadOnly {
        on: chosen.clone(),
        read_only: false,
    });
    let is_lost = |k: &InstanceKey| lost.iter().any(|(l, _)| l == k);
    let repointed: Vec<&InstanceKey> = replicas
        .iter()
        .filter(|r| &r.key != chosen && !is_lost(&r.key))
        .map(|r| &r.key)
        .collect();
    for r in &repointed {
        repoint(plan, r, chosen);
    }
    plan.steps.push(Step::StopReplica { on: chosen.clone() });
    plan.steps
        .push(Step::ResetReplicaAll { on: chosen.clone() });
    for r in replicas.iter().filter(|r| is_lost(&r.key)) {
        plan.steps.push(Step::StopReplica { on: r.key.clone() });
    }
    for r in repointed {
        plan.steps.push(Step::SettleReplica { on: r.clone() });
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
    let old = topo.get(primary).and_then(|n| n.snapshot.as_deref());
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
    // A target that does not apply its relay log by itself (a delay, a
    // stopped SQL thread) is made to, before it can catch up.
    let apply_now = not_applying(target_snap).map(|why| {
        plan.notes.push(format!(
            "{target} applies its relay log now ({why}): its delay is removed"
        ));
        Step::ApplyRelayNow {
            on: target.clone(),
            timeout: opts.relay_apply_timeout,
        }
    });
    if let Some(old) = old {
        fence(&mut plan, old);
        plan.steps.extend(apply_now.clone());
        plan.steps.push(Step::WaitCaughtUp {
            on: target.clone(),
            of: primary.clone(),
            timeout: opts.catch_up_timeout,
        });
        plan.notes.push(format!(
            "{primary} is fenced (clients killed, read only, writes locked for every account while orca runs) and left detached"
        ));
    } else {
        plan.notes.push(format!(
            "{primary} is unreachable and cannot be fenced: it must not come back writable"
        ));
    }
    for r in &replicas {
        plan.steps.push(Step::StopReplicaIo { on: r.key.clone() });
    }
    if old.is_none() {
        plan.steps.extend(apply_now);
    }
    promote_and_repoint(
        &mut plan,
        topo,
        primary,
        last_seen(old, primary, opts).as_ref(),
        target,
        &replicas,
        lost,
        opts.relay_apply_timeout,
    );
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostFailover,
    });
    plan.rollback = replicas
        .iter()
        .map(|r| Step::StartReplica { on: r.key.clone() })
        .collect();
    if let Some(old) = old {
        plan.rollback.extend(unfence_steps(old));
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
    let (replicas, unreachable) = direct_replicas(topo, failed);
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
    if !unreachable.is_empty() {
        plan.notes.push(format!(
            "unreachable, not moved (move them when they return): {}",
            join(&unreachable)
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::candidate::AHEAD;
    use crate::plan::step::check_epoch_placement;
    use crate::topology::testing::{
        down, key, mariadb, replica_of, source_gone, topology, with_gtid,
    };

    fn r(host: &str, id: u32, source: &str, pos: &str) -> Snapshot {
        with_gtid(replica_of(host, id, source), pos)
    }

    /// p (dead or alive) with replicas r1 (0-1-10), r2 (0-1-12), r3
    /// (0-1-11).
    fn star(primary_alive: bool) -> Topology {
        let mut snaps = vec![
            r("r1", 11, "p", "0-1-10"),
            r("r2", 12, "p", "0-1-12"),
            r("r3", 13, "p", "0-1-11"),
        ];
        if primary_alive {
            snaps.push(with_gtid(mariadb("p", 1), "0-1-12"));
            topology(snaps, vec![])
        } else {
            let snaps = snaps.into_iter().map(source_gone).collect();
            topology(snaps, vec![down("p", None)])
        }
    }

    /// p → a → b → c.
    fn chain(down_hosts: &[&str]) -> Topology {
        let all = [
            with_gtid(mariadb("p", 1), "0-1-10"),
            r("a", 2, "p", "0-1-10"),
            r("b", 3, "a", "0-1-10"),
            r("c", 4, "b", "0-1-10"),
        ];
        let sources = [None, Some("p"), Some("a"), Some("b")];
        let mut snaps = Vec::new();
        let mut unreachable = Vec::new();
        for (s, src) in all.into_iter().zip(sources) {
            if down_hosts.contains(&s.key.host.as_str()) {
                unreachable.push(down(&s.key.host, src));
            } else if src.is_some_and(|h| down_hosts.contains(&h)) {
                snaps.push(source_gone(s));
            } else {
                snaps.push(s);
            }
        }
        topology(snaps, unreachable)
    }

    fn steps(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.to_string()).collect()
    }

    fn rollback(plan: &Plan) -> Vec<String> {
        plan.rollback.iter().map(|s| s.to_string()).collect()
    }

    fn has_line(plan: &Plan, line: &str) {
        let text = plan.to_string();
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }

    #[test]
    fn traffic_may_move_once_the_successor_is_writable() {
        let d = RecoveryOptions::default();
        let cases = promotions();
        for (name, plan) in cases {
            let successor = plan.successor.clone().unwrap();
            let writable = plan
                .steps
                .iter()
                .position(|s| s.makes_writable() == Some(&successor))
                .unwrap_or_else(|| panic!("{name}: the successor is never made writable"));
            assert!(writable >= plan.point_of_no_return, "{name}");
            for i in 0..=plan.steps.len() {
                let want = (i > writable).then_some(&successor);
                assert_eq!(
                    plan.writable_successor_before(i),
                    want,
                    "{name}: before step {}",
                    i + 1
                );
            }
        }
        // Made writable before the point of no return (undone by a
        // rollback), or another instance made writable: no move.
        let mut early = dead_primary(&star(false), &key("p"), &d).unwrap();
        early.point_of_no_return = early.steps.len();
        let other = Step::SetReadOnly {
            on: key("r1"),
            read_only: false,
        };
        let mut elsewhere = Plan::new(early.kind);
        elsewhere.successor = Some(key("r2"));
        elsewhere.steps = vec![other.clone(), other];
        for (name, plan) in [
            ("before the point of no return", &early),
            ("another instance", &elsewhere),
        ] {
            for i in 0..=plan.steps.len() {
                assert_eq!(
                    plan.writable_successor_before(i),
                    None,
                    "{name}: step {}",
                    i + 1
                );
            }
        }
        let mut none = elsewhere.clone();
        none.successor = None;
        assert_eq!(none.writable_successor_before(2), None);
    }

    /// p's semi-sync replicas: `t` with semi-sync on each replica, p down.
    fn semi(t: Topology) -> Topology {
        let snaps = t
            .nodes
            .values()
            .filter_map(|n| n.snapshot.as_deref().cloned())
            .map(|mut s| {
                s.semi_sync.replica_enabled = s.is_replica();
                s
            })
            .collect();
        topology(snaps, vec![down("p", None)])
    }

    /// A plan of each kind that promotes after a fence.
    fn promotions() -> Vec<(&'static str, Plan)> {
        let d = RecoveryOptions::default();
        vec![
            (
                "dead primary",
                dead_primary(&star(false), &key("p"), &d).unwrap(),
            ),
            (
                "dead primary, semi-sync",
                dead_primary(&semi(star(false)), &key("p"), &d).unwrap(),
            ),
            (
                "dead primary in a chain",
                dead_primary(&chain(&["p"]), &key("p"), &d).unwrap(),
            ),
            (
                "force failover",
                force_failover(&star(true), &key("p"), &d).unwrap(),
            ),
            (
                "force takeover of a live primary",
                force_takeover(&star(true), &key("p"), &key("r1"), &d).unwrap(),
            ),
            (
                "force takeover of a dead primary",
                force_takeover(&star(false), &key("p"), &key("r1"), &d).unwrap(),
            ),
        ]
    }

    #[test]
    fn every_promotion_records_the_epoch_before_writes() {
        let d = RecoveryOptions::default();
        let cases = promotions();
        for (name, plan) in cases {
            assert_eq!(check_epoch_placement(&plan), Ok(()), "{name}:\n{plan}");
            // Cut in phases, the epoch is in the promotion, not the fence.
            let phases = fence_phases(&plan);
            assert!(
                !phases
                    .fence
                    .steps
                    .iter()
                    .chain(&phases.waits)
                    .any(|s| matches!(s, Step::RecordEpoch { .. })),
                "{name}"
            );
            assert_eq!(
                check_epoch_placement(&after_fence(&plan)),
                Ok(()),
                "{name}: after the fence"
            );
            // A rollback restores the old primary as it was, in the
            // same term: it records nothing (with semi-sync and its
            // replicas stopped, the write would wait for them).
            assert!(
                !plan
                    .rollback
                    .iter()
                    .any(|s| matches!(s, Step::RecordEpoch { .. })),
                "{name}"
            );
        }
        let semi_plan = dead_primary(&semi(star(false)), &key("p"), &d).unwrap();
        let texts = steps(&semi_plan);
        let at = |t: &str| texts.iter().position(|s| s == t).unwrap();
        assert!(
            at(
                "r2:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)"
            ) < at("r2:3306: semi-sync primary side ON (waits for 1 acknowledgement)"),
            "{semi_plan}"
        );
    }

    #[test]
    fn dead_primary_with_three_replicas() {
        let plan = dead_primary(&star(false), &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.kind, PlanKind::RecoverDeadPrimary);
        assert_eq!(plan.failed, Some(key("p")));
        assert_eq!(plan.successor, Some(key("r2")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preFailover hooks",
                "r1:3306: stop the replica IO thread",
                "r2:3306: stop the replica IO thread",
                "r3:3306: stop the replica IO thread",
                "r1:3306: wait until the relay log is applied (at most 30s)",
                "r2:3306: wait until the relay log is applied (at most 30s)",
                "r3:3306: wait until the relay log is applied (at most 30s)",
                "r2:3306: wait until it has executed everything it received (at most 30s)",
                "r2:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "r2:3306: set read_only=OFF",
                "r1:3306: stop replication",
                "r1:3306: replicate from r2:3306 (GTID)",
                "r1:3306: start replication",
                "r3:3306: stop replication",
                "r3:3306: replicate from r2:3306 (GTID)",
                "r3:3306: start replication",
                "r2:3306: stop replication",
                "r2:3306: reset all replication settings",
                "r1:3306: wait until its IO thread has stopped, then replicate through its default connection",
                "r3:3306: wait until its IO thread has stopped, then replicate through its default connection",
                "run postFailover hooks",
            ]
        );
        assert_eq!(plan.point_of_no_return, 8);
        assert_eq!(
            rollback(&plan),
            vec![
                "r1:3306: start replication",
                "r2:3306: start replication",
                "r3:3306: start replication",
            ]
        );
        assert!(plan.lost_replicas.is_empty());
        has_line(
            &plan,
            "plan: recover-dead-primary, replacing p:3306, successor r2:3306",
        );
        has_line(
            &plan,
            "  note: candidate r2:3306 chosen among 3 (ranking: r2:3306, r3:3306, r1:3306)",
        );
        has_line(
            &plan,
            "   8. r2:3306: wait until it has executed everything it received (at most 30s) (undone on failure)",
        );
        has_line(
            &plan,
            "   9. r2:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
        );
        has_line(&plan, "  12. r1:3306: replicate from r2:3306 (GTID)");
        has_line(&plan, "  18. r2:3306: reset all replication settings");
        has_line(&plan, "  on failure before step 9:");
        has_line(&plan, "      - r3:3306: start replication");
    }

    /// The dead p with r1 (0-1-10), r2 (0-1-12) delayed, r3 (0-1-12)
    /// with its SQL thread stopped, r4 (0-1-11).
    fn idle_replicas() -> Topology {
        let mut delayed = r("r2", 12, "p", "0-1-12");
        if let Some(st) = delayed.replica.as_mut() {
            st.sql_delay = 30;
        }
        let mut stopped = r("r3", 13, "p", "0-1-12");
        if let Some(st) = stopped.replica.as_mut() {
            st.sql_running = false;
        }
        let snaps = vec![
            r("r1", 11, "p", "0-1-10"),
            delayed,
            stopped,
            r("r4", 14, "p", "0-1-11"),
        ];
        topology(
            snaps.into_iter().map(source_gone).collect(),
            vec![down("p", None)],
        )
    }

    #[test]
    fn delayed_and_stopped_replicas_get_no_relay_wait_and_are_chosen_last() {
        let plan = dead_primary(&idle_replicas(), &key("p"), &RecoveryOptions::default()).unwrap();
        // r3 holds the most but does not apply: r4 is chosen, r3 is lost.
        assert_eq!(plan.successor, Some(key("r4")));
        let waits: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::WaitRelayApplied { .. }))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            waits,
            vec![
                "r1:3306: wait until the relay log is applied (at most 30s)",
                "r4:3306: wait until the relay log is applied (at most 30s)",
            ]
        );
        has_line(
            &plan,
            "  note: r2:3306: no relay log wait (delayed replica, SQL_Delay 30 s)",
        );
        has_line(
            &plan,
            "  note: r3:3306: no relay log wait (the SQL thread is stopped)",
        );
        has_line(
            &plan,
            "  note: r3:3306 set aside: the SQL thread is stopped",
        );
        // Nothing better: the stopped one is chosen, and says so.
        let mut stopped = r("r3", 13, "p", "0-1-12");
        if let Some(st) = stopped.replica.as_mut() {
            st.sql_running = false;
        }
        let alone = topology(vec![source_gone(stopped)], vec![down("p", None)]);
        let plan = dead_primary(&alone, &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.successor, Some(key("r3")));
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("no other replica can be promoted")),
            "{plan}"
        );
        let applied_first = vec![
            "run preFailover hooks",
            "r3:3306: stop the replica IO thread",
            "r3:3306: apply the relay log now, delay removed (at most 30s)",
            "r3:3306: wait until it has executed everything it received (at most 30s)",
            "r3:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
        ];
        assert_eq!(steps(&plan)[..5].to_vec(), applied_first);
        // Applying comes after the fence, before the point of no return.
        assert_eq!(fence_len(&plan), 2);
        assert_eq!(plan.point_of_no_return, 4);
        // A delayed replica, alone, likewise.
        let mut delayed = r("r3", 13, "p", "0-1-12");
        if let Some(st) = delayed.replica.as_mut() {
            st.sql_delay = 30;
        }
        let alone = topology(vec![source_gone(delayed)], vec![down("p", None)]);
        let plan = dead_primary(&alone, &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.successor, Some(key("r3")));
        assert_eq!(steps(&plan)[..5].to_vec(), applied_first);
        // Not when another one can be promoted (r2 is delayed, r4 is not).
        let plan = dead_primary(&idle_replicas(), &key("p"), &RecoveryOptions::default()).unwrap();
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::ApplyRelayNow { .. }))
        );
    }

    #[test]
    fn force_takeover_of_a_delayed_target_applies_its_relay_log_first() {
        let delayed = |t: &mut Topology| {
            if let Some(st) = t
                .nodes
                .get_mut(&key("r2"))
                .and_then(|n| n.snapshot.as_mut())
                .and_then(|s| s.replica.as_mut())
            {
                st.sql_delay = 30;
            }
        };
        // Where the first (or last) step starting or ending with `text` is.
        let at = |plan: &Plan, text: &str, last: bool| {
            let s = steps(plan);
            let found = |l: &String| l.starts_with(text) || l.ends_with(text);
            let i = if last {
                s.iter().rposition(found)
            } else {
                s.iter().position(found)
            };
            i.unwrap_or_else(|| panic!("no step {text:?} in {plan}"))
        };
        // Reachable primary: fenced, then the target applies, then it
        // catches up with the primary.
        let mut t = star(true);
        delayed(&mut t);
        let plan = force_takeover(&t, &key("p"), &key("r2"), &RecoveryOptions::default()).unwrap();
        let apply = at(&plan, "r2:3306: apply the relay log now", false);
        let fenced = at(&plan, "p:3306: lock writes", false);
        let caught_up = at(
            &plan,
            "r2:3306: wait until it has executed all of p:3306",
            false,
        );
        assert!(fenced < apply && apply < caught_up, "{plan}");
        assert!(apply < plan.point_of_no_return);
        has_line(
            &plan,
            "  note: r2:3306 applies its relay log now (delayed replica, SQL_Delay 30 s): its delay is removed",
        );
        // Unreachable primary: after the IO threads stop.
        let mut t = star(false);
        delayed(&mut t);
        let plan = force_takeover(&t, &key("p"), &key("r2"), &RecoveryOptions::default()).unwrap();
        let apply = at(&plan, "r2:3306: apply the relay log now", false);
        let last_stop = at(&plan, "stop the replica IO thread", true);
        assert!(
            last_stop < apply && apply < plan.point_of_no_return,
            "{plan}"
        );
        // A target that applies by itself gets no such step.
        let plan = force_takeover(
            &star(true),
            &key("p"),
            &key("r2"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::ApplyRelayNow { .. }))
        );
    }

    #[test]
    fn the_fence_is_cut_from_the_promotion() {
        let plan = dead_primary(&star(false), &key("p"), &RecoveryOptions::default()).unwrap();
        let phases = fence_phases(&plan);
        assert_eq!(
            steps(&phases.fence),
            vec![
                "run preFailover hooks",
                "r1:3306: stop the replica IO thread",
                "r2:3306: stop the replica IO thread",
                "r3:3306: stop the replica IO thread",
            ]
        );
        // A failure in the fence restarts replication: nothing promoted.
        assert_eq!(phases.fence.point_of_no_return, 4);
        assert_eq!(phases.fence.rollback, plan.rollback);
        assert_eq!(phases.waits.len(), 3);
        assert!(
            phases
                .waits
                .iter()
                .all(|s| matches!(s, Step::WaitRelayApplied { .. }))
        );
        let rest = after_fence(&plan);
        assert_eq!(
            steps(&rest)[..2].to_vec(),
            vec![
                "r2:3306: wait until it has executed everything it received (at most 30s)",
                "r2:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
            ]
        );
        assert_eq!(
            rest.steps[rest.point_of_no_return],
            Step::RecordEpoch { on: key("r2") }
        );
        assert_eq!(rest.rollback, plan.rollback);
        assert_eq!(rest.steps.len() + 7, plan.steps.len());
        let undo = abandon(&plan);
        assert_eq!(
            steps(&undo),
            vec![
                "r1:3306: start replication",
                "r2:3306: start replication",
                "r3:3306: start replication",
            ]
        );
        assert!(undo.rollback.is_empty());
    }

    #[test]
    fn dead_primary_leaves_lost_replicas_detached() {
        let opts = RecoveryOptions {
            candidate: CandidateOptions {
                rules: [(key("r2"), PromotionRule::MustNot)].into(),
                ..CandidateOptions::default()
            },
            relay_apply_timeout: Duration::from_secs(5),
            ..RecoveryOptions::default()
        };
        let plan = dead_primary(&star(false), &key("p"), &opts).unwrap();
        assert_eq!(plan.successor, Some(key("r3")));
        assert_eq!(plan.lost_replicas, vec![(key("r2"), AHEAD.to_string())]);
        assert_eq!(
            steps(&plan)[7..].to_vec(),
            vec![
                "r3:3306: wait until it has executed everything it received (at most 5s)",
                "r3:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "r3:3306: set read_only=OFF",
                "r1:3306: stop replication",
                "r1:3306: replicate from r3:3306 (GTID)",
                "r1:3306: start replication",
                "r3:3306: stop replication",
                "r3:3306: reset all replication settings",
                "r2:3306: stop replication",
                "r1:3306: wait until its IO thread has stopped, then replicate through its default connection",
                "run postFailover hooks",
            ]
        );
        assert!(steps(&plan)[4].ends_with("(at most 5s)"));
        has_line(
            &plan,
            "  lost replica r2:3306: ahead of the candidate: would diverge",
        );
        has_line(&plan, "  note: r2:3306 set aside: promotion rule must_not");
    }

    #[test]
    fn dead_primary_at_the_top_of_a_chain() {
        let plan = dead_primary(&chain(&["p"]), &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.successor, Some(key("a")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preFailover hooks",
                "a:3306: stop the replica IO thread",
                "a:3306: wait until the relay log is applied (at most 30s)",
                "a:3306: wait until it has executed everything it received (at most 30s)",
                "a:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "a:3306: set read_only=OFF",
                "a:3306: stop replication",
                "a:3306: reset all replication settings",
                "run postFailover hooks",
            ]
        );
        assert_eq!(plan.point_of_no_return, 4);
        // Not for an intermediate primary.
        let err = dead_primary(&chain(&["a"]), &key("a"), &RecoveryOptions::default()).unwrap_err();
        assert!(matches!(err, PlanError::Invalid(_)), "{err}");
        assert!(
            err.to_string().contains("a:3306 replicates from p:3306"),
            "{err}"
        );
    }

    #[test]
    fn dead_primary_reports_unreachable_replicas_and_no_candidate() {
        let t = topology(
            vec![source_gone(r("r1", 11, "p", "0-1-10"))],
            vec![down("p", None), down("r2", Some("p"))],
        );
        let plan = dead_primary(&t, &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.successor, Some(key("r1")));
        has_line(
            &plan,
            "  note: unreachable, not repointed (repoint when they return): r2:3306",
        );
        let t = topology(vec![], vec![down("p", None), down("r2", Some("p"))]);
        let err = dead_primary(&t, &key("p"), &RecoveryOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no candidate to replace p:3306: r2:3306: unreachable"
        );
    }

    #[test]
    fn force_failover_fences_a_reachable_primary() {
        let plan = force_failover(&star(true), &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.kind, PlanKind::ForceFailover);
        assert_eq!(plan.successor, Some(key("r2")));
        assert_eq!(
            steps(&plan)[..6].to_vec(),
            vec![
                "run preFailover hooks",
                "p:3306: kill client connections",
                "p:3306: set read_only=ON",
                "p:3306: lock writes for every account (a global read lock orca holds)",
                "p:3306: kill client connections",
                "r1:3306: stop the replica IO thread",
            ]
        );
        assert_eq!(
            plan.steps[plan.point_of_no_return],
            Step::RecordEpoch { on: key("r2") }
        );
        assert_eq!(plan.point_of_no_return, 12);
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::ChangeSource { on, .. } if on == &key("p")))
        );
        assert_eq!(
            rollback(&plan),
            vec![
                "r1:3306: start replication",
                "r2:3306: start replication",
                "r3:3306: start replication",
                "p:3306: release its write lock",
                "p:3306: set read_only=OFF",
            ]
        );
        has_line(
            &plan,
            "plan: force-failover, replacing p:3306, successor r2:3306",
        );
        has_line(
            &plan,
            "  note: p:3306 is fenced (clients killed, read only, writes locked for every account while orca runs) and left detached",
        );
        // Unreachable: the same as a dead primary, with a warning.
        let plan = force_failover(&star(false), &key("p"), &RecoveryOptions::default()).unwrap();
        let dead = dead_primary(&star(false), &key("p"), &RecoveryOptions::default()).unwrap();
        assert_eq!(plan.steps, dead.steps);
        assert!(plan.notes.iter().any(|n| n.contains("cannot be fenced")));
    }

    #[test]
    fn force_takeover_promotes_the_named_replica() {
        let plan = force_takeover(
            &star(true),
            &key("p"),
            &key("r1"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.kind, PlanKind::ForceTakeover);
        assert_eq!(plan.successor, Some(key("r1")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preFailover hooks",
                "p:3306: kill client connections",
                "p:3306: set read_only=ON",
                "p:3306: lock writes for every account (a global read lock orca holds)",
                "p:3306: kill client connections",
                "r1:3306: wait until it has executed all of p:3306 (at most 10s)",
                "r1:3306: stop the replica IO thread",
                "r2:3306: stop the replica IO thread",
                "r3:3306: stop the replica IO thread",
                "r1:3306: wait until it has executed everything it received (at most 30s)",
                "r1:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "r1:3306: set read_only=OFF",
                "r2:3306: stop replication",
                "r2:3306: replicate from r1:3306 (GTID)",
                "r2:3306: start replication",
                "r3:3306: stop replication",
                "r3:3306: replicate from r1:3306 (GTID)",
                "r3:3306: start replication",
                "r1:3306: stop replication",
                "r1:3306: reset all replication settings",
                "r2:3306: wait until its IO thread has stopped, then replicate through its default connection",
                "r3:3306: wait until its IO thread has stopped, then replicate through its default connection",
                "run postFailover hooks",
            ]
        );
        // r2 is ahead of r1 now, but r1 catches up with p first.
        assert!(plan.lost_replicas.is_empty());
        assert_eq!(plan.point_of_no_return, 10);
        has_line(
            &plan,
            "plan: force-takeover, replacing p:3306, successor r1:3306",
        );

        // Dead primary: no fence, no catch-up; replicas ahead are lost.
        let plan = force_takeover(
            &star(false),
            &key("p"),
            &key("r1"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert_eq!(
            steps(&plan)[..6].to_vec(),
            vec![
                "run preFailover hooks",
                "r1:3306: stop the replica IO thread",
                "r2:3306: stop the replica IO thread",
                "r3:3306: stop the replica IO thread",
                "r1:3306: wait until it has executed everything it received (at most 30s)",
                "r1:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
            ]
        );
        assert_eq!(
            plan.lost_replicas,
            vec![
                (key("r2"), AHEAD.to_string()),
                (key("r3"), AHEAD.to_string())
            ]
        );
        assert_eq!(
            steps(&plan)[6..].to_vec(),
            vec![
                "r1:3306: set read_only=OFF",
                "r1:3306: stop replication",
                "r1:3306: reset all replication settings",
                "r2:3306: stop replication",
                "r3:3306: stop replication",
                "run postFailover hooks",
            ]
        );
    }

    #[test]
    fn force_takeover_refusals() {
        let opts = |rule: PromotionRule| RecoveryOptions {
            candidate: CandidateOptions {
                rules: [(key("r1"), rule)].into(),
                ..CandidateOptions::default()
            },
            ..RecoveryOptions::default()
        };
        let d = RecoveryOptions::default();
        let t = star(true);
        let err =
            force_takeover(&t, &key("p"), &key("r1"), &opts(PromotionRule::MustNot)).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("r1"), Refusal::MustNotPromote(key("r1")))
        );
        assert_eq!(
            err.to_string(),
            "refused for r1:3306: r1:3306 has the promotion rule must_not"
        );
        // prefer_not is honoured on request.
        assert!(force_takeover(&t, &key("p"), &key("r1"), &opts(PromotionRule::PreferNot)).is_ok());
        let err = force_takeover(&t, &key("p"), &key("nope"), &d).unwrap_err();
        assert_eq!(err, PlanError::NotFound(key("nope")));
        let err = force_takeover(&chain(&[]), &key("p"), &key("b"), &d).unwrap_err();
        assert_eq!(err.to_string(), "b:3306 is not a direct replica of p:3306");
        let t = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                r("r1", 11, "p", "0-1-10"),
            ],
            vec![down("r2", Some("p"))],
        );
        let err = force_takeover(&t, &key("p"), &key("r2"), &d).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("r2"), Refusal::Unreachable(key("r2")))
        );
        let t = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                r("r1", 11, "p", "0-1-10,0-11-12"),
            ],
            vec![],
        );
        let err = force_takeover(&t, &key("p"), &key("r1"), &d).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused for r1:3306: r1:3306 has errant GTIDs 0-11-12"
        );
        let mut nolog = r("r1", 11, "p", "0-1-10");
        nolog.log_bin = false;
        let t = topology(vec![with_gtid(mariadb("p", 1), "0-1-10"), nolog], vec![]);
        let err = force_takeover(&t, &key("p"), &key("r1"), &d).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("r1"), Refusal::NoLogBin(key("r1")))
        );
    }

    /// p with replicas s (a sibling of a) and a; a is dead, b replicated
    /// from it.
    fn dead_intermediate(s_pos: &str, b_pos: &str) -> Topology {
        topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("s", 2, "p", s_pos),
                source_gone(r("b", 4, "a", b_pos)),
                source_gone(r("c", 5, "a", b_pos)),
            ],
            vec![down("a", Some("p"))],
        )
    }

    #[test]
    fn dead_intermediate_primary_moves_replicas_under_a_sibling() {
        let plan = dead_intermediate_primary(
            &dead_intermediate("0-1-12", "0-1-11"),
            &key("a"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.kind, PlanKind::RecoverDeadIntermediatePrimary);
        assert_eq!(plan.failed, Some(key("a")));
        assert_eq!(plan.successor, Some(key("s")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preFailover hooks",
                "b:3306: stop replication",
                "b:3306: replicate from s:3306 (GTID)",
                "b:3306: start replication",
                "c:3306: stop replication",
                "c:3306: replicate from s:3306 (GTID)",
                "c:3306: start replication",
                "run postFailover hooks",
            ]
        );
        assert_eq!(plan.point_of_no_return, 2);
        assert_eq!(rollback(&plan), vec!["b:3306: start replication"]);
        has_line(&plan, "  note: b:3306 moves under s:3306");
        has_line(
            &plan,
            "plan: recover-dead-intermediate-primary, replacing a:3306, successor s:3306",
        );
    }

    #[test]
    fn dead_intermediate_primary_falls_back_to_its_source() {
        // The sibling is behind the moving replicas: they go under p.
        let plan = dead_intermediate_primary(
            &dead_intermediate("0-1-10", "0-1-11"),
            &key("a"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.successor, Some(key("p")));
        assert_eq!(
            plan.steps[2].to_string(),
            "b:3306: replicate from p:3306 (GTID)"
        );
        // A must_not sibling is not used as a source.
        let opts = RecoveryOptions {
            candidate: CandidateOptions {
                rules: [(key("s"), PromotionRule::MustNot)].into(),
                ..CandidateOptions::default()
            },
            ..RecoveryOptions::default()
        };
        let plan =
            dead_intermediate_primary(&dead_intermediate("0-1-12", "0-1-11"), &key("a"), &opts)
                .unwrap();
        assert_eq!(plan.successor, Some(key("p")));
    }

    #[test]
    fn dead_intermediate_primary_loses_what_cannot_move() {
        // b has a transaction nobody else has (errant, or ahead of p).
        let plan = dead_intermediate_primary(
            &dead_intermediate("0-1-12", "0-1-13"),
            &key("a"),
            &RecoveryOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.successor, None);
        assert_eq!(plan.lost_replicas.len(), 2);
        assert_eq!(
            plan.lost_replicas[0].1,
            "no legal new source: s:3306: it lacks transactions b:3306 has; p:3306: it lacks transactions b:3306 has"
        );
        assert_eq!(
            steps(&plan),
            vec!["run preFailover hooks", "run postFailover hooks"]
        );
        // Not an intermediate primary.
        let err = dead_intermediate_primary(&chain(&["p"]), &key("p"), &RecoveryOptions::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("not an intermediate primary"),
            "{err}"
        );
    }

    #[test]
    fn dead_intermediate_primary_in_a_chain() {
        // p → a → b(dead) → c: c moves up under a (b has no sibling).
        let plan =
            dead_intermediate_primary(&chain(&["b"]), &key("b"), &RecoveryOptions::default())
                .unwrap();
        assert_eq!(plan.successor, Some(key("a")));
        assert_eq!(
            steps(&plan)[1..4].to_vec(),
            vec![
                "c:3306: stop replication",
                "c:3306: replicate from a:3306 (GTID)",
                "c:3306: start replication",
            ]
        );
    }

    #[test]
    fn options_serialize_in_milliseconds() {
        let json = serde_json::to_value(RecoveryOptions::default()).unwrap();
        assert_eq!(json["relay_apply_timeout"], 30_000);
        assert_eq!(json["catch_up_timeout"], 10_000);
        let back: RecoveryOptions = serde_json::from_value(json).unwrap();
        assert_eq!(back, RecoveryOptions::default());
    }
}
