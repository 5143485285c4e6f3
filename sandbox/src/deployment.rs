//! The sandbox's Deployment and ReplicaSet controllers: ordinary kube-rs
//! clients of the API server, doing what the real controllers do for the
//! fields a Helm chart's Deployment uses:
//!
//! - a Deployment owns one ReplicaSet per template, named
//!   `<deployment>-<pod-template-hash>`, whose selector, template labels and
//!   pods carry the `pod-template-hash` label, and whose annotation
//!   `deployment.kubernetes.io/revision` counts the templates seen;
//! - `RollingUpdate` (`maxSurge`, `maxUnavailable`, counts or percents)
//!   scales the new ReplicaSet up and the old ones down within those
//!   bounds; `Recreate` scales the old ones to zero first; ReplicaSets
//!   beyond `revisionHistoryLimit` with no replicas are deleted;
//! - a ReplicaSet keeps `spec.replicas` pods `<replicaset>-<random>` from
//!   its template, deleting the not-ready and the newest first when it has
//!   too many, and replacing failed ones;
//! - status: replicas, updatedReplicas, readyReplicas, availableReplicas,
//!   unavailableReplicas, observedGeneration and the `Available` and
//!   `Progressing` conditions on the Deployment (what `kubectl rollout
//!   status` reads); replicas, fullyLabeledReplicas, readyReplicas,
//!   availableReplicas and observedGeneration on the ReplicaSet.
//!
//! Deleting a Deployment removes its ReplicaSets and their pods through the
//! API server's garbage collector (owner references).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::statefulset::{
    is_available, is_owned_by, is_running_and_ready, is_terminating, template_hash,
};

/// The label that ties a ReplicaSet and its pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The annotation numbering a Deployment's templates.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0} {1}: {2}")]
    Invalid(&'static str, String, String),
}

struct Ctx {
    client: Client,
}

/// The two running controllers; dropping them (or
/// [`DeploymentController::shutdown`]) stops them.
pub struct DeploymentController {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DeploymentController {
    /// Starts both controllers on the current tokio runtime.
    pub fn start(client: Client) -> DeploymentController {
        let ctx = Arc::new(Ctx {
            client: client.clone(),
        });
        let deployments = {
            let ctx = ctx.clone();
            let api: Api<Deployment> = Api::all(client.clone());
            let sets: Api<ReplicaSet> = Api::all(client.clone());
            tokio::spawn(async move {
                Controller::new(api, watcher::Config::default())
                    .owns(sets, watcher::Config::default())
                    .run(reconcile_deployment, error_policy_deployment, ctx)
                    .for_each(|r| async move {
                        if let Err(e) = r {
                            tracing::debug!("deployment controller: {e}");
                        }
                    })
                    .await;
            })
        };
        let replicasets = {
            let api: Api<ReplicaSet> = Api::all(client.clone());
            let pods: Api<Pod> = Api::all(client);
            tokio::spawn(async move {
                Controller::new(api, watcher::Config::default())
                    .owns(pods, watcher::Config::default())
                    .run(reconcile_replicaset, error_policy_replicaset, ctx)
                    .for_each(|r| async move {
                        if let Err(e) = r {
                            tracing::debug!("replicaset controller: {e}");
                        }
                    })
                    .await;
            })
        };
        DeploymentController {
            tasks: vec![deployments, replicasets],
        }
    }

    /// Stops both controllers.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for DeploymentController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn error_policy_deployment(_: Arc<Deployment>, err: &DeploymentError, _: Arc<Ctx>) -> Action {
    tracing::warn!("deployment controller: {err}");
    Action::requeue(Duration::from_secs(1))
}

fn error_policy_replicaset(_: Arc<ReplicaSet>, err: &DeploymentError, _: Arc<Ctx>) -> Action {
    tracing::warn!("replicaset controller: {err}");
    Action::requeue(Duration::from_secs(1))
}

/// `maxSurge` / `maxUnavailable` as a count of `replicas`: percents round
/// up for the surge and down for unavailability, as the real controller
/// does.
pub fn resolve(v: Option<&IntOrString>, replicas: i32, round_up: bool, default_pct: i32) -> i32 {
    let pct = |p: i32| {
        let scaled = i64::from(replicas) * i64::from(p);
        let n = if round_up {
            (scaled + 99) / 100
        } else {
            scaled / 100
        };
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    match v {
        None => pct(default_pct),
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i32>().ok())
            .map(|p| pct(p.max(0)))
            .unwrap_or(0),
    }
}

/// What one rolling step asks: the new ReplicaSet's replicas, and how many
/// replicas to take away from the old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollStep {
    pub new_replicas: i32,
    pub scale_down_old: i32,
}

/// One step of a rolling update. `new_spec`: the new set's replicas now;
/// `old_spec`: the old sets' replicas summed; `available`: pods available
/// across all sets; `old_unavailable`: old sets' replicas that are not
/// available (those go first, they cost no availability).
pub fn roll_step(
    replicas: i32,
    surge: i32,
    unavailable: i32,
    new_spec: i32,
    old_spec: i32,
    available: i32,
    old_unavailable: i32,
) -> RollStep {
    let (surge, unavailable) = if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    };
    let max_total = replicas + surge;
    let room = max_total - (new_spec + old_spec);
    let new_replicas = if new_spec >= replicas {
        replicas
    } else {
        (new_spec + room.max(0)).min(replicas)
    };
    let min_available = replicas - unavailable;
    // unavailable old replicas may always go; available ones only while
    // enough stay available
    let spare = (available - min_available).max(0);
    let scale_down_old = (old_unavailable + spare).min(old_spec).max(0);
    RollStep {
        new_replicas,
        scale_down_old,
    }
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn status_of(
    rs: &ReplicaSet,
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A write's outcome where an object already gone is as good as done.
fn unless_gone<T>(r: Result<T, kube::Error>) -> Result<(), DeploymentError> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The owner reference of a controller (`kind` of apps/v1) to what it makes.
fn controller_ref(kind: &str, name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

async fn scale(api: &Api<ReplicaSet>, rs: &ReplicaSet, to: i32) -> Result<(), DeploymentError> {
    if spec_replicas(rs) == to {
        return Ok(());
    }
    unless_gone(
        api.patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": to}})),
        )
        .await,
    )
}

async fn reconcile_deployment(
    d: Arc<Deployment>,
    ctx: Arc<Ctx>,
) -> Result<Action, DeploymentError> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = d.name_any();
    let ns = d.namespace().unwrap_or_else(|| "default".into());
    let invalid = |m: &str| DeploymentError::Invalid("deployment", name.clone(), m.to_string());
    let uid = d.uid().ok_or_else(|| invalid("no uid"))?;
    let spec = d.spec.as_ref().ok_or_else(|| invalid("no spec"))?;
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let sets_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let template = serde_json::to_value(&spec.template).map_err(|e| invalid(&e.to_string()))?;
    let collision = i64::from(
        d.status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0),
    );
    let hash = template_hash(&template, collision);
    let new_name = format!("{name}-{hash}");

    let mut sets: Vec<ReplicaSet> = sets_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| owned_by(&rs.metadata, &uid) && rs.metadata.deletion_timestamp.is_none())
        .collect();
    sets.sort_by_key(revision);
    let max_revision = sets.iter().map(revision).max().unwrap_or(0);
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = if rolling {
        resolve(ru.and_then(|r| r.max_surge.as_ref()), replicas, true, 25)
    } else {
        0
    };
    let unavailable = if rolling {
        resolve(
            ru.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
            false,
            25,
        )
    } else {
        replicas
    };

    let new_set = match sets.iter().position(|rs| rs.name_any() == new_name) {
        Some(i) => {
            let rs = sets.remove(i);
            if revision(&rs) < max_revision {
                // an older template came back: it becomes the newest revision
                sets_api
                    .patch(
                        &new_name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"annotations": {
                            REVISION_ANNOTATION: (max_revision + 1).to_string()}}})),
                    )
                    .await?;
            }
            rs
        }
        None => {
            let old_spec: i32 = sets.iter().map(spec_replicas).sum();
            let initial = if sets.is_empty() {
                replicas
            } else if rolling {
                (replicas + surge - old_spec).clamp(0, replicas)
            } else {
                0
            };
            let mut selector =
                serde_json::to_value(&spec.selector).map_err(|e| invalid(&e.to_string()))?;
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut labels = tpl["metadata"]["labels"].clone();
            labels[HASH_LABEL] = json!(hash);
            let rs: ReplicaSet = serde_json::from_value(json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": new_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        REVISION_ANNOTATION: (max_revision + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                        "deployment.kubernetes.io/max-replicas": (replicas + surge).to_string(),
                    },
                    "ownerReferences": [controller_ref("Deployment", &name, &uid)],
                },
                "spec": {
                    "replicas": initial,
                    "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
                    "selector": selector,
                    "template": tpl,
                },
            }))
            .map_err(|e| invalid(&e.to_string()))?;
            match sets_api.create(&PostParams::default(), &rs).await {
                Ok(created) => created,
                Err(kube::Error::Api(s)) if s.code == 409 => sets_api.get(&new_name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let olds = sets;

    // scale
    let old_spec: i32 = olds.iter().map(spec_replicas).sum();
    if spec.paused != Some(true) {
        if olds.is_empty() || !rolling {
            if !olds.is_empty() {
                for rs in &olds {
                    scale(&sets_api, rs, 0).await?;
                }
            }
            let old_pods: i32 = olds
                .iter()
                .map(|rs| status_of(rs, |s| Some(s.replicas)))
                .sum();
            if old_pods == 0 {
                scale(&sets_api, &new_set, replicas).await?;
            }
        } else {
            let available: i32 = std::iter::once(&new_set)
                .chain(olds.iter())
                .map(|rs| status_of(rs, |s| s.available_replicas).min(spec_replicas(rs)))
                .sum();
            let old_unavailable: i32 = olds
                .iter()
                .map(|rs| (spec_replicas(rs) - status_of(rs, |s| s.available_replicas)).max(0))
                .sum();
            let step = roll_step(
                replicas,
                surge,
                unavailable,
                spec_replicas(&new_set),
                old_spec,
                available,
                old_unavailable,
            );
            scale(&sets_api, &new_set, step.new_replicas).await?;
            let mut take = step.scale_down_old;
            for rs in &olds {
                if take == 0 {
                    break;
                }
                let have = spec_replicas(rs);
                let cut = have.min(take);
                scale(&sets_api, rs, have - cut).await?;
                take -= cut;
            }
        }
    }

    // history
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(10);
    let idle: Vec<&ReplicaSet> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_of(rs, |s| Some(s.replicas)) == 0)
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            unless_gone(
                sets_api
                    .delete(&rs.name_any(), &DeleteParams::default())
                    .await,
            )?;
        }
    }

    // status, from the sets as last seen (their own status changes wake us)
    let all: Vec<&ReplicaSet> = std::iter::once(&new_set).chain(olds.iter()).collect();
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let total = sum(&|rs| status_of(rs, |s| Some(s.replicas)));
    let ready = sum(&|rs| status_of(rs, |s| s.ready_replicas));
    let available = sum(&|rs| status_of(rs, |s| s.available_replicas));
    let updated = status_of(&new_set, |s| Some(s.replicas));
    let new_available = status_of(&new_set, |s| s.available_replicas);
    let complete = updated == replicas
        && total == replicas
        && new_available == replicas
        && spec_replicas(&new_set) == replicas;
    let minimum = available >= replicas - unavailable;
    let old_conds: Vec<Value> = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|c| {
            c.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let cond = |ty: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let prev = old_conds.iter().find(|c| c["type"] == ty);
        let same = prev.is_some_and(|p| p["status"] == status && p["reason"] == reason);
        let transition = prev
            .filter(|p| p["status"] == status)
            .and_then(|p| p["lastTransitionTime"].as_str())
            .unwrap_or(&now)
            .to_string();
        let update = if same {
            prev.and_then(|p| p["lastUpdateTime"].as_str())
                .unwrap_or(&now)
                .to_string()
        } else {
            now.clone()
        };
        json!({"type": ty, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": transition, "lastUpdateTime": update})
    };
    let conditions = vec![
        if minimum {
            cond(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            cond(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        },
        if complete {
            cond(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            )
        } else {
            cond(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        },
    ];
    let status = json!({
        "observedGeneration": d.metadata.generation,
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "collisionCount": if collision > 0 { json!(collision) } else { Value::Null },
        "conditions": conditions,
    });
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    if !write_status(&deployments, &name, d.status.as_ref(), status).await? {
        return Ok(Action::await_change());
    }
    Ok(if complete {
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::requeue(Duration::from_secs(2))
    })
}

/// Merges `status` into the object's status unless `current` holds it
/// already (an absent field counts as null or 0). `false` when the object
/// is gone.
async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: Value,
) -> Result<bool, DeploymentError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let current = current
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let unchanged = status.as_object().is_some_and(|m| {
        m.iter().all(|(k, v)| {
            let c = current.get(k).unwrap_or(&Value::Null);
            c == v || ((v.is_null() || v == &json!(0)) && c.is_null())
        })
    });
    if unchanged {
        return Ok(true);
    }
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Which of `pods` to delete first when a set has `excess` too many: the
/// unscheduled and not-ready before the ready, the newest before the
/// oldest.
fn condemned(pods: &[&Pod], excess: usize) -> Vec<String> {
    let mut ranked: Vec<(bool, std::cmp::Reverse<String>, String)> = pods
        .iter()
        .map(|p| {
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            (
                is_running_and_ready(p),
                std::cmp::Reverse(created),
                p.name_any(),
            )
        })
        .collect();
    ranked.sort();
    ranked.into_iter().take(excess).map(|(_, _, n)| n).collect()
}

async fn reconcile_replicaset(
    rs: Arc<ReplicaSet>,
    ctx: Arc<Ctx>,
) -> Result<Action, DeploymentError> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = rs.name_any();
    let ns = rs.namespace().unwrap_or_else(|| "default".into());
    let invalid = |m: &str| DeploymentError::Invalid("replicaset", name.clone(), m.to_string());
    let uid = rs.uid().ok_or_else(|| invalid("no uid"))?;
    let spec = rs.spec.as_ref().ok_or_else(|| invalid("no spec"))?;
    let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let labels: BTreeMap<String, String> = spec.selector.match_labels.clone().unwrap_or_default();
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let list = |api: Api<Pod>, selector: String, uid: String| async move {
        Ok::<_, kube::Error>(
            api.list(&ListParams::default().labels(&selector))
                .await?
                .items
                .into_iter()
                .filter(|p| is_owned_by(p, &uid))
                .collect::<Vec<Pod>>(),
        )
    };
    let pods = list(pods_api.clone(), selector.clone(), uid.clone()).await?;
    let failed = |p: &Pod| {
        matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed" | "Succeeded")
        )
    };
    for p in pods.iter().filter(|p| failed(p) && !is_terminating(p)) {
        unless_gone(
            pods_api
                .delete(&p.name_any(), &DeleteParams::default())
                .await,
        )?;
    }
    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| !is_terminating(p) && !failed(p))
        .collect();
    if active.len() < want {
        let mut template =
            serde_json::to_value(&spec.template).map_err(|e| invalid(&e.to_string()))?;
        let meta = template["metadata"].take();
        let mut pod_meta = if meta.is_object() { meta } else { json!({}) };
        pod_meta["generateName"] = json!(format!("{name}-"));
        pod_meta["namespace"] = json!(ns);
        pod_meta["ownerReferences"] = json!([controller_ref("ReplicaSet", &name, &uid)]);
        let body = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": template["spec"].take(),
        });
        let pod: Pod = serde_json::from_value(body).map_err(|e| invalid(&e.to_string()))?;
        for _ in active.len()..want {
            pods_api.create(&PostParams::default(), &pod).await?;
        }
    } else if active.len() > want {
        for n in condemned(&active, active.len() - want) {
            unless_gone(pods_api.delete(&n, &DeleteParams::default()).await)?;
        }
    }

    let pods = list(pods_api, selector, uid).await?;
    let live: Vec<&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let ready = live.iter().filter(|p| is_running_and_ready(p)).count();
    let available = live.iter().filter(|p| is_available(p, min_ready)).count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let status = json!({
        "replicas": count(live.len()),
        "fullyLabeledReplicas": count(live.len()),
        "readyReplicas": count(ready),
        "availableReplicas": count(available),
        "observedGeneration": rs.metadata.generation,
    });
    let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if !write_status(&sets, &name, rs.status.as_ref(), status).await? {
        return Ok(Action::await_change());
    }
    Ok(if ready > available {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::requeue(Duration::from_secs(30))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailability_resolve_as_the_real_controller_does() {
        let s = |v: &str| IntOrString::String(v.into());
        // (value, replicas, round up, expected)
        let table = [
            (Some(s("25%")), 2, true, 1),
            (Some(s("25%")), 2, false, 0),
            (Some(s("25%")), 10, true, 3),
            (Some(s("25%")), 10, false, 2),
            (Some(IntOrString::Int(1)), 2, false, 1),
            (None, 4, true, 1),
            (Some(s("x")), 4, true, 0),
        ];
        for (v, r, up, want) in table {
            assert_eq!(resolve(v.as_ref(), r, up, 25), want, "{v:?} of {r}");
        }
    }

    #[test]
    fn a_rolling_step_keeps_within_surge_and_availability() {
        // (replicas, surge, unavailable, new, old, available, old_unavailable) -> step
        let table = [
            // 2 replicas, 25%/25% -> surge 1, unavailable 0: one new at a time
            ((2, 1, 0, 0, 2, 2, 0), (1, 0)),
            ((2, 1, 0, 1, 2, 2, 0), (1, 0)),
            ((2, 1, 0, 1, 2, 3, 0), (1, 1)),
            ((2, 1, 0, 1, 1, 2, 0), (2, 0)),
            ((2, 1, 0, 2, 1, 3, 0), (2, 1)),
            // both zero: unavailable becomes 1
            ((2, 0, 0, 0, 2, 2, 0), (0, 1)),
            // broken old pods go at once
            ((3, 1, 0, 1, 3, 1, 2), (1, 2)),
            // done
            ((2, 1, 0, 2, 0, 2, 0), (2, 0)),
        ];
        for ((r, s, u, n, o, a, ou), (want_new, want_down)) in table {
            assert_eq!(
                roll_step(r, s, u, n, o, a, ou),
                RollStep {
                    new_replicas: want_new,
                    scale_down_old: want_down
                },
                "{r} {s} {u} {n} {o} {a} {ou}"
            );
        }
    }
}
