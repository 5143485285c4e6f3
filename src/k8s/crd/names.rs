//! Names that are part of orca's public interface: condition types,
//! annotation keys and label keys (see DESIGN.md, "Public interface").
//!
//! Keep these stable: users type them into `kubectl annotate`, label
//! selectors and alerting rules.

/// The API group of orca's custom resources.
pub const GROUP: &str = "orca.dev";
/// The version of orca's custom resources.
pub const VERSION: &str = "v1alpha1";

/// Condition types on `MySQLCluster.status.conditions`.
pub mod condition {
    /// The cluster has a writable primary reachable through the primary Service.
    pub const AVAILABLE: &str = "Available";
    /// Every instance replicates as it should and no problem is detected.
    pub const HEALTHY: &str = "Healthy";
    /// The cluster serves writes but something is wrong (a replica is
    /// broken, lagging, has errant GTIDs, ...).
    pub const DEGRADED: &str = "Degraded";
    /// orca cannot serve the cluster: a failed recovery, a malformed
    /// annotation or spec, or no primary it can promote.
    pub const FAILED: &str = "Failed";
    /// orca is changing the cluster (creating objects, running an operation).
    pub const RECONCILING: &str = "Reconciling";

    /// Every condition type orca sets, in display order.
    pub const ALL: [&str; 5] = [AVAILABLE, HEALTHY, DEGRADED, FAILED, RECONCILING];
}

/// Annotation keys. The first five go on a `MySQLCluster`, the last two on
/// a pod. An operation annotation is removed when its operation ends.
pub mod annotation {
    /// `<pod>|auto`: switch the primary over to `<pod>` (or the best candidate).
    pub const GRACEFUL_TAKEOVER: &str = "orca.dev/graceful-takeover";
    /// `"true"`: treat the primary as dead now and promote the best candidate.
    pub const FORCE_FAILOVER: &str = "orca.dev/force-failover";
    /// `<pod>`: promote this direct replica, discarding the primary.
    pub const FORCE_TAKEOVER: &str = "orca.dev/force-takeover";
    /// `<pod>`: re-provision this replica by a physical copy of a healthy
    /// one (whatever `spec.replicaRepair` says).
    pub const REPROVISION: &str = "orca.dev/reprovision";
    /// `"true"`: run the recovery of a detected problem when auto failover is off.
    pub const RECOVER: &str = "orca.dev/recover";
    /// `<anything>`: acknowledge the last recovery, lifting the anti-flap block.
    pub const ACKNOWLEDGE: &str = "orca.dev/acknowledge";
    /// `<kind> <pod> [<pod>]`: any other operation orca plans from the
    /// topology (a refactoring such as `relocate db-2 db-1`, or an
    /// instance operation); the kinds are those of the HTTP API.
    pub const OPERATION: &str = "orca.dev/operation";
    /// On a pod: `prefer|neutral|prefer_not|must_not`, see
    /// [`PromotionRule`](super::super::PromotionRule).
    pub const PROMOTION_RULE: &str = "orca.dev/promotion-rule";
    /// On a pod: an RFC 3339 time until which the instance is in downtime.
    pub const DOWNTIME: &str = "orca.dev/downtime";

    /// The annotations that request an operation on a `MySQLCluster`.
    pub const CLUSTER_OPERATIONS: [&str; 7] = [
        GRACEFUL_TAKEOVER,
        FORCE_FAILOVER,
        FORCE_TAKEOVER,
        RECOVER,
        ACKNOWLEDGE,
        OPERATION,
        REPROVISION,
    ];
}

/// Label keys and values on the pods and Services orca manages.
pub mod label {
    /// `<cluster name>` on every pod of a cluster.
    pub const CLUSTER: &str = "orca.dev/cluster";
    /// `primary|replica`, set by orca from the discovered topology.
    pub const ROLE: &str = "orca.dev/role";
    /// Value of [`ROLE`] on the primary's pod.
    pub const ROLE_PRIMARY: &str = "primary";
    /// Value of [`ROLE`] on a replica's pod.
    pub const ROLE_REPLICA: &str = "replica";
}
