//! Graceful takeover (switchover): a healthy primary hands its role to one
//! of its direct replicas without losing a write. See "Manual operations"
//! in the domain notes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::candidate::{CandidateOptions, choose_candidate, direct_replicas, join};
use super::error::PlanError;
use super::legality::{Refusal, compatible};
use super::recovery::{millis, promotable_replica};
use super::step::{HookEvent, Plan, PlanKind, SourcePosition, Step};
use crate::topology::{InstanceKey, Snapshot, Topology};

/// Settings of a graceful takeover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverOptions {
    pub candidate: CandidateOptions,
    /// Refuse a target lagging more than this, in milliseconds.
    pub max_lag_ms: u64,
    /// Bound on waiting for the target to execute everything the primary
    /// has once the primary is read only.
    #[serde(with = "millis")]
    pub catch_up_timeout: Duration,
}

impl Default for TakeoverOptions {
    fn default() -> Self {
        TakeoverOptions {
            candidate: CandidateOptions::default(),
            max_lag_ms: 10_000,
            catch_up_timeout: Duration::from_secs(10),
        }
    }
}

/// Hands `primary`'s role to `target`, or to the best replica when
/// `target` is `None`. The primary is made read only and its clients are
/// disconnected, the target catches up with it (bounded), is promoted, its
/// siblings and then the old primary replicate from it. A failure before
/// the target's reset makes the primary writable again.
pub fn graceful_takeover(
    topo: &Topology,
    primary: &InstanceKey,
    target: Option<&InstanceKey>,
    opts: &TakeoverOptions,
) -> Result<Plan, PlanError> {
    let node = topo
        .get(primary)
        .ok_or_else(|| PlanError::not_found(primary))?;
    let old = node
        .snapshot
        .as_ref()
        .ok_or_else(|| PlanError::refused(primary, Refusal::Unreachable(primary.clone())))?;
    if let Some(source) = &node.source {
        return Err(PlanError::Invalid(format!(
            "{primary} replicates from {source}: a graceful takeover replaces a primary"
        )));
    }
    let mut notes = Vec::new();
    let target: &Snapshot = match target {
        Some(t) => check_target(topo, old, t, opts)?,
        None => {
            let (snap, auto_notes) = auto_target(topo, old, opts)?;
            notes = auto_notes;
            snap
        }
    };
    let t = &target.key;
    let (replicas, unreachable) = direct_replicas(topo, primary);

    let mut plan = Plan::new(PlanKind::GracefulTakeover);
    plan.failed = Some(primary.clone());
    plan.successor = Some(t.clone());
    plan.notes = notes;
    plan.steps = vec![
        Step::RunHooks {
            event: HookEvent::PreGracefulTakeover,
        },
        Step::SetReadOnly {
            on: primary.clone(),
            read_only: true,
        },
        Step::KillClientConnections {
            on: primary.clone(),
        },
        Step::WaitCaughtUp {
            on: t.clone(),
            of: primary.clone(),
            timeout: opts.catch_up_timeout,
        },
        Step::StopReplica { on: t.clone() },
    ];
    plan.point_of_no_return = plan.steps.len();
    plan.steps.push(Step::ResetReplicaAll { on: t.clone() });
    plan.steps.push(Step::SetReadOnly {
        on: t.clone(),
        read_only: false,
    });
    for s in replicas.iter().filter(|s| &s.key != t) {
        plan.steps.push(Step::StopReplica { on: s.key.clone() });
        plan.steps.push(Step::ChangeSource {
            on: s.key.clone(),
            source: t.clone(),
            position: SourcePosition::Gtid,
        });
        plan.steps.push(Step::StartReplica { on: s.key.clone() });
    }
    plan.steps.push(Step::ChangeSource {
        on: primary.clone(),
        source: t.clone(),
        position: SourcePosition::Gtid,
    });
    plan.steps.push(Step::StartReplica {
        on: primary.clone(),
    });
    plan.steps.push(Step::RunHooks {
        event: HookEvent::PostGracefulTakeover,
    });
    if !old.is_read_only() {
        plan.rollback.push(Step::SetReadOnly {
            on: primary.clone(),
            read_only: false,
        });
    }
    plan.rollback.push(Step::StartReplica { on: t.clone() });
    plan.notes
        .push(format!("{primary} becomes a read-only replica of {t}"));
    if !unreachable.is_empty() {
        plan.notes.push(format!(
            "unreachable, not repointed (repoint when they return): {}",
            join(&unreachable)
        ));
    }
    Ok(plan)
}

/// A target named by request, checked: a reachable direct replica of the
/// primary, replicating, not must_not, without errant GTIDs, within the
/// lag limit, and one the old primary and its siblings can replicate from.
fn check_target<'a>(
    topo: &'a Topology,
    old: &Snapshot,
    target: &InstanceKey,
    opts: &TakeoverOptions,
) -> Result<&'a Snapshot, PlanError> {
    let snap = promotable_replica(topo, &old.key, target, &opts.candidate)?;
    if !snap.replica.as_ref().is_some_and(|r| r.is_replicating()) {
        return Err(PlanError::refused(
            target,
            Refusal::NotReplicating(target.clone()),
        ));
    }
    if let Some(lag_ms) = topo.get(target).and_then(|n| n.lag_ms)
        && lag_ms > opts.max_lag_ms
    {
        return Err(PlanError::refused(
            target,
            Refusal::Lagging {
                instance: target.clone(),
                lag_ms,
                max_lag_ms: opts.max_lag_ms,
            },
        ));
    }
    compatible(old, snap, false, false).map_err(|r| PlanError::refused(&old.key, r))?;
    let (siblings, _) = direct_replicas(topo, &old.key);
    for s in siblings.iter().filter(|s| &s.key != target) {
        compatible(s, snap, false, false).map_err(|r| PlanError::refused(&s.key, r))?;
    }
    Ok(snap)
}

/// The best target: the candidate choice's ranking, reordered by promotion
/// rule first (progress matters little here: every replica catches up
/// with the read-only primary), the first that passes [`check_target`].
fn auto_target<'a>(
    topo: &'a Topology,
    old: &Snapshot,
    opts: &TakeoverOptions,
) -> Result<(&'a Snapshot, Vec<String>), PlanError> {
    let mut candidate = opts.candidate.clone();
    candidate.max_lag_ms = Some(
        candidate
            .max_lag_ms
            .map_or(opts.max_lag_ms, |m| m.min(opts.max_lag_ms)),
    );
    candidate.semi_sync = false;
    let choice = choose_candidate(topo, &old.key, &candidate)?;
    let mut order: Vec<&InstanceKey> = std::iter::once(&choice.chosen)
        .chain(choice.ranking.iter().filter(|k| **k != choice.chosen))
        .collect();
    order.sort_by_key(|k| candidate.rule(k));
    let mut reasons = choice.excluded.clone();
    for k in order {
        match check_target(topo, old, k, opts) {
            Ok(snap) => {
                let mut notes = vec![format!(
                    "{k} chosen as the best replica able to take over (ranking: {})",
                    join(&choice.ranking)
                )];
                notes.extend(
                    reasons
                        .iter()
                        .map(|(r, why)| format!("{r} set aside: {why}")),
                );
                return Ok((snap, notes));
            }
            Err(e) => reasons.push((k.clone(), e.to_string())),
        }
    }
    Err(PlanError::NoCandidate {
        failed: old.key.clone(),
        reasons,
    })
}
