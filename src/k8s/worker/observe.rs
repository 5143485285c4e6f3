use super::*;
use crate::topology::graph::Topology;

/// What orca knows of one pod.
#[derive(Debug, Clone)]
pub struct PodView {
    pub name: String,
    pub ordinal: Option<u32>,
    pub key: Option<InstanceKey>,
    pub ready: bool,
    pub deleting: bool,
    pub restarting: bool,
    pub role_label: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// Phase, restarts and node, for the API.
    pub facts: crate::api::model::PodFacts,
}

impl PodView {
    /// What orca knows of `pod`, a pod of the StatefulSet `set`.
    pub(super) fn of(pod: &Pod, set: &str) -> PodView {
        let name = pod.name_any();
        let ordinal = pod_ordinal(set, &name);
        let status = pod.status.as_ref();
        let key = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
            .map(|ip| InstanceKey::new(ip, 3306));
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let restarting = status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.state
                        .as_ref()
                        .is_some_and(|st| st.waiting.is_some() || st.terminated.is_some())
                })
            });
        PodView {
            name,
            ordinal,
            key,
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            restarting,
            role_label: pod.labels().get(label::ROLE).cloned(),
            annotations: pod.annotations().clone(),
            facts: crate::api::model::PodFacts {
                phase: status.and_then(|s| s.phase.clone()),
                ready,
                restarts: status
                    .and_then(|s| s.container_statuses.as_ref())
                    .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
                    .unwrap_or(0),
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            },
        }
    }
}

/// Kubernetes' own view of the pods, as evidence for the analysis: for
/// each pod with an address, what is wrong with it (being deleted, its
/// container restarting, not Ready); pods with nothing wrong are absent.
pub(super) fn external_signals(pods: &[PodView]) -> BTreeMap<InstanceKey, Vec<ExternalSignal>> {
    pods.iter()
        .filter_map(|p| {
            let k = p.key.clone()?;
            let mut s = Vec::new();
            if p.deleting {
                s.push(ExternalSignal::Deleted);
            }
            if p.restarting {
                s.push(ExternalSignal::ContainerRestarting);
            }
            if !p.ready {
                s.push(ExternalSignal::NotReady);
            }
            (!s.is_empty()).then_some((k, s))
        })
        .collect()
}

/// The addresses of the pods in downtime at `now` (Unix seconds): their
/// `orca.dev/downtime` annotation names a later time. A malformed one is
/// no downtime (it is reported, and the pod not promoted, elsewhere).
pub(super) fn downtimed(pods: &[PodView], now: i64) -> BTreeSet<InstanceKey> {
    pods.iter()
        .filter(|p| annotations::downtimed(&p.annotations, now).unwrap_or(false))
        .filter_map(|p| p.key.clone())
        .collect()
}

/// The addresses of `known` the engine may forget: no pod has them (a pod
/// recreated elsewhere) and no reachable instance replicates from them.
pub(super) fn stale_addresses<'a>(
    known: impl IntoIterator<Item = &'a InstanceKey>,
    pods: &[PodView],
    topo: &Topology,
) -> Vec<InstanceKey> {
    let pod_keys: BTreeSet<&InstanceKey> = pods.iter().filter_map(|p| p.key.as_ref()).collect();
    known
        .into_iter()
        .filter(|k| !pod_keys.contains(k))
        .filter(|k| {
            !topo
                .nodes
                .values()
                .any(|n| n.source.as_ref() == Some(*k) && n.reachable())
        })
        .cloned()
        .collect()
}

pub(super) fn creds_from(secret: &Secret) -> Result<(Credentials, Credentials), WorkerError> {
    let get = |k: &str| -> Result<String, WorkerError> {
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let string = secret.string_data.as_ref().and_then(|d| d.get(k)).cloned();
        data.or(string).filter(|s| !s.is_empty()).ok_or_else(|| {
            WorkerError::Credentials(format!("the Secret {} has no key {k}", secret.name_any()))
        })
    };
    Ok((
        Credentials::new("root", get(secret_keys::ROOT_PASSWORD)?),
        Credentials::new(REPL_USER, get(secret_keys::REPL_PASSWORD)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::graph::Unreached;
    use crate::topology::testing::{key, mariadb, replica_of};

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    /// A pod of the set `db`, as the API server returns it.
    fn fixture(name: &str, ip: Option<&str>, ready: Option<&str>, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": { "orca.dev/cluster": "db" },
            },
            "spec": { "containers": [{ "name": "mysqld", "image": "mariadb:11.4" }] },
            "status": { "phase": "Running" },
        });
        if let Some(ip) = ip {
            v["status"]["podIP"] = json!(ip);
        }
        if let Some(r) = ready {
            v["status"]["conditions"] = json!([
                { "type": "Initialized", "status": "True" },
                { "type": "Ready", "status": r },
            ]);
        }
        merge(&mut v, extra);
        pod(v)
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn view(name: &str, ip: Option<&str>) -> PodView {
        PodView {
            name: name.into(),
            ordinal: pod_ordinal("db", name),
            key: ip.map(|i| InstanceKey::new(i, 3306)),
            ready: true,
            deleting: false,
            restarting: false,
            role_label: None,
            annotations: BTreeMap::new(),
            facts: Default::default(),
        }
    }

    #[test]
    fn pods_as_orca_sees_them() {
        let waiting = json!({ "status": { "containerStatuses": [{
            "name": "mysqld", "ready": false, "restartCount": 3, "image": "mariadb:11.4", "imageID": "",
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
        }]}});
        let terminated = json!({ "status": { "containerStatuses": [{
            "name": "mysqld", "ready": false, "restartCount": 1, "image": "mariadb:11.4", "imageID": "",
            "state": { "terminated": { "exitCode": 137, "reason": "Error" } },
        }]}});
        let running = json!({ "status": { "containerStatuses": [{
            "name": "mysqld", "ready": true, "restartCount": 0, "image": "mariadb:11.4", "imageID": "",
            "state": { "running": { "startedAt": "2026-01-01T00:00:00Z" } },
        }]}});
        let deleting = json!({ "metadata": {
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "labels": { "orca.dev/role": "primary" },
        }});
        // (case, pod, ordinal, key, ready, deleting, restarting, role label)
        type Case = (
            &'static str,
            Pod,
            Option<u32>,
            Option<&'static str>,
            bool,
            bool,
            bool,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "ready and running",
                fixture("db-0", Some("10.0.0.5"), Some("True"), running.clone()),
                Some(0),
                Some("10.0.0.5"),
                true,
                false,
                false,
                None,
            ),
            (
                "no IP yet",
                fixture("db-1", None, None, json!({})),
                Some(1),
                None,
                false,
                false,
                false,
                None,
            ),
            (
                "an empty IP is none",
                fixture("db-1", Some(""), Some("False"), json!({})),
                Some(1),
                None,
                false,
                false,
                false,
                None,
            ),
            (
                "not Ready",
                fixture("db-2", Some("10.0.0.7"), Some("False"), running),
                Some(2),
                Some("10.0.0.7"),
                false,
                false,
                false,
                None,
            ),
            (
                "in back-off",
                fixture("db-2", Some("10.0.0.7"), Some("False"), waiting),
                Some(2),
                Some("10.0.0.7"),
                false,
                false,
                true,
                None,
            ),
            (
                "its container exited",
                fixture("db-2", Some("10.0.0.7"), Some("False"), terminated),
                Some(2),
                Some("10.0.0.7"),
                false,
                false,
                true,
                None,
            ),
            (
                "being deleted, with its role label",
                fixture("db-0", Some("10.0.0.5"), Some("True"), deleting),
                Some(0),
                Some("10.0.0.5"),
                true,
                true,
                false,
                Some("primary"),
            ),
            (
                "a pod of another set",
                fixture("other-0", Some("10.0.0.9"), Some("True"), json!({})),
                None,
                Some("10.0.0.9"),
                true,
                false,
                false,
                None,
            ),
        ];
        for (name, p, ordinal, ip, ready, deleting, restarting, role) in cases {
            let v = PodView::of(&p, "db");
            assert_eq!(
                v.name,
                p.metadata.name.clone().unwrap_or_default(),
                "{name}"
            );
            assert_eq!(v.ordinal, ordinal, "{name}");
            assert_eq!(v.key, ip.map(|i| InstanceKey::new(i, 3306)), "{name}");
            assert_eq!(
                (v.ready, v.deleting, v.restarting),
                (ready, deleting, restarting),
                "{name}"
            );
            assert_eq!(v.role_label.as_deref(), role, "{name}");
        }
        let annotated = fixture(
            "db-0",
            Some("10.0.0.5"),
            Some("True"),
            json!({ "metadata": { "annotations": { "orca.dev/promotion-rule": "prefer" } } }),
        );
        assert_eq!(
            PodView::of(&annotated, "db")
                .annotations
                .get("orca.dev/promotion-rule")
                .map(String::as_str),
            Some("prefer")
        );
    }

    #[test]
    fn signals_of_the_pods() {
        let mut deleting = view("db-0", Some("a"));
        deleting.deleting = true;
        let mut crashing = view("db-1", Some("b"));
        crashing.restarting = true;
        crashing.ready = false;
        let mut unready = view("db-2", Some("c"));
        unready.ready = false;
        let mut everything = view("db-3", Some("d"));
        everything.deleting = true;
        everything.restarting = true;
        everything.ready = false;
        let mut no_ip = view("db-4", None);
        no_ip.ready = false;
        let fine = view("db-5", Some("f"));
        let pods = vec![deleting, crashing, unready, everything, no_ip, fine];
        let got = external_signals(&pods);
        use ExternalSignal::*;
        let want: BTreeMap<InstanceKey, Vec<ExternalSignal>> = [
            (key("a"), vec![Deleted]),
            (key("b"), vec![ContainerRestarting, NotReady]),
            (key("c"), vec![NotReady]),
            (key("d"), vec![Deleted, ContainerRestarting, NotReady]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert!(external_signals(&[]).is_empty());
    }

    #[test]
    fn downtimes_at_a_time() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second();
        let with = |name: &str, ip: Option<&str>, until: &str| {
            let mut v = view(name, ip);
            v.annotations
                .insert("orca.dev/downtime".into(), until.into());
            v
        };
        let pods = vec![
            with("db-0", Some("a"), "2026-01-01T12:00:00Z"),
            with("db-1", Some("b"), "2026-01-01T10:00:00Z"),
            with("db-2", Some("c"), "tomorrow"),
            with("db-3", None, "2026-01-01T12:00:00Z"),
            view("db-4", Some("e")),
        ];
        // (now, the downtimed)
        let cases = [
            ("2026-01-01T09:00:00Z", vec!["a", "b"]),
            ("2026-01-01T11:00:00Z", vec!["a"]),
            // Up to, not at, the time it names.
            ("2026-01-01T12:00:00Z", vec![]),
            ("2026-01-02T00:00:00Z", vec![]),
        ];
        for (now, want) in cases {
            let want: BTreeSet<InstanceKey> = want.into_iter().map(key).collect();
            assert_eq!(downtimed(&pods, t(now)), want, "at {now}");
        }
    }

    #[test]
    fn stale_addresses_are_those_nothing_needs() {
        // "old" was a pod's address and "gone" too; a replica still
        // replicates from "old" (it is repointed first); "gone" has no
        // replica; "dead-src" has a replica that does not answer.
        let topo = Topology::build(
            vec![
                mariadb("p", 1),
                replica_of("r", 2, "p"),
                replica_of("stuck", 3, "old"),
            ],
            vec![
                Unreached::new(key("old"), "refused"),
                Unreached::new(key("gone"), "refused"),
                Unreached {
                    key: key("orphan"),
                    error: "refused".into(),
                    last_source: Some(key("dead-src")),
                },
            ],
        );
        let pods = vec![
            view("db-0", Some("p")),
            view("db-1", Some("r")),
            view("db-2", Some("stuck")),
        ];
        let known = [
            key("p"),
            key("r"),
            key("stuck"),
            key("old"),
            key("gone"),
            key("dead-src"),
        ];
        // (case, known addresses, stale)
        let cases: Vec<(&str, Vec<InstanceKey>, Vec<InstanceKey>)> = vec![
            ("every pod's address is kept", known[..3].to_vec(), vec![]),
            (
                "an address still replicated from is kept",
                vec![key("old")],
                vec![],
            ),
            (
                "an address nothing needs goes",
                vec![key("gone")],
                vec![key("gone")],
            ),
            (
                "the source of an unreachable instance only goes",
                vec![key("dead-src")],
                vec![key("dead-src")],
            ),
            ("all", known.to_vec(), vec![key("gone"), key("dead-src")]),
        ];
        for (name, known, want) in cases {
            assert_eq!(stale_addresses(&known, &pods, &topo), want, "{name}");
        }
        // Without pods, only what reachable replicas replicate from is kept.
        assert!(stale_addresses(&[key("p"), key("old")], &[], &topo).is_empty());
        assert_eq!(
            stale_addresses(&[key("p"), key("gone")], &[], &topo),
            vec![key("gone")]
        );
    }
}
