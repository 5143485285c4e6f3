//! Legality of a refactoring: can one instance replicate from another.
//! The rules follow the "Refactoring and its safety rules" of the domain
//! notes; every refusal names its reason.

use serde::{Deserialize, Serialize};

use crate::topology::instance::Flavor;
use crate::topology::{InstanceKey, Snapshot, Topology};

/// Why `replica` may not replicate from `source`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "refusal", content = "detail", rename_all = "snake_case")]
pub enum Refusal {
    #[error("{0} cannot replicate from itself")]
    SameInstance(InstanceKey),
    #[error("{from} replicates, directly or not, from {replica}: that would make a cycle")]
    WouldCycle {
        replica: InstanceKey,
        from: InstanceKey,
    },
    #[error("{0} is not in the topology")]
    UnknownInstance(InstanceKey),
    #[error("{0} did not answer the latest probe")]
    Unreachable(InstanceKey),
    #[error("{0} has no binary log (log_bin is off)")]
    NoLogBin(InstanceKey),
    #[error(
        "{0} is a replica without log_replica_updates: what it replicates is not in its binary log"
    )]
    NoLogReplicaUpdates(InstanceKey),
    #[error(
        "{from} runs {source_version}, newer than {replica} ({replica_version}): a replica must never be older than its source"
    )]
    NewerVersion {
        replica: InstanceKey,
        replica_version: String,
        from: InstanceKey,
        source_version: String,
    },
    #[error(
        "{replica} logs binlog_format {replica_format} and cannot log what {from} sends as {source_format}"
    )]
    BinlogFormat {
        replica: InstanceKey,
        replica_format: String,
        from: InstanceKey,
        source_format: String,
    },
    #[error("{replica} and {from} have the same server_id {server_id}")]
    SameServerId {
        replica: InstanceKey,
        from: InstanceKey,
        server_id: u32,
    },
    #[error("{replica} and {from} have the same server_uuid {uuid}")]
    SameServerUuid {
        replica: InstanceKey,
        from: InstanceKey,
        uuid: String,
    },
    #[error("{0} is not replicating (an IO or SQL thread is not running)")]
    NotReplicating(InstanceKey),
    #[error("{instance} lags {lag_ms} ms, above the limit of {max_lag_ms} ms")]
    Lagging {
        instance: InstanceKey,
        lag_ms: u64,
        max_lag_ms: u64,
    },
    #[error("{instance} cannot use GTID positioning: {reason}")]
    NoGtid {
        instance: InstanceKey,
        reason: String,
    },
    #[error(
        "{replica} is {replica_flavor} and {from} is {source_flavor}: orca does not replicate across flavors"
    )]
    FlavorMismatch {
        replica: InstanceKey,
        replica_flavor: Flavor,
        from: InstanceKey,
        source_flavor: Flavor,
    },
    #[error("{0} has the promotion rule must_not")]
    MustNotPromote(InstanceKey),
    #[error("{instance} has errant GTIDs {errant}")]
    ErrantGtids {
        instance: InstanceKey,
        errant: String,
    },
}

/// Limits a refactoring must respect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalityOptions {
    /// Refuse when the replica or the source (when it is a replica itself)
    /// lags more than this, in milliseconds.
    pub max_lag_ms: u64,
    /// Refuse when the replica or the source (when it is a replica itself)
    /// does not run both replication threads.
    pub require_replicating: bool,
    /// Refuse when the replica's channel positions by binlog coordinates
    /// (the plan switches it to GTID positioning otherwise).
    pub require_gtid: bool,
}

impl Default for LegalityOptions {
    fn default() -> Self {
        LegalityOptions {
            max_lag_ms: 10_000,
            require_replicating: true,
            require_gtid: false,
        }
    }
}

impl LegalityOptions {
    /// Only the rules that do not depend on the replication state: no lag
    /// limit, threads may be stopped.
    pub fn structural() -> Self {
        LegalityOptions {
            max_lag_ms: u64::MAX,
            require_replicating: false,
            require_gtid: false,
        }
    }
}

/// Whether `replica` may replicate from `source`, with GTID positioning.
pub fn can_replicate_from(
    topo: &Topology,
    replica: &InstanceKey,
    source: &InstanceKey,
    opts: &LegalityOptions,
) -> Result<(), Refusal> {
    if replica == source {
        return Err(Refusal::SameInstance(replica.clone()));
    }
    let r = locate(topo, replica)?;
    let s = locate(topo, source)?;
    if topo.ancestors(source).contains(replica) {
        return Err(Refusal::WouldCycle {
            replica: replica.clone(),
            from: source.clone(),
        });
    }
    compatible(r, s, s.is_replica(), opts.require_gtid)?;
    healthy(topo, r, opts)?;
    healthy(topo, s, opts)
}

/// The snapshot of a known, reachable instance.
pub(crate) fn locate<'a>(topo: &'a Topology, key: &InstanceKey) -> Result<&'a Snapshot, Refusal> {
    let node = topo
        .get(key)
        .ok_or_else(|| Refusal::UnknownInstance(key.clone()))?;
    node.snapshot
        .as_ref()
        .ok_or_else(|| Refusal::Unreachable(key.clone()))
}

/// The rules that depend on the two instances' settings only.
/// `source_is_replica`: the source feeds `replica` while it replicates
/// itself (so it must log what it replicates); false for a source about to
/// be promoted.
pub(crate) fn compatible(
    replica: &Snapshot,
    source: &Snapshot,
    source_is_replica: bool,
    require_gtid: bool,
) -> Result<(), Refusal> {
    let (rk, sk) = (&replica.key, &source.key);
    if replica.flavor != source.flavor {
        return Err(Refusal::FlavorMismatch {
            replica: rk.clone(),
            replica_flavor: replica.flavor,
            from: sk.clone(),
            source_flavor: source.flavor,
        });
    }
    if replica.server_id == source.server_id {
        return Err(Refusal::SameServerId {
            replica: rk.clone(),
            from: sk.clone(),
            server_id: source.server_id,
        });
    }
    if let (Some(a), Some(b)) = (&replica.server_uuid, &source.server_uuid)
        && a.eq_ignore_ascii_case(b)
    {
        return Err(Refusal::SameServerUuid {
            replica: rk.clone(),
            from: sk.clone(),
            uuid: b.clone(),
        });
    }
    if !source.log_bin {
        return Err(Refusal::NoLogBin(sk.clone()));
    }
    if source_is_replica && !source.log_replica_updates {
        return Err(Refusal::NoLogReplicaUpdates(sk.clone()));
    }
    if source.version.major_minor() > replica.version.major_minor() {
        return Err(Refusal::NewerVersion {
            replica: rk.clone(),
            replica_version: major_minor(replica),
            from: sk.clone(),
            source_version: major_minor(source),
        });
    }
    let logs_updates = replica.log_bin && replica.log_replica_updates;
    if let (Some(mine), Some(theirs)) = (
        format_rank(&replica.binlog_format),
        format_rank(&source.binlog_format),
    ) && logs_updates
        && mine < theirs
    {
        return Err(Refusal::BinlogFormat {
            replica: rk.clone(),
            replica_format: replica.binlog_format.to_ascii_uppercase(),
            from: sk.clone(),
            source_format: source.binlog_format.to_ascii_uppercase(),
        });
    }
    gtid_capable(source)?;
    gtid_capable(replica)?;
    if require_gtid
        && let Some(channel) = &replica.replica
        && !channel.gtid_mode.uses_gtid()
    {
        return Err(Refusal::NoGtid {
            instance: rk.clone(),
            reason: "its replication channel positions by binlog file and position".into(),
        });
    }
    Ok(())
}

/// MySQL needs `gtid_mode=ON` for auto-positioning; MariaDB always has
/// GTIDs.
fn gtid_capable(s: &Snapshot) -> Result<(), Refusal> {
    if s.flavor != Flavor::MySql {
        return Ok(());
    }
    match s.gtid.mode.as_deref() {
        Some(m) if m.eq_ignore_ascii_case("ON") => Ok(()),
        Some(m) => Err(Refusal::NoGtid {
            instance: s.key.clone(),
            reason: format!("gtid_mode is {m}"),
        }),
        None => Err(Refusal::NoGtid {
            instance: s.key.clone(),
            reason: "gtid_mode is unknown".into(),
        }),
    }
}

/// Threads running and lag within bounds, for an instance that replicates;
/// an instance that is not a replica passes.
pub(crate) fn healthy(
    topo: &Topology,
    s: &Snapshot,
    opts: &LegalityOptions,
) -> Result<(), Refusal> {
    let Some(channel) = &s.replica else {
        return Ok(());
    };
    if opts.require_replicating && !channel.is_replicating() {
        return Err(Refusal::NotReplicating(s.key.clone()));
    }
    if let Some(lag_ms) = topo.get(&s.key).and_then(|n| n.lag_ms)
        && lag_ms > opts.max_lag_ms
    {
        return Err(Refusal::Lagging {
            instance: s.key.clone(),
            lag_ms,
            max_lag_ms: opts.max_lag_ms,
        });
    }
    Ok(())
}

/// `STATEMENT` < `MIXED` < `ROW`: a replica that logs what it applies can
/// log in its own format only what a format of a lower or equal rank
/// sends. `None` for a format orca does not know.
pub(crate) fn format_rank(format: &str) -> Option<u8> {
    match format.trim().to_ascii_uppercase().as_str() {
        "STATEMENT" => Some(0),
        "MIXED" => Some(1),
        "ROW" => Some(2),
        _ => None,
    }
}

fn major_minor(s: &Snapshot) -> String {
    let (major, minor) = s.version.major_minor();
    format!("{major}.{minor}")
}
