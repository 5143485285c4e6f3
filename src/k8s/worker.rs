//! One cluster's worker: it feeds the engine with the cluster's pods (by
//! pod IP) and Kubernetes' own signals, bootstraps replication, runs the
//! operations annotations ask for, joins new and returning pods, and turns
//! what the engine finds and does into pod labels, the primary Service's
//! selector, status and Events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::accounts;
use super::annotations::{self, Request};
use super::crd::cluster::{
    InstanceRole, InstanceStatus, MySQLCluster, MySQLClusterStatus, OperationKind, OperationPhase,
    OperationStatus, ThreadState,
};
use super::crd::names::{condition, label};
use super::crd::policy::FailoverPolicy;
use super::objects::{self, REPL_USER, secret_keys};
use super::ordinal::pod_ordinal;
use super::policy::{self, ResolvedPolicy};
use super::time;
use crate::analysis::{ExternalSignal, Finding};
use crate::engine::executor::{
    Executor, ExecutorConfig, OperationMeta, OperationRecord, Outcome, StepOutcome, operation_id,
};
use crate::engine::{ClusterEngine, EngineConfig};
use crate::mysql::Credentials;
use crate::mysql::conn::{Timeouts, connect, exec};
use crate::plan::{Plan, PlanKind, Step, membership, recovery, takeover};
use crate::topology::InstanceKey;
use crate::topology::graph::Role;
use crate::topology::instance::IoThreadState;

/// The lease time a round may need: a worker acts only while its lease is
/// valid at least this much longer.
const ROUND_BUDGET: Duration = Duration::from_secs(3);

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "orca-operator";

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Objects(#[from] objects::ObjectError),
    #[error("credentials: {0}")]
    Credentials(String),
    /// The FailoverPolicy cannot be read: the round does nothing.
    #[error("{0}")]
    PolicyUnreadable(String),
}

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
}

impl PodView {
    /// What orca knows of `pod`, a pod of the StatefulSet `set`.
    fn of(pod: &Pod, set: &str) -> PodView {
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
        }
    }
}

/// The per-cluster worker.
pub struct Worker {
    client: Client,
    namespace: String,
    name: String,
    reporter: Reporter,
    /// The engine of this cluster; its credentials come from the cluster's
    /// Secret, read again every round.
    engine: ClusterEngine,
    /// The epoch this operator acts in (the leader's lease transitions).
    pub epoch: Option<i64>,
    /// Only the holder of the current epoch acts: checked before each
    /// round, which must fit in what is left of the lease.
    pub fence: Option<crate::ha::Fence>,
    /// Instances reported as unable to rejoin, so the Event is sent once.
    reported_unjoinable: BTreeSet<InstanceKey>,
    /// Findings already turned into Events.
    announced: BTreeSet<(String, InstanceKey)>,
    /// The primary pod orca saw being deleted and already handed over.
    handed_over: BTreeSet<String>,
    /// The policy could not be read last round (and that was reported).
    policy_unreadable: bool,
    /// Malformed pod annotations reported, as (pod, annotation, value).
    reported_annotations: BTreeSet<(String, String, String)>,
    /// The malformed pod annotations of this round, as status shows them.
    invalid_annotations: Vec<String>,
    /// The application account as last made on the primary, and as last
    /// reported failing ([`accounts::fingerprint`]).
    app_account: Option<u64>,
    app_account_reported: Option<u64>,
}

fn creds_from(secret: &Secret) -> Result<(Credentials, Credentials), WorkerError> {
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

impl Worker {
    pub fn new(client: Client, namespace: String, name: String, reporter: Reporter) -> Worker {
        let executor = Executor::new(
            ExecutorConfig {
                admin: Credentials::new("root", ""),
                repl: Credentials::new(REPL_USER, ""),
                timeouts: Timeouts::default(),
            },
            Default::default(),
        );
        let engine = ClusterEngine::new(
            EngineConfig::new(format!("{namespace}/{name}")),
            executor,
            Vec::new(),
        );
        Worker {
            client,
            namespace,
            name,
            reporter,
            engine,
            epoch: None,
            fence: None,
            reported_unjoinable: BTreeSet::new(),
            announced: BTreeSet::new(),
            handed_over: BTreeSet::new(),
            policy_unreadable: false,
            reported_annotations: BTreeSet::new(),
            invalid_annotations: Vec::new(),
            app_account: None,
            app_account_reported: None,
        }
    }

    fn clusters(&self) -> Api<MySQLCluster> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn event(
        &self,
        cluster: &MySQLCluster,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        tracing::info!(cluster = %self.name, namespace = %self.namespace, reason, "{note}");
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        // A recorder per event: each is its own Event object, not a count
        // on an earlier one with another message.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&ev, &cluster.object_ref(&())).await {
            tracing::warn!(cluster = %self.name, error = %e, "cannot record an event");
        }
    }

    async fn patch_status(&self, status: serde_json::Value) -> Result<(), WorkerError> {
        self.clusters()
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        Ok(())
    }

    async fn remove_annotation(&self, key: &str) -> Result<(), WorkerError> {
        self.clusters()
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: null } } })),
            )
            .await?;
        Ok(())
    }

    /// The policy in force, or why it cannot be known
    /// ([`policy::read_outcome`]).
    async fn policy(&self, cluster: &MySQLCluster) -> Result<ResolvedPolicy, String> {
        let api: Api<FailoverPolicy> = Api::namespaced(self.client.clone(), &self.namespace);
        let (name, explicit) = policy::policy_name(cluster);
        let found = policy::read_outcome(&name, explicit, api.get(&name).await)?;
        Ok(policy::resolve(
            cluster,
            found.as_ref(),
            self.client.clone(),
            &self.namespace,
        ))
    }

    /// The policy cannot be read: this round acts on nothing (its error
    /// ends it, and the worker retries), with an Event when that starts
    /// and the Failed condition while it lasts.
    async fn policy_unreadable(
        &mut self,
        cluster: &MySQLCluster,
        why: String,
    ) -> Result<Option<Duration>, WorkerError> {
        let message = format!(
            "{why}: orca takes no action on this cluster (no failover, no operation) until it can read it"
        );
        if !self.policy_unreadable {
            self.policy_unreadable = true;
            self.event(
                cluster,
                true,
                "PolicyUnreadable",
                "ReadPolicy",
                message.clone(),
            )
            .await;
        }
        if let Err(e) = self
            .patch_status(json!({
                "conditions": conditions(cluster, &[(condition::FAILED, true, "PolicyUnreadable", message)]),
            }))
            .await
        {
            tracing::warn!(cluster = %self.name, error = %e, "cannot write the PolicyUnreadable condition");
        }
        Err(WorkerError::PolicyUnreadable(why))
    }

    /// Malformed pod annotations: an Event once per pod and value, and
    /// the list the Degraded condition shows. Such a pod is not promoted
    /// ([`policy::pod_rule`]).
    async fn report_pod_annotations(&mut self, cluster: &MySQLCluster, pods: &[PodView]) {
        let found = policy::invalid_annotations(pods);
        let current: BTreeSet<(String, String, String)> = found
            .iter()
            .map(|(pod, m)| (pod.clone(), m.annotation.clone(), m.value.clone()))
            .collect();
        for (pod, m) in &found {
            if self.reported_annotations.insert((
                pod.clone(),
                m.annotation.clone(),
                m.value.clone(),
            )) {
                self.event(
                    cluster,
                    true,
                    "InvalidAnnotation",
                    "Validate",
                    format!("pod {pod}: {m}; {pod} is not promoted while it stands"),
                )
                .await;
            }
        }
        self.reported_annotations.retain(|k| current.contains(k));
        self.invalid_annotations = found
            .iter()
            .map(|(pod, m)| format!("{m} (pod {pod}, not promoted while it stands)"))
            .collect();
    }

    /// One round; returns how long to wait before the next.
    pub async fn tick(&mut self) -> Result<Option<Duration>, WorkerError> {
        if let Some(fence) = &self.fence
            && let Err(e) = fence.check(ROUND_BUDGET)
        {
            tracing::warn!(cluster = %self.name, reason = ?e, "not the leader of the current epoch: this worker stops");
            return Ok(None);
        }
        let Some(mut cluster) = self.clusters().get_opt(&self.name).await? else {
            return Ok(None);
        };
        if cluster.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        if let Err(problems) = cluster.validate() {
            self.patch_status(json!({
                "observedGeneration": cluster.metadata.generation,
                "conditions": conditions(&cluster, &[
                    (condition::FAILED, true, "InvalidSpec", problems.join("; ")),
                    (condition::RECONCILING, false, "InvalidSpec", "fix the spec".into()),
                ]),
            }))
            .await?;
            return Ok(Some(Duration::from_secs(5)));
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(secret) = secrets.get_opt(&cluster.credentials_secret_name()).await? else {
            return Ok(Some(Duration::from_secs(1)));
        };
        let (root, repl) = creds_from(&secret)?;
        let app = objects::app_credentials(&secret);
        let pods: Vec<PodView> = self
            .pods()
            .list(&ListParams::default().labels(&format!("{}={}", label::CLUSTER, self.name)))
            .await?
            .items
            .iter()
            .map(|p| PodView::of(p, &self.name))
            .collect();
        let resolved = match self.policy(&cluster).await {
            Ok(r) => r,
            Err(why) => return self.policy_unreadable(&cluster, why).await,
        };
        let readable = format!(
            "the FailoverPolicy {} reads again",
            policy::policy_name(&cluster).0
        );
        if std::mem::take(&mut self.policy_unreadable) {
            self.event(
                &cluster,
                false,
                "PolicyReadable",
                "ReadPolicy",
                readable.clone(),
            )
            .await;
        }
        // Clear the condition (here and in what this round writes next),
        // even if another operator instance set it.
        let stale = cluster.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == condition::FAILED && c.reason == "PolicyUnreadable")
        });
        if stale {
            let conds = conditions(
                &cluster,
                &[(condition::FAILED, false, "PolicyReadable", readable)],
            );
            self.patch_status(json!({ "conditions": conds })).await?;
            if let Some(s) = cluster.status.as_mut() {
                s.conditions = conds;
            }
        }
        let engine = &mut self.engine;
        engine.executor.config.admin = root.clone();
        engine.executor.config.repl = repl.clone();
        engine.executor.set_fence(self.fence.clone());
        resolved.apply(engine, &pods);
        let pod_keys: BTreeSet<InstanceKey> = pods.iter().filter_map(|p| p.key.clone()).collect();
        for k in &pod_keys {
            engine.inventory.add(k.clone());
        }
        // An address no pod has any more (a pod recreated elsewhere) is
        // forgotten once no replica replicates from it.
        let stale: Vec<InstanceKey> = engine
            .inventory
            .known
            .keys()
            .filter(|k| !pod_keys.contains(*k))
            .filter(|k| {
                !engine
                    .topology()
                    .nodes
                    .values()
                    .any(|n| n.source.as_ref() == Some(*k) && n.reachable())
            })
            .cloned()
            .collect();
        for k in stale {
            engine.inventory.remove(&k);
            engine.forget(&k);
        }
        // Kubernetes' own view, as evidence for the analysis.
        engine.context.signals = pods
            .iter()
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
            .collect();
        let now = time::now().as_second();
        engine.context.downtimed = pods
            .iter()
            .filter(|p| annotations::downtimed(&p.annotations, now).unwrap_or(false))
            .filter_map(|p| p.key.clone())
            .collect();
        self.report_pod_annotations(&cluster, &pods).await;

        let status = cluster.status.clone().unwrap_or_default();
        if status.primary.is_none() {
            return self
                .bootstrap(&cluster, &pods, &root, &repl, app.as_ref())
                .await;
        }
        let report = self.engine_mut().round().await;
        for f in &report.new_findings {
            self.announce(&cluster, f).await;
        }
        let mut primary = status.primary.clone();
        if let Some(record) = &report.recovery {
            primary = self
                .after_operation(&cluster, &pods, record, OperationKind::Failover, primary)
                .await?;
        }
        if let Some(why) = &report.blocked
            && report.new_findings.iter().any(|f| f.code.is_failure())
        {
            self.event(&cluster, true, "RecoveryBlocked", "Recover", why.clone())
                .await;
        }
        for k in &report.fenced {
            self.event(
                &cluster,
                true,
                "FormerPrimaryFenced",
                "Fence",
                format!(
                    "the former primary {} answers again: fenced (read only, writes locked for every account)",
                    pod_of(&pods, k)
                ),
            )
            .await;
        }
        primary = self.operations(&cluster, &pods, primary).await?;
        self.reopen_primary(&cluster, &pods, primary.as_deref())
            .await;
        self.ensure_app_account(&cluster, &pods, primary.as_deref(), &root, app.as_ref())
            .await;
        self.join_replicas(&cluster, &pods, primary.as_deref())
            .await;
        self.apply_roles(&cluster, &pods, primary.as_deref())
            .await?;
        self.write_status(&cluster, &pods, primary.as_deref())
            .await?;
        Ok(Some(self.engine_mut().next_delay()))
    }

    fn engine_mut(&mut self) -> &mut ClusterEngine {
        &mut self.engine
    }

    async fn announce(&mut self, cluster: &MySQLCluster, f: &Finding) {
        let id = (f.code.to_string(), f.instance.clone());
        if self.announced.insert(id) {
            let warning =
                f.is_failure() || !matches!(f.severity(), crate::analysis::Severity::Info);
            self.event(
                cluster,
                warning,
                f.code.name(),
                "Analyze",
                f.description.clone(),
            )
            .await;
        }
    }

    /// First start: pod 0 becomes the primary (unless replication already
    /// exists, say after an operator restart), the replication account is
    /// created on it, and every other pod replicates from it.
    async fn bootstrap(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        root: &Credentials,
        repl: &Credentials,
        app: Option<&Credentials>,
    ) -> Result<Option<Duration>, WorkerError> {
        let wanted = cluster.spec.replicas.max(1) as usize;
        let ready: Vec<&PodView> = pods
            .iter()
            .filter(|p| p.ready && p.key.is_some() && !p.deleting)
            .collect();
        if ready.len() < wanted {
            self.patch_status(json!({
                "observedGeneration": cluster.metadata.generation,
                "conditions": conditions(cluster, &[
                    (condition::RECONCILING, true, "WaitingForPods", format!("{} of {} pods ready", ready.len(), wanted)),
                    (condition::AVAILABLE, false, "Bootstrapping", "no primary yet".into()),
                ]),
            }))
            .await?;
            return Ok(Some(Duration::from_secs(1)));
        }
        self.engine_mut().round().await;
        let topo = self.engine_mut().topology().clone();
        // Replication already set up: adopt its primary.
        let existing = topo
            .nodes
            .values()
            .find(|n| n.role == Role::Primary && !n.replicas.is_empty() && n.reachable())
            .map(|n| n.key.clone());
        let primary_pod = match existing.as_ref().map(|k| pod_of(pods, k)) {
            Some(p) => p,
            None => {
                let Some(first) = ready.iter().min_by_key(|p| p.ordinal.unwrap_or(u32::MAX)) else {
                    return Ok(Some(Duration::from_secs(1)));
                };
                first.name.clone()
            }
        };
        let Some(pkey) = pods
            .iter()
            .find(|p| p.name == primary_pod)
            .and_then(|p| p.key.clone())
        else {
            return Ok(Some(Duration::from_secs(1)));
        };
        if existing.is_none() {
            let semi = cluster.spec.semi_sync.as_ref().is_some_and(|s| s.enabled);
            let t = Timeouts::default();
            let mut conn = connect(&pkey, root, t).await.map_err(|e| {
                WorkerError::Credentials(format!("connecting to {primary_pod}: {e}"))
            })?;
            let user = format!("'{REPL_USER}'@'%'");
            let pw = crate::mysql::dialect::quote(repl.password());
            let mut statements = vec![
                format!("CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {pw}"),
                format!("ALTER USER {user} IDENTIFIED BY {pw}"),
                format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user}"),
            ];
            // The application account too, when it is in order; if not,
            // ensure_app_account reports it.
            let dbs = &cluster.spec.app_databases;
            let app_sql = app.and_then(|a| accounts::statements(&a.user, a.password(), dbs).ok());
            let app_secrets = app.map(|a| accounts::secrets(a.password()));
            statements.extend(app_sql.iter().flatten().cloned());
            if semi {
                statements.push(match objects::flavor(cluster) {
                    crate::topology::Flavor::MariaDb => {
                        "SET GLOBAL rpl_semi_sync_master_enabled = ON".into()
                    }
                    crate::topology::Flavor::MySql => {
                        "SET GLOBAL rpl_semi_sync_source_enabled = ON".into()
                    }
                });
            }
            statements.push(match objects::flavor(cluster) {
                crate::topology::Flavor::MariaDb => "SET GLOBAL read_only = OFF".into(),
                crate::topology::Flavor::MySql => {
                    "SET GLOBAL super_read_only = OFF, GLOBAL read_only = OFF".into()
                }
            });
            for sql in statements {
                exec(&mut conn, &pkey, t.query, "bootstrapping the primary", &sql)
                    .await
                    .map_err(|e| {
                        let mut secrets = vec![repl.password(), root.password()];
                        secrets.extend(app_secrets.iter().flatten().map(String::as_str));
                        let text = crate::mysql::conn::redact(&e.to_string(), &secrets);
                        WorkerError::Credentials(format!("bootstrapping {primary_pod}: {text}"))
                    })?;
            }
            let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
            if let (Some(a), Some(_)) = (app, app_sql) {
                self.app_account = Some(accounts::fingerprint(&a.user, a.password(), dbs));
            }
        }
        self.event(
            cluster,
            false,
            "PrimaryElected",
            "Bootstrap",
            format!("{primary_pod} is the primary"),
        )
        .await;
        self.patch_status(json!({ "primary": primary_pod, "epoch": self.epoch }))
            .await?;
        self.join_replicas(cluster, pods, Some(&primary_pod)).await;
        self.apply_roles(cluster, pods, Some(&primary_pod)).await?;
        self.write_status(cluster, pods, Some(&primary_pod)).await?;
        Ok(Some(Duration::from_millis(500)))
    }

    /// The application account on the primary, made (idempotently) when
    /// this worker starts and whenever it changes (the Secret's keys,
    /// `spec.appDatabases`): so a cluster from before the account gets it
    /// too. Only on a primary the last probe saw writable; a failure is
    /// an Event (once) and is retried next round, and holds up nothing
    /// else.
    async fn ensure_app_account(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
        root: &Credentials,
        app: Option<&Credentials>,
    ) {
        // No keys yet: the reconciler adds them to the Secret.
        let Some(app) = app else { return };
        let dbs = &cluster.spec.app_databases;
        let fp = accounts::fingerprint(&app.user, app.password(), dbs);
        if self.app_account == Some(fp) {
            return;
        }
        let statements = match accounts::statements(&app.user, app.password(), dbs) {
            Ok(s) => s,
            Err(why) => return self.app_account_failed(cluster, fp, why).await,
        };
        let Some(pod) = primary.and_then(|n| pods.iter().find(|p| p.name == n)) else {
            return;
        };
        let Some(k) = pod.key.clone().filter(|_| !pod.deleting) else {
            return;
        };
        let writable = self
            .engine
            .topology()
            .get(&k)
            .and_then(|n| n.snapshot.as_ref())
            .is_some_and(|s| !s.is_read_only());
        if !writable {
            return;
        }
        let t = Timeouts::default();
        let run = async {
            let mut conn = connect(&k, root, t).await?;
            for sql in &statements {
                exec(
                    &mut conn,
                    &k,
                    t.query,
                    "making the application account",
                    sql,
                )
                .await?;
            }
            let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
            Ok::<(), crate::mysql::MysqlError>(())
        };
        match run.await {
            Ok(()) => {
                self.app_account = Some(fp);
                self.event(
                    cluster,
                    false,
                    "AppAccountReady",
                    "Bootstrap",
                    format!(
                        "the application account {} has every privilege on {} and no other",
                        app.user,
                        if dbs.is_empty() {
                            "no database".to_string()
                        } else {
                            dbs.join(", ")
                        }
                    ),
                )
                .await;
            }
            Err(e) => {
                let [raw, quoted] = accounts::secrets(app.password());
                let text =
                    crate::mysql::conn::redact(&e.to_string(), &[&raw, &quoted, root.password()]);
                self.app_account_failed(cluster, fp, format!("on {}: {text}", pod.name))
                    .await;
            }
        }
    }

    async fn app_account_failed(&mut self, cluster: &MySQLCluster, fp: u64, why: String) {
        tracing::warn!(cluster = %self.name, "the application account: {why}");
        if self.app_account_reported != Some(fp) {
            self.app_account_reported = Some(fp);
            self.event(
                cluster,
                true,
                "AppAccountFailed",
                "Bootstrap",
                format!("the application account cannot be made: {why}"),
            )
            .await;
        }
    }

    /// The primary's server restarted (read only, as every server starts)
    /// without a failover: orca makes it writable again, provided it holds
    /// everything its replicas hold and nothing else takes writes.
    async fn reopen_primary(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) {
        let Some(pod) = primary.and_then(|n| pods.iter().find(|p| p.name == n)) else {
            return;
        };
        let Some(k) = pod.key.clone() else { return };
        if pod.deleting {
            return;
        }
        let semi_sync = cluster.spec.semi_sync.as_ref().is_some_and(|s| s.enabled);
        let Some(plan) = membership::reopen_primary(self.engine_mut().topology(), &k, semi_sync)
        else {
            return;
        };
        let meta = OperationMeta {
            id: operation_id(&self.name, plan.kind),
            cluster: self.name.clone(),
            trigger: "PrimaryRestarted".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        if record.outcome.succeeded() {
            self.event(cluster, false, "PrimaryReopened", "Reopen", format!("the primary {} restarted read only and holds everything its replicas hold: writes enabled again", pod.name)).await;
        }
    }

    /// Points pods that replicate from nothing (new pods, a returning
    /// former primary) or from an address no pod has any more at the
    /// primary, when they can follow it; reports those that cannot.
    async fn join_replicas(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) {
        let Some(primary) = primary else { return };
        let Some(pkey) = pods
            .iter()
            .find(|p| p.name == primary)
            .and_then(|p| p.key.clone())
        else {
            return;
        };
        let members: BTreeSet<InstanceKey> = pods.iter().filter_map(|p| p.key.clone()).collect();
        let leaving: BTreeSet<InstanceKey> = pods
            .iter()
            .filter(|p| p.deleting)
            .filter_map(|p| p.key.clone())
            .collect();
        let membership::Joining { plan, unjoinable } =
            membership::join_members(self.engine_mut().topology(), &pkey, &members, &leaving);
        for (k, extra) in unjoinable {
            let pod = pod_of(pods, &k);
            if self.reported_unjoinable.insert(k.clone()) {
                self.event(
                    cluster,
                    true,
                    "CannotRejoin",
                    "Join",
                    format!("{pod} has transactions the primary {primary} lacks ({extra}); it stays out of replication until it is re-provisioned"),
                )
                .await;
            }
        }
        if plan.steps.is_empty() {
            return;
        }
        let joined: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ChangeSource { on, .. } => Some(pod_of(pods, on)),
                _ => None,
            })
            .collect();
        let meta = OperationMeta {
            id: operation_id(&self.name, PlanKind::Repoint),
            cluster: self.name.clone(),
            trigger: "Join".into(),
        };
        let record = self.engine_mut().executor.execute(&plan, &meta).await;
        if record.outcome.succeeded() {
            self.event(
                cluster,
                false,
                "ReplicaJoined",
                "Join",
                format!("{} replicate from {primary}", joined.join(", ")),
            )
            .await;
        } else {
            self.event(
                cluster,
                true,
                "JoinFailed",
                "Join",
                format!("joining {}: {:?}", joined.join(", "), record.outcome),
            )
            .await;
        }
    }

    /// Labels: the old primary loses its role label first, then the new
    /// primary gets it, then the primary Service is pinned to it by pod
    /// name — two pods can never both receive writes through it.
    async fn apply_roles(
        &self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) -> Result<(), WorkerError> {
        let api = self.pods();
        let set = |role: &'static str| {
            Patch::Merge(json!({ "metadata": { "labels": { label::ROLE: role } } }))
        };
        for p in pods.iter().filter(|p| Some(p.name.as_str()) != primary) {
            if p.role_label.as_deref() != Some(label::ROLE_REPLICA) {
                api.patch(&p.name, &PatchParams::default(), &set(label::ROLE_REPLICA))
                    .await?;
            }
        }
        if let Some(pp) = primary.and_then(|n| pods.iter().find(|p| p.name == n))
            && pp.role_label.as_deref() != Some(label::ROLE_PRIMARY)
        {
            api.patch(&pp.name, &PatchParams::default(), &set(label::ROLE_PRIMARY))
                .await?;
        }
        let svc = objects::primary_service(cluster, primary)?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        services
            .patch(
                &objects::primary_service_name(cluster),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&svc),
            )
            .await?;
        Ok(())
    }

    /// Runs the plan of an operation a person asked for, then records
    /// its outcome.
    async fn run_requested(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        plan: &Plan,
        kind: OperationKind,
        primary: Option<String>,
    ) -> Result<Option<String>, WorkerError> {
        let meta = OperationMeta {
            id: operation_id(&self.name, plan.kind),
            cluster: self.name.clone(),
            trigger: plan.kind.name().into(),
        };
        let record = self.engine_mut().executor.execute(plan, &meta).await;
        self.after_operation(cluster, pods, &record, kind, primary)
            .await
    }

    /// The new primary after an operation, with labels, Services, status
    /// and an Event.
    async fn after_operation(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        record: &OperationRecord,
        kind: OperationKind,
        primary: Option<String>,
    ) -> Result<Option<String>, WorkerError> {
        let ok = record.outcome.succeeded();
        let promoted = matches!(
            record.kind,
            PlanKind::RecoverDeadPrimary
                | PlanKind::GracefulTakeover
                | PlanKind::ForceFailover
                | PlanKind::ForceTakeover
        );
        let new_primary = match (&record.successor, ok && promoted) {
            (Some(k), true) => Some(pod_of(pods, k)),
            _ => primary,
        };
        let target = record.successor.as_ref().map(|k| pod_of(pods, k));
        let message = match &record.outcome {
            Outcome::Succeeded => format!(
                "{} succeeded in {} ms{}",
                record.kind.name(),
                record.duration_ms,
                target
                    .as_ref()
                    .map(|t| format!("; {t} is the new source"))
                    .unwrap_or_default()
            ),
            Outcome::Vetoed(e) => format!("{} vetoed: {e}", record.kind.name()),
            Outcome::RolledBack(e) => format!("{} rolled back: {e}", record.kind.name()),
            Outcome::Failed(e) => format!("{} failed: {e}", record.kind.name()),
            Outcome::Deposed(s) => format!(
                "{} stopped, not the leader any more: {s}",
                record.kind.name()
            ),
        };
        let lost: Vec<String> = record
            .lost_replicas
            .iter()
            .map(|(k, why)| format!("{} ({why})", pod_of(pods, k)))
            .collect();
        let message = if lost.is_empty() {
            message
        } else {
            format!("{message}; lost replicas: {}", lost.join(", "))
        };
        let message = match &record.lost_transactions {
            Some(l) => format!(
                "{message}; possibly lost transactions ({}): {}",
                l.count, l.gtids
            ),
            None => message,
        };
        if ok && promoted {
            self.apply_roles(cluster, pods, new_primary.as_deref())
                .await?;
        }
        self.patch_status(json!({
            "primary": new_primary,
            "epoch": self.epoch,
            "lastOperation": OperationStatus {
                kind,
                target,
                phase: if ok { OperationPhase::Succeeded } else { OperationPhase::Failed },
                message: Some(message.clone()),
                started_at: Some(jiff::Timestamp::from_second(record.started_at as i64).map(time::rfc3339).unwrap_or_default()),
                finished_at: Some(time::now_string()),
                epoch: self.epoch,
            },
        }))
        .await?;
        let reason = match (kind, ok) {
            (OperationKind::GracefulTakeover, true) => "GracefulTakeover",
            (OperationKind::GracefulTakeover, false) => "GracefulTakeoverFailed",
            (_, true) => "Failover",
            (_, false) => "FailoverFailed",
        };
        for s in record
            .steps
            .iter()
            .filter(|s| matches!(s.outcome, StepOutcome::Failed(_)))
        {
            tracing::warn!(cluster = %self.name, step = %s.description, "step failed");
        }
        self.event(cluster, !ok, reason, "Recover", message).await;
        Ok(new_primary)
    }

    /// Runs the operation an annotation asks for (one per round), then
    /// consumes the annotation. Also hands the primary role over before
    /// the primary's pod goes away (deleted, drained, or scaled away).
    async fn operations(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<String>,
    ) -> Result<Option<String>, WorkerError> {
        let (requests, malformed) = annotations::requests(cluster.annotations());
        for m in malformed {
            self.event(
                cluster,
                true,
                "InvalidAnnotation",
                "Validate",
                m.to_string(),
            )
            .await;
            self.patch_status(json!({
                "conditions": conditions(cluster, &[(condition::DEGRADED, true, "InvalidAnnotation", m.to_string())]),
            }))
            .await?;
            self.remove_annotation(&m.annotation).await?;
        }
        let primary_pod = primary
            .as_ref()
            .and_then(|n| pods.iter().find(|p| &p.name == n));
        // The primary's pod is going away: hand the role over first.
        let leaving = primary_pod.is_some_and(|p| {
            p.deleting || p.ordinal.is_some_and(|o| o as i32 >= cluster.spec.replicas)
        });
        if leaving
            && let Some(p) = primary_pod
            && self.handed_over.insert(p.name.clone())
        {
            let why = if p.deleting {
                "is being deleted"
            } else {
                "is scaled away"
            };
            self.event(
                cluster,
                false,
                "PrimaryLeaving",
                "GracefulTakeover",
                format!("the primary {} {why}: graceful takeover", p.name),
            )
            .await;
            let exclude: Vec<String> = pods
                .iter()
                .filter(|q| {
                    q.deleting || q.ordinal.is_some_and(|o| o as i32 >= cluster.spec.replicas)
                })
                .map(|q| q.name.clone())
                .collect();
            return self
                .takeover(cluster, pods, primary.clone(), None, &exclude)
                .await;
        }
        for r in requests {
            let key = r.annotation();
            let new_primary = match &r {
                Request::Acknowledge => {
                    self.engine_mut().acknowledge();
                    self.event(
                        cluster,
                        false,
                        "Acknowledged",
                        "Acknowledge",
                        "the last recovery is acknowledged".into(),
                    )
                    .await;
                    self.remove_annotation(key).await?;
                    continue;
                }
                Request::GracefulTakeover { to } => {
                    self.takeover(cluster, pods, primary.clone(), to.as_deref(), &[])
                        .await?
                }
                Request::ForceFailover | Request::ForceTakeover { .. } | Request::Recover => {
                    self.force(cluster, pods, primary.clone(), &r).await?
                }
            };
            self.remove_annotation(key).await?;
            return Ok(new_primary);
        }
        Ok(primary)
    }

    async fn set_running(
        &self,
        kind: OperationKind,
        target: Option<String>,
    ) -> Result<(), WorkerError> {
        self.patch_status(json!({
            "lastOperation": OperationStatus {
                kind,
                target,
                phase: OperationPhase::Running,
                message: None,
                started_at: Some(time::now_string()),
                finished_at: None,
                epoch: self.epoch,
            },
        }))
        .await
    }

    async fn refuse(
        &self,
        cluster: &MySQLCluster,
        kind: OperationKind,
        target: Option<String>,
        why: String,
    ) -> Result<(), WorkerError> {
        self.event(cluster, true, "OperationRefused", "Operate", why.clone())
            .await;
        self.patch_status(json!({
            "lastOperation": OperationStatus {
                kind,
                target,
                phase: OperationPhase::Failed,
                message: Some(why),
                started_at: Some(time::now_string()),
                finished_at: Some(time::now_string()),
                epoch: self.epoch,
            },
        }))
        .await
    }

    async fn takeover(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<String>,
        to: Option<&str>,
        exclude: &[String],
    ) -> Result<Option<String>, WorkerError> {
        let kind = OperationKind::GracefulTakeover;
        let Some(pkey) = primary.as_ref().and_then(|n| key_of(pods, n)) else {
            self.refuse(
                cluster,
                kind,
                to.map(String::from),
                "no primary to take over from".into(),
            )
            .await?;
            return Ok(primary);
        };
        let target = match to {
            Some(t) => match key_of(pods, t) {
                Some(k) => Some(k),
                None => {
                    self.refuse(
                        cluster,
                        kind,
                        Some(t.into()),
                        format!("{t} is not a pod of this cluster with an address"),
                    )
                    .await?;
                    return Ok(primary);
                }
            },
            None => None,
        };
        self.set_running(kind, to.map(String::from)).await?;
        self.engine_mut().round().await;
        let mut opts = takeover::TakeoverOptions {
            candidate: self.engine_mut().config.recovery.candidate.clone(),
            ..Default::default()
        };
        for name in exclude {
            if let Some(k) = key_of(pods, name) {
                opts.candidate
                    .rules
                    .insert(k, crate::plan::candidate::PromotionRule::MustNot);
            }
        }
        let topo = self.engine_mut().topology().clone();
        let plan = match takeover::graceful_takeover(&topo, &pkey, target.as_ref(), &opts) {
            // A primary whose pod is going away is not repointed: its next
            // incarnation joins as a replica.
            Ok(mut p) if !exclude.is_empty() => {
                let from = p.point_of_no_return;
                let mut i = 0;
                p.steps.retain(|s| {
                    i += 1;
                    i <= from || s.target() != Some(&pkey)
                });
                p
            }
            Ok(p) => p,
            Err(e) => {
                self.refuse(cluster, kind, to.map(String::from), e.to_string())
                    .await?;
                return Ok(primary);
            }
        };
        self.run_requested(cluster, pods, &plan, kind, primary)
            .await
    }

    async fn force(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<String>,
        r: &Request,
    ) -> Result<Option<String>, WorkerError> {
        let (kind, target) = match r {
            Request::ForceTakeover { to } => (OperationKind::ForceTakeover, Some(to.clone())),
            Request::ForceFailover => (OperationKind::ForceFailover, None),
            _ => (OperationKind::Recover, None),
        };
        self.set_running(kind, target.clone()).await?;
        self.engine_mut().round().await;
        let topo = self.engine_mut().topology().clone();
        let pkey = primary.as_ref().and_then(|n| key_of(pods, n));
        // A dead primary as last seen: what may be lost, whether it was
        // semi-synchronous.
        let mut opts = self.engine_mut().config.recovery.clone();
        opts.last_seen = pkey.as_ref().and_then(|k| self.engine.last_seen(k));
        if let Request::Recover = r {
            let failure = self
                .engine_mut()
                .findings()
                .iter()
                .find(|f| f.code.is_failure())
                .cloned();
            let Some(f) = failure else {
                self.refuse(
                    cluster,
                    kind,
                    None,
                    "nothing to recover: no failure found".into(),
                )
                .await?;
                return Ok(primary);
            };
            let record = self.engine_mut().recover(&f).await;
            return self
                .after_operation(cluster, pods, &record, kind, primary)
                .await;
        }
        let Some(pkey) = pkey else {
            self.refuse(cluster, kind, target, "no primary".into())
                .await?;
            return Ok(primary);
        };
        let plan = match r {
            Request::ForceTakeover { to } => match key_of(pods, to) {
                Some(t) => recovery::force_takeover(&topo, &pkey, &t, &opts),
                None => {
                    self.refuse(
                        cluster,
                        kind,
                        target,
                        format!("{to} is not a pod of this cluster with an address"),
                    )
                    .await?;
                    return Ok(primary);
                }
            },
            _ => recovery::force_failover(&topo, &pkey, &opts),
        };
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                self.refuse(cluster, kind, target, e.to_string()).await?;
                return Ok(primary);
            }
        };
        self.run_requested(cluster, pods, &plan, kind, primary)
            .await
    }

    async fn write_status(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<&str>,
    ) -> Result<(), WorkerError> {
        let engine = self.engine_mut();
        let topo = engine.topology().clone();
        let findings = engine.findings().to_vec();
        let blocked = engine.blocked_by_anti_flap().or_else(|| {
            (!engine.config.auto_recover).then(|| "automatic failover is off in the FailoverPolicy: annotate orca.dev/recover=true".to_string())
        });
        let problems = crate::analysis::instance_problems(&topo, Default::default());
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
        degraded.extend(self.invalid_annotations.iter().cloned());
        let healthy = findings.is_empty()
            && ready == pods.len()
            && pods.len() as i32 == cluster.spec.replicas;
        let conds = conditions(
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
        );
        let status = MySQLClusterStatus {
            conditions: conds,
            primary: primary.map(String::from),
            ready_replicas: ready as i32,
            epoch: self.epoch,
            topology,
            last_operation: cluster
                .status
                .as_ref()
                .and_then(|s| s.last_operation.clone()),
            observed_generation: cluster.metadata.generation,
        };
        let mut v =
            serde_json::to_value(&status).map_err(|e| WorkerError::Credentials(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("lastOperation");
        }
        self.patch_status(v).await
    }
}

fn pod_of(pods: &[PodView], key: &InstanceKey) -> String {
    pods.iter()
        .find(|p| p.key.as_ref() == Some(key))
        .map(|p| p.name.clone())
        .unwrap_or_else(|| key.to_string())
}

fn key_of(pods: &[PodView], name: &str) -> Option<InstanceKey> {
    pods.iter()
        .find(|p| p.name == name)
        .and_then(|p| p.key.clone())
}

/// Conditions for status, keeping the transition time of those whose
/// status did not change.
fn conditions(cluster: &MySQLCluster, wanted: &[(&str, bool, &str, String)]) -> Vec<Condition> {
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
            _ => Time(time::now()),
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
