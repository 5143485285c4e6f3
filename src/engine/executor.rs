//! Executes a plan step by step against the instances, each step bounded in
//! time (a statement the client gave up on is killed on the server), and
//! records what each step did. A failure before the plan's point
//! of no return runs its rollback; after it, the plan stops and reports.
//! Steps whose failure undoes nothing (a fence's relay log waits) can also
//! be run each on its own, without rollback.
//!
//! With leader election, every step that changes something
//! ([`Step::mutates`]) is preceded by the fence check of the epoch
//! ([`LeaderFence::check`]) with a budget covering that step
//! ([`fence_budget`]); the epoch it returns is what [`Step::RecordEpoch`]
//! records. A replica that is no longer the leader stops at that step
//! boundary ([`Outcome::Deposed`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::Conn;
use serde::{Deserialize, Serialize};

use super::background::{Background, Detour};
use super::fence::WriteLocks;
use super::hooks::{HookPayload, Hooks};
use crate::ha::{Epoch, HaError, NotLeader};
use crate::mysql::actions::Session;
use crate::mysql::conn::{Timeouts, connect, exec, query_rows};
use crate::mysql::{Credentials, Dialect, MysqlError};
use crate::plan::loss::LostTransactions;
use crate::plan::{HookEvent, Plan, PlanKind, SourcePosition, Step};
use crate::topology::Flavor;
use crate::topology::InstanceKey;

/// How the executor reaches instances.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The account orca acts as.
    pub admin: Credentials,
    /// The account replicas use to connect to their source.
    pub repl: Credentials,
    /// The application account [`Step::EnsureAppAccount`] makes, if the
    /// cluster has one.
    pub app: Option<Credentials>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum StepOutcome {
    Done,
    Failed(String),
    /// The step had nothing to do here, and why (an epoch to record
    /// without leader election).
    Skipped(String),
}

/// One executed step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub step: Step,
    pub description: String,
    /// Milliseconds from the start of the operation.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum Outcome {
    Succeeded,
    /// A veto hook said no; nothing was changed (or it was rolled back).
    Vetoed(String),
    /// A step failed before the point of no return; the rollback ran.
    RolledBack(String),
    /// A step failed after the point of no return.
    Failed(String),
    /// This replica of orca is no longer the leader: the executor stopped
    /// at a step boundary and ran nothing more, not even the rollback. The
    /// new leader owns the cluster now and rolls the operation forward or
    /// back from this record and what the servers show; a rollback run by
    /// the old one could undo what the new one is doing. A journal that
    /// could not be written ([`Journal`]) stops the operation so too: the
    /// next owner (this operator's next round, or a new leader) goes on
    /// from the journal last written and what the servers show.
    Deposed(Stopped),
}

/// Where an executor that lost the leadership stopped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stopped {
    /// The step (its index, from 0) at which the executor stopped: not run
    /// when the fence refused it; run, and failed, when it found a newer
    /// epoch recorded on the server ([`Step::RecordEpoch`]).
    pub index: usize,
    /// Whether `index` is in the plan's rollback rather than its steps.
    pub rollback: bool,
    /// The step, for people.
    pub step: String,
    /// Why this replica is not the leader.
    pub reason: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped at {}step {} ({}): {}",
            if self.rollback { "rollback " } else { "" },
            self.index + 1,
            self.step,
            self.reason
        )
    }
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    /// The same outcome of a plan that ran after `offset` steps of the
    /// same operation (a later phase).
    pub fn after_steps(self, offset: usize) -> Outcome {
        match self {
            Outcome::Deposed(mut s) if !s.rollback => {
                s.index += offset;
                Outcome::Deposed(s)
            }
            other => other,
        }
    }
}

/// The leadership the executor asks for before each step that changes
/// something. [`crate::ha::Fence`] is the real one.
pub trait LeaderFence: Send + Sync {
    /// `Ok(epoch)` while this replica is the leader and its term lasts at
    /// least `needed` more.
    fn check(&self, needed: Duration) -> Result<Epoch, NotLeader>;
}

impl LeaderFence for crate::ha::Fence {
    fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
        crate::ha::Fence::check(self, needed)
    }
}

/// Where an operation stands when the executor is about to take a step
/// that changes something: what [`Journal::record`] is told.
#[derive(Clone, Copy)]
pub struct JournalPoint<'a> {
    pub meta: &'a OperationMeta,
    pub plan: &'a Plan,
    /// The step about to run, from 0, in `plan.steps` (or in
    /// `plan.rollback` when `rollback`).
    pub index: usize,
    pub rollback: bool,
    /// Whether the plan's point of no return has run (the successor's
    /// `RESET REPLICA ALL`): from here on the successor is the primary.
    pub past_point_of_no_return: bool,
    /// The epoch the fence check before the step returned.
    pub epoch: Option<Epoch>,
}

impl JournalPoint<'_> {
    /// The step about to run.
    pub fn step(&self) -> Option<&Step> {
        let steps = if self.rollback {
            &self.plan.rollback
        } else {
            &self.plan.steps
        };
        steps.get(self.index)
    }
}

/// Where the executor records an operation's progress before each step
/// that changes something, after the fence check (the operator writes it
/// to the cluster's status). A failure stops the operation at that step
/// boundary, as a lost leadership does ([`Outcome::Deposed`]): what it
/// did so far is unknown to the next owner unless the journal says it.
pub trait Journal: Send + Sync {
    fn record<'a>(
        &'a self,
        point: JournalPoint<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// Which steps of a plan a run of steps is, for the journal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Journaled {
    Steps,
    Rollback,
    /// Steps taken apart from the plan ([`Executor::run_each`]): not
    /// journaled.
    No,
}

/// How long a step may take to change what it changes, which the term
/// must outlast: reaching the server (a session may have to be opened)
/// and its statement, for every step on a server; zero for a hook, which
/// only needs the leadership when it starts (orca cannot bound a hook by
/// the term: a Job hook may run for minutes) and for a step that changes
/// nothing. A step that waits after its change ([`Step::ApplyRelayNow`])
/// counts its change, not its wait, which changes nothing more.
pub fn fence_budget(step: &Step, timeouts: Timeouts) -> Duration {
    match step {
        Step::RunHooks { .. } => Duration::ZERO,
        s if s.mutates() => timeouts.connect + timeouts.query,
        _ => Duration::ZERO,
    }
}

/// What the executor does with an answer of the fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceVerdict {
    /// The leader, with a term long enough: take the step.
    Go(Epoch),
    /// The leader, with a term too short for the step: wait for a renew,
    /// at most this long (until the term ends).
    Wait(Duration),
    /// Not the leader: stop here.
    Stop(String),
}

/// The fence's answer as a verdict.
pub fn fence_verdict(answer: Result<Epoch, NotLeader>) -> FenceVerdict {
    match answer {
        Ok(epoch) => FenceVerdict::Go(epoch),
        Err(NotLeader::TooShort { remaining, .. }) => FenceVerdict::Wait(remaining),
        Err(e) => FenceVerdict::Stop(e.to_string()),
    }
}

/// The record of one operation: what was planned, each step, the outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl OperationRecord {
    /// The successor once a step of the operation made it writable: the
    /// primary from then on, whatever a later step did (that step is past
    /// the point of no return, and the former primary was fenced).
    pub fn writable_successor(&self) -> Option<&InstanceKey> {
        let successor = self.successor.as_ref()?;
        self.steps
            .iter()
            .any(|r| r.outcome == StepOutcome::Done && r.step.makes_writable() == Some(successor))
            .then_some(successor)
    }
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

/// How long a stopping IO thread must have been signalled (the stopping
/// statement in state [`STOP_SIGNALLED`]) before its stop goes on in the
/// background: the event it was queueing when signalled, if any, is then
/// in the relay log.
const DETACH_AFTER: Duration = Duration::from_millis(100);

/// The processlist state of a `STOP SLAVE` that has signalled the
/// replication threads (MariaDB).
const STOP_SIGNALLED: &str = "Killing slave";

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

/// Where `steps[index]` stopped an executor that is not the leader.
fn stopped_at(steps: &[Step], index: usize, rollback: bool, reason: String) -> Stopped {
    Stopped {
        index,
        rollback,
        step: steps.get(index).map(|s| s.to_string()).unwrap_or_default(),
        reason,
    }
}

/// Whether the rollback runs after the plan's steps ended so: after a
/// failure before the point of no return, and never when this replica
/// is not the leader any more (the new one decides).
fn runs_rollback(plan: &Plan, ending: &Ending) -> bool {
    ending.deposed.is_none()
        && ending
            .first_error
            .as_ref()
            .is_some_and(|(i, _)| *i < plan.point_of_no_return)
}

/// The outcome of `plan` whose steps ended as `steps` and whose rollback,
/// if it ran, as `rollback`.
fn outcome_of(plan: &Plan, steps: Ending, rollback: Option<Ending>) -> Outcome {
    if let Some((index, reason)) = steps.deposed {
        return Outcome::Deposed(stopped_at(&plan.steps, index, false, reason));
    }
    let Some((i, e)) = steps.first_error else {
        return Outcome::Succeeded;
    };
    if let Some((index, reason)) = rollback.and_then(|r| r.deposed) {
        let reason = format!("{reason} (rolling back after step {} failed: {e})", i + 1);
        return Outcome::Deposed(stopped_at(&plan.rollback, index, true, reason));
    }
    if matches!(plan.steps.get(i), Some(Step::RunHooks { event }) if event.may_veto()) {
        Outcome::Vetoed(e)
    } else if i < plan.point_of_no_return {
        Outcome::RolledBack(format!("step {} failed: {e}", i + 1))
    } else {
        Outcome::Failed(format!("step {} failed: {e}", i + 1))
    }
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
    /// The leadership checked before every step that changes something;
    /// `None` without leader election (orca standalone, a one-shot
    /// command), where every step is taken and no epoch is recorded.
    pub fence: Option<std::sync::Arc<dyn LeaderFence>>,
    /// Told before every step that changes something, after the fence
    /// check; `None` journals nothing.
    pub journal: Option<std::sync::Arc<dyn Journal>>,
    /// IO-thread stops that go on after their step (shared by clones).
    pub background: Background,
}

/// How a step ended, before it is recorded.
enum Ran {
    Done,
    Skipped(String),
    Failed(String),
    /// A newer epoch is recorded on the server: another replica of orca
    /// leads now.
    NewerEpoch(String),
}

impl From<Result<(), String>> for Ran {
    fn from(r: Result<(), String>) -> Ran {
        match r {
            Ok(()) => Ran::Done,
            Err(e) => Ran::Failed(e),
        }
    }
}

/// How a run of steps ended.
#[derive(Default)]
struct Ending {
    /// The first step that failed, and why.
    first_error: Option<(usize, String)>,
    /// The step at which the leadership was found lost, and why.
    deposed: Option<(usize, String)>,
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

    /// The session of `key` (opened if need be), each statement bounded
    /// by `limit`.
    async fn session<'s>(
        &'s mut self,
        key: &'s InstanceKey,
        limit: Duration,
    ) -> Result<Session<'s>, MysqlError> {
        let (conn, dialect) = self.get(key).await?;
        Ok(Session {
            conn,
            key,
            dialect,
            limit,
        })
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
    /// `e` as text, without the passwords orca uses.
    fn redacted(&self, e: &impl std::fmt::Display) -> String {
        let secrets = [self.config.repl.password(), self.config.admin.password()];
        crate::mysql::conn::redact(&e.to_string(), &secrets)
    }

    pub fn new(config: ExecutorConfig, hooks: Hooks) -> Self {
        Executor {
            config,
            hooks,
            write_locks: WriteLocks::default(),
            fence: None,
            journal: None,
            background: Background::default(),
        }
    }

    /// Tells `journal` of every step that changes something, before it
    /// runs; `None` journals nothing.
    pub fn set_journal(&mut self, journal: Option<std::sync::Arc<dyn Journal>>) {
        self.journal = journal;
    }

    /// The journal before `steps[index]` of `run`, when the step changes
    /// something: `Err(why)` stops the operation there.
    async fn journal(
        &self,
        run: &Run<'_>,
        which: Journaled,
        steps: &[Step],
        index: usize,
        epoch: Option<Epoch>,
    ) -> Result<(), String> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let rollback = match which {
            Journaled::Steps => false,
            Journaled::Rollback => true,
            Journaled::No => return Ok(()),
        };
        if !steps.get(index).is_some_and(Step::mutates) {
            return Ok(());
        }
        let past = !rollback && index > run.plan.point_of_no_return;
        journal
            .record(JournalPoint {
                meta: run.meta,
                plan: run.plan,
                index,
                rollback,
                past_point_of_no_return: past,
                epoch,
            })
            .await
            .map_err(|e| format!("the operation's journal could not be written: {e}"))
    }

    /// Checks the leadership of `fence` (the operator's) before every step
    /// that changes something; `None` takes every step.
    pub fn set_fence(&mut self, fence: Option<crate::ha::Fence>) {
        self.fence = fence.map(|f| std::sync::Arc::new(f) as std::sync::Arc<dyn LeaderFence>);
    }

    /// The fence check before `step`: `Ok(None)` without leader election
    /// or for a step that changes nothing, `Ok(Some(epoch))` when this
    /// replica leads for the step's budget (waiting, within the term, for
    /// a renew when the term left is too short), `Err(why)` when it does
    /// not.
    async fn admit(&self, step: &Step) -> Result<Option<Epoch>, String> {
        let Some(fence) = &self.fence else {
            return Ok(None);
        };
        if !step.mutates() {
            return Ok(None);
        }
        let needed = fence_budget(step, self.config.timeouts);
        let mut deadline: Option<Instant> = None;
        loop {
            let answer = fence.check(needed);
            match fence_verdict(answer.clone()) {
                FenceVerdict::Go(epoch) => return Ok(Some(epoch)),
                FenceVerdict::Stop(why) => return Err(why),
                FenceVerdict::Wait(remaining) => {
                    let until = *deadline.get_or_insert_with(|| Instant::now() + remaining);
                    let now = Instant::now();
                    if now >= until {
                        return Err(answer.err().map(|e| e.to_string()).unwrap_or_default());
                    }
                    tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
                }
            }
        }
    }

    /// The fence check before hooks outside a plan (failure detected,
    /// failed failover): a replica that is not the leader runs none.
    fn hooks_admitted(&self, event: HookEvent) -> Result<(), String> {
        match &self.fence {
            Some(fence) => fence
                .check(Duration::ZERO)
                .map(|_| ())
                .map_err(|e| format!("{} hooks not run: {e}", event.name())),
            None => Ok(()),
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
        if let Err(e) = self.hooks_admitted(event) {
            return vec![e];
        }
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
        epoch: Option<Epoch>,
    ) -> Ran {
        if let Some(on) = step.target()
            && let Some(detour) = self.background.detour(on)
            && let Some(ran) = self.beside_a_stop(sessions, plan, step, on, detour).await
        {
            return ran;
        }
        if let Step::SettleReplica { .. } = step {
            return Ran::Skipped("no IO thread stops in the background here".into());
        }
        if let Step::RecordEpoch { on } = step {
            return self.record_epoch(sessions, on, epoch).await;
        }
        self.take_step(sessions, plan, meta, step).await.into()
    }

    /// A step on `on`, whose IO thread still stops in the background
    /// (see [`Background`]): `Some` when it is taken here, `None` when it
    /// runs as usual (first after the stop has ended and `on` replicates
    /// through its default connection again, unless it needs neither).
    async fn beside_a_stop(
        &self,
        sessions: &mut Sessions<'_>,
        plan: &Plan,
        step: &Step,
        on: &InstanceKey,
        detour: Detour,
    ) -> Option<Ran> {
        let redact = |e: MysqlError| self.redacted(&e);
        let limit = self.config.timeouts.query;
        match (step, &detour) {
            // Reads, and what a new primary needs before it takes writes:
            // its default connection receives nothing any more.
            (
                Step::RunHooks { .. }
                | Step::WaitRelayApplied { .. }
                | Step::WaitReceivedApplied { .. }
                | Step::WaitCaughtUp { .. }
                | Step::RecordEpoch { .. }
                | Step::SetSemiSyncPrimary { .. }
                | Step::SetReadOnly { .. }
                | Step::KillClientConnections { .. }
                | Step::LockWrites { .. }
                | Step::UnlockWrites { .. },
                _,
            ) => None,
            // A replica to repoint that has applied all it received goes
            // through the second connection instead of waiting.
            (Step::StopReplica { .. }, Detour::No) if plan.successor.as_ref() != Some(on) => {
                let ready = async {
                    let mut s = sessions.session(on, limit).await?;
                    if s.dialect.flavor != Flavor::MariaDb {
                        return Ok(false);
                    }
                    s.relay_applied().await
                }
                .await;
                match ready {
                    Ok(true) => {
                        self.background.set_detour(on, Detour::Wanted);
                        Some(Ran::Skipped(
                            "its IO thread still stops in the background (its source hangs) and it has applied all it received: it replicates through a second connection until the stop ends".into(),
                        ))
                    }
                    Ok(false) => self.settle(sessions, on).await.err().map(Ran::Failed),
                    Err(e) => {
                        sessions.forget(on);
                        Some(Ran::Failed(redact(e)))
                    }
                }
            }
            (
                Step::ChangeSource {
                    source,
                    position: SourcePosition::Gtid,
                    ..
                },
                Detour::Wanted,
            ) => {
                let started = async {
                    let mut s = sessions.session(on, limit).await?;
                    s.start_detour(source, &self.config.repl).await
                }
                .await;
                Some(match started {
                    Ok(()) => {
                        self.background
                            .set_detour(on, Detour::Through(source.clone()));
                        tracing::info!(instance = %on, source = %source, "replicating through the second connection while the IO thread's stop ends");
                        Ran::Done
                    }
                    Err(e) => {
                        sessions.forget(on);
                        Ran::Failed(redact(e))
                    }
                })
            }
            (Step::StartReplica { .. }, Detour::Through(_)) => Some(Ran::Skipped(
                "it replicates through the second connection already".into(),
            )),
            (Step::SettleReplica { .. }, _) => Some(match self.settle(sessions, on).await {
                Ok(()) => Ran::Done,
                Err(e) => Ran::Failed(e),
            }),
            _ => self.settle(sessions, on).await.err().map(Ran::Failed),
        }
    }

    /// Waits for the background stop of `on` to end, then moves its
    /// replication back to the default connection if it went through the
    /// second one.
    async fn settle(&self, sessions: &mut Sessions<'_>, on: &InstanceKey) -> Result<(), String> {
        let t = self.config.timeouts;
        if let Some(stop) = self.background.take_stop(on) {
            // The stop's own statement is bounded by the query limit.
            let ended = tokio::time::timeout(t.query + t.connect + Duration::from_secs(2), stop)
                .await
                .map_err(|_| "the IO thread's stop did not end in time".to_string())
                .and_then(|joined| joined.map_err(|e| format!("the IO thread's stop: {e}")))
                .and_then(|r| r.map_err(|e| self.redacted(&e)));
            if let Err(e) = ended {
                let through = match self.background.remove(on) {
                    Some(Detour::Through(s)) => {
                        format!(
                            "; it replicates from {s} through the second connection '{}'",
                            crate::mysql::dialect::DETOUR
                        )
                    }
                    _ => String::new(),
                };
                return Err(format!("{e}{through}"));
            }
        }
        let Some(Detour::Through(source)) = self.background.remove(on) else {
            return Ok(());
        };
        let folded = async {
            let mut s = sessions.session(on, t.query).await?;
            s.fold_detour(&source, &self.config.repl).await
        }
        .await;
        folded.map_err(|e| {
            sessions.forget(on);
            self.redacted(&e)
        })
    }

    /// Stops the IO thread of `s`'s instance. On MariaDB the statement
    /// runs on a connection of its own: when it has not ended after a
    /// moment but the server shows it signalling the thread (`Killing
    /// slave`), the thread receives nothing more and the stop goes on in
    /// the background ([`Background`]).
    async fn stop_replica_io(&self, s: &mut Session<'_>) -> Result<(), MysqlError> {
        if s.dialect.flavor != Flavor::MariaDb {
            return s.stop_replica_io().await;
        }
        s.prepare_io_stop().await?;
        let t = self.config.timeouts;
        let mut stopper = connect(s.key, &self.config.admin, t).await?;
        let id = stopper.id();
        let key = s.key.clone();
        let sql = s.dialect.stop_io_thread();
        let mut stop = tokio::spawn(async move {
            let r = exec(&mut stopper, &key, t.query, "stopping the IO thread", &sql).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), stopper.disconnect()).await;
            r
        });
        let mut signalled: Option<Instant> = None;
        loop {
            if let Ok(joined) = tokio::time::timeout(Duration::from_millis(20), &mut stop).await {
                return joined.map_err(|e| MysqlError::Answer {
                    key: s.key.clone(),
                    what: "stopping the IO thread",
                    detail: e.to_string(),
                })?;
            }
            match signalled {
                Some(at) if at.elapsed() >= DETACH_AFTER => {
                    tracing::info!(instance = %s.key, "the IO thread receives nothing more; its stop goes on in the background");
                    self.background.insert(s.key, stop);
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    let state = s.connection_state(id).await?;
                    if state.is_some_and(|st| st.eq_ignore_ascii_case(STOP_SIGNALLED)) {
                        signalled = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Records `epoch` on `on` (see [`Step::RecordEpoch`]).
    async fn record_epoch(
        &self,
        sessions: &mut Sessions<'_>,
        on: &InstanceKey,
        epoch: Option<Epoch>,
    ) -> Ran {
        let Some(epoch) = epoch else {
            return Ran::Skipped("no leader election: no epoch to record".into());
        };
        let limit = self.config.timeouts.query;
        // An instance about to be writable holds no write lock (it would
        // block the write).
        if let Err(e) = self.write_locks.release(on, false, limit).await {
            return Ran::Failed(e.to_string());
        }
        let recorded = async {
            let (conn, dialect) = sessions.get(on).await?;
            // MySQL's super_read_only refuses even orca's account; read_only
            // stays on, so no client writes until the step that clears it.
            if dialect.flavor == Flavor::MySql {
                exec(
                    conn,
                    on,
                    limit,
                    "clearing super_read_only",
                    "SET GLOBAL super_read_only = OFF",
                )
                .await?;
            }
            crate::ha::record_epoch(conn, on, limit, epoch).await
        }
        .await;
        let redact = |e: &HaError| self.redacted(e);
        match recorded {
            Ok(()) => Ran::Done,
            Err(e) => {
                sessions.forget(on);
                if e.is_stale_epoch() {
                    Ran::NewerEpoch(redact(&e))
                } else {
                    Ran::Failed(redact(&e))
                }
            }
        }
    }

    async fn take_step(
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
                let mut s = sessions
                    .session(of, limit)
                    .await
                    .map_err(|e| e.to_string())?;
                Some(s.executed_gtids().await.map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let limit = self.config.timeouts.query;
        match step {
            Step::LockWrites { .. } => return self.lock_writes(sessions, &on).await,
            Step::EnsureReplicationAccount { .. } | Step::EnsureAppAccount { .. } => {
                return self.ensure_account(sessions, &on, step).await;
            }
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
                Step::StopReplicaIo { .. } => self.stop_replica_io(&mut s).await,
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
                Step::LockWrites { .. }
                | Step::UnlockWrites { .. }
                | Step::RecordEpoch { .. }
                | Step::EnsureReplicationAccount { .. }
                | Step::EnsureAppAccount { .. } => Ok(()),
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
                Step::ChangeSource {
                    source,
                    position: SourcePosition::Copied { gtid },
                    ..
                } => {
                    s.change_source_copied(source, &self.config.repl, gtid)
                        .await
                }
                Step::StartReplica { .. } => s.start_replica().await,
                Step::ResetBinaryLogs { .. } => s.reset_binary_logs().await,
                Step::InjectEmptyTransactions { gtids, .. } => {
                    s.inject_empty_transactions(gtids, crate::plan::instance::MAX_INJECTED_GTIDS)
                        .await
                }
                Step::WaitReplicating { timeout, .. } => s.wait_replicating(*timeout).await,
                // Taken before (see `run_step`).
                Step::SettleReplica { .. } => Ok(()),
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
        result.map_err(|e| self.redacted(&e))
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
            let mut s = sessions.session(on, limit).await?;
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
                Err(self.redacted(&e))
            }
        }
    }

    /// Makes the account of `step` ([`Step::EnsureReplicationAccount`],
    /// [`Step::EnsureAppAccount`]) on `on`, with the credentials of the
    /// configuration; its errors never show a password.
    async fn ensure_account(
        &self,
        sessions: &mut Sessions<'_>,
        on: &InstanceKey,
        step: &Step,
    ) -> Result<(), String> {
        let (what, creds, databases) = match step {
            Step::EnsureReplicationAccount { .. } => (
                "making the replication account",
                Some(&self.config.repl),
                None,
            ),
            Step::EnsureAppAccount { databases, .. } => (
                "making the application account",
                self.config.app.as_ref(),
                Some(databases),
            ),
            _ => return Ok(()),
        };
        let Some(creds) = creds else {
            return Err("no application account is configured".into());
        };
        let limit = self.config.timeouts.query;
        let made = async {
            let (conn, dialect) = sessions.get(on).await?;
            let statements = match databases {
                None => dialect.replication_account(creds),
                Some(dbs) => {
                    dialect
                        .app_account(creds, dbs)
                        .map_err(|detail| MysqlError::Answer {
                            key: on.clone(),
                            what,
                            detail,
                        })?
                }
            };
            let mut s = Session {
                conn,
                key: on,
                dialect,
                limit,
            };
            s.ensure_account(what, &statements).await
        }
        .await;
        if made.is_err() {
            sessions.forget(on);
        }
        made.map_err(|e| {
            let secrets = self.account_secrets();
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            crate::mysql::conn::redact(&e.to_string(), &secrets)
        })
    }

    /// Every password of the configuration, as given and as a statement
    /// quotes it.
    fn account_secrets(&self) -> Vec<String> {
        let mut out = vec![self.config.admin.password().to_string()];
        for c in std::iter::once(&self.config.repl).chain(self.config.app.as_ref()) {
            let quoted = crate::mysql::dialect::quote(c.password());
            out.push(c.password().to_string());
            out.push(quoted[1..quoted.len() - 1].to_string());
        }
        out.retain(|s| !s.is_empty());
        out
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
        which: Journaled,
    ) -> Ending {
        let Run { plan, meta, t0 } = *run;
        let mut ending = Ending::default();
        let mut i = 0;
        while i < steps.len() {
            // Fencing steps on different replicas run side by side: a hung
            // source makes each of them slow, and they do not depend on
            // each other.
            let group = parallel_group(&steps[i..]);
            // The leadership right before the step (a group's steps are
            // all of one kind, so one check covers them): a replica that
            // lost it stops at this boundary, whatever `stop_on_error`.
            let epoch = match self.admit(&steps[i]).await {
                Ok(epoch) => epoch,
                Err(why) => {
                    tracing::warn!(
                        cluster = %meta.cluster,
                        operation = %meta.id,
                        step = i + 1,
                        reason = %why,
                        "not the leader any more: the operation stops before \"{}\"",
                        steps[i]
                    );
                    ending.deposed = Some((i, why));
                    break;
                }
            };
            // The journal before the step (one write for a group): not
            // written, the operation stops here as a deposed one does.
            if let Err(why) = self.journal(run, which, steps, i, epoch).await {
                tracing::warn!(
                    cluster = %meta.cluster,
                    operation = %meta.id,
                    step = i + 1,
                    reason = %why,
                    "the operation stops before \"{}\"",
                    steps[i]
                );
                ending.deposed = Some((i, why));
                break;
            }
            let started = t0.elapsed();
            let results: Vec<Ran> = if group > 1 {
                futures::future::join_all(steps[i..i + group].iter().map(|step| async move {
                    let mut own = Sessions {
                        config: &self.config,
                        open: BTreeMap::new(),
                    };
                    let r = self.run_step(&mut own, plan, meta, step, epoch).await;
                    own.close().await;
                    r
                }))
                .await
            } else {
                vec![self.run_step(sessions, plan, meta, &steps[i], epoch).await]
            };
            let duration = t0.elapsed() - started;
            let mut stop = false;
            for (j, r) in results.into_iter().enumerate() {
                let index = i + j;
                let step = &steps[index];
                let outcome = match &r {
                    Ran::Done => StepOutcome::Done,
                    Ran::Skipped(why) => StepOutcome::Skipped(why.clone()),
                    Ran::Failed(e) | Ran::NewerEpoch(e) => StepOutcome::Failed(e.clone()),
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
                match r {
                    Ran::Done | Ran::Skipped(_) => {}
                    Ran::Failed(e) => {
                        ending.first_error.get_or_insert((index, e));
                        stop = stop || stop_on_error;
                    }
                    Ran::NewerEpoch(e) => {
                        ending.deposed.get_or_insert((index, e));
                        stop = true;
                    }
                }
            }
            if stop {
                break;
            }
            i += group;
        }
        ending
    }

    /// Runs `steps` of `plan` one group after the other, each whatever
    /// the others did: no rollback, no hooks of a failed failover. For
    /// steps whose failure is reported but undoes nothing (relay log
    /// waits of a fence). Stops only where this replica turns out not to
    /// be the leader any more, and says where.
    pub async fn run_each(
        &self,
        plan: &Plan,
        meta: &OperationMeta,
        steps: &[Step],
    ) -> (Vec<StepRecord>, Option<Stopped>) {
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
        let ending = self
            .run_steps(
                &mut sessions,
                &run,
                steps,
                &mut records,
                false,
                Journaled::No,
            )
            .await;
        sessions.close().await;
        let stopped = ending
            .deposed
            .map(|(index, reason)| stopped_at(steps, index, false, reason));
        (records, stopped)
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
        let ending = self
            .run_steps(
                &mut sessions,
                &run,
                &plan.steps,
                &mut steps,
                true,
                Journaled::Steps,
            )
            .await;
        let undone = if runs_rollback(plan, &ending) {
            Some(
                self.run_steps(
                    &mut sessions,
                    &run,
                    &plan.rollback,
                    &mut rollback,
                    false,
                    Journaled::Rollback,
                )
                .await,
            )
        } else {
            None
        };
        let outcome = outcome_of(plan, ending, undone);
        sessions.close().await;
        let failover = matches!(
            plan.kind,
            PlanKind::RecoverDeadPrimary
                | PlanKind::RecoverDeadIntermediatePrimary
                | PlanKind::ForceFailover
                | PlanKind::ForceTakeover
        );
        // A deposed replica runs no hook: the new leader reports.
        if failover && matches!(outcome, Outcome::Failed(_) | Outcome::RolledBack(_)) {
            let err = match &outcome {
                Outcome::Failed(e) | Outcome::RolledBack(e) => Some(e.clone()),
                _ => None,
            };
            match self.hooks_admitted(HookEvent::FailedFailover) {
                Ok(()) => {
                    let payload = self.payload(plan, meta, HookEvent::FailedFailover, err);
                    hook_errors.extend(
                        self.hooks
                            .run(&payload)
                            .await
                            .into_iter()
                            .map(|e| e.to_string()),
                    );
                }
                Err(e) => hook_errors.push(e),
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::engine::hooks::HookTarget;

    fn key(h: &str) -> InstanceKey {
        InstanceKey::new(h, 3306)
    }

    #[test]
    fn the_successor_is_the_primary_once_made_writable() {
        let step = |step: Step, outcome: StepOutcome| StepRecord {
            index: 0,
            description: step.to_string(),
            step,
            started_ms: 0,
            duration_ms: 0,
            outcome,
        };
        let writable = |on: &str| Step::SetReadOnly {
            on: key(on),
            read_only: false,
        };
        let failed = || StepOutcome::Failed("e".into());
        let repoint_failed = step(Step::StartReplica { on: key("r2") }, failed());
        let table: Vec<(&str, Vec<StepRecord>, Option<&str>)> = vec![
            ("nothing ran", vec![], None),
            (
                "made writable, a later step failed",
                vec![
                    step(writable("r1"), StepOutcome::Done),
                    repoint_failed.clone(),
                ],
                Some("r1"),
            ),
            (
                "making it writable failed",
                vec![step(writable("r1"), failed())],
                None,
            ),
            (
                "another instance made writable",
                vec![step(writable("r2"), StepOutcome::Done), repoint_failed],
                None,
            ),
            (
                "read only set, not cleared",
                vec![step(
                    Step::SetReadOnly {
                        on: key("r1"),
                        read_only: true,
                    },
                    StepOutcome::Done,
                )],
                None,
            ),
        ];
        for (what, steps, want) in table {
            let record = OperationRecord {
                id: "x".into(),
                cluster: "c".into(),
                kind: PlanKind::RecoverDeadPrimary,
                trigger: "t".into(),
                failed: Some(key("p")),
                successor: Some(key("r1")),
                lost_replicas: vec![],
                lost_transactions: None,
                notes: vec![],
                started_at: 0,
                duration_ms: 0,
                steps,
                rollback: vec![],
                hook_errors: vec![],
                outcome: Outcome::Failed("e".into()),
            };
            assert_eq!(
                record.writable_successor(),
                want.map(key).as_ref(),
                "{what}"
            );
            let none = OperationRecord {
                successor: None,
                ..record
            };
            assert_eq!(none.writable_successor(), None, "{what}: no successor");
        }
    }

    /// The leader for `valid` checks, then a follower.
    struct Checks {
        valid: usize,
        asked: AtomicUsize,
        budgets: std::sync::Mutex<Vec<Duration>>,
    }

    impl Checks {
        fn new(valid: usize) -> Arc<Checks> {
            Arc::new(Checks {
                valid,
                asked: AtomicUsize::new(0),
                budgets: Default::default(),
            })
        }
    }

    impl LeaderFence for Checks {
        fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
            if let Ok(mut b) = self.budgets.lock() {
                b.push(needed);
            }
            if self.asked.fetch_add(1, Ordering::SeqCst) < self.valid {
                Ok(Epoch(4))
            } else {
                Err(NotLeader::Follower {
                    holder: Some("orca-1".into()),
                })
            }
        }
    }

    #[test]
    fn budgets_cover_what_a_step_changes() {
        let t = Timeouts {
            connect: Duration::from_secs(2),
            query: Duration::from_secs(3),
        };
        let five = Duration::from_secs(5);
        let long = Duration::from_secs(300);
        let table: Vec<(Step, Duration)> = vec![
            (
                Step::RunHooks {
                    event: HookEvent::PreFailover,
                },
                Duration::ZERO,
            ),
            (Step::StopReplica { on: key("a") }, five),
            (
                Step::SetReadOnly {
                    on: key("a"),
                    read_only: false,
                },
                five,
            ),
            (Step::RecordEpoch { on: key("a") }, five),
            (Step::LockWrites { on: key("a") }, five),
            // its change, not its wait
            (
                Step::ApplyRelayNow {
                    on: key("a"),
                    timeout: long,
                },
                five,
            ),
            (
                Step::WaitCaughtUp {
                    on: key("a"),
                    of: key("b"),
                    timeout: long,
                },
                Duration::ZERO,
            ),
        ];
        for (step, want) in table {
            assert_eq!(fence_budget(&step, t), want, "{step}");
        }
    }

    #[test]
    fn fence_answers_as_verdicts() {
        let s = Duration::from_secs;
        assert_eq!(fence_verdict(Ok(Epoch(3))), FenceVerdict::Go(Epoch(3)));
        assert_eq!(
            fence_verdict(Err(NotLeader::TooShort {
                epoch: 3,
                remaining: s(2),
                needed: s(5)
            })),
            FenceVerdict::Wait(s(2))
        );
        for (e, text) in [
            (
                NotLeader::Follower {
                    holder: Some("b".into()),
                },
                "not the leader (the lease is held by b)",
            ),
            (
                NotLeader::Expired { epoch: 3 },
                "the term of epoch 3 has ended without a renew",
            ),
            (NotLeader::Stopped, "leader election has stopped"),
        ] {
            assert_eq!(fence_verdict(Err(e)), FenceVerdict::Stop(text.into()));
        }
    }

    fn plan() -> Plan {
        let mut p = Plan::new(PlanKind::GracefulTakeover);
        p.steps = vec![
            Step::RunHooks {
                event: HookEvent::PreGracefulTakeover,
            },
            Step::SetReadOnly {
                on: key("p"),
                read_only: true,
            },
            Step::StopReplica { on: key("r") },
            Step::ResetReplicaAll { on: key("r") },
            Step::RecordEpoch { on: key("r") },
        ];
        p.point_of_no_return = 3;
        p.rollback = vec![Step::SetReadOnly {
            on: key("p"),
            read_only: false,
        }];
        p
    }

    fn ending(first_error: Option<usize>, deposed: Option<usize>) -> Ending {
        Ending {
            first_error: first_error.map(|i| (i, "boom".into())),
            deposed: deposed.map(|i| (i, "not the leader".into())),
        }
    }

    #[test]
    fn outcomes_and_rollbacks() {
        let p = plan();
        let stopped = |index: usize, rollback: bool, reason: &str| {
            let steps = if rollback { &p.rollback } else { &p.steps };
            Outcome::Deposed(Stopped {
                index,
                rollback,
                step: steps[index].to_string(),
                reason: reason.into(),
            })
        };
        // (name, steps' ending, rollback's ending, rollback runs, outcome)
        let cases: Vec<(&str, Ending, Option<Ending>, bool, Outcome)> = vec![
            (
                "all done",
                ending(None, None),
                None,
                false,
                Outcome::Succeeded,
            ),
            (
                "a veto",
                ending(Some(0), None),
                Some(ending(None, None)),
                true,
                Outcome::Vetoed("boom".into()),
            ),
            (
                "a failure before the point of no return",
                ending(Some(2), None),
                Some(ending(None, None)),
                true,
                Outcome::RolledBack("step 3 failed: boom".into()),
            ),
            (
                "a failure after it",
                ending(Some(3), None),
                None,
                false,
                Outcome::Failed("step 4 failed: boom".into()),
            ),
            (
                "deposed before the point of no return: no rollback",
                ending(None, Some(1)),
                None,
                false,
                stopped(1, false, "not the leader"),
            ),
            (
                "deposed after it",
                ending(None, Some(4)),
                None,
                false,
                stopped(4, false, "not the leader"),
            ),
            (
                "deposed while rolling back",
                ending(Some(2), None),
                Some(ending(None, Some(0))),
                true,
                stopped(
                    0,
                    true,
                    "not the leader (rolling back after step 3 failed: boom)",
                ),
            ),
        ];
        for (name, steps, rollback, runs, want) in cases {
            assert_eq!(runs_rollback(&p, &steps), runs, "{name}");
            assert_eq!(outcome_of(&p, steps, rollback), want, "{name}");
        }
    }

    #[test]
    fn a_later_phase_counts_from_the_earlier_steps() {
        let s = |rollback| Stopped {
            index: 1,
            rollback,
            step: "x".into(),
            reason: "y".into(),
        };
        assert_eq!(
            Outcome::Deposed(s(false)).after_steps(5),
            Outcome::Deposed(Stopped {
                index: 6,
                ..s(false)
            })
        );
        assert_eq!(
            Outcome::Deposed(s(true)).after_steps(5),
            Outcome::Deposed(s(true))
        );
        assert_eq!(Outcome::Succeeded.after_steps(5), Outcome::Succeeded);
        assert_eq!(
            s(false).to_string(),
            "stopped at step 2 (x): y",
            "people read the step number from 1"
        );
        assert_eq!(s(true).to_string(), "stopped at rollback step 2 (x): y");
        assert_eq!(
            serde_json::to_value(Outcome::Deposed(s(false))).unwrap(),
            serde_json::json!({
                "result": "deposed",
                "detail": {"index": 1, "rollback": false, "step": "x", "reason": "y"}
            })
        );
    }

    /// Hooks change nothing on a server, so a plan of hooks runs without
    /// one: the first hook runs, the fence then refuses the second, which
    /// does not run, nor does anything after it.
    #[tokio::test]
    async fn a_deposed_executor_stops_at_the_next_step() {
        let dir = std::env::temp_dir().join(format!("orca-deposed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut hooks = Hooks::default();
        for (event, file) in [
            (HookEvent::PreFailover, "pre"),
            (HookEvent::PostFailover, "post"),
            (HookEvent::FailedFailover, "failed"),
        ] {
            hooks.add(
                event,
                HookTarget::Command {
                    command: format!("touch {}", dir.join(file).display()),
                    timeout: Duration::from_secs(5),
                },
            );
        }
        let config = ExecutorConfig {
            admin: Credentials::new("root", ""),
            repl: Credentials::new("repl", ""),
            app: None,
            timeouts: Timeouts::default(),
        };
        let mut e = Executor::new(config, hooks);
        let checks = Checks::new(1);
        e.fence = Some(checks.clone());
        let mut p = Plan::new(PlanKind::ForceFailover);
        p.steps = vec![
            Step::RunHooks {
                event: HookEvent::PreFailover,
            },
            Step::RunHooks {
                event: HookEvent::PostFailover,
            },
        ];
        p.point_of_no_return = 2;
        p.rollback = vec![Step::RunHooks {
            event: HookEvent::FailedFailover,
        }];
        let meta = OperationMeta {
            id: "op".into(),
            cluster: "c".into(),
            trigger: "test".into(),
        };
        let record = e.execute(&p, &meta).await;
        assert_eq!(
            record.outcome,
            Outcome::Deposed(Stopped {
                index: 1,
                rollback: false,
                step: "run postFailover hooks".into(),
                reason: "not the leader (the lease is held by orca-1)".into(),
            })
        );
        assert_eq!(record.steps.len(), 1, "{record:#?}");
        assert_eq!(record.steps[0].outcome, StepOutcome::Done);
        assert!(record.rollback.is_empty(), "no rollback: {record:#?}");
        assert!(dir.join("pre").exists());
        assert!(!dir.join("post").exists(), "the refused step did not run");
        assert!(!dir.join("failed").exists(), "no failed-failover hook");
        // One check per step that changes something, hooks with no budget.
        assert_eq!(checks.asked.load(Ordering::SeqCst), 2);
        assert_eq!(
            *checks.budgets.lock().unwrap(),
            vec![Duration::ZERO, Duration::ZERO]
        );
        // Hooks outside a plan ask too.
        let errors = e.run_hooks(&p, &meta, HookEvent::FailureDetected).await;
        assert_eq!(
            errors,
            vec!["failureDetected hooks not run: not the leader (the lease is held by orca-1)"]
        );
        // Without a fence the same plan runs to its end.
        e.fence = None;
        let record = e.execute(&p, &meta).await;
        assert_eq!(record.outcome, Outcome::Succeeded);
        assert!(dir.join("post").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A term too short for a step is waited on, within the term: a renew
    /// that comes lets the step go; none stops it when the term ends.
    #[tokio::test]
    async fn a_short_term_waits_for_a_renew_within_the_term() {
        struct Renewing {
            asked: AtomicUsize,
            renew_after: usize,
        }
        impl LeaderFence for Renewing {
            fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
                if self.asked.fetch_add(1, Ordering::SeqCst) < self.renew_after {
                    Err(NotLeader::TooShort {
                        epoch: 2,
                        remaining: Duration::from_millis(300),
                        needed,
                    })
                } else {
                    Ok(Epoch(2))
                }
            }
        }
        let config = ExecutorConfig {
            admin: Credentials::new("root", ""),
            repl: Credentials::new("repl", ""),
            app: None,
            timeouts: Timeouts::default(),
        };
        let step = Step::StopReplica { on: key("a") };
        let mut e = Executor::new(config, Hooks::default());
        e.fence = Some(Arc::new(Renewing {
            asked: AtomicUsize::new(0),
            renew_after: 2,
        }));
        assert_eq!(e.admit(&step).await, Ok(Some(Epoch(2))));
        e.fence = Some(Arc::new(Renewing {
            asked: AtomicUsize::new(0),
            renew_after: usize::MAX,
        }));
        let t = Instant::now();
        let refused = e.admit(&step).await.unwrap_err();
        assert!(
            refused.contains("has 300 ms left, the step needs 5000 ms"),
            "{refused}"
        );
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        // Waits change nothing: no check at all.
        let wait = Step::WaitReplicating {
            on: key("a"),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(e.admit(&wait).await, Ok(None));
    }
}
