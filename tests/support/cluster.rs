//! A MySQLCluster in a sandbox (see [`Sandbox::cluster`]): its manifest,
//! and helpers to read its state, its Services and its pods.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret};
use kube::Api;
use orca::k8s::crd::cluster::{MySQLCluster, OperationJournal, OperationStatus};
use orca::mysql::Credentials;
use orca::topology::InstanceKey;

use super::sandbox::Sandbox;

const NS: &str = "default";

/// A MySQLCluster manifest.
pub fn cluster_yaml(name: &str, replicas: u32, semi_sync: bool) -> String {
    format!(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: {name}\nspec:\n  image: mariadb:10.11\n  replicas: {replicas}\n{}",
        if semi_sync {
            "  semiSync:\n    enabled: true\n    waitCount: 1\n"
        } else {
            ""
        }
    )
}

impl Sandbox {
    /// Waits (40 s) until the pod `replica` replicates from `source`, both
    /// threads running, per the cluster's status.
    pub async fn wait_source(&self, name: &str, replica: &str, source: &str) {
        super::eventually(
            Duration::from_secs(40),
            &format!("{replica} replicating from {source}"),
            || async {
                let c = self.mysql_cluster(name).await;
                c.status?
                    .topology
                    .iter()
                    .find(|i| i.pod == replica && i.source.as_deref() == Some(source))
                    .filter(|i| {
                        i.io_thread == Some(orca::k8s::crd::cluster::ThreadState::Running)
                            && i.sql_thread == Some(orca::k8s::crd::cluster::ThreadState::Running)
                    })
                    .map(|_| ())
            },
        )
        .await;
    }

    pub async fn mysql_clusters(&self) -> Api<MySQLCluster> {
        Api::namespaced(self.client().await, NS)
    }

    pub async fn mysql_cluster(&self, name: &str) -> MySQLCluster {
        self.mysql_clusters()
            .await
            .get(name)
            .await
            .expect("get the MySQLCluster")
    }

    /// The operation journal in the cluster's status; panics naming
    /// `what` when there is none.
    pub async fn journal(&self, name: &str, what: &str) -> OperationJournal {
        self.mysql_cluster(name)
            .await
            .status
            .and_then(|s| s.operation)
            .unwrap_or_else(|| panic!("{what}: no journal in status"))
    }

    /// The primary pod per the cluster's status.
    pub async fn primary(&self, name: &str) -> String {
        let c = self.mysql_cluster(name).await;
        c.status
            .and_then(|s| s.primary)
            .unwrap_or_else(|| panic!("{name} has no primary in its status"))
    }

    /// Polls the cluster until `f` returns `Some`, at most `limit`; the
    /// failure shows `what`, the status and the end of the sandbox's log.
    async fn wait_cluster<T>(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        mut f: impl FnMut(&MySQLCluster) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.mysql_cluster(name).await;
            if let Some(v) = f(&c) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what}: {:#?}\n{}",
                c.status,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the cluster is Available and Healthy; returns its primary.
    pub async fn wait_healthy(&self, name: &str, limit: Duration) -> String {
        self.wait_cluster(name, limit, "not healthy", |c| {
            let s = c.status.as_ref()?;
            let cond = |t: &str| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == t && c.status == "True")
            };
            (cond("Available") && cond("Healthy"))
                .then(|| s.primary.clone())
                .flatten()
        })
        .await
    }

    /// Waits until the last operation is of `kind` and finished.
    pub async fn wait_operation(&self, name: &str, kind: &str, limit: Duration) -> OperationStatus {
        self.wait_cluster(name, limit, &format!("no finished {kind}"), |c| {
            c.status
                .as_ref()
                .and_then(|s| s.last_operation.clone())
                .filter(|op| {
                    serde_json::to_value(op.kind).unwrap() == kind && op.phase.is_finished()
                })
        })
        .await
    }

    /// Waits for a finished operation of `kind` and asserts it succeeded.
    pub async fn wait_succeeded(&self, name: &str, kind: &str, limit: Duration) -> OperationStatus {
        let op = self.wait_operation(name, kind, limit).await;
        assert_eq!(
            serde_json::to_value(op.phase).unwrap(),
            "Succeeded",
            "{op:?}"
        );
        op
    }

    /// The value of `key` in a cluster's credentials Secret.
    async fn credential(&self, name: &str, key: &str) -> String {
        let secrets: Api<Secret> = Api::namespaced(self.client().await, NS);
        let s = secrets
            .get(&format!("{name}-credentials"))
            .await
            .expect("the credentials Secret");
        let data = s.data.expect("data");
        let v = data
            .get(key)
            .unwrap_or_else(|| panic!("the credentials Secret has no {key}"));
        String::from_utf8(v.0.clone()).expect("utf-8")
    }

    /// The root credentials of a cluster (from its Secret).
    pub async fn root(&self, name: &str) -> Credentials {
        Credentials::new("root", self.credential(name, "root-password").await)
    }

    /// The application account of a cluster (from its Secret), which has
    /// privileges on the application's databases only: read_only stops
    /// its writes, as it does not stop root's on MariaDB.
    pub async fn app(&self, name: &str) -> Credentials {
        Credentials::new(
            self.credential(name, "app-username").await,
            self.credential(name, "app-password").await,
        )
    }

    /// The addresses behind a Service.
    pub async fn endpoints(&self, service: &str) -> Vec<InstanceKey> {
        let api: Api<Endpoints> = Api::namespaced(self.client().await, NS);
        let Some(ep) = api.get_opt(service).await.expect("endpoints") else {
            return Vec::new();
        };
        ep.subsets
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .map(|a| InstanceKey::new(a.ip, 3306))
            .collect()
    }

    /// The single address of `<name>-primary`, waiting for it to be `not`
    /// something else.
    pub async fn primary_endpoint(&self, name: &str, not: Option<&InstanceKey>) -> InstanceKey {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let eps = self.endpoints(&format!("{name}-primary")).await;
            if eps.len() == 1 && Some(&eps[0]) != not {
                return eps[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{name}-primary endpoints: {eps:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client().await, NS)
    }

    pub async fn pod_ip(&self, pod: &str) -> InstanceKey {
        let p = self.pods().await.get(pod).await.expect("pod");
        InstanceKey::new(p.status.and_then(|s| s.pod_ip).expect("pod IP"), 3306)
    }

    pub async fn pod_role(&self, pod: &str) -> Option<String> {
        self.pods()
            .await
            .get(pod)
            .await
            .ok()?
            .metadata
            .labels?
            .get("orca.dev/role")
            .cloned()
    }

    /// Event reasons (and messages) recorded for a cluster; what kubectl
    /// printed, so that a poll retries when it fails.
    pub fn event_reasons(&self, name: &str) -> String {
        self.kubectl()
            .run(
                &[
                    "get",
                    "events",
                    "--field-selector",
                    &format!("involvedObject.name={name}"),
                    "-o",
                    "custom-columns=REASON:.reason,MESSAGE:.message",
                ],
                None,
            )
            .stdout
    }
}
