//! Connections to one instance, always over TCP and always bounded in time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use super::MysqlError;
use crate::topology::InstanceKey;

/// A user name and password. The password never appears in `Debug` output,
/// logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The password, for the places that must send it to a server.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `text` with every non-empty secret replaced: server errors may quote
/// the statement they refused, and statements such as `CHANGE MASTER`
/// carry a password; no error orca logs, records or shows may carry it.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "<redacted>");
    }
    out
}

/// Time limits for talking to instances.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            query: Duration::from_secs(3),
        }
    }
}

/// Runs `fut` with a deadline, turning both a timeout and a driver error
/// into a [`MysqlError`] that names the instance and what was being done.
pub async fn bounded<T, F>(
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    fut: F,
) -> Result<T, MysqlError>
where
    F: Future<Output = Result<T, mysql_async::Error>>,
{
    bounded_with(key, limit, what, fut, |source| MysqlError::Server {
        key: key.clone(),
        what,
        source,
    })
    .await
}

/// [`bounded`] for any client's errors, turned into a [`MysqlError`] by
/// `error`; a timeout is [`MysqlError::Timeout`].
pub async fn bounded_with<T, E, F>(
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    fut: F,
    error: impl FnOnce(E) -> MysqlError,
) -> Result<T, MysqlError>
where
    F: Future<Output = Result<T, E>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(e)),
        Err(_) => Err(MysqlError::Timeout {
            key: key.clone(),
            what,
            millis: limit.as_millis(),
        }),
    }
}

/// Opens one TCP connection to `key` (never a Unix socket, even on
/// loopback: orca must see the network path a remote operator would).
pub async fn connect(
    key: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
) -> Result<Conn, MysqlError> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(key.host.clone())
        .tcp_port(key.port)
        .user(Some(creds.user.clone()))
        .pass(Some(creds.password.clone()))
        .prefer_socket(false)
        .tcp_nodelay(true)
        .stmt_cache_size(0);
    bounded(key, timeouts.connect, "connecting", Conn::new(opts)).await
}

/// A text-protocol query whose rows come back as column name → value
/// (NULL as `None`), the form [`super::parse`] reads.
pub async fn query_rows(
    conn: &mut Conn,
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    sql: &str,
) -> Result<Vec<super::parse::TextRow>, MysqlError> {
    let rows: Vec<Row> = bounded(key, limit, what, conn.query(sql)).await?;
    Ok(rows.into_iter().map(text_row).collect())
}

/// Several text-protocol statements sent as one query (one round trip;
/// the driver asks for `CLIENT_MULTI_STATEMENTS`): the rows of each, in
/// order, up to the first statement that failed, whose error is returned
/// beside them (the server runs none after it). The whole is bounded by
/// `limit`; `Err` only for a timeout or a connection that failed.
pub async fn query_batch(
    conn: &mut Conn,
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    stmts: &[String],
) -> Result<(Vec<Vec<super::parse::TextRow>>, Option<MysqlError>), MysqlError> {
    let sql = stmts.join("; ");
    let run = async {
        let mut sets = Vec::with_capacity(stmts.len());
        let mut result = match conn.query_iter(sql).await {
            Ok(r) => r,
            Err(mysql_async::Error::Server(e)) => {
                return Ok((sets, Some(mysql_async::Error::Server(e))));
            }
            Err(e) => return Err(e),
        };
        while sets.len() < stmts.len() {
            // The error of a later statement waits in the driver as the
            // next result: `is_empty` does not see it, a collect does.
            let ended = !sets.is_empty() && result.is_empty();
            match result.collect::<Row>().await {
                Ok(_) if ended => break,
                Ok(rows) => sets.push(rows.into_iter().map(text_row).collect()),
                Err(mysql_async::Error::Server(e)) => {
                    return Ok((sets, Some(mysql_async::Error::Server(e))));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((sets, None))
    };
    let (sets, failed) = bounded(key, limit, what, run).await?;
    Ok((
        sets,
        failed.map(|source| MysqlError::Server {
            key: key.clone(),
            what,
            source,
        }),
    ))
}

/// Runs a statement that returns no rows, bounded in time.
/// What runs a statement whose answer is no rows, bounded by `limit`:
/// the driver's connection, or a probe's (see `probe::ProbeConn`).
pub trait Execute {
    fn execute(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> impl Future<Output = Result<(), MysqlError>> + Send;
}

impl Execute for Conn {
    async fn execute(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> Result<(), MysqlError> {
        exec(self, key, limit, what, sql).await
    }
}

pub async fn exec(
    conn: &mut Conn,
    key: &InstanceKey,
    limit: Duration,
    what: &'static str,
    sql: &str,
) -> Result<(), MysqlError> {
    bounded(key, limit, what, conn.query_drop(sql)).await
}

fn text_row(row: Row) -> super::parse::TextRow {
    let columns = row.columns();
    let values = row.unwrap_raw();
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let value = match v {
                None | Some(mysql_async::Value::NULL) => None,
                Some(mysql_async::Value::Bytes(b)) => {
                    Some(String::from_utf8_lossy(&b).into_owned())
                }
                Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
            };
            (c.name_str().into_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_debug_hides_the_password() {
        let e = "You have an error near 'MASTER_PASSWORD='s3cret', MASTER_USE_GTID'";
        let r = redact(e, &["s3cret", ""]);
        assert!(!r.contains("s3cret") && r.contains("<redacted>"), "{r}");
        let c = Credentials::new("u", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
