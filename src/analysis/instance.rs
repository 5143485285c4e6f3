//! Problems of each instance, read off the graph.

use std::collections::BTreeMap;

use super::codes::Problem;
use crate::topology::InstanceKey;
use crate::topology::graph::{Role, Topology};
use crate::topology::instance::IoThreadState;

/// Limits that turn a measurement into a problem.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Lag above which a replica is lagging, in milliseconds.
    pub max_lag_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { max_lag_ms: 10_000 }
    }
}

/// The problems of every instance in `topo`, sorted; instances without
/// problems are absent.
pub fn instance_problems(topo: &Topology, t: Thresholds) -> BTreeMap<InstanceKey, Vec<Problem>> {
    let mut out = BTreeMap::new();
    for node in topo.nodes.values() {
        let mut p = Vec::new();
        let Some(snap) = node.snapshot.as_ref() else {
            out.insert(node.key.clone(), vec![Problem::Unreachable]);
            continue;
        };
        if !snap.log_bin {
            p.push(Problem::NoLogBin);
        }
        if node.role == Role::Orphan {
            p.push(Problem::Orphan);
        }
        if matches!(node.role, Role::Primary | Role::CoPrimary)
            && snap.is_read_only()
            && !node.replicas.is_empty()
        {
            p.push(Problem::NoWritablePrimary);
        }
        if let Some(r) = snap.replica.as_ref() {
            if r.source_unreachable() {
                p.push(Problem::SourceUnreachable);
            } else if r.io_running == IoThreadState::No {
                p.push(Problem::IoThreadStopped);
            }
            if !r.sql_running {
                p.push(Problem::SqlThreadStopped);
            }
            if r.last_io_errno != 0 && !r.source_unreachable() {
                p.push(Problem::ReplicationIoError);
            }
            if r.last_sql_errno != 0 {
                p.push(Problem::ReplicationSqlError);
            }
            if !r.gtid_mode.uses_gtid() {
                p.push(Problem::NoGtidReplication);
            }
            if node.role != Role::CoPrimary && !snap.is_read_only() {
                p.push(Problem::WritableReplica);
            }
            if node.lag_ms.is_some_and(|l| l > t.max_lag_ms) {
                p.push(Problem::ReplicaLagging);
            }
            if let Some(src) = topo.get(&r.source).and_then(|n| n.snapshot.as_ref()) {
                if !src.binlog_format.is_empty()
                    && !snap.binlog_format.is_empty()
                    && src.binlog_format != snap.binlog_format
                {
                    p.push(Problem::BinlogFormatMismatch);
                }
                if src.flavor == snap.flavor
                    && snap.version.major_minor() < src.version.major_minor()
                {
                    p.push(Problem::OlderThanSource);
                }
            }
        }
        if !node.replicas.is_empty() && node.source.is_some() && !snap.log_replica_updates {
            p.push(Problem::NoLogReplicaUpdates);
        }
        if node.errant.as_ref().is_some_and(|e| !e.is_empty()) {
            p.push(Problem::ErrantGtid);
        }
        if !p.is_empty() {
            p.sort();
            out.insert(node.key.clone(), p);
        }
    }
    out
}
