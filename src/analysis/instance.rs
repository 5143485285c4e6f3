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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::{key, mariadb, replica_of, with_gtid};

    fn problems_of(
        snaps: Vec<crate::topology::Snapshot>,
        down: &[&str],
    ) -> BTreeMap<InstanceKey, Vec<Problem>> {
        let t = Topology::build(
            snaps,
            down.iter()
                .map(|h| crate::topology::graph::Unreached::new(key(h), "refused"))
                .collect(),
        );
        instance_problems(&t, Thresholds::default())
    }

    #[test]
    fn healthy_topology_has_no_problems() {
        assert!(problems_of(vec![mariadb("p", 1), replica_of("r", 2, "p")], &[]).is_empty());
    }

    #[test]
    fn each_problem() {
        use Problem::*;
        let mut io_down = replica_of("io-down", 2, "p");
        let r = io_down.replica.as_mut().unwrap();
        r.io_running = IoThreadState::Connecting;
        r.last_io_errno = 2003;
        let mut io_stopped = replica_of("io-stopped", 3, "p");
        io_stopped.replica.as_mut().unwrap().io_running = IoThreadState::No;
        let mut sql_err = replica_of("sql-err", 4, "p");
        let r = sql_err.replica.as_mut().unwrap();
        r.sql_running = false;
        r.last_sql_errno = 1062;
        r.last_sql_error = "Duplicate entry".into();
        let mut lagging = replica_of("lagging", 5, "p");
        lagging.replica.as_mut().unwrap().seconds_behind = Some(60);
        let mut writable = replica_of("writable", 6, "p");
        writable.read_only = false;
        let mut file_pos = replica_of("file-pos", 7, "p");
        file_pos.replica.as_mut().unwrap().gtid_mode =
            crate::topology::instance::GtidChannelMode::No;
        let mut stmt = replica_of("stmt", 8, "p");
        stmt.binlog_format = "STATEMENT".into();
        let mut old = replica_of("old", 9, "p");
        old.version = crate::topology::Version::parse("10.6.1-MariaDB").unwrap();
        let mut relay = replica_of("relay", 10, "p");
        relay.log_replica_updates = false;
        let mut nobin = replica_of("nobin", 12, "p");
        nobin.log_bin = false;
        let got = problems_of(
            vec![
                with_gtid(mariadb("p", 1), "0-1-5"),
                io_down,
                io_stopped,
                sql_err,
                lagging,
                writable,
                file_pos,
                stmt,
                old,
                relay,
                replica_of("under-relay", 11, "relay"),
                nobin,
                with_gtid(replica_of("errant", 13, "p"), "0-1-5,0-13-6"),
                replica_of("orphan", 14, "gone"),
                replica_of("under-dead", 15, "dead"),
            ],
            &["dead"],
        );
        let of = |h: &str| got.get(&key(h)).cloned().unwrap_or_default();
        assert_eq!(of("p"), vec![]);
        assert_eq!(of("io-down"), vec![SourceUnreachable]);
        assert_eq!(of("io-stopped"), vec![IoThreadStopped]);
        assert_eq!(of("sql-err"), vec![SqlThreadStopped, ReplicationSqlError]);
        assert_eq!(of("lagging"), vec![ReplicaLagging]);
        assert_eq!(of("writable"), vec![WritableReplica]);
        assert_eq!(of("file-pos"), vec![NoGtidReplication]);
        assert_eq!(of("stmt"), vec![BinlogFormatMismatch]);
        assert_eq!(of("old"), vec![OlderThanSource]);
        assert_eq!(of("relay"), vec![NoLogReplicaUpdates]);
        assert_eq!(of("nobin"), vec![NoLogBin]);
        assert_eq!(of("errant"), vec![ErrantGtid]);
        assert_eq!(of("orphan"), vec![Orphan]);
        assert_eq!(of("dead"), vec![Unreachable]);
        assert_eq!(of("under-dead"), vec![]);
    }

    #[test]
    fn read_only_primary_with_replicas() {
        let mut p = mariadb("p", 1);
        p.read_only = true;
        let got = problems_of(vec![p, replica_of("r", 2, "p")], &[]);
        assert_eq!(
            got.get(&key("p")).unwrap(),
            &vec![Problem::NoWritablePrimary]
        );
    }
}
