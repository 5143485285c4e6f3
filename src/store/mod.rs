//! The store: a MySQL/MariaDB database where orca keeps what it saw and
//! did — the latest snapshot of every instance, findings with their active
//! periods, every operation (recoveries, takeovers, fences) with its
//! steps, the audit of operations asked for, downtimes.
//!
//! It is written behind the decision path: [`Store::enqueue`] never
//! waits. Records go through a bounded queue (a tokio channel and a
//! count of the records not yet written) to one writer task, which
//! writes them in batches, one transaction each, and keeps a batch while
//! the store is down or slow, retrying with a capped exponential backoff,
//! so a failover never waits for the store and its record is written when
//! the store returns. A full queue refuses the newest record (see
//! [`record::admits`] for why the newest), counts it ([`Store::dropped`])
//! and says so in the log.
//!
//! - [`dsn`]: the store's address (a DSN with a password is refused);
//! - [`schema`]: versioned migrations, applied at start under a lock;
//! - [`record`]: the rows, and the pure rules of what to write;
//! - [`writer`]: the queue and its writer;
//! - [`read`]: the paged reads the HTTP API serves, newest first;
//! - [`feed`]: what an engine's rounds write there.

pub mod dsn;
pub mod feed;
pub mod read;
pub mod record;
pub mod schema;
pub mod writer;

use std::future::Future;
use std::time::{Duration, SystemTime};

use mysql_async::{Conn, OptsBuilder};

pub use dsn::{Dsn, DsnError};
pub use read::Page;
pub use record::{AuditRow, Door, DowntimeRow, InstanceRow, Record, RecoveryRow, StepRow};
pub use writer::Store;

use crate::mysql::Credentials;
use crate::mysql::conn::Timeouts;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Dsn(#[from] DsnError),
    #[error(
        "the store's schema is version {found}, newer than this orca knows (version {known}): upgrade orca, or point it at another store"
    )]
    SchemaTooNew { found: u32, known: u32 },
    #[error("store: timed out after {millis} ms while {what}")]
    Timeout { what: &'static str, millis: u128 },
    #[error("store: {what}: {source}")]
    Sql {
        what: &'static str,
        #[source]
        source: mysql_async::Error,
    },
    #[error("store: {0}")]
    Lock(String),
    #[error("store: unexpected value in {what}: {detail}")]
    Value { what: &'static str, detail: String },
    #[error("store: cannot read the password file {path}: {error}")]
    PasswordFile { path: String, error: String },
}

impl StoreError {
    /// The server error code, when the server answered with one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            StoreError::Sql {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// The server refused the data itself (a value too long, invalid):
    /// writing the same record again would fail again. Anything else (the
    /// store unreachable, read only, a lock wait, missing privileges) may
    /// pass later and is retried.
    pub fn refuses_the_record(&self) -> bool {
        self.server_code().is_some_and(refused_code)
    }
}

/// Server errors about the values written, not the server's state: bad
/// null (1048), duplicate (1062), out of range (1264), bad date (1292),
/// bad value (1366), too long (1406), bad JSON (3140), CHECK failed
/// (4025).
pub fn refused_code(code: u16) -> bool {
    matches!(code, 1048 | 1062 | 1264 | 1292 | 1366 | 1406 | 3140 | 4025)
}

/// How orca reaches its store and how it writes there.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dsn: Dsn,
    /// The DSN's user with the password (from a file or the environment).
    pub credentials: Credentials,
    /// Records waiting to be written, at most.
    pub queue_capacity: usize,
    /// Records written per transaction, at most.
    pub batch: usize,
    pub timeouts: Timeouts,
    /// An instance's snapshot is written when it changes, otherwise at
    /// most this often (and a finding's last-seen time too).
    pub snapshot_interval: Duration,
    /// The backoff between attempts while the store does not answer.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Where the password is read again at each connection, so that a
    /// rotated Secret, or one that did not exist yet at start (the store
    /// cluster orca creates for itself), is picked up.
    pub password_file: Option<std::path::PathBuf>,
}

impl StoreConfig {
    pub const DEFAULT_QUEUE: usize = 10_000;

    pub fn new(dsn: Dsn, password: impl Into<String>) -> StoreConfig {
        StoreConfig {
            credentials: Credentials::new(dsn.user.clone(), password),
            dsn,
            queue_capacity: Self::DEFAULT_QUEUE,
            batch: 200,
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                query: Duration::from_secs(5),
            },
            snapshot_interval: Duration::from_secs(30),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            password_file: None,
        }
    }

    /// The configuration from a DSN and the password: from `password_file`
    /// (its first line) if given, else from `ORCA_STORE_PASSWORD` (empty
    /// when unset).
    pub fn from_parts(
        dsn: &str,
        password_file: Option<&std::path::Path>,
    ) -> Result<StoreConfig, StoreError> {
        let dsn = Dsn::parse(dsn)?;
        let password = match password_file {
            // Not there yet: a Secret still to be created; read again at
            // each connection.
            Some(path) => match read_password(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        path = %path.display(),
                        "the store's password file is not there yet: it is read again at each connection"
                    );
                    String::new()
                }
                r => r.map_err(|e| StoreError::PasswordFile {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })?,
            },
            None => std::env::var("ORCA_STORE_PASSWORD").unwrap_or_default(),
        };
        let mut config = StoreConfig::new(dsn, password);
        config.password_file = password_file.map(std::path::Path::to_path_buf);
        Ok(config)
    }

    /// The password to connect with now: the file's current first line
    /// when there is a file that can be read, else the one read at start.
    fn password_now(&self) -> String {
        self.password_file
            .as_deref()
            .and_then(|p| read_password(p).ok())
            .unwrap_or_else(|| self.credentials.password().to_string())
    }
}

/// The first line of a password file.
fn read_password(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs `fut` with a deadline.
pub(crate) async fn bounded<T, F>(
    limit: Duration,
    what: &'static str,
    fut: F,
) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, mysql_async::Error>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(StoreError::Sql { what, source }),
        Err(_) => Err(StoreError::Timeout {
            what,
            millis: limit.as_millis(),
        }),
    }
}

fn opts(config: &StoreConfig, database: Option<&str>) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(config.dsn.server.host.clone())
        .tcp_port(config.dsn.server.port)
        .user(Some(config.credentials.user.clone()))
        .pass(Some(config.password_now()))
        .db_name(database.map(String::from))
        .prefer_socket(false)
        .tcp_nodelay(true)
        .init(vec!["SET SESSION time_zone = '+00:00'".to_string()])
}

/// Opens a connection to the store's database, creating the database when
/// it does not exist yet.
pub async fn connect(config: &StoreConfig) -> Result<Conn, StoreError> {
    let limit = config.timeouts.connect;
    let db = config.dsn.database.as_str();
    match bounded(limit, "connecting", Conn::new(opts(config, Some(db)))).await {
        Err(e) if e.server_code() == Some(1049) => {
            let mut conn = bounded(limit, "connecting", Conn::new(opts(config, None))).await?;
            // The name was checked to be letters, digits, '_' and '$'.
            let sql = format!("CREATE DATABASE IF NOT EXISTS `{db}`");
            bounded(
                config.timeouts.query,
                "creating the database",
                mysql_async::prelude::Queryable::query_drop(&mut conn, sql),
            )
            .await?;
            let _ = tokio::time::timeout(limit, conn.disconnect()).await;
            bounded(limit, "connecting", Conn::new(opts(config, Some(db)))).await
        }
        r => r,
    }
}

/// Connects and applies the migrations: what `orca` does at start.
pub async fn migrate(config: &StoreConfig) -> Result<u32, StoreError> {
    let mut conn = connect(config).await?;
    let r = schema::migrate(&mut conn, config.timeouts.query).await;
    let _ = tokio::time::timeout(config.timeouts.connect, conn.disconnect()).await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_the_data_drop_a_record() {
        // (code, refused)
        let cases = [
            (1406, true),
            (1366, true),
            (1062, true),
            (3140, true),
            (1290, false), // read only: a store being failed over
            (1205, false), // lock wait timeout
            (1213, false), // deadlock
            (1146, false), // no such table: migrated again
            (1045, false), // access denied: fixed by a human, then written
            (1040, false), // too many connections
            (2013, false),
        ];
        for (code, want) in cases {
            assert_eq!(refused_code(code), want, "{code}");
        }
    }

    #[test]
    fn the_password_comes_from_a_file_and_never_from_the_dsn() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\nignored\n").unwrap();
        let c = StoreConfig::from_parts("mysql://orca@10.0.0.1/orca", Some(&f)).unwrap();
        assert_eq!(c.credentials.password(), "s3cret");
        assert_eq!(c.credentials.user, "orca");
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = StoreConfig::from_parts("mysql://orca:s3cret@10.0.0.1/orca", Some(&f)).unwrap_err();
        assert!(matches!(e, StoreError::Dsn(DsnError::Password)), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn a_password_file_not_there_yet_is_read_at_each_connection() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("password");
        let c = StoreConfig::from_parts("mysql://orca@10.0.0.1/orca", Some(&f)).unwrap();
        assert_eq!(c.password_now(), "");
        std::fs::write(&f, "first\n").unwrap();
        assert_eq!(c.password_now(), "first");
        std::fs::write(&f, "rotated\nignored\n").unwrap();
        assert_eq!(c.password_now(), "rotated");
    }
}
