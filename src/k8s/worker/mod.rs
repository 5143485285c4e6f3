//! One cluster's worker: it feeds the engine with the cluster's pods (by
//! pod IP) and Kubernetes' own signals, bootstraps replication, runs the
//! operations annotations ask for, joins new and returning pods, and turns
//! what the engine finds and does into pod labels, the primary Service's
//! selector, status and Events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::accounts;
use super::annotations::{self, Request};
use super::cache::Caches;
use super::crd::cluster::{
    InstanceRole, InstanceStatus, MySQLCluster, MySQLClusterStatus, OperationKind, OperationPhase,
    OperationStatus, ThreadState,
};
use super::crd::names::{condition, label};
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
use crate::mysql::conn::Timeouts;
use crate::plan::{Plan, PlanKind, Step, membership, recovery, takeover};
use crate::store::Door;
use crate::store::feed::Feed;
use crate::topology::InstanceKey;
use crate::topology::graph::Role;
use crate::topology::instance::IoThreadState;

/// The lease time a round may need: a worker acts only while its lease is
/// valid at least this much longer.
const ROUND_BUDGET: Duration = Duration::from_secs(3);

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "orca-operator";

mod bootstrap;
mod clone;
mod decide;
mod guarded;
mod members;
mod observe;
mod operations;
mod repair;
mod resume;
mod status;

pub use guarded::KUBE_LIMIT;
pub use observe::PodView;
use observe::creds_from;
use status::conditions;

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
    /// A newer epoch is recorded in status: another operator leads, this
    /// worker stops.
    #[error("deposed: {0}")]
    Deposed(String),
    /// A status write that failed (after its retry), or timed out.
    #[error("status: {0}")]
    Status(String),
}

impl WorkerError {
    /// The error's kind, as the `error` label of
    /// `orca_reconcile_errors_total`: one stable name per variant.
    pub fn metric_label(&self) -> &'static str {
        match self {
            WorkerError::Kube(_) => "kube",
            WorkerError::Objects(_) => "objects",
            WorkerError::Credentials(_) => "credentials",
            WorkerError::PolicyUnreadable(_) => "policy_unreadable",
            WorkerError::Deposed(_) => "deposed",
            WorkerError::Status(_) => "status",
        }
    }
}

/// The per-cluster worker.
pub struct Worker {
    client: Client,
    namespace: String,
    name: String,
    reporter: Reporter,
    /// The watch caches every read of a round comes from.
    caches: std::sync::Arc<Caches>,
    /// The engine of this cluster; its credentials come from the cluster's
    /// Secret, read again (from the cache) every round.
    engine: ClusterEngine,
    /// The epoch this operator acts in (the leader's lease transitions).
    pub epoch: Option<i64>,
    /// Only the holder of the current epoch acts: checked before each
    /// round, which must fit in what is left of the lease.
    pub fence: Option<crate::ha::Fence>,
    /// What this cluster tells the store (snapshots, findings, operations
    /// in [`Worker::epoch`], the audit of what annotations ask), `None`
    /// without one. Only enqueues: a store never slows a round.
    pub feed: Option<Feed>,
    /// Where each round's view goes for the HTTP API, when it is served.
    pub published: Option<super::api::Published>,
    /// The Prometheus metrics each round and operation update.
    pub metrics: Option<crate::metrics::Metrics>,
    /// The last operations this worker ran (automatic and asked for),
    /// oldest first, for the API.
    recent: std::collections::VecDeque<OperationRecord>,
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
    /// Why the bootstrap last failed, as reported (an Event when it changes).
    bootstrap_reported: Option<String>,
    /// Every status write (epoch-guarded with leader election), and the
    /// object the last one returned.
    status_writer: guarded::StatusWriter,
    /// The operation journal the executor writes through `status_writer`.
    journal: guarded::WorkerJournal,
    /// The first round ran (what an earlier operator left was taken up).
    started: bool,
    /// An operation stopped without finishing (its journal could not be
    /// written): the next round resumes it as a new worker would.
    resume_pending: bool,
    /// The pending fences as last written to status.
    fences_written: Option<Vec<String>>,
    /// When status was last written with its volatile figures.
    volatile_written: Option<std::time::Instant>,
    /// Replica repair: the copy under way, and what was reported.
    repairs: repair::Repairs,
    /// The pod an operation's traffic move labelled the primary and
    /// pinned the primary Service to, this round: not written again.
    moved_early: Option<String>,
}

impl Worker {
    pub fn new(
        client: Client,
        namespace: String,
        name: String,
        reporter: Reporter,
        caches: std::sync::Arc<Caches>,
    ) -> Worker {
        let executor = Executor::new(
            ExecutorConfig {
                admin: Credentials::new("root", ""),
                repl: Credentials::new(REPL_USER, ""),
                app: None,
                timeouts: Timeouts::default(),
            },
            Default::default(),
        );
        let status_writer =
            guarded::StatusWriter::new(Api::namespaced(client.clone(), &namespace), name.clone());
        let journal =
            guarded::WorkerJournal::new(status_writer.clone(), client.clone(), namespace.clone());
        let mut executor = executor;
        executor.set_journal(Some(std::sync::Arc::new(journal.clone())));
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
            caches,
            engine,
            epoch: None,
            fence: None,
            feed: None,
            published: None,
            metrics: None,
            recent: std::collections::VecDeque::new(),
            reported_unjoinable: BTreeSet::new(),
            announced: BTreeSet::new(),
            handed_over: BTreeSet::new(),
            policy_unreadable: false,
            reported_annotations: BTreeSet::new(),
            invalid_annotations: Vec::new(),
            app_account: None,
            app_account_reported: None,
            bootstrap_reported: None,
            status_writer,
            journal,
            started: false,
            resume_pending: false,
            fences_written: None,
            volatile_written: None,
            repairs: Default::default(),
            moved_early: None,
        }
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
        let published = tokio::time::timeout(
            guarded::KUBE_LIMIT,
            recorder.publish(&ev, &cluster.object_ref(&())),
        )
        .await;
        match published {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(cluster = %self.name, error = %e, "cannot record an event")
            }
            Err(_) => tracing::warn!(cluster = %self.name, "cannot record an event: timed out"),
        }
    }

    /// Merges `status` into the cluster's status: epoch-guarded under the
    /// resourceVersion of the object the worker decided on (the one read
    /// at the round's start, or returned by its last write), retried once
    /// after a conflict; a newer epoch deposes the worker. A plain merge
    /// patch without leader election. See [`guarded`].
    async fn patch_status(&self, status: serde_json::Value) -> Result<(), WorkerError> {
        self.status_writer.patch(status).await
    }

    async fn remove_annotation(&self, key: &str) -> Result<(), WorkerError> {
        self.status_writer.remove_annotation(key).await
    }

    /// The policy in force, from the watch cache, or why it cannot be
    /// known ([`policy::cached_outcome`]).
    fn policy(&self, cluster: &MySQLCluster) -> Result<ResolvedPolicy, String> {
        let (name, explicit) = policy::policy_name(cluster);
        let found = self.caches.policy(&self.namespace, &name, explicit)?;
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
        let shown = cluster.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == condition::FAILED
                    && c.status == "True"
                    && c.reason == "PolicyUnreadable"
                    && c.message == message
            })
        });
        if !shown
            && let Err(e) = self
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
        if self.status_writer.deposed() {
            tracing::warn!(cluster = %self.name, "a newer epoch is recorded in status: this worker stops");
            return Ok(None);
        }
        if let Some(fence) = &self.fence
            && let Err(e) = fence.check(ROUND_BUDGET)
        {
            tracing::warn!(cluster = %self.name, reason = ?e, "not the leader of the current epoch: this worker stops");
            return Ok(None);
        }
        if !self.caches.ready() {
            tracing::debug!(cluster = %self.name, waiting = ?self.caches.not_ready(), "the watch caches are not ready yet");
            return Ok(Some(Duration::from_millis(500)));
        }
        // From the cache, or the object our last write returned if newer.
        let Some(cached) = self.caches.cluster(&self.namespace, &self.name) else {
            return Ok(None);
        };
        let mut cluster = self.status_writer.newest(cached.as_ref().clone());
        if cluster.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        self.status_writer.set_epoch(self.epoch);
        self.status_writer.decided_on(&cluster);
        if let Err(problems) = cluster.validate() {
            let conds = conditions(
                &cluster,
                &[
                    (condition::FAILED, true, "InvalidSpec", problems.join("; ")),
                    (
                        condition::RECONCILING,
                        false,
                        "InvalidSpec",
                        "fix the spec".into(),
                    ),
                ],
            );
            let shown = cluster.status.as_ref().is_some_and(|s| {
                s.conditions == conds && s.observed_generation == cluster.metadata.generation
            });
            if !shown {
                self.patch_status(json!({
                    "observedGeneration": cluster.metadata.generation,
                    "conditions": conds,
                }))
                .await?;
            }
            return Ok(Some(Duration::from_secs(5)));
        }
        let Some(secret) = self
            .caches
            .secret(&self.namespace, &cluster.credentials_secret_name())
        else {
            return Ok(Some(Duration::from_secs(1)));
        };
        let (root, repl) = creds_from(&secret)?;
        let app = objects::app_credentials(&secret);
        let pods: Vec<PodView> = self
            .caches
            .pods_of(&self.namespace, &self.name)
            .iter()
            .map(|p| PodView::of(p, &self.name))
            .collect();
        let resolved = match self.policy(&cluster) {
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
        engine.executor.config.app = app.clone();
        engine.executor.set_fence(self.fence.clone());
        resolved.apply(engine, &pods);
        // The pod being re-provisioned is probed once its server is up on
        // the copy (its init container copies first): a server that has
        // not started is no dead primary.
        let copying = self.repairs.target();
        let pod_keys: BTreeSet<InstanceKey> = pods
            .iter()
            .filter(|p| p.ready || copying != Some(p.name.as_str()))
            .filter_map(|p| p.key.clone())
            .collect();
        for k in &pod_keys {
            engine.inventory.add(k.clone());
        }
        // An address no pod has any more (a pod recreated elsewhere) is
        // forgotten once no replica replicates from it.
        for k in observe::stale_addresses(engine.inventory.known.keys(), &pods, engine.topology()) {
            engine.inventory.remove(&k);
            engine.forget(&k);
        }
        // Kubernetes' own view, as evidence for the analysis.
        engine.context.signals = observe::external_signals(&pods);
        engine.context.downtimed = observe::downtimed(&pods, time::now().as_second());
        self.report_pod_annotations(&cluster, &pods).await;

        let status = cluster.status.clone().unwrap_or_default();
        if status.primary.is_none() {
            return self.bootstrap(&cluster, &pods, app.as_ref()).await;
        }
        // What an earlier operator left (an interrupted operation, fences,
        // a primary the servers contradict), before the engine acts.
        self.moved_early = None;
        let resumed = self.resume(&mut cluster, &pods, &status).await?;
        self.journal.arm(None);
        let report = self.engine_mut().round().await;
        self.journal.disarm();
        self.feed_round(&report);
        for f in &report.new_findings {
            self.announce(&cluster, f).await;
        }
        let mut primary = resumed;
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
        self.sync_pending_fences().await?;
        self.reopen_primary(&cluster, &pods, primary.as_deref())
            .await;
        self.ensure_app_account(&cluster, &pods, primary.as_deref(), app.as_ref())
            .await;
        let token = objects::agent_token(&secret);
        self.repair_replicas(&cluster, &pods, primary.as_deref(), token.as_deref())
            .await?;
        self.join_replicas(&cluster, &pods, primary.as_deref())
            .await;
        self.apply_roles(&cluster, &pods, primary.as_deref())
            .await?;
        self.write_status(&cluster, &pods, primary.as_deref())
            .await?;
        self.publish(&pods, primary.as_deref());
        Ok(Some(self.engine_mut().next_delay()))
    }

    /// The round's view and what plans are made from, for the HTTP API.
    fn publish(&self, pods: &[PodView], primary: Option<&str>) {
        let Some(p) = &self.published else { return };
        let records: Vec<OperationRecord> = self.recent.iter().cloned().collect();
        let id = crate::api::ClusterId::new(self.namespace.clone(), self.name.clone());
        let engine = &self.engine;
        let view = crate::api::ClusterView::of(
            &id,
            format!("{}/{}", self.namespace, self.name),
            engine,
            &|k| {
                pods.iter()
                    .find(|p| p.key.as_ref() == Some(k))
                    .map(|p| crate::api::model::PodRef {
                        name: p.name.clone(),
                        facts: Some(p.facts.clone()),
                    })
            },
        )
        .with_recent(&records);
        let basis = super::api::PlanBasis {
            topology: engine.topology().clone(),
            findings: engine.findings().to_vec(),
            pods: pods
                .iter()
                .filter_map(|p| p.key.clone().map(|k| (p.name.clone(), k)))
                .collect(),
            primary: primary.and_then(|n| key_of(pods, n)),
            recovery: engine.config.recovery.clone(),
            records,
        };
        p.publish(view, basis);
    }

    fn engine_mut(&mut self) -> &mut ClusterEngine {
        &mut self.engine
    }

    /// A round's records for the store: its topology, findings, fences and
    /// automatic recovery.
    fn feed_round(&mut self, report: &crate::engine::RoundReport) {
        if let Some(f) = &mut self.feed {
            f.round(self.engine.topology(), report);
        }
        if let Some(m) = &self.metrics {
            m.observe_engine(&self.namespace, &self.name, &self.engine, report);
        }
        for r in report.recovery.iter().chain(&report.fence_records) {
            self.remember(r);
        }
    }

    fn remember(&mut self, record: &OperationRecord) {
        if self.published.is_none() {
            return;
        }
        self.recent.push_back(record.clone());
        while self.recent.len() > crate::api::model::RECENT_OPERATIONS {
            self.recent.pop_front();
        }
    }

    /// The record of an operation asked for (by annotation, or a hand
    /// over), with its steps, in this worker's epoch.
    fn feed_operation(&mut self, record: &OperationRecord) {
        self.remember(record);
        if let Some(f) = &self.feed {
            f.operation(record, self.epoch);
        }
        if let Some(m) = &self.metrics {
            m.observe_operation(&self.namespace, &self.name, record);
        }
    }

    /// The audit of an operation asked for: `action` on `target`, by
    /// `by`, through `door`.
    fn feed_audit(
        &self,
        action: &str,
        target: Option<String>,
        by: &str,
        door: Door,
        detail: String,
    ) {
        if let Some(f) = &self.feed {
            f.audit(action, target, by, door, Some(detail));
        }
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

#[cfg(test)]
mod metric_label_tests {
    use super::WorkerError;

    #[test]
    fn every_error_has_its_own_label() {
        let errors = [
            WorkerError::Credentials("x".into()),
            WorkerError::PolicyUnreadable("x".into()),
            WorkerError::Deposed("x".into()),
            WorkerError::Status("x".into()),
            WorkerError::Objects(crate::k8s::objects::ObjectError::NoNamespace),
        ];
        let labels: std::collections::BTreeSet<&str> =
            errors.iter().map(|e| e.metric_label()).collect();
        assert_eq!(labels.len(), errors.len(), "{labels:?}");
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
