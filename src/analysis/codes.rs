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
