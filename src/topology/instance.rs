//! One instance as a probe saw it: its address, flavor, version, settings,
//! binlog and GTID positions, semi-sync state and replica status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::coordinates::BinlogCoordinates;
use super::gtid::GtidSet;

/// The address of one instance: `host:port`. Hosts are compared as written
/// (lower-cased); orca always uses the address the instance reports
/// (`report_host`) or the pod IP, never a processlist client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceKey {
    pub host: String,
    pub port: u16,
}

pub const DEFAULT_PORT: u16 = 3306;

impl InstanceKey {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        InstanceKey {
            host: host.into().to_ascii_lowercase(),
            port,
        }
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for InstanceKey {
    type Err = ParseError;

    /// Reads `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults
    /// to 3306.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseError::InstanceKey {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(err("unexpected text after ']'")),
            }
        } else {
            match s.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(err("IPv6 addresses need brackets: [addr]:port"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| err("port is not a number from 1 to 65535"))?,
            None => DEFAULT_PORT,
        };
        if port == 0 {
            return Err(err("port is not a number from 1 to 65535"));
        }
        Ok(InstanceKey::new(host, port))
    }
}

impl TryFrom<String> for InstanceKey {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<InstanceKey> for String {
    fn from(k: InstanceKey) -> String {
        k.to_string()
    }
}

/// The server family; it decides the SQL dialect and the GTID format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    #[serde(rename = "mysql")]
    MySql,
    #[serde(rename = "mariadb")]
    MariaDb,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        })
    }
}

/// A server version such as `10.11.6-MariaDB-0+deb12u1` or `8.0.36`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The whole `@@version` string as the server gave it.
    pub raw: String,
}

impl Version {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let err = || ParseError::Version {
            input: raw.to_string(),
        };
        let numeric = raw.split(['-', '+', ' ']).next().ok_or_else(err)?;
        let mut parts = numeric.split('.');
        let mut next = || -> Result<u32, ParseError> {
            parts
                .next()
                .ok_or_else(err)?
                .parse::<u32>()
                .map_err(|_| err())
        };
        let major = next()?;
        let minor = next()?;
        let patch = next().unwrap_or(0);
        Ok(Version {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }

    /// `(major, minor, patch)`, for ordering.
    pub fn triple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }

    /// `major.minor`, the unit orca compares for "a replica must not be
    /// older than its source".
    pub fn major_minor(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.triple() >= (major, minor, patch)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// State of a replica's IO thread (`Slave_IO_Running` / `Replica_IO_Running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoThreadState {
    Yes,
    Connecting,
    No,
}

impl IoThreadState {
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" => IoThreadState::Yes,
            "connecting" | "preparing" => IoThreadState::Connecting,
            _ => IoThreadState::No,
        }
    }
}

impl fmt::Display for IoThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoThreadState::Yes => "Yes",
            IoThreadState::Connecting => "Connecting",
            IoThreadState::No => "No",
        })
    }
}

/// How a replica channel positions itself on its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GtidChannelMode {
    /// Binlog file and position.
    No,
    /// MariaDB `MASTER_USE_GTID=slave_pos`.
    SlavePos,
    /// MariaDB `MASTER_USE_GTID=current_pos`.
    CurrentPos,
    /// MySQL `SOURCE_AUTO_POSITION=1`.
    AutoPosition,
}

impl GtidChannelMode {
    pub fn uses_gtid(self) -> bool {
        !matches!(self, GtidChannelMode::No)
    }
}

/// One replication channel as `SHOW REPLICA STATUS` / `SHOW SLAVE STATUS`
/// reports it (the default channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `Master_Host:Master_Port` / `Source_Host:Source_Port`.
    pub source: InstanceKey,
    pub io_running: IoThreadState,
    pub sql_running: bool,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// Source coordinates the IO thread has read up to.
    pub read_source: Option<BinlogCoordinates>,
    /// Source coordinates the SQL thread has executed up to.
    pub exec_source: Option<BinlogCoordinates>,
    /// Position in this instance's own relay log.
    pub relay: Option<BinlogCoordinates>,
    /// `Seconds_Behind_Master`; `None` when NULL (SQL or IO thread stopped).
    pub seconds_behind: Option<u64>,
    /// `SQL_Delay`, seconds of configured delay.
    pub sql_delay: u64,
    pub gtid_mode: GtidChannelMode,
    /// MySQL `Retrieved_Gtid_Set`.
    pub retrieved_gtid_set: Option<String>,
    /// MySQL `Executed_Gtid_Set`.
    pub executed_gtid_set: Option<String>,
    /// MariaDB `Gtid_IO_Pos`.
    pub gtid_io_pos: Option<String>,
    /// `Master_Server_Id` / `Source_Server_Id`.
    pub source_server_id: Option<u32>,
    /// MySQL `Master_UUID` / `Source_UUID`.
    pub source_uuid: Option<String>,
    /// `Connect_Retry`, seconds.
    pub connect_retry: Option<u64>,
    /// `Slave_SQL_Running_State` / `Replica_SQL_Running_State`.
    #[serde(default)]
    pub sql_state: Option<String>,
    /// Heartbeats received from the source so far (MariaDB's
    /// `Slave_received_heartbeats`); with the read position, it tells
    /// whether the stream still brings anything.
    #[serde(default)]
    pub received_heartbeats: Option<u64>,
    /// The period the source owes a heartbeat in, when it has nothing
    /// else to send (MariaDB's `Slave_heartbeat_period`), in
    /// milliseconds; 0 when heartbeats are off.
    #[serde(default)]
    pub heartbeat_period_ms: Option<u64>,
}

impl ReplicaStatus {
    /// What the IO thread has received from the source: MySQL
    /// `Retrieved_Gtid_Set`, MariaDB `Gtid_IO_Pos`; `None` when the server
    /// reports nothing or the text does not parse.
    pub fn received(&self) -> Option<GtidSet> {
        if let Some(text) = self.gtid_io_pos.as_deref() {
            return GtidSet::parse(Flavor::MariaDb, text).ok();
        }
        let text = self.retrieved_gtid_set.as_deref()?;
        GtidSet::parse(Flavor::MySql, text).ok()
    }

    /// The SQL thread (and its parallel workers) has applied every
    /// transaction the IO thread received. With GTIDs, `executed` (the
    /// instance's executed set, or MySQL's `Executed_Gtid_Set` when
    /// `None`) must hold everything received; without them, the executed
    /// source coordinates must stand at the read ones. The SQL thread's
    /// "read all relay log" state is no evidence: parallel workers may
    /// still be applying.
    pub fn relay_applied(&self, executed: Option<&GtidSet>) -> bool {
        let own = self
            .executed_gtid_set
            .as_deref()
            .and_then(|t| GtidSet::parse(Flavor::MySql, t).ok());
        if let (Some(received), Some(done)) = (self.received(), executed.or(own.as_ref()))
            && let Some(held) = done.contains(&received)
        {
            return held;
        }
        self.read_source.is_some() && self.read_source == self.exec_source
    }

    /// Both threads running and connected.
    pub fn is_replicating(&self) -> bool {
        self.io_running == IoThreadState::Yes && self.sql_running
    }

    /// The IO thread fails to reach its source (running but not connected,
    /// or stopped with a connection error). This is the replicas' side of
    /// the holistic "is the primary dead" question.
    pub fn source_unreachable(&self) -> bool {
        match self.io_running {
            // A source that refuses the login is alive.
            IoThreadState::Connecting => !is_auth_errno(self.last_io_errno),
            IoThreadState::No => is_connect_errno(self.last_io_errno),
            IoThreadState::Yes => false,
        }
    }
}

/// Client error numbers that mean "could not connect / lost the connection"
/// (CR_CONN_HOST_ERROR 2003, CR_SERVER_LOST 2013, CR_SERVER_GONE 2006,
/// ER_SLAVE_... 1158/1159 net read/timeout).
pub fn is_connect_errno(errno: u32) -> bool {
    matches!(errno, 2003 | 2005 | 2006 | 2013 | 1158 | 1159)
}

/// Errors of a source that answered but refused the replica: access denied
/// (1045), host not allowed or blocked (1130, 1129), authentication needing
/// a secure connection (2061).
pub fn is_auth_errno(errno: u32) -> bool {
    matches!(errno, 1045 | 1129 | 1130 | 2061)
}

/// Semi-synchronous replication, as far as the instance has the plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemiSync {
    /// `rpl_semi_sync_master_enabled` / `rpl_semi_sync_source_enabled`.
    pub primary_enabled: bool,
    /// `rpl_semi_sync_slave_enabled` / `rpl_semi_sync_replica_enabled`.
    pub replica_enabled: bool,
    /// `Rpl_semi_sync_master_status`: semi-sync is active right now.
    pub primary_active: bool,
    /// `Rpl_semi_sync_slave_status`.
    pub replica_active: bool,
    /// Connected semi-sync replicas (`Rpl_semi_sync_master_clients`).
    pub clients: u32,
    /// Acks the primary waits for (`..._wait_for_slave_count`; 1 on MariaDB).
    pub wait_count: u32,
    /// `rpl_semi_sync_master_timeout`, milliseconds.
    pub timeout_ms: u64,
}

/// The GTID state of an instance, in its flavor's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtidState {
    /// MySQL `gtid_mode` (`ON`, `OFF`, `ON_PERMISSIVE`...); MariaDB always
    /// has GTIDs and leaves this `None`.
    pub mode: Option<String>,
    /// What this instance has executed: MySQL `gtid_executed`, MariaDB
    /// `gtid_current_pos`.
    pub executed: Option<GtidSet>,
    /// MySQL `gtid_purged`.
    pub purged: Option<GtidSet>,
    /// MariaDB `gtid_binlog_pos`: the last GTID per domain in its binlog.
    pub binlog_pos: Option<GtidSet>,
    /// MariaDB `gtid_slave_pos`: the last GTID applied by replication.
    pub slave_pos: Option<GtidSet>,
    /// MariaDB `gtid_binlog_state`: last GTID per (domain, server_id).
    pub binlog_state: Option<GtidSet>,
    /// MariaDB `gtid_strict_mode`.
    pub strict_mode: Option<bool>,
    /// MariaDB `gtid_domain_id`.
    pub domain_id: Option<u32>,
}

/// Everything one probe read from one instance. A snapshot is a value: the
/// graph, the analysis and the plans work on snapshots only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub key: InstanceKey,
    pub flavor: Flavor,
    pub version: Version,
    pub server_id: u32,
    /// MySQL `server_uuid`.
    pub server_uuid: Option<String>,
    pub read_only: bool,
    /// MySQL `super_read_only`; `None` on MariaDB.
    pub super_read_only: Option<bool>,
    pub log_bin: bool,
    pub log_replica_updates: bool,
    pub binlog_format: String,
    pub binlog_row_image: Option<String>,
    /// This instance's own binlog position (`SHOW MASTER STATUS`).
    pub binlog: Option<BinlogCoordinates>,
    pub gtid: GtidState,
    pub semi_sync: SemiSync,
    /// The default replication channel, when this instance is a replica.
    pub replica: Option<ReplicaStatus>,
    /// Replicas that registered with this instance (`SHOW SLAVE HOSTS` /
    /// `SHOW REPLICAS`), by their report_host and port.
    pub registered_replicas: Vec<InstanceKey>,
    /// Age of the newest orca heartbeat row this instance holds, by its
    /// own clock, in milliseconds; `None` when there is no heartbeat table.
    /// Replication lag is a replica's age minus its primary's.
    pub heartbeat_age_ms: Option<u64>,
    /// `report_host`, when set.
    pub report_host: Option<String>,
}

impl Snapshot {
    pub fn is_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Effective read-only state (super_read_only implies read_only).
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.super_read_only == Some(true)
    }

    /// Replication lag from `Seconds_Behind_Master` alone, in milliseconds;
    /// `None` when not a replica or when the server reports NULL. The graph
    /// prefers heartbeat lag when both ends have a heartbeat.
    pub fn reported_lag_ms(&self) -> Option<u64> {
        let r = self.replica.as_ref()?;
        r.seconds_behind.map(|s| s.saturating_mul(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_key_parses_and_prints() {
        let k: InstanceKey = "127.0.0.2:3307".parse().unwrap();
        assert_eq!(k, InstanceKey::new("127.0.0.2", 3307));
        assert_eq!(k.to_string(), "127.0.0.2:3307");
        let k: InstanceKey = "DB-1.example".parse().unwrap();
        assert_eq!(k.to_string(), "db-1.example:3306");
        let k: InstanceKey = "[::1]:3310".parse().unwrap();
        assert_eq!(k.host, "::1");
        assert_eq!(k.to_string(), "[::1]:3310");
        for bad in ["", ":3306", "h:0", "h:99999", "h:x", "::1:3306", "[::1"] {
            assert!(bad.parse::<InstanceKey>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn versions_parse() {
        let v = Version::parse("10.11.6-MariaDB-0+deb12u1-log").unwrap();
        assert_eq!(v.triple(), (10, 11, 6));
        let v = Version::parse("8.4.0").unwrap();
        assert!(v.at_least(8, 0, 22));
        assert!(Version::parse("garbage").is_err());
    }

    #[test]
    fn io_thread_states() {
        assert_eq!(IoThreadState::parse("Yes"), IoThreadState::Yes);
        assert_eq!(
            IoThreadState::parse("Connecting"),
            IoThreadState::Connecting
        );
        assert_eq!(IoThreadState::parse("No"), IoThreadState::No);
        assert_eq!(IoThreadState::parse(""), IoThreadState::No);
    }

    #[test]
    fn relay_applied_compares_received_with_executed() {
        use crate::topology::testing::replica_of;
        let pos = |t: &str| GtidSet::parse(Flavor::MariaDb, t).unwrap();
        let mut r = replica_of("r", 2, "p").replica.unwrap();
        r.gtid_io_pos = Some("0-1-12".into());
        // "read all relay log" while parallel workers still apply: not yet.
        r.sql_state = Some("Slave has read all relay log; waiting for more updates".into());
        let same = Some(BinlogCoordinates::new("bin.000001", 10));
        (r.read_source, r.exec_source) = (same.clone(), same);
        // (case, executed, applied)
        let cases = [
            ("behind", Some(pos("0-1-11")), false),
            ("caught up", Some(pos("0-1-12")), true),
            ("ahead", Some(pos("0-1-13")), true),
            ("no executed set: coordinates", None, true),
        ];
        for (name, executed, want) in cases {
            assert_eq!(r.relay_applied(executed.as_ref()), want, "{name}");
        }
        assert_eq!(r.received(), Some(pos("0-1-12")));
        // Without GTIDs, coordinates decide, whatever the state says.
        r.gtid_io_pos = None;
        r.exec_source = Some(BinlogCoordinates::new("bin.000001", 5));
        assert!(!r.relay_applied(None));
        // MySQL: Retrieved_Gtid_Set against Executed_Gtid_Set.
        const U: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        r.retrieved_gtid_set = Some(format!("{U}:1-12"));
        r.executed_gtid_set = Some(format!("{U}:1-11"));
        assert!(!r.relay_applied(None));
        r.executed_gtid_set = Some(format!("{U}:1-12"));
        assert!(r.relay_applied(None));
    }
}
