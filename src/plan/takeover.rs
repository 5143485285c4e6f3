//! Graceful takeover (switchover): a healthy primary hands its role to one
//! of its direct replicas without losing a write. See "Manual operations"
//! in the domain notes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::candidate::{CandidateOptions, choose_candidate, direct_replicas, join};
use super::error::PlanError;
use super::legality::{Refusal, compatible};
use super::recovery::{millis, promotable_replica};
use super::step::{HookEvent, Plan, PlanKind, SourcePosition, Step, fence_steps, unfence_steps};
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
/// `target` is `None`. The primary's clients are disconnected, it is made
/// read only and clients that came meanwhile are disconnected, the target catches up with it (bounded), is promoted, its
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
    plan.steps = vec![Step::RunHooks {
        event: HookEvent::PreGracefulTakeover,
    }];
    // Fenced for every account until it replicates from the target.
    plan.steps.extend(fence_steps(primary));
    plan.steps.extend([
        Step::WaitCaughtUp {
            on: t.clone(),
            of: primary.clone(),
            timeout: opts.catch_up_timeout,
        },
        Step::StopReplica { on: t.clone() },
    ]);
    plan.point_of_no_return = plan.steps.len();
    plan.steps.push(Step::ResetReplicaAll { on: t.clone() });
    // The epoch before the target can take writes, and before semi-sync:
    // with its primary side on and no replica yet, the write would wait
    // for an acknowledgement nobody sends.
    plan.steps.push(Step::RecordEpoch { on: t.clone() });
    // Semi-sync before writes: no write acknowledged without a replica.
    let semi_sync = old.semi_sync.primary_enabled;
    if semi_sync {
        plan.steps.push(Step::SetSemiSyncPrimary {
            on: t.clone(),
            enabled: true,
            wait_count: old.semi_sync.wait_count.max(1),
        });
    }
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
    if semi_sync {
        plan.steps.push(Step::SetSemiSyncPrimary {
            on: primary.clone(),
            enabled: false,
            wait_count: old.semi_sync.wait_count.max(1),
        });
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
    plan.rollback.extend(unfence_steps(old));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::candidate::PromotionRule;
    use crate::topology::testing::{
        down, key, mariadb, replica_of, topology, with_gtid, with_version,
    };

    fn r(host: &str, id: u32, source: &str, pos: &str) -> Snapshot {
        with_gtid(replica_of(host, id, source), pos)
    }

    fn star_with(change: impl Fn(&mut Snapshot)) -> Topology {
        let mut snaps = vec![
            with_gtid(mariadb("p", 1), "0-1-12"),
            r("r1", 11, "p", "0-1-10"),
            r("r2", 12, "p", "0-1-12"),
            r("r3", 13, "p", "0-1-11"),
        ];
        snaps.iter_mut().for_each(change);
        topology(snaps, vec![])
    }

    fn star() -> Topology {
        star_with(|_| {})
    }

    fn steps(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.to_string()).collect()
    }

    fn has_line(plan: &Plan, line: &str) {
        let text = plan.to_string();
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }

    fn rules(list: &[(&str, PromotionRule)]) -> TakeoverOptions {
        TakeoverOptions {
            candidate: CandidateOptions {
                rules: list.iter().map(|(h, r)| (key(h), *r)).collect(),
                ..CandidateOptions::default()
            },
            ..TakeoverOptions::default()
        }
    }

    #[test]
    fn graceful_takeover_to_a_named_replica() {
        let plan = graceful_takeover(
            &star(),
            &key("p"),
            Some(&key("r1")),
            &TakeoverOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.kind, PlanKind::GracefulTakeover);
        assert_eq!(plan.failed, Some(key("p")));
        assert_eq!(plan.successor, Some(key("r1")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preGracefulTakeover hooks",
                "p:3306: kill client connections",
                "p:3306: set read_only=ON",
                "p:3306: lock writes for every account (a global read lock orca holds)",
                "p:3306: kill client connections",
                "r1:3306: wait until it has executed all of p:3306 (at most 10s)",
                "r1:3306: stop replication",
                "r1:3306: reset all replication settings",
                "r1:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "r1:3306: set read_only=OFF",
                "r2:3306: stop replication",
                "r2:3306: replicate from r1:3306 (GTID)",
                "r2:3306: start replication",
                "r3:3306: stop replication",
                "r3:3306: replicate from r1:3306 (GTID)",
                "r3:3306: start replication",
                "p:3306: replicate from r1:3306 (GTID)",
                "p:3306: start replication",
                "run postGracefulTakeover hooks",
            ]
        );
        assert_eq!(plan.point_of_no_return, 7);
        assert_eq!(
            plan.rollback,
            vec![
                Step::UnlockWrites { on: key("p") },
                Step::SetReadOnly {
                    on: key("p"),
                    read_only: false
                },
                Step::StartReplica { on: key("r1") },
            ]
        );
        assert!(plan.lost_replicas.is_empty());
        has_line(
            &plan,
            "plan: graceful-takeover, replacing p:3306, successor r1:3306",
        );
        has_line(&plan, "   7. r1:3306: stop replication (undone on failure)");
        has_line(&plan, "   8. r1:3306: reset all replication settings");
        has_line(&plan, "  on failure before step 8:");
        has_line(&plan, "      - p:3306: release its write lock");
        has_line(&plan, "      - p:3306: set read_only=OFF");
        has_line(&plan, "      - r1:3306: start replication");
        has_line(
            &plan,
            "  note: p:3306 becomes a read-only replica of r1:3306",
        );
    }

    #[test]
    fn the_target_records_the_epoch_before_writes() {
        let semi = star_with(|s| {
            s.semi_sync.primary_enabled = !s.is_replica();
            s.semi_sync.replica_enabled = s.is_replica();
        });
        let d = TakeoverOptions::default();
        let cases: Vec<(&str, Plan)> = vec![
            (
                "named target",
                graceful_takeover(&star(), &key("p"), Some(&key("r1")), &d).unwrap(),
            ),
            (
                "best target",
                graceful_takeover(&star(), &key("p"), None, &d).unwrap(),
            ),
            (
                "semi-sync",
                graceful_takeover(&semi, &key("p"), Some(&key("r3")), &d).unwrap(),
            ),
        ];
        for (name, plan) in cases {
            assert_eq!(
                crate::plan::step::check_epoch_placement(&plan),
                Ok(()),
                "{name}:\n{plan}"
            );
        }
        let plan = graceful_takeover(&semi, &key("p"), Some(&key("r3")), &d).unwrap();
        let texts = steps(&plan);
        assert_eq!(
            texts[7..10].to_vec(),
            vec![
                "r3:3306: reset all replication settings",
                "r3:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "r3:3306: semi-sync primary side ON (waits for 1 acknowledgement)",
            ],
            "{plan}"
        );
    }

    #[test]
    fn graceful_takeover_in_a_chain() {
        // p → a → b → c: a is p's only replica; b and c follow a.
        let t = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                r("a", 2, "p", "0-1-10"),
                r("b", 3, "a", "0-1-10"),
                r("c", 4, "b", "0-1-10"),
            ],
            vec![],
        );
        let plan = graceful_takeover(&t, &key("p"), None, &TakeoverOptions::default()).unwrap();
        assert_eq!(plan.successor, Some(key("a")));
        assert_eq!(
            steps(&plan),
            vec![
                "run preGracefulTakeover hooks",
                "p:3306: kill client connections",
                "p:3306: set read_only=ON",
                "p:3306: lock writes for every account (a global read lock orca holds)",
                "p:3306: kill client connections",
                "a:3306: wait until it has executed all of p:3306 (at most 10s)",
                "a:3306: stop replication",
                "a:3306: reset all replication settings",
                "a:3306: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)",
                "a:3306: set read_only=OFF",
                "p:3306: replicate from a:3306 (GTID)",
                "p:3306: start replication",
                "run postGracefulTakeover hooks",
            ]
        );
        let err = graceful_takeover(&t, &key("a"), None, &TakeoverOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("a:3306 replicates from p:3306"),
            "{err}"
        );
        let err = graceful_takeover(&t, &key("p"), Some(&key("b")), &TakeoverOptions::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "b:3306 is not a direct replica of p:3306");
    }

    #[test]
    fn auto_target_follows_rules_then_ranking() {
        let d = TakeoverOptions::default();
        // Ranking: r2 (most advanced), r3, r1.
        let plan = graceful_takeover(&star(), &key("p"), None, &d).unwrap();
        assert_eq!(plan.successor, Some(key("r2")));
        assert!(plan.notes[0].starts_with("r2:3306 chosen as the best replica able to take over"));
        // A prefer rule wins over progress: every replica catches up.
        let plan = graceful_takeover(
            &star(),
            &key("p"),
            None,
            &rules(&[("r1", PromotionRule::Prefer)]),
        )
        .unwrap();
        assert_eq!(plan.successor, Some(key("r1")));
        // prefer_not goes last; must_not never.
        let plan = graceful_takeover(
            &star(),
            &key("p"),
            None,
            &rules(&[
                ("r2", PromotionRule::PreferNot),
                ("r3", PromotionRule::MustNot),
            ]),
        )
        .unwrap();
        assert_eq!(plan.successor, Some(key("r1")));
        // A replica that is not replicating is skipped.
        let t = star_with(|s| {
            if s.key == key("r2")
                && let Some(c) = s.replica.as_mut()
            {
                c.sql_running = false;
            }
        });
        let plan = graceful_takeover(&t, &key("p"), None, &d).unwrap();
        assert_eq!(plan.successor, Some(key("r3")));
        assert!(
            plan.notes.iter().any(|n| n
                .contains("r2:3306 set aside: refused for r2:3306: r2:3306 is not replicating")),
            "{:?}",
            plan.notes
        );
        // Nobody fits.
        let err = graceful_takeover(
            &star(),
            &key("p"),
            None,
            &rules(&[
                ("r1", PromotionRule::MustNot),
                ("r2", PromotionRule::MustNot),
                ("r3", PromotionRule::MustNot),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(err, PlanError::NoCandidate { ref reasons, .. } if reasons.len() == 3),
            "{err}"
        );
    }

    #[test]
    fn named_target_refusals() {
        let d = TakeoverOptions::default();
        let lagging = star_with(|s| {
            if s.key == key("r1")
                && let Some(c) = s.replica.as_mut()
            {
                c.seconds_behind = Some(25);
            }
        });
        let stopped = star_with(|s| {
            if s.key == key("r1")
                && let Some(c) = s.replica.as_mut()
            {
                c.io_running = crate::topology::instance::IoThreadState::Connecting;
            }
        });
        let newer = star_with(|s| {
            if s.key == key("r1") {
                *s = with_version(s.clone(), "11.4.2-MariaDB");
            }
        });
        let sibling_older = star_with(|s| {
            if s.key == key("r3") {
                *s = with_version(s.clone(), "10.6.16-MariaDB");
            }
        });
        let errant = star_with(|s| {
            if s.key == key("r1") {
                *s = with_gtid(s.clone(), "0-1-10,0-11-11");
            }
        });
        let cases: Vec<(&str, Topology, TakeoverOptions, PlanError)> = vec![
            (
                "lagging",
                lagging.clone(),
                d.clone(),
                PlanError::refused(
                    &key("r1"),
                    Refusal::Lagging {
                        instance: key("r1"),
                        lag_ms: 25_000,
                        max_lag_ms: 10_000,
                    },
                ),
            ),
            (
                "not replicating",
                stopped,
                d.clone(),
                PlanError::refused(&key("r1"), Refusal::NotReplicating(key("r1"))),
            ),
            (
                "must_not",
                star(),
                rules(&[("r1", PromotionRule::MustNot)]),
                PlanError::refused(&key("r1"), Refusal::MustNotPromote(key("r1"))),
            ),
            (
                "errant",
                errant,
                d.clone(),
                PlanError::refused(
                    &key("r1"),
                    Refusal::ErrantGtids {
                        instance: key("r1"),
                        errant: "0-11-11".into(),
                    },
                ),
            ),
            (
                "the old primary could not replicate from a newer target",
                newer,
                d.clone(),
                PlanError::refused(
                    &key("p"),
                    Refusal::NewerVersion {
                        replica: key("p"),
                        replica_version: "10.11".into(),
                        from: key("r1"),
                        source_version: "11.4".into(),
                    },
                ),
            ),
            (
                "a sibling could not replicate from the target",
                sibling_older,
                d.clone(),
                PlanError::refused(
                    &key("r3"),
                    Refusal::NewerVersion {
                        replica: key("r3"),
                        replica_version: "10.6".into(),
                        from: key("r1"),
                        source_version: "10.11".into(),
                    },
                ),
            ),
            ("unknown", star(), d.clone(), PlanError::NotFound(key("zz"))),
        ];
        for (name, t, opts, want) in cases {
            let target = if name == "unknown" {
                key("zz")
            } else {
                key("r1")
            };
            let got = graceful_takeover(&t, &key("p"), Some(&target), &opts);
            assert_eq!(got, Err(want), "{name}");
        }
        // A looser lag limit accepts the lagging replica.
        let loose = TakeoverOptions {
            max_lag_ms: 30_000,
            ..TakeoverOptions::default()
        };
        assert!(graceful_takeover(&lagging, &key("p"), Some(&key("r1")), &loose).is_ok());
        // An unreachable primary is no graceful takeover.
        let t = topology(vec![r("r1", 11, "p", "0-1-10")], vec![down("p", None)]);
        let err = graceful_takeover(&t, &key("p"), Some(&key("r1")), &d).unwrap_err();
        assert_eq!(
            err,
            PlanError::refused(&key("p"), Refusal::Unreachable(key("p")))
        );
    }

    #[test]
    fn read_only_primary_is_not_made_writable_on_rollback() {
        let t = star_with(|s| {
            if s.key == key("p") {
                s.read_only = true;
            }
        });
        let plan = graceful_takeover(&t, &key("p"), Some(&key("r2")), &TakeoverOptions::default())
            .unwrap();
        // Its write lock released, nothing more.
        assert_eq!(
            plan.rollback,
            vec![
                Step::UnlockWrites { on: key("p") },
                Step::StartReplica { on: key("r2") }
            ]
        );
    }
}
