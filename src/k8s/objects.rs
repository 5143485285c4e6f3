//! The Kubernetes objects of one `MySQLCluster`, built from its spec: the
//! configuration, the StatefulSet, the Services, the
//! PodDisruptionBudget and, when the pods carry the orca agent, the
//! NetworkPolicy that keeps the agent's port to the cluster's namespace
//! and the operator's. Pure: applying them is the reconciler's job.
//!
//! The pods run the official image's conventions: datadir
//! `/var/lib/mysql`, configuration from `/etc/mysql/conf.d`, the root
//! password from `MARIADB_ROOT_PASSWORD` / `MYSQL_ROOT_PASSWORD`. Each pod
//! gets a distinct `server_id` from its StatefulSet ordinal, and always
//! starts read only: only orca makes an instance writable.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::crd::cluster::{FlavorHint, MySQLCluster};
use super::crd::names::label;
use crate::mysql::dialect::semi_sync_timeout_max_ms;
use crate::topology::Flavor;

/// Keys of the credentials Secret.
pub mod secret_keys {
    /// The root password (the account orca acts as).
    pub const ROOT_PASSWORD: &str = "root-password";
    /// The replication account's password.
    pub const REPL_PASSWORD: &str = "replication-password";
    /// The application account's name (`app` when absent).
    pub const APP_USERNAME: &str = "app-username";
    /// The application account's password.
    pub const APP_PASSWORD: &str = "app-password";
    /// The token the operator and the pods' agents present to an agent.
    pub const AGENT_TOKEN: &str = "agent-token";
}

/// The orca agent in every database pod (see [`crate::agent`]): an init
/// container that carries out an armed re-provisioning before mysqld
/// starts, and a sidecar that serves the backup stream and the pod's
/// state. Both run the `orca` binary of `image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub image: String,
}

/// The agent's sidecar container.
pub const AGENT_CONTAINER: &str = "orca-agent";
/// The agent's init container.
pub const AGENT_INIT_CONTAINER: &str = "orca-agent-init";
/// The agent's scratch volume (an emptyDir at `/tmp`).
pub const AGENT_SCRATCH_VOLUME: &str = "agent-tmp";
/// The account the agent runs as: root, as the official MariaDB and MySQL
/// images' entrypoints do, so that it reads the data directory whoever
/// owns it (the backup) and writes into it; what it copies in it gives to
/// the data directory's owner (see [`crate::agent::copy::swap_in`]).
pub const AGENT_UID: i64 = 0;

/// The port `mysqld` listens on in every pod (`mysql`).
pub const MYSQL_PORT: u16 = 3306;

/// The label every namespace carries with its own name (set by the API
/// server), by which a NetworkPolicy admits a namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The replication account orca creates on the primary.
pub const REPL_USER: &str = "orca_repl";
/// The container that runs the server.
pub const CONTAINER: &str = "mysqld";
/// The label Kubernetes puts on StatefulSet pods with their ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label Kubernetes puts on StatefulSet pods with their name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the cluster has no namespace")]
    NoNamespace,
    #[error("building {what}: {source}")]
    Build {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn build<T: serde::de::DeserializeOwned>(
    what: &'static str,
    v: serde_json::Value,
) -> Result<T, ObjectError> {
    serde_json::from_value(v).map_err(|source| ObjectError::Build { what, source })
}

/// The server family of a cluster: the spec's hint, else the image name.
pub fn flavor(c: &MySQLCluster) -> Flavor {
    match c.spec.flavor {
        Some(FlavorHint::MySql) => Flavor::MySql,
        Some(FlavorHint::MariaDb) => Flavor::MariaDb,
        None => {
            let image = c.spec.image.to_ascii_lowercase();
            if image.contains("mysql") && !image.contains("mariadb") {
                Flavor::MySql
            } else {
                Flavor::MariaDb
            }
        }
    }
}

/// Labels every object and pod of the cluster carries.
pub fn cluster_labels(c: &MySQLCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::CLUSTER.to_string(), c.name_any()),
        ("app.kubernetes.io/name".to_string(), "mysql".to_string()),
        ("app.kubernetes.io/instance".to_string(), c.name_any()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "orca".to_string(),
        ),
    ])
}

/// The selector of the cluster's pods.
pub fn pod_selector(c: &MySQLCluster) -> BTreeMap<String, String> {
    BTreeMap::from([(label::CLUSTER.to_string(), c.name_any())])
}

pub fn owner_reference(c: &MySQLCluster) -> Option<OwnerReference> {
    c.controller_owner_ref(&())
}

fn metadata(c: &MySQLCluster, name: String) -> Result<serde_json::Value, ObjectError> {
    let ns = c.namespace().ok_or(ObjectError::NoNamespace)?;
    Ok(json!({
        "name": name,
        "namespace": ns,
        "labels": cluster_labels(c),
        "ownerReferences": owner_reference(c).into_iter().collect::<Vec<_>>(),
    }))
}

pub fn config_map_name(c: &MySQLCluster) -> String {
    format!("{}-config", c.name_any())
}

pub fn headless_service_name(c: &MySQLCluster) -> String {
    c.name_any()
}

pub fn primary_service_name(c: &MySQLCluster) -> String {
    format!("{}-primary", c.name_any())
}

pub fn replicas_service_name(c: &MySQLCluster) -> String {
    format!("{}-replicas", c.name_any())
}

/// The server configuration orca needs, then the user's settings (which
/// win where they repeat a name, except `read_only`: every instance
/// starts read only).
pub fn my_cnf(c: &MySQLCluster) -> String {
    let mut settings: Vec<(String, String)> = vec![
        ("log-bin".into(), "mysql-bin".into()),
        ("relay-log".into(), "relay-bin".into()),
        ("log-slave-updates".into(), "ON".into()),
        ("binlog-format".into(), "ROW".into()),
        ("skip-name-resolve".into(), "ON".into()),
        ("slave-net-timeout".into(), "4".into()),
    ];
    match flavor(c) {
        Flavor::MariaDb => settings.push(("gtid-strict-mode".into(), "ON".into())),
        Flavor::MySql => {
            settings.push(("gtid-mode".into(), "ON".into()));
            settings.push(("enforce-gtid-consistency".into(), "ON".into()));
            settings.push(("super-read-only".into(), "ON".into()));
        }
    }
    if c.spec.semi_sync.as_ref().is_some_and(|s| s.enabled) {
        let wait = c.spec.semi_sync.as_ref().map(|s| s.wait_count).unwrap_or(1);
        match flavor(c) {
            Flavor::MariaDb => {
                settings.push(("rpl-semi-sync-slave-enabled".into(), "ON".into()));
                settings.push(("rpl-semi-sync-master-enabled".into(), "OFF".into()));
                settings.push((
                    "rpl-semi-sync-master-wait-point".into(),
                    "AFTER_SYNC".into(),
                ));
                settings.push((
                    "rpl-semi-sync-master-timeout".into(),
                    semi_sync_timeout_max_ms(Flavor::MariaDb).to_string(),
                ));
                settings.push(("rpl-semi-sync-slave-kill-conn-timeout".into(), "1".into()));
            }
            Flavor::MySql => {
                settings.push((
                    "plugin-load-add".into(),
                    "semisync_source.so;semisync_replica.so".into(),
                ));
                settings.push(("rpl-semi-sync-replica-enabled".into(), "ON".into()));
                settings.push(("rpl-semi-sync-source-enabled".into(), "OFF".into()));
                settings.push((
                    "rpl-semi-sync-source-wait-for-replica-count".into(),
                    wait.to_string(),
                ));
                settings.push((
                    "rpl-semi-sync-source-timeout".into(),
                    semi_sync_timeout_max_ms(Flavor::MySql).to_string(),
                ));
            }
        }
    }
    for (k, v) in &c.spec.mysqld_config {
        let norm = k.replace('_', "-");
        if norm == "read-only" || norm == "super-read-only" {
            continue;
        }
        settings.retain(|(name, _)| name != &norm);
        settings.push((norm, v.clone()));
    }
    settings.push(("read-only".into(), "ON".into()));
    let mut out = String::from("# Written by orca from the MySQLCluster spec.\n[mysqld]\n");
    for (k, v) in settings {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

pub fn config_map(c: &MySQLCluster) -> Result<ConfigMap, ObjectError> {
    build(
        "the ConfigMap",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(c, config_map_name(c))?,
            "data": { "orca.cnf": my_cnf(c) },
        }),
    )
}

/// A credentials Secret holding the given passwords (root, replication,
/// application), for a cluster that names none that exists (the operator
/// draws them at random); the application account is [`DEFAULT_USER`](super::accounts::DEFAULT_USER).
pub fn credentials_secret(
    c: &MySQLCluster,
    root: &str,
    repl: &str,
    app: &str,
    agent_token: &str,
) -> Result<Secret, ObjectError> {
    build(
        "the credentials Secret",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(c, c.credentials_secret_name())?,
            "type": "Opaque",
            "stringData": {
                secret_keys::ROOT_PASSWORD: root,
                secret_keys::REPL_PASSWORD: repl,
                secret_keys::APP_USERNAME: super::accounts::DEFAULT_USER,
                secret_keys::APP_PASSWORD: app,
                secret_keys::AGENT_TOKEN: agent_token,
            },
        }),
    )
}

/// The value of `key` in a Secret (`data`, else `stringData`), unless
/// empty.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned();
    data.or(string).filter(|s| !s.is_empty())
}

/// The application account of a credentials Secret: `app-username`
/// (default `app`) and `app-password`; `None` while it has no password.
pub fn app_credentials(secret: &Secret) -> Option<crate::mysql::Credentials> {
    let password = secret_value(secret, secret_keys::APP_PASSWORD)?;
    let user = secret_value(secret, secret_keys::APP_USERNAME)
        .unwrap_or_else(|| super::accounts::DEFAULT_USER.to_string());
    Some(crate::mysql::Credentials::new(user, password))
}

/// The agent token of a credentials Secret, `None` while it has none.
pub fn agent_token(secret: &Secret) -> Option<String> {
    secret_value(secret, secret_keys::AGENT_TOKEN)
}

/// Whether a credentials Secret lacks a key orca draws itself: one of the
/// application account, or the agent token.
pub fn lacks_generated_keys(secret: &Secret) -> bool {
    secret_value(secret, secret_keys::APP_USERNAME).is_none()
        || secret_value(secret, secret_keys::APP_PASSWORD).is_none()
        || agent_token(secret).is_none()
}

/// The merge patch that adds the missing keys orca draws itself to an
/// existing credentials Secret (a cluster created before orca had the
/// application account or the agent, or a Secret of the user's without
/// them): the application account's default name and `password`, the
/// agent's `token`; keys already there are kept. Conditional on the
/// Secret's resourceVersion, so that a concurrent change is not
/// overwritten. `None` when nothing is missing.
pub fn generated_keys_patch(
    secret: &Secret,
    password: &str,
    token: &str,
) -> Option<serde_json::Value> {
    let mut data = serde_json::Map::new();
    let mut add = |key: &str, value: &str| {
        if secret_value(secret, key).is_none() {
            data.insert(
                key.to_string(),
                json!(k8s_openapi::ByteString(value.as_bytes().to_vec())),
            );
        }
    };
    add(secret_keys::APP_USERNAME, super::accounts::DEFAULT_USER);
    add(secret_keys::APP_PASSWORD, password);
    add(secret_keys::AGENT_TOKEN, token);
    if data.is_empty() {
        return None;
    }
    Some(json!({
        "metadata": { "resourceVersion": secret.metadata.resource_version },
        "data": data,
    }))
}

/// How long Kubernetes lets a pod stop (preStop hook, then SIGTERM)
/// before it kills it.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;

/// How long, at most, the preStop hook waits for the handover: the
/// grace period less the time mysqld needs to shut down cleanly.
pub const PRE_STOP_WAIT_SECONDS: i64 = TERMINATION_GRACE_SECONDS - 5;

/// The preStop hook: a pod that is the primary (writable, or read only
/// without replicating: fenced by a takeover in progress) waits until orca
/// has completed the handover, that is until it replicates from another
/// source with its IO thread running (the new primary promoted, the old
/// one repointed to it) — not merely until it is read only, which the
/// takeover makes it before the new primary has caught up. A replica stops
/// at once; so does a server that does not answer. The wait is bounded by
/// [`PRE_STOP_WAIT_SECONDS`] (`{wait}` below); each client call by a
/// 2 s connect timeout and, where `timeout` exists, 3 s in all. The client reads the admin
/// password from `MYSQL_PWD`, set from the container's environment inside
/// the hook: it is never on a command line, nor printed.
const PRE_STOP_TEMPLATE: &str = r#"end=$(( $(date +%s) + {wait} ))
MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD}"; export MYSQL_PWD
b() { if command -v timeout >/dev/null 2>&1; then timeout 3 "$@"; else "$@"; fi; }
q() { b mariadb --connect-timeout=2 -uroot -h"$POD_IP" -B -e "$1" 2>/dev/null || b mysql --connect-timeout=2 -uroot -h"$POD_IP" -B -e "$1" 2>/dev/null; }
look() {
  ro=$(q 'SELECT @@global.read_only AS ro' | tail -n 1) || return 1
  [ -n "$ro" ] || return 1
  st=$(q 'SHOW REPLICA STATUS\G' || q 'SHOW SLAVE STATUS\G') || st=""
  src=$(printf '%s\n' "$st" | sed -n -E 's/^ *(Master|Source)_Host: *//p' | head -n 1)
  io=$(printf '%s\n' "$st" | sed -n -E 's/^ *(Slave|Replica)_IO_Running: *//p' | head -n 1)
}
look || exit 0
[ "$ro" = 1 ] && [ -n "$src" ] && exit 0
while [ "$(date +%s)" -lt "$end" ]; do
  if look && [ -n "$src" ] && [ "$src" != "$POD_IP" ] && [ "$io" = Yes ]; then exit 0; fi
  sleep 0.5
done
exit 0"#;

/// The preStop hook's script ([`PRE_STOP_TEMPLATE`]).
pub fn pre_stop_script() -> String {
    PRE_STOP_TEMPLATE.replace("{wait}", &PRE_STOP_WAIT_SECONDS.to_string())
}

/// The agent's containers: the init container and the sidecar, both on
/// the data volume, the sidecar on [`crate::agent::PORT`]. The token and
/// the root password come from the credentials Secret, never from the
/// spec.
fn agent_containers(c: &MySQLCluster, a: &AgentSpec) -> (serde_json::Value, serde_json::Value) {
    let secret = c.credentials_secret_name();
    let from = |key: &str| json!({ "secretKeyRef": { "name": secret, "key": key } });
    let env = json!([
        { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
        { "name": crate::agent::TOKEN_ENV, "valueFrom": from(secret_keys::AGENT_TOKEN) },
        { "name": "MARIADB_ROOT_PASSWORD", "valueFrom": from(secret_keys::ROOT_PASSWORD) },
    ]);
    let security = json!({
        "runAsUser": AGENT_UID,
        "runAsGroup": AGENT_UID,
        "allowPrivilegeEscalation": false,
    });
    // the data volume, and a scratch directory (the image has none of
    // its own: it is built from scratch)
    let data = json!([
        { "name": "data", "mountPath": "/var/lib/mysql" },
        { "name": AGENT_SCRATCH_VOLUME, "mountPath": "/tmp" },
    ]);
    let init = json!({
        "name": AGENT_INIT_CONTAINER,
        "image": a.image,
        "args": ["agent", "init", "--datadir", "/var/lib/mysql"],
        "env": env,
        "securityContext": security,
        "volumeMounts": data,
    });
    let sidecar = json!({
        "name": AGENT_CONTAINER,
        "image": a.image,
        "args": ["agent", "serve", "--datadir", "/var/lib/mysql"],
        "env": env,
        "ports": [{ "name": "agent", "containerPort": crate::agent::PORT }],
        "securityContext": security,
        "volumeMounts": data,
    });
    (init, sidecar)
}

/// The StatefulSet of a cluster's pods; with `agent`, each pod carries
/// the orca agent ([`AgentSpec`]).
pub fn stateful_set(
    c: &MySQLCluster,
    agent: Option<&AgentSpec>,
) -> Result<StatefulSet, ObjectError> {
    let name = c.name_any();
    let secret = c.credentials_secret_name();
    let root_pw = json!({ "secretKeyRef": { "name": secret, "key": secret_keys::ROOT_PASSWORD } });
    let mut labels = cluster_labels(c);
    labels.insert(label::ROLE.to_string(), label::ROLE_REPLICA.to_string());
    let mut container = json!({
        "name": CONTAINER,
        "image": c.spec.image,
        "args": ["--server-id=1$(POD_INDEX)", "--report-host=$(POD_IP)"],
        "env": [
            { "name": "POD_INDEX", "valueFrom": { "fieldRef": { "fieldPath": format!("metadata.labels['{POD_INDEX_LABEL}']") } } },
            { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
            { "name": "MARIADB_ROOT_PASSWORD", "valueFrom": root_pw.clone() },
            { "name": "MYSQL_ROOT_PASSWORD", "valueFrom": root_pw },
        ],
        "ports": [{ "name": "mysql", "containerPort": MYSQL_PORT }],
        "readinessProbe": {
            "tcpSocket": { "port": MYSQL_PORT },
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "lifecycle": {
            "preStop": { "exec": { "command": ["sh", "-c", pre_stop_script()] } },
        },
        "volumeMounts": [
            { "name": "config", "mountPath": "/etc/mysql/conf.d" },
            { "name": "data", "mountPath": "/var/lib/mysql" },
        ],
    });
    if let Some(r) = &c.spec.resources {
        container["resources"] = serde_json::to_value(r).map_err(|source| ObjectError::Build {
            what: "the container resources",
            source,
        })?;
    }
    let mut containers = vec![container];
    let mut init_containers = Vec::new();
    let mut volumes =
        vec![json!({ "name": "config", "configMap": { "name": config_map_name(c) } })];
    if let Some(a) = agent {
        let (init, sidecar) = agent_containers(c, a);
        init_containers.push(init);
        containers.push(sidecar);
        volumes.push(json!({ "name": AGENT_SCRATCH_VOLUME, "emptyDir": {} }));
    }
    let mut pvc_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": { "requests": { "storage": c.spec.storage.size.0 } },
    });
    if let Some(class) = &c.spec.storage.storage_class_name {
        pvc_spec["storageClassName"] = json!(class);
    }
    build(
        "the StatefulSet",
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata(c, name.clone())?,
            "spec": {
                "serviceName": headless_service_name(c),
                "replicas": c.spec.replicas,
                "podManagementPolicy": "Parallel",
                "selector": { "matchLabels": pod_selector(c) },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                        "initContainers": init_containers,
                        "containers": containers,
                        "volumes": volumes,
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": pvc_spec,
                }],
            },
        }),
    )
}

fn service(
    c: &MySQLCluster,
    name: String,
    selector: BTreeMap<String, String>,
    headless: bool,
) -> Result<Service, ObjectError> {
    let mut spec = json!({
        "selector": selector,
        "ports": [{ "name": "mysql", "port": 3306, "targetPort": 3306 }],
    });
    if headless {
        spec["clusterIP"] = json!("None");
        spec["publishNotReadyAddresses"] = json!(true);
    }
    build(
        "a Service",
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(c, name)?,
            "spec": spec,
        }),
    )
}

pub fn headless_service(c: &MySQLCluster) -> Result<Service, ObjectError> {
    service(c, headless_service_name(c), pod_selector(c), true)
}

/// The Service for writes: the pod labelled primary, pinned by pod name
/// to the primary orca chose, so that two pods can never both receive
/// writes through it.
pub fn primary_service(
    c: &MySQLCluster,
    primary_pod: Option<&str>,
) -> Result<Service, ObjectError> {
    let mut selector = pod_selector(c);
    selector.insert(label::ROLE.to_string(), label::ROLE_PRIMARY.to_string());
    // Before orca has chosen a primary, the pin matches no pod.
    selector.insert(
        POD_NAME_LABEL.to_string(),
        primary_pod.unwrap_or("none").to_string(),
    );
    service(c, primary_service_name(c), selector, false)
}

pub fn replicas_service(c: &MySQLCluster) -> Result<Service, ObjectError> {
    let mut selector = pod_selector(c);
    selector.insert(label::ROLE.to_string(), label::ROLE_REPLICA.to_string());
    service(c, replicas_service_name(c), selector, false)
}

pub fn pod_disruption_budget(c: &MySQLCluster) -> Result<PodDisruptionBudget, ObjectError> {
    build(
        "the PodDisruptionBudget",
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(c, c.name_any())?,
            "spec": {
                "maxUnavailable": 1,
                "selector": { "matchLabels": pod_selector(c) },
            },
        }),
    )
}

/// The name of the agent's NetworkPolicy: `<cluster>-orca-agent`.
pub fn network_policy_name(c: &MySQLCluster) -> String {
    format!("{}-{AGENT_CONTAINER}", c.name_any())
}

/// The NetworkPolicy of a cluster whose pods carry the orca agent
/// ([`network_policy_name`]), over the cluster's pods ([`pod_selector`]),
/// for their ingress only: `mysqld`'s port ([`MYSQL_PORT`]) stays open to
/// every client, as without a policy; the agent's
/// ([`crate::agent::PORT`]) admits the pods of the cluster's own
/// namespace and those of the operator's, `operator_namespace`, by its
/// [`NAMESPACE_NAME_LABEL`]. Those are every port the pods expose
/// ([`stateful_set`]); any other ingress to the pods is refused where
/// policies are enforced. Egress is left alone.
pub fn network_policy(
    c: &MySQLCluster,
    operator_namespace: &str,
) -> Result<NetworkPolicy, ObjectError> {
    build(
        "the NetworkPolicy",
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(c, network_policy_name(c))?,
            "spec": {
                "podSelector": { "matchLabels": pod_selector(c) },
                "policyTypes": ["Ingress"],
                "ingress": [
                    { "ports": [{ "protocol": "TCP", "port": MYSQL_PORT }] },
                    {
                        "from": [
                            { "podSelector": {} },
                            { "namespaceSelector": { "matchLabels": {
                                (NAMESPACE_NAME_LABEL): operator_namespace,
                            } } },
                        ],
                        "ports": [{ "protocol": "TCP", "port": crate::agent::PORT }],
                    },
                ],
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::cluster::MySQLClusterSpec;

    fn cluster(yaml: &str) -> MySQLCluster {
        let spec: MySQLClusterSpec = serde_yaml_ng::from_str(yaml).unwrap();
        let mut c = MySQLCluster::new("db", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    #[test]
    fn the_pre_stop_hook_waits_for_a_completed_handover_within_the_grace_period() {
        let script = pre_stop_script();
        // Bounded below the grace period the StatefulSet sets.
        assert!(script.starts_with(&format!("end=$(( $(date +%s) + {PRE_STOP_WAIT_SECONDS} ))")));
        const { assert!(PRE_STOP_WAIT_SECONDS < TERMINATION_GRACE_SECONDS) };
        let sts = stateful_set(&cluster("image: mariadb:10.11\n"), None).unwrap();
        let pod = sts.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.termination_grace_period_seconds,
            Some(TERMINATION_GRACE_SECONDS)
        );
        let hook = pod.containers[0]
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
            .unwrap();
        assert_eq!(hook, vec!["sh".to_string(), "-c".into(), script.clone()]);
        // Done when it replicates from another source, IO thread running,
        // not when it is merely read only.
        assert!(script.contains("SHOW REPLICA STATUS"), "{script}");
        assert!(script.contains("SHOW SLAVE STATUS"), "{script}");
        assert!(
            script.contains(r#"[ "$src" != "$POD_IP" ] && [ "$io" = Yes ]"#),
            "{script}"
        );
        // The password goes through MYSQL_PWD, never on a command line.
        assert!(script.contains("export MYSQL_PWD"), "{script}");
        assert!(!script.contains(" -p"), "{script}");
    }

    #[test]
    fn with_an_agent_every_pod_carries_its_init_container_and_sidecar() {
        let c = cluster("image: mariadb:10.11\n");
        let bare = serde_json::to_value(stateful_set(&c, None).unwrap()).unwrap();
        let pod = &bare["spec"]["template"]["spec"];
        assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
        assert_eq!(pod["initContainers"], json!([]));
        let agent = AgentSpec {
            image: "ghcr.io/orca/orca:1.2".into(),
        };
        let v = serde_json::to_value(stateful_set(&c, Some(&agent)).unwrap()).unwrap();
        let pod = &v["spec"]["template"]["spec"];
        let (init, side) = (&pod["initContainers"][0], &pod["containers"][1]);
        assert_eq!(pod["containers"][0]["name"], CONTAINER);
        for (ctr, name, mode) in [
            (init, AGENT_INIT_CONTAINER, "init"),
            (side, AGENT_CONTAINER, "serve"),
        ] {
            assert_eq!(ctr["name"], name);
            assert_eq!(ctr["image"], "ghcr.io/orca/orca:1.2");
            assert_eq!(
                ctr["args"],
                json!(["agent", mode, "--datadir", "/var/lib/mysql"])
            );
            // on the server's data volume, as the server's account
            assert_eq!(
                ctr["volumeMounts"][0],
                json!({"name": "data", "mountPath": "/var/lib/mysql"})
            );
            assert_eq!(ctr["volumeMounts"][1]["mountPath"], "/tmp");
            assert_eq!(ctr["securityContext"]["runAsUser"], AGENT_UID);
            // the token and the password from the Secret, never inline
            let env = ctr["env"].as_array().unwrap();
            let by = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
            assert_eq!(
                by(crate::agent::TOKEN_ENV)["valueFrom"]["secretKeyRef"],
                json!({"name": c.credentials_secret_name(), "key": "agent-token"})
            );
            assert_eq!(
                by("MARIADB_ROOT_PASSWORD")["valueFrom"]["secretKeyRef"]["key"],
                "root-password"
            );
            assert!(env.iter().all(|e| e.get("value").is_none()), "{env:?}");
            assert_eq!(
                by("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"],
                "status.podIP"
            );
        }
        assert_eq!(side["ports"][0]["containerPort"], crate::agent::PORT);
        assert!(init.get("ports").is_none());
        assert_eq!(
            pod["volumes"][1],
            json!({"name": AGENT_SCRATCH_VOLUME, "emptyDir": {}})
        );
    }

    #[test]
    fn config_starts_read_only_and_keeps_user_settings() {
        let c = cluster(
            "image: mariadb:10.11\nmysqldConfig:\n  max_connections: '500'\n  read_only: 'OFF'\n  binlog_format: MIXED\n",
        );
        let cnf = my_cnf(&c);
        assert!(cnf.contains("max-connections = 500"), "{cnf}");
        assert!(
            cnf.contains("binlog-format = MIXED") && !cnf.contains("binlog-format = ROW"),
            "{cnf}"
        );
        assert!(cnf.trim_end().ends_with("read-only = ON"), "{cnf}");
        assert!(!cnf.contains("read-only = OFF"), "{cnf}");
        assert!(cnf.contains("gtid-strict-mode = ON"));
        let m = cluster("image: mysql:8.4\nsemiSync:\n  enabled: true\n  waitCount: 1\n");
        let cnf = my_cnf(&m);
        assert!(
            cnf.contains("gtid-mode = ON") && cnf.contains("super-read-only = ON"),
            "{cnf}"
        );
        assert!(cnf.contains("rpl-semi-sync-replica-enabled = ON"), "{cnf}");
    }

    #[test]
    fn stateful_set_has_the_conventions_pods_rely_on() {
        let c = cluster("image: mariadb:10.11\nreplicas: 3\nstorage:\n  size: 2Gi\n");
        let sts = stateful_set(&c, None).unwrap();
        let v = serde_json::to_value(&sts).unwrap();
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "MySQLCluster");
        assert_eq!(v["spec"]["replicas"], 3);
        assert_eq!(v["spec"]["serviceName"], "db");
        let ctr = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(ctr["image"], "mariadb:10.11");
        assert_eq!(ctr["args"][0], "--server-id=1$(POD_INDEX)");
        assert_eq!(
            ctr["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        assert_eq!(
            ctr["env"][2]["valueFrom"]["secretKeyRef"]["name"],
            "db-credentials"
        );
        assert_eq!(
            v["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"]["orca.dev/role"],
            "replica"
        );
    }

    #[test]
    fn services_select_by_role_and_pin_the_primary() {
        let c = cluster("image: mariadb:10.11\n");
        let p = primary_service(&c, Some("db-1")).unwrap();
        let sel = p.spec.unwrap().selector.unwrap();
        assert_eq!(
            sel.get("orca.dev/role").map(String::as_str),
            Some("primary")
        );
        assert_eq!(sel.get(POD_NAME_LABEL).map(String::as_str), Some("db-1"));
        let none = primary_service(&c, None).unwrap();
        assert_eq!(
            none.spec
                .unwrap()
                .selector
                .unwrap()
                .get(POD_NAME_LABEL)
                .map(String::as_str),
            Some("none")
        );
        let h = headless_service(&c).unwrap().spec.unwrap();
        assert_eq!(h.cluster_ip.as_deref(), Some("None"));
        let r = replicas_service(&c)
            .unwrap()
            .spec
            .unwrap()
            .selector
            .unwrap();
        assert_eq!(r.get("orca.dev/role").map(String::as_str), Some("replica"));
        assert!(pod_disruption_budget(&c).is_ok());
        assert!(config_map(&c).unwrap().data.unwrap()["orca.cnf"].contains("[mysqld]"));
        let s = credentials_secret(&c, "a", "b", "c", "t").unwrap();
        let data = s.string_data.clone().unwrap();
        assert_eq!(data["root-password"], "a");
        assert_eq!(data["replication-password"], "b");
        assert_eq!(data["app-username"], "app");
        assert_eq!(data["app-password"], "c");
        assert_eq!(data["agent-token"], "t");
        assert!(!lacks_generated_keys(&s));
        let app = app_credentials(&s).unwrap();
        assert_eq!((app.user.as_str(), app.password()), ("app", "c"));
    }

    fn secret(data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.resource_version = Some("7".into());
        if !data.is_empty() {
            s.data = Some(
                data.iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            k8s_openapi::ByteString(v.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            );
        }
        if !string_data.is_empty() {
            s.string_data = Some(
                string_data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        s
    }

    #[test]
    fn missing_generated_keys_are_added_and_present_ones_kept() {
        let b64 = |v: &str| json!(k8s_openapi::ByteString(v.as_bytes().to_vec()));
        assert_eq!(b64("app"), json!("YXBw"));
        let (user, pw) = (secret_keys::APP_USERNAME, secret_keys::APP_PASSWORD);
        let tk = secret_keys::AGENT_TOKEN;
        // (data, stringData, keys the patch adds)
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Pairs, Pairs, Pairs)] = &[
            (
                &[("root-password", "r")],
                &[],
                &[(user, "app"), (pw, "gen"), (tk, "tok")],
            ),
            (&[(user, "shop"), (tk, "t")], &[], &[(pw, "gen")]),
            (&[(pw, "mine"), (tk, "t")], &[], &[(user, "app")]),
            (&[(user, ""), (tk, "t")], &[], &[(user, "app"), (pw, "gen")]),
            // a Secret from before the agent: only its token is added
            (&[(user, "shop"), (pw, "mine")], &[], &[(tk, "tok")]),
            (
                &[(user, "shop"), (pw, "mine"), (tk, "")],
                &[],
                &[(tk, "tok")],
            ),
            (&[(user, "shop"), (pw, "mine"), (tk, "t")], &[], &[]),
            (&[], &[(user, "shop"), (pw, "mine"), (tk, "t")], &[]),
        ];
        for (data, string_data, want) in cases {
            let s = secret(data, string_data);
            let patch = generated_keys_patch(&s, "gen", "tok");
            assert_eq!(lacks_generated_keys(&s), patch.is_some(), "{data:?}");
            let Some(patch) = patch else {
                assert!(want.is_empty(), "{data:?}");
                continue;
            };
            assert_eq!(patch["metadata"]["resourceVersion"], "7");
            let added = patch["data"].as_object().unwrap();
            assert_eq!(added.len(), want.len(), "{data:?}: {patch}");
            for (k, v) in *want {
                assert_eq!(added[*k], b64(v), "{data:?}");
            }
        }
        // A password without a name is the default name's.
        let app = app_credentials(&secret(&[(pw, "mine")], &[])).unwrap();
        assert_eq!(app.user, "app");
        assert!(app_credentials(&secret(&[(user, "shop")], &[])).is_none());
    }

    #[test]
    fn the_network_policy_keeps_the_agent_to_the_namespace_and_the_operators() {
        let named = |name: &str, ns: &str| {
            let mut c = cluster("image: mariadb:10.11\n");
            c.metadata.name = Some(name.into());
            c.metadata.namespace = Some(ns.into());
            c
        };
        // (cluster, its namespace, the operator's, the policy's name)
        let cases = [
            ("db", "ns", "orca-system", "db-orca-agent"),
            ("shop", "prod", "orca", "shop-orca-agent"),
            // the operator beside the cluster: the same namespace twice
            ("db", "orca", "orca", "db-orca-agent"),
        ];
        for (name, ns, operator, policy) in cases {
            let c = named(name, ns);
            let v = serde_json::to_value(network_policy(&c, operator).unwrap()).unwrap();
            let what = format!("{name} in {ns}, the operator in {operator}");
            assert_eq!(v["apiVersion"], "networking.k8s.io/v1", "{what}");
            assert_eq!(v["kind"], "NetworkPolicy", "{what}");
            assert_eq!(v["metadata"]["name"], policy, "{what}");
            assert_eq!(v["metadata"]["namespace"], ns, "{what}");
            assert_eq!(
                v["metadata"]["labels"][label::CLUSTER],
                name,
                "the watch cache sees it: {what}"
            );
            let owner = &v["metadata"]["ownerReferences"][0];
            assert_eq!(
                (&owner["kind"], &owner["name"], &owner["controller"]),
                (&json!("MySQLCluster"), &json!(name), &json!(true)),
                "{what}"
            );
            assert_eq!(
                v["spec"],
                json!({
                    // the StatefulSet's pods, every one of them
                    "podSelector": { "matchLabels": { (label::CLUSTER): name } },
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        { "ports": [{ "protocol": "TCP", "port": 3306 }] },
                        {
                            "from": [
                                { "podSelector": {} },
                                { "namespaceSelector": { "matchLabels": {
                                    "kubernetes.io/metadata.name": operator,
                                } } },
                            ],
                            "ports": [{ "protocol": "TCP", "port": 3309 }],
                        },
                    ],
                }),
                "{what}"
            );
        }
        assert!(network_policy(&named("db", "ns"), "orca").is_ok());
        let mut homeless = named("db", "ns");
        homeless.metadata.namespace = None;
        assert!(matches!(
            network_policy(&homeless, "orca"),
            Err(ObjectError::NoNamespace)
        ));
    }

    #[test]
    fn the_network_policy_covers_every_port_the_pods_expose() {
        let c = cluster("image: mariadb:10.11\n");
        let agent = AgentSpec {
            image: "ghcr.io/orca/orca:1.2".into(),
        };
        let sts = serde_json::to_value(stateful_set(&c, Some(&agent)).unwrap()).unwrap();
        let policy = serde_json::to_value(network_policy(&c, "orca").unwrap()).unwrap();
        assert_eq!(
            sts["spec"]["selector"]["matchLabels"], policy["spec"]["podSelector"]["matchLabels"],
            "the policy selects the StatefulSet's pods"
        );
        let rules = policy["spec"]["ingress"].as_array().unwrap();
        let rule_of = |port: &serde_json::Value| {
            rules
                .iter()
                .find(|r| {
                    r["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["port"] == *port)
                })
                .unwrap_or_else(|| panic!("no rule for port {port}: {policy}"))
        };
        let mut seen = Vec::new();
        for ctr in sts["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            for p in ctr["ports"].as_array().into_iter().flatten() {
                let rule = rule_of(&p["containerPort"]);
                if p["name"] == "agent" {
                    // restricted
                    assert!(
                        rule["from"].as_array().is_some_and(|f| f.len() == 2),
                        "{rule}"
                    );
                } else {
                    // open to anyone, as without a policy
                    assert!(rule.get("from").is_none(), "{}: {rule}", p["name"]);
                }
                seen.push(p["name"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(seen, ["mysql", "agent"]);
    }
}
