//! The status a user reads, and when it is written: computed from the
//! engine's view each round ([`compute_status`], pure), written only when
//! something a user reads changed, the volatile figures (lag, GTID
//! positions) at most every [`VOLATILE_PERIOD`] ([`needs_write`], pure).
//! `status.operation`, `status.pendingFences` and `status.lastOperation`
//! are the journal's and the operations' (see `guarded`, `resume`): the
//! body written here never holds them.

use std::time::Instant;

use super::*;
use crate::topology::graph::Topology;

/// How often status is written at most when only volatile figures
/// changed: they are live in the API and metrics.
pub(super) const VOLATILE_PERIOD: Duration = Duration::from_secs(30);

/// The figures of `status.topology[]` that change without anything a user
/// acts on changing.
const VOLATILE: [&str; 2] = ["lagSeconds", "gtidPosition"];

/// What status is computed from.
pub(super) struct StatusInputs<'a> {
    pub cluster: &'a MySQLCluster,
    pub pods: &'a [PodView],
    pub primary: Option<&'a str>,
    pub topo: &'a Topology,
    pub findings: &'a [Finding],
    /// Why a recovery would not run now.
    pub blocked: Option<String>,
    /// The malformed pod annotations, as status shows them.
    pub invalid_annotations: &'a [String],
    pub epoch: Option<i64>,
    /// The time of a condition whose status changes.
    pub now: Time,
}

impl Worker {
    pub(super) async fn write_status(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) -> Result<(), WorkerError> {
        let engine = self.engine_mut();
        let blocked = engine.blocked_by_anti_flap().or_else(|| {
            (!engine.config.auto_recover).then(|| "automatic failover is off in the FailoverPolicy: annotate orca.dev/recover=true".to_string())
        });
        let status = compute_status(&StatusInputs {
            cluster,
            pods,
            primary,
            topo: self.engine.topology(),
            findings: self.engine.findings(),
            blocked,
            invalid_annotations: &self.invalid_annotations,
            epoch: self.epoch,
            now: Time(time::now()),
        });
        let body = status_body(&status)?;
        let previous = status_body(&cluster.status.clone().unwrap_or_default())?;
        let now = Instant::now();
        if !needs_write(Some(&previous), &body, self.volatile_written, now) {
            return Ok(());
        }
        self.patch_status(body).await?;
        self.volatile_written = Some(now);
        Ok(())
    }
}

/// The status of a cluster as this round sees it (without `operation`,
/// `pendingFences`, and with `lastOperation` as stored).
pub(super) fn compute_status(i: &StatusInputs<'_>) -> MySQLClusterStatus {
    let (cluster, pods, primary, topo, findings) =
        (i.cluster, i.pods, i.primary, i.topo, i.findings);
    let blocked = i.blocked.clone();
    {
        let problems = crate::analysis::instance_problems(topo, Default::default());
        let mut topology = Vec::new();
        let mut ready = 0;
        for p in pods {
            let Some(k) = &p.key else { continue };
            let node = topo.get(k);
            let snap = node.and_then(|n| n.snapshot.as_ref());
            let r = snap.and_then(|s| s.replica.as_ref());
            let role = match node.map(|n| n.role) {
                _ if Some(p.name.as_str()) == primary => InstanceRole::Primary,
                Some(Role::IntermediatePrimary) => InstanceRole::Intermediate,
                Some(Role::Replica) => InstanceRole::Replica,
                _ => InstanceRole::Unknown,
            };
            let healthy = match role {
                InstanceRole::Primary => snap.is_some_and(|s| !s.is_read_only()),
                _ => r.is_some_and(|r| r.is_replicating()),
            };
            if healthy && p.ready {
                ready += 1;
            }
            let mut probs: Vec<String> = problems
                .get(k)
                .map(|v| v.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default();
            for f in findings.iter().filter(|f| &f.instance == k) {
                probs.push(f.code.to_string());
            }
            probs.sort();
            probs.dedup();
            topology.push(InstanceStatus {
                pod: p.name.clone(),
                address: k.to_string(),
                role,
                source: r.map(|r| pod_of(pods, &r.source)),
                io_thread: r.map(|r| match r.io_running {
                    IoThreadState::Yes => ThreadState::Running,
                    IoThreadState::Connecting => ThreadState::Connecting,
                    IoThreadState::No => ThreadState::Stopped,
                }),
                sql_thread: r.map(|r| {
                    if r.sql_running {
                        ThreadState::Running
                    } else {
                        ThreadState::Stopped
                    }
                }),
                lag_seconds: node.and_then(|n| n.lag_ms).map(|ms| ms as f64 / 1000.0),
                gtid_position: snap
                    .and_then(|s| s.gtid.executed.as_ref())
                    .map(|g| g.to_string()),
                errant_gtids: node.and_then(|n| n.errant.as_ref()).map(|g| g.to_string()),
                problems: probs,
            });
        }
        let available = primary
            .and_then(|n| key_of(pods, n))
            .and_then(|k| topo.get(&k).and_then(|n| n.snapshot.clone()))
            .is_some_and(|s| !s.is_read_only());
        let failure = findings.iter().find(|f| f.is_failure());
        let mut degraded: Vec<String> = findings
            .iter()
            .map(|f| format!("{} ({})", f.code, pod_of(pods, &f.instance)))
            .collect();
        degraded.extend(i.invalid_annotations.iter().cloned());
        let healthy = findings.is_empty()
            && ready == pods.len()
            && pods.len() as i32 == cluster.spec.replicas;
        let conds = conditions_at(
            cluster,
            &[
                (
                    condition::AVAILABLE,
                    available,
                    if available {
                        "PrimaryWritable"
                    } else {
                        "NoWritablePrimary"
                    },
                    primary
                        .map(|p| format!("{p} takes writes"))
                        .unwrap_or_else(|| "no primary".into()),
                ),
                (
                    condition::HEALTHY,
                    healthy,
                    if healthy {
                        "AllReplicating"
                    } else {
                        "Problems"
                    },
                    if healthy {
                        "every instance replicates as it should".into()
                    } else {
                        format!(
                            "{ready} of {} instances ready{}",
                            cluster.spec.replicas,
                            if degraded.is_empty() {
                                String::new()
                            } else {
                                format!("; {}", degraded.join(", "))
                            }
                        )
                    },
                ),
                (
                    condition::DEGRADED,
                    !degraded.is_empty(),
                    if !findings.is_empty() {
                        "Problems"
                    } else if !degraded.is_empty() {
                        "InvalidAnnotation"
                    } else {
                        "NoProblems"
                    },
                    degraded.join(", "),
                ),
                (
                    condition::FAILED,
                    failure.is_some() && blocked.is_some(),
                    if failure.is_some() {
                        "RecoveryBlocked"
                    } else {
                        "NoFailure"
                    },
                    failure
                        .map(|f| {
                            format!("{}; {}", f.description, blocked.clone().unwrap_or_default())
                        })
                        .unwrap_or_default(),
                ),
                (
                    condition::RECONCILING,
                    pods.len() as i32 != cluster.spec.replicas,
                    "Scaling",
                    format!("{} pods, {} wanted", pods.len(), cluster.spec.replicas),
                ),
            ],
            &i.now,
        );
        MySQLClusterStatus {
            conditions: conds,
            primary: primary.map(String::from),
            ready_replicas: ready as i32,
            epoch: i.epoch,
            topology,
            last_operation: cluster
                .status
                .as_ref()
                .and_then(|s| s.last_operation.clone()),
            observed_generation: cluster.metadata.generation,
            ..Default::default()
        }
    }
}

/// What the worker writes of `status`: all but the journal's and the
/// operations' keys.
pub(super) fn status_body(status: &MySQLClusterStatus) -> Result<serde_json::Value, WorkerError> {
    let mut v = serde_json::to_value(status).map_err(|e| WorkerError::Status(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        for k in ["lastOperation", "operation", "pendingFences"] {
            o.remove(k);
        }
    }
    Ok(v)
}

/// `body` without its volatile figures.
fn stable(body: &serde_json::Value) -> serde_json::Value {
    let mut v = body.clone();
    if let Some(instances) = v.get_mut("topology").and_then(|t| t.as_array_mut()) {
        for i in instances.iter_mut().filter_map(|i| i.as_object_mut()) {
            for k in VOLATILE {
                i.remove(k);
            }
        }
    }
    v
}

/// Whether `new` must be written, `previous` being the status as stored:
/// when anything a user reads differs (roles, health, conditions,
/// problems, the primary, the epoch, …), or when only volatile figures
/// differ and the last write with them is at least [`VOLATILE_PERIOD`]
/// old. Only the keys `new` has count: a merge patch leaves the others
/// as they are.
pub(super) fn needs_write(
    previous: Option<&serde_json::Value>,
    new: &serde_json::Value,
    last_volatile_write: Option<Instant>,
    now: Instant,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let previous = match (previous.as_object(), new.as_object()) {
        (Some(p), Some(n)) => serde_json::Value::Object(
            p.iter()
                .filter(|(k, _)| n.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => previous.clone(),
    };
    let previous = &previous;
    if previous == new {
        return false;
    }
    if stable(previous) != stable(new) {
        return true;
    }
    last_volatile_write.is_none_or(|t| now.saturating_duration_since(t) >= VOLATILE_PERIOD)
}

/// Conditions for status, keeping the transition time of those whose
/// status did not change.
pub(super) fn conditions(
    cluster: &MySQLCluster,
    wanted: &[(&str, bool, &str, String)],
) -> Vec<Condition> {
    conditions_at(cluster, wanted, &Time(time::now()))
}

/// [`conditions`] with `now` the time of those whose status changes.
pub(super) fn conditions_at(
    cluster: &MySQLCluster,
    wanted: &[(&str, bool, &str, String)],
    now: &Time,
) -> Vec<Condition> {
    let old = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut out: Vec<Condition> = old.clone();
    for (type_, on, reason, message) in wanted {
        let status = if *on { "True" } else { "False" };
        let previous = old.iter().find(|c| c.type_ == *type_);
        let since = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        out.retain(|c| c.type_ != *type_);
        out.push(Condition {
            type_: type_.to_string(),
            status: status.into(),
            reason: reason.to_string(),
            message: message.clone(),
            last_transition_time: since,
            observed_generation: cluster.metadata.generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::cluster::{MySQLClusterSpec, OperationJournal};
    use serde_json::json;

    fn cluster(status: Option<MySQLClusterStatus>) -> MySQLCluster {
        let spec: MySQLClusterSpec =
            serde_yaml_ng::from_str("image: mariadb:10.11\nreplicas: 2\n").unwrap();
        let mut c = MySQLCluster::new("db", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.generation = Some(3);
        c.status = status;
        c
    }

    fn view(name: &str, ip: &str) -> PodView {
        PodView {
            name: name.into(),
            ordinal: pod_ordinal("db", name),
            key: Some(InstanceKey::new(ip, 3306)),
            ready: true,
            deleting: false,
            restarting: false,
            role_label: None,
            annotations: BTreeMap::new(),
            facts: Default::default(),
        }
    }

    fn at(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn compute(c: &MySQLCluster, pods: &[PodView], now: &str) -> MySQLClusterStatus {
        let topo = Topology::build(Vec::new(), Vec::new());
        compute_status(&StatusInputs {
            cluster: c,
            pods,
            primary: Some("db-0"),
            topo: &topo,
            findings: &[],
            blocked: None,
            invalid_annotations: &[],
            epoch: Some(4),
            now: at(now),
        })
    }

    #[test]
    fn a_status_keeps_its_transition_times_and_leaves_the_journal_alone() {
        let pods = [view("db-0", "127.0.0.1"), view("db-1", "127.0.0.2")];
        let first = compute(&cluster(None), &pods, "2026-01-01T00:00:00Z");
        assert_eq!(first.primary.as_deref(), Some("db-0"));
        assert_eq!(first.epoch, Some(4));
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(first.topology.len(), 2);
        assert!(
            first
                .conditions
                .iter()
                .all(|c| c.last_transition_time == at("2026-01-01T00:00:00Z"))
        );
        // Stored, with the journal's keys beside it.
        let mut stored = first.clone();
        stored.operation = Some(OperationJournal {
            id: "op".into(),
            kind: OperationKind::GracefulTakeover,
            target: None,
            failed: None,
            epoch: Some(4),
            step: 1,
            steps: 3,
            step_name: None,
            point_of_no_return_passed: false,
            at_point_of_no_return: false,
            started_at: None,
        });
        stored.pending_fences = vec!["db-1".into()];
        let again = compute(
            &cluster(Some(stored.clone())),
            &pods,
            "2026-01-01T00:05:00Z",
        );
        assert_eq!(
            again.conditions, first.conditions,
            "no condition changed status"
        );
        let body = status_body(&again).unwrap();
        for k in ["operation", "pendingFences", "lastOperation"] {
            assert!(body.get(k).is_none(), "{k} in {body}");
        }
        let previous = status_body(&stored).unwrap();
        let t0 = Instant::now();
        assert!(!needs_write(Some(&previous), &body, Some(t0), t0));
        // One pod fewer: Healthy's message and the topology change.
        let fewer = compute(&cluster(Some(stored)), &pods[..1], "2026-01-01T00:06:00Z");
        let changed: Vec<_> = fewer
            .conditions
            .iter()
            .filter(|c| c.last_transition_time == at("2026-01-01T00:06:00Z"))
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, vec!["Reconciling"], "only Reconciling turned");
        assert!(needs_write(
            Some(&previous),
            &status_body(&fewer).unwrap(),
            Some(t0),
            t0
        ));
    }

    #[test]
    fn when_status_is_written() {
        let base = json!({
            "primary": "db-0",
            "epoch": 4,
            "conditions": [{"type": "Healthy", "status": "True"}],
            "topology": [
                {"pod": "db-0", "role": "primary", "gtidPosition": "0-1-10"},
                {"pod": "db-1", "role": "replica", "lagSeconds": 0.0, "gtidPosition": "0-1-10", "problems": []},
            ],
        });
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            f(&mut v);
            v
        };
        let gtid = with(&|v| v["topology"][1]["gtidPosition"] = json!("0-1-11"));
        let lag = with(&|v| v["topology"][1]["lagSeconds"] = json!(3.5));
        let role = with(&|v| v["topology"][1]["role"] = json!("unknown"));
        let problems = with(&|v| v["topology"][1]["problems"] = json!(["NotReplicating"]));
        let primary = with(&|v| v["primary"] = json!("db-1"));
        let epoch = with(&|v| v["epoch"] = json!(5));
        let cond = with(&|v| v["conditions"][0]["status"] = json!("False"));
        let no_epoch = with(&|v| {
            v.as_object_mut().unwrap().remove("epoch");
        });
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(5);
        let later = t0 + VOLATILE_PERIOD;
        // (previous, new, last volatile write, now, written)
        type Case<'a> = (
            Option<&'a serde_json::Value>,
            &'a serde_json::Value,
            Option<Instant>,
            Instant,
            bool,
        );
        let cases: Vec<Case> = vec![
            (None, &base, None, t0, true),
            (Some(&base), &base, Some(t0), soon, false),
            (Some(&base), &base, None, soon, false),
            (Some(&base), &gtid, Some(t0), soon, false),
            (Some(&base), &lag, Some(t0), soon, false),
            (Some(&base), &gtid, Some(t0), later, true),
            (Some(&base), &lag, None, soon, true),
            (Some(&base), &role, Some(t0), soon, true),
            (Some(&base), &problems, Some(t0), soon, true),
            (Some(&base), &primary, Some(t0), soon, true),
            (Some(&base), &epoch, Some(t0), soon, true),
            (Some(&base), &cond, Some(t0), soon, true),
            // A key the body leaves out is left as stored: not a change.
            (Some(&base), &no_epoch, Some(t0), soon, false),
        ];
        for (i, (previous, new, last, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(needs_write(previous, new, last, now), want, "case {i}");
        }
    }
}
