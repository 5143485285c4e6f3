//! The worker's status writes, and the operation journal written with
//! them.
//!
//! With leader election every status write is epoch-guarded
//! ([`crate::ha::epoch_guarded_status_patch`]): `status.epoch` set to
//! ours, under the resourceVersion of the object the worker decided on.
//! Each write returns the object as stored, the basis of the next. A
//! conflict (a person annotated meanwhile) is read again and retried once
//! while our epoch is not stale; a newer epoch in status means another
//! operator leads: the worker is deposed and stops. Without leader
//! election the writes are plain merge patches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::WorkerError;
use crate::engine::executor::{Journal, JournalPoint};
use crate::ha::{Epoch, HaError};
use crate::k8s::crd::cluster::{MySQLCluster, OperationKind};
use crate::k8s::journal;
use crate::k8s::time;
use crate::topology::InstanceKey;

/// The bound of each call to the API server the worker makes (the
/// client's own read timeout is minutes long, for watches).
pub const KUBE_LIMIT: Duration = Duration::from_secs(10);

/// What a guarded write does after an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    /// The object changed since it was read: read it again and retry.
    Retry,
    /// A newer epoch is recorded: this worker is deposed.
    Deposed,
    /// Give up this write (the round fails and is tried again).
    Fail,
}

/// The next move after `e` on attempt `attempt` (from 0): one retry on a
/// conflict, never on anything else.
pub(super) fn after_error(e: &HaError, attempt: u32) -> Next {
    if e.is_stale_epoch() {
        Next::Deposed
    } else if e.is_conflict() && attempt == 0 {
        Next::Retry
    } else {
        Next::Fail
    }
}

/// The body of a plain (unguarded) status write.
pub(super) fn plain_body(status: Value) -> Value {
    json!({ "status": status })
}

/// Whether `read` (an object read from a cache or the API) should replace
/// `basis` (the object our last write returned) as the basis of the next
/// write: unless both resourceVersions are numbers and `read`'s is older.
/// An older basis is only a conflict the next write pays for (a read and a
/// retry); the precondition still guards.
pub(super) fn replaces_basis(basis: Option<&str>, read: Option<&str>) -> bool {
    match (
        basis.and_then(|b| b.parse::<u64>().ok()),
        read.and_then(|r| r.parse::<u64>().ok()),
    ) {
        (Some(b), Some(r)) => r >= b,
        _ => true,
    }
}

#[derive(Default)]
struct State {
    basis: Option<MySQLCluster>,
    epoch: Option<i64>,
}

/// The status writer of one worker; clones share the basis (the worker
/// and the journal it hands the executor write through the same one).
#[derive(Clone)]
pub(super) struct StatusWriter {
    api: Api<MySQLCluster>,
    name: String,
    state: Arc<Mutex<State>>,
    deposed: Arc<AtomicBool>,
}

impl StatusWriter {
    pub(super) fn new(api: Api<MySQLCluster>, name: String) -> StatusWriter {
        StatusWriter {
            api,
            name,
            state: Arc::default(),
            deposed: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn set_epoch(&self, epoch: Option<i64>) {
        self.state().epoch = epoch;
    }

    /// The object the round decided on (read at its start).
    pub(super) fn decided_on(&self, cluster: &MySQLCluster) {
        let mut s = self.state();
        let basis_rv = s.basis.as_ref().and_then(|b| b.resource_version());
        if replaces_basis(basis_rv.as_deref(), cluster.resource_version().as_deref()) {
            s.basis = Some(cluster.clone());
        }
    }

    fn keep(&self, obj: MySQLCluster) {
        self.state().basis = Some(obj);
    }

    /// Of `read` (from the cache) and the object the last write returned,
    /// the newer ([`replaces_basis`]): what a round decides on.
    pub(super) fn newest(&self, read: MySQLCluster) -> MySQLCluster {
        let s = self.state();
        match &s.basis {
            Some(b)
                if b.name_any() == read.name_any()
                    && b.uid() == read.uid()
                    && !replaces_basis(
                        b.resource_version().as_deref(),
                        read.resource_version().as_deref(),
                    ) =>
            {
                b.clone()
            }
            _ => read,
        }
    }

    /// Whether a newer epoch was found: another operator leads.
    pub(super) fn deposed(&self) -> bool {
        self.deposed.load(Ordering::SeqCst)
    }

    async fn read(&self) -> Result<MySQLCluster, WorkerError> {
        bounded("reading the cluster", self.api.get(&self.name)).await
    }

    /// Merges `status` into the cluster's status (see the module).
    pub(super) async fn patch(&self, status: Value) -> Result<(), WorkerError> {
        let (basis, epoch) = {
            let s = self.state();
            (s.basis.clone(), s.epoch)
        };
        let Some(epoch) = epoch else {
            let obj = bounded(
                "writing the cluster's status",
                self.api.patch_status(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Merge(plain_body(status)),
                ),
            )
            .await?;
            self.keep(obj);
            return Ok(());
        };
        let mut current = match basis {
            Some(b) => b,
            None => self.read().await?,
        };
        let mut attempt = 0;
        loop {
            let written = crate::ha::epoch_guarded_status_patch(
                &self.api,
                &current,
                Epoch(epoch),
                status.clone(),
                KUBE_LIMIT,
            )
            .await;
            let e = match written {
                Ok(obj) => {
                    self.keep(obj);
                    return Ok(());
                }
                Err(e) => e,
            };
            match after_error(&e, attempt) {
                Next::Retry => {
                    tracing::debug!(cluster = %self.name, error = %e, "status changed since it was read: reading it again");
                    current = self.read().await?;
                    self.keep(current.clone());
                    attempt += 1;
                }
                Next::Deposed => {
                    self.deposed.store(true, Ordering::SeqCst);
                    tracing::warn!(cluster = %self.name, error = %e, "a newer epoch is recorded in status: this worker stops");
                    return Err(WorkerError::Deposed(e.to_string()));
                }
                Next::Fail => return Err(WorkerError::Status(e.to_string())),
            }
        }
    }

    /// Removes an annotation of the cluster (a consumed request); the
    /// object returned is the basis of the next status write.
    pub(super) async fn remove_annotation(&self, key: &str) -> Result<(), WorkerError> {
        let obj = bounded(
            "removing an annotation",
            self.api.patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: null } } })),
            ),
        )
        .await?;
        self.keep(obj);
        Ok(())
    }
}

/// A kube call bounded by [`KUBE_LIMIT`].
pub(super) async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, WorkerError> {
    match tokio::time::timeout(KUBE_LIMIT, fut).await {
        Ok(r) => r.map_err(WorkerError::from),
        Err(_) => Err(WorkerError::Status(format!(
            "{what}: timed out after {} ms",
            KUBE_LIMIT.as_millis()
        ))),
    }
}

#[derive(Default)]
struct JournalState {
    /// Set while the worker runs an operation: its kind (`None`: from the
    /// plan, for the engine's own recoveries). Unset, nothing is
    /// journaled (joins, reopening a primary, bootstrap).
    armed: Option<Option<OperationKind>>,
    /// Pod names by address.
    pods: BTreeMap<InstanceKey, String>,
    /// The operation journaled last and when it started.
    started: Option<(String, String)>,
    /// The cluster as last seen and the leadership, for moving the
    /// traffic.
    traffic: Option<(MySQLCluster, Option<crate::ha::Fence>)>,
    /// The operation whose traffic was last moved early, and the move
    /// until the worker has waited for it.
    moving: Option<(String, Option<tokio::task::JoinHandle<Option<String>>>)>,
}

/// The journal the worker hands its executor: `status.operation`,
/// written through the worker's [`StatusWriter`] where
/// [`journal::journal_write`] says.
///
/// It also moves the primary Service's traffic to an operation's
/// successor as soon as the plan has made it writable
/// ([`crate::plan::Plan::writable_successor_before`]), beside the steps
/// left (repointing the replicas, the successor forgetting its source):
/// the writes go to the new primary while they run.
#[derive(Clone)]
pub(super) struct WorkerJournal {
    writer: StatusWriter,
    client: kube::Client,
    namespace: String,
    state: Arc<Mutex<JournalState>>,
}

impl WorkerJournal {
    pub(super) fn new(
        writer: StatusWriter,
        client: kube::Client,
        namespace: String,
    ) -> WorkerJournal {
        WorkerJournal {
            writer,
            client,
            namespace,
            state: Arc::default(),
        }
    }

    /// The cluster as this round sees it and the leadership, for moving
    /// the traffic.
    pub(super) fn set_cluster(&self, cluster: MySQLCluster, fence: Option<crate::ha::Fence>) {
        self.state().traffic = Some((cluster, fence));
    }

    /// Starts moving the traffic to the successor when the step about to
    /// run comes after the one that made it writable; once per operation,
    /// only while armed.
    fn move_traffic_early(&self, point: &JournalPoint<'_>) {
        if point.rollback {
            return;
        }
        let Some(successor) = point.plan.writable_successor_before(point.index) else {
            return;
        };
        let mut s = self.state();
        let moved = s
            .moving
            .as_ref()
            .is_some_and(|(id, _)| *id == point.meta.id);
        if s.armed.is_none() || moved {
            return;
        }
        let (Some((cluster, fence)), Some(pod)) =
            (s.traffic.clone(), s.pods.get(successor).cloned())
        else {
            return;
        };
        let pods = Api::namespaced(self.client.clone(), &self.namespace);
        let services = Api::namespaced(self.client.clone(), &self.namespace);
        let name = cluster.name_any();
        let task = tokio::spawn(async move {
            if let Some(Err(e)) = fence.as_ref().map(|f| f.check(Duration::ZERO)) {
                tracing::warn!(cluster = %name, reason = %e, "not the leader any more: the traffic stays");
                return None;
            }
            match super::members::move_traffic(&pods, &services, &cluster, &pod).await {
                Ok(()) => {
                    tracing::info!(cluster = %name, pod = %pod, "the primary Service sends the writes to the new primary");
                    Some(pod)
                }
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "the traffic could not be moved before the operation ended");
                    None
                }
            }
        });
        s.moving = Some((point.meta.id.clone(), Some(task)));
    }

    /// Waits for the traffic move of the last operation, once: the pod it
    /// labelled the primary and pinned the Service to, if it did.
    pub(super) async fn traffic_moved(&self) -> Option<String> {
        let task = self.state().moving.as_mut().and_then(|(_, t)| t.take())?;
        task.await.ok().flatten()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Journals what the executor runs from now on, as `kind` (`None`:
    /// the kind of each plan).
    pub(super) fn arm(&self, kind: Option<OperationKind>) {
        self.state().armed = Some(kind);
    }

    pub(super) fn disarm(&self) {
        self.state().armed = None;
    }

    pub(super) fn set_pods(&self, pods: BTreeMap<InstanceKey, String>) {
        self.state().pods = pods;
    }

    /// Pod names by address, as last set.
    pub(super) fn pods(&self) -> BTreeMap<InstanceKey, String> {
        self.state().pods.clone()
    }

    async fn write(&self, point: JournalPoint<'_>) -> Result<(), String> {
        let (kind, pods, started_at) = {
            let mut s = self.state();
            let Some(armed) = s.armed else {
                return Ok(());
            };
            let Some(kind) = armed.or(journal::kind_of(point.plan.kind)) else {
                return Ok(());
            };
            let continued = s
                .started
                .as_ref()
                .is_some_and(|(id, _)| *id == point.meta.id);
            if !journal::journal_write(point.plan, point.index, point.rollback, continued) {
                return Ok(());
            }
            let started_at = match &s.started {
                Some((id, at)) if *id == point.meta.id => at.clone(),
                _ => {
                    let at = time::now_string();
                    s.started = Some((point.meta.id.clone(), at.clone()));
                    at
                }
            };
            (kind, s.pods.clone(), started_at)
        };
        let pod = |k: &InstanceKey| pods.get(k).cloned().unwrap_or_else(|| k.to_string());
        let entry = journal::entry(
            &point.meta.id,
            kind,
            point.plan,
            point.index,
            point.past_point_of_no_return,
            point.epoch.map(|e| e.get()),
            &started_at,
            &pod,
        );
        let entry = serde_json::to_value(&entry).map_err(|e| e.to_string())?;
        self.writer
            .patch(json!({ "operation": entry }))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Journal for WorkerJournal {
    fn record<'a>(
        &'a self,
        point: JournalPoint<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.write(point).await?;
            self.move_traffic_early(&point);
            let armed = self.state().armed.is_some();
            if let Some((pause, at)) = test_pause(&point).filter(|_| armed) {
                tracing::warn!(
                    step = point.index + 1,
                    ms = pause.as_millis() as u64,
                    "test pause {at} the point of no return"
                );
                tokio::time::sleep(pause).await;
            }
            if let Some((pause, step)) = test_pause_before_step(&point).filter(|_| armed) {
                tracing::warn!(
                    step = point.index + 1,
                    ms = pause.as_millis() as u64,
                    "test pause before the step {step}"
                );
                tokio::time::sleep(pause).await;
            }
            Ok(())
        })
    }
}

/// A pause right before the step at the point of no return (the journal
/// written, the successor not reset yet) or right after it (reset,
/// nothing after it run yet), for tests that stop the operator there:
/// `ORCA_TEST_PAUSE_BEFORE_POINT_OF_NO_RETURN_MS`,
/// `ORCA_TEST_PAUSE_AFTER_POINT_OF_NO_RETURN_MS`. Nothing when unset, as
/// in production.
fn test_pause(point: &JournalPoint<'_>) -> Option<(Duration, &'static str)> {
    let ponr = point.plan.point_of_no_return;
    let (var, at) = match point.index {
        _ if point.rollback || ponr >= point.plan.steps.len() => return None,
        i if i == ponr => ("ORCA_TEST_PAUSE_BEFORE_POINT_OF_NO_RETURN_MS", "before"),
        i if i == ponr + 1 => ("ORCA_TEST_PAUSE_AFTER_POINT_OF_NO_RETURN_MS", "after"),
        _ => return None,
    };
    let ms: u64 = std::env::var(var).ok()?.parse().ok()?;
    Some((Duration::from_millis(ms), at))
}

/// A pause right before the first step (not of a rollback) whose text
/// contains `ORCA_TEST_PAUSE_BEFORE_STEP`, for `ORCA_TEST_PAUSE_BEFORE_STEP_MS`
/// (default 300 s), for tests that stop the operator after any step of an
/// operation. Nothing when unset, as in production.
fn test_pause_before_step(point: &JournalPoint<'_>) -> Option<(Duration, String)> {
    if point.rollback {
        return None;
    }
    let wanted = std::env::var("ORCA_TEST_PAUSE_BEFORE_STEP").ok()?;
    let step = point.plan.steps.get(point.index)?.to_string();
    if wanted.is_empty() || !step.contains(&wanted) {
        return None;
    }
    let ms: u64 = std::env::var("ORCA_TEST_PAUSE_BEFORE_STEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    Some((Duration::from_millis(ms), step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_retry_on_a_conflict_none_on_a_newer_epoch() {
        let conflict = HaError::Conflict {
            place: "c".into(),
            read: "5".into(),
        };
        let stale = HaError::StaleEpoch {
            place: "c".into(),
            stored: 4,
            ours: 3,
        };
        let other = HaError::Timeout {
            what: "w".into(),
            millis: 1,
        };
        let table = [
            (&conflict, 0, Next::Retry),
            (&conflict, 1, Next::Fail),
            (&stale, 0, Next::Deposed),
            (&stale, 1, Next::Deposed),
            (&other, 0, Next::Fail),
        ];
        for (e, attempt, want) in table {
            assert_eq!(after_error(e, attempt), want, "{e} on attempt {attempt}");
        }
    }

    #[test]
    fn bases_and_bodies() {
        let table = [
            (None, Some("5"), true),
            (Some("5"), Some("7"), true),
            (Some("7"), Some("7"), true),
            (Some("7"), Some("5"), false),
            (Some("a"), Some("5"), true),
        ];
        for (basis, read, want) in table {
            assert_eq!(replaces_basis(basis, read), want, "{basis:?} {read:?}");
        }
        assert_eq!(
            plain_body(json!({"primary": "db-1"})),
            json!({"status": {"primary": "db-1"}})
        );
        let guarded = crate::ha::epoch::guarded_status_patch_body(
            "9",
            Epoch(3),
            json!({"operation": null}),
            "c",
        )
        .unwrap();
        assert_eq!(
            guarded,
            json!({"metadata": {"resourceVersion": "9"}, "status": {"operation": null, "epoch": 3}})
        );
    }
}
