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
        .as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::graph::Unreached;
    use crate::topology::testing::{
        down, key, mariadb, mysql, mysql_replica_of, replica_of, topology, with_version,
    };

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U3: &str = "5e11fa47-71ca-11e1-9e33-c80aa9429562";

    /// p with replicas r1, r2; mid under p with leaf under it.
    fn star(change: impl FnOnce(&mut Vec<Snapshot>), unreachable: Vec<Unreached>) -> Topology {
        let mut snaps = vec![
            mariadb("p", 1),
            replica_of("r1", 2, "p"),
            replica_of("r2", 3, "p"),
            replica_of("mid", 4, "p"),
            replica_of("leaf", 5, "mid"),
        ];
        change(&mut snaps);
        topology(snaps, unreachable)
    }

    fn edit(host: &'static str, f: impl Fn(&mut Snapshot)) -> impl FnOnce(&mut Vec<Snapshot>) {
        move |snaps: &mut Vec<Snapshot>| {
            for s in snaps.iter_mut().filter(|s| s.key == key(host)) {
                f(s);
            }
        }
    }

    fn check(
        t: &Topology,
        replica: &str,
        source: &str,
        opts: &LegalityOptions,
    ) -> Result<(), Refusal> {
        can_replicate_from(t, &key(replica), &key(source), opts)
    }

    #[test]
    fn legal_moves() {
        let t = star(|_| {}, vec![]);
        let d = LegalityOptions::default();
        for (replica, source) in [
            ("r1", "r2"),
            ("r1", "p"),
            ("leaf", "p"),
            ("r1", "mid"),
            ("leaf", "r2"),
        ] {
            assert_eq!(
                check(&t, replica, source, &d),
                Ok(()),
                "{replica} under {source}"
            );
        }
        // A replica not logging its updates takes any format.
        let t = star(
            edit("r1", |s| {
                s.binlog_format = "STATEMENT".into();
                s.log_replica_updates = false;
            }),
            vec![],
        );
        assert_eq!(check(&t, "r1", "r2", &d), Ok(()));
        // An older source is fine.
        let t = star(
            edit("r2", |s| *s = with_version(s.clone(), "10.6.16-MariaDB")),
            vec![],
        );
        assert_eq!(check(&t, "r1", "r2", &d), Ok(()));
    }

    #[test]
    fn every_refusal() {
        let d = LegalityOptions::default();
        let no_gtid_channel = LegalityOptions {
            require_gtid: true,
            ..LegalityOptions::default()
        };
        let mysql_star = |f: &dyn Fn(&mut Vec<Snapshot>)| {
            let mut snaps = vec![
                mysql("p", 1, U1),
                mysql_replica_of("r1", 2, U2, "p", U1),
                mysql_replica_of("r2", 3, U3, "p", U1),
            ];
            f(&mut snaps);
            topology(snaps, vec![])
        };
        let cases: Vec<(&str, Topology, &str, &str, LegalityOptions, Refusal, &str)> = vec![
            (
                "same instance",
                star(|_| {}, vec![]),
                "r1",
                "r1",
                d.clone(),
                Refusal::SameInstance(key("r1")),
                "r1:3306 cannot replicate from itself",
            ),
            (
                "unknown",
                star(|_| {}, vec![]),
                "r1",
                "nowhere",
                d.clone(),
                Refusal::UnknownInstance(key("nowhere")),
                "nowhere:3306 is not in the topology",
            ),
            (
                "unreachable",
                star(|_| {}, vec![down("gone", Some("p"))]),
                "r1",
                "gone",
                d.clone(),
                Refusal::Unreachable(key("gone")),
                "gone:3306 did not answer the latest probe",
            ),
            (
                "cycle",
                star(|_| {}, vec![]),
                "mid",
                "leaf",
                d.clone(),
                Refusal::WouldCycle {
                    replica: key("mid"),
                    from: key("leaf"),
                },
                "leaf:3306 replicates, directly or not, from mid:3306: that would make a cycle",
            ),
            (
                "cycle through the primary",
                star(|_| {}, vec![]),
                "p",
                "leaf",
                d.clone(),
                Refusal::WouldCycle {
                    replica: key("p"),
                    from: key("leaf"),
                },
                "that would make a cycle",
            ),
            (
                "no log_bin",
                star(edit("r2", |s| s.log_bin = false), vec![]),
                "r1",
                "r2",
                d.clone(),
                Refusal::NoLogBin(key("r2")),
                "r2:3306 has no binary log (log_bin is off)",
            ),
            (
                "no log_replica_updates on a replica source",
                star(edit("r2", |s| s.log_replica_updates = false), vec![]),
                "r1",
                "r2",
                d.clone(),
                Refusal::NoLogReplicaUpdates(key("r2")),
                "r2:3306 is a replica without log_replica_updates",
            ),
            (
                "newer source",
                star(
                    edit("r2", |s| *s = with_version(s.clone(), "11.4.2-MariaDB")),
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::NewerVersion {
                    replica: key("r1"),
                    replica_version: "10.11".into(),
                    from: key("r2"),
                    source_version: "11.4".into(),
                },
                "r2:3306 runs 11.4, newer than r1:3306 (10.11): a replica must never be older than its source",
            ),
            (
                "ROW into a STATEMENT replica that logs",
                star(edit("r1", |s| s.binlog_format = "STATEMENT".into()), vec![]),
                "r1",
                "r2",
                d.clone(),
                Refusal::BinlogFormat {
                    replica: key("r1"),
                    replica_format: "STATEMENT".into(),
                    from: key("r2"),
                    source_format: "ROW".into(),
                },
                "r1:3306 logs binlog_format STATEMENT and cannot log what r2:3306 sends as ROW",
            ),
            (
                "MIXED into a STATEMENT replica that logs",
                star(
                    |snaps: &mut Vec<Snapshot>| {
                        edit("r1", |s| s.binlog_format = "statement".into())(snaps);
                        edit("r2", |s| s.binlog_format = "mixed".into())(snaps);
                    },
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::BinlogFormat {
                    replica: key("r1"),
                    replica_format: "STATEMENT".into(),
                    from: key("r2"),
                    source_format: "MIXED".into(),
                },
                "sends as MIXED",
            ),
            (
                "same server_id",
                star(edit("r2", |s| s.server_id = 2), vec![]),
                "r1",
                "r2",
                d.clone(),
                Refusal::SameServerId {
                    replica: key("r1"),
                    from: key("r2"),
                    server_id: 2,
                },
                "r1:3306 and r2:3306 have the same server_id 2",
            ),
            (
                "same server_uuid",
                mysql_star(&|snaps| edit("r2", |s| s.server_uuid = Some(U2.to_uppercase()))(snaps)),
                "r1",
                "r2",
                d.clone(),
                Refusal::SameServerUuid {
                    replica: key("r1"),
                    from: key("r2"),
                    uuid: U2.to_uppercase(),
                },
                "have the same server_uuid",
            ),
            (
                "source not replicating",
                star(
                    edit("r2", |s| {
                        if let Some(c) = s.replica.as_mut() {
                            c.sql_running = false;
                        }
                    }),
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::NotReplicating(key("r2")),
                "r2:3306 is not replicating (an IO or SQL thread is not running)",
            ),
            (
                "replica not replicating",
                star(
                    edit("r1", |s| {
                        if let Some(c) = s.replica.as_mut() {
                            c.io_running = crate::topology::instance::IoThreadState::No;
                        }
                    }),
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::NotReplicating(key("r1")),
                "r1:3306 is not replicating",
            ),
            (
                "lagging source",
                star(
                    edit("r2", |s| {
                        if let Some(c) = s.replica.as_mut() {
                            c.seconds_behind = Some(30);
                        }
                    }),
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::Lagging {
                    instance: key("r2"),
                    lag_ms: 30_000,
                    max_lag_ms: 10_000,
                },
                "r2:3306 lags 30000 ms, above the limit of 10000 ms",
            ),
            (
                "lagging replica",
                star(
                    edit("r1", |s| {
                        if let Some(c) = s.replica.as_mut() {
                            c.seconds_behind = Some(11);
                        }
                    }),
                    vec![],
                ),
                "r1",
                "r2",
                d.clone(),
                Refusal::Lagging {
                    instance: key("r1"),
                    lag_ms: 11_000,
                    max_lag_ms: 10_000,
                },
                "r1:3306 lags 11000 ms",
            ),
            (
                "MySQL without gtid_mode",
                mysql_star(&|snaps| {
                    edit("r2", |s| s.gtid.mode = Some("OFF_PERMISSIVE".into()))(snaps)
                }),
                "r1",
                "r2",
                d.clone(),
                Refusal::NoGtid {
                    instance: key("r2"),
                    reason: "gtid_mode is OFF_PERMISSIVE".into(),
                },
                "r2:3306 cannot use GTID positioning: gtid_mode is OFF_PERMISSIVE",
            ),
            (
                "MySQL with gtid_mode unknown",
                mysql_star(&|snaps| edit("r1", |s| s.gtid.mode = None)(snaps)),
                "r1",
                "r2",
                d.clone(),
                Refusal::NoGtid {
                    instance: key("r1"),
                    reason: "gtid_mode is unknown".into(),
                },
                "gtid_mode is unknown",
            ),
            (
                "channel by file and position when GTID is required",
                star(
                    edit("r1", |s| {
                        if let Some(c) = s.replica.as_mut() {
                            c.gtid_mode = crate::topology::instance::GtidChannelMode::No;
                        }
                    }),
                    vec![],
                ),
                "r1",
                "r2",
                no_gtid_channel,
                Refusal::NoGtid {
                    instance: key("r1"),
                    reason: "its replication channel positions by binlog file and position".into(),
                },
                "r1:3306 cannot use GTID positioning",
            ),
            (
                "flavors",
                {
                    let mut snaps = vec![
                        mariadb("p", 1),
                        replica_of("r1", 2, "p"),
                        mysql("other", 9, U3),
                    ];
                    snaps.push(mysql("x", 10, U1));
                    topology(snaps, vec![])
                },
                "r1",
                "other",
                d.clone(),
                Refusal::FlavorMismatch {
                    replica: key("r1"),
                    replica_flavor: Flavor::MariaDb,
                    from: key("other"),
                    source_flavor: Flavor::MySql,
                },
                "r1:3306 is mariadb and other:3306 is mysql: orca does not replicate across flavors",
            ),
        ];
        for (name, t, replica, source, opts, want, message) in cases {
            let got = check(&t, replica, source, &opts);
            assert_eq!(got, Err(want.clone()), "{name}");
            assert!(want.to_string().contains(message), "{name}: {want}");
        }
    }

    #[test]
    fn structural_options_ignore_state() {
        let t = star(
            edit("r2", |s| {
                if let Some(c) = s.replica.as_mut() {
                    c.sql_running = false;
                    c.seconds_behind = Some(3600);
                }
            }),
            vec![],
        );
        assert!(check(&t, "r1", "r2", &LegalityOptions::default()).is_err());
        assert_eq!(
            check(&t, "r1", "r2", &LegalityOptions::structural()),
            Ok(())
        );
        let lax = LegalityOptions {
            require_replicating: false,
            ..LegalityOptions::default()
        };
        assert!(matches!(
            check(&t, "r1", "r2", &lax),
            Err(Refusal::Lagging {
                lag_ms: 3_600_000,
                ..
            })
        ));
    }

    #[test]
    fn refusals_serialize_with_their_reason() {
        let r = Refusal::Lagging {
            instance: key("r1"),
            lag_ms: 5,
            max_lag_ms: 1,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "refusal": "lagging",
                "detail": {"instance": "r1:3306", "lag_ms": 5, "max_lag_ms": 1}
            })
        );
        let r = Refusal::NoLogBin(key("r2"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"refusal": "no_log_bin", "detail": "r2:3306"})
        );
        let back: Refusal = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
