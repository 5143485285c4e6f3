//! The pure topology core: instance keys, GTID sets of both flavors with
//! their algebra, binlog coordinates, the probe snapshot of one instance,
//! the replication graph built from snapshots, and errant GTID detection.
//! Nothing here does I/O, awaits, or reads a clock.

pub mod coordinates;
pub mod errant;
pub mod graph;
pub mod gtid;
pub mod instance;
#[cfg(test)]
pub(crate) mod testing;

pub use coordinates::BinlogCoordinates;
pub use graph::Topology;
pub use gtid::{GtidSet, MariaDbGtidPos, MySqlGtidSet};
pub use instance::{Flavor, InstanceKey, ReplicaStatus, Snapshot, Version};

/// Why a piece of text could not be read as a topology value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid GTID set {input:?}: {reason}")]
    Gtid { input: String, reason: String },
    #[error("invalid binlog coordinates {input:?}: {reason}")]
    Coordinates { input: String, reason: String },
    #[error("invalid instance address {input:?}: {reason}")]
    InstanceKey { input: String, reason: String },
    #[error("invalid server version {input:?}")]
    Version { input: String },
}
