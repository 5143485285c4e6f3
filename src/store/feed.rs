//! What one cluster's engine tells the store, round after round: instance
//! snapshots when they change (or every snapshot interval), findings when
//! they start and end, every operation with its steps, and the audit of
//! operations asked for. Everything is enqueued, nothing awaited: the
//! engine's rounds run at the same pace with or without a store.

use std::time::Instant;

use super::record::{
    AuditRow, Door, FindingTracker, InstanceRow, Record, RecoveryRow, SnapshotThrottle,
};
use super::{Store, now_ms};
use crate::engine::RoundReport;
use crate::engine::executor::OperationRecord;
use crate::topology::graph::Topology;

pub struct Feed {
    store: Store,
    cluster: String,
    snapshots: SnapshotThrottle,
    findings: FindingTracker,
    /// The fencing epoch the rounds' operations run in (the operator's
    /// leader), `None` without leader election.
    epoch: Option<i64>,
}

impl Feed {
    pub fn new(store: Store, cluster: impl Into<String>) -> Feed {
        let cluster = cluster.into();
        let interval = store.config().snapshot_interval;
        Feed {
            snapshots: SnapshotThrottle::new(interval),
            findings: FindingTracker::new(cluster.clone(), interval),
            store,
            cluster,
            epoch: None,
        }
    }

    /// The same, its rounds' operations recorded in `epoch`.
    pub fn with_epoch(mut self, epoch: Option<i64>) -> Feed {
        self.epoch = epoch;
        self
    }

    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The records of one round: its topology, its findings, the
    /// operations it ran.
    pub fn round(&mut self, topology: &Topology, report: &RoundReport) {
        let (now, ms) = (Instant::now(), now_ms());
        for node in topology.nodes.values() {
            let row = InstanceRow::of(&self.cluster, node, ms);
            let instance = row.instance.clone();
            if self.snapshots.admit(&row, now)
                && !self
                    .store
                    .enqueue(Record::Instance(row.with_snapshot(node)))
            {
                // Refused by a full queue: the next round tries again.
                self.snapshots.forget(&instance);
            }
        }
        for r in self
            .findings
            .round(&report.findings, ms, || uuid::Uuid::new_v4().to_string())
        {
            self.store.enqueue(r);
        }
        for r in &report.fence_records {
            self.operation(r, self.epoch);
        }
        if let Some(r) = &report.recovery {
            self.audit(
                r.kind.name(),
                r.failed.as_ref().map(|k| k.to_string()),
                "orca",
                Door::Engine,
                Some(format!("automatic, on {}", r.trigger)),
            );
            self.operation(r, self.epoch);
        }
    }

    /// An operation's record with its steps, run in `epoch` (with leader
    /// election), under this feed's cluster; `false` when the queue
    /// refused it.
    pub fn operation(&self, record: &OperationRecord, epoch: Option<i64>) -> bool {
        // Kept under this feed's cluster key, whatever name the operation
        // was run under (the operator's worker names it by the cluster's
        // name alone).
        let mut row = RecoveryRow::of(record, epoch);
        row.cluster.clone_from(&self.cluster);
        let queued = self.store.enqueue(Record::Recovery(Box::new(row)));
        if queued {
            tracing::info!(
                cluster = %self.cluster,
                operation = %record.id,
                queue_depth = self.store.queue_depth(),
                "operation record queued for the store"
            );
        } else {
            tracing::warn!(
                cluster = %self.cluster,
                operation = %record.id,
                dropped = self.store.dropped(),
                "operation record dropped: the store queue is full"
            );
        }
        queued
    }

    /// An operation asked for: `action` on `target`, by `by`, through
    /// `door`.
    pub fn audit(
        &self,
        action: &str,
        target: Option<String>,
        by: &str,
        door: Door,
        detail: Option<String>,
    ) {
        self.store.enqueue(Record::Audit(AuditRow {
            id: uuid::Uuid::new_v4().to_string(),
            at_ms: now_ms(),
            cluster: self.cluster.clone(),
            action: action.to_string(),
            target,
            requested_by: by.to_string(),
            door,
            detail,
        }));
    }

    /// The acknowledgement of the recovery `id`.
    pub fn acknowledged(&self, id: &str, by: &str, comment: &str) {
        self.store.enqueue(Record::Acknowledged {
            recovery_id: id.to_string(),
            by: by.to_string(),
            comment: comment.to_string(),
            at_ms: now_ms(),
        });
    }
}

/// Who runs this orca process, for the audit of what it is asked on the
/// command line or by a signal: `$USER` (or `$LOGNAME`), else the uid.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next().map(|u| format!("uid {u}")))
                })
                .unwrap_or_else(|| "unknown".into())
        })
}
