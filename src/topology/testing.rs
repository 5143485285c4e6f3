//! Snapshot builders for the pure core's table tests.

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
