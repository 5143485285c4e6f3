//! Snapshot builders for the pure core's table tests.

use super::graph::{Topology, Unreached};
use super::gtid::GtidSet;
use super::instance::{
    Flavor, GtidChannelMode, GtidState, InstanceKey, IoThreadState, ReplicaStatus, SemiSync,
    Snapshot, Version,
};

/// A healthy, writable MariaDB 10.11 instance at `host:3306`.
pub fn mariadb(host: &str, server_id: u32) -> Snapshot {
    Snapshot {
        key: InstanceKey::new(host, 3306),
        flavor: Flavor::MariaDb,
        version: Version::parse("10.11.6-MariaDB").expect("version"),
        server_id,
        server_uuid: None,
        read_only: false,
        super_read_only: None,
        log_bin: true,
        log_replica_updates: true,
        binlog_format: "ROW".into(),
        binlog_row_image: Some("FULL".into()),
        binlog: None,
        gtid: GtidState::default(),
        semi_sync: SemiSync::default(),
        replica: None,
        registered_replicas: Vec::new(),
        heartbeat_age_ms: None,
        report_host: Some(host.into()),
    }
}

/// A read-only replica of `source`, both threads running.
pub fn replica_of(host: &str, server_id: u32, source: &str) -> Snapshot {
    let mut s = mariadb(host, server_id);
    s.read_only = true;
    s.replica = Some(ReplicaStatus {
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
        gtid_mode: GtidChannelMode::SlavePos,
        retrieved_gtid_set: None,
        executed_gtid_set: None,
        gtid_io_pos: None,
        source_server_id: None,
        source_uuid: None,
        connect_retry: Some(1),
    });
    s
}

/// Sets MariaDB GTID state: the binlog state and the current position.
pub fn with_gtid(mut s: Snapshot, state: &str) -> Snapshot {
    let set = GtidSet::parse(Flavor::MariaDb, state).expect("gtid");
    s.gtid.binlog_state = Some(set.clone());
    s.gtid.executed = Some(set);
    s
}

pub fn key(host: &str) -> InstanceKey {
    InstanceKey::new(host, 3306)
}

/// A writable MySQL 8.0 instance with GTIDs on and the given server UUID.
pub fn mysql(host: &str, server_id: u32, uuid: &str) -> Snapshot {
    let mut s = mariadb(host, server_id);
    s.flavor = Flavor::MySql;
    s.version = Version::parse("8.0.36").expect("version");
    s.server_uuid = Some(uuid.into());
    s.super_read_only = Some(false);
    s.gtid.mode = Some("ON".into());
    s
}

/// A read-only MySQL replica of `source` (whose UUID is `source_uuid`),
/// auto-positioned, both threads running.
pub fn mysql_replica_of(
    host: &str,
    server_id: u32,
    uuid: &str,
    source: &str,
    source_uuid: &str,
) -> Snapshot {
    let mut s = replica_of(host, server_id, source);
    let m = mysql(host, server_id, uuid);
    s.flavor = m.flavor;
    s.version = m.version;
    s.server_uuid = m.server_uuid;
    s.super_read_only = Some(true);
    s.gtid.mode = m.gtid.mode;
    if let Some(r) = s.replica.as_mut() {
        r.gtid_mode = GtidChannelMode::AutoPosition;
        r.source_uuid = Some(source_uuid.into());
    }
    s
}

/// Sets MySQL `gtid_executed`.
pub fn with_mysql_gtid(mut s: Snapshot, executed: &str) -> Snapshot {
    s.gtid.executed = Some(GtidSet::parse(Flavor::MySql, executed).expect("gtid"));
    s
}

/// Sets the server version.
pub fn with_version(mut s: Snapshot, raw: &str) -> Snapshot {
    s.version = Version::parse(raw).expect("version");
    s
}

/// A replica whose source went away: the IO thread keeps trying to
/// connect, lag is unknown.
pub fn source_gone(mut s: Snapshot) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        r.io_running = IoThreadState::Connecting;
        r.last_io_errno = 2003;
        r.last_io_error = "Can't connect to server".into();
        r.seconds_behind = None;
    }
    s
}

/// An instance that did not answer; `last_source` keeps it in the tree.
pub fn down(host: &str, last_source: Option<&str>) -> Unreached {
    Unreached {
        key: key(host),
        error: "connection refused".into(),
        last_source: last_source.map(key),
    }
}

/// The graph of the given snapshots and unreachable instances.
pub fn topology(snaps: Vec<Snapshot>, unreachable: Vec<Unreached>) -> Topology {
    Topology::build(snaps, unreachable)
}
