//! Pure readers of server answers: variables, status, replica status,
//! binlog status and replica hosts, in either flavor's column names, into
//! the pieces of a [`Snapshot`].

use std::collections::BTreeMap;

use crate::topology::instance::{GtidChannelMode, GtidState, IoThreadState, SemiSync};
use crate::topology::{
    BinlogCoordinates, Flavor, GtidSet, InstanceKey, ParseError, ReplicaStatus, Snapshot,
};

use super::Dialect;

/// One row of a text-protocol answer: column name → value, NULL as `None`.
pub type TextRow = BTreeMap<String, Option<String>>;

/// Name → value of `SHOW VARIABLES` / `SHOW STATUS` rows, names lower-cased.
pub type NameValues = BTreeMap<String, String>;

/// Reads `Variable_name` / `Value` rows.
pub fn name_values(rows: &[TextRow]) -> NameValues {
    rows.iter()
        .filter_map(|r| {
            let name = r.get("Variable_name").cloned().flatten()?;
            let value = r.get("Value").cloned().flatten().unwrap_or_default();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect()
}

/// The same column under its pre-8.0.22 name (Master/Slave) or its new
/// one (Source/Replica). Words are swapped whole, so `Replicate_Do_DB`
/// stays what it is.
fn column<'a>(row: &'a TextRow, old_name: &str) -> Option<&'a str> {
    if let Some(v) = row.get(old_name) {
        return v.as_deref();
    }
    let new_name: Vec<&str> = old_name
        .split('_')
        .map(|w| match w {
            "Master" => "Source",
            "Slave" => "Replica",
            w => w,
        })
        .collect();
    row.get(&new_name.join("_")).and_then(|v| v.as_deref())
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

fn number<T: std::str::FromStr>(v: Option<&str>) -> Option<T> {
    non_empty(v).and_then(|s| s.parse().ok())
}

fn flag(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_uppercase()).as_deref(),
        Some("ON" | "1" | "YES" | "TRUE")
    )
}

fn coords(file: Option<&str>, pos: Option<&str>) -> Option<BinlogCoordinates> {
    let file = non_empty(file)?;
    let pos = number::<u64>(pos)?;
    Some(BinlogCoordinates::new(file, pos))
}

/// The default channel of `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`;
/// `None` when the instance is not a replica (no rows, or no source host).
pub fn replica_status(rows: &[TextRow]) -> Result<Option<ReplicaStatus>, ParseError> {
    match rows.iter().find(|r| connection_name(r).is_empty()) {
        Some(row) => replica_row(row),
        None => Ok(None),
    }
}

/// Every replication connection of `SHOW ALL SLAVES STATUS` (MariaDB) or
/// channel of `SHOW REPLICA STATUS` (MySQL) that has a source: its name
/// (`""`: the default one) and status.
pub fn replica_connections(rows: &[TextRow]) -> Result<Vec<(String, ReplicaStatus)>, ParseError> {
    let mut out = Vec::new();
    for row in rows {
        if let Some(r) = replica_row(row)? {
            out.push((connection_name(row).to_string(), r));
        }
    }
    Ok(out)
}

/// Whether the rows of [`replica_connections`] have the connection
/// `name` (named connections are case-insensitive).
pub fn has_connection(rows: &[TextRow], name: &str) -> bool {
    rows.iter()
        .any(|r| connection_name(r).eq_ignore_ascii_case(name))
}

/// Multi-source setups list one row per channel; the default channel has
/// an empty name (MySQL `Channel_Name`, MariaDB `Connection_name`).
fn connection_name(row: &TextRow) -> &str {
    ["Channel_Name", "Connection_name"]
        .iter()
        .find_map(|c| non_empty(row.get(*c).and_then(|v| v.as_deref())))
        .unwrap_or("")
}

/// One row of a replica status; `None` without a source host.
fn replica_row(row: &TextRow) -> Result<Option<ReplicaStatus>, ParseError> {
    let Some(host) = non_empty(column(row, "Master_Host")) else {
        return Ok(None);
    };
    let port = number::<u16>(column(row, "Master_Port")).unwrap_or(3306);
    let gtid_mode = if flag(column(row, "Auto_Position")) {
        GtidChannelMode::AutoPosition
    } else {
        match non_empty(row.get("Using_Gtid").and_then(|v| v.as_deref()))
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("slave_pos") => GtidChannelMode::SlavePos,
            Some("current_pos") => GtidChannelMode::CurrentPos,
            _ => GtidChannelMode::No,
        }
    };
    Ok(Some(ReplicaStatus {
        source: InstanceKey::new(host, port),
        io_running: IoThreadState::parse(column(row, "Slave_IO_Running").unwrap_or("No")),
        sql_running: flag(column(row, "Slave_SQL_Running")),
        last_io_errno: number(column(row, "Last_IO_Errno")).unwrap_or(0),
        last_io_error: column(row, "Last_IO_Error").unwrap_or_default().to_string(),
        last_sql_errno: number(column(row, "Last_SQL_Errno")).unwrap_or(0),
        last_sql_error: column(row, "Last_SQL_Error")
            .unwrap_or_default()
            .to_string(),
        read_source: coords(
            column(row, "Master_Log_File"),
            column(row, "Read_Master_Log_Pos"),
        ),
        exec_source: coords(
            column(row, "Relay_Master_Log_File"),
            column(row, "Exec_Master_Log_Pos"),
        ),
        relay: coords(column(row, "Relay_Log_File"), column(row, "Relay_Log_Pos")),
        seconds_behind: number(column(row, "Seconds_Behind_Master")),
        sql_delay: number(column(row, "SQL_Delay")).unwrap_or(0),
        gtid_mode,
        retrieved_gtid_set: non_empty(column(row, "Retrieved_Gtid_Set")).map(String::from),
        executed_gtid_set: non_empty(column(row, "Executed_Gtid_Set")).map(String::from),
        gtid_io_pos: non_empty(column(row, "Gtid_IO_Pos")).map(String::from),
        source_server_id: number(column(row, "Master_Server_Id")),
        source_uuid: non_empty(column(row, "Master_UUID")).map(String::from),
        connect_retry: number(column(row, "Connect_Retry")),
        sql_state: non_empty(column(row, "Slave_SQL_Running_State")).map(String::from),
        received_heartbeats: None,
        heartbeat_period_ms: None,
    }))
}

/// `SHOW MASTER STATUS` / `SHOW BINARY LOG STATUS`: this instance's own
/// binlog position; `None` when binary logging is off (no rows).
pub fn binlog_status(rows: &[TextRow]) -> Option<BinlogCoordinates> {
    let row = rows.first()?;
    coords(
        row.get("File").and_then(|v| v.as_deref()),
        row.get("Position").and_then(|v| v.as_deref()),
    )
}

/// MariaDB's own binlog position as [`binlog_status`] reads it, from its
/// global status (`Binlog_snapshot_file`, `Binlog_snapshot_position`: the
/// position of the last commit) rather than from `SHOW MASTER STATUS`,
/// which waits for the binlog lock: on a semi-synchronous primary whose
/// commits wait for an acknowledgement (no replica connected, with
/// `AFTER_SYNC`), it blocks, and a healthy primary would look as if it
/// stopped answering. No rows when binary logging is off, or when the
/// status lacks them.
pub fn mariadb_binlog_status(status: &[TextRow], log_bin: bool) -> Vec<TextRow> {
    if !log_bin {
        return Vec::new();
    }
    let st = name_values(status);
    match (
        st.get("binlog_snapshot_file").filter(|f| !f.is_empty()),
        st.get("binlog_snapshot_position"),
    ) {
        (Some(file), Some(pos)) => vec![TextRow::from([
            ("File".to_string(), Some(file.clone())),
            ("Position".to_string(), Some(pos.clone())),
        ])],
        _ => Vec::new(),
    }
}

/// Whether binary logging is on, per the variables read.
pub fn log_bin_on(variables: &[TextRow]) -> bool {
    flag(name_values(variables).get("log_bin").map(String::as_str))
}

/// `SHOW SLAVE HOSTS` / `SHOW REPLICAS`: the replicas registered with this
/// instance, by the host and port they report. Rows without a reported host
/// are skipped (the client address is never used: on loopback or behind
/// NAT it names the wrong machine).
pub fn replica_hosts(rows: &[TextRow]) -> Vec<InstanceKey> {
    let mut hosts: Vec<InstanceKey> = rows
        .iter()
        .filter_map(|r| {
            let host = non_empty(r.get("Host").and_then(|v| v.as_deref()))?;
            let port = number::<u16>(r.get("Port").and_then(|v| v.as_deref()))
                .filter(|p| *p != 0)
                .unwrap_or(3306);
            Some(InstanceKey::new(host, port))
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn gtid(flavor: Flavor, vars: &NameValues, name: &str) -> Result<Option<GtidSet>, ParseError> {
    match vars.get(name) {
        Some(v) => GtidSet::parse(flavor, v).map(Some),
        None => Ok(None),
    }
}

/// The raw answers of one probe, as the server gave them.
#[derive(Debug, Clone, Default)]
pub struct ProbeAnswers {
    pub variables: Vec<TextRow>,
    pub status: Vec<TextRow>,
    pub replica_status: Vec<TextRow>,
    pub binlog_status: Vec<TextRow>,
    pub replica_hosts: Vec<TextRow>,
    pub heartbeat_age_ms: Option<u64>,
}

/// Builds the snapshot of `key` from one probe's answers.
pub fn snapshot(key: &InstanceKey, answers: &ProbeAnswers) -> Result<Snapshot, ParseError> {
    let vars = name_values(&answers.variables);
    let status = name_values(&answers.status);
    let version = vars.get("version").ok_or_else(|| ParseError::Version {
        input: String::new(),
    })?;
    let dialect = Dialect::detect(version, vars.get("version_comment").map(String::as_str))?;
    let flavor = dialect.flavor;
    let v = |name: &str| vars.get(name).map(String::as_str);
    let s = |name: &str| status.get(&name.to_ascii_lowercase()).map(String::as_str);
    let either = |a: &str, b: &str| v(a).or_else(|| v(b));
    let either_status = |a: &str, b: &str| s(a).or_else(|| s(b));

    let gtid_state = match flavor {
        Flavor::MySql => GtidState {
            mode: v("gtid_mode").map(String::from),
            executed: gtid(flavor, &vars, "gtid_executed")?,
            purged: gtid(flavor, &vars, "gtid_purged")?,
            ..GtidState::default()
        },
        Flavor::MariaDb => GtidState {
            mode: None,
            executed: gtid(flavor, &vars, "gtid_current_pos")?,
            purged: None,
            binlog_pos: gtid(flavor, &vars, "gtid_binlog_pos")?,
            slave_pos: gtid(flavor, &vars, "gtid_slave_pos")?,
            binlog_state: gtid(flavor, &vars, "gtid_binlog_state")?,
            strict_mode: v("gtid_strict_mode").map(|x| flag(Some(x))),
            domain_id: number(v("gtid_domain_id")),
        },
    };
    let semi_sync = SemiSync {
        primary_enabled: flag(either(
            "rpl_semi_sync_master_enabled",
            "rpl_semi_sync_source_enabled",
        )),
        replica_enabled: flag(either(
            "rpl_semi_sync_slave_enabled",
            "rpl_semi_sync_replica_enabled",
        )),
        primary_active: flag(either_status(
            "Rpl_semi_sync_master_status",
            "Rpl_semi_sync_source_status",
        )),
        replica_active: flag(either_status(
            "Rpl_semi_sync_slave_status",
            "Rpl_semi_sync_replica_status",
        )),
        clients: number(either_status(
            "Rpl_semi_sync_master_clients",
            "Rpl_semi_sync_source_clients",
        ))
        .unwrap_or(0),
        wait_count: number(either(
            "rpl_semi_sync_master_wait_for_slave_count",
            "rpl_semi_sync_source_wait_for_replica_count",
        ))
        .unwrap_or(1),
        timeout_ms: number(either(
            "rpl_semi_sync_master_timeout",
            "rpl_semi_sync_source_timeout",
        ))
        .unwrap_or(0),
    };
    Ok(Snapshot {
        key: key.clone(),
        flavor,
        version: dialect.version,
        server_id: number(v("server_id")).unwrap_or(0),
        server_uuid: non_empty(v("server_uuid")).map(String::from),
        read_only: flag(v("read_only")),
        super_read_only: match flavor {
            Flavor::MySql => v("super_read_only").map(|x| flag(Some(x))),
            Flavor::MariaDb => None,
        },
        log_bin: flag(v("log_bin")),
        log_replica_updates: flag(either("log_slave_updates", "log_replica_updates")),
        binlog_format: v("binlog_format").unwrap_or_default().to_ascii_uppercase(),
        binlog_row_image: non_empty(v("binlog_row_image")).map(|x| x.to_ascii_uppercase()),
        binlog: binlog_status(&answers.binlog_status),
        gtid: gtid_state,
        semi_sync,
        replica: replica_status(&answers.replica_status)?.map(|mut r| {
            r.received_heartbeats = number(s("Slave_received_heartbeats"));
            r.heartbeat_period_ms = number::<f64>(s("Slave_heartbeat_period"))
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(|p| (p * 1000.0).round() as u64);
            r
        }),
        registered_replicas: replica_hosts(&answers.replica_hosts),
        heartbeat_age_ms: answers.heartbeat_age_ms,
        report_host: non_empty(v("report_host")).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_replication_connections() {
        let rows = |names: &[Option<&str>]| -> Vec<TextRow> {
            names
                .iter()
                .map(|n| {
                    TextRow::from([
                        ("Connection_name".to_string(), n.map(str::to_string)),
                        ("Master_Host".to_string(), Some("10.0.0.1".to_string())),
                    ])
                })
                .collect()
        };
        let table: &[(&[Option<&str>], bool)] = &[
            (&[], false),
            (&[Some("")], false),
            (&[None], false),
            (&[Some(""), Some("orca_detour")], true),
            (&[Some("ORCA_DETOUR")], true),
            (&[Some("orca_detour2")], false),
        ];
        for (names, want) in table {
            assert_eq!(
                has_connection(&rows(names), "orca_detour"),
                *want,
                "{names:?}"
            );
        }
        // Each connection with a source, by name; the default one is the
        // replica status.
        let mut all = rows(&[Some(""), Some("orca_detour")]);
        all[1].insert("Master_Host".into(), Some("10.0.0.2".into()));
        all[1].insert("Slave_IO_Running".into(), Some("Yes".into()));
        all.push(TextRow::from([(
            "Connection_name".to_string(),
            Some("gone".to_string()),
        )]));
        let conns = replica_connections(&all).unwrap();
        let seen: Vec<(&str, &str, IoThreadState)> = conns
            .iter()
            .map(|(n, r)| (n.as_str(), r.source.host.as_str(), r.io_running))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("", "10.0.0.1", IoThreadState::No),
                ("orca_detour", "10.0.0.2", IoThreadState::Yes)
            ]
        );
        assert_eq!(
            replica_status(&all).unwrap().map(|r| r.source.host),
            Some("10.0.0.1".to_string())
        );
    }

    fn nv(pairs: &[(&str, &str)]) -> Vec<TextRow> {
        pairs
            .iter()
            .map(|(n, v)| {
                TextRow::from([
                    ("Variable_name".to_string(), Some(n.to_string())),
                    ("Value".to_string(), Some(v.to_string())),
                ])
            })
            .collect()
    }

    #[test]
    fn mariadb_binlog_position_from_the_status() {
        let status = nv(&[
            ("Rpl_semi_sync_master_status", "ON"),
            ("Binlog_snapshot_file", "bin.000003"),
            ("Binlog_snapshot_position", "583"),
        ]);
        let rows = mariadb_binlog_status(&status, true);
        let c = binlog_status(&rows).expect("coordinates");
        assert_eq!(
            c,
            binlog_status(&[TextRow::from([
                ("File".to_string(), Some("bin.000003".to_string())),
                ("Position".to_string(), Some("583".to_string())),
            ])])
            .expect("coordinates")
        );
        // Binary logging off, or nothing in the status: no position.
        assert!(mariadb_binlog_status(&status, false).is_empty());
        assert!(mariadb_binlog_status(&nv(&[("Binlog_snapshot_file", "")]), true).is_empty());
        assert!(log_bin_on(&nv(&[("log_bin", "ON")])));
        assert!(!log_bin_on(&nv(&[("log_bin", "OFF")])));
        assert!(!log_bin_on(&[]));
    }
}
