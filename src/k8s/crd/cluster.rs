//! The `MySQLCluster` custom resource: one replicated MySQL or MariaDB
//! cluster, run as a StatefulSet and managed by orca.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::checks::{Problems, check_dns_subdomain, check_quantity};
use super::schema::{optional_enum, quantity};

/// Desired state of a replicated MySQL or MariaDB cluster.
// Several `printcolumn(...)` share a `type_`: not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "orca.dev",
    version = "v1alpha1",
    kind = "MySQLCluster",
    plural = "mysqlclusters",
    singular = "mysqlcluster",
    shortname = "mysql",
    category = "orca",
    namespaced,
    status = "MySQLClusterStatus",
    derive = "PartialEq",
    doc = "A replicated MySQL or MariaDB cluster managed by orca.",
    printcolumn(
        name = "Primary",
        type_ = "string",
        json_path = ".status.primary",
        description = "Pod of the current primary"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Instances that are up and replicating as they should"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Healthy\")].status",
        description = "Status of the Healthy condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterSpec {
    /// Container image of the database server, e.g. `mariadb:11.4` or `mysql:8.4`.
    #[schemars(length(min = 1))]
    pub image: String,

    /// Server family of the image. When absent, orca detects it from the
    /// running server's version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<FlavorHint>")]
    pub flavor: Option<FlavorHint>,

    /// Number of instances: one primary and `replicas - 1` replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Extra my.cnf settings for the `[mysqld]` section, as `name: value`.
    /// Values are strings: quote numbers and `ON`/`OFF` in YAML. Settings
    /// that orca manages itself (server id, report host, read only, the GTID
    /// and binary log settings it needs) take precedence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mysqld_config: BTreeMap<String, String>,

    /// Persistent storage of each instance.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Compute resources of the database container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Semi-synchronous replication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semi_sync: Option<SemiSyncSpec>,

    /// Name of a Secret in the same namespace holding the credentials orca
    /// uses. When absent, orca generates one named `<cluster>-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// Databases of the application account (`app-username` and
    /// `app-password` in the credentials Secret, generated when absent):
    /// orca creates them on the primary and grants the account every
    /// privilege on them, and nothing else, so that `read_only` stops its
    /// writes on replicas and on a fenced former primary. Name each one
    /// (no wildcards, no system schema). Grants are only added: removing a
    /// name does not revoke its grant.
    #[serde(default = "default_app_databases")]
    pub app_databases: Vec<String>,

    /// Name of a FailoverPolicy in the same namespace. When absent, orca
    /// uses the defaults of an empty FailoverPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_policy_ref: Option<String>,

    /// What orca does with a replica replication cannot bring back (it
    /// holds transactions the primary lacks, or its source purged the
    /// binary logs it needs: a lost volume, a scale-up of an old
    /// cluster). `auto` (the default): orca records what only that
    /// replica has (the errant GTIDs, in an Event and the store, and its
    /// binary log events in a file on its volume), then re-provisions it
    /// by a physical copy of a healthy replica, one copy at a time.
    /// `manual`: orca reports it and waits for the annotation
    /// `orca.dev/reprovision: <pod>`. Needs the agent (the chart's
    /// `agent.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<ReplicaRepair>")]
    pub replica_repair: Option<ReplicaRepair>,
}

/// `spec.replicaRepair`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ReplicaRepair {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "manual")]
    Manual,
}

impl ReplicaRepair {
    pub fn policy(self) -> crate::plan::repair::RepairPolicy {
        match self {
            ReplicaRepair::Auto => crate::plan::repair::RepairPolicy::Auto,
            ReplicaRepair::Manual => crate::plan::repair::RepairPolicy::Manual,
        }
    }
}

fn default_replicas() -> i32 {
    3
}

fn default_app_databases() -> Vec<String> {
    vec![crate::k8s::accounts::DEFAULT_DATABASE.to_string()]
}

/// The server family, when the user states it instead of letting orca
/// detect it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FlavorHint {
    #[serde(rename = "mysql")]
    MySql,
    #[serde(rename = "mariadb")]
    MariaDb,
}

/// Persistent storage of each instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each instance's volume, as a Kubernetes quantity (`10Gi`).
    #[serde(default = "default_storage_size")]
    #[schemars(schema_with = "quantity")]
    pub size: Quantity,

    /// StorageClass of the volumes. When absent, the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_storage_size() -> Quantity {
    Quantity("1Gi".to_string())
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

/// Semi-synchronous replication settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SemiSyncSpec {
    /// Whether the primary waits for replica acknowledgements on commit.
    #[serde(default)]
    pub enabled: bool,

    /// How many replicas must acknowledge a transaction before its commit
    /// returns (`rpl_semi_sync_master_wait_for_slave_count`).
    #[serde(default = "default_wait_count")]
    #[schemars(range(min = 1))]
    pub wait_count: i32,
}

fn default_wait_count() -> i32 {
    1
}

impl Default for SemiSyncSpec {
    fn default() -> Self {
        SemiSyncSpec {
            enabled: false,
            wait_count: default_wait_count(),
        }
    }
}

/// Observed state of a cluster, written by orca.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterStatus {
    /// Conditions of types Available, Healthy, Degraded, Failed and Reconciling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Pod name of the current primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,

    /// Instances that are up and replicating as they should (the primary
    /// counts when it is writable).
    #[serde(default)]
    pub ready_replicas: i32,

    /// Fencing epoch of the orca leader that last changed the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,

    /// The discovered replication topology, one entry per instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub topology: Vec<InstanceStatus>,

    /// The last operation (failover, takeover, recovery) and how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<OperationStatus>,

    /// The `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The operation in progress, written before its first step that
    /// changes a server and again right before its point of no return;
    /// present only while it runs. An operator that starts and finds it
    /// rolls the operation forward or back from it and what the servers
    /// show, and never starts it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationJournal>,

    /// Former primaries still to be fenced when they answer again (pod
    /// names, or addresses when no pod has them), kept across operator
    /// restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_fences: Vec<String>,

    /// The re-provisioning by physical copy under way, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision: Option<ReprovisionStatus>,
}

/// A re-provisioning by physical copy (`status.reprovision`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionStatus {
    /// The operation's id (in Events, the store, the agent's files).
    pub id: String,
    /// The pod re-provisioned.
    pub pod: String,
    /// Why: `ErrantTransactions`, `SourceCannotSend` or `Requested`.
    pub reason: String,
    /// `Saving` (the tail), `Copying`, `Joining`, `Succeeded`, `Failed`.
    pub phase: String,
    /// The pod copied from, in the attempt under way or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Bytes received so far, and the source's estimate of the whole.
    #[serde(default)]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_bytes: Option<u64>,
    /// Bytes per second.
    #[serde(default)]
    pub rate: u64,
    /// The attempt (one per source tried).
    #[serde(default)]
    pub attempt: u32,
    /// Outcome or what is awaited, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The journal of an operation in progress (`status.operation`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationJournal {
    /// The operation's id, as in logs, records and hook payloads.
    pub id: String,

    /// What the operation is.
    pub kind: OperationKind,

    /// Pod that the operation promotes (the successor), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,

    /// Pod of the primary the operation replaces, when it replaces one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,

    /// Fencing epoch of the orca leader running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,

    /// The step about to run, or last run (from 1), of the plan running
    /// (an automatic failover runs its fence and its promotion as two
    /// plans).
    pub step: u32,

    /// The number of steps of the plan running.
    pub steps: u32,

    /// The step, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,

    /// Whether the successor's `RESET REPLICA ALL` (the point of no
    /// return) has run: from then on the successor is the primary, and
    /// the operation can only go forward.
    #[serde(default)]
    pub point_of_no_return_passed: bool,

    /// Whether this entry was written right before the point of no return:
    /// the successor's reset may have run since (or not). When the
    /// successor does not answer, it is taken as run: another instance is
    /// never promoted in its place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_point_of_no_return: bool,

    /// When the operation started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// One instance of the discovered topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Pod name.
    pub pod: String,

    /// Address orca probes, `host:port`.
    pub address: String,

    /// Role in the replication topology.
    pub role: InstanceRole,

    /// Pod name (or address, when not a pod of this cluster) of the source
    /// this instance replicates from. Absent on the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,

    /// State of the replication IO thread. Absent when not a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<ThreadState>")]
    pub io_thread: Option<ThreadState>,

    /// State of the replication SQL thread. Absent when not a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_enum::<ThreadState>")]
    pub sql_thread: Option<ThreadState>,

    /// Replication lag in seconds. Absent when unknown or not a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,

    /// Executed GTID set (MySQL) or GTID position (MariaDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_position: Option<String>,

    /// Transactions executed here that the primary does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errant_gtids: Option<String>,

    /// Problems detected on this instance, by code (e.g. `ErrantGtid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Role of an instance in the replication topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceRole {
    /// The writable source of the cluster.
    Primary,
    /// A replica with no replicas of its own.
    Replica,
    /// A replica that is the source of other replicas.
    Intermediate,
    /// Not probed successfully.
    Unknown,
}

/// State of a replication thread, from the server's `Replica_IO_Running` /
/// `Replica_SQL_Running` (`Yes` is `Running`, `No` is `Stopped`).
///
/// The server's own words are not used as values: YAML 1.1 parsers, such as
/// kubectl's, read a bare `Yes` or `No` as a boolean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ThreadState {
    /// Running (`Yes`).
    Running,
    /// The IO thread is trying to connect to its source.
    Connecting,
    /// Stopped, by request or on error (`No`).
    Stopped,
}

/// An operation orca ran or is running on a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// What the operation is.
    pub kind: OperationKind,

    /// Pod the operation acts on or promotes, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,

    /// Where the operation stands.
    pub phase: OperationPhase,

    /// Outcome or current step, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the operation started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,

    /// When the operation ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,

    /// Fencing epoch of the orca leader that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

/// Kinds of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OperationKind {
    /// Automatic recovery of a dead primary.
    Failover,
    /// Automatic recovery of a dead intermediate primary.
    IntermediateRecovery,
    /// `orca.dev/graceful-takeover`: planned switchover.
    GracefulTakeover,
    /// `orca.dev/force-failover`: the primary is treated as dead.
    ForceFailover,
    /// `orca.dev/force-takeover`: a given replica is promoted.
    ForceTakeover,
    /// `orca.dev/recover`: recovery requested by a person.
    Recover,
    /// `orca.dev/operation`: a refactoring or an instance operation.
    Operation,
}

/// Phase of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OperationPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Stopped before its point of no return and undone: the old primary
    /// keeps the role.
    RolledBack,
}

impl OperationPhase {
    /// Whether the operation has ended.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            OperationPhase::Succeeded | OperationPhase::Failed | OperationPhase::RolledBack
        )
    }
}

/// The longest cluster name orca accepts: the StatefulSet's pods carry a
/// `controller-revision-hash` label `<name>-<10 characters>` that must fit
/// in a 63-character label value.
pub const MAX_CLUSTER_NAME_LEN: usize = 52;

impl MySQLClusterSpec {
    /// Checks what the schema cannot. Messages start with the field path
    /// (`spec.semiSync.waitCount: ...`).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Problems::default();
        if self.image.trim().is_empty() {
            p.push("spec.image", "must not be empty");
        }
        if self.replicas < 1 {
            p.push(
                "spec.replicas",
                format!("must be at least 1, got {}", self.replicas),
            );
        }
        for (key, value) in &self.mysqld_config {
            let path = format!("spec.mysqldConfig[{key}]");
            if key.is_empty()
                || key
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            {
                p.push(
                    &path,
                    "setting names may only contain letters, digits, '_', '-' and '.'",
                );
            }
            if value.contains(['\n', '\r']) {
                p.push(&path, "values must be on one line");
            }
        }
        check_quantity(&mut p, "spec.storage.size", &self.storage.size.0);
        if let Some(class) = &self.storage.storage_class_name {
            check_dns_subdomain(&mut p, "spec.storage.storageClassName", class);
        }
        if let Some(semi) = &self.semi_sync {
            if semi.wait_count < 1 {
                p.push(
                    "spec.semiSync.waitCount",
                    format!("must be at least 1, got {}", semi.wait_count),
                );
            } else if semi.enabled && semi.wait_count >= self.replicas {
                p.push(
                    "spec.semiSync.waitCount",
                    format!(
                        "must be less than spec.replicas ({}): a primary needs that many replicas to acknowledge each commit",
                        self.replicas
                    ),
                );
            }
        }
        if let Some(name) = &self.credentials_secret {
            check_dns_subdomain(&mut p, "spec.credentialsSecret", name);
        }
        if let Some(name) = &self.failover_policy_ref {
            check_dns_subdomain(&mut p, "spec.failoverPolicyRef", name);
        }
        for (i, db) in self.app_databases.iter().enumerate() {
            if let Err(e) = crate::k8s::accounts::check_database(db) {
                p.push(&format!("spec.appDatabases[{i}]"), e);
            }
        }
        p.into_result()
    }

    /// Whether semi-synchronous replication is on.
    pub fn semi_sync_enabled(&self) -> bool {
        self.semi_sync.as_ref().is_some_and(|s| s.enabled)
    }
}

impl MySQLCluster {
    /// Checks the spec ([`MySQLClusterSpec::validate`]) and the name, whose
    /// length is bounded by the objects orca derives from it.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Problems::default();
        let name = self.name_any();
        if name.len() > MAX_CLUSTER_NAME_LEN {
            p.push(
                "metadata.name",
                format!("must be no more than {MAX_CLUSTER_NAME_LEN} characters"),
            );
        }
        if let Err(errs) = self.spec.validate() {
            p.extend(errs);
        }
        p.into_result()
    }

    /// Name of the Secret with orca's credentials: `spec.credentialsSecret`,
    /// else `<cluster>-credentials`.
    pub fn credentials_secret_name(&self) -> String {
        match &self.spec.credentials_secret {
            Some(name) => name.clone(),
            None => format!("{}-credentials", self.name_any()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(extra: serde_json::Value) -> MySQLClusterSpec {
        let mut v = json!({"image": "mariadb:11.4"});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn minimal_spec_is_valid() {
        let s = spec(json!({}));
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.replicas, 3);
        assert!(!s.semi_sync_enabled());
        assert_eq!(s.app_databases, vec!["app".to_string()]);
    }

    #[test]
    fn invalid_specs_are_reported_with_paths() {
        let s = spec(json!({
            "image": " ",
            "replicas": 0,
            "mysqldConfig": {"bad key": "x", "ok_key": "two\nlines"},
            "storage": {"size": "lots", "storageClassName": "Fast_SSD"},
            "credentialsSecret": "My Secret",
            "failoverPolicyRef": "-policy",
            "appDatabases": ["app", "mysql", "app_%"]
        }));
        let errs = s.validate().unwrap_err();
        let starts: Vec<&str> = errs
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            starts,
            vec![
                "spec.image",
                "spec.replicas",
                "spec.mysqldConfig[bad key]",
                "spec.mysqldConfig[ok_key]",
                "spec.storage.size",
                "spec.storage.storageClassName",
                "spec.credentialsSecret",
                "spec.failoverPolicyRef",
                "spec.appDatabases[1]",
                "spec.appDatabases[2]",
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn semi_sync_wait_count_must_leave_a_replica_to_lose() {
        let s = spec(json!({"replicas": 3, "semiSync": {"enabled": true, "waitCount": 3}}));
        let errs = s.validate().unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("spec.semiSync.waitCount: must be less than spec.replicas (3)")
        );
        let s = spec(json!({"replicas": 3, "semiSync": {"enabled": true, "waitCount": 2}}));
        assert_eq!(s.validate(), Ok(()));
        assert!(s.semi_sync_enabled());
        // Disabled semi-sync is not checked against the replica count.
        let s = spec(json!({"replicas": 1, "semiSync": {"waitCount": 1}}));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn names_derived_from_the_cluster() {
        let mut c = MySQLCluster::new("demo", spec(json!({})));
        assert_eq!(c.credentials_secret_name(), "demo-credentials");
        assert_eq!(c.validate(), Ok(()));
        c.spec.credentials_secret = Some("mine".to_string());
        assert_eq!(c.credentials_secret_name(), "mine");
        let long = MySQLCluster::new(&"a".repeat(MAX_CLUSTER_NAME_LEN + 1), spec(json!({})));
        let errs = long.validate().unwrap_err();
        assert_eq!(
            errs,
            vec!["metadata.name: must be no more than 52 characters"]
        );
    }

    #[test]
    fn status_round_trips_in_camel_case() {
        let status = MySQLClusterStatus {
            primary: Some("demo-0".into()),
            ready_replicas: 3,
            epoch: Some(7),
            topology: vec![InstanceStatus {
                pod: "demo-1".into(),
                address: "demo-1.demo:3306".into(),
                role: InstanceRole::Replica,
                source: Some("demo-0".into()),
                io_thread: Some(ThreadState::Running),
                sql_thread: Some(ThreadState::Stopped),
                lag_seconds: Some(0.5),
                gtid_position: Some("0-1-42".into()),
                errant_gtids: None,
                problems: vec!["ReplicationStopped".into()],
            }],
            last_operation: Some(OperationStatus {
                kind: OperationKind::GracefulTakeover,
                target: Some("demo-1".into()),
                phase: OperationPhase::Running,
                message: None,
                started_at: Some("2025-01-01T00:00:00Z".into()),
                finished_at: None,
                epoch: Some(7),
            }),
            observed_generation: Some(2),
            conditions: vec![],
            operation: Some(OperationJournal {
                id: "demo-failover-1".into(),
                kind: OperationKind::Failover,
                target: Some("demo-1".into()),
                failed: Some("demo-0".into()),
                epoch: Some(7),
                step: 6,
                steps: 12,
                step_name: Some("demo-1: reset replication".into()),
                point_of_no_return_passed: false,
                at_point_of_no_return: true,
                started_at: Some("2025-01-01T00:00:00Z".into()),
            }),
            pending_fences: vec!["demo-0".into()],
            reprovision: Some(ReprovisionStatus {
                id: "demo-reprovision-1-e7".into(),
                pod: "demo-2".into(),
                reason: "ErrantTransactions".into(),
                phase: "Copying".into(),
                source: Some("demo-1".into()),
                bytes: 1024,
                estimated_bytes: Some(4096),
                rate: 512,
                attempt: 1,
                ..Default::default()
            }),
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["reprovision"]["estimatedBytes"], json!(4096));
        assert_eq!(v["readyReplicas"], json!(3));
        assert_eq!(v["topology"][0]["ioThread"], json!("Running"));
        assert_eq!(v["topology"][0]["role"], json!("replica"));
        assert_eq!(v["lastOperation"]["kind"], json!("GracefulTakeover"));
        assert!(v["topology"][0].get("errantGtids").is_none());
        let back: MySQLClusterStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, status);
        assert!(!OperationPhase::Running.is_finished());
        assert!(OperationPhase::Failed.is_finished());
        assert!(OperationPhase::RolledBack.is_finished());
        assert_eq!(v["operation"]["pointOfNoReturnPassed"], json!(false));
        assert_eq!(
            v["operation"]["stepName"],
            json!("demo-1: reset replication")
        );
        assert_eq!(v["pendingFences"], json!(["demo-0"]));
    }

    #[test]
    fn flavor_hint_names() {
        let s = spec(json!({"flavor": "mariadb"}));
        assert_eq!(s.flavor, Some(FlavorHint::MariaDb));
        let s = spec(json!({"flavor": "mysql"}));
        assert_eq!(s.flavor, Some(FlavorHint::MySql));
        assert!(
            serde_json::from_value::<MySQLClusterSpec>(json!({"image": "x", "flavor": "MySQL"}))
                .is_err()
        );
    }
}
