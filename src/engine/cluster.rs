//! The engine of one cluster: probe rounds on an interval, analysis on
//! every round, automatic recovery of failures with anti-flapping, and a
//! record of every operation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::executor::{
    Executor, OperationMeta, OperationRecord, Outcome, StepOutcome, StepRecord, operation_id,
};
use super::prober::{Inventory, Round};
use crate::analysis::{
    AnalysisContext, ClusterProblemCode, Finding, analyze, primary_and_former, writable_tops,
};
use crate::mysql::conn::Timeouts;
use crate::mysql::heartbeat;
use crate::plan::loss::LastSeenPrimary;
use crate::plan::recovery::{
    RecoveryOptions, abandon, after_fence, dead_intermediate_primary, dead_primary, fence_phases,
};
use crate::plan::{HookEvent, Plan, PlanKind, Step, fence_steps};
use crate::topology::InstanceKey;
use crate::topology::graph::{Role, Topology};
use crate::topology::instance::IoThreadState;

/// How one cluster's engine behaves.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The cluster's name, in logs, records and hooks.
    pub cluster: String,
    /// Time between probe rounds (at least 100 ms).
    pub probe_interval: Duration,
    /// Time between rounds while an instance that answered before does not
    /// answer: the engine looks again at once rather than waiting a whole
    /// interval.
    pub recheck_interval: Duration,
    pub probe_timeouts: Timeouts,
    /// The bound on the probe of an instance whose last probe failed: it
    /// had the whole connect timeout once; a recheck of a server that
    /// hangs ends sooner, so the round sees its replicas' streams again
    /// every recheck interval rather than every timeout.
    pub recheck_timeout: Duration,
    /// Recover failures automatically.
    pub auto_recover: bool,
    /// No second automatic recovery within this period unless the first
    /// was acknowledged.
    pub anti_flap: Duration,
    pub recovery: RecoveryOptions,
    pub max_lag_ms: u64,
    /// Write orca's heartbeat on the primary every round.
    pub heartbeat: bool,
}

impl EngineConfig {
    pub fn new(cluster: impl Into<String>) -> Self {
        EngineConfig {
            cluster: cluster.into(),
            probe_interval: Duration::from_secs(1),
            recheck_interval: Duration::from_millis(100),
            recheck_timeout: Duration::from_millis(100),
            probe_timeouts: Timeouts {
                connect: Duration::from_millis(500),
                query: Duration::from_millis(2000),
            },
            auto_recover: true,
            anti_flap: Duration::from_secs(3600),
            recovery: RecoveryOptions::default(),
            max_lag_ms: 10_000,
            heartbeat: true,
        }
    }
}

/// What happened in one round.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    pub findings: Vec<Finding>,
    /// Findings that appeared this round.
    pub new_findings: Vec<Finding>,
    /// A recovery run this round, if any.
    pub recovery: Option<OperationRecord>,
    /// A failure the engine did not recover, and why.
    pub blocked: Option<String>,
    /// Former primaries that came back after a failover, or stood
    /// writable beside the primary, and were fenced (made read only, their
    /// clients disconnected) this round.
    pub fenced: Vec<InstanceKey>,
    /// The records of the fences that succeeded this round (one per
    /// instance in `fenced` that had to be fenced anew), for the store.
    pub fence_records: Vec<OperationRecord>,
}

/// The connection a heartbeat is written over.
enum HeartbeatConn {
    /// The probe's, given back to it after a heartbeat written.
    Kept(crate::mysql::probe::KeptConn),
    Own(crate::mysql::probe::ProbeConn),
}

impl HeartbeatConn {
    fn conn(&mut self) -> &mut crate::mysql::probe::ProbeConn {
        match self {
            HeartbeatConn::Kept(k) => &mut k.conn,
            HeartbeatConn::Own(c) => c,
        }
    }

    fn into_conn(self) -> crate::mysql::probe::ProbeConn {
        match self {
            HeartbeatConn::Kept(k) => k.conn,
            HeartbeatConn::Own(c) => c,
        }
    }
}

/// The last automatic recovery, for anti-flapping.
#[derive(Debug, Clone)]
struct LastRecovery {
    at: Instant,
    acknowledged: bool,
}

pub struct ClusterEngine {
    pub config: EngineConfig,
    pub executor: Executor,
    pub inventory: Inventory,
    pub context: AnalysisContext,
    topology: Topology,
    findings: Vec<Finding>,
    last_recovery: Option<LastRecovery>,
    /// Primaries replaced by a failover, to fence when they answer again.
    pending_fence: BTreeSet<InstanceKey>,
    /// The failed instance and why its recovery was refused at the last
    /// attempt: the same refusal is not run again (hooks, a record) every
    /// round while nothing changes.
    standing_refusal: Option<(InstanceKey, String)>,
    pub records: Vec<OperationRecord>,
}

impl ClusterEngine {
    pub fn new(
        config: EngineConfig,
        executor: Executor,
        seeds: impl IntoIterator<Item = InstanceKey>,
    ) -> Self {
        let context = AnalysisContext {
            max_lag_ms: config.max_lag_ms,
            ..AnalysisContext::default()
        };
        ClusterEngine {
            config,
            executor,
            inventory: Inventory::new(seeds),
            context,
            topology: Topology::default(),
            findings: Vec::new(),
            last_recovery: None,
            pending_fence: BTreeSet::new(),
            standing_refusal: None,
            records: Vec::new(),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Former primaries still to be fenced when they answer again, with
    /// those whose fence holds a write lock that is lost, to take again:
    /// what a new operator must know to go on fencing them.
    pub fn pending_fences(&self) -> BTreeSet<InstanceKey> {
        self.pending_fence.clone()
    }

    /// Adds former primaries to fence when they answer again (read from
    /// where an earlier operator kept them): one that answers is fenced
    /// by this engine, even though another took the lock before.
    pub fn seed_pending_fences(&mut self, keys: impl IntoIterator<Item = InstanceKey>) {
        self.pending_fence.extend(keys);
    }

    /// A former primary to fence when it answers again (an operation
    /// rolled forward by this engine's owner).
    pub fn fence_pending(&mut self, key: InstanceKey) {
        self.pending_fence.insert(key);
    }

    /// Probes every instance once, and nothing more: no fence, no
    /// heartbeat, no recovery. The topology as it stands, for decisions
    /// taken before the first round acts (an interrupted operation).
    pub async fn observe(&mut self) -> &Topology {
        self.probe().await;
        self.remember_primary();
        &self.topology
    }

    /// Forgets an instance that left the cluster: no more fencing of it.
    pub fn forget(&mut self, key: &InstanceKey) {
        self.pending_fence.remove(key);
        self.executor.write_locks.forget(key);
        self.inventory.remove(key);
    }

    /// Acknowledges the last recovery: the next failure may be recovered
    /// automatically even within the anti-flap period.
    pub fn acknowledge(&mut self) {
        if let Some(l) = self.last_recovery.as_mut() {
            l.acknowledged = true;
        }
    }

    /// Whether an automatic recovery is blocked now, and why.
    pub fn blocked_by_anti_flap(&self) -> Option<String> {
        let last = self.last_recovery.as_ref()?;
        let age = last.at.elapsed();
        (!last.acknowledged && age < self.config.anti_flap).then(|| {
            format!(
                "a recovery ran {:.1}s ago, within the anti-flap period of {:?}, and was not acknowledged",
                age.as_secs_f64(),
                self.config.anti_flap
            )
        })
    }

    async fn probe(&mut self) -> Round {
        self.probe_except(&BTreeSet::new()).await
    }

    async fn probe_except(&mut self, skip: &BTreeSet<InstanceKey>) -> Round {
        let round = self
            .inventory
            .probe_round_except(
                &self.executor.config.admin,
                self.config.probe_timeouts,
                Some(self.config.recheck_timeout),
                skip,
            )
            .await;
        self.topology = round.topology.clone();
        self.context.stalled_ms = round.stalled_ms.clone();
        round
    }

    /// Writes the heartbeat on every writable primary (best effort), but
    /// never on a former primary: not on one fenced this round (`fenced`;
    /// the probe saw it writable, and orca's account is not stopped by
    /// read_only), nor on one still to fence. A row written there would be
    /// a transaction the new primary lacks.
    async fn write_heartbeats(&mut self, fenced: &[InstanceKey]) {
        let limit = self.config.probe_timeouts.query;
        let primaries: Vec<InstanceKey> = self
            .topology
            .nodes
            .values()
            .filter(|n| {
                let writable = n.snapshot.as_ref().is_some_and(|s| !s.is_read_only());
                let former = fenced.contains(&n.key) || self.pending_fence.contains(&n.key);
                n.role == Role::Primary && writable && !former
            })
            .map(|n| n.key.clone())
            .collect();
        for key in primaries {
            // Over the probe's connection (the same account) when it is
            // open; else over one of its own.
            let kept = self.inventory.take_conn(&key);
            let mut conn = match kept {
                Some(k) => HeartbeatConn::Kept(k),
                None => match crate::mysql::probe::ProbeConn::connect(
                    &key,
                    &self.executor.config.admin,
                    self.config.probe_timeouts,
                )
                .await
                {
                    Ok(c) => HeartbeatConn::Own(c),
                    Err(_) => continue,
                },
            };
            let c = conn.conn();
            let r = match heartbeat::write(c, &key, limit).await {
                Err(e) if heartbeat::is_missing(&e) => {
                    match heartbeat::ensure_table(c, &key, limit).await {
                        Ok(()) => heartbeat::write(c, &key, limit).await,
                        Err(e) => Err(e),
                    }
                }
                r => r,
            };
            if let Err(e) = &r {
                tracing::debug!(cluster = %self.config.cluster, instance = %key, error = %e, "heartbeat not written");
            }
            match conn {
                HeartbeatConn::Kept(k) if r.is_ok() => self.inventory.keep_conn(&key, k),
                other => other.into_conn().close(self.config.probe_timeouts).await,
            }
        }
    }

    /// One round: probe, analyse, and recover when a failure calls for it.
    pub async fn round(&mut self) -> RoundReport {
        let round = self.probe().await;
        for k in &round.newly_failed {
            tracing::info!(cluster = %self.config.cluster, instance = %k, "instance stopped answering");
        }
        self.remember_primary();
        self.remember_semi_sync_primaries();
        // Two writable primaries: the former one is fenced at once, after
        // an automatic or a manual operation alike.
        if let Some((_, former)) = primary_and_former(&self.topology, &self.context) {
            self.pending_fence.extend(former);
        }
        // A fenced instance that was made a replica by someone else (a
        // repoint from the command line) has a role again: its write lock
        // would only hold its replication up.
        for key in self.executor.write_locks.keys() {
            let started = self
                .topology
                .get(&key)
                .and_then(|n| n.snapshot.as_ref())
                .and_then(|s| s.replica.as_ref())
                .is_some_and(|r| r.io_running != IoThreadState::No || r.sql_running);
            if started {
                let limit = self.executor.config.timeouts.query;
                match self.executor.write_locks.release(&key, true, limit).await {
                    Ok(()) => {
                        tracing::info!(cluster = %self.config.cluster, instance = %key, "the fenced former primary replicates again: its write lock is released")
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %self.config.cluster, instance = %key, error = %e, "releasing the write lock of a former primary that replicates again")
                    }
                }
            }
        }
        // A fence whose write lock was lost (the server restarted, its
        // connection was killed) is taken again.
        let lost = self
            .executor
            .write_locks
            .check(self.executor.config.timeouts.query)
            .await;
        self.pending_fence.extend(lost);
        let (fenced, fence_records) = self.fence_returned().await;
        if self.config.heartbeat {
            self.write_heartbeats(&fenced).await;
        }
        let findings = analyze(&self.topology, &self.context);
        let new_findings: Vec<Finding> = findings
            .iter()
            .filter(|f| {
                !self
                    .findings
                    .iter()
                    .any(|o| o.code == f.code && o.instance == f.instance)
            })
            .cloned()
            .collect();
        for f in &new_findings {
            tracing::warn!(cluster = %self.config.cluster, instance = %f.instance, problem = %f.code, "{}", f.description);
        }
        self.findings = findings.clone();
        let mut report = RoundReport {
            findings: findings.clone(),
            new_findings,
            fenced,
            fence_records,
            ..RoundReport::default()
        };
        let Some(failure) = findings.iter().find(|f| f.code.is_failure()).cloned() else {
            self.standing_refusal = None;
            return report;
        };
        if !self.config.auto_recover {
            report.blocked = Some("automatic recovery is off".into());
            return report;
        }
        if let Some(why) = self.blocked_by_anti_flap() {
            if report.new_findings.iter().any(|f| f.code == failure.code) {
                tracing::warn!(cluster = %self.config.cluster, instance = %failure.instance, problem = %failure.code, "not recovering: {why}");
            }
            report.blocked = Some(why);
            return report;
        }
        // Refused as at the last attempt: reported once, not again.
        let refusal = self
            .plan_refusal(&failure)
            .map(|why| (failure.instance.clone(), why));
        if let Some((_, why)) = &refusal
            && self.standing_refusal == refusal
        {
            report.blocked = Some(format!("no automatic recovery: {why}"));
            return report;
        }
        let record = self.recover(&failure).await;
        self.standing_refusal = refusal;
        if arms_anti_flap(&record) {
            self.last_recovery = Some(LastRecovery {
                at: Instant::now(),
                acknowledged: false,
            });
        }
        report.recovery = Some(record);
        report
    }

    /// Fences former primaries that answer again: clients disconnected,
    /// read only, writes locked for every account (see
    /// [`super::fence`]). They stay out of the topology's writes until an
    /// operator repoints or re-provisions them; one that replicates again
    /// meanwhile is a replica, not fenced.
    async fn fence_returned(&mut self) -> (Vec<InstanceKey>, Vec<OperationRecord>) {
        let mut fenced = Vec::new();
        let mut records = Vec::new();
        let pending: Vec<InstanceKey> = self.pending_fence.iter().cloned().collect();
        for key in pending {
            let node = self.topology.get(&key);
            let replicates = node
                .and_then(|n| n.snapshot.as_ref())
                .and_then(|s| s.replica.as_ref())
                .is_some_and(|r| r.is_replicating());
            if replicates {
                self.pending_fence.remove(&key);
                continue;
            }
            if !self.executor.write_locks.holds(&key) {
                // Clients first: a commit still waiting for a semi-sync
                // acknowledgement holds locks that read_only would wait
                // on, and its client must get an error, not an ack. The
                // probe may not get through such a server, so this is
                // tried whether or not the probe answered.
                let mut plan = Plan::new(PlanKind::ForceFailover);
                plan.failed = Some(key.clone());
                plan.steps = fence_steps(&key);
                let meta = OperationMeta {
                    id: operation_id(&self.config.cluster, PlanKind::ForceFailover),
                    cluster: self.config.cluster.clone(),
                    trigger: "FormerPrimaryReturned".into(),
                };
                let mut config = self.executor.config.clone();
                config.timeouts.connect = Duration::from_millis(500);
                let mut fencer = Executor::new(config, Default::default());
                fencer.write_locks = self.executor.write_locks.clone();
                fencer.fence = self.executor.fence.clone();
                fencer.background = self.executor.background.clone();
                let record = fencer.execute(&plan, &meta).await;
                if !record.outcome.succeeded() {
                    continue;
                }
                records.push(record);
            }
            tracing::warn!(
                cluster = %self.config.cluster,
                instance = %key,
                "the former primary answers again: fenced (clients disconnected, read only, writes locked for every account); repoint or re-provision it"
            );
            self.pending_fence.remove(&key);
            fenced.push(key);
        }
        (fenced, records)
    }

    /// How long to wait before the next round.
    pub fn next_delay(&self) -> Duration {
        let suspicious = self.findings.iter().any(|f| {
            matches!(
                f.code,
                ClusterProblemCode::UnreachablePrimary
                    | ClusterProblemCode::UnreachableIntermediatePrimary
                    | ClusterProblemCode::UnreachablePrimaryWithLaggingReplicas
            )
        }) || self
            .topology
            .nodes
            .values()
            .any(|n| !n.reachable() && n.role != Role::Unknown);
        if suspicious {
            self.config.recheck_interval
        } else {
            self.config.probe_interval
        }
    }

    /// Why the recovery of `failure` would be refused now, if it would:
    /// the plan alone, nothing run.
    fn plan_refusal(&self, failure: &Finding) -> Option<String> {
        let failed = &failure.instance;
        let refused = match failure.code {
            ClusterProblemCode::DeadIntermediatePrimary
            | ClusterProblemCode::DeadIntermediatePrimaryAndSomeReplicas
            | ClusterProblemCode::DeadIntermediatePrimaryWithSingleReplica => {
                dead_intermediate_primary(&self.topology, failed, &self.config.recovery).err()
            }
            _ => {
                let mut opts = self.config.recovery.clone();
                opts.last_seen = self.last_seen(failed);
                dead_primary(&self.topology, failed, &opts).err()
            }
        };
        refused.map(|e| e.to_string())
    }

    /// Recovers one failure (automatically, or by a manual request, which
    /// ignores the anti-flap period). Always returns a record.
    pub async fn recover(&mut self, failure: &Finding) -> OperationRecord {
        let kind = match failure.code {
            ClusterProblemCode::DeadIntermediatePrimary
            | ClusterProblemCode::DeadIntermediatePrimaryAndSomeReplicas
            | ClusterProblemCode::DeadIntermediatePrimaryWithSingleReplica => {
                PlanKind::RecoverDeadIntermediatePrimary
            }
            _ => PlanKind::RecoverDeadPrimary,
        };
        let meta = OperationMeta {
            id: operation_id(&self.config.cluster, kind),
            cluster: self.config.cluster.clone(),
            trigger: failure.code.to_string(),
        };
        let failed = failure.instance.clone();
        let record = match kind {
            PlanKind::RecoverDeadIntermediatePrimary => {
                match dead_intermediate_primary(&self.topology, &failed, &self.config.recovery) {
                    Ok(plan) => {
                        self.executor
                            .run_hooks(&plan, &meta, HookEvent::FailureDetected)
                            .await;
                        self.executor.execute(&plan, &meta).await
                    }
                    Err(e) => self.refused(kind, &failed, &meta, e.to_string()).await,
                }
            }
            _ => self.recover_dead_primary(&failed, &meta).await,
        };
        let mut record = record;
        let moved = record.steps.iter().any(|s| {
            matches!(
                s.step,
                Step::ChangeSource { .. } | Step::ResetReplicaAll { .. }
            )
        });
        if record.outcome.succeeded() && !moved {
            record.outcome = Outcome::Failed("no replica could be moved or promoted".into());
        }
        if record.outcome.succeeded() && record.kind == PlanKind::RecoverDeadPrimary {
            self.pending_fence.extend(record.failed.clone());
            self.context.primary = record.successor.clone();
        }
        // What the recovery changed is the topology from now on.
        self.probe_except(&BTreeSet::from([failed.clone()])).await;
        tracing::info!(
            cluster = %self.config.cluster,
            operation = %record.id,
            outcome = ?record.outcome,
            successor = record.successor.as_ref().map(|k| k.to_string()).unwrap_or_default(),
            ms = record.duration_ms,
            "recovery finished"
        );
        self.records.push(record.clone());
        record
    }

    /// Carries out the plan of an operation a person asked for (a
    /// takeover, a refactoring): the record is kept, a primary replaced
    /// against its will is fenced when it answers again, and the topology
    /// is probed again so the next read shows what changed.
    pub async fn carry_out(&mut self, plan: &Plan) -> OperationRecord {
        let meta = OperationMeta {
            id: operation_id(&self.config.cluster, plan.kind),
            cluster: self.config.cluster.clone(),
            trigger: plan.kind.name().to_string(),
        };
        let record = self.executor.execute(plan, &meta).await;
        if record.outcome.succeeded() {
            match record.kind {
                PlanKind::ForceFailover | PlanKind::ForceTakeover => {
                    self.pending_fence.extend(record.failed.clone());
                    self.context.primary = record.successor.clone();
                }
                PlanKind::GracefulTakeover => self.context.primary = record.successor.clone(),
                _ => {}
            }
        }
        self.probe_except(&BTreeSet::new()).await;
        tracing::info!(
            cluster = %self.config.cluster,
            operation = %record.id,
            outcome = ?record.outcome,
            ms = record.duration_ms,
            "operation finished"
        );
        self.records.push(record.clone());
        record
    }

    async fn refused(
        &self,
        kind: PlanKind,
        failed: &InstanceKey,
        meta: &OperationMeta,
        why: String,
    ) -> OperationRecord {
        let mut plan = Plan::new(kind);
        plan.failed = Some(failed.clone());
        plan.steps.push(Step::RunHooks {
            event: HookEvent::FailureDetected,
        });
        let mut record = self.executor.execute(&plan, meta).await;
        if !matches!(record.outcome, Outcome::Deposed(_)) {
            record.outcome = Outcome::Failed(format!("no plan: {why}"));
        }
        let mut failed_plan = plan.clone();
        failed_plan.steps.clear();
        record.hook_errors.extend(
            self.executor
                .run_hooks(&failed_plan, meta, HookEvent::FailedFailover)
                .await,
        );
        record
    }

    /// Remembers the only writable primary (which of two writable tops is
    /// the former one).
    fn remember_primary(&mut self) {
        if let [primary] = writable_tops(&self.topology).as_slice() {
            self.context.primary = Some(primary.key.clone());
        }
    }

    /// `key` as orca last saw it answer, with the replicas that did not
    /// acknowledge semi-sync writes then: what a failover compares its
    /// successor with (possibly lost transactions, semi-sync quorum).
    pub fn last_seen(&self, key: &InstanceKey) -> Option<LastSeenPrimary> {
        let primary = self.inventory.known.get(key)?.last_snapshot.as_ref()?;
        let others = self
            .inventory
            .known
            .values()
            .filter_map(|k| k.last_snapshot.as_deref());
        Some(LastSeenPrimary::remembered(primary, others))
    }

    /// Tells the analysis how the semi-sync primaries it no longer reaches
    /// were last seen.
    fn remember_semi_sync_primaries(&mut self) {
        let gone: Vec<InstanceKey> = self
            .topology
            .nodes
            .values()
            .filter(|n| !n.reachable())
            .map(|n| n.key.clone())
            .collect();
        self.context.last_seen = gone
            .iter()
            .filter_map(|k| self.last_seen(k))
            .filter(|l| l.semi_sync)
            .map(|l| (l.key.clone(), l))
            .collect();
    }

    /// Fence first (pre-failover hooks, IO threads stopped), let the
    /// replicas apply their relay logs, then look again and choose the
    /// candidate from what the replicas really hold, then promote. Once
    /// the fence has run, the failover either promotes or is abandoned
    /// (replication restarted, reported), never both.
    async fn recover_dead_primary(
        &mut self,
        failed: &InstanceKey,
        meta: &OperationMeta,
    ) -> OperationRecord {
        let kind = PlanKind::RecoverDeadPrimary;
        let mut opts = self.config.recovery.clone();
        opts.last_seen = self.last_seen(failed);
        let first = match dead_primary(&self.topology, failed, &opts) {
            Ok(p) => p,
            Err(e) => return self.refused(kind, failed, meta, e.to_string()).await,
        };
        self.executor
            .run_hooks(&first, meta, HookEvent::FailureDetected)
            .await;
        let phases = fence_phases(&first);
        // A veto, or an IO thread that would not stop: the executor ran
        // the rollback (replication restarted); nothing more happens.
        let mut record = self.executor.execute(&phases.fence, meta).await;
        if !record.outcome.succeeded() {
            return record;
        }
        // A relay log that could not be applied in time is reported, and
        // the candidate is chosen from what was applied; the fence stays.
        let t = Instant::now();
        let (waits, deposed) = self.executor.run_each(&first, meta, &phases.waits).await;
        let unapplied: Vec<String> = waits
            .iter()
            .filter_map(|w| match &w.outcome {
                StepOutcome::Failed(e) => Some(format!("{}: {e}", w.description)),
                StepOutcome::Done | StepOutcome::Skipped(_) => None,
            })
            .collect();
        let offset = record.steps.len();
        append_steps(&mut record, waits, t.elapsed());
        if let Some(stopped) = deposed {
            // Not the leader any more: nothing more, not even the abandon.
            record.notes.extend(unapplied);
            record.outcome = Outcome::Deposed(stopped).after_steps(offset);
            return record;
        }
        self.probe_except(&BTreeSet::from([failed.clone()])).await;
        let second = match dead_primary(&self.topology, failed, &opts) {
            Ok(p) => p,
            Err(e) => {
                // Abandoned: replication restarted, nothing promoted.
                let undo = self.executor.execute(&abandon(&first), meta).await;
                let mut r = self.refused(kind, failed, meta, e.to_string()).await;
                r.steps.splice(0..0, record.steps);
                r.notes
                    .splice(0..0, record.notes.into_iter().chain(unapplied));
                r.rollback = undo.steps;
                if let Outcome::Deposed(mut stopped) = undo.outcome {
                    stopped.rollback = true;
                    r.outcome = Outcome::Deposed(stopped);
                }
                return r;
            }
        };
        let rest = self.executor.execute(&after_fence(&second), meta).await;
        let offset = record.steps.len();
        let (steps, ms) = (rest.steps, rest.duration_ms);
        append_steps(&mut record, steps, Duration::from_millis(ms));
        record.successor = rest.successor;
        record.lost_replicas = rest.lost_replicas;
        record.lost_transactions = rest.lost_transactions;
        record.notes = rest.notes;
        record.notes.extend(unapplied);
        record.rollback = rest.rollback;
        record.hook_errors.extend(rest.hook_errors);
        record.outcome = rest.outcome.after_steps(offset);
        record
    }

    /// Runs rounds until `shutdown` resolves.
    pub async fn run(&mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.round().await;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.next_delay()) => {}
            }
        }
    }

    /// The last known snapshots of every instance, for reports.
    pub fn known(&self) -> BTreeMap<InstanceKey, Option<String>> {
        self.inventory
            .known
            .iter()
            .map(|(k, v)| (k.clone(), v.last_error.clone()))
            .collect()
    }
}

/// Whether a recovery arms the anti-flap block: only one that changed the
/// topology (a replica promoted or moved), as orchestrator blocks after a
/// recovery, not after an attempt that was refused, vetoed or rolled back.
fn arms_anti_flap(record: &OperationRecord) -> bool {
    record.steps.iter().any(|s| {
        s.outcome == StepOutcome::Done
            && matches!(
                s.step,
                Step::ResetReplicaAll { .. } | Step::ChangeSource { .. }
            )
    })
}

/// Appends the steps of a later phase (which took `took`) to `record`.
fn append_steps(record: &mut OperationRecord, steps: Vec<StepRecord>, took: Duration) {
    let offset = record.steps.len();
    let start = record.duration_ms;
    record.steps.extend(steps.into_iter().map(|mut s| {
        s.index += offset;
        s.started_ms += start;
        s
    }));
    record.duration_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::key;

    fn record(steps: &[(Step, StepOutcome)], outcome: Outcome) -> OperationRecord {
        OperationRecord {
            id: "x".into(),
            cluster: "c".into(),
            kind: PlanKind::RecoverDeadPrimary,
            trigger: "DeadPrimary".into(),
            failed: Some(key("p")),
            successor: None,
            lost_replicas: Vec::new(),
            lost_transactions: None,
            notes: Vec::new(),
            started_at: 0,
            duration_ms: 0,
            steps: steps
                .iter()
                .enumerate()
                .map(|(index, (step, outcome))| StepRecord {
                    index,
                    step: step.clone(),
                    description: step.to_string(),
                    started_ms: 0,
                    duration_ms: 0,
                    outcome: outcome.clone(),
                })
                .collect(),
            rollback: Vec::new(),
            hook_errors: Vec::new(),
            outcome,
        }
    }

    #[test]
    fn only_a_recovery_that_changed_the_topology_arms_the_anti_flap_block() {
        let hooks = Step::RunHooks {
            event: HookEvent::PreFailover,
        };
        let stop_io = Step::StopReplicaIo { on: key("r1") };
        let reset = Step::ResetReplicaAll { on: key("r1") };
        let failed = || StepOutcome::Failed("no".into());
        let cases: Vec<(&str, OperationRecord, bool)> = vec![
            (
                "vetoed",
                record(&[(hooks.clone(), failed())], Outcome::Vetoed("no".into())),
                false,
            ),
            (
                "refused: no plan",
                record(
                    &[(hooks.clone(), StepOutcome::Done)],
                    Outcome::Failed("no plan: no candidate".into()),
                ),
                false,
            ),
            (
                "rolled back before the promotion",
                record(
                    &[
                        (hooks.clone(), StepOutcome::Done),
                        (stop_io.clone(), failed()),
                    ],
                    Outcome::RolledBack("step 2 failed".into()),
                ),
                false,
            ),
            (
                "the promotion failed",
                record(
                    &[
                        (stop_io.clone(), StepOutcome::Done),
                        (reset.clone(), failed()),
                    ],
                    Outcome::Failed("step 2 failed".into()),
                ),
                false,
            ),
            (
                "completed",
                record(
                    &[
                        (stop_io.clone(), StepOutcome::Done),
                        (reset.clone(), StepOutcome::Done),
                    ],
                    Outcome::Succeeded,
                ),
                true,
            ),
            (
                "promoted, a later step failed",
                record(
                    &[
                        (reset.clone(), StepOutcome::Done),
                        (
                            Step::ChangeSource {
                                on: key("r2"),
                                source: key("r1"),
                                position: crate::plan::SourcePosition::Gtid,
                            },
                            failed(),
                        ),
                    ],
                    Outcome::Failed("step 2 failed".into()),
                ),
                true,
            ),
        ];
        for (name, r, armed) in cases {
            assert_eq!(arms_anti_flap(&r), armed, "{name}");
        }
    }
}
