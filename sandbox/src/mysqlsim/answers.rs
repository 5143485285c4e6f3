//! The answers of one simulated instance to the statements orca's probe
//! (and its heartbeat writer) sends, in the column names of its flavor
//! and version.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orca::topology::Flavor;
use orca::topology::instance::{GtidChannelMode, IoThreadState};

use super::protocol::Column;
use super::{Health, InstanceSpec, Shared, SourceRef, lock};

/// What a statement gets.
#[derive(Debug)]
pub(crate) enum Answer {
    Done,
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Option<String>>>,
    },
    Error {
        code: u16,
        state: &'static str,
        message: String,
    },
}

fn syntax_error(sql: &str) -> Answer {
    let near: String = sql.chars().take(40).collect();
    Answer::Error {
        code: 1064,
        state: "42000",
        message: format!(
            "You have an error in your SQL syntax; check the manual that corresponds to your server version for the right syntax to use near '{near}' at line 1"
        ),
    }
}

fn unsupported(words: &[&str]) -> Answer {
    // Only the first words: a statement may carry a password.
    let what = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    Answer::Error {
        code: 1235,
        state: "42000",
        message: format!("the orca MySQL simulator does not answer {what} statements"),
    }
}

fn no_heartbeat_table() -> Answer {
    Answer::Error {
        code: 1146,
        state: "42S02",
        message: "Table 'orca_meta.heartbeat' doesn't exist".into(),
    }
}

/// Everything about one instance an answer needs, read under its lock
/// alone (never two instances' locks at once).
struct View {
    spec: InstanceSpec,
    received: u64,
    flowing: bool,
}

fn view(shared: &Shared, n: usize) -> Option<View> {
    let inst = shared.insts.get(n)?;
    let st = lock(&inst.state);
    let period = st
        .spec
        .replication
        .as_ref()
        .map(|r| r.heartbeat_period)
        .unwrap_or(Duration::from_secs(1));
    Some(View {
        received: st.stream.received(period),
        flowing: st.stream.flowing(),
        spec: st.spec.clone(),
    })
}

pub(crate) fn answer(shared: &Shared, n: usize, sql: &str) -> Answer {
    let sql = sql.trim().trim_end_matches(';').trim();
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let Some(me) = view(shared, n) else {
        return unsupported(&words);
    };
    match words.as_slice() {
        ["SELECT", ..] if upper.contains("ORCA_META.HEARTBEAT") => heartbeat_age(shared, n, &me),
        ["SELECT", ..] => select(shared, n, &me, sql),
        ["SHOW", rest @ ..] => show(shared, n, &me, sql, rest),
        ["SET", ..] | ["BEGIN"] | ["COMMIT"] | ["ROLLBACK"] | ["USE", ..] => Answer::Done,
        ["CREATE", "DATABASE", ..] => Answer::Done,
        ["CREATE", "TABLE", ..] if upper.contains("ORCA_META.HEARTBEAT") => {
            if let Some(inst) = shared.insts.get(n) {
                lock(&inst.state).heartbeat_table = true;
            }
            Answer::Done
        }
        ["REPLACE", "INTO", table, ..] if table.starts_with("ORCA_META.HEARTBEAT") => {
            if !has_heartbeat_table(shared, n) {
                return no_heartbeat_table();
            }
            if let Some(inst) = shared.insts.get(n) {
                let mut st = lock(&inst.state);
                st.heartbeat_table = true;
                st.heartbeat_at = Some(Instant::now());
            }
            Answer::Done
        }
        _ => unsupported(&words),
    }
}

/// The variables of an instance, by lower-case name, as its flavor and
/// version name them.
fn variables(shared: &Shared, n: usize, me: &View) -> BTreeMap<&'static str, String> {
    let s = &me.spec;
    let on = |b: bool| if b { "ON" } else { "OFF" }.to_string();
    let mut v = BTreeMap::new();
    v.insert("version", s.version.clone());
    v.insert("version_comment", s.version_comment.clone());
    v.insert("server_id", s.server_id.to_string());
    v.insert("read_only", on(s.read_only));
    v.insert("log_bin", on(s.log_bin));
    v.insert("log_slave_updates", on(s.log_replica_updates));
    v.insert("binlog_format", s.binlog_format.clone());
    v.insert("binlog_row_image", "FULL".into());
    v.insert("report_host", report_host(shared, n, s));
    v.insert(
        "report_port",
        shared.keys.get(n).map(|k| k.port).unwrap_or(0).to_string(),
    );
    v.insert(
        "port",
        shared.keys.get(n).map(|k| k.port).unwrap_or(0).to_string(),
    );
    v.insert("hostname", format!("sim-{n}"));
    v.insert("wait_timeout", "28800".into());
    v.insert("autocommit", "ON".into());
    match s.flavor {
        Flavor::MariaDb => {
            v.insert("max_allowed_packet", "16777216".into());
            v.insert("gtid_binlog_pos", s.gtid.binlog_pos.clone());
            v.insert("gtid_binlog_state", s.gtid.binlog_state.clone());
            v.insert("gtid_slave_pos", s.gtid.slave_pos.clone());
            v.insert("gtid_current_pos", s.gtid.current_pos.clone());
            v.insert("gtid_strict_mode", on(s.gtid.strict_mode));
            v.insert("gtid_domain_id", s.gtid.domain_id.to_string());
        }
        Flavor::MySql => {
            v.insert("max_allowed_packet", "67108864".into());
            v.insert("server_uuid", s.server_uuid.clone());
            v.insert("super_read_only", on(s.super_read_only));
            v.insert("gtid_mode", s.gtid.mode.clone());
            v.insert("gtid_executed", s.gtid.executed.clone());
            v.insert("gtid_purged", s.gtid.purged.clone());
            v.insert("enforce_gtid_consistency", on(s.gtid.mode == "ON"));
            if s.mysql_at_least((8, 0, 26)) {
                v.insert("log_replica_updates", on(s.log_replica_updates));
            }
        }
    }
    if s.semi_sync.installed {
        let new = s.mysql_at_least((8, 0, 26));
        let (pe, pt, re, wc) = if new {
            (
                "rpl_semi_sync_source_enabled",
                "rpl_semi_sync_source_timeout",
                "rpl_semi_sync_replica_enabled",
                "rpl_semi_sync_source_wait_for_replica_count",
            )
        } else {
            (
                "rpl_semi_sync_master_enabled",
                "rpl_semi_sync_master_timeout",
                "rpl_semi_sync_slave_enabled",
                "rpl_semi_sync_master_wait_for_slave_count",
            )
        };
        v.insert(pe, on(s.semi_sync.primary_enabled));
        v.insert(pt, s.semi_sync.timeout_ms.to_string());
        v.insert(re, on(s.semi_sync.replica_enabled));
        if s.flavor == Flavor::MySql {
            v.insert(wc, s.semi_sync.wait_count.to_string());
        }
    }
    v
}

fn report_host(shared: &Shared, n: usize, s: &InstanceSpec) -> String {
    s.report_host
        .clone()
        .or_else(|| shared.keys.get(n).map(|k| k.host.clone()))
        .unwrap_or_default()
}

/// The replicas streaming from `n` now: (server id, report host, port,
/// uuid, semi-sync replica side on).
fn streaming_replicas(shared: &Shared, n: usize) -> Vec<(u32, String, u16, String, bool)> {
    let mut out = Vec::new();
    for r in shared.replicas_of(n) {
        let Some(inst) = shared.insts.get(r) else {
            continue;
        };
        let (flowing, id, host, uuid, semi) = {
            let st = lock(&inst.state);
            (
                st.stream.flowing(),
                st.spec.server_id,
                report_host(shared, r, &st.spec),
                st.spec.server_uuid.clone(),
                st.spec.semi_sync.replica_enabled,
            )
        };
        if flowing && shared.health(r) != Health::Dead {
            let port = shared.keys.get(r).map(|k| k.port).unwrap_or(3306);
            out.push((id, host, port, uuid, semi));
        }
    }
    out
}

/// A simulated source's spec, when `n` replicates from one.
fn sim_source(shared: &Shared, me: &View) -> Option<(usize, InstanceSpec)> {
    match me.spec.replication.as_ref().map(|r| &r.source) {
        Some(SourceRef::Sim(s)) => {
            let inst = shared.insts.get(s.0)?;
            Some((s.0, lock(&inst.state).spec.clone()))
        }
        _ => None,
    }
}

fn status(shared: &Shared, n: usize, me: &View) -> BTreeMap<&'static str, String> {
    let s = &me.spec;
    let on = |b: bool| if b { "ON" } else { "OFF" }.to_string();
    let mut v = BTreeMap::new();
    if s.semi_sync.installed {
        let new = s.mysql_at_least((8, 0, 26));
        let clients = if s.semi_sync.primary_enabled {
            streaming_replicas(shared, n).iter().filter(|r| r.4).count()
        } else {
            0
        };
        let replica_active = s.semi_sync.replica_enabled
            && me.flowing
            && sim_source(shared, me)
                .map(|(_, src)| src.semi_sync.primary_enabled)
                .unwrap_or(true);
        let (ps, pc, rs) = if new {
            (
                "Rpl_semi_sync_source_status",
                "Rpl_semi_sync_source_clients",
                "Rpl_semi_sync_replica_status",
            )
        } else {
            (
                "Rpl_semi_sync_master_status",
                "Rpl_semi_sync_master_clients",
                "Rpl_semi_sync_slave_status",
            )
        };
        v.insert(ps, on(s.semi_sync.primary_enabled && clients > 0));
        v.insert(pc, clients.to_string());
        v.insert(rs, on(replica_active));
    }
    v.insert("Uptime", "86400".into());
    v.insert("Threads_connected", "1".into());
    if s.flavor == Flavor::MariaDb {
        v.insert("Slave_received_heartbeats", me.received.to_string());
        let period = s
            .replication
            .as_ref()
            .map_or(0.0, |r| r.heartbeat_period.as_secs_f64());
        v.insert("Slave_heartbeat_period", format!("{period:.3}"));
        let (file, pos) = match (&s.binlog, s.log_bin) {
            (Some(c), true) => (c.file.clone(), c.pos.to_string()),
            _ => (String::new(), "0".into()),
        };
        v.insert("Binlog_snapshot_file", file);
        v.insert("Binlog_snapshot_position", pos);
    }
    v
}

/// The quoted names of `... WHERE Variable_name IN ('a','b')`, or the
/// pattern of `... LIKE 'x%'`; `None`: every name.
enum Filter {
    All,
    In(Vec<String>),
    Like(String),
}

fn quoted_strings(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote = '\'';
    for c in s.chars() {
        match &mut cur {
            None if c == '\'' || c == '"' => {
                quote = c;
                cur = Some(String::new());
            }
            None => {}
            Some(buf) if c == quote => {
                out.push(std::mem::take(buf));
                cur = None;
            }
            Some(buf) => buf.push(c),
        }
    }
    out
}

fn filter(sql: &str) -> Filter {
    let upper = sql.to_ascii_uppercase();
    if let Some(i) = upper.find(" IN ")
        && upper[..i].contains("WHERE")
    {
        return Filter::In(
            quoted_strings(&sql[i..])
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
        );
    }
    if let Some(i) = upper.find(" LIKE ")
        && let Some(p) = quoted_strings(&sql[i..]).into_iter().next()
    {
        return Filter::Like(p.to_ascii_lowercase());
    }
    Filter::All
}

/// SQL `LIKE` with `%` and `_`, case-insensitively (both lower-cased).
fn like(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.split_first(), s.split_first()) {
        (None, _) => s.is_empty(),
        (Some((b'%', rest)), _) => (0..=s.len()).any(|i| like(rest, &s[i..])),
        (Some((b'_', rest)), Some((_, srest))) => like(rest, srest),
        (Some((p, rest)), Some((c, srest))) => p == c && like(rest, srest),
        (Some(_), None) => false,
    }
}

fn name_value_rows(map: BTreeMap<&'static str, String>, f: &Filter) -> Answer {
    let rows = map
        .into_iter()
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            match f {
                Filter::All => true,
                Filter::In(names) => names.contains(&lower),
                Filter::Like(p) => like(p.as_bytes(), lower.as_bytes()),
            }
        })
        .map(|(name, value)| vec![Some(name.to_string()), Some(value)])
        .collect();
    Answer::Rows {
        columns: vec![Column::text("Variable_name"), Column::text("Value")],
        rows,
    }
}

fn show(shared: &Shared, n: usize, me: &View, sql: &str, rest: &[&str]) -> Answer {
    let s = &me.spec;
    let rest = match rest {
        ["GLOBAL" | "SESSION", more @ ..] => more,
        more => more,
    };
    let maria = s.flavor == Flavor::MariaDb;
    match rest {
        ["VARIABLES", ..] => name_value_rows(variables(shared, n, me), &filter(sql)),
        ["STATUS", ..] => name_value_rows(status(shared, n, me), &filter(sql)),
        ["SLAVE", "STATUS", ..] if maria || !s.mysql_at_least((8, 4, 0)) => {
            replica_status(shared, me, false)
        }
        ["REPLICA", "STATUS", ..] if maria || s.mysql_at_least((8, 0, 22)) => {
            replica_status(shared, me, !maria)
        }
        ["MASTER", "STATUS"] if maria || !s.mysql_at_least((8, 4, 0)) => binlog_status(me),
        ["BINLOG", "STATUS"] if maria => binlog_status(me),
        ["BINARY", "LOG", "STATUS"] if s.mysql_at_least((8, 2, 0)) => binlog_status(me),
        ["SLAVE", "HOSTS"] if maria || !s.mysql_at_least((8, 4, 0)) => {
            replica_hosts(shared, n, me, false)
        }
        ["REPLICA", "HOSTS"] if maria => replica_hosts(shared, n, me, false),
        ["REPLICAS"] if s.mysql_at_least((8, 0, 22)) => replica_hosts(shared, n, me, true),
        _ => syntax_error(sql),
    }
}

fn binlog_status(me: &View) -> Answer {
    let s = &me.spec;
    let mut columns = vec![
        Column::text("File"),
        Column::number("Position"),
        Column::text("Binlog_Do_DB"),
        Column::text("Binlog_Ignore_DB"),
    ];
    if s.flavor == Flavor::MySql {
        columns.push(Column::text("Executed_Gtid_Set"));
    }
    let rows = match (&s.binlog, s.log_bin) {
        (Some(c), true) => {
            let mut row = vec![
                Some(c.file.clone()),
                Some(c.pos.to_string()),
                Some(String::new()),
                Some(String::new()),
            ];
            if s.flavor == Flavor::MySql {
                row.push(Some(s.gtid.executed.clone()));
            }
            vec![row]
        }
        _ => Vec::new(),
    };
    Answer::Rows { columns, rows }
}

fn replica_hosts(shared: &Shared, n: usize, me: &View, new_terms: bool) -> Answer {
    let s = &me.spec;
    let mysql = s.flavor == Flavor::MySql;
    let names: &[&str] = match (mysql, new_terms) {
        (false, _) => &["Server_id", "Host", "Port", "Master_id"],
        (true, false) => &["Server_id", "Host", "Port", "Master_id", "Slave_UUID"],
        (true, true) => &["Server_Id", "Host", "Port", "Source_Id", "Replica_UUID"],
    };
    let columns = names
        .iter()
        .map(|c| {
            if c.ends_with("_id") || c.ends_with("_Id") || *c == "Port" {
                Column::number(*c)
            } else {
                Column::text(*c)
            }
        })
        .collect();
    let rows = streaming_replicas(shared, n)
        .into_iter()
        .map(|(id, host, port, uuid, _)| {
            let mut row = vec![
                Some(id.to_string()),
                Some(host),
                Some(port.to_string()),
                Some(s.server_id.to_string()),
            ];
            if mysql {
                row.push(Some(uuid));
            }
            row
        })
        .collect();
    Answer::Rows { columns, rows }
}

/// `SHOW SLAVE STATUS` of MariaDB 10.11, in its order.
const MARIADB_REPLICA_COLUMNS: &[&str] = &[
    "Slave_IO_State",
    "Master_Host",
    "Master_User",
    "Master_Port",
    "Connect_Retry",
    "Master_Log_File",
    "Read_Master_Log_Pos",
    "Relay_Log_File",
    "Relay_Log_Pos",
    "Relay_Master_Log_File",
    "Slave_IO_Running",
    "Slave_SQL_Running",
    "Replicate_Do_DB",
    "Replicate_Ignore_DB",
    "Replicate_Do_Table",
    "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table",
    "Replicate_Wild_Ignore_Table",
    "Last_Errno",
    "Last_Error",
    "Skip_Counter",
    "Exec_Master_Log_Pos",
    "Relay_Log_Space",
    "Until_Condition",
    "Until_Log_File",
    "Until_Log_Pos",
    "Master_SSL_Allowed",
    "Master_SSL_CA_File",
    "Master_SSL_CA_Path",
    "Master_SSL_Cert",
    "Master_SSL_Cipher",
    "Master_SSL_Key",
    "Seconds_Behind_Master",
    "Master_SSL_Verify_Server_Cert",
    "Last_IO_Errno",
    "Last_IO_Error",
    "Last_SQL_Errno",
    "Last_SQL_Error",
    "Replicate_Ignore_Server_Ids",
    "Master_Server_Id",
    "Master_SSL_Crl",
    "Master_SSL_Crlpath",
    "Using_Gtid",
    "Gtid_IO_Pos",
    "Replicate_Do_Domain_Ids",
    "Replicate_Ignore_Domain_Ids",
    "Parallel_Mode",
    "SQL_Delay",
    "SQL_Remaining_Delay",
    "Slave_SQL_Running_State",
    "Slave_DDL_Groups",
    "Slave_Non_Transactional_Groups",
    "Slave_Transactional_Groups",
    "Replicate_Rewrite_DB",
];

/// `SHOW REPLICA STATUS` of MySQL 8.0.22+ (8.4 here), in its order.
const MYSQL_REPLICA_COLUMNS: &[&str] = &[
    "Replica_IO_State",
    "Source_Host",
    "Source_User",
    "Source_Port",
    "Connect_Retry",
    "Source_Log_File",
    "Read_Source_Log_Pos",
    "Relay_Log_File",
    "Relay_Log_Pos",
    "Relay_Source_Log_File",
    "Replica_IO_Running",
    "Replica_SQL_Running",
    "Replicate_Do_DB",
    "Replicate_Ignore_DB",
    "Replicate_Do_Table",
    "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table",
    "Replicate_Wild_Ignore_Table",
    "Last_Errno",
    "Last_Error",
    "Skip_Counter",
    "Exec_Source_Log_Pos",
    "Relay_Log_Space",
    "Until_Condition",
    "Until_Log_File",
    "Until_Log_Pos",
    "Source_SSL_Allowed",
    "Source_SSL_CA_File",
    "Source_SSL_CA_Path",
    "Source_SSL_Cert",
    "Source_SSL_Cipher",
    "Source_SSL_Key",
    "Seconds_Behind_Source",
    "Source_SSL_Verify_Server_Cert",
    "Last_IO_Errno",
    "Last_IO_Error",
    "Last_SQL_Errno",
    "Last_SQL_Error",
    "Replicate_Ignore_Server_Ids",
    "Source_Server_Id",
    "Source_UUID",
    "Source_Info_File",
    "SQL_Delay",
    "SQL_Remaining_Delay",
    "Replica_SQL_Running_State",
    "Source_Retry_Count",
    "Source_Bind",
    "Last_IO_Error_Timestamp",
    "Last_SQL_Error_Timestamp",
    "Source_SSL_Crl",
    "Source_SSL_Crlpath",
    "Retrieved_Gtid_Set",
    "Executed_Gtid_Set",
    "Auto_Position",
    "Replicate_Rewrite_DB",
    "Channel_Name",
    "Source_TLS_Version",
    "Source_public_key_path",
    "Get_Source_public_key",
    "Network_Namespace",
];

/// A new column name in the pre-8.0.22 words (whole words swapped, as
/// MySQL's `SHOW SLAVE STATUS` still names them).
fn old_name(name: &str) -> String {
    match name {
        "Get_Source_public_key" => return "Get_master_public_key".into(),
        "Source_public_key_path" => return "Master_public_key_path".into(),
        "Source_TLS_Version" => return "Master_TLS_Version".into(),
        _ => {}
    }
    name.split('_')
        .map(|w| match w {
            "Source" => "Master",
            "Replica" => "Slave",
            w => w,
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn replica_status(shared: &Shared, me: &View, new_terms: bool) -> Answer {
    let s = &me.spec;
    let names: Vec<String> = match (s.flavor, new_terms) {
        (Flavor::MariaDb, _) => MARIADB_REPLICA_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        (Flavor::MySql, true) => MYSQL_REPLICA_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        (Flavor::MySql, false) => MYSQL_REPLICA_COLUMNS.iter().map(|c| old_name(c)).collect(),
    };
    let columns: Vec<Column> = names.iter().map(Column::text).collect();
    let Some(r) = &s.replication else {
        return Answer::Rows {
            columns,
            rows: Vec::new(),
        };
    };
    let maria = s.flavor == Flavor::MariaDb;
    let (host, port, source_health) = match &r.source {
        SourceRef::Sim(id) => {
            let k = shared.keys.get(id.0);
            (
                k.map(|k| k.host.clone()).unwrap_or_default(),
                k.map(|k| k.port).unwrap_or(3306),
                shared.health(id.0),
            )
        }
        SourceRef::External(k) => (k.host.clone(), k.port, Health::Serving),
    };
    let source = sim_source(shared, me).map(|(_, spec)| spec);
    // A dead source: the IO thread retries, and says why.
    let (io, io_errno, io_error) = if r.io_running == IoThreadState::Yes
        && source_health == Health::Dead
    {
        let msg = if maria {
            format!(
                "error reconnecting to master 'repl@{host}:{port}' - retry-time: 1  maximum-retries: 100000  message: Can't connect to server on '{host}' (111 \"Connection refused\")"
            )
        } else {
            format!(
                "Error connecting to source 'repl@{host}:{port}'. This was attempt 1/86400, with a delay of 1 seconds between attempts. Message: Can't connect to MySQL server on '{host}:{port}' (111)"
            )
        };
        (IoThreadState::Connecting, 2003, msg)
    } else {
        (r.io_running, r.last_io_errno, r.last_io_error.clone())
    };
    let io_state = match (io, maria) {
        (IoThreadState::Yes, true) => "Waiting for master to send event",
        (IoThreadState::Yes, false) => "Waiting for source to send event",
        (IoThreadState::Connecting, true) => "Reconnecting after a failed master event read",
        (IoThreadState::Connecting, false) => "Connecting to source",
        (IoThreadState::No, _) => "",
    };
    let sql_state = match (r.sql_running, maria) {
        (true, true) => "Slave has read all relay log; waiting for more updates",
        (true, false) => "Replica has read all relay log; waiting for more updates",
        (false, _) => "",
    };
    let yes = |b: bool| if b { "Yes" } else { "No" }.to_string();
    let coord = |c: &Option<orca::topology::BinlogCoordinates>| {
        c.as_ref()
            .map(|c| (c.file.clone(), c.pos.to_string()))
            .unwrap_or_else(|| (String::new(), "4".into()))
    };
    let (read_file, read_pos) = coord(&r.read_pos);
    let (exec_file, exec_pos) = coord(&r.exec_pos);
    let behind = (io == IoThreadState::Yes && r.sql_running).then(|| r.seconds_behind.to_string());
    let source_id = source.as_ref().map(|s| s.server_id).unwrap_or(0);
    let source_uuid = source
        .as_ref()
        .map(|s| s.server_uuid.clone())
        .unwrap_or_default();
    let using_gtid = match r.gtid_mode {
        GtidChannelMode::SlavePos => "Slave_Pos",
        GtidChannelMode::CurrentPos => "Current_Pos",
        GtidChannelMode::No | GtidChannelMode::AutoPosition => "No",
    };
    let auto = if r.gtid_mode == GtidChannelMode::AutoPosition {
        "1"
    } else {
        "0"
    };
    let relay_file = format!("sim-{}-relay-bin.000002", s.server_id);
    let row = names
        .iter()
        .map(|name| {
            let canonical = old_name(name);
            let v: Option<String> = match canonical.as_str() {
                "Slave_IO_State" => Some(io_state.into()),
                "Master_Host" => Some(host.clone()),
                "Master_User" => Some("repl".into()),
                "Master_Port" => Some(port.to_string()),
                "Connect_Retry" => Some("1".into()),
                "Master_Log_File" => Some(read_file.clone()),
                "Read_Master_Log_Pos" => Some(read_pos.clone()),
                "Relay_Log_File" => Some(relay_file.clone()),
                "Relay_Log_Pos" => Some("4".into()),
                "Relay_Master_Log_File" => Some(exec_file.clone()),
                "Slave_IO_Running" => Some(io.to_string()),
                "Slave_SQL_Running" => Some(yes(r.sql_running)),
                "Last_Errno" | "Last_SQL_Errno" => Some(r.last_sql_errno.to_string()),
                "Last_Error" | "Last_SQL_Error" => Some(r.last_sql_error.clone()),
                "Skip_Counter" | "Until_Log_Pos" => Some("0".into()),
                "Exec_Master_Log_Pos" => Some(exec_pos.clone()),
                "Relay_Log_Space" => Some("1024".into()),
                "Until_Condition" => Some("None".into()),
                "Master_SSL_Allowed" | "Master_SSL_Verify_Server_Cert" => Some("No".into()),
                "Seconds_Behind_Master" => behind.clone(),
                "Last_IO_Errno" => Some(io_errno.to_string()),
                "Last_IO_Error" => Some(io_error.clone()),
                "Master_Server_Id" => Some(source_id.to_string()),
                "Master_UUID" => Some(source_uuid.clone()),
                "Master_Info_File" => Some("mysql.slave_master_info".into()),
                "Using_Gtid" => Some(using_gtid.into()),
                "Gtid_IO_Pos" | "Retrieved_Gtid_Set" => Some(r.retrieved.clone()),
                "Executed_Gtid_Set" => Some(s.gtid.executed.clone()),
                "Auto_Position" => Some(auto.into()),
                "Parallel_Mode" => Some("optimistic".into()),
                "SQL_Delay" => Some(r.sql_delay.to_string()),
                "SQL_Remaining_Delay" => None,
                "Slave_SQL_Running_State" => Some(sql_state.into()),
                "Slave_DDL_Groups"
                | "Slave_Non_Transactional_Groups"
                | "Slave_Transactional_Groups" => Some("0".into()),
                "Master_Retry_Count" => Some("86400".into()),
                "Get_master_public_key" => Some("0".into()),
                _ => Some(String::new()),
            };
            v
        })
        .collect();
    Answer::Rows {
        columns,
        rows: vec![row],
    }
}

/// `SELECT @@a, @@global.b, 1`: one row, each item its own column named
/// as written.
fn select(shared: &Shared, n: usize, me: &View, sql: &str) -> Answer {
    let body = sql[6..].trim();
    if body.to_ascii_uppercase().contains(" FROM ") {
        return unsupported(&["SELECT", "FROM"]);
    }
    let vars = variables(shared, n, me);
    let mut columns = Vec::new();
    let mut row = Vec::new();
    for item in body.split(',') {
        let item = item.trim();
        let (expr, alias) = match item.to_ascii_uppercase().find(" AS ") {
            Some(i) => (
                item[..i].trim(),
                Some(item[i + 4..].trim().trim_matches('`')),
            ),
            None => (item, None),
        };
        let value = if let Some(name) = expr.strip_prefix("@@") {
            let lower = name.to_ascii_lowercase();
            let bare = lower
                .strip_prefix("global.")
                .or_else(|| lower.strip_prefix("session."))
                .unwrap_or(&lower);
            match vars.get(bare) {
                Some(v) => Some(v.clone()),
                None => {
                    return Answer::Error {
                        code: 1193,
                        state: "HY000",
                        message: format!("Unknown system variable '{bare}'"),
                    };
                }
            }
        } else if expr.eq_ignore_ascii_case("NULL") {
            None
        } else if expr.parse::<i64>().is_ok() {
            Some(expr.to_string())
        } else if let Some(s) = quoted_strings(expr).into_iter().next() {
            Some(s)
        } else {
            return unsupported(&["SELECT", expr]);
        };
        columns.push(Column::text(alias.unwrap_or(expr)));
        row.push(value);
    }
    Answer::Rows {
        columns,
        rows: vec![row],
    }
}

/// Whether `n` or any instance up its chain of simulated sources has
/// orca's heartbeat table (it replicates down).
fn has_heartbeat_table(shared: &Shared, n: usize) -> bool {
    let mut cur = n;
    for _ in 0..64 {
        let Some(inst) = shared.insts.get(cur) else {
            return false;
        };
        let st = lock(&inst.state);
        if st.heartbeat_table {
            return true;
        }
        match st.spec.replication.as_ref().map(|r| &r.source) {
            Some(SourceRef::Sim(s)) => cur = s.0,
            _ => return false,
        }
    }
    false
}

/// The age of the newest heartbeat row `n` holds: the row the writer up
/// its chain of sources last wrote, but no newer than when a stream on
/// the way stalled.
fn heartbeat_age(shared: &Shared, n: usize, me: &View) -> Answer {
    let age_ms = if let Some(ms) = me.spec.heartbeat_age_ms {
        Some(ms)
    } else {
        let mut cur = n;
        let mut cap: Option<Instant> = None;
        let mut found = None;
        for _ in 0..64 {
            let Some(inst) = shared.insts.get(cur) else {
                break;
            };
            let st = lock(&inst.state);
            if let Some(at) = st.heartbeat_at {
                found = Some(cap.map_or(at, |c| c.min(at)));
                break;
            }
            let Some(SourceRef::Sim(s)) = st.spec.replication.as_ref().map(|r| &r.source) else {
                break;
            };
            if !st.stream.flowing() {
                let stalled = st.stream.stalled_at.unwrap_or_else(Instant::now);
                cap = Some(cap.map_or(stalled, |c| c.min(stalled)));
            }
            cur = s.0;
        }
        match found {
            Some(at) => Some(at.elapsed().as_millis() as u64),
            None if has_heartbeat_table(shared, n) => None,
            None => return no_heartbeat_table(),
        }
    };
    Answer::Rows {
        columns: vec![Column::number("age_us")],
        rows: age_ms
            .map(|ms| vec![Some((ms * 1000).to_string())])
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_and_filters() {
        assert!(like(b"rpl_semi%", b"rpl_semi_sync_master_enabled"));
        assert!(like(b"server_i_", b"server_id"));
        assert!(!like(b"server_id", b"server_uuid"));
        let Filter::In(names) = filter("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('a','B')")
        else {
            panic!("not an IN filter");
        };
        assert_eq!(names, ["a", "b"]);
        assert_eq!(old_name("Seconds_Behind_Source"), "Seconds_Behind_Master");
        assert_eq!(
            old_name("Replica_SQL_Running_State"),
            "Slave_SQL_Running_State"
        );
        assert_eq!(old_name("Replicate_Do_DB"), "Replicate_Do_DB");
    }
}
