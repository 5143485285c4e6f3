use super::decide::{self, Operation};
use super::*;
use crate::k8s::crd::names::annotation;

impl Worker {
    /// Runs the plan of an operation a person asked for, then records
    /// its outcome.
    pub(super) async fn run_requested(
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
        self.journal.arm(Some(kind));
        let record = self.engine_mut().executor.execute(plan, &meta).await;
        self.journal.disarm();
        self.feed_operation(&record);
        self.after_operation(cluster, pods, &record, kind, primary)
            .await
    }

    /// The new primary after an operation, with labels, Services, status
    /// and an Event.
    pub(super) async fn after_operation(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        record: &OperationRecord,
        kind: OperationKind,
        primary: Option<String>,
    ) -> Result<Option<String>, WorkerError> {
        if let Some(pod) = self.journal.traffic_moved().await {
            self.moved_early = Some(pod);
        }
        // Stopped at a step boundary, not finished: the journal stays in
        // status for whoever goes on (this worker's next round when it
        // still leads, else the new leader).
        if let Outcome::Deposed(s) = &record.outcome {
            self.resume_pending = true;
            tracing::warn!(cluster = %self.name, operation = %record.id, stopped = %s, "the operation stopped before it finished; its journal stays in status");
            return Ok(primary);
        }
        let ok = record.outcome.succeeded();
        let promoted = matches!(
            record.kind,
            PlanKind::RecoverDeadPrimary
                | PlanKind::GracefulTakeover
                | PlanKind::ForceFailover
                | PlanKind::ForceTakeover
        );
        // A promotion that failed after making its successor writable
        // promoted it all the same (its traffic went there already).
        let promoted_to = match (&record.successor, ok && promoted) {
            (Some(k), true) => Some(k),
            _ => record.writable_successor().filter(|_| promoted),
        };
        let new_primary = match promoted_to {
            Some(k) => Some(pod_of(pods, k)),
            None => primary,
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
        if promoted_to.is_some() {
            self.apply_roles(cluster, pods, new_primary.as_deref())
                .await?;
        }
        let phase = match &record.outcome {
            Outcome::Succeeded => OperationPhase::Succeeded,
            Outcome::RolledBack(_) => OperationPhase::RolledBack,
            _ => OperationPhase::Failed,
        };
        let fences = self.pending_fence_names();
        self.patch_status(json!({
            "primary": new_primary,
            "epoch": self.epoch,
            "operation": null,
            "pendingFences": fences,
            "lastOperation": OperationStatus {
                kind,
                target,
                phase,
                message: Some(message.clone()),
                started_at: Some(jiff::Timestamp::from_second(record.started_at as i64).map(time::rfc3339).unwrap_or_default()),
                finished_at: Some(time::now_string()),
                epoch: self.epoch,
            },
        }))
        .await?;
        self.fences_written = Some(fences);
        let reason = match (kind, ok) {
            (OperationKind::GracefulTakeover, true) => "GracefulTakeover",
            (OperationKind::GracefulTakeover, false) => "GracefulTakeoverFailed",
            (OperationKind::Operation, true) => "Operation",
            (OperationKind::Operation, false) => "OperationFailed",
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
    /// What to do is [`decide::decide`]'s; this runs it.
    pub(super) async fn operations(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<String>,
    ) -> Result<Option<String>, WorkerError> {
        self.handed_over = decide::still_handed_over(
            &self.handed_over,
            pods,
            primary.as_deref(),
            cluster.spec.replicas,
        );
        let d = decide::decide(
            cluster.annotations(),
            pods,
            primary.as_deref(),
            cluster.spec.replicas,
            &self.handed_over,
        );
        for m in d.malformed {
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
        if d.acknowledge {
            self.engine_mut().acknowledge();
            // The store keeps who acknowledged which recovery, and why:
            // the annotation's value is the comment ("true" says none).
            if let (Some(f), Some(last)) = (&self.feed, self.recent.back()) {
                let a = cluster.annotations();
                let by = a
                    .get(crate::k8s::api::REQUESTED_BY)
                    .map(String::as_str)
                    .unwrap_or("annotation");
                let comment = a
                    .get(annotation::ACKNOWLEDGE)
                    .map(|v| v.trim())
                    .filter(|v| !v.eq_ignore_ascii_case("true") && !v.is_empty())
                    .unwrap_or("acknowledged");
                f.acknowledged(&last.id, by, comment);
            }
            self.event(
                cluster,
                false,
                "Acknowledged",
                "Acknowledge",
                "the last recovery is acknowledged".into(),
            )
            .await;
            self.remove_annotation(annotation::ACKNOWLEDGE).await?;
            if d.operation.is_none()
                && cluster
                    .annotations()
                    .contains_key(crate::k8s::api::REQUESTED_BY)
            {
                self.remove_annotation(crate::k8s::api::REQUESTED_BY)
                    .await?;
            }
        }
        let Some(op) = d.operation else {
            return Ok(primary);
        };
        self.audit_operation(cluster, &op);
        let new_primary = match &op {
            Operation::HandOver {
                primary: leaving,
                why,
                excluded,
            } => {
                self.handed_over.insert(leaving.clone());
                self.event(
                    cluster,
                    false,
                    "PrimaryLeaving",
                    "GracefulTakeover",
                    format!(
                        "the primary {leaving} {}: graceful takeover",
                        why.describe()
                    ),
                )
                .await;
                self.takeover(cluster, pods, primary.clone(), None, excluded)
                    .await?
            }
            Operation::GracefulTakeover { to } => {
                self.takeover(cluster, pods, primary.clone(), to.as_deref(), &[])
                    .await?
            }
            Operation::ForceFailover => {
                self.force(cluster, pods, primary.clone(), &Request::ForceFailover)
                    .await?
            }
            Operation::ForceTakeover { to } => {
                let r = Request::ForceTakeover { to: to.clone() };
                self.force(cluster, pods, primary.clone(), &r).await?
            }
            Operation::Recover => {
                self.force(cluster, pods, primary.clone(), &Request::Recover)
                    .await?
            }
            Operation::Other {
                kind,
                target,
                destination,
            } => {
                self.other(
                    cluster,
                    pods,
                    primary.clone(),
                    *kind,
                    target,
                    destination.as_deref(),
                )
                .await?
            }
        };
        if let Some(key) = op.annotation() {
            self.remove_annotation(key).await?;
            if cluster
                .annotations()
                .contains_key(crate::k8s::api::REQUESTED_BY)
            {
                self.remove_annotation(crate::k8s::api::REQUESTED_BY)
                    .await?;
            }
        }
        Ok(new_primary)
    }

    /// The audit of `op`: through the annotation that asks for it, or
    /// orca's own hand over of a leaving primary.
    fn audit_operation(&self, cluster: &MySQLCluster, op: &Operation) {
        let (target, door) = match op {
            Operation::HandOver { primary, why, .. } => {
                let detail = format!("automatic, the primary {primary} {}", why.describe());
                self.feed_audit(
                    PlanKind::GracefulTakeover.name(),
                    Some(primary.clone()),
                    "orca",
                    Door::Engine,
                    detail,
                );
                return;
            }
            Operation::GracefulTakeover { to } => (to.clone(), annotation::GRACEFUL_TAKEOVER),
            Operation::ForceFailover => (None, annotation::FORCE_FAILOVER),
            Operation::ForceTakeover { to } => (Some(to.clone()), annotation::FORCE_TAKEOVER),
            Operation::Recover => (None, annotation::RECOVER),
            Operation::Other { target, .. } => (Some(target.clone()), annotation::OPERATION),
        };
        let value = cluster.annotations().get(door).cloned().unwrap_or_default();
        let action = door.strip_prefix("orca.dev/").unwrap_or(door);
        // Through the API, the caller its access review named; otherwise
        // an annotation does not say who set it: the audit names it.
        let (by, through) = match cluster.annotations().get(crate::k8s::api::REQUESTED_BY) {
            Some(who) => (who.clone(), Door::Api),
            None => (
                format!("annotation on {}/{}", self.namespace, self.name),
                Door::Annotation,
            ),
        };
        self.feed_audit(action, target, &by, through, format!("{door}={value}"));
    }

    pub(super) async fn set_running(
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

    pub(super) async fn refuse(
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

    pub(super) async fn takeover(
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
        let report = self.engine_mut().round().await;
        self.feed_round(&report);
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
        // A primary whose pod is going away is repointed too: its preStop
        // hook waits until it replicates from the new primary, the sign
        // that the handover is complete (objects::pre_stop_script).
        let plan = match takeover::graceful_takeover(&topo, &pkey, target.as_ref(), &opts) {
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

    /// An operation of `orca.dev/operation` (a refactoring, an instance
    /// operation): planned on this round's topology, refused with the
    /// reason, else run as any operation asked for.
    pub(super) async fn other(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        primary: Option<String>,
        what: crate::plan::operation::OperationKind,
        target: &str,
        destination: Option<&str>,
    ) -> Result<Option<String>, WorkerError> {
        let kind = OperationKind::Operation;
        let shown = Some(match destination {
            Some(d) => format!("{what} {target} {d}"),
            None => format!("{what} {target}"),
        });
        let resolve = |name: &str| {
            key_of(pods, name)
                .ok_or_else(|| format!("{name} is not a pod of this cluster with an address"))
        };
        let op = resolve(target).and_then(|t| {
            let d = destination.map(resolve).transpose()?;
            crate::plan::operation::Operation::new(what, Some(t), d)
        });
        let op = match op {
            Ok(op) => op,
            Err(why) => {
                self.refuse(cluster, kind, shown, why).await?;
                return Ok(primary);
            }
        };
        self.set_running(kind, shown.clone()).await?;
        let report = self.engine_mut().round().await;
        self.feed_round(&report);
        let topo = self.engine_mut().topology().clone();
        let pkey = primary.as_ref().and_then(|n| key_of(pods, n));
        let recovery = self.engine_mut().config.recovery.clone();
        let takeover = takeover::TakeoverOptions {
            candidate: recovery.candidate.clone(),
            ..Default::default()
        };
        match crate::plan::operation::plan(&topo, pkey.as_ref(), &op, &recovery, &takeover) {
            Ok(plan) => {
                self.run_requested(cluster, pods, &plan, kind, primary)
                    .await
            }
            Err(e) => {
                self.refuse(cluster, kind, shown, e.to_string()).await?;
                Ok(primary)
            }
        }
    }

    pub(super) async fn force(
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
        let report = self.engine_mut().round().await;
        self.feed_round(&report);
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
            self.journal.arm(Some(kind));
            let record = self.engine_mut().recover(&f).await;
            self.journal.disarm();
            self.feed_operation(&record);
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
}
