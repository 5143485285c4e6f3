//! What a worker does first: go on with what an earlier operator left in
//! status (an interrupted operation, former primaries still to fence, a
//! `status.primary` the servers contradict), and keeping the pending
//! fences in status while it runs. The decisions are
//! [`crate::k8s::journal`]'s; this is the shell.

use super::*;
use crate::k8s::crd::cluster::OperationJournal;
use crate::k8s::journal::{self, Observed, Resume};

impl Worker {
    /// Before the first engine round (and after an operation that stopped
    /// without finishing): seeds the engine's pending fences from status,
    /// looks at the servers once, and rolls the journaled operation
    /// forward or back, or corrects `status.primary`. Returns the primary.
    pub(super) async fn resume(
        &mut self,
        cluster: &mut MySQLCluster,
        pods: &[PodView],
        status: &MySQLClusterStatus,
    ) -> Result<Option<String>, WorkerError> {
        self.journal.set_pods(
            pods.iter()
                .filter_map(|p| Some((p.key.clone()?, p.name.clone())))
                .collect(),
        );
        self.journal
            .set_cluster(cluster.clone(), self.fence.clone());
        let first = !std::mem::replace(&mut self.started, true);
        if !first && !std::mem::take(&mut self.resume_pending) {
            return Ok(status.primary.clone());
        }
        if first {
            self.seed_pending_fences(pods, status);
        }
        let topo = self.engine_mut().observe().await.clone();
        let name = |k: &InstanceKey| pod_of(pods, k);
        let seen = Observed::of(&topo, &name);
        let journaled = status.operation.as_ref();
        let decision = journal::decide(journaled, &seen);
        let Some(j) = journaled.cloned() else {
            if !first {
                self.interrupted_unjournaled(status).await?;
            }
            return self.reconcile_primary(cluster, pods, status, &seen).await;
        };
        tracing::info!(cluster = %self.name, operation = %j.id, decision = ?decision, "an interrupted operation found in status");
        let semi_sync = cluster.spec.semi_sync.as_ref().is_some_and(|s| s.enabled);
        let keys = |names: &[String]| -> Vec<InstanceKey> {
            names.iter().filter_map(|n| key_of(pods, n)).collect()
        };
        let (primary, phase, message) = match decision {
            Resume::Nothing => return Ok(status.primary.clone()),
            Resume::RollForward { primary, old } => {
                let Some(pk) = key_of(pods, &primary) else {
                    // The pod is gone: nothing to roll forward to; the
                    // failure is recovered as any other.
                    return self
                        .finish_resumed(cluster, &j, status.primary.clone(), OperationPhase::Failed, format!("{} was interrupted past its point of no return and {primary} is gone", j.id))
                        .await;
                };
                let old_key = old.as_deref().and_then(|o| key_of(pods, o));
                // Writable (the epoch recorded first), if not yet.
                if let Some(plan) = membership::roll_forward_primary(&topo, &pk, semi_sync) {
                    self.run_resumed(&plan, "ResumeRollForward").await;
                }
                let repoint = journal::repoint_plan(&topo, &pk, old_key.as_ref());
                if !repoint.steps.is_empty() {
                    self.run_resumed(&repoint, "ResumeRollForward").await;
                }
                let engine = self.engine_mut();
                if let Some(k) = old_key {
                    engine.fence_pending(k);
                }
                engine.context.primary = Some(pk);
                self.apply_roles(cluster, pods, Some(&primary)).await?;
                let message = format!(
                    "{} rolled forward after the operator stopped at step {} of {}: {primary} is the primary",
                    j.id, j.step, j.steps
                );
                (Some(primary), OperationPhase::Succeeded, message)
            }
            Resume::RollBack {
                primary,
                restart,
                unfence,
            } => {
                let restart = keys(&restart);
                if !restart.is_empty() {
                    let plan = journal::restart_plan(PlanKind::GracefulTakeover, &restart);
                    self.run_resumed(&plan, "ResumeRollBack").await;
                }
                let mut unfenced = true;
                if let Some(k) = unfence.as_deref().and_then(|o| key_of(pods, o)) {
                    unfenced = match journal::unfence_plan(&topo, &k, semi_sync) {
                        Some(plan) => self.run_resumed(&plan, "ResumeRollBack").await,
                        None => false,
                    };
                }
                let primary = primary.or(status.primary.clone());
                if unfenced {
                    self.apply_roles(cluster, pods, primary.as_deref()).await?;
                    let message = format!(
                        "{} rolled back after the operator stopped at step {} of {}, before its point of no return: {} keeps the role",
                        j.id,
                        j.step,
                        j.steps,
                        primary.as_deref().unwrap_or("the primary")
                    );
                    (primary, OperationPhase::RolledBack, message)
                } else {
                    let message = format!(
                        "{} was interrupted before its point of no return and the old primary could not be made writable again",
                        j.id
                    );
                    (primary, OperationPhase::Failed, message)
                }
            }
            Resume::Abandon { restart, why } => {
                let restart = keys(&restart);
                if !restart.is_empty() {
                    let plan = journal::restart_plan(PlanKind::RecoverDeadPrimary, &restart);
                    self.run_resumed(&plan, "ResumeAbandon").await;
                }
                let message = format!(
                    "{}: {why}; replication restarted, the failure is recovered anew",
                    j.id
                );
                (status.primary.clone(), OperationPhase::Failed, message)
            }
        };
        // What asked for it is consumed: it is not run again.
        for r in annotations::requests(cluster.annotations()).0 {
            let asked = match r {
                Request::GracefulTakeover { .. } => OperationKind::GracefulTakeover,
                Request::ForceFailover => OperationKind::ForceFailover,
                Request::ForceTakeover { .. } => OperationKind::ForceTakeover,
                Request::Recover => OperationKind::Recover,
                Request::Operation { .. } => OperationKind::Operation,
                Request::Acknowledge => continue,
            };
            if asked == j.kind {
                self.remove_annotation(r.annotation()).await?;
                // Not seen by this round's operations either.
                cluster.annotations_mut().remove(r.annotation());
            }
        }
        self.finish_resumed(cluster, &j, primary, phase, message)
            .await
    }

    /// Writes the end of a resumed operation: `status.operation` cleared,
    /// `lastOperation` with its phase, the primary, the pending fences.
    async fn finish_resumed(
        &mut self,
        cluster: &MySQLCluster,
        j: &OperationJournal,
        primary: Option<String>,
        phase: OperationPhase,
        message: String,
    ) -> Result<Option<String>, WorkerError> {
        let fences = self.pending_fence_names();
        self.patch_status(json!({
            "primary": primary,
            "operation": null,
            "pendingFences": fences,
            "lastOperation": OperationStatus {
                kind: j.kind,
                target: j.target.clone(),
                phase,
                message: Some(message.clone()),
                started_at: j.started_at.clone(),
                finished_at: Some(time::now_string()),
                epoch: self.epoch,
            },
        }))
        .await?;
        self.fences_written = Some(fences);
        let warning = phase != OperationPhase::Succeeded;
        self.event(cluster, warning, "OperationResumed", "Resume", message)
            .await;
        Ok(primary)
    }

    /// An operation of this worker stopped before its first journal was
    /// written (so before it changed anything): the `lastOperation` it
    /// left running ends failed.
    async fn interrupted_unjournaled(
        &mut self,
        status: &MySQLClusterStatus,
    ) -> Result<(), WorkerError> {
        let Some(mut last) = status.last_operation.clone() else {
            return Ok(());
        };
        if last.phase.is_finished() {
            return Ok(());
        }
        last.phase = OperationPhase::Failed;
        last.message = Some(
            "stopped before its first step: its journal could not be written; nothing was changed"
                .into(),
        );
        last.finished_at = Some(time::now_string());
        self.patch_status(json!({ "lastOperation": last })).await
    }

    /// Runs a plan of a resumed operation (not journaled: it is the
    /// journal's own ending); whether it succeeded.
    async fn run_resumed(&mut self, plan: &Plan, trigger: &str) -> bool {
        let meta = OperationMeta {
            id: operation_id(&self.name, plan.kind),
            cluster: self.name.clone(),
            trigger: trigger.into(),
        };
        let record = self.engine_mut().executor.execute(plan, &meta).await;
        if !record.outcome.succeeded() {
            tracing::warn!(cluster = %self.name, trigger, outcome = ?record.outcome, "a step of a resumed operation failed");
        }
        record.outcome.succeeded()
    }

    /// `status.primary` against the topology's writable root: one the
    /// topology contradicts is corrected.
    async fn reconcile_primary(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        status: &MySQLClusterStatus,
        seen: &Observed,
    ) -> Result<Option<String>, WorkerError> {
        let pending: BTreeSet<String> = self.pending_fence_names().into_iter().collect();
        let Some(root) = journal::reconcile_primary(status.primary.as_deref(), seen, &pending)
        else {
            return Ok(status.primary.clone());
        };
        if key_of(pods, &root).is_none() {
            return Ok(status.primary.clone());
        }
        let message = format!(
            "status named {} as the primary, but {root} is the only writable instance that replicates from nothing: status follows the servers",
            status.primary.as_deref().unwrap_or("no pod")
        );
        self.apply_roles(cluster, pods, Some(&root)).await?;
        self.patch_status(json!({ "primary": root })).await?;
        if let Some(k) = key_of(pods, &root) {
            self.engine_mut().context.primary = Some(k);
        }
        self.event(cluster, true, "PrimaryCorrected", "Resume", message)
            .await;
        Ok(Some(root))
    }

    /// The pending fences status keeps, for the engine of a new worker.
    /// Never the primary status names.
    fn seed_pending_fences(&mut self, pods: &[PodView], status: &MySQLClusterStatus) {
        let keys: Vec<InstanceKey> = status
            .pending_fences
            .iter()
            .filter(|n| Some(n.as_str()) != status.primary.as_deref())
            .filter_map(|n| key_of(pods, n).or_else(|| parse_key(n)))
            .collect();
        if !keys.is_empty() {
            tracing::info!(cluster = %self.name, fences = ?status.pending_fences, "former primaries still to fence, from status");
        }
        self.engine_mut().seed_pending_fences(keys);
        self.fences_written = Some(status.pending_fences.clone());
    }

    /// The engine's pending fences, named as status names them.
    pub(super) fn pending_fence_names(&self) -> Vec<String> {
        let pods = self.journal_pods();
        self.engine
            .pending_fences()
            .iter()
            .map(|k| pods.get(k).cloned().unwrap_or_else(|| k.to_string()))
            .collect()
    }

    fn journal_pods(&self) -> BTreeMap<InstanceKey, String> {
        self.journal.pods()
    }

    /// Writes the engine's pending fences to status when they changed.
    pub(super) async fn sync_pending_fences(&mut self) -> Result<(), WorkerError> {
        let names = self.pending_fence_names();
        if self.fences_written.as_ref() == Some(&names) {
            return Ok(());
        }
        self.patch_status(json!({ "pendingFences": names })).await?;
        self.fences_written = Some(names);
        Ok(())
    }
}

/// An address as status keeps it (`host:port`).
fn parse_key(s: &str) -> Option<InstanceKey> {
    let (host, port) = s.rsplit_once(':')?;
    Some(InstanceKey::new(host, port.parse().ok()?))
}
