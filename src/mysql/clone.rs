//! MySQL 8's clone plugin: what orca needs to provision a MySQL replica
//! by physical copy with `CLONE INSTANCE` (MariaDB has no clone plugin;
//! there the agent streams `mariadb-backup`, see [`crate::agent`]).
//!
//! - the statements, on the recipient (the plugin, the donor list, the
//!   clone itself) and the grants of the account the clone uses, with
//!   the password kept out of every `Debug` and `Display`;
//! - readers of the plugin query and of `performance_schema.clone_status`
//!   and `clone_progress`, into typed values, with the position (binlog
//!   coordinates and `GTID_EXECUTED`) a finished clone carries;
//! - a progress summary (bytes, estimate, stage, rate from two samples)
//!   and its mapping onto the agent's [`CopyProgress`];
//! - the errors a user meets, classified with a message that says what
//!   to do, and the verdict on a `CLONE INSTANCE` whose connection
//!   dropped (the recipient restarts itself on the copy: that is the
//!   normal end).
//!
//! Everything here is pure: no MySQL server runs on this machine, so it
//! is tested from server answers kept as fixtures
//! (`tests/fixtures/mysql/clone/`, `tests/mysql_clone.rs`), as the MySQL
//! dialect is. The column lists, value formats and error texts are
//! MySQL's own (the clone plugin's table definitions and messages).

use std::fmt;

use jiff::civil::DateTime;

use super::conn::{Credentials, redact};
use super::dialect::{Dialect, quote};
use super::parse::TextRow;
use crate::agent::{CopyPhase, CopyProgress};
use crate::topology::{BinlogCoordinates, Flavor, GtidSet, InstanceKey, ParseError};

/// Whether the recipient has the plugin, and in which state.
pub const PLUGIN_QUERY: &str =
    "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME='clone'";
/// Loads the plugin (on the recipient, and on a donor that lacks it).
pub const INSTALL_PLUGIN: &str = "INSTALL PLUGIN clone SONAME 'mysql_clone.so'";
/// The current or last clone of the recipient: one row, or none.
pub const STATUS_QUERY: &str = "SELECT * FROM performance_schema.clone_status";
/// The stages of the current or last clone: seven rows, or none.
pub const PROGRESS_QUERY: &str = "SELECT * FROM performance_schema.clone_progress";

/// The first MySQL with the clone plugin.
pub const MIN_VERSION: (u32, u32, u32) = (8, 0, 17);
/// From this release on, donor and recipient may differ in their patch
/// release within one series (8.0.x, 8.4.x); before it they must be the
/// same version.
pub const SAME_SERIES_FROM: (u32, u32, u32) = (8, 0, 37);

/// Server and client error numbers the clone answers with.
pub mod code {
    /// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: the account lacks a privilege
    /// (`CLONE_ADMIN` on the recipient).
    pub const ACCESS_DENIED: u16 = 1227;
    /// `ER_ACCESS_DENIED_ERROR`: wrong user or password.
    pub const BAD_CREDENTIALS: u16 = 1045;
    /// `ER_QUERY_INTERRUPTED`: what clone_status keeps for a clone the
    /// server died in.
    pub const QUERY_INTERRUPTED: u16 = 1317;
    /// `ER_PLUGIN_IS_NOT_LOADED`.
    pub const PLUGIN_NOT_LOADED: u16 = 1524;
    /// `ER_INTERNAL_ERROR`: clone_status's "Recovery failed" after the
    /// restart.
    pub const INTERNAL: u16 = 1815;
    /// `ER_CLONE_TOO_MANY_CONCURRENT_CLONES`.
    pub const TOO_MANY_CLONES: u16 = 3634;
    /// `ER_RESTART_SERVER_FAILED`: the data is cloned, but `mysqld` has no
    /// supervisor to restart it.
    pub const RESTART_FAILED: u16 = 3707;
    /// `ER_CLONE_DONOR`: "Clone Donor Error: ...", the donor's own error.
    pub const DONOR: u16 = 3862;
    /// `ER_CLONE_PROTOCOL`.
    pub const PROTOCOL: u16 = 3863;
    /// `ER_CLONE_DONOR_VERSION`.
    pub const DONOR_VERSION: u16 = 3864;
    /// `ER_CLONE_OS`.
    pub const OS: u16 = 3865;
    /// `ER_CLONE_PLATFORM`.
    pub const PLATFORM: u16 = 3866;
    /// `ER_CLONE_CHARSET`.
    pub const CHARSET: u16 = 3867;
    /// `ER_CLONE_CONFIG`.
    pub const CONFIG: u16 = 3868;
    /// `ER_CLONE_SYS_CONFIG`: among others, the donor not in
    /// `clone_valid_donor_list`.
    pub const SYS_CONFIG: u16 = 3869;
    /// `ER_CLONE_PLUGIN_MATCH`.
    pub const PLUGIN_MATCH: u16 = 3870;
    /// `ER_CLONE_LOOPBACK`.
    pub const LOOPBACK: u16 = 3871;
    /// `ER_CLONE_ENCRYPTION`.
    pub const ENCRYPTION: u16 = 3872;
    /// `ER_CLONE_DISK_SPACE`.
    pub const DISK_SPACE: u16 = 3873;
    /// `ER_CLONE_IN_PROGRESS`.
    pub const IN_PROGRESS: u16 = 3874;
    /// `ER_CLONE_DISALLOWED`.
    pub const DISALLOWED: u16 = 3875;
    /// `CR_SERVER_GONE_ERROR` (client side).
    pub const SERVER_GONE: u16 = 2006;
    /// `CR_SERVER_LOST` (client side): "Lost connection to MySQL server
    /// during query", what the client of `CLONE INSTANCE` sees when the
    /// recipient restarts itself.
    pub const SERVER_LOST: u16 = 2013;
}

// ---------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------

/// A statement that carries a secret: `sql` is what is sent, and the only
/// way to the password; `Debug` and `Display` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
    shown: String,
    secret: String,
}

impl Statement {
    /// The text to send to the server.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// `text` (a server's error, a log line) with the secret redacted.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &[self.secret.as_str()])
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Statement").field(&self.shown).finish()
    }
}

/// Why a statement cannot be written for these names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the clone needs at least one donor")]
    NoDonor,
    #[error(
        "donor {0:?}: clone_valid_donor_list takes host:port entries separated by commas, \
         so the host cannot hold ':' (an IPv6 address; name the donor by its host name), \
         ',' or white space"
    )]
    UnlistableHost(String),
    #[error("the clone account's user name is empty")]
    NoUser,
}

/// The donor as `clone_valid_donor_list` and `CLONE INSTANCE` both name
/// it: the server compares the two as text, with the list's host
/// lower-cased, so orca writes the host lower-cased in both.
fn donor_host(donor: &InstanceKey) -> Result<String, StatementError> {
    let host = donor.host.trim();
    if host.is_empty() || host.contains([':', ',', ' ', '\t', '\n', '\r', '\0']) {
        return Err(StatementError::UnlistableHost(donor.host.clone()));
    }
    Ok(host.to_ascii_lowercase())
}

/// The value of `clone_valid_donor_list` naming `donors`:
/// `host1:port1,host2:port2`, no spaces (the server refuses them).
pub fn donor_list(donors: &[InstanceKey]) -> Result<String, StatementError> {
    if donors.is_empty() {
        return Err(StatementError::NoDonor);
    }
    let entries = donors
        .iter()
        .map(|d| donor_host(d).map(|h| format!("{h}:{}", d.port)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(entries.join(","))
}

/// `SET GLOBAL clone_valid_donor_list = 'host:port,...'`, on the
/// recipient before the clone. Not persisted: the restart that ends the
/// clone forgets it, as it should.
pub fn set_donor_list(donors: &[InstanceKey]) -> Result<String, StatementError> {
    Ok(format!(
        "SET GLOBAL clone_valid_donor_list = {}",
        quote(&donor_list(donors)?)
    ))
}

/// Whether the clone's connection to the donor is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ssl {
    /// The server's default (`REQUIRE SSL` unless said otherwise; MySQL
    /// uses TLS when both ends can).
    #[default]
    Default,
    /// `REQUIRE SSL`: fail rather than copy in clear. Needed to clone
    /// encrypted tables (error 3872 otherwise).
    Require,
    /// `REQUIRE NO SSL`.
    No,
}

/// `CLONE INSTANCE FROM 'user'@'host':port IDENTIFIED BY '...'`, on the
/// recipient: replaces its whole data directory with the donor's, then
/// restarts it. `creds` is an account of the donor with `BACKUP_ADMIN`.
pub fn clone_instance(
    donor: &InstanceKey,
    creds: &Credentials,
    ssl: Ssl,
) -> Result<Statement, StatementError> {
    if creds.user.is_empty() {
        return Err(StatementError::NoUser);
    }
    let host = donor_host(donor)?;
    let head = format!(
        "CLONE INSTANCE FROM {}@{}:{} IDENTIFIED BY ",
        quote(&creds.user),
        quote(&host),
        donor.port
    );
    let tail = match ssl {
        Ssl::Default => "",
        Ssl::Require => " REQUIRE SSL",
        Ssl::No => " REQUIRE NO SSL",
    };
    Ok(Statement {
        sql: format!("{head}{}{tail}", quote(creds.password())),
        shown: format!("{head}'<redacted>'{tail}"),
        secret: creds.password().to_string(),
    })
}

/// The account as a GRANT names it, from any host.
fn account(user: &str) -> Result<String, StatementError> {
    if user.is_empty() {
        return Err(StatementError::NoUser);
    }
    Ok(format!("{}@'%'", quote(user)))
}

/// On the donor: the account the recipient connects as may take a
/// backup (`BACKUP_ADMIN`).
pub fn grant_donor(user: &str) -> Result<String, StatementError> {
    Ok(format!("GRANT BACKUP_ADMIN ON *.* TO {}", account(user)?))
}

/// On the recipient: the account that runs `CLONE INSTANCE` may clone
/// (`CLONE_ADMIN`, which also lets it replace the data and restart the
/// server).
pub fn grant_recipient(user: &str) -> Result<String, StatementError> {
    Ok(format!("GRANT CLONE_ADMIN ON *.* TO {}", account(user)?))
}

/// Both, for the primary: a GRANT is a transaction, so one made on a
/// healthy replica (a donor) would be an errant transaction there; made
/// on the primary it replicates to every member, each of which can then
/// be a donor and, after a clone from any of them, still has it.
pub fn grant_cluster(user: &str) -> Result<String, StatementError> {
    Ok(format!(
        "GRANT BACKUP_ADMIN, CLONE_ADMIN ON *.* TO {}",
        account(user)?
    ))
}

/// Whether `dialect` can clone at all: MySQL 8.0.17 or later.
pub fn supported(dialect: &Dialect) -> Result<(), String> {
    let (major, minor, patch) = MIN_VERSION;
    match dialect.flavor {
        Flavor::MariaDb => Err(format!(
            "{} has no clone plugin: MariaDB is provisioned with mariadb-backup",
            dialect.version
        )),
        Flavor::MySql if !dialect.version.at_least(major, minor, patch) => Err(format!(
            "MySQL {} has no clone plugin (it came in {major}.{minor}.{patch})",
            dialect.version
        )),
        Flavor::MySql => Ok(()),
    }
}

/// Whether `donor` can clone into `recipient`, as the server checks it
/// (error 3864 otherwise): the same version, or from 8.0.37 on the same
/// series (major and minor).
pub fn compatible(donor: &Dialect, recipient: &Dialect) -> Result<(), String> {
    supported(donor)?;
    supported(recipient)?;
    let (d, r) = (&donor.version, &recipient.version);
    let (major, minor, patch) = SAME_SERIES_FROM;
    let same = if d.at_least(major, minor, patch) && r.at_least(major, minor, patch) {
        d.major_minor() == r.major_minor()
    } else {
        d.triple() == r.triple()
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "the donor runs MySQL {d} and the recipient {r}: a clone needs the same version \
             (from {major}.{minor}.{patch} on, the same series)"
        ))
    }
}

// ---------------------------------------------------------------------------
// The plugin
// ---------------------------------------------------------------------------

/// The clone plugin on one server, from [`PLUGIN_QUERY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plugin {
    /// No row: not installed. [`INSTALL_PLUGIN`] loads it.
    Absent,
    /// `ACTIVE`: ready.
    Active,
    /// Installed but not usable (`DISABLED`, as with `--clone=OFF`,
    /// `INACTIVE`, `DELETED`): installing again fails; the server's
    /// configuration must change.
    Unusable(String),
}

/// Reads the answer to [`PLUGIN_QUERY`].
pub fn plugin(rows: &[TextRow]) -> Plugin {
    let Some(status) = rows
        .first()
        .map(|r| text(r, "PLUGIN_STATUS").trim().to_string())
    else {
        return Plugin::Absent;
    };
    if status.eq_ignore_ascii_case("ACTIVE") {
        Plugin::Active
    } else {
        Plugin::Unusable(status)
    }
}

impl Plugin {
    /// The statement that makes the plugin ready, `None` when it is.
    pub fn install(&self) -> Result<Option<&'static str>, String> {
        match self {
            Plugin::Absent => Ok(Some(INSTALL_PLUGIN)),
            Plugin::Active => Ok(None),
            Plugin::Unusable(status) => Err(format!(
                "the clone plugin is installed but {status}: enable it in the server's \
                 configuration (clone=ON, or plugin-load-add=mysql_clone.so) and restart"
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// clone_status and clone_progress
// ---------------------------------------------------------------------------

/// What a row of the clone tables could not be read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloneParseError {
    #[error("{table}: column {column} is missing")]
    Missing {
        table: &'static str,
        column: &'static str,
    },
    #[error("{table}: column {column}: {value:?} is not {expected}")]
    Value {
        table: &'static str,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("clone_status: GTID_EXECUTED: {0}")]
    Gtid(#[source] ParseError),
}

/// The state of a clone, or of one of its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloneState {
    NotStarted,
    InProgress,
    Completed,
    Failed,
}

impl CloneState {
    fn parse(table: &'static str, s: &str) -> Result<Self, CloneParseError> {
        match s.trim() {
            "Not Started" => Ok(CloneState::NotStarted),
            "In Progress" => Ok(CloneState::InProgress),
            "Completed" => Ok(CloneState::Completed),
            "Failed" => Ok(CloneState::Failed),
            other => Err(CloneParseError::Value {
                table,
                column: "STATE",
                value: other.to_string(),
                expected: "Not Started, In Progress, Completed or Failed",
            }),
        }
    }
}

impl fmt::Display for CloneState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloneState::NotStarted => "Not Started",
            CloneState::InProgress => "In Progress",
            CloneState::Completed => "Completed",
            CloneState::Failed => "Failed",
        })
    }
}

/// The stages of a clone, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CloneStage {
    /// The recipient's data is dropped.
    DropData,
    /// The donor's files are copied.
    FileCopy,
    /// The pages changed during the file copy.
    PageCopy,
    /// The redo written during the copy.
    RedoCopy,
    /// The copy is flushed to disk.
    FileSync,
    /// The recipient restarts on the copy: the client's connection drops.
    Restart,
    /// The restarted recipient recovers the copy.
    Recovery,
}

impl CloneStage {
    pub const ALL: [CloneStage; 7] = [
        CloneStage::DropData,
        CloneStage::FileCopy,
        CloneStage::PageCopy,
        CloneStage::RedoCopy,
        CloneStage::FileSync,
        CloneStage::Restart,
        CloneStage::Recovery,
    ];

    /// The name as `clone_progress.STAGE` prints it (`FILE COPY`); the
    /// manual's `PAGE_COPY` spelling is read too.
    pub fn parse(s: &str) -> Option<Self> {
        let name = s.trim().replace('_', " ").to_ascii_uppercase();
        CloneStage::ALL.into_iter().find(|st| st.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            CloneStage::DropData => "DROP DATA",
            CloneStage::FileCopy => "FILE COPY",
            CloneStage::PageCopy => "PAGE COPY",
            CloneStage::RedoCopy => "REDO COPY",
            CloneStage::FileSync => "FILE SYNC",
            CloneStage::Restart => "RESTART",
            CloneStage::Recovery => "RECOVERY",
        }
    }

    /// The stages in which data crosses the network.
    pub fn copies(self) -> bool {
        matches!(
            self,
            CloneStage::FileCopy | CloneStage::PageCopy | CloneStage::RedoCopy
        )
    }
}

impl fmt::Display for CloneStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A server error: its number and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub message: String,
}

/// Where a clone copies from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneSource {
    /// `LOCAL INSTANCE`: a local clone (`CLONE LOCAL DATA DIRECTORY`).
    Local,
    /// The donor, `HOST:PORT`.
    Remote(InstanceKey),
}

/// The position a clone's data ends at: replication of the recipient
/// starts from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClonePosition {
    /// The donor's binary log coordinates at the end of the copy, when
    /// the donor writes a binary log.
    pub binlog: Option<BinlogCoordinates>,
    /// `GTID_EXECUTED` of the copy (the recipient's `gtid_executed` and
    /// `gtid_purged` after the restart).
    pub gtid_executed: GtidSet,
}

/// The row of `performance_schema.clone_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneStatus {
    pub id: u32,
    /// The session running the clone; 0 after the restart (the row is
    /// then read back from the data directory).
    pub pid: u64,
    pub state: CloneState,
    /// In the server's time zone.
    pub begin: Option<DateTime>,
    pub end: Option<DateTime>,
    pub source: CloneSource,
    /// The directory cloned into; `LOCAL INSTANCE` for the data
    /// directory itself.
    pub destination: String,
    /// `ERROR_NO` and `ERROR_MESSAGE`, when `ERROR_NO` is not 0.
    pub error: Option<ServerError>,
    pub position: ClonePosition,
}

impl CloneStatus {
    /// The clone's end as orca judges it: the position when it
    /// completed without error, its error classified when it failed,
    /// `None` while it runs.
    pub fn outcome(&self) -> Option<Result<ClonePosition, CloneError>> {
        match (self.state, &self.error) {
            (CloneState::Completed, None) => Some(Ok(self.position.clone())),
            (CloneState::Completed | CloneState::Failed, Some(e)) => {
                Some(Err(classify(e.code, &e.message, None)))
            }
            (CloneState::Failed, None) => Some(Err(CloneError::Other {
                code: 0,
                message: "clone_status says Failed without an error".into(),
            })),
            (CloneState::NotStarted | CloneState::InProgress, _) => None,
        }
    }
}

fn text<'a>(row: &'a TextRow, column: &str) -> &'a str {
    row.get(column)
        .and_then(|v| v.as_deref())
        .unwrap_or_default()
}

fn required<'a>(
    table: &'static str,
    row: &'a TextRow,
    column: &'static str,
) -> Result<&'a str, CloneParseError> {
    match row.get(column) {
        Some(v) => Ok(v.as_deref().unwrap_or_default()),
        None => Err(CloneParseError::Missing { table, column }),
    }
}

fn number<T: std::str::FromStr + Default>(
    table: &'static str,
    row: &TextRow,
    column: &'static str,
) -> Result<T, CloneParseError> {
    let v = required(table, row, column)?.trim();
    if v.is_empty() {
        return Ok(T::default());
    }
    v.parse().map_err(|_| CloneParseError::Value {
        table,
        column,
        value: v.to_string(),
        expected: "a number",
    })
}

/// `YYYY-MM-DD hh:mm:ss[.fraction]`, or NULL.
fn time(
    table: &'static str,
    row: &TextRow,
    column: &'static str,
) -> Result<Option<DateTime>, CloneParseError> {
    let v = required(table, row, column)?.trim();
    if v.is_empty() || v.starts_with("0000-00-00") {
        return Ok(None);
    }
    v.replacen(' ', "T", 1)
        .parse::<DateTime>()
        .map(Some)
        .map_err(|_| CloneParseError::Value {
            table,
            column,
            value: v.to_string(),
            expected: "a time as YYYY-MM-DD hh:mm:ss[.fraction]",
        })
}

/// Reads the answer to [`STATUS_QUERY`]: `None` when no clone ever ran.
pub fn clone_status(rows: &[TextRow]) -> Result<Option<CloneStatus>, CloneParseError> {
    const T: &str = "clone_status";
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let source = required(T, row, "SOURCE")?.trim();
    let source = if source.is_empty() || source.eq_ignore_ascii_case("LOCAL INSTANCE") {
        CloneSource::Local
    } else {
        CloneSource::Remote(source.parse().map_err(|_| CloneParseError::Value {
            table: T,
            column: "SOURCE",
            value: source.to_string(),
            expected: "HOST:PORT",
        })?)
    };
    let error_no: u16 = number(T, row, "ERROR_NO")?;
    let error = (error_no != 0).then(|| ServerError {
        code: error_no,
        message: text(row, "ERROR_MESSAGE").trim().to_string(),
    });
    let file = required(T, row, "BINLOG_FILE")?.trim();
    let pos: u64 = number(T, row, "BINLOG_POSITION")?;
    let binlog = (!file.is_empty()).then(|| BinlogCoordinates::new(file, pos));
    let gtid_executed = GtidSet::parse(Flavor::MySql, required(T, row, "GTID_EXECUTED")?)
        .map_err(CloneParseError::Gtid)?;
    Ok(Some(CloneStatus {
        id: number(T, row, "ID")?,
        pid: number(T, row, "PID")?,
        state: CloneState::parse(T, required(T, row, "STATE")?)?,
        begin: time(T, row, "BEGIN_TIME")?,
        end: time(T, row, "END_TIME")?,
        source,
        destination: text(row, "DESTINATION").trim().to_string(),
        error,
        position: ClonePosition {
            binlog,
            gtid_executed,
        },
    }))
}

/// One row of `performance_schema.clone_progress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageProgress {
    pub stage: CloneStage,
    pub state: CloneState,
    pub begin: Option<DateTime>,
    pub end: Option<DateTime>,
    pub threads: u32,
    /// Bytes this stage is estimated to move.
    pub estimate: u64,
    /// Bytes moved so far.
    pub data: u64,
    /// Bytes received over the network so far.
    pub network: u64,
    /// Bytes per second now (0 unless the stage is in progress).
    pub data_speed: u64,
    pub network_speed: u64,
}

/// The rows of `performance_schema.clone_progress`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloneProgress {
    pub id: u32,
    /// In the stages' order.
    pub stages: Vec<StageProgress>,
}

/// Reads the answer to [`PROGRESS_QUERY`]: empty when no clone ever ran.
pub fn clone_progress(rows: &[TextRow]) -> Result<CloneProgress, CloneParseError> {
    const T: &str = "clone_progress";
    let mut out = CloneProgress::default();
    for row in rows {
        let name = required(T, row, "STAGE")?;
        let stage = CloneStage::parse(name).ok_or_else(|| CloneParseError::Value {
            table: T,
            column: "STAGE",
            value: name.to_string(),
            expected: "a clone stage",
        })?;
        out.id = number(T, row, "ID")?;
        out.stages.push(StageProgress {
            stage,
            state: CloneState::parse(T, required(T, row, "STATE")?)?,
            begin: time(T, row, "BEGIN_TIME")?,
            end: time(T, row, "END_TIME")?,
            threads: number(T, row, "THREADS")?,
            estimate: number(T, row, "ESTIMATE")?,
            data: number(T, row, "DATA")?,
            network: number(T, row, "NETWORK")?,
            data_speed: number(T, row, "DATA_SPEED")?,
            network_speed: number(T, row, "NETWORK_SPEED")?,
        });
    }
    out.stages.sort_by_key(|s| s.stage);
    Ok(out)
}

/// Bytes done at one moment: what a rate is computed between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub bytes: u64,
    /// Milliseconds on any clock that only goes forward.
    pub at_ms: u64,
}

/// Where a clone is, in the terms of the agent's copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressSummary {
    /// The stage in progress, or the last one begun.
    pub stage: Option<CloneStage>,
    /// Bytes moved, every stage together.
    pub bytes: u64,
    /// Bytes estimated, every stage together (0 until the donor said).
    pub estimated_bytes: u64,
    /// Bytes received over the network.
    pub network_bytes: u64,
    /// Bytes per second: between the previous sample and this one when
    /// given, else the server's own speed of the stage in progress.
    pub rate: u64,
    /// This summary's sample, for the next one's rate.
    pub sample: Sample,
}

impl ProgressSummary {
    /// Per cent of the estimate done, when there is an estimate.
    pub fn percent(&self) -> Option<u64> {
        (self.estimated_bytes > 0)
            .then(|| (self.bytes.min(self.estimated_bytes) * 100) / self.estimated_bytes)
    }
}

impl CloneProgress {
    /// The stage in progress, else the last one that began.
    pub fn stage(&self) -> Option<CloneStage> {
        self.stages
            .iter()
            .find(|s| s.state == CloneState::InProgress)
            .or_else(|| {
                self.stages
                    .iter()
                    .rev()
                    .find(|s| s.state != CloneState::NotStarted)
            })
            .map(|s| s.stage)
    }

    /// The stage that failed, if one did.
    pub fn failed_stage(&self) -> Option<CloneStage> {
        self.stages
            .iter()
            .find(|s| s.state == CloneState::Failed)
            .map(|s| s.stage)
    }

    pub fn bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.data).sum()
    }

    pub fn estimated_bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.estimate).sum()
    }

    pub fn network_bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.network).sum()
    }

    /// The summary at `now_ms`, the rate measured since `previous` when
    /// given (a clone that restarted after a network error may count
    /// again from less: the rate is then 0, never negative).
    pub fn summary(&self, now_ms: u64, previous: Option<Sample>) -> ProgressSummary {
        let bytes = self.bytes();
        let rate = match previous {
            Some(p) if now_ms > p.at_ms => {
                let elapsed = u128::from(now_ms - p.at_ms);
                let moved = u128::from(bytes.saturating_sub(p.bytes));
                u64::try_from(moved * 1000 / elapsed).unwrap_or(u64::MAX)
            }
            _ => self
                .stages
                .iter()
                .find(|s| s.state == CloneState::InProgress)
                .map_or(0, |s| s.data_speed),
        };
        ProgressSummary {
            stage: self.stage(),
            bytes,
            estimated_bytes: self.estimated_bytes(),
            network_bytes: self.network_bytes(),
            rate,
            sample: Sample {
                bytes,
                at_ms: now_ms,
            },
        }
    }
}

/// The phase of the agent's copies a clone is in: the copying stages
/// stream, the sync prepares, the restart and recovery are the swap onto
/// the new data.
pub fn phase(status: Option<&CloneStatus>, stage: Option<CloneStage>) -> CopyPhase {
    match status.map(|s| (s.state, s.error.is_some())) {
        Some((CloneState::Failed, _)) | Some((CloneState::Completed, true)) => {
            return CopyPhase::Failed;
        }
        Some((CloneState::Completed, false)) => return CopyPhase::Done,
        _ => {}
    }
    match stage {
        None | Some(CloneStage::DropData | CloneStage::FileCopy) => CopyPhase::Streaming,
        Some(CloneStage::PageCopy | CloneStage::RedoCopy) => CopyPhase::Streaming,
        Some(CloneStage::FileSync) => CopyPhase::Preparing,
        Some(CloneStage::Restart | CloneStage::Recovery) => CopyPhase::Swapping,
    }
}

/// Where one clone attempt is, as the agent's [`CopyProgress`] says it
/// for `mariadb-backup` copies, so that status and Events read the same
/// for both flavors.
pub struct Attempt<'a> {
    /// The operation's id.
    pub id: &'a str,
    pub donor: &'a InstanceKey,
    pub attempt: u32,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub updated_at: u64,
}

/// The clone's progress as a [`CopyProgress`].
pub fn copy_progress(
    attempt: &Attempt<'_>,
    status: Option<&CloneStatus>,
    summary: &ProgressSummary,
) -> CopyProgress {
    CopyProgress {
        id: attempt.id.to_string(),
        phase: phase(status, summary.stage),
        source: attempt.donor.to_string(),
        attempt: attempt.attempt,
        bytes: summary.bytes,
        estimated_bytes: (summary.estimated_bytes > 0).then_some(summary.estimated_bytes),
        rate: summary.rate,
        started_at: attempt.started_at,
        updated_at: attempt.updated_at,
        error: status
            .and_then(CloneStatus::outcome)
            .and_then(Result::err)
            .map(|e| e.to_string()),
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What the donor answered, inside "Clone Donor Error: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DonorError {
    /// "Connect failed: N : ...": the recipient could not log in to the
    /// donor (N 1045: user or password; 2003/2005: unreachable).
    Connect { code: u16, message: String },
    /// "1227 : Access denied; you need ... the BACKUP_ADMIN privilege(s)".
    Privilege(String),
    /// "1524 : Plugin 'clone' is not loaded": the donor lacks the plugin.
    PluginNotLoaded,
    /// Any other error of the donor.
    Other { code: u16, message: String },
}

/// A clone that failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloneError {
    #[error(
        "the recipient refused donor {donor}: it is not in clone_valid_donor_list ({list}); \
         the list must name the donor exactly as CLONE INSTANCE does (orca sets it first)"
    )]
    NotInDonorList { donor: String, list: String },
    #[error("clone_valid_donor_list: {0}")]
    DonorListFormat(String),
    #[error("the recipient's configuration does not fit the donor's: {0}")]
    SystemConfig(String),
    #[error("the donor refused: {}", donor_message(.0))]
    Donor(DonorError),
    #[error(
        "the donor and recipient differ ({message}): a clone needs the same version, OS, platform and settings"
    )]
    Mismatch { code: u16, message: String },
    #[error("the donor has a plugin the recipient lacks ({0}): install it on the recipient first")]
    PluginMismatch(String),
    #[error("the clone plugin is not loaded on the recipient: {INSTALL_PLUGIN}")]
    PluginNotLoaded,
    #[error(
        "the recipient's account lacks {privilege}: GRANT {privilege} ON *.* on the recipient \
         (CLONE_ADMIN to run CLONE INSTANCE)"
    )]
    AccessDenied { privilege: String },
    #[error("the donor's data has encrypted tables: clone with REQUIRE SSL")]
    NeedsSsl,
    #[error("the recipient lacks disk space for the copy: {0}")]
    DiskSpace(String),
    #[error("another clone runs on this server: wait for it, never two at once")]
    Concurrent,
    #[error("the clone is not allowed now: {0}")]
    Disallowed(String),
    #[error("a server cannot clone from itself into its own data directory")]
    Loopback,
    #[error(
        "the server stopped during the clone (clone_status: {0}); the data directory is not a \
         whole copy: clone again"
    )]
    Interrupted(String),
    #[error("the recipient could not recover the copy after its restart ({0}): clone again")]
    Recovery(String),
    #[error(
        "the connection to the recipient was lost during {} (error {code}), before the restart: \
         read clone_status once the server is back",
        stage.map_or("the clone", CloneStage::name)
    )]
    ConnectionLost {
        code: u16,
        stage: Option<CloneStage>,
    },
    #[error("clone error {code}: {message}")]
    Other { code: u16, message: String },
}

fn donor_message(e: &DonorError) -> String {
    match e {
        DonorError::Connect {
            code: code::BAD_CREDENTIALS,
            message,
        } => format!(
            "the clone account could not log in to the donor ({message}): \
             its user and password must be the donor's"
        ),
        DonorError::Connect { code, message } => {
            format!("the donor could not be reached (error {code}: {message})")
        }
        DonorError::Privilege(p) => format!(
            "the clone account lacks {p} on the donor: GRANT {p} ON *.* (on the primary, \
             so that it replicates to every donor)"
        ),
        DonorError::PluginNotLoaded => {
            format!("the donor lacks the clone plugin: {INSTALL_PLUGIN} on the donor")
        }
        DonorError::Other { code, message } => format!("error {code}: {message}"),
    }
}

impl CloneError {
    /// Whether another donor may do better: the error is the donor's own
    /// or its reachability, not the recipient's.
    pub fn try_another_donor(&self) -> bool {
        matches!(
            self,
            CloneError::Donor(DonorError::Connect { .. } | DonorError::Other { .. })
                | CloneError::Interrupted(_)
                | CloneError::Recovery(_)
                | CloneError::ConnectionLost { .. }
        )
    }
}

/// "N : text" → (N, text), the form the clone nests errors in.
fn nested(s: &str) -> Option<(u16, String)> {
    let (n, rest) = s.split_once(" : ")?;
    let n = n.trim().parse().ok()?;
    Some((n, rest.trim().trim_end_matches('.').to_string()))
}

/// The privilege named in "you need (at least one of) the X privilege(s)".
fn privilege(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(" the ")?;
    let (p, _) = rest.split_once(" privilege")?;
    Some(p.trim().to_string())
}

/// Reads "Clone Donor Error: ..." (the prefix may be missing).
pub fn donor_error(message: &str) -> DonorError {
    let inner = message
        .trim()
        .strip_prefix("Clone Donor Error:")
        .unwrap_or(message)
        .trim();
    if let Some(rest) = inner.strip_prefix("Connect failed:") {
        let (code, message) = nested(rest.trim()).unwrap_or((0, rest.trim().to_string()));
        return DonorError::Connect { code, message };
    }
    match nested(inner) {
        Some((code::ACCESS_DENIED, m)) => {
            DonorError::Privilege(privilege(&m).unwrap_or_else(|| "BACKUP_ADMIN".into()))
        }
        Some((code::PLUGIN_NOT_LOADED, _)) => DonorError::PluginNotLoaded,
        Some((code, message)) => DonorError::Other { code, message },
        None => DonorError::Other {
            code: 0,
            message: inner.trim_end_matches('.').to_string(),
        },
    }
}

/// Classifies an error of a clone: the answer to `CLONE INSTANCE` or
/// clone_status's `ERROR_NO`/`ERROR_MESSAGE`. `stage` is the last stage
/// clone_progress showed, when known.
pub fn classify(code: u16, message: &str, stage: Option<CloneStage>) -> CloneError {
    let message = message.trim();
    let m = message.to_string();
    match code {
        code::SYS_CONFIG => {
            let inner = message
                .strip_prefix("Clone system configuration:")
                .unwrap_or(message)
                .trim();
            if let Some((donor, list)) =
                inner.split_once(" is not found in clone_valid_donor_list:")
            {
                CloneError::NotInDonorList {
                    donor: donor.trim().to_string(),
                    list: list.trim().to_string(),
                }
            } else if inner.starts_with("Invalid Format") {
                CloneError::DonorListFormat(inner.to_string())
            } else {
                CloneError::SystemConfig(inner.to_string())
            }
        }
        code::DONOR => CloneError::Donor(donor_error(message)),
        code::PROTOCOL
        | code::DONOR_VERSION
        | code::OS
        | code::PLATFORM
        | code::CHARSET
        | code::CONFIG => CloneError::Mismatch { code, message: m },
        code::PLUGIN_MATCH => CloneError::PluginMismatch(m),
        code::PLUGIN_NOT_LOADED => CloneError::PluginNotLoaded,
        code::ACCESS_DENIED => CloneError::AccessDenied {
            privilege: privilege(message).unwrap_or_else(|| "CLONE_ADMIN".into()),
        },
        code::ENCRYPTION => CloneError::NeedsSsl,
        code::DISK_SPACE => CloneError::DiskSpace(m),
        code::IN_PROGRESS | code::TOO_MANY_CLONES => CloneError::Concurrent,
        code::DISALLOWED => CloneError::Disallowed(m),
        code::LOOPBACK => CloneError::Loopback,
        code::QUERY_INTERRUPTED => CloneError::Interrupted(m),
        code::INTERNAL if message.starts_with("Recovery failed") => CloneError::Recovery(m),
        code::SERVER_LOST | code::SERVER_GONE => CloneError::ConnectionLost { code, stage },
        _ => CloneError::Other { code, message: m },
    }
}

/// What the answer to `CLONE INSTANCE` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The connection dropped at the end (error 2013 or 2006 with the
    /// clone past its copy): the recipient is restarting itself on the
    /// copy, as it does. Wait for it and read clone_status
    /// ([`after_restart`]).
    Restarting,
    /// Error 3707: the copy is whole, but `mysqld` has no supervisor to
    /// restart it (in a container, PID 1 without `MYSQLD_PARENT_PID`):
    /// restart the server (the pod), then read clone_status.
    RestartNeeded,
    /// The clone failed.
    Failed(CloneError),
}

/// Reads the error `CLONE INSTANCE` ended with (a clone into the data
/// directory never ends without one: it restarts the server). `stage`
/// is the last stage clone_progress showed on another connection.
pub fn answer(code: u16, message: &str, stage: Option<CloneStage>) -> Answer {
    match code {
        code::SERVER_LOST | code::SERVER_GONE
            if matches!(
                stage,
                Some(CloneStage::FileSync | CloneStage::Restart | CloneStage::Recovery)
            ) =>
        {
            Answer::Restarting
        }
        code::RESTART_FAILED => Answer::RestartNeeded,
        _ => Answer::Failed(classify(code, message, stage)),
    }
}

/// The verdict once the recipient answers again after its restart (or
/// after a lost connection): clone_status must say Completed, without
/// error; anything else is a failed clone.
pub fn after_restart(status: Option<&CloneStatus>) -> Result<ClonePosition, CloneError> {
    let Some(status) = status else {
        return Err(CloneError::Other {
            code: 0,
            message: "clone_status is empty after the restart: no clone ran".into(),
        });
    };
    status.outcome().unwrap_or_else(|| {
        Err(CloneError::Other {
            code: 0,
            message: format!("clone_status still says {} after the restart", status.state),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Option<&str>)]) -> TextRow {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    }

    fn key(s: &str) -> InstanceKey {
        s.parse().unwrap()
    }

    fn dialect(v: &str) -> Dialect {
        Dialect::detect(v, Some("MySQL Community Server - GPL")).unwrap()
    }

    #[test]
    fn statements_quote_and_redact() {
        let creds = Credentials::new("orca_clone", "s3'cr\\et");
        let donor = key("MySQL-1.demo.svc:3306");
        let st = clone_instance(&donor, &creds, Ssl::Require).unwrap();
        assert_eq!(
            st.sql(),
            r"CLONE INSTANCE FROM 'orca_clone'@'mysql-1.demo.svc':3306 IDENTIFIED BY 's3\'cr\\et' REQUIRE SSL"
        );
        for shown in [st.to_string(), format!("{st:?}")] {
            assert!(!shown.contains("s3"), "{shown}");
            assert!(
                shown.contains("IDENTIFIED BY '<redacted>' REQUIRE SSL"),
                "{shown}"
            );
        }
        assert_eq!(
            st.redact("Access denied near 's3'cr\\et'"),
            "Access denied near '<redacted>'"
        );
        // (ssl, the statement's tail)
        for (ssl, tail) in [
            (Ssl::Default, "IDENTIFIED BY '<redacted>'"),
            (Ssl::No, "IDENTIFIED BY '<redacted>' REQUIRE NO SSL"),
        ] {
            let st = clone_instance(&donor, &creds, ssl).unwrap();
            assert!(st.to_string().ends_with(tail), "{st}");
        }
        let quoted_user = Credentials::new("o'x", "p");
        assert!(
            clone_instance(&donor, &quoted_user, Ssl::Default)
                .unwrap()
                .sql()
                .starts_with(r"CLONE INSTANCE FROM 'o\'x'@")
        );
        assert_eq!(
            clone_instance(&donor, &Credentials::new("", "p"), Ssl::Default),
            Err(StatementError::NoUser)
        );
    }

    #[test]
    fn donor_list_and_grants() {
        assert_eq!(
            set_donor_list(&[key("10.0.1.11:3306"), key("Mysql-2:3307")]).unwrap(),
            "SET GLOBAL clone_valid_donor_list = '10.0.1.11:3306,mysql-2:3307'"
        );
        assert_eq!(donor_list(&[]), Err(StatementError::NoDonor));
        for bad in [
            key("[fd00::1]:3306"),
            InstanceKey::new("a,b", 3306),
            InstanceKey::new("a b", 3306),
            InstanceKey::new("", 3306),
        ] {
            assert!(
                matches!(
                    donor_list(std::slice::from_ref(&bad)),
                    Err(StatementError::UnlistableHost(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            grant_donor("orca_clone").unwrap(),
            "GRANT BACKUP_ADMIN ON *.* TO 'orca_clone'@'%'"
        );
        assert_eq!(
            grant_recipient("o'c").unwrap(),
            r"GRANT CLONE_ADMIN ON *.* TO 'o\'c'@'%'"
        );
        assert_eq!(
            grant_cluster("orca_clone").unwrap(),
            "GRANT BACKUP_ADMIN, CLONE_ADMIN ON *.* TO 'orca_clone'@'%'"
        );
        assert_eq!(grant_donor(""), Err(StatementError::NoUser));
    }

    #[test]
    fn versions() {
        assert!(supported(&dialect("8.0.17")).is_ok());
        assert!(supported(&dialect("8.0.16")).is_err());
        assert!(supported(&Dialect::detect("10.11.6-MariaDB", None).unwrap()).is_err());
        // (donor, recipient, compatible)
        for (d, r, ok) in [
            ("8.0.36", "8.0.36", true),
            ("8.0.35", "8.0.36", false),
            ("8.0.37", "8.0.39", true),
            ("8.4.3", "8.4.0", true),
            ("8.0.39", "8.4.3", false),
            ("8.0.36", "8.0.37", false),
        ] {
            assert_eq!(
                compatible(&dialect(d), &dialect(r)).is_ok(),
                ok,
                "{d} → {r}"
            );
        }
    }

    #[test]
    fn plugin_states() {
        // (rows, state, statement)
        let active = vec![row(&[("PLUGIN_STATUS", Some("ACTIVE"))])];
        let disabled = vec![row(&[("PLUGIN_STATUS", Some("DISABLED"))])];
        assert_eq!(plugin(&[]), Plugin::Absent);
        assert_eq!(plugin(&[]).install(), Ok(Some(INSTALL_PLUGIN)));
        assert_eq!(plugin(&active), Plugin::Active);
        assert_eq!(plugin(&active).install(), Ok(None));
        assert_eq!(plugin(&disabled), Plugin::Unusable("DISABLED".into()));
        assert!(
            plugin(&disabled)
                .install()
                .unwrap_err()
                .contains("DISABLED")
        );
    }

    fn status_row(state: &str, error: (&str, &str), gtid: &str) -> TextRow {
        row(&[
            ("ID", Some("1")),
            ("PID", Some("0")),
            ("STATE", Some(state)),
            ("BEGIN_TIME", Some("2024-11-18 10:21:05.332")),
            ("END_TIME", Some("2024-11-18 10:24:41.907")),
            ("SOURCE", Some("10.0.1.11:3306")),
            ("DESTINATION", Some("LOCAL INSTANCE")),
            ("ERROR_NO", Some(error.0)),
            ("ERROR_MESSAGE", Some(error.1)),
            ("BINLOG_FILE", Some("binlog.000007")),
            ("BINLOG_POSITION", Some("48213377")),
            ("GTID_EXECUTED", Some(gtid)),
        ])
    }

    #[test]
    fn status_rows() {
        let gtid = "4b2c1e0a-7f3d-11ef-8c0e-0a58ac1f020e:1-37,\n6e3a51c4-9e6a-11ef-b5a4-0a58ac1f0210:1-1539:1541";
        let s = clone_status(&[status_row("Completed", ("0", ""), gtid)])
            .unwrap()
            .unwrap();
        assert_eq!(s.state, CloneState::Completed);
        assert_eq!(s.source, CloneSource::Remote(key("10.0.1.11:3306")));
        assert_eq!(s.error, None);
        assert_eq!(
            s.begin.map(|t| t.to_string()).as_deref(),
            Some("2024-11-18T10:21:05.332")
        );
        let pos = s.outcome().unwrap().unwrap();
        assert_eq!(
            pos.binlog,
            Some(BinlogCoordinates::new("binlog.000007", 48213377))
        );
        assert_eq!(
            pos.gtid_executed,
            GtidSet::parse(Flavor::MySql, gtid).unwrap()
        );
        assert_eq!(pos.gtid_executed.count(), 37 + 1539 + 1);
        assert_eq!(after_restart(Some(&s)), Ok(pos));
        assert_eq!(clone_status(&[]).unwrap(), None);
        assert!(after_restart(None).is_err());

        // A bad GTID set, a bad state, a missing column.
        assert!(matches!(
            clone_status(&[status_row("Completed", ("0", ""), "nope")]),
            Err(CloneParseError::Gtid(_))
        ));
        assert!(clone_status(&[status_row("Done", ("0", ""), "")]).is_err());
        let mut missing = status_row("Completed", ("0", ""), "");
        missing.remove("GTID_EXECUTED");
        assert_eq!(
            clone_status(&[missing]),
            Err(CloneParseError::Missing {
                table: "clone_status",
                column: "GTID_EXECUTED"
            })
        );

        // Completed with an error is not a success.
        let odd = clone_status(&[status_row(
            "Completed",
            ("3862", "Clone Donor Error: 3862 : x."),
            "",
        )])
        .unwrap()
        .unwrap();
        assert!(matches!(odd.outcome(), Some(Err(CloneError::Donor(_)))));
        let running = clone_status(&[status_row("In Progress", ("0", ""), "")])
            .unwrap()
            .unwrap();
        assert_eq!(running.outcome(), None);
        assert!(after_restart(Some(&running)).is_err());
    }

    fn stage_row(stage: &str, state: &str, est: u64, data: u64, speed: u64) -> TextRow {
        let (e, d, s) = (est.to_string(), data.to_string(), speed.to_string());
        let begun = state != "Not Started";
        row(&[
            ("ID", Some("1")),
            ("STAGE", Some(stage)),
            ("STATE", Some(state)),
            ("BEGIN_TIME", begun.then_some("2024-11-18 10:21:05.332991")),
            ("END_TIME", None),
            ("THREADS", Some(if begun { "4" } else { "0" })),
            ("ESTIMATE", Some(&e)),
            ("DATA", Some(&d)),
            ("NETWORK", Some(&d)),
            ("DATA_SPEED", Some(&s)),
            ("NETWORK_SPEED", Some(&s)),
        ])
    }

    #[test]
    fn progress_summary_and_rate() {
        let rows = vec![
            stage_row("DROP DATA", "Completed", 0, 0, 0),
            stage_row("FILE COPY", "In Progress", 1000, 400, 50),
            stage_row("PAGE_COPY", "Not Started", 0, 0, 0),
        ];
        let p = clone_progress(&rows).unwrap();
        assert_eq!(p.stage(), Some(CloneStage::FileCopy));
        assert_eq!(p.stages[2].stage, CloneStage::PageCopy);
        let first = p.summary(10_000, None);
        assert_eq!((first.bytes, first.estimated_bytes), (400, 1000));
        assert_eq!(first.rate, 50, "the server's speed without a sample");
        assert_eq!(first.percent(), Some(40));
        let later = clone_progress(&[stage_row("FILE COPY", "In Progress", 1000, 900, 70)])
            .unwrap()
            .summary(12_000, Some(first.sample));
        assert_eq!(later.rate, 250, "500 bytes in 2 s");
        // A restarted clone counting from less: no negative rate.
        let less = clone_progress(&[stage_row("FILE COPY", "In Progress", 1000, 100, 70)])
            .unwrap()
            .summary(14_000, Some(later.sample));
        assert_eq!(less.rate, 0);
        // The same instant: the server's speed.
        assert_eq!(p.summary(10_000, Some(first.sample)).rate, 50);
        assert_eq!(CloneProgress::default().stage(), None);
        assert_eq!(CloneProgress::default().summary(0, None).percent(), None);
        assert!(clone_progress(&[stage_row("COPYING", "In Progress", 0, 0, 0)]).is_err());
    }

    #[test]
    fn phases() {
        // (stage, phase) while the clone runs
        for (stage, want) in [
            (None, CopyPhase::Streaming),
            (Some(CloneStage::DropData), CopyPhase::Streaming),
            (Some(CloneStage::FileCopy), CopyPhase::Streaming),
            (Some(CloneStage::RedoCopy), CopyPhase::Streaming),
            (Some(CloneStage::FileSync), CopyPhase::Preparing),
            (Some(CloneStage::Restart), CopyPhase::Swapping),
            (Some(CloneStage::Recovery), CopyPhase::Swapping),
        ] {
            assert_eq!(phase(None, stage), want, "{stage:?}");
        }
        let done = clone_status(&[status_row("Completed", ("0", ""), "")])
            .unwrap()
            .unwrap();
        assert_eq!(
            phase(Some(&done), Some(CloneStage::Recovery)),
            CopyPhase::Done
        );
        let failed = clone_status(&[status_row(
            "Failed",
            (
                "3862",
                "Clone Donor Error: 1524 : Plugin 'clone' is not loaded.",
            ),
            "",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(
            phase(Some(&failed), Some(CloneStage::FileCopy)),
            CopyPhase::Failed
        );
        let donor = key("10.0.1.11:3306");
        let attempt = Attempt {
            id: "op-1",
            donor: &donor,
            attempt: 2,
            started_at: 100,
            updated_at: 130,
        };
        let summary = CloneProgress::default().summary(0, None);
        let c = copy_progress(&attempt, Some(&failed), &summary);
        assert_eq!(c.phase, CopyPhase::Failed);
        assert_eq!(c.source, "10.0.1.11:3306");
        assert_eq!(c.estimated_bytes, None);
        assert!(c.error.unwrap().contains("lacks the clone plugin"));
    }

    #[test]
    fn errors_are_classified() {
        // (code, message, stage, what it is)
        let cases: Vec<(u16, &str, Option<CloneStage>, CloneError)> = vec![
            (
                3869,
                "Clone system configuration: mysql-1:3306 is not found in clone_valid_donor_list: ",
                None,
                CloneError::NotInDonorList {
                    donor: "mysql-1:3306".into(),
                    list: "".into(),
                },
            ),
            (
                3869,
                "Clone system configuration: %:3306 is not found in clone_valid_donor_list: 10.10.30.162:3306",
                None,
                CloneError::NotInDonorList {
                    donor: "%:3306".into(),
                    list: "10.10.30.162:3306".into(),
                },
            ),
            (
                3862,
                "Clone Donor Error: Connect failed: 1045 : Access denied for user 'repl'@'mysql-2' (using password: YES).",
                None,
                CloneError::Donor(DonorError::Connect {
                    code: 1045,
                    message: "Access denied for user 'repl'@'mysql-2' (using password: YES)".into(),
                }),
            ),
            (
                3862,
                "Clone Donor Error: 1227 : Access denied; you need (at least one of) the BACKUP_ADMIN privilege(s) for this operation.",
                Some(CloneStage::DropData),
                CloneError::Donor(DonorError::Privilege("BACKUP_ADMIN".into())),
            ),
            (
                3862,
                "Clone Donor Error: 1524 : Plugin 'clone' is not loaded.",
                None,
                CloneError::Donor(DonorError::PluginNotLoaded),
            ),
            (
                1227,
                "Access denied; you need (at least one of) the CLONE_ADMIN privilege(s) for this operation",
                None,
                CloneError::AccessDenied {
                    privilege: "CLONE_ADMIN".into(),
                },
            ),
            (
                3870,
                "Clone Donor plugin group_replication is not active in Recipient.",
                None,
                CloneError::PluginMismatch(
                    "Clone Donor plugin group_replication is not active in Recipient.".into(),
                ),
            ),
            (
                3872,
                "Clone needs SSL connection for encrypted table.",
                None,
                CloneError::NeedsSsl,
            ),
            (
                3634,
                "Too many concurrent clone operations. Maximum allowed - 1.",
                None,
                CloneError::Concurrent,
            ),
            (
                1524,
                "Plugin 'clone' is not loaded",
                None,
                CloneError::PluginNotLoaded,
            ),
            (
                2013,
                "Lost connection to MySQL server during query",
                Some(CloneStage::FileCopy),
                CloneError::ConnectionLost {
                    code: 2013,
                    stage: Some(CloneStage::FileCopy),
                },
            ),
        ];
        for (code, message, stage, want) in cases {
            let got = classify(code, message, stage);
            assert_eq!(got, want, "{code} {message}");
            assert!(!got.to_string().is_empty());
        }
        assert!(matches!(
            classify(
                3864,
                "Clone Donor MySQL version: 8.0.35 is different from Recipient MySQL version 8.0.36.",
                None
            ),
            CloneError::Mismatch { code: 3864, .. }
        ));
        assert!(matches!(
            classify(1317, "Query execution was interrupted", None),
            CloneError::Interrupted(_)
        ));
        assert!(matches!(
            classify(
                1815,
                "Recovery failed. Please Retry Clone. For details, look into server error log.",
                None
            ),
            CloneError::Recovery(_)
        ));
        // The messages say what to do.
        let m = classify(3862, "Clone Donor Error: 1227 : Access denied; you need (at least one of) the BACKUP_ADMIN privilege(s) for this operation.", None).to_string();
        assert!(m.contains("GRANT BACKUP_ADMIN ON *.*"), "{m}");
        let m = classify(
            3869,
            "Clone system configuration: a:1 is not found in clone_valid_donor_list: b:1",
            None,
        )
        .to_string();
        assert!(m.contains("a:1") && m.contains("(b:1)"), "{m}");
        // Another donor helps with the donor's errors, not the recipient's.
        assert!(classify(3862, "Clone Donor Error: Connect failed: 2003 : Can't connect to MySQL server on '10.0.1.12:3306' (111).", None).try_another_donor());
        assert!(!classify(1227, "Access denied; you need (at least one of) the CLONE_ADMIN privilege(s) for this operation", None).try_another_donor());
    }

    #[test]
    fn the_answer_to_clone_instance() {
        // (code, last stage seen, answer)
        for (code, stage, restarting) in [
            (2013, Some(CloneStage::Restart), true),
            (2013, Some(CloneStage::FileSync), true),
            (2006, Some(CloneStage::Recovery), true),
            (2013, Some(CloneStage::FileCopy), false),
            (2013, None, false),
        ] {
            let a = answer(code, "Lost connection to MySQL server during query", stage);
            assert_eq!(
                a == Answer::Restarting,
                restarting,
                "{code} {stage:?}: {a:?}"
            );
        }
        assert_eq!(
            answer(
                3707,
                "Restart server failed (mysqld is not managed by supervisor process).",
                Some(CloneStage::Restart)
            ),
            Answer::RestartNeeded
        );
        assert!(matches!(
            answer(
                3869,
                "Clone system configuration: a:1 is not found in clone_valid_donor_list: ",
                None
            ),
            Answer::Failed(CloneError::NotInDonorList { .. })
        ));
    }
}
