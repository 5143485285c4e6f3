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
        sql_state: None,
        received_heartbeats: None,
        heartbeat_period_ms: None,
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

/// The replica's IO thread cannot reach its source (`Connecting`, error
/// 2003), as after its source died.
pub fn source_down(mut s: Snapshot) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        let host = r.source.host.clone();
        r.io_running = IoThreadState::Connecting;
        r.last_io_errno = 2003;
        r.last_io_error = format!("error reconnecting to master '{host}:3306': Can't connect");
        r.seconds_behind = None;
    }
    s
}

/// The replica's IO thread was stopped by an operator (`STOP SLAVE
/// IO_THREAD`): `No`, no error.
pub fn io_stopped(mut s: Snapshot) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        r.io_running = IoThreadState::No;
        r.last_io_errno = 0;
        r.last_io_error.clear();
        r.seconds_behind = None;
    }
    s
}

/// The replica's SQL thread is stopped; its IO thread still runs.
pub fn sql_stopped(mut s: Snapshot) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        r.sql_running = false;
        r.seconds_behind = None;
    }
    s
}

/// The replica reports `Seconds_Behind_Master = secs`.
pub fn behind(mut s: Snapshot, secs: u64) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        r.seconds_behind = Some(secs);
    }
    s
}

/// An instance that did not answer ("connection refused"), with the source
/// it had when it last answered.
pub fn down(host: &str, last_source: Option<&str>) -> Unreached {
    Unreached {
        key: key(host),
        error: "connection refused".into(),
        last_source: last_source.map(key),
    }
}

pub fn mysql(host: &str, server_id: u32, uuid: &str) -> Snapshot {
    let mut s = mariadb(host, server_id);
    s.flavor = Flavor::MySql;
    s.version = Version::parse("8.0.36").expect("version");
    s.server_uuid = Some(uuid.into());
    s.super_read_only = Some(false);
    s.gtid.mode = Some("ON".into());
    s
}

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

pub fn with_mysql_gtid(mut s: Snapshot, executed: &str) -> Snapshot {
    s.gtid.executed = Some(GtidSet::parse(Flavor::MySql, executed).expect("gtid"));
    s
}

pub fn with_version(mut s: Snapshot, raw: &str) -> Snapshot {
    s.version = Version::parse(raw).expect("version");
    s
}

pub fn source_gone(mut s: Snapshot) -> Snapshot {
    if let Some(r) = s.replica.as_mut() {
        r.io_running = IoThreadState::Connecting;
        r.last_io_errno = 2003;
        r.last_io_error = "Can't connect to server".into();
        r.seconds_behind = None;
    }
    s
}

pub fn topology(snaps: Vec<Snapshot>, unreachable: Vec<Unreached>) -> Topology {
    Topology::build(snaps, unreachable)
}
