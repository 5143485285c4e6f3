//! When a pod's change calls for a cluster round now rather than at the
//! next probe (pure): Kubernetes often knows first that a server went —
//! its container exited, the pod stopped being Ready or is being
//! deleted — and a round started at once finds the server gone a probe
//! interval sooner. A server that comes back (a former primary
//! restarted) is fenced sooner the same way.

use k8s_openapi::api::core::v1::Pod;

/// What of a pod's state tells whether its server may have failed or
/// come back: readiness, deletion, and each container's running state
/// and restarts. Labels, annotations and the rest are not in it, so the
/// operator's own writes (role labels) wake nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMark {
    ready: bool,
    deleting: bool,
    /// (name, running, restarts), by name.
    containers: Vec<(String, bool, i32)>,
}

/// The mark of `pod`.
pub fn health_mark(pod: &Pod) -> HealthMark {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let mut containers: Vec<(String, bool, i32)> = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
                    (c.name.clone(), running, c.restart_count)
                })
                .collect()
        })
        .unwrap_or_default();
    containers.sort();
    HealthMark {
        ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        containers,
    }
}

/// Whether a pod whose mark went from `before` (`None`: not seen yet)
/// to `after` calls for a round now. A pod seen for the first time does
/// not: the round that made it (or the next) sees it.
pub fn wakes(before: Option<&HealthMark>, after: &HealthMark) -> bool {
    before.is_some_and(|b| b != after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ready: bool, deleting: bool, containers: &[(&str, &str, i32)]) -> Pod {
        let statuses: Vec<_> = containers
            .iter()
            .map(|(name, state, restarts)| {
                json!({
                    "name": name, "image": "i", "imageID": "", "ready": *state == "running",
                    "restartCount": restarts,
                    "state": { *state: if *state == "terminated" { json!({"exitCode": 137}) } else { json!({}) } },
                })
            })
            .collect();
        let mut v = json!({
            "metadata": {"name": "db-0", "namespace": "ns", "labels": {"orca.dev/role": "primary"}},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": statuses,
            },
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_change_of_health_wakes_the_round_and_nothing_else_does() {
        let up = pod(
            true,
            false,
            &[("mysqld", "running", 0), ("agent", "running", 0)],
        );
        let mut relabelled = up.clone();
        relabelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("orca.dev/role".into(), "replica".into());
        let mut annotated = up.clone();
        annotated.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        let same_other_order = pod(
            true,
            false,
            &[("agent", "running", 0), ("mysqld", "running", 0)],
        );
        let cases: &[(&str, Option<&Pod>, &Pod, bool)] = &[
            ("first sighting", None, &up, false),
            ("unchanged", Some(&up), &up, false),
            (
                "containers listed in another order",
                Some(&up),
                &same_other_order,
                false,
            ),
            ("a role label written", Some(&up), &relabelled, false),
            ("an annotation written", Some(&up), &annotated, false),
            (
                "the server's container exited",
                Some(&up),
                &pod(
                    true,
                    false,
                    &[("mysqld", "terminated", 0), ("agent", "running", 0)],
                ),
                true,
            ),
            (
                "restarted between two sightings",
                Some(&up),
                &pod(
                    true,
                    false,
                    &[("mysqld", "running", 1), ("agent", "running", 0)],
                ),
                true,
            ),
            (
                "not Ready any more",
                Some(&up),
                &pod(
                    false,
                    false,
                    &[("mysqld", "running", 0), ("agent", "running", 0)],
                ),
                true,
            ),
            (
                "being deleted",
                Some(&up),
                &pod(
                    true,
                    true,
                    &[("mysqld", "running", 0), ("agent", "running", 0)],
                ),
                true,
            ),
            (
                "Ready again (a server back)",
                Some(&pod(
                    false,
                    false,
                    &[("mysqld", "running", 1), ("agent", "running", 0)],
                )),
                &pod(
                    true,
                    false,
                    &[("mysqld", "running", 1), ("agent", "running", 0)],
                ),
                true,
            ),
        ];
        for (what, before, after, want) in cases {
            let before = before.map(health_mark);
            assert_eq!(wakes(before.as_ref(), &health_mark(after)), *want, "{what}");
        }
    }
}
