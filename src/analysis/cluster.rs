//! The inputs and outputs of the cluster-wide analysis: what it is told
//! besides the topology (limits, downtimes, Kubernetes' view of the pods)
//! and what it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::codes::{ClusterProblemCode, Severity};
use crate::plan::loss::LastSeenPrimary;
use crate::topology::InstanceKey;

/// One problem of a replication tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: ClusterProblemCode,
    /// The failed or affected instance (the top of the tree for a
    /// structure warning).
    pub instance: InstanceKey,
    /// The other instances involved, sorted: a dead primary's replicas, the
    /// instances of a tree that disagree on a setting, ...
    pub replicas: Vec<InstanceKey>,
    /// One sentence naming the instances and the evidence.
    pub description: String,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_failure(&self) -> bool {
        self.code.is_failure()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.instance, self.description)
    }
}

/// What Kubernetes says about an instance's pod. It adds to orca's own
/// view ("I cannot reach it") and is named in the evidence, but it never
/// stands in for the replicas' agreement: a dead primary is still one its
/// replicas cannot reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExternalSignal {
    /// The pod is being deleted (deletion timestamp set) or is gone.
    Deleted,
    /// The mysqld container is restarting (waiting in back-off, or its
    /// restart count went up).
    ContainerRestarting,
    /// The pod's Ready condition is false.
    NotReady,
    /// The pod's node is NotReady (or unreachable).
    NodeNotReady,
}

impl ExternalSignal {
    /// The signal as a phrase about the instance.
    pub fn phrase(self) -> &'static str {
        match self {
            ExternalSignal::Deleted => "its pod is deleted",
            ExternalSignal::ContainerRestarting => "its container is restarting",
            ExternalSignal::NotReady => "its pod is not ready",
            ExternalSignal::NodeNotReady => "its node is not ready",
        }
    }
}

impl fmt::Display for ExternalSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExternalSignal::Deleted => "Deleted",
            ExternalSignal::ContainerRestarting => "ContainerRestarting",
            ExternalSignal::NotReady => "NotReady",
            ExternalSignal::NodeNotReady => "NodeNotReady",
        })
    }
}

/// Everything the analysis needs besides the topology. It holds no clock:
/// the caller resolves downtimes ("until" in the future) before passing
/// them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisContext {
    /// Lag above which a replica is lagging, in milliseconds.
    pub max_lag_ms: u64,
    /// Instances in maintenance: never the subject of a failure finding.
    pub downtimed: BTreeSet<InstanceKey>,
    /// Kubernetes' view of the instances' pods.
    pub signals: BTreeMap<InstanceKey, Vec<ExternalSignal>>,
    /// For each replica, how long its replication stream has brought
    /// nothing — no event, no heartbeat — in milliseconds (the engine
    /// measures it across probes).
    pub stalled_ms: BTreeMap<InstanceKey, u64>,
    /// A replica whose stream has been stalled this long, and for at least
    /// [`STALL_PERIODS`] of its heartbeat periods, counts as not reaching
    /// its source even while its IO thread still says connected: a hung
    /// source keeps the TCP connection open but sends nothing, not even
    /// the heartbeat it owes every period. A replica whose heartbeats are
    /// off never counts as stalled: an idle healthy source sends nothing.
    pub stall_threshold_ms: u64,
    /// The instance orca knows as the primary (the one it promoted last,
    /// or the only writable one it saw): when two writable instances stand
    /// at the top and their replicas do not tell which is the primary,
    /// this one is.
    #[serde(default)]
    pub primary: Option<InstanceKey>,
    /// Semi-sync primaries orca no longer reaches, as it last saw them
    /// (the engine fills it from its memory): the finding of a dead one
    /// says when the replicas orca reaches may miss an acknowledged write,
    /// which keeps orca from failing over by itself.
    #[serde(default)]
    pub last_seen: BTreeMap<InstanceKey, LastSeenPrimary>,
}

/// Heartbeat periods a replica's stream must stay silent for before it
/// counts as stalled. The silence is measured from the first probe that
/// saw the stream's last heartbeat, so it is never more than the real
/// one; a healthy source sends one every period, so two in a row missed
/// (on top of the probe's own timeout on the source) is no hiccup.
pub const STALL_PERIODS: u64 = 2;

impl Default for AnalysisContext {
    fn default() -> Self {
        AnalysisContext {
            max_lag_ms: 10_000,
            downtimed: BTreeSet::new(),
            signals: BTreeMap::new(),
            stalled_ms: BTreeMap::new(),
            stall_threshold_ms: 500,
            primary: None,
            last_seen: BTreeMap::new(),
        }
    }
}

impl AnalysisContext {
    /// Whether `key`'s replication stream has stalled past the threshold,
    /// given the heartbeat period its source owes it (`None`: not known,
    /// the threshold alone decides).
    pub fn is_stalled(&self, key: &InstanceKey, heartbeat_period_ms: Option<u64>) -> bool {
        let limit = match heartbeat_period_ms {
            Some(0) => return false,
            Some(p) => self.stall_threshold_ms.max(p.saturating_mul(STALL_PERIODS)),
            None => self.stall_threshold_ms,
        };
        self.stalled_ms.get(key).is_some_and(|ms| *ms >= limit)
    }

    pub fn is_downtimed(&self, key: &InstanceKey) -> bool {
        self.downtimed.contains(key)
    }

    /// The signals about `key`, sorted and without repeats.
    pub fn signals_of(&self, key: &InstanceKey) -> Vec<ExternalSignal> {
        let mut s = self.signals.get(key).cloned().unwrap_or_default();
        s.sort();
        s.dedup();
        s
    }
}
