//! The discovery queries: one probe reads everything a [`Snapshot`] holds,
//! in a handful of bounded round trips.

use mysql_async::Conn;

use super::conn::{Timeouts, connect, query_rows};
use super::dialect::{self, Dialect};
use super::heartbeat;
use super::parse::{self, ProbeAnswers};
use super::{Credentials, MysqlError};
use crate::topology::{InstanceKey, Snapshot};

/// Connects to `key` and probes it.
pub async fn probe(
    key: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
) -> Result<Snapshot, MysqlError> {
    let mut conn = connect(key, creds, timeouts).await?;
    let result = probe_conn(&mut conn, key, timeouts).await;
    // A probe must not leave a connection behind; a failed disconnect of a
    // healthy probe is harmless, the server closes it on its side.
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
    result
}

/// Reads the server's answers over an open connection.
pub async fn read_answers(
    conn: &mut Conn,
    key: &InstanceKey,
    timeouts: Timeouts,
) -> Result<(Dialect, ProbeAnswers), MysqlError> {
    let q = timeouts.query;
    let variables = query_rows(
        conn,
        key,
        q,
        "reading variables",
        &dialect::variables_query(),
    )
    .await?;
    let vars = parse::name_values(&variables);
    let version = vars.get("version").ok_or_else(|| MysqlError::Answer {
        key: key.clone(),
        what: "SHOW GLOBAL VARIABLES",
        detail: "no version".into(),
    })?;
    let dialect = Dialect::detect(version, vars.get("version_comment").map(String::as_str))
        .map_err(|source| MysqlError::Parse {
            key: key.clone(),
            source,
        })?;
    let status = query_rows(conn, key, q, "reading status", &dialect::status_query()).await?;
    let replica_status = query_rows(
        conn,
        key,
        q,
        "reading replica status",
        dialect.replica_status(),
    )
    .await?;
    let binlog_status = if dialect.flavor == crate::topology::Flavor::MariaDb {
        parse::mariadb_binlog_status(&status, parse::log_bin_on(&variables))
    } else {
        query_rows(
            conn,
            key,
            q,
            "reading binlog status",
            dialect.binlog_status(),
        )
        .await?
    };
    let replica_hosts = query_rows(
        conn,
        key,
        q,
        "reading replica hosts",
        dialect.replica_hosts(),
    )
    .await?;
    let heartbeat_age_ms = heartbeat::read_age_ms(conn, key, q).await?;
    Ok((
        dialect,
        ProbeAnswers {
            variables,
            status,
            replica_status,
            binlog_status,
            replica_hosts,
            heartbeat_age_ms,
        },
    ))
}

/// Probes over an open connection.
pub async fn probe_conn(
    conn: &mut Conn,
    key: &InstanceKey,
    timeouts: Timeouts,
) -> Result<Snapshot, MysqlError> {
    let (_, answers) = read_answers(conn, key, timeouts).await?;
    parse::snapshot(key, &answers).map_err(|source| MysqlError::Parse {
        key: key.clone(),
        source,
    })
}
