//! Operations asked for with annotations on a `MySQLCluster`, and the
//! per-pod annotations orca reads. Pure: parsing and validation only.

use std::collections::BTreeMap;

use super::crd::names::annotation;
use crate::plan::candidate::PromotionRule;
use crate::plan::operation::OperationKind;

/// One operation asked for on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Hand the primary role to this pod, or to the best one (`None`).
    GracefulTakeover { to: Option<String> },
    /// Treat the primary as dead now.
    ForceFailover,
    /// Promote this pod, discarding the primary.
    ForceTakeover { to: String },
    /// Recover the failure found now, even with automatic failover off or
    /// within the anti-flap period.
    Recover,
    /// Acknowledge the last recovery.
    Acknowledge,
    /// Any other operation planned from the topology, on pods.
    Operation {
        kind: OperationKind,
        target: String,
        destination: Option<String>,
    },
}

impl Request {
    /// The annotation that asked for it.
    pub fn annotation(&self) -> &'static str {
        match self {
            Request::GracefulTakeover { .. } => annotation::GRACEFUL_TAKEOVER,
            Request::ForceFailover => annotation::FORCE_FAILOVER,
            Request::ForceTakeover { .. } => annotation::FORCE_TAKEOVER,
            Request::Recover => annotation::RECOVER,
            Request::Acknowledge => annotation::ACKNOWLEDGE,
            Request::Operation { .. } => annotation::OPERATION,
        }
    }

    /// The annotation asking for it and its value, as [`requests`] reads
    /// them back; `comment` is an acknowledgement's value.
    pub fn as_annotation(&self, comment: Option<&str>) -> (&'static str, String) {
        let value = match self {
            Request::GracefulTakeover { to } => to.clone().unwrap_or_else(|| "auto".into()),
            Request::ForceFailover | Request::Recover => "true".into(),
            Request::ForceTakeover { to } => to.clone(),
            Request::Acknowledge => comment.unwrap_or("true").to_string(),
            Request::Operation {
                kind,
                target,
                destination,
            } => match destination {
                Some(d) => format!("{kind} {target} {d}"),
                None => format!("{kind} {target}"),
            },
        };
        (self.annotation(), value)
    }
}

/// An annotation orca cannot act on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub annotation: String,
    pub value: String,
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "annotation {}={:?} rejected: {}",
            self.annotation, self.value, self.reason
        )
    }
}

fn is_pod_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

fn truthy(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

/// The operations the annotations ask for, in the order orca takes them
/// (acknowledge first, then at most one operation), and the malformed
/// ones.
pub fn requests(annotations: &BTreeMap<String, String>) -> (Vec<Request>, Vec<Malformed>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut reject = |a: &str, v: &str, reason: &str| {
        bad.push(Malformed {
            annotation: a.to_string(),
            value: v.to_string(),
            reason: reason.to_string(),
        })
    };
    if annotations.contains_key(annotation::ACKNOWLEDGE) {
        ok.push(Request::Acknowledge);
    }
    if let Some(v) = annotations.get(annotation::GRACEFUL_TAKEOVER) {
        match v.trim() {
            "auto" => ok.push(Request::GracefulTakeover { to: None }),
            pod if is_pod_name(pod) => ok.push(Request::GracefulTakeover {
                to: Some(pod.to_string()),
            }),
            _ => reject(
                annotation::GRACEFUL_TAKEOVER,
                v,
                "expected a pod name or \"auto\"",
            ),
        }
    }
    if let Some(v) = annotations.get(annotation::FORCE_FAILOVER) {
        if truthy(v) {
            ok.push(Request::ForceFailover);
        } else {
            reject(annotation::FORCE_FAILOVER, v, "expected \"true\"");
        }
    }
    if let Some(v) = annotations.get(annotation::FORCE_TAKEOVER) {
        if is_pod_name(v.trim()) {
            ok.push(Request::ForceTakeover {
                to: v.trim().to_string(),
            });
        } else {
            reject(annotation::FORCE_TAKEOVER, v, "expected a pod name");
        }
    }
    if let Some(v) = annotations.get(annotation::RECOVER) {
        if truthy(v) {
            ok.push(Request::Recover);
        } else {
            reject(annotation::RECOVER, v, "expected \"true\"");
        }
    }
    if let Some(v) = annotations.get(annotation::OPERATION) {
        match operation(v) {
            Ok(r) => ok.push(r),
            Err(why) => reject(annotation::OPERATION, v, &why),
        }
    }
    (ok, bad)
}

/// `<kind> <pod> [<pod>]`: an operation of its own annotation is refused
/// here (it has one), as are the kinds that are not plans.
fn operation(v: &str) -> Result<Request, String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    let (kind, target, destination) = match words.as_slice() {
        [k, t] => (*k, *t, None),
        [k, t, d] => (*k, *t, Some(*d)),
        _ => return Err("expected <kind> <pod> [<pod>]".into()),
    };
    let kind: OperationKind = kind.parse()?;
    if !kind.is_plan() || !kind.needs_target() || kind == OperationKind::ForceTakeover {
        return Err(format!(
            "{kind} is not asked with this annotation (see orca.dev/graceful-takeover, force-failover, force-takeover, recover, acknowledge; a downtime is a pod's orca.dev/downtime)"
        ));
    }
    if !is_pod_name(target) || destination.is_some_and(|d| !is_pod_name(d)) {
        return Err("expected pod names".into());
    }
    if kind.needs_destination() && destination.is_none() {
        return Err(format!("{kind} needs a destination pod"));
    }
    if !kind.takes_destination() && destination.is_some() {
        return Err(format!("{kind} takes no destination"));
    }
    Ok(Request::Operation {
        kind,
        target: target.to_string(),
        destination: destination.map(str::to_string),
    })
}

/// A pod's promotion rule annotation.
pub fn promotion_rule(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<PromotionRule>, Malformed> {
    match annotations.get(annotation::PROMOTION_RULE) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| Malformed {
            annotation: annotation::PROMOTION_RULE.into(),
            value: v.clone(),
            reason: "expected prefer, neutral, prefer_not or must_not".into(),
        }),
    }
}

/// A pod's downtime annotation: whether it is in maintenance at `now`
/// (seconds since the Unix epoch).
pub fn downtimed(annotations: &BTreeMap<String, String>, now_unix: i64) -> Result<bool, Malformed> {
    match annotations.get(annotation::DOWNTIME) {
        None => Ok(false),
        Some(v) => {
            let until: jiff::Timestamp = v.trim().parse().map_err(|_| Malformed {
                annotation: annotation::DOWNTIME.into(),
                value: v.clone(),
                reason: "expected an RFC 3339 time, such as 2026-01-02T15:04:05Z".into(),
            })?;
            Ok(until.as_second() > now_unix)
        }
    }
}

/// The orca annotations of a pod that orca cannot read (a promotion rule
/// or a downtime), in annotation order. Each makes the pod must_not (see
/// [`policy::pod_rule`](super::policy::pod_rule)); a malformed downtime
/// is otherwise no downtime.
pub fn pod_problems(annotations: &BTreeMap<String, String>) -> Vec<Malformed> {
    let mut out = Vec::new();
    if let Err(m) = promotion_rule(annotations) {
        out.push(m);
    }
    // Whether a downtime reads does not depend on the time.
    if let Err(m) = downtimed(annotations, 0) {
        out.push(m);
    }
    out.sort_by(|a, b| a.annotation.cmp(&b.annotation));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_request_written_as_an_annotation_reads_back_the_same() {
        let table = [
            Request::GracefulTakeover { to: None },
            Request::GracefulTakeover {
                to: Some("db-2".into()),
            },
            Request::ForceFailover,
            Request::ForceTakeover { to: "db-1".into() },
            Request::Recover,
            Request::Acknowledge,
            Request::Operation {
                kind: OperationKind::Relocate,
                target: "db-1".into(),
                destination: Some("db-2".into()),
            },
            Request::Operation {
                kind: OperationKind::MoveUp,
                target: "db-1".into(),
                destination: None,
            },
        ];
        for r in table {
            let (key, value) = r.as_annotation(Some("seen it"));
            let (got, bad) = requests(&BTreeMap::from([(key.to_string(), value.clone())]));
            assert!(bad.is_empty(), "{r:?} as {key}={value}: {bad:?}");
            assert_eq!(got, vec![r.clone()], "{key}={value}");
        }
    }

    /// Annotations from pairs (shared by the policy's tests).
    pub(crate) fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operations_and_malformed_ones() {
        let (ok, bad) = requests(&ann(&[(annotation::GRACEFUL_TAKEOVER, "auto")]));
        assert_eq!(ok, vec![Request::GracefulTakeover { to: None }]);
        assert!(bad.is_empty());
        let (ok, _) = requests(&ann(&[
            (annotation::GRACEFUL_TAKEOVER, "db-2"),
            (annotation::ACKNOWLEDGE, "x"),
        ]));
        assert_eq!(
            ok,
            vec![
                Request::Acknowledge,
                Request::GracefulTakeover {
                    to: Some("db-2".into())
                }
            ]
        );
        let (ok, bad) = requests(&ann(&[
            (annotation::GRACEFUL_TAKEOVER, "Not A Pod!"),
            (annotation::FORCE_FAILOVER, "yes"),
            (annotation::FORCE_TAKEOVER, ""),
            (annotation::RECOVER, "true"),
        ]));
        assert_eq!(ok, vec![Request::Recover]);
        assert_eq!(bad.len(), 3);
        assert!(bad[0].to_string().contains("rejected"));
        let (ok, _) = requests(&ann(&[
            (annotation::FORCE_FAILOVER, "TRUE"),
            (annotation::FORCE_TAKEOVER, "db-1"),
        ]));
        assert_eq!(
            ok,
            vec![
                Request::ForceFailover,
                Request::ForceTakeover { to: "db-1".into() }
            ]
        );
    }

    #[test]
    fn the_operation_annotation() {
        let one = |v: &str| requests(&ann(&[(annotation::OPERATION, v)]));
        assert_eq!(
            one("relocate db-2 db-1").0,
            vec![Request::Operation {
                kind: OperationKind::Relocate,
                target: "db-2".into(),
                destination: Some("db-1".into())
            }]
        );
        assert_eq!(one("repoint db-2").0.len(), 1);
        for bad in [
            "relocate db-2",
            "move-up db-2 db-1",
            "graceful-takeover db-1",
            "begin-downtime db-1",
            "fly db-1",
            "move-up Not_A_Pod",
            "move-up",
        ] {
            let (ok, bad_) = one(bad);
            assert!(ok.is_empty() && bad_.len() == 1, "{bad}: {ok:?}");
        }
    }

    #[test]
    fn pod_annotations() {
        assert_eq!(promotion_rule(&ann(&[])).unwrap(), None);
        assert_eq!(
            promotion_rule(&ann(&[(annotation::PROMOTION_RULE, "must_not")])).unwrap(),
            Some(PromotionRule::MustNot)
        );
        assert!(promotion_rule(&ann(&[(annotation::PROMOTION_RULE, "never")])).is_err());
        let t = 1_800_000_000;
        assert!(downtimed(&ann(&[(annotation::DOWNTIME, "2030-01-01T00:00:00Z")]), t).unwrap());
        assert!(!downtimed(&ann(&[(annotation::DOWNTIME, "2020-01-01T00:00:00Z")]), t).unwrap());
        assert!(downtimed(&ann(&[(annotation::DOWNTIME, "tomorrow")]), t).is_err());
    }

    #[test]
    fn malformed_pod_annotations() {
        let rule = annotation::PROMOTION_RULE;
        let down = annotation::DOWNTIME;
        // (annotations, the malformed ones by key)
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Pairs, &[&str])] = &[
            (&[], &[]),
            (&[(rule, "must_not")], &[]),
            (&[(rule, " prefer ")], &[]),
            (&[(down, "2030-01-01T00:00:00Z")], &[]),
            (&[(rule, "must-not")], &[rule]),
            (&[(rule, "MUST_NOT")], &[rule]),
            (&[(rule, "")], &[rule]),
            (&[(down, "tomorrow")], &[down]),
            (&[(down, "")], &[down]),
            (
                &[(rule, "never"), (down, "2030-13-01T00:00:00Z")],
                &[down, rule],
            ),
            (&[(rule, "prefer"), (down, "soon")], &[down]),
            // Not orca's: ignored.
            (&[("orca.dev/promotion_rule", "x"), ("other", "y")], &[]),
        ];
        for (pairs, want) in cases {
            let got: Vec<String> = pod_problems(&ann(pairs))
                .into_iter()
                .map(|m| m.annotation)
                .collect();
            assert_eq!(got, want.to_vec(), "{pairs:?}");
        }
        let m = &pod_problems(&ann(&[(rule, "must-not")]))[0];
        assert_eq!(m.value, "must-not");
        assert!(m.to_string().contains("must_not"), "{m}");
    }
}
