//! The vocabulary of plans.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::PlanError;
use super::loss::LostTransactions;
use crate::topology::InstanceKey;

/// Moments at which hooks run. The names are the fields of a
/// FailoverPolicy's `spec.hooks`, the events of `--hook EVENT=...`, and
/// `ORCA_EVENT` of a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookEvent {
    FailureDetected,
    /// May veto: a failing hook stops the recovery.
    PreFailover,
    PostFailover,
    FailedFailover,
    /// May veto.
    PreGracefulTakeover,
    PostGracefulTakeover,
}

impl HookEvent {
    /// Every event, in the order they can happen.
    pub const ALL: [HookEvent; 6] = [
        HookEvent::FailureDetected,
        HookEvent::PreFailover,
        HookEvent::PostFailover,
        HookEvent::FailedFailover,
        HookEvent::PreGracefulTakeover,
        HookEvent::PostGracefulTakeover,
    ];

    /// The camelCase name (`preFailover`), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::FailureDetected => "failureDetected",
            HookEvent::PreFailover => "preFailover",
            HookEvent::PostFailover => "postFailover",
            HookEvent::FailedFailover => "failedFailover",
            HookEvent::PreGracefulTakeover => "preGracefulTakeover",
            HookEvent::PostGracefulTakeover => "postGracefulTakeover",
        }
    }

    /// Whether a failing hook of this event stops the operation.
    pub fn may_veto(self) -> bool {
        matches!(
            self,
            HookEvent::PreFailover | HookEvent::PreGracefulTakeover
        )
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HookEvent {
    type Err = PlanError;

    /// Reads the exact name of an event (`preFailover`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HookEvent::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HookEvent::ALL.iter().map(|e| e.name()).collect();
                PlanError::Invalid(format!("{s:?} is not a hook event ({})", names.join(", ")))
            })
    }
}

/// Where a replica starts reading from its new source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourcePosition {
    /// GTID auto-positioning (MariaDB `slave_pos`, MySQL auto-position).
    Gtid,
    /// GTID positioning from where the replica's own binary log ends
    /// (MariaDB `current_pos`, MySQL auto-position): for a former primary,
    /// whose last transactions are its own writes, not replicated ones.
    OwnBinlog,
    /// GTID positioning from the position a physical copy carries
    /// (MariaDB: `gtid_slave_pos` set to it first, then `slave_pos`; MySQL:
    /// auto-position, the copy's `gtid_executed` being the position).
    Copied { gtid: String },
}

/// One step of a plan. Steps name instances; values only known at run time
/// (such as the final GTID set of a primary just made read only) are read
/// by the executor when it reaches the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Run the hooks of an event; a veto event's failure aborts the plan.
    RunHooks { event: HookEvent },
    /// Stop only the IO thread: the replica stops receiving (a fence: a
    /// lost primary can no longer collect semi-sync acknowledgements). A
    /// SQL thread stopped without an error is started first.
    StopReplicaIo { on: InstanceKey },
    /// Wait until the replica has applied everything it has received.
    WaitRelayApplied {
        on: InstanceKey,
        #[serde(with = "millis")]
        timeout: Duration,
    },
    /// Make a replica that does not apply its relay log by itself (a
    /// configured delay, a stopped SQL thread) apply it now: SQL thread
    /// stopped, delay set to 0 (the relay log kept), SQL thread started,
    /// then wait until it has applied everything it received. The IO
    /// thread is left as it is.
    ApplyRelayNow {
        on: InstanceKey,
        #[serde(with = "millis")]
        timeout: Duration,
    },
    /// Stop both replication threads.
    StopReplica { on: InstanceKey },
    /// Forget every replication setting (`RESET SLAVE ALL` /
    /// `RESET REPLICA ALL`), so nothing stale is left on a new primary.
    ResetReplicaAll { on: InstanceKey },
    /// Set `read_only` (and `super_read_only` on MySQL) on or off.
    SetReadOnly { on: InstanceKey, read_only: bool },
    /// Turn the primary side of semi-sync on or off (a new primary of a
    /// semi-sync cluster must wait for acknowledgements as the old one did:
    /// `wait_count` is the cluster's; MariaDB always waits for one).
    SetSemiSyncPrimary {
        on: InstanceKey,
        enabled: bool,
        #[serde(default = "one")]
        wait_count: u32,
    },
    /// Wait until a candidate has executed everything its IO thread
    /// received, parallel workers included, before it is promoted.
    WaitReceivedApplied {
        on: InstanceKey,
        #[serde(with = "millis")]
        timeout: Duration,
    },
    /// Kill every client connection except replication and orca's own.
    KillClientConnections { on: InstanceKey },
    /// Take a global read lock (`FLUSH TABLES WITH READ LOCK`) on a fenced
    /// former primary and keep it, on a connection orca holds open: no
    /// account can write there, not even those `read_only` lets through
    /// (root, `READ ONLY ADMIN`, `SUPER` on MySQL before `super_read_only`).
    /// The lock goes when the instance has a role again: once it
    /// replicates (after its `StartReplica`, its clients killed first) or
    /// right before it is made writable.
    LockWrites { on: InstanceKey },
    /// Release the write lock of [`Step::LockWrites`] (a fence undone).
    UnlockWrites { on: InstanceKey },
    /// Wait until `on` has executed everything `of` has executed (read
    /// from `of` when the step starts).
    WaitCaughtUp {
        on: InstanceKey,
        of: InstanceKey,
        #[serde(with = "millis")]
        timeout: Duration,
    },
    /// Point `on` at `source`.
    ChangeSource {
        on: InstanceKey,
        source: InstanceKey,
        position: SourcePosition,
    },
    /// Start both replication threads.
    StartReplica { on: InstanceKey },
    /// Wait until `on`'s replication threads both run (bounded).
    WaitReplicating {
        on: InstanceKey,
        #[serde(with = "millis")]
        timeout: Duration,
    },
    /// Record the leader's epoch in `orca_meta.epoch` on an instance about
    /// to be made writable; refused (and the instance left read only)
    /// when a newer epoch is recorded there. Without leader election
    /// (orca standalone, a one-shot command) there is no epoch: the step
    /// changes nothing and is recorded as skipped.
    RecordEpoch { on: InstanceKey },
    /// Create the replication account replicas connect with, or bring its
    /// password and grants up to date (idempotent). Its name and password
    /// are the executor's (`ExecutorConfig::repl`), never the step's: steps
    /// are logged and recorded.
    EnsureReplicationAccount { on: InstanceKey },
    /// Create the application account, or bring it up to date
    /// (idempotent): `databases` created, every privilege on them and no
    /// other. Its name and password are the executor's
    /// (`ExecutorConfig::app`); without one the step fails.
    EnsureAppAccount {
        on: InstanceKey,
        databases: Vec<String>,
    },
    /// Commit one empty transaction for each GTID of `gtids` (a MySQL GTID
    /// set, as text) on `on`, the primary, one connection: the errant
    /// transactions of a replica are then part of what every instance
    /// executes. MySQL only.
    InjectEmptyTransactions { on: InstanceKey, gtids: String },
    /// Delete every binary log of a MariaDB replica whose replication is
    /// stopped (`RESET MASTER`): its `gtid_binlog_state` forgets its own
    /// errant entries, which in `gtid_strict_mode` keep it from logging
    /// the source's transactions of the same sequence numbers. What it
    /// replicated (`gtid_slave_pos`) is kept. MariaDB only.
    ResetBinaryLogs { on: InstanceKey },
    /// Wait until an IO thread's stop that went on in the background (a
    /// semi-sync replica of a hung source, on MariaDB) has ended, then,
    /// if `on` replicates meanwhile through orca's second connection,
    /// move it back to its default connection. Nothing to do otherwise.
    SettleReplica { on: InstanceKey },
}

/// The fence of a primary that must take no more writes: its clients
/// killed first (a long transaction, or a commit waiting for a semi-sync
/// acknowledgement, would block read_only), read only, writes locked for
/// the accounts read_only does not stop, then the clients that connected
/// meanwhile (those waiting on the lock get an error, not a late
/// acknowledgement).
pub fn fence_steps(on: &InstanceKey) -> Vec<Step> {
    vec![
        Step::KillClientConnections { on: on.clone() },
        Step::SetReadOnly {
            on: on.clone(),
            read_only: true,
        },
        Step::LockWrites { on: on.clone() },
        Step::KillClientConnections { on: on.clone() },
    ]
}

/// What undoes [`fence_steps`] on `old`, as it was before: its write
/// lock released, and writable again if it was.
pub fn unfence_steps(old: &crate::topology::Snapshot) -> Vec<Step> {
    let mut steps = vec![Step::UnlockWrites {
        on: old.key.clone(),
    }];
    if !old.is_read_only() {
        steps.push(Step::SetReadOnly {
            on: old.key.clone(),
            read_only: false,
        });
    }
    steps
}

fn one() -> u32 {
    1
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Step {
    /// The instance this step makes writable (`read_only` off), if any.
    pub fn makes_writable(&self) -> Option<&InstanceKey> {
        match self {
            Step::SetReadOnly {
                on,
                read_only: false,
            } => Some(on),
            _ => None,
        }
    }

    /// The instance the step acts on, if any.
    pub fn target(&self) -> Option<&InstanceKey> {
        match self {
            Step::RunHooks { .. } => None,
            Step::StopReplicaIo { on }
            | Step::WaitRelayApplied { on, .. }
            | Step::ApplyRelayNow { on, .. }
            | Step::StopReplica { on }
            | Step::ResetReplicaAll { on }
            | Step::SetReadOnly { on, .. }
            | Step::SetSemiSyncPrimary { on, .. }
            | Step::WaitReceivedApplied { on, .. }
            | Step::KillClientConnections { on }
            | Step::LockWrites { on }
            | Step::UnlockWrites { on }
            | Step::WaitCaughtUp { on, .. }
            | Step::ChangeSource { on, .. }
            | Step::StartReplica { on }
            | Step::WaitReplicating { on, .. }
            | Step::RecordEpoch { on }
            | Step::EnsureReplicationAccount { on }
            | Step::EnsureAppAccount { on, .. }
            | Step::InjectEmptyTransactions { on, .. }
            | Step::ResetBinaryLogs { on }
            | Step::SettleReplica { on } => Some(on),
        }
    }

    /// Whether the step changes something, and so must be preceded by the
    /// fence check of the epoch: everything but the waits, which only
    /// read. A hook counts: it may act on anything (a proxy, DNS, the
    /// servers), and a pre-failover hook is the leader's decision to go
    /// on.
    pub fn mutates(&self) -> bool {
        match self {
            Step::WaitRelayApplied { .. }
            | Step::WaitReceivedApplied { .. }
            | Step::WaitCaughtUp { .. }
            | Step::WaitReplicating { .. } => false,
            Step::RunHooks { .. }
            | Step::StopReplicaIo { .. }
            | Step::ApplyRelayNow { .. }
            | Step::StopReplica { .. }
            | Step::ResetReplicaAll { .. }
            | Step::SetReadOnly { .. }
            | Step::SetSemiSyncPrimary { .. }
            | Step::KillClientConnections { .. }
            | Step::LockWrites { .. }
            | Step::UnlockWrites { .. }
            | Step::ChangeSource { .. }
            | Step::StartReplica { .. }
            | Step::RecordEpoch { .. }
            | Step::EnsureReplicationAccount { .. }
            | Step::EnsureAppAccount { .. }
            | Step::InjectEmptyTransactions { .. }
            | Step::ResetBinaryLogs { .. }
            | Step::SettleReplica { .. } => true,
        }
    }
}

/// The instances `steps` make writable (`read_only` off) without recording
/// the epoch on them first ([`Step::RecordEpoch`] earlier in `steps`), in
/// order. Every plan's steps must have none.
pub fn writable_without_epoch(steps: &[Step]) -> Vec<InstanceKey> {
    let mut recorded = std::collections::BTreeSet::new();
    let mut missing = Vec::new();
    for s in steps {
        if let Step::RecordEpoch { on } = s {
            recorded.insert(on);
        }
        if let Some(on) = s.makes_writable().filter(|on| !recorded.contains(on)) {
            missing.push(on.clone());
        }
    }
    missing
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RunHooks { event } => write!(f, "run {} hooks", event.name()),
            Step::StopReplicaIo { on } => write!(f, "{on}: stop the replica IO thread"),
            Step::ApplyRelayNow { on, timeout } => write!(
                f,
                "{on}: apply the relay log now, delay removed (at most {timeout:?})"
            ),
            Step::WaitRelayApplied { on, timeout } => {
                write!(
                    f,
                    "{on}: wait until the relay log is applied (at most {timeout:?})"
                )
            }
            Step::StopReplica { on } => write!(f, "{on}: stop replication"),
            Step::ResetReplicaAll { on } => write!(f, "{on}: reset all replication settings"),
            Step::SetReadOnly { on, read_only } => {
                write!(
                    f,
                    "{on}: set read_only={}",
                    if *read_only { "ON" } else { "OFF" }
                )
            }
            Step::SetSemiSyncPrimary {
                on,
                enabled: true,
                wait_count,
            } => write!(
                f,
                "{on}: semi-sync primary side ON (waits for {wait_count} acknowledgement{})",
                if *wait_count == 1 { "" } else { "s" }
            ),
            Step::SetSemiSyncPrimary { on, .. } => write!(f, "{on}: semi-sync primary side OFF"),
            Step::WaitReceivedApplied { on, timeout } => write!(
                f,
                "{on}: wait until it has executed everything it received (at most {timeout:?})"
            ),
            Step::KillClientConnections { on } => write!(f, "{on}: kill client connections"),
            Step::LockWrites { on } => write!(
                f,
                "{on}: lock writes for every account (a global read lock orca holds)"
            ),
            Step::UnlockWrites { on } => write!(f, "{on}: release its write lock"),
            Step::WaitCaughtUp { on, of, timeout } => {
                write!(
                    f,
                    "{on}: wait until it has executed all of {of} (at most {timeout:?})"
                )
            }
            Step::ChangeSource {
                on,
                source,
                position: SourcePosition::Gtid,
            } => write!(f, "{on}: replicate from {source} (GTID)"),
            Step::ChangeSource {
                on,
                source,
                position: SourcePosition::OwnBinlog,
            } => write!(
                f,
                "{on}: replicate from {source} (GTID, from the end of its own binlog)"
            ),
            Step::ChangeSource {
                on,
                source,
                position: SourcePosition::Copied { gtid },
            } => write!(
                f,
                "{on}: replicate from {source} (GTID, from the copy's position {gtid})"
            ),
            Step::StartReplica { on } => write!(f, "{on}: start replication"),
            Step::WaitReplicating { on, timeout } => {
                write!(f, "{on}: wait until replicating (at most {timeout:?})")
            }
            Step::RecordEpoch { on } => write!(
                f,
                "{on}: record the leader's epoch in orca_meta.epoch (refused if a newer one is there)"
            ),
            Step::EnsureReplicationAccount { on } => write!(
                f,
                "{on}: ensure the replication account (its password and grants)"
            ),
            Step::EnsureAppAccount { on, databases } if databases.is_empty() => write!(
                f,
                "{on}: ensure the application account (its password; no database)"
            ),
            Step::EnsureAppAccount { on, databases } => write!(
                f,
                "{on}: ensure the application account (its password; every privilege on {} and no other)",
                databases.join(", ")
            ),
            Step::InjectEmptyTransactions { on, gtids } => {
                write!(f, "{on}: commit an empty transaction for each of {gtids}")
            }
            Step::ResetBinaryLogs { on } => {
                write!(f, "{on}: delete its binary logs (RESET MASTER)")
            }
            Step::SettleReplica { on } => write!(
                f,
                "{on}: wait until its IO thread has stopped, then replicate through its default connection"
            ),
        }
    }
}

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    RecoverDeadPrimary,
    RecoverDeadIntermediatePrimary,
    GracefulTakeover,
    ForceFailover,
    ForceTakeover,
    Relocate,
    MoveUp,
    MoveBelow,
    Repoint,
    TakeSiblings,
    RegroupReplicas,
    /// The first primary of a new cluster, or the adoption of the
    /// replication that exists.
    Bootstrap,
    StartReplication,
    StopReplication,
    SetReadOnly,
    SetWritable,
    FixErrant,
}

impl PlanKind {
    pub fn name(self) -> &'static str {
        match self {
            PlanKind::RecoverDeadPrimary => "recover-dead-primary",
            PlanKind::RecoverDeadIntermediatePrimary => "recover-dead-intermediate-primary",
            PlanKind::GracefulTakeover => "graceful-takeover",
            PlanKind::ForceFailover => "force-failover",
            PlanKind::ForceTakeover => "force-takeover",
            PlanKind::Relocate => "relocate",
            PlanKind::MoveUp => "move-up",
            PlanKind::MoveBelow => "move-below",
            PlanKind::Repoint => "repoint",
            PlanKind::TakeSiblings => "take-siblings",
            PlanKind::RegroupReplicas => "regroup-replicas",
            PlanKind::Bootstrap => "bootstrap",
            PlanKind::StartReplication => "start-replication",
            PlanKind::StopReplication => "stop-replication",
            PlanKind::SetReadOnly => "set-read-only",
            PlanKind::SetWritable => "set-writable",
            PlanKind::FixErrant => "fix-errant",
        }
    }
}

/// A plan: steps in order, and what to do if a step fails before the point
/// of no return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub kind: PlanKind,
    /// The instance that failed or is being replaced, if any.
    pub failed: Option<InstanceKey>,
    /// The instance that ends up in the role (the new primary, the new
    /// source), if any.
    pub successor: Option<InstanceKey>,
    pub steps: Vec<Step>,
    /// If a step with an index below this fails, `rollback` runs; from here
    /// on, failures are reported and the plan stops.
    pub point_of_no_return: usize,
    pub rollback: Vec<Step>,
    /// Replicas that cannot follow the successor (ahead of it, or unable to
    /// replicate from it), with the reason; they are left alone and
    /// reported.
    pub lost_replicas: Vec<(InstanceKey, String)>,
    /// Why the plan is the way it is (candidate choice, exclusions).
    pub notes: Vec<String>,
    /// Transactions the failed primary had at its last probe that the
    /// successor lacks (possibly lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_transactions: Option<LostTransactions>,
}

impl Plan {
    pub fn new(kind: PlanKind) -> Plan {
        Plan {
            kind,
            failed: None,
            successor: None,
            steps: Vec::new(),
            point_of_no_return: 0,
            rollback: Vec::new(),
            lost_replicas: Vec::new(),
            notes: Vec::new(),
            lost_transactions: None,
        }
    }

    /// Where the traffic may go before `steps[index]` runs: the successor,
    /// once an earlier step past the point of no return has made it
    /// writable (nothing undoes that). `None` before that, and for a plan
    /// that makes no successor writable. What is left of the plan (the
    /// repoints, the successor forgetting its source) needs no traffic
    /// kept away from it.
    pub fn writable_successor_before(&self, index: usize) -> Option<&InstanceKey> {
        let successor = self.successor.as_ref()?;
        let made_writable = self
            .steps
            .iter()
            .take(index)
            .skip(self.point_of_no_return)
            .any(|s| s.makes_writable() == Some(successor));
        made_writable.then_some(successor)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plan: {}", self.kind.name())?;
        if let Some(k) = &self.failed {
            write!(f, ", replacing {k}")?;
        }
        if let Some(k) = &self.successor {
            write!(f, ", successor {k}")?;
        }
        writeln!(f)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            let mark = if i < self.point_of_no_return {
                " (undone on failure)"
            } else {
                ""
            };
            writeln!(f, "  {:>2}. {s}{mark}", i + 1)?;
        }
        if !self.rollback.is_empty() {
            writeln!(
                f,
                "  on failure before step {}:",
                self.point_of_no_return + 1
            )?;
            for s in &self.rollback {
                writeln!(f, "      - {s}")?;
            }
        }
        for (k, why) in &self.lost_replicas {
            writeln!(f, "  lost replica {k}: {why}")?;
        }
        Ok(())
    }
}

/// Where a plan records the epoch of the instance it makes writable, as
/// every plan must: once, on the successor, after the point of no return
/// (no rollback repoints an instance that holds the epoch write) and
/// after its reset, before its semi-sync primary side goes on (the write
/// would wait for an acknowledgement no replica sends yet) and before it
/// is made writable. `Err` says what is wrong.
#[cfg(test)]
pub(crate) fn check_epoch_placement(plan: &Plan) -> Result<(), String> {
    let successor = plan.successor.as_ref().ok_or("no successor")?;
    let at = |want: &dyn Fn(&Step) -> bool| plan.steps.iter().position(want);
    let records: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| matches!(plan.steps[i], Step::RecordEpoch { .. }))
        .collect();
    let [record] = records.as_slice() else {
        return Err(format!("{} RecordEpoch steps, not one", records.len()));
    };
    let record = *record;
    if plan.steps[record].target() != Some(successor) {
        return Err(format!("the epoch is recorded on {}", plan.steps[record]));
    }
    if !writable_without_epoch(&plan.steps).is_empty() {
        return Err("an instance is made writable without its epoch".into());
    }
    if record < plan.point_of_no_return {
        return Err("the epoch is recorded before the point of no return".into());
    }
    let on_successor = |s: &Step| s.target() == Some(successor);
    let writable = at(&|s| {
        on_successor(s)
            && matches!(
                s,
                Step::SetReadOnly {
                    read_only: false,
                    ..
                } | Step::SetSemiSyncPrimary { enabled: true, .. }
            )
    })
    .ok_or("the successor is never made writable")?;
    if writable != record + 1 {
        return Err(format!(
            "step {} comes between the epoch and making it writable",
            plan.steps[record + 1]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_events_parse_and_print() {
        for (text, event, may_veto) in [
            ("failureDetected", HookEvent::FailureDetected, false),
            ("preFailover", HookEvent::PreFailover, true),
            ("postFailover", HookEvent::PostFailover, false),
            ("failedFailover", HookEvent::FailedFailover, false),
            ("preGracefulTakeover", HookEvent::PreGracefulTakeover, true),
            (
                "postGracefulTakeover",
                HookEvent::PostGracefulTakeover,
                false,
            ),
        ] {
            assert_eq!(text.parse::<HookEvent>().unwrap(), event);
            assert_eq!(event.to_string(), text);
            assert_eq!(
                serde_json::to_string(&event).unwrap(),
                format!("\"{text}\""),
                "serde and FromStr agree"
            );
            assert_eq!(event.may_veto(), may_veto, "{event}");
        }
        assert_eq!(
            HookEvent::ALL.map(HookEvent::name),
            [
                "failureDetected",
                "preFailover",
                "postFailover",
                "failedFailover",
                "preGracefulTakeover",
                "postGracefulTakeover"
            ]
        );
        for bad in ["", "PreFailover", "pre-failover", " preFailover", "nope"] {
            let err = bad.parse::<HookEvent>().unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{bad:?} is not a hook event (failureDetected, preFailover, postFailover, \
                     failedFailover, preGracefulTakeover, postGracefulTakeover)"
                )
            );
        }
    }

    #[test]
    fn which_steps_change_something() {
        let k = || InstanceKey::new("a", 3306);
        let t = Duration::from_secs(1);
        let table: Vec<(Step, bool)> = vec![
            (
                Step::RunHooks {
                    event: HookEvent::PreFailover,
                },
                true,
            ),
            (
                Step::RunHooks {
                    event: HookEvent::PostGracefulTakeover,
                },
                true,
            ),
            (Step::StopReplicaIo { on: k() }, true),
            (
                Step::WaitRelayApplied {
                    on: k(),
                    timeout: t,
                },
                false,
            ),
            (
                Step::ApplyRelayNow {
                    on: k(),
                    timeout: t,
                },
                true,
            ),
            (Step::StopReplica { on: k() }, true),
            (Step::ResetReplicaAll { on: k() }, true),
            (
                Step::SetReadOnly {
                    on: k(),
                    read_only: true,
                },
                true,
            ),
            (
                Step::SetReadOnly {
                    on: k(),
                    read_only: false,
                },
                true,
            ),
            (
                Step::SetSemiSyncPrimary {
                    on: k(),
                    enabled: true,
                    wait_count: 1,
                },
                true,
            ),
            (
                Step::WaitReceivedApplied {
                    on: k(),
                    timeout: t,
                },
                false,
            ),
            (Step::KillClientConnections { on: k() }, true),
            (Step::LockWrites { on: k() }, true),
            (Step::UnlockWrites { on: k() }, true),
            (
                Step::WaitCaughtUp {
                    on: k(),
                    of: InstanceKey::new("b", 3306),
                    timeout: t,
                },
                false,
            ),
            (
                Step::ChangeSource {
                    on: k(),
                    source: InstanceKey::new("b", 3306),
                    position: SourcePosition::Gtid,
                },
                true,
            ),
            (Step::StartReplica { on: k() }, true),
            (
                Step::WaitReplicating {
                    on: k(),
                    timeout: t,
                },
                false,
            ),
            (Step::RecordEpoch { on: k() }, true),
            (Step::EnsureReplicationAccount { on: k() }, true),
            (
                Step::EnsureAppAccount {
                    on: k(),
                    databases: vec!["app".into()],
                },
                true,
            ),
            (
                Step::InjectEmptyTransactions {
                    on: k(),
                    gtids: "3e11fa47-71ca-11e1-9e33-c80aa9429562:7".into(),
                },
                true,
            ),
            (Step::ResetBinaryLogs { on: k() }, true),
        ];
        for (step, mutates) in &table {
            assert_eq!(step.mutates(), *mutates, "{step}");
        }
        // The fence's own steps all change the primary.
        assert!(fence_steps(&k()).iter().all(Step::mutates));
    }

    #[test]
    fn an_instance_made_writable_needs_its_epoch_first() {
        let a = || InstanceKey::new("a", 3306);
        let b = || InstanceKey::new("b", 3306);
        let writable = |k: InstanceKey| Step::SetReadOnly {
            on: k,
            read_only: false,
        };
        let record = |k: InstanceKey| Step::RecordEpoch { on: k };
        let cases: Vec<(&str, Vec<Step>, Vec<InstanceKey>)> = vec![
            (
                "nothing made writable",
                vec![Step::StopReplica { on: a() }],
                vec![],
            ),
            ("recorded first", vec![record(a()), writable(a())], vec![]),
            (
                "recorded with steps between",
                vec![
                    record(a()),
                    Step::SetSemiSyncPrimary {
                        on: a(),
                        enabled: true,
                        wait_count: 1,
                    },
                    writable(a()),
                ],
                vec![],
            ),
            ("not recorded", vec![writable(a())], vec![a()]),
            (
                "recorded after",
                vec![writable(a()), record(a())],
                vec![a()],
            ),
            (
                "recorded on another",
                vec![record(b()), writable(a())],
                vec![a()],
            ),
            (
                "read only on is no promotion",
                vec![Step::SetReadOnly {
                    on: a(),
                    read_only: true,
                }],
                vec![],
            ),
            (
                "two instances",
                vec![record(a()), writable(a()), writable(b())],
                vec![b()],
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(writable_without_epoch(&steps), want, "{name}");
        }
    }
}
