//! Errant GTID detection: transactions a replica has that did not come from
//! its replication source, such as a write made directly on the replica.
//! A replica with errant transactions must not be promoted automatically;
//! the fixes are to inject empty transactions on the primary (MySQL) or to
//! re-provision the replica.

use super::gtid::{GtidSet, MariaDbGtidPos, MySqlGtidSet};
use super::instance::{Flavor, Snapshot};

/// The errant transactions of `replica` relative to `source`, its
/// replication source, whose own sources up to the primary are `ancestors`.
///
/// `Some(set)` with a non-empty set when the replica has errant
/// transactions; `None` when it has none, and also when it cannot be told
/// (a GTID state missing, flavors that differ, a MySQL server UUID unknown):
/// this function never guesses "errant".
///
/// - MySQL: the replica's `gtid_executed` minus the source's, without the
///   transactions of the source's own server UUID (and of the UUID the
///   replica reports for its source) and of every ancestor's server UUID.
///   Those are dropped because the snapshots are not taken at the same
///   instant: the source's snapshot may be older than the replica's, so the
///   newest writes of the source or of the primary above it can show up on
///   the replica first. A write on the replica carries the replica's own
///   UUID (or a foreign one), which is kept.
/// - MariaDB: the entries of the replica's `gtid_binlog_state` (else
///   `gtid_binlog_pos`) that carry the replica's own `server_id` and that the
///   source does not cover for the same (domain, server_id): the source
///   lacks the entry or has a lower seq. The source's coverage is its
///   `gtid_binlog_state` (else `gtid_binlog_pos`), together with its
///   `gtid_current_pos` and `gtid_slave_pos` when known (a source provisioned
///   from a backup has the transactions without having them in its binlog).
///   So a former primary turned replica is not flagged for its old writes,
///   which sit in the new primary's binlog state under the old primary's
///   server_id, while a write made directly on a replica is. The source's own
///   writes carry the source's server_id and are never considered.
pub fn errant_gtids(
    replica: &Snapshot,
    source: &Snapshot,
    ancestors: &[&Snapshot],
) -> Option<GtidSet> {
    if replica.flavor != source.flavor {
        return None;
    }
    let errant = match replica.flavor {
        Flavor::MySql => GtidSet::MySql(mysql_errant(replica, source, ancestors)?),
        Flavor::MariaDb => GtidSet::MariaDb(mariadb_errant(replica, source)?),
    };
    (!errant.is_empty()).then_some(errant)
}

/// `set` as a MySQL GTID set; an empty set of any flavor reads as empty.
fn as_mysql(set: Option<&GtidSet>) -> Option<MySqlGtidSet> {
    set?.in_flavor(Flavor::MySql)?.as_mysql().cloned()
}

/// `set` as a MariaDB position; an empty set of any flavor reads as empty.
fn as_mariadb(set: Option<&GtidSet>) -> Option<MariaDbGtidPos> {
    set?.in_flavor(Flavor::MariaDb)?.as_mariadb().cloned()
}

fn mysql_errant(
    replica: &Snapshot,
    source: &Snapshot,
    ancestors: &[&Snapshot],
) -> Option<MySqlGtidSet> {
    let mine = as_mysql(replica.gtid.executed.as_ref())?;
    let theirs = as_mysql(source.gtid.executed.as_ref())?;
    let mut upstream: Vec<&str> = Vec::new();
    upstream.extend(source.server_uuid.as_deref());
    upstream.extend(
        replica
            .replica
            .as_ref()
            .and_then(|r| r.source_uuid.as_deref()),
    );
    // Without the source's UUID its own recent writes cannot be told apart.
    if upstream.is_empty() {
        return None;
    }
    for ancestor in ancestors {
        upstream.push(ancestor.server_uuid.as_deref()?);
    }
    Some(mine.subtract(&theirs).without_sources(&upstream))
}

/// The binlog state, else the binlog position.
fn mariadb_binlog(s: &Snapshot) -> Option<MariaDbGtidPos> {
    match s.gtid.binlog_state.as_ref() {
        Some(state) => as_mariadb(Some(state)),
        None => as_mariadb(s.gtid.binlog_pos.as_ref()),
    }
}

fn mariadb_errant(replica: &Snapshot, source: &Snapshot) -> Option<MariaDbGtidPos> {
    let mine = mariadb_binlog(replica)?;
    let binlog = mariadb_binlog(source);
    let executed = as_mariadb(source.gtid.executed.as_ref());
    let applied = as_mariadb(source.gtid.slave_pos.as_ref());
    if binlog.is_none() && executed.is_none() && applied.is_none() {
        return None;
    }
    let covered = [binlog, executed, applied]
        .into_iter()
        .flatten()
        .fold(MariaDbGtidPos::default(), |acc, p| acc.union(&p));
    Some(MariaDbGtidPos::from_gtids(mine.gtids().into_iter().filter(
        |g| {
            g.server_id == replica.server_id
                && covered
                    .get(g.domain, g.server_id)
                    .is_none_or(|seq| seq < g.seq)
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::instance::{
        GtidChannelMode, GtidState, InstanceKey, IoThreadState, ReplicaStatus, SemiSync, Version,
    };

    const P: &str = "11111111-1111-1111-1111-111111111111";
    const I: &str = "22222222-2222-2222-2222-222222222222";
    const R: &str = "33333333-3333-3333-3333-333333333333";
    const X: &str = "44444444-4444-4444-4444-444444444444";

    fn snapshot(flavor: Flavor, host: &str, server_id: u32, uuid: Option<&str>) -> Snapshot {
        Snapshot {
            key: InstanceKey::new(host, 3306),
            flavor,
            version: Version::parse(match flavor {
                Flavor::MySql => "8.4.0",
                Flavor::MariaDb => "10.11.6-MariaDB",
            })
            .unwrap(),
            server_id,
            server_uuid: uuid.map(str::to_string),
            read_only: false,
            super_read_only: None,
            log_bin: true,
            log_replica_updates: true,
            binlog_format: "ROW".into(),
            binlog_row_image: None,
            binlog: None,
            gtid: GtidState::default(),
            semi_sync: SemiSync::default(),
            replica: None,
            registered_replicas: Vec::new(),
            heartbeat_age_ms: None,
            report_host: None,
        }
    }

    fn replica_status(source: &str, source_uuid: Option<&str>) -> ReplicaStatus {
        ReplicaStatus {
            source: InstanceKey::new(source, 3306),
            io_running: IoThreadState::Yes,
            sql_running: true,
            last_io_errno: 0,
            last_io_error: String::new(),
            last_sql_errno: 0,
            last_sql_error: String::new(),
            read_source: None,
            exec_source: None,
            relay: None,
            seconds_behind: Some(0),
            sql_delay: 0,
            gtid_mode: GtidChannelMode::AutoPosition,
            retrieved_gtid_set: None,
            executed_gtid_set: None,
            gtid_io_pos: None,
            source_server_id: None,
            source_uuid: source_uuid.map(str::to_string),
            connect_retry: None,
            sql_state: None,
            received_heartbeats: None,
            heartbeat_period_ms: None,
        }
    }

    fn mysql(host: &str, uuid: Option<&str>, executed: Option<&str>) -> Snapshot {
        let mut s = snapshot(Flavor::MySql, host, 1, uuid);
        s.gtid.mode = Some("ON".into());
        s.gtid.executed = executed.map(|e| GtidSet::parse(Flavor::MySql, e).unwrap());
        s
    }

    struct MariaDbGtids<'a> {
        binlog_state: Option<&'a str>,
        binlog_pos: Option<&'a str>,
        current_pos: Option<&'a str>,
        slave_pos: Option<&'a str>,
    }

    const NONE: MariaDbGtids<'static> = MariaDbGtids {
        binlog_state: None,
        binlog_pos: None,
        current_pos: None,
        slave_pos: None,
    };

    fn mariadb(host: &str, server_id: u32, g: MariaDbGtids<'_>) -> Snapshot {
        let parse = |t: Option<&str>| t.map(|t| GtidSet::parse(Flavor::MariaDb, t).unwrap());
        let mut s = snapshot(Flavor::MariaDb, host, server_id, None);
        s.gtid.binlog_state = parse(g.binlog_state);
        s.gtid.binlog_pos = parse(g.binlog_pos);
        s.gtid.executed = parse(g.current_pos);
        s.gtid.slave_pos = parse(g.slave_pos);
        s
    }

    fn state(s: &str) -> MariaDbGtids<'_> {
        MariaDbGtids {
            binlog_state: Some(s),
            ..NONE
        }
    }

    fn text(set: Option<GtidSet>) -> Option<String> {
        set.map(|s| s.to_string())
    }

    #[test]
    fn mysql_cases() {
        struct Case {
            name: &'static str,
            replica: Snapshot,
            source: Snapshot,
            ancestors: Vec<Snapshot>,
            want: Option<String>,
        }
        let cases = vec![
            Case {
                name: "in sync",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-100"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "replica behind",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-90"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "write on the replica",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-100,\n{R}:1-2"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{R}:1-2")),
            },
            Case {
                name: "source snapshot older than the replica's",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "older source snapshot and a write on the replica",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120,{R}:5"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{R}:5")),
            },
            Case {
                name: "tagged write on the replica",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-100,{R}:fix:1"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{R}:fix:1")),
            },
            Case {
                name: "tagged writes of the source are not errant",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-100:t:1-5"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "intermediate source: the primary's newer writes are not errant",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120,{I}:1-3"))),
                source: mysql("i", Some(I), Some(&format!("{P}:1-100,{I}:1"))),
                ancestors: vec![mysql("p", Some(P), Some(&format!("{P}:1-130")))],
                want: None,
            },
            Case {
                name: "intermediate source without the primary as ancestor",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120"))),
                source: mysql("i", Some(I), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{P}:101-120")),
            },
            Case {
                name: "a foreign UUID is errant",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-100,{X}:1-7"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{X}:1-7")),
            },
            Case {
                name: "former primary turned replica, history already in the source",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-10,{R}:1-500"))),
                source: mysql("p", Some(P), Some(&format!("{P}:1-10,{R}:1-500"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "uppercase UUIDs in the snapshots",
                replica: mysql(
                    "r",
                    Some(&R.to_uppercase()),
                    Some(&format!("{P}:1-120,{R}:1")),
                ),
                source: mysql("p", Some(&P.to_uppercase()), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: Some(format!("{R}:1")),
            },
            Case {
                name: "fresh source with an empty gtid_executed",
                replica: mysql("r", Some(R), Some(&format!("{R}:1-3"))),
                source: mysql("p", Some(P), Some("")),
                ancestors: vec![],
                want: Some(format!("{R}:1-3")),
            },
            Case {
                name: "replica GTIDs unknown",
                replica: mysql("r", Some(R), None),
                source: mysql("p", Some(P), Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "source GTIDs unknown",
                replica: mysql("r", Some(R), Some(&format!("{R}:1"))),
                source: mysql("p", Some(P), None),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "source UUID unknown",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120,{R}:1"))),
                source: mysql("p", None, Some(&format!("{P}:1-100"))),
                ancestors: vec![],
                want: None,
            },
            Case {
                name: "an ancestor's UUID unknown",
                replica: mysql("r", Some(R), Some(&format!("{P}:1-120,{R}:1"))),
                source: mysql("i", Some(I), Some(&format!("{P}:1-100"))),
                ancestors: vec![mysql("p", None, None)],
                want: None,
            },
            Case {
                name: "flavor mismatch",
                replica: mysql("r", Some(R), Some(&format!("{R}:1"))),
                source: mariadb("p", 2, state("0-2-10")),
                ancestors: vec![],
                want: None,
            },
        ];
        for case in cases {
            let ancestors: Vec<&Snapshot> = case.ancestors.iter().collect();
            let got = errant_gtids(&case.replica, &case.source, &ancestors);
            assert_eq!(text(got), case.want, "{}", case.name);
        }
    }

    #[test]
    fn mysql_source_uuid_from_replica_status() {
        let mut replica = mysql("r", Some(R), Some(&format!("{P}:1-120,{R}:1")));
        let source = mysql("p", None, Some(&format!("{P}:1-100")));
        replica.replica = Some(replica_status("p", Some(&P.to_uppercase())));
        assert_eq!(
            text(errant_gtids(&replica, &source, &[])),
            Some(format!("{R}:1"))
        );
    }

    #[test]
    fn mysql_empty_set_deserialized_as_mariadb_still_works() {
        let replica = mysql("r", Some(R), Some(&format!("{R}:1")));
        let mut source = mysql("p", Some(P), None);
        source.gtid.executed = Some(serde_json::from_str("\"\"").unwrap());
        assert_eq!(
            text(errant_gtids(&replica, &source, &[])),
            Some(format!("{R}:1"))
        );
    }

    #[test]
    fn mariadb_cases() {
        struct Case {
            name: &'static str,
            replica: Snapshot,
            source: Snapshot,
            want: Option<&'static str>,
        }
        let cases = vec![
            Case {
                name: "in sync",
                replica: mariadb("r", 3, state("0-2-100")),
                source: mariadb("p", 2, state("0-2-100")),
                want: None,
            },
            Case {
                name: "source snapshot older than the replica's",
                replica: mariadb("r", 3, state("0-2-120")),
                source: mariadb("p", 2, state("0-2-100")),
                want: None,
            },
            Case {
                name: "write on the replica",
                replica: mariadb("r", 3, state("0-2-100,0-3-101")),
                source: mariadb("p", 2, state("0-2-100")),
                want: Some("0-3-101"),
            },
            Case {
                name: "write on the replica, hidden by the source's later seqs",
                replica: mariadb("r", 3, state("0-2-100,0-3-101")),
                source: mariadb("p", 2, state("0-2-150")),
                want: Some("0-3-101"),
            },
            Case {
                name: "write on the replica in its own domain",
                replica: mariadb("r", 3, state("0-2-100,7-3-4")),
                source: mariadb("p", 2, state("0-2-100")),
                want: Some("7-3-4"),
            },
            Case {
                name: "former primary turned replica is not errant",
                replica: mariadb("r", 1, state("0-1-100,0-2-130")),
                source: mariadb("p", 2, state("0-1-100,0-2-130")),
                want: None,
            },
            Case {
                name: "former primary turned replica, source snapshot older",
                replica: mariadb("r", 1, state("0-1-100,0-2-160")),
                source: mariadb("p", 2, state("0-1-100,0-2-130")),
                want: None,
            },
            Case {
                name: "former primary with writes the new primary never got",
                replica: mariadb("r", 1, state("0-1-103,0-2-130")),
                source: mariadb("p", 2, state("0-1-100,0-2-130")),
                want: Some("0-1-103"),
            },
            Case {
                name: "former primary, new write after the switch",
                replica: mariadb("r", 1, state("0-1-131,0-2-130")),
                source: mariadb("p", 2, state("0-1-100,0-2-130")),
                want: Some("0-1-131"),
            },
            Case {
                name: "other servers' entries are never errant",
                replica: mariadb("r", 3, state("0-2-100,0-4-90,1-5-3")),
                source: mariadb("p", 2, state("0-2-100")),
                want: None,
            },
            Case {
                name: "binlog_pos when there is no binlog_state",
                replica: mariadb(
                    "r",
                    3,
                    MariaDbGtids {
                        binlog_pos: Some("0-3-101"),
                        ..NONE
                    },
                ),
                source: mariadb(
                    "p",
                    2,
                    MariaDbGtids {
                        binlog_pos: Some("0-2-100"),
                        ..NONE
                    },
                ),
                want: Some("0-3-101"),
            },
            Case {
                name: "binlog_state preferred to binlog_pos",
                replica: mariadb(
                    "r",
                    3,
                    MariaDbGtids {
                        binlog_state: Some("0-2-100,0-3-50"),
                        binlog_pos: Some("0-2-100"),
                        ..NONE
                    },
                ),
                source: mariadb("p", 2, state("0-2-100,0-3-50")),
                want: None,
            },
            Case {
                name: "source provisioned from a backup: slave_pos covers",
                replica: mariadb("r", 1, state("0-1-100,0-2-130")),
                source: mariadb(
                    "p",
                    2,
                    MariaDbGtids {
                        binlog_state: Some("0-2-130"),
                        slave_pos: Some("0-1-100"),
                        ..NONE
                    },
                ),
                want: None,
            },
            Case {
                name: "source without binlog: current_pos covers",
                replica: mariadb("r", 1, state("0-1-100")),
                source: mariadb(
                    "p",
                    2,
                    MariaDbGtids {
                        current_pos: Some("0-1-100"),
                        ..NONE
                    },
                ),
                want: None,
            },
            Case {
                name: "replica without binlog",
                replica: mariadb("r", 3, NONE),
                source: mariadb("p", 2, state("0-2-100")),
                want: None,
            },
            Case {
                name: "source GTIDs unknown",
                replica: mariadb("r", 3, state("0-3-101")),
                source: mariadb("p", 2, NONE),
                want: None,
            },
            Case {
                name: "flavor mismatch",
                replica: mariadb("r", 3, state("0-3-101")),
                source: mysql("p", Some(P), Some(&format!("{P}:1"))),
                want: None,
            },
        ];
        for case in cases {
            let got = errant_gtids(&case.replica, &case.source, &[]);
            if let Some(set) = &got {
                assert_eq!(set.flavor(), Flavor::MariaDb, "{}", case.name);
            }
            assert_eq!(text(got).as_deref(), case.want, "{}", case.name);
        }
    }

    #[test]
    fn mariadb_ignores_ancestors() {
        let replica = mariadb("r", 3, state("0-1-200,0-3-201"));
        let source = mariadb("i", 2, state("0-1-150"));
        let primary = mariadb("p", 1, state("0-1-200"));
        assert_eq!(
            text(errant_gtids(&replica, &source, &[&primary])).as_deref(),
            Some("0-3-201")
        );
    }
}

/// Transactions `instance` holds that `primary` lacks (its own writes, or
/// a former primary's tail), by binlog state where the flavor has one,
/// else by executed set; `None` when `primary` holds everything it does,
/// or when either side's GTIDs are unknown.
pub fn extra_transactions(instance: &Snapshot, primary: &Snapshot) -> Option<GtidSet> {
    extra(instance, primary, false)
}

/// [`extra_transactions`] of a member that replicates from `primary`
/// while `primary` is writable: the transactions `primary` wrote itself
/// (its `server_id` on MariaDB, its server UUID on MySQL) are not counted.
/// The two snapshots are not taken at the same instant, so under writes a
/// replica probed after its primary already holds the primary's newest
/// transactions, which the primary's snapshot does not show yet. Anything
/// else (a read-only primary, say one restarted without the tail a replica
/// received) is judged by [`extra_transactions`].
pub fn extra_transactions_of_replica(instance: &Snapshot, primary: &Snapshot) -> Option<GtidSet> {
    let live_source = !primary.is_read_only()
        && instance
            .replica
            .as_ref()
            .is_some_and(|r| r.source == primary.key);
    extra(instance, primary, live_source)
}

fn extra(instance: &Snapshot, primary: &Snapshot, skip_own: bool) -> Option<GtidSet> {
    let mine = instance
        .gtid
        .binlog_state
        .as_ref()
        .or(instance.gtid.executed.as_ref())?;
    let theirs = primary
        .gtid
        .binlog_state
        .as_ref()
        .or(primary.gtid.executed.as_ref())?;
    if mine.is_empty() {
        return None;
    }
    // MariaDB: per (domain, server_id), since a higher sequence number of
    // another server in the same domain does not contain this server's
    // transactions (a former primary's unreplicated tail).
    if let (Some(m), Some(t)) = (mine.as_mariadb(), theirs.as_mariadb()) {
        let extra: Vec<_> = m
            .gtids()
            .into_iter()
            .filter(|g| !skip_own || g.server_id != primary.server_id)
            .filter(|g| t.get(g.domain, g.server_id).is_none_or(|seq| seq < g.seq))
            .collect();
        return (!extra.is_empty()).then(|| GtidSet::MariaDb(MariaDbGtidPos::from_gtids(extra)));
    }
    if let (Some(m), Some(t)) = (mine.as_mysql(), theirs.as_mysql()) {
        let own: Vec<&str> = primary
            .server_uuid
            .as_deref()
            .filter(|_| skip_own)
            .into_iter()
            .collect();
        let extra = m.subtract(t).without_sources(&own);
        return (!extra.is_empty()).then_some(GtidSet::MySql(extra));
    }
    if theirs.contains(mine) == Some(true) {
        return None;
    }
    Some(
        mine.subtract(theirs)
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| mine.clone()),
    )
}

#[cfg(test)]
mod extra_tests {
    use super::*;
    use crate::topology::instance::Flavor;
    use crate::topology::testing::{mariadb, mysql, replica_of, with_gtid};

    #[test]
    fn extra_transactions_of_a_former_primary() {
        let p = with_gtid(mariadb("p", 2), "0-1-10,0-2-15");
        let behind = with_gtid(replica_of("r", 3, "p"), "0-1-10,0-2-12");
        let diverged = with_gtid(mariadb("old", 1), "0-1-11");
        let fresh = mariadb("new", 4);
        assert_eq!(extra_transactions(&behind, &p), None);
        assert_eq!(extra_transactions(&fresh, &p), None);
        assert_eq!(
            extra_transactions(&diverged, &p).map(|g| g.to_string()),
            Some("0-1-11".into())
        );
    }

    #[test]
    fn the_primarys_own_newest_writes_are_not_extra() {
        // Probed after the primary, a replica already holds writes the
        // primary's snapshot does not show yet.
        let p = with_gtid(mariadb("p", 10), "0-10-100");
        let ahead = with_gtid(replica_of("r", 12, "p"), "0-10-104");
        let own = with_gtid(replica_of("w", 12, "p"), "0-10-104,0-12-1");
        let elsewhere = with_gtid(replica_of("x", 12, "q"), "0-10-104");
        assert_eq!(extra_transactions_of_replica(&ahead, &p), None);
        assert_eq!(
            extra_transactions_of_replica(&own, &p).map(|g| g.to_string()),
            Some("0-12-1".into())
        );
        // Not its replica, or a read-only primary: every transaction counts
        // (a primary restarted without the tail its replica received).
        assert_eq!(
            extra_transactions_of_replica(&elsewhere, &p).map(|g| g.to_string()),
            Some("0-10-104".into())
        );
        let mut fenced = p.clone();
        fenced.read_only = true;
        assert_eq!(
            extra_transactions_of_replica(&ahead, &fenced).map(|g| g.to_string()),
            Some("0-10-104".into())
        );
        assert_eq!(
            extra_transactions(&ahead, &p).map(|g| g.to_string()),
            Some("0-10-104".into())
        );
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let w = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut mp = mysql("mp", 1, u);
        mp.gtid.executed = GtidSet::parse(Flavor::MySql, &format!("{u}:1-100")).ok();
        let mut mr = mysql("mr", 2, w);
        mr.replica = replica_of("mr", 2, "mp").replica;
        mr.gtid.executed = GtidSet::parse(Flavor::MySql, &format!("{u}:1-104")).ok();
        assert_eq!(extra_transactions_of_replica(&mr, &mp), None);
        mr.gtid.executed = GtidSet::parse(Flavor::MySql, &format!("{u}:1-104,{w}:1-2")).ok();
        assert_eq!(
            extra_transactions_of_replica(&mr, &mp).map(|g| g.to_string()),
            Some(format!("{w}:1-2"))
        );
    }
}
