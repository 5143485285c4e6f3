//! The discovery queries: one probe reads everything a [`Snapshot`] holds.
//! Its statements go as one query where the server's dialect is known
//! (one round trip over a connection kept from the last probe), else as
//! two: the variables, which tell the dialect, then the rest together.

use std::time::Duration;

use mysql_async::Conn;

use super::conn::{Execute, Timeouts, connect, exec};
use super::dialect::{self, Dialect};
use super::heartbeat;
use super::parse::{self, ProbeAnswers, TextRow};
use super::wire::{self, WireConn};
use super::{Credentials, MysqlError};
use crate::topology::{Flavor, InstanceKey, Snapshot};

/// A probe connection kept open for the next probe of the same instance,
/// with the dialect its server spoke (a server cannot change version
/// without closing its connections).
#[derive(Debug)]
pub struct KeptConn {
    pub conn: ProbeConn,
    dialect: Dialect,
}

/// A probe's connection: orca's lean client ([`wire`]), which holds no
/// buffer between probes (a kept connection costs its socket, not the
/// driver's 16 KiB of buffers), or the driver where the lean client
/// cannot authenticate (a plugin it does not speak, a MySQL account whose
/// password is not cached yet: tried again at the next connect).
#[derive(Debug)]
pub enum ProbeConn {
    Lean(WireConn),
    Driver(Conn),
}

impl ProbeConn {
    /// Connects to `key`, bounded by the connect timeout.
    pub async fn connect(
        key: &InstanceKey,
        creds: &Credentials,
        timeouts: Timeouts,
    ) -> Result<ProbeConn, MysqlError> {
        match WireConn::connect(key, creds, timeouts).await {
            Ok(c) => Ok(ProbeConn::Lean(c)),
            Err(e) if wire::needs_fallback(&e) => {
                tracing::debug!(instance = %key, error = %e, "probing over the driver");
                connect(key, creds, timeouts).await.map(ProbeConn::Driver)
            }
            Err(e) => Err(e),
        }
    }

    /// The server's id of this connection.
    pub fn id(&self) -> u32 {
        match self {
            ProbeConn::Lean(c) => c.id(),
            ProbeConn::Driver(c) => c.id(),
        }
    }

    async fn query_batch(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        stmts: &[String],
    ) -> Result<(Vec<Vec<TextRow>>, Option<MysqlError>), MysqlError> {
        match self {
            ProbeConn::Lean(c) => c.query_batch(key, limit, what, stmts).await,
            ProbeConn::Driver(c) => super::conn::query_batch(c, key, limit, what, stmts).await,
        }
    }

    async fn query_rows(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> Result<Vec<TextRow>, MysqlError> {
        match self {
            ProbeConn::Lean(c) => c.query_rows(key, limit, what, sql).await,
            ProbeConn::Driver(c) => super::conn::query_rows(c, key, limit, what, sql).await,
        }
    }

    /// Closes it, bounded in time: a server that does not answer cannot
    /// hold the prober (the socket is closed either way).
    pub async fn close(self, timeouts: Timeouts) {
        match self {
            ProbeConn::Lean(c) => c.close(timeouts.query).await,
            ProbeConn::Driver(c) => close(c, timeouts).await,
        }
    }
}

impl Execute for ProbeConn {
    async fn execute(
        &mut self,
        key: &InstanceKey,
        limit: Duration,
        what: &'static str,
        sql: &str,
    ) -> Result<(), MysqlError> {
        match self {
            ProbeConn::Lean(c) => c.query_drop(key, limit, what, sql).await,
            ProbeConn::Driver(c) => exec(c, key, limit, what, sql).await,
        }
    }
}

/// Connects to `key` and probes it.
pub async fn probe(
    key: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
) -> Result<Snapshot, MysqlError> {
    let mut conn = ProbeConn::connect(key, creds, timeouts).await?;
    let result = probe_conn(&mut conn, key, timeouts).await;
    // A probe must not leave a connection behind; a failed disconnect of a
    // healthy probe is harmless, the server closes it on its side.
    conn.close(timeouts).await;
    result
}

/// Probes `key` over `kept`, the connection its last probe left open, if
/// there is one, else over a new connection. Returns the connection to keep
/// for the next probe: only one whose probe succeeded, so nothing is left
/// half read on it.
///
/// On a kept connection the probe (one round trip) is bounded by the
/// connect timeout, as a new connection's greeting would be, so a hung
/// server is found as fast either way. A kept connection that fails
/// without a timeout (the server restarted, a fence killed it, its idle
/// timeout closed it: some servers say so with an error packet first) is
/// replaced by a new one within the same probe; one that timed out is not:
/// the server did not answer, and that is this probe's answer.
pub async fn probe_kept(
    key: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
    kept: Option<KeptConn>,
) -> (Result<Snapshot, MysqlError>, Option<KeptConn>) {
    if let Some(KeptConn { mut conn, dialect }) = kept {
        let limit = timeouts.connect.min(timeouts.query);
        match probe_bounded(&mut conn, key, limit, Some(&dialect)).await {
            Ok((snap, dialect)) => return (Ok(snap), Some(KeptConn { conn, dialect })),
            Err(e) => {
                conn.close(timeouts).await;
                if matches!(e, MysqlError::Timeout { .. }) {
                    return (Err(e), None);
                }
            }
        }
    }
    let mut conn = match ProbeConn::connect(key, creds, timeouts).await {
        Ok(c) => c,
        Err(e) => return (Err(e), None),
    };
    match probe_bounded(&mut conn, key, timeouts.query, None).await {
        Ok((snap, dialect)) => (Ok(snap), Some(KeptConn { conn, dialect })),
        Err(e) => {
            conn.close(timeouts).await;
            (Err(e), None)
        }
    }
}

/// Closes a connection, bounded in time: a server that does not answer
/// cannot hold the prober (the socket is closed either way).
async fn close(conn: Conn, timeouts: Timeouts) {
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
}

/// The statements after the variables, for `d`: status, replica status,
/// (MySQL) binlog status, replica hosts, and last the heartbeat's age,
/// the one that may fail on a server orca never wrote a heartbeat to.
fn rest_statements(d: &Dialect) -> Vec<String> {
    let mut v = vec![dialect::status_query(), d.replica_status().to_string()];
    if d.flavor == Flavor::MySql {
        v.push(d.binlog_status().to_string());
    }
    v.push(d.replica_hosts().to_string());
    v.push(heartbeat::age_query());
    v
}

/// The answers to [`rest_statements`] (in their order), with the variables.
fn assemble(
    d: &Dialect,
    key: &InstanceKey,
    variables: Vec<TextRow>,
    sets: Vec<Vec<TextRow>>,
    failed: Option<MysqlError>,
) -> Result<ProbeAnswers, MysqlError> {
    let want = rest_statements(d).len();
    // Everything but the heartbeat answered, and it is only missing.
    let heartbeat_missing =
        sets.len() + 1 == want && failed.as_ref().is_some_and(heartbeat::is_missing);
    if let Some(e) = failed
        && !heartbeat_missing
    {
        return Err(e);
    }
    if sets.len() + usize::from(heartbeat_missing) != want {
        return Err(MysqlError::Answer {
            key: key.clone(),
            what: "the probe's statements",
            detail: format!("{} answers to {want} statements", sets.len()),
        });
    }
    let mut sets = sets.into_iter();
    let mut next = || sets.next().unwrap_or_default();
    let status = next();
    let replica_status = next();
    let binlog_status = if d.flavor == Flavor::MariaDb {
        parse::mariadb_binlog_status(&status, parse::log_bin_on(&variables))
    } else {
        next()
    };
    let replica_hosts = next();
    let heartbeat_age_ms = if heartbeat_missing {
        None
    } else {
        heartbeat::age_from_rows(&next())
    };
    Ok(ProbeAnswers {
        variables,
        status,
        replica_status,
        binlog_status,
        replica_hosts,
        heartbeat_age_ms,
    })
}

fn detect(key: &InstanceKey, variables: &[TextRow]) -> Result<Dialect, MysqlError> {
    let vars = parse::name_values(variables);
    let version = vars.get("version").ok_or_else(|| MysqlError::Answer {
        key: key.clone(),
        what: "SHOW GLOBAL VARIABLES",
        detail: "no version".into(),
    })?;
    Dialect::detect(version, vars.get("version_comment").map(String::as_str)).map_err(|source| {
        MysqlError::Parse {
            key: key.clone(),
            source,
        }
    })
}

/// Reads the server's answers over an open connection, each round trip
/// bounded by `limit`: one when `known` is the server's dialect (every
/// statement sent at once), else two (the variables, which tell the
/// dialect, then the rest).
async fn read_answers(
    conn: &mut ProbeConn,
    key: &InstanceKey,
    limit: std::time::Duration,
    known: Option<&Dialect>,
) -> Result<(Dialect, ProbeAnswers), MysqlError> {
    let (variables, asked) = match known {
        Some(d) => {
            let mut stmts = vec![dialect::variables_query()];
            stmts.extend(rest_statements(d));
            let (mut sets, failed) = conn.query_batch(key, limit, "probing", &stmts).await?;
            if sets.is_empty() {
                return Err(failed.unwrap_or_else(|| MysqlError::Answer {
                    key: key.clone(),
                    what: "the probe's statements",
                    detail: "no answer".into(),
                }));
            }
            let variables = sets.remove(0);
            (variables, Some((d, sets, failed)))
        }
        None => {
            let sql = dialect::variables_query();
            let variables = conn
                .query_rows(key, limit, "reading variables", &sql)
                .await?;
            (variables, None)
        }
    };
    let dialect = detect(key, &variables)?;
    let (sets, failed) = match asked {
        Some((d, sets, failed)) if *d == dialect => (sets, failed),
        // Not asked yet, or asked in a dialect the server does not speak
        // (it cannot change on one connection): asked in its own.
        _ => {
            conn.query_batch(key, limit, "probing", &rest_statements(&dialect))
                .await?
        }
    };
    let answers = assemble(&dialect, key, variables, sets, failed)?;
    Ok((dialect, answers))
}

/// Probes over an open connection.
pub async fn probe_conn(
    conn: &mut ProbeConn,
    key: &InstanceKey,
    timeouts: Timeouts,
) -> Result<Snapshot, MysqlError> {
    probe_bounded(conn, key, timeouts.query, None)
        .await
        .map(|(snap, _)| snap)
}

/// Probes over an open connection, each round trip bounded by `limit`
/// (see [`read_answers`]).
async fn probe_bounded(
    conn: &mut ProbeConn,
    key: &InstanceKey,
    limit: std::time::Duration,
    known: Option<&Dialect>,
) -> Result<(Snapshot, Dialect), MysqlError> {
    let (dialect, answers) = read_answers(conn, key, limit, known).await?;
    let snap = parse::snapshot(key, &answers).map_err(|source| MysqlError::Parse {
        key: key.clone(),
        source,
    })?;
    Ok((snap, dialect))
}
