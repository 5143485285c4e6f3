//! What a round does about the cluster's operation annotations and its
//! primary's pod, decided from them alone. Pure.
//!
//! `Worker::operations` (operations.rs) runs it: the malformed
//! annotations reported and removed first; a primary whose pod goes away
//! (deleted, or scaled away) handed over before anything else, once per
//! departure of its pod ([`still_handed_over`]), to a pod that stays; otherwise the acknowledgement, then
//! at most one operation an annotation asks for (the others wait for the
//! next rounds). The shell runs what [`decide`] returns.

use std::collections::{BTreeMap, BTreeSet};

use super::PodView;
use crate::k8s::annotations::{self, Malformed, Request};
use crate::k8s::crd::names::annotation;

/// Why the primary's pod goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaving {
    /// Its deletion timestamp is set (deleted, evicted, drained).
    Deleted,
    /// Its ordinal is at or beyond `spec.replicas`.
    ScaledAway,
}

impl Leaving {
    /// For Events: "the primary db-0 {is being deleted}".
    pub(super) fn describe(self) -> &'static str {
        match self {
            Leaving::Deleted => "is being deleted",
            Leaving::ScaledAway => "is scaled away",
        }
    }
}

/// The operation of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Operation {
    /// A graceful takeover from `primary`, whose pod goes away, to the best
    /// pod that is not in `excluded` (every pod going away, the primary's
    /// included); the primary is not repointed (its next incarnation joins
    /// as a replica).
    HandOver {
        primary: String,
        why: Leaving,
        excluded: Vec<String>,
    },
    /// `orca.dev/graceful-takeover`: to this pod, or the best (`None`).
    GracefulTakeover { to: Option<String> },
    /// `orca.dev/force-failover`.
    ForceFailover,
    /// `orca.dev/force-takeover`: promote this pod.
    ForceTakeover { to: String },
    /// `orca.dev/recover`.
    Recover,
    /// `orca.dev/operation`: on these pods.
    Other {
        kind: crate::plan::operation::OperationKind,
        target: String,
        destination: Option<String>,
    },
}

impl Operation {
    /// The annotation to remove once the operation ran (none for a hand
    /// over, which no annotation asked for).
    pub(super) fn annotation(&self) -> Option<&'static str> {
        match self {
            Operation::HandOver { .. } => None,
            Operation::GracefulTakeover { .. } => Some(annotation::GRACEFUL_TAKEOVER),
            Operation::ForceFailover => Some(annotation::FORCE_FAILOVER),
            Operation::ForceTakeover { .. } => Some(annotation::FORCE_TAKEOVER),
            Operation::Recover => Some(annotation::RECOVER),
            Operation::Other { .. } => Some(annotation::OPERATION),
        }
    }
}

/// What the round does, in this order: report (Event, Degraded
/// condition) and remove `malformed`; acknowledge the last recovery (and
/// remove its annotation) when `acknowledge`; run `operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Decision {
    pub malformed: Vec<Malformed>,
    pub acknowledge: bool,
    pub operation: Option<Operation>,
}

/// Whether `pod` goes away, and why: deleted, or beyond `replicas`.
fn leaving(pod: &PodView, replicas: i32) -> Option<Leaving> {
    if pod.deleting {
        Some(Leaving::Deleted)
    } else if pod
        .ordinal
        .is_some_and(|o| i64::from(o) >= i64::from(replicas))
    {
        Some(Leaving::ScaledAway)
    } else {
        None
    }
}

/// The primary pods still to count as handed over: only the current
/// `primary`, while its pod goes away. Once another pod is primary, or the
/// primary's pod stays (a new incarnation of it, primary again), its
/// hand over is over, and the next time its pod goes away it is handed
/// over again.
pub(super) fn still_handed_over(
    handed_over: &BTreeSet<String>,
    pods: &[PodView],
    primary: Option<&str>,
    replicas: i32,
) -> BTreeSet<String> {
    let leaving_primary = primary.filter(|n| {
        pods.iter()
            .find(|p| p.name == *n)
            .is_some_and(|p| leaving(p, replicas).is_some())
    });
    handed_over
        .iter()
        .filter(|n| Some(n.as_str()) == leaving_primary)
        .cloned()
        .collect()
}

/// The round's decision from the cluster's `annotations`, its `pods`, the
/// `primary` pod of its status, `spec.replicas` and the primary pods
/// already handed over (`handed_over`: a pod is handed over once, however
/// long its deletion takes). A hand over comes first and defers every
/// request, the acknowledgement included, to a later round.
pub(super) fn decide(
    annotations: &BTreeMap<String, String>,
    pods: &[PodView],
    primary: Option<&str>,
    replicas: i32,
    handed_over: &BTreeSet<String>,
) -> Decision {
    let (requests, malformed) = annotations::requests(annotations);
    let primary_pod = primary.and_then(|n| pods.iter().find(|p| p.name == n));
    if let Some(p) = primary_pod
        && let Some(why) = leaving(p, replicas)
        && !handed_over.contains(&p.name)
    {
        let excluded = pods
            .iter()
            .filter(|q| leaving(q, replicas).is_some())
            .map(|q| q.name.clone())
            .collect();
        return Decision {
            malformed,
            acknowledge: false,
            operation: Some(Operation::HandOver {
                primary: p.name.clone(),
                why,
                excluded,
            }),
        };
    }
    let acknowledge = requests.contains(&Request::Acknowledge);
    let operation = requests.into_iter().find_map(|r| match r {
        Request::Acknowledge => None,
        Request::GracefulTakeover { to } => Some(Operation::GracefulTakeover { to }),
        Request::ForceFailover => Some(Operation::ForceFailover),
        Request::ForceTakeover { to } => Some(Operation::ForceTakeover { to }),
        Request::Recover => Some(Operation::Recover),
        Request::Operation {
            kind,
            target,
            destination,
        } => Some(Operation::Other {
            kind,
            target,
            destination,
        }),
    });
    Decision {
        malformed,
        acknowledge,
        operation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::InstanceKey;

    fn pod(name: &str) -> PodView {
        PodView {
            name: name.into(),
            ordinal: crate::k8s::ordinal::pod_ordinal("db", name),
            key: Some(InstanceKey::new(name, 3306)),
            ready: true,
            deleting: false,
            restarting: false,
            role_label: None,
            annotations: BTreeMap::new(),
            facts: Default::default(),
        }
    }

    fn deleting(name: &str) -> PodView {
        let mut p = pod(name);
        p.deleting = true;
        p
    }

    fn annotated(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn what_a_round_does() {
        let three = || vec![pod("db-0"), pod("db-1"), pod("db-2")];
        let hand_over = |primary: &str, why: Leaving, excluded: &[&str]| {
            Some(Operation::HandOver {
                primary: primary.into(),
                why,
                excluded: names(excluded),
            })
        };
        // (case, annotations, pods, primary, spec.replicas, handed over,
        //  acknowledge, operation, malformed annotations)
        type Case = (
            &'static str,
            Vec<(&'static str, &'static str)>,
            Vec<PodView>,
            Option<&'static str>,
            i32,
            Vec<&'static str>,
            bool,
            Option<Operation>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing asked, nothing leaving",
                vec![],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                None,
                vec![],
            ),
            (
                "a graceful takeover to a pod",
                vec![(annotation::GRACEFUL_TAKEOVER, "db-1")],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::GracefulTakeover {
                    to: Some("db-1".into()),
                }),
                vec![],
            ),
            (
                "a graceful takeover to the best pod",
                vec![(annotation::GRACEFUL_TAKEOVER, "auto")],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::GracefulTakeover { to: None }),
                vec![],
            ),
            (
                "a force failover",
                vec![(annotation::FORCE_FAILOVER, "true")],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::ForceFailover),
                vec![],
            ),
            (
                "a force takeover to a pod",
                vec![(annotation::FORCE_TAKEOVER, "db-2")],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::ForceTakeover { to: "db-2".into() }),
                vec![],
            ),
            (
                "a recovery",
                vec![(annotation::RECOVER, "TRUE")],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::Recover),
                vec![],
            ),
            (
                "an acknowledgement alone",
                vec![(annotation::ACKNOWLEDGE, "")],
                three(),
                Some("db-0"),
                3,
                vec![],
                true,
                None,
                vec![],
            ),
            (
                "an acknowledgement and an operation, in one round",
                vec![
                    (annotation::ACKNOWLEDGE, "yes"),
                    (annotation::FORCE_FAILOVER, "true"),
                ],
                three(),
                Some("db-0"),
                3,
                vec![],
                true,
                Some(Operation::ForceFailover),
                vec![],
            ),
            (
                "two operations: the first in orca's order, the other waits",
                vec![
                    (annotation::RECOVER, "true"),
                    (annotation::GRACEFUL_TAKEOVER, "auto"),
                ],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::GracefulTakeover { to: None }),
                vec![],
            ),
            (
                "malformed annotations are reported, a good one still runs",
                vec![
                    (annotation::FORCE_FAILOVER, "yes"),
                    (annotation::FORCE_TAKEOVER, "DB_1"),
                    (annotation::GRACEFUL_TAKEOVER, "db-2"),
                ],
                three(),
                Some("db-0"),
                3,
                vec![],
                false,
                Some(Operation::GracefulTakeover {
                    to: Some("db-2".into()),
                }),
                vec![annotation::FORCE_FAILOVER, annotation::FORCE_TAKEOVER],
            ),
            (
                "the primary's pod deleted: handed over, every leaving pod excluded",
                vec![],
                vec![deleting("db-0"), pod("db-1"), deleting("db-2")],
                Some("db-0"),
                3,
                vec![],
                false,
                hand_over("db-0", Leaving::Deleted, &["db-0", "db-2"]),
                vec![],
            ),
            (
                "the primary scaled away: handed over, the pods beyond excluded",
                vec![],
                vec![pod("db-0"), pod("db-1"), pod("db-2")],
                Some("db-2"),
                2,
                vec![],
                false,
                hand_over("db-2", Leaving::ScaledAway, &["db-2"]),
                vec![],
            ),
            (
                "scaled to one: only pod 0 stays",
                vec![],
                three(),
                Some("db-1"),
                1,
                vec![],
                false,
                hand_over("db-1", Leaving::ScaledAway, &["db-1", "db-2"]),
                vec![],
            ),
            (
                "a hand over defers the requests, malformed ones are still reported",
                vec![
                    (annotation::ACKNOWLEDGE, ""),
                    (annotation::FORCE_FAILOVER, "true"),
                    (annotation::RECOVER, "maybe"),
                ],
                vec![deleting("db-0"), pod("db-1"), pod("db-2")],
                Some("db-0"),
                3,
                vec![],
                false,
                hand_over("db-0", Leaving::Deleted, &["db-0"]),
                vec![annotation::RECOVER],
            ),
            (
                "already handed over: not again, the requests run",
                vec![(annotation::FORCE_FAILOVER, "true")],
                vec![deleting("db-0"), pod("db-1"), pod("db-2")],
                Some("db-0"),
                3,
                vec!["db-0"],
                false,
                Some(Operation::ForceFailover),
                vec![],
            ),
            (
                "a replica's pod deleted is no hand over",
                vec![],
                vec![pod("db-0"), deleting("db-1"), pod("db-2")],
                Some("db-0"),
                3,
                vec![],
                false,
                None,
                vec![],
            ),
            (
                "another pod handed over earlier does not stop this one",
                vec![],
                vec![deleting("db-1"), pod("db-0"), pod("db-2")],
                Some("db-1"),
                3,
                vec!["db-0"],
                false,
                hand_over("db-1", Leaving::Deleted, &["db-1"]),
                vec![],
            ),
            (
                "no primary: the requests run (and the shell refuses what needs one)",
                vec![(annotation::GRACEFUL_TAKEOVER, "auto")],
                three(),
                None,
                3,
                vec![],
                false,
                Some(Operation::GracefulTakeover { to: None }),
                vec![],
            ),
            (
                "a primary with no pod is no hand over",
                vec![],
                three(),
                Some("db-9"),
                3,
                vec![],
                false,
                None,
                vec![],
            ),
        ];
        for (name, ann, pods, primary, replicas, handed, ack, op, bad) in cases {
            let handed: BTreeSet<String> = handed.iter().map(|s| s.to_string()).collect();
            let d = decide(&annotated(&ann), &pods, primary, replicas, &handed);
            assert_eq!(d.acknowledge, ack, "{name}");
            assert_eq!(d.operation, op, "{name}");
            let got: Vec<&str> = d.malformed.iter().map(|m| m.annotation.as_str()).collect();
            assert_eq!(got, bad, "{name}");
        }
    }

    #[test]
    fn a_hand_over_lasts_while_the_primary_pod_goes_away() {
        let three = || vec![pod("db-0"), pod("db-1"), pod("db-2")];
        // (case, handed over, pods, primary, spec.replicas, still handed over)
        type Case = (
            &'static str,
            Vec<&'static str>,
            Vec<PodView>,
            Option<&'static str>,
            i32,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing handed over",
                vec![],
                three(),
                Some("db-0"),
                3,
                vec![],
            ),
            (
                "the primary's pod still being deleted: kept",
                vec!["db-0"],
                vec![deleting("db-0"), pod("db-1"), pod("db-2")],
                Some("db-0"),
                3,
                vec!["db-0"],
            ),
            (
                "the primary still scaled away: kept",
                vec!["db-2"],
                three(),
                Some("db-2"),
                2,
                vec!["db-2"],
            ),
            (
                "another pod is primary: forgotten",
                vec!["db-0"],
                vec![deleting("db-0"), pod("db-1"), pod("db-2")],
                Some("db-1"),
                3,
                vec![],
            ),
            (
                "the pod is back and primary again: forgotten",
                vec!["db-0"],
                three(),
                Some("db-0"),
                3,
                vec![],
            ),
            (
                "a primary without a pod: forgotten",
                vec!["db-0"],
                vec![pod("db-1")],
                Some("db-0"),
                3,
                vec![],
            ),
            (
                "no primary: forgotten",
                vec!["db-0", "db-1"],
                vec![deleting("db-0"), pod("db-1")],
                None,
                3,
                vec![],
            ),
            (
                "only the leaving primary's entry stays",
                vec!["db-0", "db-1"],
                vec![pod("db-0"), deleting("db-1"), pod("db-2")],
                Some("db-1"),
                3,
                vec!["db-1"],
            ),
        ];
        for (name, handed, pods, primary, replicas, want) in cases {
            let handed: BTreeSet<String> = handed.iter().map(|s| s.to_string()).collect();
            let got = still_handed_over(&handed, &pods, primary, replicas);
            let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_primary_pod_deleted_again_is_handed_over_again() {
        // db-0 deleted and handed over to db-1; back, primary again (a
        // takeover), deleted again: handed over a second time.
        let mut handed = BTreeSet::new();
        let gone = vec![deleting("db-0"), pod("db-1"), pod("db-2")];
        let d = decide(&BTreeMap::new(), &gone, Some("db-0"), 3, &handed);
        assert!(matches!(d.operation, Some(Operation::HandOver { .. })));
        handed.insert("db-0".to_string());
        for (pods, primary) in [
            (gone.clone(), "db-1"),
            (vec![pod("db-0"), pod("db-1"), pod("db-2")], "db-1"),
            (vec![pod("db-0"), pod("db-1"), pod("db-2")], "db-0"),
        ] {
            handed = still_handed_over(&handed, &pods, Some(primary), 3);
        }
        let d = decide(&BTreeMap::new(), &gone, Some("db-0"), 3, &handed);
        assert_eq!(
            d.operation,
            Some(Operation::HandOver {
                primary: "db-0".into(),
                why: Leaving::Deleted,
                excluded: names(&["db-0"]),
            })
        );
    }

    #[test]
    fn operations_name_the_annotation_to_remove() {
        let cases = [
            (
                Operation::HandOver {
                    primary: "db-0".into(),
                    why: Leaving::Deleted,
                    excluded: vec![],
                },
                None,
            ),
            (
                Operation::GracefulTakeover { to: None },
                Some(annotation::GRACEFUL_TAKEOVER),
            ),
            (Operation::ForceFailover, Some(annotation::FORCE_FAILOVER)),
            (
                Operation::ForceTakeover { to: "db-1".into() },
                Some(annotation::FORCE_TAKEOVER),
            ),
            (Operation::Recover, Some(annotation::RECOVER)),
        ];
        for (op, want) in cases {
            assert_eq!(op.annotation(), want, "{op:?}");
        }
        assert_eq!(Leaving::Deleted.describe(), "is being deleted");
        assert_eq!(Leaving::ScaledAway.describe(), "is scaled away");
    }
}
