//! The HTTP API in Kubernetes: every operator replica serves it.
//!
//! - Reads: the leader's workers publish each cluster's view and what
//!   its plans are made from after every round ([`Published`]); a
//!   follower answers from the clusters' status ([`status_view`]), which
//!   the leader keeps.
//! - Who may do what: the bearer token is checked with a TokenReview, the
//!   caller's right with a SubjectAccessReview against `mysqlclusters`
//!   (`get`/`list` to read, `update` to operate: who may annotate a
//!   cluster may operate it, as through the annotations), so RBAC decides
//!   who may fail over what ([`KubeAuthorizer`]).
//! - Operations: a follower answers 503 naming the leader. The leader
//!   answers a dry run with the plan, made from its worker's last round;
//!   it carries out a real one by writing the annotation that asks for it
//!   (with who asked), so the worker runs it exactly as it runs an
//!   annotation: recorded in status, as an Event, in the store's audit
//!   ([`OperatorOps`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use super::annotations::Request;
use super::crd::cluster::{InstanceRole, MySQLCluster};
use super::crd::names::{GROUP, annotation};
use super::worker::KUBE_LIMIT;
use crate::analysis::Finding;
use crate::api::model::{
    ClusterId, ClusterView, FindingView, InstanceView, OperationInProgress, rfc3339_s,
};
use crate::api::{
    Access, ApiError, Authorizer, BoxFuture, Caller, LeaderView, OperationAnswer, OperationRequest,
    Operations, ReadModel,
};
use crate::plan::candidate::PromotionRule;
use crate::plan::operation::{self, Operation, OperationKind};
use crate::plan::recovery::RecoveryOptions;
use crate::plan::takeover::TakeoverOptions;
use crate::topology::InstanceKey;
use crate::topology::graph::Topology;

/// What a cluster's plans are made from, as its worker last saw it.
#[derive(Debug, Clone)]
pub struct PlanBasis {
    pub topology: Topology,
    pub findings: Vec<Finding>,
    /// Pod name → address.
    pub pods: BTreeMap<String, InstanceKey>,
    pub primary: Option<InstanceKey>,
    pub recovery: RecoveryOptions,
    /// The last operations its worker ran, oldest first.
    pub records: Vec<crate::engine::executor::OperationRecord>,
}

impl PlanBasis {
    /// An instance named by pod or by address.
    fn resolve(&self, what: &str, name: &Option<String>) -> Result<Option<InstanceKey>, ApiError> {
        let Some(n) = name else { return Ok(None) };
        if let Some(k) = self.pods.get(n) {
            return Ok(Some(k.clone()));
        }
        match n.parse::<InstanceKey>() {
            Ok(k) if self.pods.values().any(|v| *v == k) => Ok(Some(k)),
            _ => Err(ApiError::refused(format!(
                "{what}: {n} is not a pod of this cluster (nor its address)"
            ))),
        }
    }

    fn pod_of(&self, k: &InstanceKey) -> Option<String> {
        self.pods
            .iter()
            .find(|(_, v)| *v == k)
            .map(|(p, _)| p.clone())
    }
}

/// What the leader's workers publish, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub model: ReadModel,
    bases: Arc<RwLock<HashMap<ClusterId, Arc<PlanBasis>>>>,
    /// The clusters as the API's own watch sees them ([`follow_status`]).
    clusters: Arc<std::sync::OnceLock<kube::runtime::reflector::Store<MySQLCluster>>>,
}

impl Published {
    pub fn publish(&self, view: ClusterView, basis: PlanBasis) {
        let id = ClusterId::new(view.namespace.clone(), view.name.clone());
        self.model.publish(view);
        let mut b = self.bases.write().unwrap_or_else(|e| e.into_inner());
        b.insert(id, Arc::new(basis));
    }

    pub fn remove(&self, id: &ClusterId) {
        self.model.remove(id);
        let mut b = self.bases.write().unwrap_or_else(|e| e.into_inner());
        b.remove(id);
    }

    pub fn basis(&self, id: &ClusterId) -> Option<Arc<PlanBasis>> {
        let b = self.bases.read().unwrap_or_else(|e| e.into_inner());
        b.get(id).cloned()
    }

    /// The cluster `id` as the API's watch last saw it.
    pub fn cluster(&self, id: &ClusterId) -> Option<Arc<MySQLCluster>> {
        let store = self.clusters.get()?;
        store.get(&kube::runtime::reflector::ObjectRef::new(&id.name).within(&id.namespace))
    }

    /// Forgets what workers published (leadership lost: their views go
    /// stale).
    pub fn clear_bases(&self) {
        let mut b = self.bases.write().unwrap_or_else(|e| e.into_inner());
        b.clear();
    }
}

/// A cluster's view from its status (what a follower answers).
pub fn status_view(c: &MySQLCluster) -> Option<ClusterView> {
    let namespace = c.metadata.namespace.clone()?;
    let name = c.metadata.name.clone()?;
    let status = c.status.clone().unwrap_or_default();
    let address = |pod: &str| {
        status
            .topology
            .iter()
            .find(|i| i.pod == pod)
            .map(|i| i.address.clone())
            .unwrap_or_else(|| pod.to_string())
    };
    let instances: Vec<InstanceView> = status
        .topology
        .iter()
        .map(|i| InstanceView {
            key: i.address.clone(),
            pod: Some(i.pod.clone()),
            role: match i.role {
                InstanceRole::Primary => "primary",
                InstanceRole::Replica => "replica",
                InstanceRole::Intermediate => "intermediate-primary",
                InstanceRole::Unknown => "unknown",
            }
            .to_string(),
            source: i.source.as_deref().map(address),
            replicas: status
                .topology
                .iter()
                .filter(|r| r.source.as_deref() == Some(i.pod.as_str()))
                .map(|r| r.address.clone())
                .collect(),
            depth: 0,
            reachable: i.role != InstanceRole::Unknown,
            lag_ms: i.lag_seconds.map(|s| (s * 1000.0) as u64),
            read_only: None,
            errant: i.errant_gtids.clone(),
            error: None,
            downtimed: false,
            promotion_rule: PromotionRule::Neutral.name().to_string(),
            kubernetes: None,
            snapshot: None,
        })
        .collect();
    let healthy = status
        .conditions
        .iter()
        .any(|k| k.type_ == super::crd::names::condition::HEALTHY && k.status == "True");
    let findings = status
        .topology
        .iter()
        .flat_map(|i| {
            i.problems.iter().map(|p| FindingView {
                code: p.clone(),
                severity: String::new(),
                instance: i.address.clone(),
                replicas: Vec::new(),
                description: format!("{p} on {}", i.pod),
            })
        })
        .collect();
    Some(ClusterView {
        namespace: namespace.clone(),
        name: name.clone(),
        primary: status.primary.as_deref().map(address),
        healthy,
        instances,
        findings,
        operation: status.operation.as_ref().map(|j| OperationInProgress {
            id: j.id.clone(),
            kind: format!("{:?}", j.kind),
            target: j.target.clone(),
            started_at: j.started_at.clone().unwrap_or_default(),
        }),
        automatic_failover: None,
        recent_operations: Vec::new(),
        observed_at: rfc3339_s(crate::store::now_ms() / 1000),
        store_key: format!("{namespace}/{name}"),
    })
}

/// Checks the caller with a TokenReview and their right with a
/// SubjectAccessReview.
pub struct KubeAuthorizer {
    pub client: Client,
    /// Reads need no token.
    pub open_reads: bool,
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(KUBE_LIMIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("{what}: {e}"))),
        Err(_) => Err(ApiError::unavailable(format!("{what}: timed out"))),
    }
}

/// The SubjectAccessReview attributes of an access: the verb, namespace
/// and name on `mysqlclusters`.
pub fn attributes(access: &Access) -> ResourceAttributes {
    let (verb, id) = match access {
        Access::Read(None) => ("list", None),
        Access::Read(Some(id)) => ("get", Some(id)),
        Access::Operate(id) => ("update", Some(id)),
    };
    ResourceAttributes {
        group: Some(GROUP.into()),
        resource: Some("mysqlclusters".into()),
        verb: Some(verb.into()),
        namespace: id.map(|i| i.namespace.clone()),
        name: id.map(|i| i.name.clone()),
        ..Default::default()
    }
}

impl KubeAuthorizer {
    async fn check(&self, token: Option<String>, access: Access) -> Result<Caller, ApiError> {
        if matches!(access, Access::Read(_)) && self.open_reads {
            return Ok(Caller {
                name: "anonymous".into(),
            });
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(ApiError::unauthorized(
                "a bearer token is needed (Authorization: Bearer TOKEN, e.g. from `kubectl create token`)",
            ));
        };
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let r = bounded(
            "the token review",
            reviews.create(&PostParams::default(), &review),
        )
        .await?;
        let status = r.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        let (true, Some(name)) = (status.authenticated.unwrap_or(false), user.username) else {
            return Err(ApiError::unauthorized("the bearer token is not valid"));
        };
        let attrs = attributes(&access);
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(name.clone()),
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                resource_attributes: Some(attrs.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let sars: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let r = bounded(
            "the access review",
            sars.create(&PostParams::default(), &sar),
        )
        .await?;
        if r.status.is_some_and(|s| s.allowed) {
            Ok(Caller { name })
        } else {
            Err(ApiError::forbidden(format!(
                "{name} may not {} mysqlclusters.{GROUP}{}",
                attrs.verb.unwrap_or_default(),
                match (&attrs.namespace, &attrs.name) {
                    (Some(ns), Some(n)) => format!(" {n} in {ns}"),
                    _ => String::new(),
                }
            )))
        }
    }
}

impl Authorizer for KubeAuthorizer {
    fn authorize(
        &self,
        token: Option<String>,
        access: Access,
    ) -> BoxFuture<Result<Caller, ApiError>> {
        let me = KubeAuthorizer {
            client: self.client.clone(),
            open_reads: self.open_reads,
        };
        Box::pin(async move { me.check(token, access).await })
    }
}

/// The annotation who asked through the API is written to, beside the
/// operation's (for the audit).
pub const REQUESTED_BY: &str = "orca.dev/requested-by";

/// What a real operation writes: the annotations on the cluster, or on
/// a pod (a downtime).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Cluster(serde_json::Value),
    Pod(String, serde_json::Value),
}

/// How the leader carries out `op` (pure): the annotation asking for it
/// (`orca.dev/operation` for a refactoring or an instance operation).
pub fn write_for(
    basis: &PlanBasis,
    op: &Operation,
    request: &OperationRequest,
    caller: &Caller,
    now_s: i64,
) -> Result<Write, ApiError> {
    let pod = |k: &Option<InstanceKey>| -> Result<String, ApiError> {
        let k = k
            .as_ref()
            .ok_or_else(|| ApiError::bad_request(format!("{} needs a target", op.kind)))?;
        basis
            .pod_of(k)
            .ok_or_else(|| ApiError::refused(format!("{k} is not a pod of this cluster")))
    };
    let cluster = |r: Request, comment: Option<String>| {
        let (key, value) = r.as_annotation(comment.as_deref());
        Write::Cluster(json!({ key: value, REQUESTED_BY: caller.name }))
    };
    Ok(match op.kind {
        OperationKind::GracefulTakeover => cluster(
            Request::GracefulTakeover {
                to: match &op.target {
                    Some(_) => Some(pod(&op.target)?),
                    None => None,
                },
            },
            None,
        ),
        OperationKind::ForceFailover => cluster(Request::ForceFailover, None),
        OperationKind::ForceTakeover => cluster(
            Request::ForceTakeover {
                to: pod(&op.target)?,
            },
            None,
        ),
        OperationKind::Recover => cluster(Request::Recover, None),
        OperationKind::Acknowledge => cluster(
            Request::Acknowledge,
            Some(
                request
                    .comment
                    .clone()
                    .unwrap_or_else(|| format!("by {}", caller.name)),
            ),
        ),
        OperationKind::BeginDowntime => {
            let span = match &request.duration {
                None => std::time::Duration::from_secs(3600),
                Some(d) => super::crd::parse_duration(d)
                    .map_err(|e| ApiError::bad_request(format!("duration: {e}")))?,
            };
            if span.is_zero() || span.as_secs() > 366 * 24 * 3600 {
                return Err(ApiError::bad_request("duration: between 1 s and a year"));
            }
            let until = rfc3339_s(now_s.saturating_add(span.as_secs() as i64));
            Write::Pod(pod(&op.target)?, json!({ annotation::DOWNTIME: until }))
        }
        OperationKind::EndDowntime => {
            Write::Pod(pod(&op.target)?, json!({ annotation::DOWNTIME: null }))
        }
        OperationKind::Reprovision => Write::Cluster(json!({
            annotation::REPROVISION: pod(&op.target)?,
            REQUESTED_BY: caller.name,
        })),
        kind => cluster(
            Request::Operation {
                kind,
                target: pod(&op.target)?,
                destination: match &op.destination {
                    Some(_) => Some(pod(&op.destination)?),
                    None => None,
                },
            },
            None,
        ),
    })
}

/// The leader's door for operations asked through the API.
pub struct OperatorOps {
    pub client: Client,
    pub published: Published,
    pub leader: watch::Receiver<LeaderView>,
}

impl OperatorOps {
    async fn carry_out(
        &self,
        id: ClusterId,
        request: OperationRequest,
        caller: Caller,
    ) -> Result<OperationAnswer, ApiError> {
        let leader = self.leader.borrow().clone();
        if !leader.is_leader {
            return Err(ApiError::not_leader(leader.leader));
        }
        let basis = self.published.basis(&id).ok_or_else(|| {
            ApiError::unavailable(format!("{id}: its worker has not observed it yet"))
        })?;
        let kind: OperationKind = request.kind.parse().map_err(ApiError::bad_request)?;
        let op = Operation::new(
            kind,
            basis.resolve("target", &request.target)?,
            basis.resolve("destination", &request.destination)?,
        )
        .map_err(ApiError::bad_request)?;
        let takeover = TakeoverOptions {
            candidate: basis.recovery.candidate.clone(),
            ..Default::default()
        };
        let plan = match kind {
            OperationKind::Recover => {
                let failure =
                    operation::failure_to_recover(&basis.findings).map_err(ApiError::refused)?;
                Some(
                    operation::recovery_plan(&basis.topology, failure, &basis.recovery)
                        .map_err(|e| ApiError::refused(e.to_string()))?,
                )
            }
            k if k.is_plan() => Some(
                operation::plan(
                    &basis.topology,
                    basis.primary.as_ref(),
                    &op,
                    &basis.recovery,
                    &takeover,
                )
                .map_err(|e| ApiError::refused(e.to_string()))?,
            ),
            _ => None,
        };
        let write = write_for(
            &basis,
            &op,
            &request,
            &caller,
            crate::store::now_ms() / 1000,
        )?;
        if request.dry_run {
            return Ok(match &plan {
                Some(p) => OperationAnswer::planned(kind, p),
                None => OperationAnswer::done(kind, true, format!("would write {write:?}")),
            });
        }
        let patch = |annotations: serde_json::Value| {
            Patch::Merge(json!({ "metadata": { "annotations": annotations } }))
        };
        let params = PatchParams::default();
        let before: Vec<String> = basis.records.iter().map(|r| r.id.clone()).collect();
        let asked_s = crate::store::now_ms() / 1000;
        let (what, message) = match write {
            Write::Cluster(a) => {
                let api: Api<MySQLCluster> = Api::namespaced(self.client.clone(), &id.namespace);
                bounded(
                    "annotating the cluster",
                    api.patch(&id.name, &params, &patch(a)),
                )
                .await?;
                // A copy takes minutes: asked for, its progress is in
                // status.reprovision and the Events.
                if kind == OperationKind::Reprovision {
                    let pod = op
                        .target
                        .as_ref()
                        .and_then(|k| basis.pod_of(k))
                        .unwrap_or_default();
                    (
                        "accepted",
                        format!(
                            "the re-provisioning of {pod} is asked for: its progress is in the cluster's status.reprovision and Events"
                        ),
                    )
                } else if kind != OperationKind::Acknowledge {
                    return self
                        .outcome(&id, kind, plan.as_ref(), &before, asked_s)
                        .await;
                } else {
                    ("done", format!("the last recovery of {id} is acknowledged"))
                }
            }
            Write::Pod(p, a) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &id.namespace);
                bounded("annotating the pod", api.patch(&p, &params, &patch(a))).await?;
                ("done", format!("{kind} of pod {p}"))
            }
        };
        Ok(OperationAnswer {
            kind: kind.name().to_string(),
            dry_run: false,
            id: None,
            outcome: what.into(),
            message,
            plan: plan.as_ref().and_then(|p| serde_json::to_value(p).ok()),
            record: None,
            ..OperationAnswer::described(plan.as_ref())
        })
    }
}

/// How long the leader's answer waits for the operation it asked its
/// worker for (within the API's own limit); then it answers `accepted`.
pub const OUTCOME_WAIT: std::time::Duration = std::time::Duration::from_secs(240);

impl OperatorOps {
    /// The operation's record once the worker ran it, its refusal, or
    /// `accepted` when neither came within [`OUTCOME_WAIT`] (or this
    /// replica stopped leading). Reads what the worker published and the
    /// API's own watch: no request to the API server.
    async fn outcome(
        &self,
        id: &ClusterId,
        kind: OperationKind,
        plan: Option<&crate::plan::Plan>,
        before: &[String],
        asked_s: i64,
    ) -> Result<OperationAnswer, ApiError> {
        let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
        while tokio::time::Instant::now() < deadline && self.leader.borrow().is_leader {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Some(b) = self.published.basis(id)
                && let Some(r) = b.records.iter().find(|r| !before.contains(&r.id))
            {
                return Ok(OperationAnswer::ran(kind, plan, r));
            }
            // Refused by the worker: the annotation consumed, the last
            // operation failed since, with no record.
            if let Some(c) = self.published.cluster(id) {
                let pending = c
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(REQUESTED_BY));
                let last = c.status.as_ref().and_then(|s| s.last_operation.clone());
                if let Some(op) = last.filter(|_| !pending)
                    && op.phase == super::crd::cluster::OperationPhase::Failed
                    && op
                        .finished_at
                        .as_deref()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|t| t.as_second() >= asked_s)
                {
                    return Err(ApiError::refused(
                        op.message.unwrap_or_else(|| format!("{kind} was refused")),
                    ));
                }
            }
        }
        Ok(OperationAnswer {
            kind: kind.name().to_string(),
            dry_run: false,
            id: None,
            outcome: "accepted".into(),
            message: format!(
                "the leader carries out {kind} on {id}: see status.lastOperation and the cluster's Events"
            ),
            plan: plan.as_ref().and_then(|p| serde_json::to_value(p).ok()),
            record: None,
            ..OperationAnswer::described(plan)
        })
    }
}

impl Operations for OperatorOps {
    fn submit(
        &self,
        cluster: ClusterId,
        request: OperationRequest,
        caller: Caller,
    ) -> BoxFuture<Result<OperationAnswer, ApiError>> {
        let me = OperatorOps {
            client: self.client.clone(),
            published: self.published.clone(),
            leader: self.leader.clone(),
        };
        Box::pin(async move { me.carry_out(cluster, request, caller).await })
    }
}

/// Keeps the followers' views: every cluster's [`status_view`], while
/// this replica does not lead (the leader's workers publish theirs).
/// `ready` turns true once the clusters were listed. Runs until the
/// watch ends.
pub async fn follow_status(
    client: Client,
    published: Published,
    mut leader: watch::Receiver<LeaderView>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    scope: Option<String>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (store, writer) = reflector::store::<MySQLCluster>();
    let _ = published.clusters.set(store.clone());
    let api: Api<MySQLCluster> = super::cache::scoped(&client, scope.as_deref());
    let mut events = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let republish = |leading: bool| {
        if leading {
            return;
        }
        published.clear_bases();
        let views: Vec<ClusterView> = store
            .state()
            .iter()
            .filter_map(|c| status_view(c))
            .collect();
        let ids: Vec<ClusterId> = views
            .iter()
            .map(|v| ClusterId::new(v.namespace.clone(), v.name.clone()))
            .collect();
        for old in published.model.list() {
            let id = ClusterId::new(old.namespace.clone(), old.name.clone());
            if !ids.contains(&id) {
                published.model.remove(&id);
            }
        }
        for v in views {
            published.model.publish(v);
        }
    };
    loop {
        tokio::select! {
            e = events.next() => match e {
                None => return,
                Some(Err(e)) => tracing::debug!(error = %e, "the clusters' watch: retrying"),
                Some(Ok(e)) => {
                    if matches!(e, watcher::Event::InitDone) {
                        ready.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    republish(leader.borrow().is_leader);
                }
            },
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
                let leading = leader.borrow_and_update().is_leader;
                republish(leading);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> InstanceKey {
        s.parse().unwrap()
    }

    fn basis() -> PlanBasis {
        PlanBasis {
            topology: Topology::default(),
            findings: Vec::new(),
            pods: [
                ("db-0".to_string(), k("10.0.0.1:3306")),
                ("db-1".to_string(), k("10.0.0.2:3306")),
            ]
            .into_iter()
            .collect(),
            primary: Some(k("10.0.0.1:3306")),
            recovery: RecoveryOptions::default(),
            records: Vec::new(),
        }
    }

    fn req(kind: &str) -> OperationRequest {
        OperationRequest {
            kind: kind.into(),
            target: None,
            destination: None,
            dry_run: false,
            comment: None,
            duration: None,
        }
    }

    #[test]
    fn instances_by_pod_or_address() {
        let b = basis();
        assert_eq!(
            b.resolve("t", &Some("db-1".into())).unwrap(),
            Some(k("10.0.0.2:3306"))
        );
        assert_eq!(
            b.resolve("t", &Some("10.0.0.2:3306".into())).unwrap(),
            Some(k("10.0.0.2:3306"))
        );
        assert_eq!(b.resolve("t", &None).unwrap(), None);
        let e = b.resolve("t", &Some("db-9".into())).unwrap_err();
        assert_eq!(e.status.as_u16(), 409);
    }

    #[test]
    fn each_operation_becomes_its_annotation() {
        let b = basis();
        let alice = Caller {
            name: "system:serviceaccount:shop:alice".into(),
        };
        let one = |kind: OperationKind, target: Option<&str>, r: OperationRequest| {
            let op = Operation::new(kind, target.map(k), None).unwrap();
            write_for(&b, &op, &r, &alice, 1_800_000_000)
        };
        assert_eq!(
            one(
                OperationKind::GracefulTakeover,
                Some("10.0.0.2:3306"),
                req("graceful-takeover")
            )
            .unwrap(),
            Write::Cluster(
                json!({annotation::GRACEFUL_TAKEOVER: "db-1", REQUESTED_BY: alice.name})
            )
        );
        assert_eq!(
            one(
                OperationKind::GracefulTakeover,
                None,
                req("graceful-takeover")
            )
            .unwrap(),
            Write::Cluster(
                json!({annotation::GRACEFUL_TAKEOVER: "auto", REQUESTED_BY: alice.name})
            )
        );
        assert_eq!(
            one(OperationKind::ForceFailover, None, req("force-failover")).unwrap(),
            Write::Cluster(json!({annotation::FORCE_FAILOVER: "true", REQUESTED_BY: alice.name}))
        );
        let mut d = req("begin-downtime");
        d.duration = Some("30m".into());
        assert_eq!(
            one(OperationKind::BeginDowntime, Some("10.0.0.1:3306"), d).unwrap(),
            Write::Pod(
                "db-0".into(),
                json!({annotation::DOWNTIME: rfc3339_s(1_800_001_800)})
            )
        );
        assert_eq!(
            one(
                OperationKind::EndDowntime,
                Some("10.0.0.1:3306"),
                req("end-downtime")
            )
            .unwrap(),
            Write::Pod("db-0".into(), json!({annotation::DOWNTIME: null}))
        );
        assert_eq!(
            one(OperationKind::MoveUp, Some("10.0.0.2:3306"), req("move-up")).unwrap(),
            Write::Cluster(
                json!({annotation::OPERATION: "move-up db-1", REQUESTED_BY: alice.name})
            )
        );
        let op = Operation::new(
            OperationKind::Relocate,
            Some(k("10.0.0.2:3306")),
            Some(k("10.0.0.1:3306")),
        )
        .unwrap();
        assert_eq!(
            write_for(&b, &op, &req("relocate"), &alice, 0).unwrap(),
            Write::Cluster(
                json!({annotation::OPERATION: "relocate db-1 db-0", REQUESTED_BY: alice.name})
            )
        );
        let op = Operation::new(OperationKind::MoveUp, Some(k("10.9.9.9:3306")), None).unwrap();
        let e = write_for(&b, &op, &req("move-up"), &alice, 0).unwrap_err();
        assert_eq!(e.status.as_u16(), 409);
    }

    #[test]
    fn review_attributes() {
        let id = ClusterId::new("shop", "db");
        let a = attributes(&Access::Operate(id.clone()));
        assert_eq!(
            (
                a.verb.as_deref(),
                a.namespace.as_deref(),
                a.name.as_deref(),
                a.resource.as_deref()
            ),
            (
                Some("update"),
                Some("shop"),
                Some("db"),
                Some("mysqlclusters")
            )
        );
        assert_eq!(
            attributes(&Access::Read(Some(id))).verb.as_deref(),
            Some("get")
        );
        let all = attributes(&Access::Read(None));
        assert_eq!((all.verb.as_deref(), all.namespace), (Some("list"), None));
    }
}
