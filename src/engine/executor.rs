//! Executes a plan step by step against the instances, each step bounded in
//! time (a statement the client gave up on is killed on the server), and
//! records what each step did. A failure before the plan's point
//! of no return runs its rollback; after it, the plan stops and reports.
//! Steps whose failure undoes nothing (a fence's relay log waits) can also
//! be run each on its own, without rollback.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::Conn;
use serde::Serialize;

use super::fence::WriteLocks;
use super::hooks::{HookPayload, Hooks};
use crate::mysql::actions::Session;
use crate::mysql::conn::{Timeouts, connect, exec, query_rows};
use crate::mysql::{Credentials, Dialect, MysqlError};
use crate::plan::loss::LostTransactions;
use crate::plan::{HookEvent, Plan, PlanKind, SourcePosition, Step};
use crate::topology::InstanceKey;

/// How the executor reaches instances.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The account orca acts as.
    pub admin: Credentials,
    /// The account replicas use to connect to their source.
    pub repl: Credentials,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum StepOutcome {
    Done,
    Failed(String),
}

/// One executed step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub index: usize,
    pub step: Step,
    pub description: String,
    /// Milliseconds from the start of the operation.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum Outcome {
    Succeeded,
    /// A veto hook said no; nothing was changed (or it was rolled back).
    Vetoed(String),
    /// A step failed before the point of no return; the rollback ran.
    RolledBack(String),
    /// A step failed after the point of no return.
    Failed(String),
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

/// The record of one operation: what was planned, each step, the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct OperationRecord {
    pub id: String,
    pub cluster: String,
    pub kind: PlanKind,
    pub trigger: String,
    pub failed: Option<InstanceKey>,
    pub successor: Option<InstanceKey>,
    pub lost_replicas: Vec<(InstanceKey, String)>,
    /// Transactions the failed primary had at its last probe that the
    /// successor lacks (possibly lost).
    pub lost_transactions: Option<LostTransactions>,
    pub notes: Vec<String>,
    /// Seconds since the Unix epoch when the operation started.
    pub started_at: u64,
    pub duration_ms: u64,
    pub steps: Vec<StepRecord>,
    pub rollback: Vec<StepRecord>,
    pub hook_errors: Vec<String>,
    pub outcome: Outcome,
}

/// Who and why, for records and hooks.
#[derive(Debug, Clone)]
pub struct OperationMeta {
    pub id: String,
    pub cluster: String,
    /// The analysis code, or the manual operation's name.
    pub trigger: String,
}

/// Makes an operation id: the cluster, the kind and the start time in
/// milliseconds.
pub fn operation_id(cluster: &str, kind: PlanKind) -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{cluster}-{}-{ms}", kind.name())
}

/// How many steps from the start of `steps` may run side by side: a run of
/// IO-thread stops, or of relay-log waits, each on another instance.
fn parallel_group(steps: &[Step]) -> usize {
    let kind = |s: &Step| match s {
        Step::StopReplicaIo { .. } => Some(0),
        Step::WaitRelayApplied { .. } => Some(1),
        _ => None,
    };
    let Some(first) = steps.first().and_then(kind) else {
        return 1;
    };
    let mut seen = std::collections::BTreeSet::new();
    steps
        .iter()
        .take_while(|s| {
            kind(s) == Some(first) && s.target().is_some_and(|t| seen.insert(t.clone()))
        })
        .count()
        .max(1)
}

/// What one execution is about.
#[derive(Clone, Copy)]
struct Run<'a> {
    plan: &'a Plan,
    meta: &'a OperationMeta,
    t0: Instant,
}

pub struct Executor {
    pub config: ExecutorConfig,
    pub hooks: Hooks,
    /// The write locks held on fenced former primaries (shared by clones).
    pub write_locks: WriteLocks,
}

/// Open sessions of one operation, one per instance.
struct Sessions<'a> {
    config: &'a ExecutorConfig,
    open: BTreeMap<InstanceKey, (Conn, Dialect)>,
}

impl Sessions<'_> {
    async fn get(&mut self, key: &InstanceKey) -> Result<(&mut Conn, &Dialect), MysqlError> {
        if !self.open.contains_key(key) {
            let t = self.config.timeouts;
            let mut conn = connect(key, &self.config.admin, t).await?;
            let rows = query_rows(
                &mut conn,
                key,
                t.query,
                "reading the version",
                "SELECT @@version AS v, @@version_comment AS c",
            )
            .await?;
            let row = rows.into_iter().next().unwrap_or_default();
            let v = row.get("v").cloned().flatten().unwrap_or_default();
            let c = row.get("c").cloned().flatten();
            let dialect =
                Dialect::detect(&v, c.as_deref()).map_err(|source| MysqlError::Parse {
                    key: key.clone(),
                    source,
                })?;
            self.open.insert(key.clone(), (conn, dialect));
        }
        let (conn, dialect) = self.open.get_mut(key).ok_or_else(|| MysqlError::Answer {
            key: key.clone(),
            what: "opening a session",
            detail: "no session".into(),
        })?;
        Ok((conn, dialect))
    }

    /// Drops a session after an error, so the next step reconnects.
    fn forget(&mut self, key: &InstanceKey) {
        self.open.remove(key);
    }

    async fn close(self) {
        for (_, (conn, _)) in self.open {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
        }
    }
}

impl Executor {
    pub fn new(config: ExecutorConfig, hooks: Hooks) -> Self {
        Executor {
            config,
            hooks,
            write_locks: WriteLocks::default(),
        }
    }

    fn payload(
        &self,
        plan: &Plan,
        meta: &OperationMeta,
        event: HookEvent,
        error: Option<String>,
    ) -> HookPayload {
        HookPayload {
            event,
            cluster: meta.cluster.clone(),
            failure_type: meta.trigger.clone(),
            failed: plan.failed.clone(),
            successor: plan.successor.clone(),
            lost_replicas: plan.lost_replicas.iter().map(|(k, _)| k.clone()).collect(),
            lost_transactions: plan.lost_transactions.as_ref().map(|l| l.gtids.clone()),
            recovery_id: meta.id.clone(),
            error,
        }
    }

    /// Runs the hooks of one event outside a plan (failure detected).
    pub async fn run_hooks(
        &self,
        plan: &Plan,
        meta: &OperationMeta,
        event: HookEvent,
    ) -> Vec<String> {
        self.hooks
            .run(&self.payload(plan, meta, event, None))
            .await
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    async fn run_step(
        &self,
        sessions: &mut Sessions<'_>,
        plan: &Plan,
        meta: &OperationMeta,
        step: &Step,
    ) -> Result<(), String> {
        if let Step::RunHooks { event } = step {
            let errors = self
                .hooks
                .run(&self.payload(plan, meta, *event, None))
                .await;
            return match errors.first() {
                Some(e) if event.may_veto() => Err(format!("vetoed: {e}")),
                _ => Ok(()),
            };
        }
        let Some(on) = step.target().cloned() else {
            return Ok(());
        };
        // A value read from another instance first.
        let wait_for = match step {
            Step::WaitCaughtUp { of, .. } => {
                let limit = self.config.timeouts.query;
                let (conn, dialect) = sessions.get(of).await.map_err(|e| e.to_string())?;
                let mut s = Session {
                    conn,
                    key: of,
                    dialect,
                    limit,
                };
                Some(s.executed_gtids().await.map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let limit = self.config.timeouts.query;
        match step {
            Step::LockWrites { .. } => return self.lock_writes(sessions, &on).await,
            Step::UnlockWrites { .. } => {
                return self
                    .write_locks
                    .release(&on, false, limit)
                    .await
                    .map_err(|e| e.to_string());
            }
            _ => {}
        }
        // An instance with a role again loses its write lock: before it is
        // made writable (its waiting writes then go on, it is the primary).
        if let Step::SetReadOnly {
            read_only: false, ..
        } = step
        {
            self.write_locks
                .release(&on, false, limit)
                .await
                .map_err(|e| e.to_string())?;
        }
        let spare: Vec<u32> = self.write_locks.connection_id(&on).into_iter().collect();
        let mut conn_id = None;
        let result = async {
            let (conn, dialect) = sessions.get(&on).await?;
            conn_id = Some(conn.id());
            let mut s = Session {
                conn,
                key: &on,
                dialect,
                limit,
            };
            match step {
                Step::RunHooks { .. } => Ok(()),
                Step::StopReplicaIo { .. } => s.stop_replica_io().await,
                Step::WaitRelayApplied { timeout, .. } => s.wait_relay_applied(*timeout).await,
                Step::ApplyRelayNow { timeout, .. } => s.apply_relay_now(*timeout).await,
                Step::StopReplica { .. } => s.stop_replica().await,
                Step::ResetReplicaAll { .. } => s.reset_replica_all().await,
                Step::SetReadOnly { read_only, .. } => s.set_read_only(*read_only).await,
                Step::SetSemiSyncPrimary {
                    enabled,
                    wait_count,
                    ..
                } => s.set_semi_sync_primary(*enabled, *wait_count).await,
                Step::WaitReceivedApplied { timeout, .. } => s.wait_relay_applied(*timeout).await,
                Step::KillClientConnections { .. } => {
                    s.kill_clients(&spare, false).await.map(|_| ())
                }
                Step::LockWrites { .. } | Step::UnlockWrites { .. } => Ok(()),
                Step::WaitCaughtUp { timeout, .. } => match &wait_for {
                    Some(g) => s.wait_for_gtids(g, *timeout).await,
                    None => Ok(()),
                },
                Step::ChangeSource {
                    source,
                    position: SourcePosition::Gtid,
                    ..
                } => s.change_source_gtid(source, &self.config.repl).await,
                Step::ChangeSource {
                    source,
                    position: SourcePosition::OwnBinlog,
                    ..
                } => s.change_source_own_binlog(source, &self.config.repl).await,
                Step::StartReplica { .. } => s.start_replica().await,
                Step::WaitReplicating { timeout, .. } => s.wait_replicating(*timeout).await,
            }
        }
        .await;
        if result.is_err() {
            sessions.forget(&on);
        }
        // ... and once it replicates (its clients killed first: a write
        // that waited on the lock must not be acknowledged by a replica).
        if let (Step::StartReplica { .. }, Ok(())) = (step, &result)
            && let Err(e) = self.write_locks.release(&on, true, limit).await
        {
            tracing::warn!(instance = %on, error = %e, "releasing the write lock of a former primary that replicates again");
        }
        // The client gave up, the server did not: a statement left running
        // (a `SET GLOBAL read_only` waiting on a lock) is stopped.
        if let (Err(MysqlError::Timeout { .. }), Some(id)) = (&result, conn_id) {
            self.kill_query(&on, id).await;
        }
        let secrets = [self.config.repl.password(), self.config.admin.password()];
        result.map_err(|e| crate::mysql::conn::redact(&e.to_string(), &secrets))
    }

    /// Takes the global read lock on `on` with the operation's session,
    /// which then leaves the operation and is kept in
    /// [`Executor::write_locks`] (the next step on `on` opens another).
    async fn lock_writes(
        &self,
        sessions: &mut Sessions<'_>,
        on: &InstanceKey,
    ) -> Result<(), String> {
        let limit = self.config.timeouts.query;
        let spare: Vec<u32> = self.write_locks.connection_id(on).into_iter().collect();
        let locked = async {
            let (conn, dialect) = sessions.get(on).await?;
            let mut s = Session {
                conn,
                key: on,
                dialect,
                limit,
            };
            s.lock_writes(&spare).await
        }
        .await;
        match (locked, sessions.open.remove(on)) {
            (Ok(()), Some((conn, dialect))) => {
                self.write_locks.keep(on, conn, dialect).await;
                Ok(())
            }
            (Ok(()), None) => Err("the session that took the lock is gone".into()),
            (Err(e), conn) => {
                if let Some((conn, _)) = conn {
                    let _ = tokio::time::timeout(limit, conn.disconnect()).await;
                }
                let secrets = [self.config.repl.password(), self.config.admin.password()];
                Err(crate::mysql::conn::redact(&e.to_string(), &secrets))
            }
        }
    }

    /// `KILL QUERY id` on `key`, from a new connection (best effort,
    /// bounded).
    async fn kill_query(&self, key: &InstanceKey, id: u32) {
        let t = self.config.timeouts;
        let killed = async {
            let mut conn = connect(key, &self.config.admin, t).await?;
            let r = exec(
                &mut conn,
                key,
                t.query,
                "killing a query",
                &format!("KILL QUERY {id}"),
            )
            .await;
            let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
            r
        }
        .await;
        match killed {
            Ok(()) => {
                tracing::info!(instance = %key, connection = id, "statement stopped on the server after a client-side timeout")
            }
            Err(e) if e.server_code() == Some(1094) => {}
            Err(e) => {
                tracing::warn!(instance = %key, connection = id, error = %e, "could not stop a statement that timed out")
            }
        }
    }

    async fn run_steps(
        &self,
        sessions: &mut Sessions<'_>,
        run: &Run<'_>,
        steps: &[Step],
        records: &mut Vec<StepRecord>,
        stop_on_error: bool,
    ) -> Option<(usize, String)> {
        let Run { plan, meta, t0 } = *run;
        let mut first_error = None;
        let mut i = 0;
        while i < steps.len() {
            // Fencing steps on different replicas run side by side: a hung
            // source makes each of them slow, and they do not depend on
            // each other.
            let group = parallel_group(&steps[i..]);
            let started = t0.elapsed();
            let results: Vec<Result<(), String>> = if group > 1 {
                futures::future::join_all(steps[i..i + group].iter().map(|step| async move {
                    let mut own = Sessions {
                        config: &self.config,
                        open: BTreeMap::new(),
                    };
                    let r = self.run_step(&mut own, plan, meta, step).await;
                    own.close().await;
                    r
                }))
                .await
            } else {
                vec![self.run_step(sessions, plan, meta, &steps[i]).await]
            };
            let duration = t0.elapsed() - started;
            let mut stop = false;
            for (j, r) in results.into_iter().enumerate() {
                let index = i + j;
                let step = &steps[index];
                let outcome = match &r {
                    Ok(()) => StepOutcome::Done,
                    Err(e) => StepOutcome::Failed(e.clone()),
                };
                tracing::info!(
                    cluster = %meta.cluster,
                    operation = %meta.id,
                    instance = step.target().map(|k| k.to_string()).unwrap_or_default(),
                    step = index + 1,
                    ms = duration.as_millis() as u64,
                    result = ?outcome,
                    "{step}"
                );
                records.push(StepRecord {
                    index,
                    step: step.clone(),
                    description: step.to_string(),
                    started_ms: started.as_millis() as u64,
                    duration_ms: duration.as_millis() as u64,
                    outcome,
                });
                if let Err(e) = r {
                    first_error.get_or_insert((index, e));
                    stop = stop_on_error;
                }
            }
            if stop {
                break;
            }
            i += group;
        }
        first_error
    }

    /// Runs `steps` of `plan` one group after the other, each whatever
    /// the others did: no rollback, no hooks of a failed failover. For
    /// steps whose failure is reported but undoes nothing (relay log
    /// waits of a fence).
    pub async fn run_each(
        &self,
        plan: &Plan,
        meta: &OperationMeta,
        steps: &[Step],
    ) -> Vec<StepRecord> {
        let mut sessions = Sessions {
            config: &self.config,
            open: BTreeMap::new(),
        };
        let run = Run {
            plan,
            meta,
            t0: Instant::now(),
        };
        let mut records = Vec::new();
        self.run_steps(&mut sessions, &run, steps, &mut records, false)
            .await;
        sessions.close().await;
        records
    }

    /// Executes `plan`; never panics, always returns the record.
    pub async fn execute(&self, plan: &Plan, meta: &OperationMeta) -> OperationRecord {
        let t0 = Instant::now();
        let started_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut sessions = Sessions {
            config: &self.config,
            open: BTreeMap::new(),
        };
        let mut steps = Vec::new();
        let mut rollback = Vec::new();
        let mut hook_errors = Vec::new();
        let run = Run { plan, meta, t0 };
        let error = self
            .run_steps(&mut sessions, &run, &plan.steps, &mut steps, true)
            .await;
        let outcome = match error {
            None => Outcome::Succeeded,
            Some((i, e)) => {
                if i < plan.point_of_no_return {
                    self.run_steps(&mut sessions, &run, &plan.rollback, &mut rollback, false)
                        .await;
                }
                if matches!(plan.steps.get(i), Some(Step::RunHooks { event }) if event.may_veto()) {
                    Outcome::Vetoed(e)
                } else if i < plan.point_of_no_return {
                    Outcome::RolledBack(format!("step {} failed: {e}", i + 1))
                } else {
                    Outcome::Failed(format!("step {} failed: {e}", i + 1))
                }
            }
        };
        sessions.close().await;
        let failover = matches!(
            plan.kind,
            PlanKind::RecoverDeadPrimary
                | PlanKind::RecoverDeadIntermediatePrimary
                | PlanKind::ForceFailover
                | PlanKind::ForceTakeover
        );
        if failover && matches!(outcome, Outcome::Failed(_) | Outcome::RolledBack(_)) {
            let err = match &outcome {
                Outcome::Failed(e) | Outcome::RolledBack(e) => Some(e.clone()),
                _ => None,
            };
            let payload = self.payload(plan, meta, HookEvent::FailedFailover, err);
            hook_errors.extend(
                self.hooks
                    .run(&payload)
                    .await
                    .into_iter()
                    .map(|e| e.to_string()),
            );
        }
        OperationRecord {
            id: meta.id.clone(),
            cluster: meta.cluster.clone(),
            kind: plan.kind,
            trigger: meta.trigger.clone(),
            failed: plan.failed.clone(),
            successor: plan.successor.clone(),
            lost_replicas: plan.lost_replicas.clone(),
            lost_transactions: plan.lost_transactions.clone(),
            notes: plan.notes.clone(),
            started_at,
            duration_ms: t0.elapsed().as_millis() as u64,
            steps,
            rollback,
            hook_errors,
            outcome,
        }
    }
}
