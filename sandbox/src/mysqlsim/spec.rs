//! The scripted state of one simulated instance.

use std::time::Duration;

use orca::topology::instance::{GtidChannelMode, IoThreadState};
use orca::topology::{BinlogCoordinates, Flavor, InstanceKey};

/// An instance of a [`super::Sim`], by the order it was added in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub usize);

/// Where a replica's source is: another instance of the same simulator
/// (whose address, health and identity it then follows), or an address
/// outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    Sim(InstanceId),
    External(InstanceKey),
}

/// What a simulated instance does with its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Answers.
    #[default]
    Serving,
    /// Its listener is closed: connecting is refused (ECONNREFUSED).
    /// Connections already open keep being answered, and its replicas'
    /// streams keep flowing.
    Refuse,
    /// Stops answering, like a `SIGSTOP`ped mysqld: connections are
    /// taken by the kernel's backlog but never greeted, and open ones get
    /// no answer. Its replicas' streams stall (heartbeats stop counting)
    /// while their IO threads still say `Yes`.
    Hang,
    /// Stopped, like a crashed mysqld: connecting is refused, open
    /// connections are closed, and its replicas' IO threads report
    /// `Connecting` with `Last_IO_Errno` 2003.
    Dead,
}

impl Health {
    /// Whether the instance's replication streams carry events.
    pub(crate) fn streams(self) -> bool {
        matches!(self, Health::Serving | Health::Refuse)
    }
}

/// The GTID state, in the variables of the instance's flavor (the others
/// are ignored): MySQL `gtid_mode`, `gtid_executed`, `gtid_purged`;
/// MariaDB `gtid_binlog_pos`, `gtid_binlog_state`, `gtid_slave_pos`,
/// `gtid_current_pos`, `gtid_strict_mode`, `gtid_domain_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gtids {
    pub mode: String,
    pub executed: String,
    pub purged: String,
    pub binlog_pos: String,
    pub binlog_state: String,
    pub slave_pos: String,
    pub current_pos: String,
    pub strict_mode: bool,
    pub domain_id: u32,
}

impl Default for Gtids {
    fn default() -> Self {
        Gtids {
            mode: "ON".into(),
            executed: String::new(),
            purged: String::new(),
            binlog_pos: String::new(),
            binlog_state: String::new(),
            slave_pos: String::new(),
            current_pos: String::new(),
            strict_mode: true,
            domain_id: 0,
        }
    }
}

/// Semi-synchronous replication settings. Whether it is active is derived:
/// a primary side is active with at least one semi-sync replica streaming
/// from it, a replica side when it streams from a primary that has its
/// side on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemiSyncSpec {
    /// Whether the server has the variables at all (MariaDB always has;
    /// MySQL only with the plugin installed).
    pub installed: bool,
    pub primary_enabled: bool,
    pub replica_enabled: bool,
    pub timeout_ms: u64,
    pub wait_count: u32,
}

impl Default for SemiSyncSpec {
    fn default() -> Self {
        SemiSyncSpec {
            installed: true,
            primary_enabled: false,
            replica_enabled: false,
            timeout_ms: 10_000,
            wait_count: 1,
        }
    }
}

/// The default replication channel of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub source: SourceRef,
    /// The IO thread as scripted; a dead source turns a `Yes` into
    /// `Connecting` with errno 2003 by itself.
    pub io_running: IoThreadState,
    pub sql_running: bool,
    /// `Seconds_Behind_Master`, while both threads run (else NULL).
    pub seconds_behind: u64,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// `Master_Log_File` / `Read_Master_Log_Pos`.
    pub read_pos: Option<BinlogCoordinates>,
    /// `Relay_Master_Log_File` / `Exec_Master_Log_Pos`.
    pub exec_pos: Option<BinlogCoordinates>,
    /// MariaDB `Using_Gtid` (`SlavePos`, `CurrentPos`, `No`); MySQL
    /// `Auto_Position` (`AutoPosition` or not).
    pub gtid_mode: GtidChannelMode,
    /// MySQL `Retrieved_Gtid_Set`, MariaDB `Gtid_IO_Pos`.
    pub retrieved: String,
    pub sql_delay: u64,
    /// How often the source sends a heartbeat on an idle stream
    /// (`Slave_received_heartbeats` counts them, MariaDB only).
    pub heartbeat_period: Duration,
}

impl Replication {
    pub fn new(source: SourceRef) -> Replication {
        Replication {
            source,
            io_running: IoThreadState::Yes,
            sql_running: true,
            seconds_behind: 0,
            last_io_errno: 0,
            last_io_error: String::new(),
            last_sql_errno: 0,
            last_sql_error: String::new(),
            read_pos: None,
            exec_pos: None,
            gtid_mode: GtidChannelMode::SlavePos,
            retrieved: String::new(),
            sql_delay: 0,
            heartbeat_period: Duration::from_secs(1),
        }
    }
}

/// Everything a simulated instance answers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub flavor: Flavor,
    /// `@@version`, e.g. `10.11.19-MariaDB-log` or `8.4.3`.
    pub version: String,
    pub version_comment: String,
    pub server_id: u32,
    /// MySQL `server_uuid` (MariaDB has none).
    pub server_uuid: String,
    pub read_only: bool,
    /// MySQL only.
    pub super_read_only: bool,
    pub log_bin: bool,
    pub log_replica_updates: bool,
    pub binlog_format: String,
    /// Its own binlog position (`SHOW MASTER STATUS`).
    pub binlog: Option<BinlogCoordinates>,
    pub gtid: Gtids,
    pub semi_sync: SemiSyncSpec,
    pub replication: Option<Replication>,
    /// `report_host`; `None`: the instance's own address.
    pub report_host: Option<String>,
    /// A fixed heartbeat age to answer; `None`: derived from the rows
    /// orca's heartbeat writer wrote (error 1146 until it wrote one).
    pub heartbeat_age_ms: Option<u64>,
}

/// A MySQL `server_uuid` made from a server id, the same every run.
pub fn uuid_for(server_id: u32) -> String {
    format!("5a1e0000-0000-4000-8000-{server_id:012x}")
}

impl InstanceSpec {
    /// A MariaDB 10.11 primary: writable, binlog on, GTID `0-<id>-0`
    /// nowhere yet (empty positions).
    pub fn mariadb(server_id: u32) -> InstanceSpec {
        InstanceSpec {
            flavor: Flavor::MariaDb,
            version: "10.11.19-MariaDB-log".into(),
            version_comment: "mariadb.org binary distribution".into(),
            server_id,
            server_uuid: String::new(),
            read_only: false,
            super_read_only: false,
            log_bin: true,
            log_replica_updates: true,
            binlog_format: "ROW".into(),
            binlog: Some(BinlogCoordinates::new("mysql-bin.000001", 330)),
            gtid: Gtids::default(),
            semi_sync: SemiSyncSpec::default(),
            replication: None,
            report_host: None,
            heartbeat_age_ms: None,
        }
    }

    /// A MySQL 8.4 primary with GTIDs on, the source/replica semi-sync
    /// plugins installed.
    pub fn mysql(server_id: u32) -> InstanceSpec {
        InstanceSpec {
            flavor: Flavor::MySql,
            version: "8.4.3".into(),
            version_comment: "MySQL Community Server - GPL".into(),
            server_uuid: uuid_for(server_id),
            binlog: Some(BinlogCoordinates::new("binlog.000001", 158)),
            semi_sync: SemiSyncSpec {
                timeout_ms: 1000,
                ..SemiSyncSpec::default()
            },
            ..InstanceSpec::mariadb(server_id)
        }
        .with_version("8.4.3", "MySQL Community Server - GPL")
    }

    /// The same instance under another version (e.g. `8.0.21` speaks the
    /// old statement names).
    pub fn with_version(mut self, version: &str, comment: &str) -> InstanceSpec {
        self.version = version.into();
        self.version_comment = comment.into();
        self
    }

    /// The MySQL version as numbers (MariaDB: its own numbers).
    pub(crate) fn version_triple(&self) -> (u32, u32, u32) {
        let mut it = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u32>().ok());
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }

    pub(crate) fn mysql_at_least(&self, v: (u32, u32, u32)) -> bool {
        self.flavor == Flavor::MySql && self.version_triple() >= v
    }
}
