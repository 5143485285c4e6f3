//! The problem vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A problem of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Problem {
    /// orca cannot connect to it.
    Unreachable,
    /// Its IO thread cannot reach its source.
    SourceUnreachable,
    /// Its IO thread is stopped (and not for a connection failure).
    IoThreadStopped,
    /// Its SQL thread is stopped.
    SqlThreadStopped,
    /// The IO thread reports an error.
    ReplicationIoError,
    /// The SQL thread reports an error.
    ReplicationSqlError,
    /// Lag above the threshold.
    ReplicaLagging,
    /// It has transactions its source lacks.
    ErrantGtid,
    /// A replica that accepts writes.
    WritableReplica,
    /// The top of a tree is read only: nothing takes writes.
    NoWritablePrimary,
    /// It feeds replicas but writes no binlog of what it replicates.
    NoLogReplicaUpdates,
    /// Binary logging is off: it can never be promoted or feed replicas.
    NoLogBin,
    /// It logs a binlog format other than its source's.
    BinlogFormatMismatch,
    /// It runs an older major version than its source.
    OlderThanSource,
    /// It replicates by file and position, not GTID.
    NoGtidReplication,
    /// Configured to replicate from an instance orca does not know.
    Orphan,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::Unreachable => "Unreachable",
            Problem::SourceUnreachable => "SourceUnreachable",
            Problem::IoThreadStopped => "IoThreadStopped",
            Problem::SqlThreadStopped => "SqlThreadStopped",
            Problem::ReplicationIoError => "ReplicationIoError",
            Problem::ReplicationSqlError => "ReplicationSqlError",
            Problem::ReplicaLagging => "ReplicaLagging",
            Problem::ErrantGtid => "ErrantGtid",
            Problem::WritableReplica => "WritableReplica",
            Problem::NoWritablePrimary => "NoWritablePrimary",
            Problem::NoLogReplicaUpdates => "NoLogReplicaUpdates",
            Problem::NoLogBin => "NoLogBin",
            Problem::BinlogFormatMismatch => "BinlogFormatMismatch",
            Problem::OlderThanSource => "OlderThanSource",
            Problem::NoGtidReplication => "NoGtidReplication",
            Problem::Orphan => "Orphan",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How urgent a cluster finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Writes are down or about to be lost: act now (a recovery, or a human).
    Critical,
    /// Something is wrong but nothing is to be done automatically.
    Warning,
    /// A shape worth knowing about (a rolling upgrade, for instance).
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "Critical",
            Severity::Warning => "Warning",
            Severity::Info => "Info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A problem of a whole replication tree, in orchestrator's vocabulary
/// (`Master` spelled `Primary`). Serialized as its variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClusterProblemCode {
    /// The primary is unreachable, every replica is reachable and none can
    /// connect to it: fail over.
    DeadPrimary,
    /// The primary is unreachable, some replicas too, and every reachable
    /// replica fails to connect to it: fail over.
    DeadPrimaryAndSomeReplicas,
    /// The primary and all its replicas are unreachable: hooks only.
    DeadPrimaryAndReplicas,
    /// The primary is unreachable and has no known replicas.
    DeadPrimaryWithoutReplicas,
    /// orca cannot reach the primary but a replica still can: re-check, do
    /// not fail over.
    UnreachablePrimary,
    /// As `UnreachablePrimary`, and every connected replica lags: the
    /// primary is probably locked or overloaded.
    UnreachablePrimaryWithLaggingReplicas,
    /// Semi-sync is on and active with fewer replicas than acks it waits
    /// for: commits stall.
    LockedSemiSyncPrimary,
    /// The primary is reachable and none of its reachable replicas
    /// replicates.
    AllReplicasNotReplicating,
    /// The primary's only replica does not replicate.
    PrimarySingleReplicaNotReplicating,
    /// An intermediate primary is unreachable and its replicas, all
    /// reachable, fail to connect to it: move them.
    DeadIntermediatePrimary,
    /// As `DeadIntermediatePrimary`, some of its replicas unreachable too.
    DeadIntermediatePrimaryAndSomeReplicas,
    /// As `DeadIntermediatePrimary`, with its one replica.
    DeadIntermediatePrimaryWithSingleReplica,
    /// An intermediate primary and all its replicas are unreachable:
    /// nothing to move.
    DeadIntermediatePrimaryAndReplicas,
    /// orca cannot reach an intermediate primary but one of its replicas
    /// still can (or gives no evidence): do not move them.
    UnreachableIntermediatePrimary,
    /// The primary is read only while it has replicas: nothing takes writes.
    NoWritablePrimary,
    /// More than one writable instance at the top of the cluster (a former
    /// primary that came back beside the promoted one): the former is
    /// fenced at once.
    MultipleWritablePrimaries,
    /// A replica has transactions its source lacks.
    ErrantGtid,
    /// A replica lags more than the limit.
    ReplicaLagging,
    /// Instances of one tree log different binlog formats.
    DifferentBinlogFormats,
    /// Instances of one tree run different major.minor versions.
    DifferentMajorVersions,
    /// None of the primary's replicas logs what it replicates: none could
    /// be promoted.
    NoLoggingReplicas,
    /// Replication channels of one tree mix GTID and file/position, or the
    /// MySQL `gtid_mode` values differ.
    DifferentGtidModes,
}

impl ClusterProblemCode {
    pub const ALL: [ClusterProblemCode; 22] = [
        ClusterProblemCode::DeadPrimary,
        ClusterProblemCode::DeadPrimaryAndSomeReplicas,
        ClusterProblemCode::DeadPrimaryAndReplicas,
        ClusterProblemCode::DeadPrimaryWithoutReplicas,
        ClusterProblemCode::UnreachablePrimary,
        ClusterProblemCode::UnreachablePrimaryWithLaggingReplicas,
        ClusterProblemCode::LockedSemiSyncPrimary,
        ClusterProblemCode::AllReplicasNotReplicating,
        ClusterProblemCode::PrimarySingleReplicaNotReplicating,
        ClusterProblemCode::DeadIntermediatePrimary,
        ClusterProblemCode::DeadIntermediatePrimaryAndSomeReplicas,
        ClusterProblemCode::DeadIntermediatePrimaryWithSingleReplica,
        ClusterProblemCode::DeadIntermediatePrimaryAndReplicas,
        ClusterProblemCode::UnreachableIntermediatePrimary,
        ClusterProblemCode::NoWritablePrimary,
        ClusterProblemCode::MultipleWritablePrimaries,
        ClusterProblemCode::ErrantGtid,
        ClusterProblemCode::ReplicaLagging,
        ClusterProblemCode::DifferentBinlogFormats,
        ClusterProblemCode::DifferentMajorVersions,
        ClusterProblemCode::NoLoggingReplicas,
        ClusterProblemCode::DifferentGtidModes,
    ];

    pub fn name(self) -> &'static str {
        use ClusterProblemCode::*;
        match self {
            DeadPrimary => "DeadPrimary",
            DeadPrimaryAndSomeReplicas => "DeadPrimaryAndSomeReplicas",
            DeadPrimaryAndReplicas => "DeadPrimaryAndReplicas",
            DeadPrimaryWithoutReplicas => "DeadPrimaryWithoutReplicas",
            UnreachablePrimary => "UnreachablePrimary",
            UnreachablePrimaryWithLaggingReplicas => "UnreachablePrimaryWithLaggingReplicas",
            LockedSemiSyncPrimary => "LockedSemiSyncPrimary",
            AllReplicasNotReplicating => "AllReplicasNotReplicating",
            PrimarySingleReplicaNotReplicating => "PrimarySingleReplicaNotReplicating",
            DeadIntermediatePrimary => "DeadIntermediatePrimary",
            DeadIntermediatePrimaryAndSomeReplicas => "DeadIntermediatePrimaryAndSomeReplicas",
            DeadIntermediatePrimaryWithSingleReplica => "DeadIntermediatePrimaryWithSingleReplica",
            DeadIntermediatePrimaryAndReplicas => "DeadIntermediatePrimaryAndReplicas",
            UnreachableIntermediatePrimary => "UnreachableIntermediatePrimary",
            NoWritablePrimary => "NoWritablePrimary",
            MultipleWritablePrimaries => "MultipleWritablePrimaries",
            ErrantGtid => "ErrantGtid",
            ReplicaLagging => "ReplicaLagging",
            DifferentBinlogFormats => "DifferentBinlogFormats",
            DifferentMajorVersions => "DifferentMajorVersions",
            NoLoggingReplicas => "NoLoggingReplicas",
            DifferentGtidModes => "DifferentGtidModes",
        }
    }

    /// A failure a recovery acts on: a dead primary with someone to promote,
    /// or a dead intermediate primary with replicas to move.
    pub fn is_failure(self) -> bool {
        use ClusterProblemCode::*;
        matches!(
            self,
            DeadPrimary
                | DeadPrimaryAndSomeReplicas
                | DeadIntermediatePrimary
                | DeadIntermediatePrimaryAndSomeReplicas
                | DeadIntermediatePrimaryWithSingleReplica
        )
    }

    /// The dead-intermediate-primary failures, recovered by moving the
    /// replicas rather than promoting.
    pub fn is_intermediate(self) -> bool {
        use ClusterProblemCode::*;
        matches!(
            self,
            DeadIntermediatePrimary
                | DeadIntermediatePrimaryAndSomeReplicas
                | DeadIntermediatePrimaryWithSingleReplica
        )
    }

    pub fn severity(self) -> Severity {
        use ClusterProblemCode::*;
        match self {
            DeadPrimary
            | DeadPrimaryAndSomeReplicas
            | DeadPrimaryAndReplicas
            | DeadPrimaryWithoutReplicas
            | DeadIntermediatePrimary
            | DeadIntermediatePrimaryAndSomeReplicas
            | DeadIntermediatePrimaryWithSingleReplica
            | DeadIntermediatePrimaryAndReplicas
            | LockedSemiSyncPrimary
            | NoWritablePrimary
            | MultipleWritablePrimaries => Severity::Critical,
            UnreachablePrimary
            | UnreachablePrimaryWithLaggingReplicas
            | UnreachableIntermediatePrimary
            | AllReplicasNotReplicating
            | PrimarySingleReplicaNotReplicating
            | ErrantGtid
            | ReplicaLagging
            | DifferentBinlogFormats
            | NoLoggingReplicas
            | DifferentGtidModes => Severity::Warning,
            DifferentMajorVersions => Severity::Info,
        }
    }
}

impl fmt::Display for ClusterProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
