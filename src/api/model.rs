//! What the API answers and takes: the read model the engines publish
//! (one view per cluster, replaced whole after every round), the
//! operation requests and their answers. Every type here is JSON in
//! camelCase and has a schema (the OpenAPI document is generated from
//! them); the topology's own types (snapshots, findings, plans, records)
//! are described as JSON objects, since they are the engine's and change
//! with it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::{Finding, Severity};
use crate::engine::ClusterEngine;
use crate::engine::executor::OperationRecord;
use crate::plan::Plan;
use crate::plan::candidate::PromotionRule;
use crate::plan::operation::OperationKind;
use crate::topology::InstanceKey;
use crate::topology::graph::Node;

/// A cluster as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId {
    pub namespace: String,
    pub name: String,
}

impl ClusterId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ClusterId {
        ClusterId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The namespace of the cluster `orca standalone` serves.
pub const STANDALONE_NAMESPACE: &str = "standalone";

/// An operation running now.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationInProgress {
    pub id: String,
    pub kind: String,
    pub target: Option<String>,
    /// RFC 3339.
    pub started_at: String,
}

/// An operation done, in short.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationSummary {
    pub id: String,
    pub kind: String,
    pub outcome: String,
    pub successor: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
}

impl OperationSummary {
    pub fn of(r: &OperationRecord) -> OperationSummary {
        OperationSummary {
            id: r.id.clone(),
            kind: r.kind.name().to_string(),
            outcome: crate::store::record::outcome_parts(&r.outcome)
                .0
                .to_string(),
            successor: r.successor.as_ref().map(|k| k.to_string()),
            started_at: rfc3339_s(r.started_at as i64),
            duration_ms: r.duration_ms,
        }
    }
}

/// Kubernetes' own facts about an instance's pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFacts {
    /// `Pending`, `Running`, `Failed`...
    pub phase: Option<String>,
    /// The Ready condition.
    pub ready: bool,
    /// Restarts of the database container.
    pub restarts: u32,
    /// The node it runs on.
    pub node: Option<String>,
}

/// The pod of an instance, in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub facts: Option<PodFacts>,
}

/// One instance of a cluster: its place in the tree and its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// `host:port`.
    pub key: String,
    /// The pod, in Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub role: String,
    pub source: Option<String>,
    pub replicas: Vec<String>,
    pub depth: usize,
    pub reachable: bool,
    pub lag_ms: Option<u64>,
    pub read_only: Option<bool>,
    /// Transactions this replica has that its source does not.
    pub errant: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// In downtime: never promoted, its failures not recovered.
    pub downtimed: bool,
    /// `prefer`, `neutral`, `prefer-not` or `must-not`.
    pub promotion_rule: String,
    /// Kubernetes' facts about its pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<PodFacts>,
    /// The probe's snapshot (server, replication, GTID state).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub snapshot: Option<serde_json::Value>,
}

impl InstanceView {
    pub fn of(n: &Node, pod: Option<PodRef>, downtimed: bool, rule: PromotionRule) -> InstanceView {
        let (pod, kubernetes) = match pod {
            Some(p) => (Some(p.name), p.facts),
            None => (None, None),
        };
        InstanceView {
            key: n.key.to_string(),
            pod,
            role: n.role.to_string(),
            source: n.source.as_ref().map(|k| k.to_string()),
            replicas: n.replicas.iter().map(|k| k.to_string()).collect(),
            depth: n.depth,
            reachable: n.reachable(),
            lag_ms: n.lag_ms,
            read_only: n.snapshot.as_ref().map(|s| s.read_only),
            errant: n.errant.as_ref().map(|e| e.to_string()),
            error: n.error.clone(),
            downtimed,
            promotion_rule: rule.name().to_string(),
            kubernetes,
            snapshot: n
                .snapshot
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
        }
    }
}

/// One finding of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingView {
    pub code: String,
    pub severity: String,
    pub instance: String,
    pub replicas: Vec<String>,
    pub description: String,
}

impl FindingView {
    pub fn of(f: &Finding) -> FindingView {
        FindingView {
            code: f.code.to_string(),
            severity: f.severity().name().to_string(),
            instance: f.instance.to_string(),
            replicas: f.replicas.iter().map(|k| k.to_string()).collect(),
            description: f.description.clone(),
        }
    }
}

/// A cluster, whole: what `GET /api/v1/clusters/{namespace}/{name}`
/// answers.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub namespace: String,
    pub name: String,
    /// `host:port` of the writable primary, when there is one.
    pub primary: Option<String>,
    /// No critical finding.
    pub healthy: bool,
    pub instances: Vec<InstanceView>,
    pub findings: Vec<FindingView>,
    pub operation: Option<OperationInProgress>,
    /// Whether orca recovers failures on its own (else a person asks);
    /// unknown to a follower.
    pub automatic_failover: Option<bool>,
    /// The last operations this orca ran (newest last; the store keeps
    /// them all).
    pub recent_operations: Vec<OperationSummary>,
    /// RFC 3339: when the topology was probed.
    pub observed_at: String,
    /// The cluster's name in the store.
    #[serde(skip)]
    pub store_key: String,
}

/// How many operations a view lists.
pub const RECENT_OPERATIONS: usize = 10;

/// Whether findings leave a cluster healthy: none is critical.
pub fn healthy(findings: &[Finding]) -> bool {
    !findings.iter().any(|f| f.severity() == Severity::Critical)
}

impl ClusterView {
    /// The view of an engine's topology and findings; `pods` names the
    /// pod of an instance (Kubernetes).
    pub fn of(
        id: &ClusterId,
        store_key: String,
        engine: &ClusterEngine,
        pods: &dyn Fn(&InstanceKey) -> Option<PodRef>,
    ) -> ClusterView {
        let topology = engine.topology();
        let findings = engine.findings();
        let rules = &engine.config.recovery.candidate;
        let primary = topology
            .roots()
            .into_iter()
            .find(|n| n.snapshot.as_ref().is_some_and(|s| !s.read_only))
            .map(|n| n.key.to_string());
        ClusterView {
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            primary,
            healthy: healthy(findings),
            instances: topology
                .nodes
                .values()
                .map(|n| {
                    InstanceView::of(
                        n,
                        pods(&n.key),
                        engine.context.downtimed.contains(&n.key),
                        rules.rule(&n.key),
                    )
                })
                .collect(),
            findings: findings.iter().map(FindingView::of).collect(),
            operation: None,
            automatic_failover: Some(engine.config.auto_recover),
            recent_operations: Vec::new(),
            observed_at: rfc3339_s(crate::store::now_ms() / 1000),
            store_key,
        }
    }

    pub fn with_recent(mut self, records: &[OperationRecord]) -> ClusterView {
        let skip = records.len().saturating_sub(RECENT_OPERATIONS);
        self.recent_operations = records[skip..].iter().map(OperationSummary::of).collect();
        self
    }

    pub fn summary(&self) -> ClusterSummary {
        ClusterSummary {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            primary: self.primary.clone(),
            primary_pod: self
                .primary
                .as_ref()
                .and_then(|k| self.instances.iter().find(|i| &i.key == k))
                .and_then(|i| i.pod.clone()),
            healthy: self.healthy,
            automatic_failover: self.automatic_failover,
            instances: self.instances.len(),
            findings: self.findings.iter().map(|f| f.code.clone()).collect(),
            operation: self.operation.clone(),
            observed_at: self.observed_at.clone(),
        }
    }
}

/// A cluster in the list of `GET /api/v1/clusters`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    pub namespace: String,
    pub name: String,
    pub primary: Option<String>,
    /// The primary's pod, in Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_pod: Option<String>,
    pub healthy: bool,
    pub automatic_failover: Option<bool>,
    pub instances: usize,
    /// The codes of the findings.
    pub findings: Vec<String>,
    pub operation: Option<OperationInProgress>,
    pub observed_at: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterList {
    pub items: Vec<ClusterSummary>,
}

/// An instance and the cluster it belongs to.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAnswer {
    pub namespace: String,
    pub cluster: String,
    pub instance: InstanceView,
    /// The findings about this instance.
    pub findings: Vec<FindingView>,
}

/// The clusters this orca knows, as the engines last published them.
/// Cheap to clone; reads never wait for a probe.
/// Every change is counted on a watch channel, so the streams of the
/// API (and the web page on them) learn of it without polling.
#[derive(Debug, Clone)]
pub struct ReadModel {
    clusters: Arc<RwLock<BTreeMap<ClusterId, Arc<ClusterView>>>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for ReadModel {
    fn default() -> ReadModel {
        ReadModel {
            clusters: Arc::default(),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl ReadModel {
    pub fn publish(&self, view: ClusterView) {
        let id = ClusterId::new(view.namespace.clone(), view.name.clone());
        let mut m = self.clusters.write().unwrap_or_else(|e| e.into_inner());
        m.insert(id, Arc::new(view));
        drop(m);
        self.changed();
    }

    /// Changes the published view of a cluster in place (an operation
    /// starting or ending), if there is one.
    pub fn update(&self, id: &ClusterId, f: impl FnOnce(&mut ClusterView)) {
        let mut m = self.clusters.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.get_mut(id) {
            f(Arc::make_mut(v));
        }
        drop(m);
        self.changed();
    }

    pub fn remove(&self, id: &ClusterId) {
        let mut m = self.clusters.write().unwrap_or_else(|e| e.into_inner());
        let had = m.remove(id).is_some();
        drop(m);
        if had {
            self.changed();
        }
    }

    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn get(&self, id: &ClusterId) -> Option<Arc<ClusterView>> {
        let m = self.clusters.read().unwrap_or_else(|e| e.into_inner());
        m.get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<ClusterView>> {
        let m = self.clusters.read().unwrap_or_else(|e| e.into_inner());
        m.values().cloned().collect()
    }

    /// The cluster holding the instance `key` (`host:port`), and the
    /// instance.
    pub fn instance(&self, key: &str) -> Option<(Arc<ClusterView>, InstanceView)> {
        let m = self.clusters.read().unwrap_or_else(|e| e.into_inner());
        m.values().find_map(|c| {
            c.instances
                .iter()
                .find(|i| i.key == key)
                .map(|i| (c.clone(), i.clone()))
        })
    }
}

/// `POST /api/v1/clusters/{namespace}/{name}/operations`: a JSON object
/// (see its `Deserialize`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationRequest {
    /// The operation.
    #[schemars(schema_with = "kind_schema")]
    pub kind: String,
    /// The instance acted on (`host:port`, or a pod name in Kubernetes);
    /// for a takeover, the new primary.
    #[serde(default)]
    pub target: Option<String>,
    /// The new source of a relocate, move-below or repoint.
    #[serde(default)]
    pub destination: Option<String>,
    /// Return the plan and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Why (acknowledge, downtime).
    #[serde(default)]
    pub comment: Option<String>,
    /// How long a downtime lasts, e.g. `30m` (default 1h).
    #[serde(default)]
    pub duration: Option<String>,
}

/// Only an object, as the document says: serde's derive alone also takes
/// an array of the fields in their order (`["graceful-takeover", "h:1"]`
/// would be carried out).
impl<'de> Deserialize<'de> for OperationRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OperationRequest, D::Error> {
        let fields = serde_json::Map::deserialize(d)?;
        OperationRequest::deserialize(serde_json::Value::Object(fields))
            .map_err(serde::de::Error::custom)
    }
}

fn kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = OperationKind::ALL.iter().map(|k| k.name()).collect();
    schemars::json_schema!({ "type": "string", "enum": names })
}

/// What an operation asked for came to.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationAnswer {
    pub kind: String,
    pub dry_run: bool,
    /// The operation's id (also its id in the store), once it ran.
    pub id: Option<String>,
    /// `planned` (a dry run), `succeeded`, `failed`, `rolled_back`,
    /// `vetoed`, `deposed`, `done` (no server changed), `accepted` (the
    /// operator carries it out).
    pub outcome: String,
    /// One line.
    pub message: String,
    /// The plan: steps, point of no return, lost replicas, notes.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub plan: Option<serde_json::Value>,
    /// The plan's steps, one line each, as a person reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// The plan's successor (the new primary, the new source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// The replicas the plan leaves behind, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_replicas: Vec<String>,
    /// The record of every step, once it ran.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub record: Option<serde_json::Value>,
}

impl OperationAnswer {
    pub fn planned(kind: OperationKind, plan: &Plan) -> OperationAnswer {
        OperationAnswer {
            kind: kind.name().to_string(),
            dry_run: true,
            id: None,
            outcome: "planned".into(),
            message: format!(
                "{} steps, point of no return at step {}, {} replicas lost",
                plan.steps.len(),
                plan.point_of_no_return + 1,
                plan.lost_replicas.len()
            ),
            plan: serde_json::to_value(plan).ok(),
            record: None,
            ..OperationAnswer::described(Some(plan))
        }
    }

    /// The person-readable parts of `plan`.
    pub fn described(plan: Option<&Plan>) -> OperationAnswer {
        OperationAnswer {
            kind: String::new(),
            dry_run: false,
            id: None,
            outcome: String::new(),
            message: String::new(),
            plan: None,
            steps: plan
                .map(|p| p.steps.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            successor: plan.and_then(|p| p.successor.as_ref().map(|k| k.to_string())),
            lost_replicas: plan
                .map(|p| {
                    p.lost_replicas
                        .iter()
                        .map(|(k, why)| format!("{k}: {why}"))
                        .collect()
                })
                .unwrap_or_default(),
            record: None,
        }
    }

    pub fn ran(
        kind: OperationKind,
        plan: Option<&Plan>,
        record: &OperationRecord,
    ) -> OperationAnswer {
        let (outcome, detail) = crate::store::record::outcome_parts(&record.outcome);
        OperationAnswer {
            kind: kind.name().to_string(),
            dry_run: false,
            id: Some(record.id.clone()),
            outcome: outcome.to_string(),
            message: match detail {
                Some(d) => format!("{outcome}: {d}"),
                None => format!(
                    "{outcome} in {} ms{}",
                    record.duration_ms,
                    record
                        .successor
                        .as_ref()
                        .map(|k| format!("; {k} is the new source"))
                        .unwrap_or_default()
                ),
            },
            plan: plan.and_then(|p| serde_json::to_value(p).ok()),
            record: serde_json::to_value(record).ok(),
            ..OperationAnswer::described(plan)
        }
    }

    /// An operation that changes no server (acknowledge, downtime).
    pub fn done(kind: OperationKind, dry_run: bool, message: impl Into<String>) -> OperationAnswer {
        OperationAnswer {
            kind: kind.name().to_string(),
            dry_run,
            id: None,
            outcome: if dry_run { "planned" } else { "done" }.into(),
            message: message.into(),
            ..OperationAnswer::described(None)
        }
    }
}

/// Who leads, from `GET /api/v1/leader`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderView {
    /// The identity of the leader, when one is known.
    pub leader: Option<String>,
    /// This orca's identity.
    pub identity: String,
    /// Whether this orca leads.
    pub is_leader: bool,
    /// The fencing epoch of the current leadership.
    pub epoch: Option<i64>,
    /// Where the leader's API answers, when known.
    pub leader_url: Option<String>,
}

/// A page of records from the store, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    pub page: u32,
    pub page_size: u32,
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub items: Vec<serde_json::Value>,
}

impl RecordPage {
    /// Page `page` (of `page_size`) holding `rows`.
    pub fn of<T: Serialize>(page: u32, page_size: u32, rows: &[T]) -> RecordPage {
        RecordPage {
            page,
            page_size,
            items: rows
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
        }
    }
}

/// Every error: one line.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    /// The leader to ask instead (a follower's 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// `GET /healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
}

/// Seconds since the Unix epoch as RFC 3339.
pub fn rfc3339_s(s: i64) -> String {
    jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_request_is_an_object_and_nothing_else() {
        let r: OperationRequest =
            serde_json::from_str(r#"{"kind": "relocate", "target": "h:1", "dryRun": true}"#)
                .unwrap();
        assert_eq!(
            (r.kind.as_str(), r.target.as_deref(), r.dry_run),
            ("relocate", Some("h:1"), true)
        );
        assert_eq!(r.destination, None);
        for bad in [
            r#"["graceful-takeover", "h:1"]"#,
            r#"["acknowledge", null, null, true]"#,
            r#"{"kind": "recover", "extra": 1}"#,
            r#"{"target": "h:1"}"#,
            r#"{"kind": 1}"#,
            r#""recover""#,
            "null",
        ] {
            assert!(
                serde_json::from_str::<OperationRequest>(bad).is_err(),
                "{bad} taken"
            );
        }
        // The schema is still the object's.
        let s = serde_json::to_value(schemars::schema_for!(OperationRequest)).unwrap();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], serde_json::json!(["kind"]));
        assert!(s["properties"]["dryRun"].is_object(), "{s}");
    }
}
