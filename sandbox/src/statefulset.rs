//! The sandbox's StatefulSet controller: an ordinary kube-rs client of the
//! API server (a `kube::runtime::Controller` on StatefulSets that owns
//! Pods), doing what the real controller does for the fields orca uses:
//!
//! - pods `<name>-<ordinal>` from the template, created in order and one at
//!   a time for `OrderedReady` (the next when the previous is Running and
//!   Ready), all at once for `Parallel`; deleted and failed pods are
//!   recreated with the same name;
//! - each pod carries the owner reference, the labels
//!   `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//!   and `controller-revision-hash`, `hostname` and `subdomain`;
//! - PersistentVolumeClaims `<template>-<set>-<ordinal>` from
//!   `volumeClaimTemplates`, created before the pod and kept when pods are
//!   deleted or scaled away (the `Retain` policy);
//! - scale down from the highest ordinal, one at a time for `OrderedReady`;
//! - revisions as ControllerRevisions named `<set>-<hash>` (the hash of the
//!   template), rolling updates from the highest ordinal down to the
//!   partition, one pod at a time, each waiting for the previous to be
//!   ready again; `OnDelete` replaces only pods that are deleted;
//! - status: replicas, readyReplicas, availableReplicas, currentReplicas,
//!   updatedReplicas, currentRevision, updateRevision, observedGeneration,
//!   collisionCount.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use orca::k8s::ordinal::pod_ordinal;
use serde_json::{Value, json};

/// Label naming a StatefulSet pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label carrying a StatefulSet pod's ordinal (Kubernetes 1.28+).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label carrying the revision a pod (or ControllerRevision) belongs to.
pub const REVISION_LABEL: &str = "controller-revision-hash";
const FIELD_MANAGER: &str = "statefulset-controller";

#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("statefulset {0}: {1}")]
    Invalid(String, String),
}

struct Ctx {
    client: Client,
}

/// A running controller; dropping it (or [`StatefulSetController::shutdown`])
/// stops it.
pub struct StatefulSetController {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StatefulSetController {
    /// Starts the controller on the current tokio runtime.
    pub fn start(client: Client) -> StatefulSetController {
        let sets: Api<StatefulSet> = Api::all(client.clone());
        let pods: Api<Pod> = Api::all(client.clone());
        let ctx = Arc::new(Ctx { client });
        let task = tokio::spawn(async move {
            Controller::new(sets, watcher::Config::default())
                .owns(pods, watcher::Config::default())
                .run(reconcile, error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!("statefulset controller: {e}");
                    }
                })
                .await;
        });
        StatefulSetController { task: Some(task) }
    }

    /// Stops the controller.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for StatefulSetController {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn error_policy(_set: Arc<StatefulSet>, err: &StatefulSetError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("statefulset controller: {err}");
    Action::requeue(Duration::from_secs(1))
}

/// FNV-32a, the hash the real controller uses for revision names.
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Kubernetes' `rand.SafeEncodeString` of the decimal hash: no vowels, no
/// look-alike characters.
fn safe_encode(n: u32) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// JSON with object keys sorted, so that equal templates hash alike.
fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// The revision hash of a template (with the set's collision count).
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut bytes = canonical(template).into_bytes();
    if collision_count > 0 {
        bytes.extend_from_slice(collision_count.to_string().as_bytes());
    }
    safe_encode(fnv32a(&bytes))
}

/// The ordinal of a pod of the set, as the operator reads it.
fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    pod_ordinal(set_name, pod_name).and_then(|o| i32::try_from(o).ok())
}

pub(crate) fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_failed_or_succeeded(p: &Pod) -> bool {
    matches!(phase(p), "Failed" | "Succeeded")
}

fn ready_since(p: &Pod) -> Option<jiff::Timestamp> {
    let conds = p.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == "Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now),
    )
}

pub(crate) fn is_running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && ready_since(p).is_some() && !is_terminating(p)
}

/// Running and Ready for at least `min_ready` seconds.
pub(crate) fn is_available(p: &Pod, min_ready: i64) -> bool {
    if !is_running_and_ready(p) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    ready_since(p).is_some_and(|since| {
        jiff::Timestamp::now().duration_since(since) >= jiff::SignedDuration::from_secs(min_ready)
    })
}

fn revision_of(p: &Pod) -> &str {
    p.labels()
        .get(REVISION_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

pub(crate) fn is_owned_by(p: &Pod, uid: &str) -> bool {
    p.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

struct SetView {
    name: String,
    ns: String,
    uid: String,
    replicas: i32,
    start: i32,
    parallel: bool,
    rolling: bool,
    partition: i32,
    min_ready: i64,
    service_name: String,
    selector: BTreeMap<String, String>,
    claim_templates: Vec<Value>,
    history_limit: usize,
    collision_count: i64,
    generation: Option<i64>,
    current_revision: Option<String>,
    owner_ref: Value,
}

fn view(set: &StatefulSet) -> Result<SetView, StatefulSetError> {
    let name = set.name_any();
    let ns = set.namespace().unwrap_or_else(|| "default".into());
    let uid = set
        .uid()
        .ok_or_else(|| StatefulSetError::Invalid(name.clone(), "no uid".into()))?;
    let spec = set
        .spec
        .as_ref()
        .ok_or_else(|| StatefulSetError::Invalid(name.clone(), "no spec".into()))?;
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let claim_templates = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StatefulSetError::Invalid(name.clone(), e.to_string()))?;
    Ok(SetView {
        owner_ref: json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }),
        name,
        ns,
        uid,
        replicas: spec.replicas.unwrap_or(1),
        start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        rolling,
        partition,
        min_ready: i64::from(spec.min_ready_seconds.unwrap_or(0)),
        service_name: spec.service_name.clone().unwrap_or_default(),
        selector: spec.selector.match_labels.clone().unwrap_or_default(),
        claim_templates,
        history_limit: usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(10),
        collision_count: i64::from(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        generation: set.metadata.generation,
        current_revision: set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|r| !r.is_empty()),
    })
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, StatefulSetError> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let v = view(&set)?;
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &v.ns);
    let revs_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &v.ns);
    let template = serde_json::to_value(set.spec.as_ref().map(|s| &s.template))
        .map_err(|e| StatefulSetError::Invalid(v.name.clone(), e.to_string()))?;

    // revisions
    let revisions: Vec<ControllerRevision> = revs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.uid == v.uid && o.controller == Some(true))
        })
        .collect();
    let update_hash = template_hash(&template, v.collision_count);
    let update_revision = format!("{}-{update_hash}", v.name);
    let max_revision = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    match revisions.iter().find(|r| r.name_any() == update_revision) {
        Some(r) if r.revision == max_revision => {}
        Some(_) => {
            // an older template came back: it becomes the newest revision
            revs_api
                .patch(
                    &update_revision,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": max_revision + 1})),
                )
                .await?;
        }
        None => {
            let mut labels: BTreeMap<String, String> = set
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert("controller.kubernetes.io/hash".into(), update_hash.clone());
            let mut data_template = template.clone();
            data_template["$patch"] = json!("replace");
            let rev: ControllerRevision = serde_json::from_value(json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": update_revision,
                    "namespace": v.ns,
                    "labels": labels,
                    "ownerReferences": [v.owner_ref],
                },
                "data": {"spec": {"template": data_template}},
                "revision": max_revision + 1,
            }))
            .map_err(|e| StatefulSetError::Invalid(v.name.clone(), e.to_string()))?;
            match revs_api.create(&PostParams::default(), &rev).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let current_revision = v
        .current_revision
        .clone()
        .unwrap_or_else(|| update_revision.clone());
    let current_template = if current_revision == update_revision {
        template.clone()
    } else {
        revisions
            .iter()
            .find(|r| r.name_any() == current_revision)
            .and_then(|r| r.data.as_ref())
            .and_then(|d| d.0.pointer("/spec/template").cloned())
            .map(|mut t| {
                if let Some(m) = t.as_object_mut() {
                    m.remove("$patch");
                }
                t
            })
            .unwrap_or_else(|| template.clone())
    };

    // pods owned by this set, by ordinal
    let selector = v
        .selector
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",");
    let all: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| is_owned_by(p, &v.uid))
        .collect();
    let mut by_ordinal: BTreeMap<i32, Pod> = BTreeMap::new();
    for p in all {
        if let Some(o) = ordinal_of(&v.name, &p.name_any()) {
            by_ordinal.insert(o, p);
        }
    }
    let end = v.start.saturating_add(v.replicas.max(0));
    let mut requeue: Option<Duration> = None;

    let outcome = step(
        &ctx,
        &v,
        &pods_api,
        &by_ordinal,
        end,
        &template,
        &update_revision,
        &current_template,
        &current_revision,
        &mut requeue,
    )
    .await?;

    // status, from a fresh read of the pods
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| is_owned_by(p, &v.uid) && ordinal_of(&v.name, &p.name_any()).is_some())
        .collect();
    let counted = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i64;
    let replicas = pods.len() as i64;
    let ready = counted(&is_running_and_ready);
    let available = counted(&|p| is_available(p, v.min_ready));
    let updated = counted(&|p| revision_of(p) == update_revision && !is_terminating(p));
    let mut current = counted(&|p| revision_of(p) == current_revision && !is_terminating(p));
    let mut status_current_revision = current_revision.clone();
    if updated == i64::from(v.replicas) && ready == i64::from(v.replicas) && outcome {
        status_current_revision = update_revision.clone();
        current = updated;
    }
    if v.min_ready > 0 && ready > available {
        requeue = Some(requeue.map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1))));
    }
    let status = json!({
        "status": {
            "observedGeneration": v.generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": status_current_revision,
            "updateRevision": update_revision,
            "collisionCount": v.collision_count,
        }
    });
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &v.ns);
    let unchanged = set
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .is_some_and(|cur| {
            status["status"]
                .as_object()
                .is_some_and(|m| m.iter().all(|(k, val)| cur.get(k) == Some(val)))
        });
    if !unchanged {
        match sets
            .patch_status(&v.name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    truncate_history(
        &revs_api,
        &revisions,
        &v,
        &pods,
        &update_revision,
        &status_current_revision,
    )
    .await;
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::requeue(Duration::from_secs(30)),
    })
}

/// One pass of the real controller's algorithm. Returns whether the set
/// has settled (nothing left to create, delete or update).
#[allow(clippy::too_many_arguments)]
async fn step(
    ctx: &Ctx,
    v: &SetView,
    pods_api: &Api<Pod>,
    by_ordinal: &BTreeMap<i32, Pod>,
    end: i32,
    update_template: &Value,
    update_revision: &str,
    current_template: &Value,
    current_revision: &str,
    requeue: &mut Option<Duration>,
) -> Result<bool, StatefulSetError> {
    let monotonic = !v.parallel;
    let mut settled = true;
    // create and repair the replicas in ordinal order
    for ord in v.start..end {
        match by_ordinal.get(&ord) {
            None => {
                let (tpl, rev) = if v.rolling
                    && current_revision != update_revision
                    && ord - v.start < v.partition
                {
                    (current_template, current_revision)
                } else {
                    (update_template, update_revision)
                };
                create_claims(ctx, v, ord).await?;
                create_pod(pods_api, v, ord, tpl, rev).await?;
                settled = false;
                if monotonic {
                    return Ok(false);
                }
            }
            Some(p) if is_failed_or_succeeded(p) && !is_terminating(p) => {
                delete_pod(pods_api, p).await?;
                settled = false;
                if monotonic {
                    return Ok(false);
                }
            }
            Some(p) if is_terminating(p) => {
                settled = false;
                if monotonic {
                    return Ok(false);
                }
            }
            Some(p) => {
                if !is_available(p, v.min_ready) {
                    settled = false;
                    if is_running_and_ready(p) {
                        *requeue = Some(Duration::from_secs(1));
                    }
                    if monotonic {
                        return Ok(false);
                    }
                }
            }
        }
    }
    // scale down, highest ordinal first
    let condemned: Vec<&Pod> = by_ordinal
        .iter()
        .filter(|(o, _)| **o < v.start || **o >= end)
        .map(|(_, p)| p)
        .rev()
        .collect();
    let first_unhealthy = by_ordinal
        .values()
        .find(|p| !is_available(p, v.min_ready))
        .map(|p| p.name_any());
    for p in condemned {
        settled = false;
        if is_terminating(p) {
            if monotonic {
                return Ok(false);
            }
            continue;
        }
        if monotonic
            && let Some(u) = &first_unhealthy
            && *u != p.name_any()
        {
            return Ok(false);
        }
        delete_pod(pods_api, p).await?;
        if monotonic {
            return Ok(false);
        }
    }
    if !settled {
        return Ok(false);
    }
    // rolling update, highest ordinal first, down to the partition
    if v.rolling {
        let min = v.start + v.partition.max(0);
        for ord in (min..end).rev() {
            let Some(p) = by_ordinal.get(&ord) else {
                return Ok(false);
            };
            if revision_of(p) != update_revision && !is_terminating(p) {
                delete_pod(pods_api, p).await?;
                return Ok(false);
            }
            if !is_available(p, v.min_ready) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn create_claims(ctx: &Ctx, v: &SetView, ord: i32) -> Result<(), StatefulSetError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &v.ns);
    for tpl in &v.claim_templates {
        let tname = tpl
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = format!("{tname}-{}-{ord}", v.name);
        if claims.get_opt(&name).await?.is_some() {
            continue;
        }
        let mut labels: serde_json::Map<String, Value> = tpl
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, val) in &v.selector {
            labels.insert(k.clone(), json!(val));
        }
        let mut claim = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name,
                "namespace": v.ns,
                "labels": labels,
            },
            "spec": tpl.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        if let Some(a) = tpl.pointer("/metadata/annotations") {
            claim["metadata"]["annotations"] = a.clone();
        }
        let claim: PersistentVolumeClaim = serde_json::from_value(claim)
            .map_err(|e| StatefulSetError::Invalid(v.name.clone(), e.to_string()))?;
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The pod of ordinal `ord` made from `template`.
fn pod_from_template(v: &SetView, ord: i32, template: &Value, revision: &str) -> Value {
    let name = format!("{}-{ord}", v.name);
    let mut meta = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("creationTimestamp");
        m.remove("name");
        m.remove("generateName");
    }
    meta["name"] = json!(name);
    meta["namespace"] = json!(v.ns);
    let mut labels = meta
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ord.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    meta["labels"] = Value::Object(labels);
    meta["ownerReferences"] = json!([v.owner_ref]);
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["hostname"] = json!(name);
    if !v.service_name.is_empty() {
        spec["subdomain"] = json!(v.service_name);
    }
    // the claims' volumes replace same-named template volumes
    let mut volumes: Vec<Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for tpl in &v.claim_templates {
        let tname = tpl
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        volumes.retain(|vol| vol["name"] != json!(tname));
        volumes.push(json!({
            "name": tname,
            "persistentVolumeClaim": {"claimName": format!("{tname}-{}-{ord}", v.name)},
        }));
    }
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

async fn create_pod(
    pods_api: &Api<Pod>,
    v: &SetView,
    ord: i32,
    template: &Value,
    revision: &str,
) -> Result<(), StatefulSetError> {
    let pod: Pod = serde_json::from_value(pod_from_template(v, ord, template, revision))
        .map_err(|e| StatefulSetError::Invalid(v.name.clone(), e.to_string()))?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match pods_api.create(&pp, &pod).await {
        Ok(_) => {
            tracing::info!(
                "statefulset {}/{}: created pod {}-{ord}",
                v.ns,
                v.name,
                v.name
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn delete_pod(pods_api: &Api<Pod>, p: &Pod) -> Result<(), StatefulSetError> {
    let dp = DeleteParams {
        preconditions: p.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods_api.delete(&p.name_any(), &dp).await {
        Ok(_) => {
            tracing::info!("statefulset: deleting pod {}", p.name_any());
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit` that no pod
/// and neither status revision uses.
async fn truncate_history(
    revs_api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    v: &SetView,
    pods: &[Pod],
    update_revision: &str,
    current_revision: &str,
) {
    let live: HashMap<&str, ()> = pods.iter().map(|p| (revision_of(p), ())).collect();
    let mut old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| {
            let n = r.meta().name.as_deref().unwrap_or("");
            n != update_revision && n != current_revision && !live.contains_key(n)
        })
        .collect();
    if old.len() <= v.history_limit {
        return;
    }
    old.sort_by_key(|r| r.revision);
    let excess = old.len() - v.history_limit;
    for r in old.into_iter().take(excess) {
        let _ = revs_api
            .delete(&r.name_any(), &DeleteParams::default())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_safe() {
        let a = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}, "metadata": {"labels": {"b": "1", "a": "2"}}});
        let b = json!({"metadata": {"labels": {"a": "2", "b": "1"}}, "spec": {"containers": [{"image": "x", "name": "a"}]}});
        assert_eq!(template_hash(&a, 0), template_hash(&b, 0));
        assert_ne!(template_hash(&a, 0), template_hash(&a, 1));
        let h = template_hash(&a, 0);
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
    }

    #[test]
    fn pods_carry_identity_and_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns", "uid": "u1"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                             "spec": {"containers": [{"name": "c", "image": "mariadb:10.11"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        }))
        .unwrap();
        let v = view(&set).unwrap();
        let tpl = serde_json::to_value(&set.spec.as_ref().unwrap().template).unwrap();
        let pod = pod_from_template(&v, 2, &tpl, "db-abc");
        assert_eq!(pod["metadata"]["name"], "db-2");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(pod["metadata"]["labels"][POD_NAME_LABEL], "db-2");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], "db-abc");
        assert_eq!(pod["metadata"]["labels"]["app"], "db");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(pod["spec"]["hostname"], "db-2");
        assert_eq!(pod["spec"]["subdomain"], "db");
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-db-2"
        );
    }
}
