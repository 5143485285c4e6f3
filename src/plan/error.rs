//! Why a plan could not be made.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::legality::Refusal;
use crate::topology::InstanceKey;

/// Why the plan layer made no plan. Each message is one line, fit for a
/// CLI, and names the instances concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum PlanError {
    /// Nothing can replace `failed`; `reasons` says why each replica was
    /// set aside.
    #[error("no candidate to replace {failed}: {}", Reasons(reasons))]
    NoCandidate {
        failed: InstanceKey,
        reasons: Vec<(InstanceKey, String)>,
    },
    /// A legality rule refused the operation for `instance`. (Boxed: a
    /// refusal names two instances and keeps the error small.)
    #[error("refused for {instance}: {refusal}")]
    Refused {
        instance: InstanceKey,
        refusal: Box<Refusal>,
    },
    #[error("{0} is not in the topology")]
    NotFound(InstanceKey),
    #[error("{instance} is not a direct replica of {primary}")]
    NotAReplicaOf {
        instance: InstanceKey,
        primary: InstanceKey,
    },
    /// A request that makes no sense for the topology as it is.
    #[error("{0}")]
    Invalid(String),
}

impl PlanError {
    pub fn not_found(key: &InstanceKey) -> PlanError {
        PlanError::NotFound(key.clone())
    }

    pub fn invalid(reason: impl Into<String>) -> PlanError {
        PlanError::Invalid(reason.into())
    }

    pub fn refused(instance: &InstanceKey, refusal: Refusal) -> PlanError {
        PlanError::Refused {
            instance: instance.clone(),
            refusal: Box::new(refusal),
        }
    }
}

/// `a: why; b: why`, or `no replicas` when empty.
struct Reasons<'a>(&'a [(InstanceKey, String)]);

impl fmt::Display for Reasons<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("it has no replicas");
        }
        for (i, (k, why)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{k}: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::key;

    #[test]
    fn messages_and_serialization() {
        let cases = [
            (
                PlanError::NoCandidate {
                    failed: key("p"),
                    reasons: vec![(key("r1"), "unreachable".into())],
                },
                "no candidate to replace p:3306: r1:3306: unreachable",
            ),
            (
                PlanError::refused(&key("r1"), Refusal::NoLogBin(key("r2"))),
                "refused for r1:3306: r2:3306 has no binary log (log_bin is off)",
            ),
            (
                PlanError::NotFound(key("x")),
                "x:3306 is not in the topology",
            ),
            (
                PlanError::NotAReplicaOf {
                    instance: key("r1"),
                    primary: key("p"),
                },
                "r1:3306 is not a direct replica of p:3306",
            ),
            (PlanError::invalid("nothing to do"), "nothing to do"),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
            let json = serde_json::to_string(&err).unwrap();
            let back: PlanError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, err, "{json}");
        }
        let json = serde_json::to_value(PlanError::NotFound(key("x"))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "not_found", "detail": "x:3306"})
        );
    }
}
