//! Actions on one instance, each bounded in time, in the instance's
//! dialect: replication threads, change of source, reset, read-only,
//! killing client connections, waiting for GTIDs and relay logs, semi-sync.

use std::time::{Duration, Instant};

use mysql_async::Conn;

use super::conn::{exec, query_rows};
use super::dialect::quote;
use super::parse;
use super::{Credentials, Dialect, MysqlError};
use crate::topology::{Flavor, GtidSet, InstanceKey, ReplicaStatus};

/// Whether a processlist state is a wait for a lock that keeps writes
/// out: MariaDB's backup lock and global read lock, MySQL's global read
/// lock and commit lock.
pub fn waits_for_a_lock(state: &str) -> bool {
    let s = state.to_ascii_lowercase();
    s.starts_with("waiting for")
        && (s.contains("backup lock") || s.contains("read lock") || s.contains("commit lock"))
}

/// Whether a processlist state is a commit waiting for a semi-sync
/// acknowledgement (MariaDB and MySQL say it alike).
pub fn waits_for_an_acknowledgement(state: &str) -> bool {
    state.to_ascii_lowercase().contains("semi-sync ack")
}

/// An open connection to one instance, with its dialect and time limit.
pub struct Session<'a> {
    pub conn: &'a mut Conn,
    pub key: &'a InstanceKey,
    pub dialect: &'a Dialect,
    /// The limit of each statement.
    pub limit: Duration,
}

impl Session<'_> {
    async fn exec(&mut self, what: &'static str, sql: &str) -> Result<(), MysqlError> {
        exec(self.conn, self.key, self.limit, what, sql).await
    }

    async fn rows(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Vec<parse::TextRow>, MysqlError> {
        query_rows(self.conn, self.key, self.limit, what, sql).await
    }

    async fn scalar(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Option<String>, MysqlError> {
        let rows = self.rows(what, sql).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_values().next())
            .flatten())
    }

    fn answer(&self, what: &'static str, detail: impl Into<String>) -> MysqlError {
        MysqlError::Answer {
            key: self.key.clone(),
            what,
            detail: detail.into(),
        }
    }

    pub async fn stop_replica(&mut self) -> Result<(), MysqlError> {
        let sql = self.dialect.stop_replica();
        self.exec("stopping replication", sql).await
    }

    /// Stops the IO thread. A SQL thread stopped without an error (by
    /// hand, for a backup) is started first, while the IO thread still
    /// runs: what it received must be applied, and MariaDB discards the
    /// relay log of a GTID replica whose threads are started from both
    /// stopped.
    pub async fn stop_replica_io(&mut self) -> Result<(), MysqlError> {
        self.prepare_io_stop().await?;
        let sql = self.dialect.stop_io_thread();
        self.exec("stopping the IO thread", &sql).await
    }

    /// What comes before an IO thread is stopped: a SQL thread stopped
    /// without an error is started (see [`Session::stop_replica_io`]).
    pub async fn prepare_io_stop(&mut self) -> Result<(), MysqlError> {
        if let Some(r) = self.replica_status().await?
            && !r.sql_running
            && r.last_sql_errno == 0
            && r.io_running != crate::topology::instance::IoThreadState::No
        {
            let sql = format!("{} SQL_THREAD", self.dialect.start_replica());
            self.exec("starting the SQL thread", &sql).await?;
        }
        Ok(())
    }

    /// The processlist state of connection `id` (`None`: no such
    /// connection).
    pub async fn connection_state(&mut self, id: u32) -> Result<Option<String>, MysqlError> {
        self.scalar(
            "reading a connection's state",
            &format!("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = {id}"),
        )
        .await
    }

    /// Whether the replica has applied everything its default connection
    /// received (true when it is not a replica).
    pub async fn relay_applied(&mut self) -> Result<bool, MysqlError> {
        let Some(r) = self.replica_status().await? else {
            return Ok(true);
        };
        let executed = self.applied_gtids().await?;
        Ok(r.relay_applied(executed.as_ref()))
    }

    /// MariaDB: points orca's named second connection at `source` and
    /// starts it (see [`Dialect::change_detour_gtid`]).
    pub async fn start_detour(
        &mut self,
        source: &InstanceKey,
        repl: &Credentials,
    ) -> Result<(), MysqlError> {
        let what = "replicating through a second connection";
        let Some(sql) = self.dialect.change_detour_gtid(source, repl) else {
            return Err(self.answer(what, "a second connection is a MariaDB one"));
        };
        self.exec(what, &sql).await?;
        let start = format!("START SLAVE '{}'", super::dialect::DETOUR);
        self.exec(what, &start).await
    }

    /// MariaDB: moves replication from orca's second connection back to
    /// the default one, from `source`: the second connection stopped and
    /// forgotten, the default one pointed at `source` and started, from
    /// what was applied (`gtid_slave_pos`).
    pub async fn fold_detour(
        &mut self,
        source: &InstanceKey,
        repl: &Credentials,
    ) -> Result<(), MysqlError> {
        self.forget_detour("folding the second connection back")
            .await?;
        self.stop_replica().await?;
        self.change_source_gtid(source, repl).await?;
        self.start_replica().await
    }

    pub async fn start_replica(&mut self) -> Result<(), MysqlError> {
        let sql = self.dialect.start_replica();
        self.exec("starting replication", sql).await
    }

    /// Forgets every replication setting of the default channel.
    pub async fn reset_replica_all(&mut self) -> Result<(), MysqlError> {
        let sql = if self.dialect.new_terms() {
            "RESET REPLICA ALL"
        } else {
            "RESET SLAVE ALL"
        };
        self.exec("resetting replication", sql).await
    }

    /// Points this instance at `source` with GTID positioning. Replication
    /// must be stopped.
    pub async fn change_source_gtid(
        &mut self,
        source: &InstanceKey,
        repl: &Credentials,
    ) -> Result<(), MysqlError> {
        self.drop_leftover_detour().await?;
        let sql = self.dialect.change_source_gtid(source, repl);
        self.exec("changing the source", &sql).await
    }

    /// MariaDB: stops and forgets orca's second connection when one is
    /// left (an operator stopped before it folded it back): the default
    /// one is about to replicate, and MariaDB refuses two connections to
    /// one source.
    async fn drop_leftover_detour(&mut self) -> Result<(), MysqlError> {
        if self.dialect.flavor != Flavor::MariaDb {
            return Ok(());
        }
        let rows = self
            .rows(
                "reading the replication connections",
                "SHOW ALL SLAVES STATUS",
            )
            .await?;
        if !parse::has_connection(&rows, super::dialect::DETOUR) {
            return Ok(());
        }
        self.forget_detour("forgetting a second connection left over")
            .await
    }

    /// MariaDB: stops orca's second connection and forgets it.
    async fn forget_detour(&mut self, what: &'static str) -> Result<(), MysqlError> {
        let name = super::dialect::DETOUR;
        self.exec(what, &format!("STOP SLAVE '{name}'")).await?;
        self.exec(what, &format!("RESET SLAVE '{name}' ALL")).await
    }

    /// Commits one empty transaction for each GTID of `gtids` (see
    /// [`Dialect::inject_empty_transactions`]), at most `max`, each
    /// statement bounded. After a failure the session's `gtid_next` is
    /// set back to `AUTOMATIC` (best effort).
    pub async fn inject_empty_transactions(
        &mut self,
        gtids: &str,
        max: u64,
    ) -> Result<(), MysqlError> {
        let what = "injecting empty transactions";
        let statements = self
            .dialect
            .inject_empty_transactions(gtids, max)
            .map_err(|detail| self.answer(what, detail))?;
        for sql in &statements {
            if let Err(e) = self.exec(what, sql).await {
                let _ = self
                    .exec("resetting gtid_next", "SET gtid_next='AUTOMATIC'")
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes every binary log of a MariaDB replica (`RESET MASTER`);
    /// refused on MySQL, where the statement also forgets
    /// `gtid_executed`.
    pub async fn reset_binary_logs(&mut self) -> Result<(), MysqlError> {
        let what = "deleting the binary logs";
        if self.dialect.flavor != Flavor::MariaDb {
            return Err(self.answer(what, "binary logs are reset on MariaDB only"));
        }
        self.exec(what, "RESET MASTER").await
    }

    /// Read only on or off. On MySQL, on means `super_read_only` too (which
    /// implies read_only), off clears both.
    ///
    /// Turning it on waits for locks (a `LOCK TABLES`, a commit waiting for
    /// a semi-sync acknowledgement): the wait is bounded on the server
    /// (`lock_wait_timeout` of 1 s), and each time it runs out, client
    /// connections are killed and it is tried again, within the statement
    /// limit.
    pub async fn set_read_only(&mut self, on: bool) -> Result<(), MysqlError> {
        if !on {
            return self.set_read_only_once(false).await;
        }
        self.exec("bounding lock waits", "SET SESSION lock_wait_timeout = 1")
            .await?;
        let deadline = Instant::now() + self.limit;
        let result = loop {
            match self.set_read_only_once(true).await {
                // ER_LOCK_WAIT_TIMEOUT: someone holds what read_only waits for.
                Err(e) if e.server_code() == Some(1205) && Instant::now() < deadline => {
                    self.kill_client_connections().await?;
                }
                r => break r,
            }
        };
        let _ = self
            .exec(
                "restoring lock waits",
                "SET SESSION lock_wait_timeout = DEFAULT",
            )
            .await;
        result
    }

    async fn set_read_only_once(&mut self, on: bool) -> Result<(), MysqlError> {
        match (self.dialect.flavor, on) {
            (Flavor::MySql, true) => {
                self.exec("setting super_read_only", "SET GLOBAL super_read_only = ON")
                    .await
            }
            (Flavor::MySql, false) => {
                self.exec(
                    "clearing super_read_only",
                    "SET GLOBAL super_read_only = OFF",
                )
                .await?;
                self.exec("clearing read_only", "SET GLOBAL read_only = OFF")
                    .await
            }
            (Flavor::MariaDb, on) => {
                let sql = format!("SET GLOBAL read_only = {}", if on { "ON" } else { "OFF" });
                self.exec("setting read_only", &sql).await
            }
        }
    }

    /// Kills every client connection but this one and the server's own
    /// threads (replication, event scheduler). Returns how many were killed.
    pub async fn kill_client_connections(&mut self) -> Result<usize, MysqlError> {
        self.kill_clients(&[], false).await
    }

    /// Kills client connections as [`Session::kill_client_connections`]
    /// does, sparing the connection ids in `spare` (orca's own, holding a
    /// lock); with `only_waiting`, only those waiting for a lock.
    pub async fn kill_clients(
        &mut self,
        spare: &[u32],
        only_waiting: bool,
    ) -> Result<usize, MysqlError> {
        let rows = self
            .rows(
                "listing connections",
                "SELECT ID, USER, COMMAND, STATE FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID()",
            )
            .await?;
        // A commit waiting for a semi-sync acknowledgement may lead a group
        // commit: once it is killed, the group commits, and a member of
        // the group whose connection is still open gets its OK, with no
        // replica holding the write. So those waiting for the
        // acknowledgement are killed last, after every other connection.
        let mut rows = rows;
        rows.sort_by_key(|r| {
            let state = r.get("STATE").cloned().flatten().unwrap_or_default();
            waits_for_an_acknowledgement(&state)
        });
        let mut killed = 0;
        for r in rows {
            let get = |c: &str| r.get(c).cloned().flatten().unwrap_or_default();
            let (id, user, command) = (get("ID"), get("USER"), get("COMMAND"));
            let server_thread = matches!(
                command.as_str(),
                "Binlog Dump"
                    | "Binlog Dump GTID"
                    | "Daemon"
                    | "Slave_IO"
                    | "Slave_SQL"
                    | "Slave_worker"
            ) || matches!(user.as_str(), "system user" | "event_scheduler");
            let Ok(id) = id.parse::<u32>() else { continue };
            let waiting = waits_for_a_lock(&get("STATE"));
            if server_thread || spare.contains(&id) || (only_waiting && !waiting) {
                continue;
            }
            match self
                .exec("killing a connection", &format!("KILL CONNECTION {id}"))
                .await
            {
                Ok(()) => killed += 1,
                // Gone meanwhile (ER_NO_SUCH_THREAD): that is what we wanted.
                Err(e) if e.server_code() == Some(1094) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    /// Takes the global read lock on this session (`FLUSH TABLES WITH READ
    /// LOCK`): until the session ends or unlocks, no account writes on
    /// the server, whatever its privileges. A running write holds it up:
    /// the wait is bounded on the server (`lock_wait_timeout` of 1 s) and
    /// each time it runs out, client connections but `spare` are killed
    /// and it is tried again, within the statement limit.
    pub async fn lock_writes(&mut self, spare: &[u32]) -> Result<(), MysqlError> {
        self.exec("bounding lock waits", "SET SESSION lock_wait_timeout = 1")
            .await?;
        let deadline = Instant::now() + self.limit;
        loop {
            match self
                .exec("locking writes", "FLUSH TABLES WITH READ LOCK")
                .await
            {
                Err(e) if e.server_code() == Some(1205) && Instant::now() < deadline => {
                    self.kill_clients(spare, false).await?;
                }
                r => return r,
            }
        }
    }

    /// Releases the global read lock of this session.
    pub async fn unlock_writes(&mut self) -> Result<(), MysqlError> {
        self.exec("unlocking writes", "UNLOCK TABLES").await
    }

    /// What this instance has executed, for another to wait on: MySQL
    /// `gtid_executed`, MariaDB `gtid_binlog_pos` (what it logged itself,
    /// which is what its replicas receive).
    pub async fn executed_gtids(&mut self) -> Result<GtidSet, MysqlError> {
        let sql = match self.dialect.flavor {
            Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
            Flavor::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
        };
        let text = self
            .scalar("reading executed GTIDs", sql)
            .await?
            .unwrap_or_default();
        GtidSet::parse(self.dialect.flavor, &text).map_err(|source| MysqlError::Parse {
            key: self.key.clone(),
            source,
        })
    }

    /// Waits until this instance has executed `gtids`, at most `timeout`.
    pub async fn wait_for_gtids(
        &mut self,
        gtids: &GtidSet,
        timeout: Duration,
    ) -> Result<(), MysqlError> {
        let secs = timeout.as_secs_f64();
        let sql = match self.dialect.flavor {
            Flavor::MySql => format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {secs:.3})",
                quote(&gtids.to_string())
            ),
            Flavor::MariaDb => format!(
                "SELECT MASTER_GTID_WAIT({}, {secs:.3})",
                quote(&gtids.to_string())
            ),
        };
        let conn_limit = timeout + self.limit;
        let rows = query_rows(self.conn, self.key, conn_limit, "waiting for GTIDs", &sql).await?;
        let result = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_values().next())
            .flatten()
            .unwrap_or_default();
        match result.trim() {
            "0" => Ok(()),
            other => Err(self.answer(
                "waiting for GTIDs",
                format!("{gtids} not executed within {timeout:?} (result {other})"),
            )),
        }
    }

    /// What replication has applied here, to compare with what the IO
    /// thread received: MySQL `gtid_executed`, MariaDB `gtid_slave_pos`.
    async fn applied_gtids(&mut self) -> Result<Option<GtidSet>, MysqlError> {
        let sql = match self.dialect.flavor {
            Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
            Flavor::MariaDb => "SELECT @@GLOBAL.gtid_slave_pos",
        };
        let text = self.scalar("reading applied GTIDs", sql).await?;
        Ok(text.and_then(|t| GtidSet::parse(self.dialect.flavor, &t).ok()))
    }

    /// Waits until the SQL thread and its workers have executed everything
    /// the IO thread received (the IO thread should be stopped first), at
    /// most `timeout`. Fails at once if the SQL thread is not running.
    /// Makes a delayed replica, or one whose SQL thread is stopped, apply
    /// its relay log now: SQL thread stopped where it is, delay removed
    /// (keeping the relay log, which MariaDB's `CHANGE MASTER` would
    /// otherwise discard), SQL thread started; then waits, at most
    /// `timeout`, until it has executed everything it received.
    pub async fn apply_relay_now(&mut self, timeout: Duration) -> Result<(), MysqlError> {
        let what = "applying the relay log now";
        self.exec(what, self.dialect.stop_sql_thread()).await?;
        let Some(status) = self.replica_status().await? else {
            return Ok(());
        };
        if status.sql_delay > 0 {
            let relay = status
                .relay
                .ok_or_else(|| self.answer(what, "no relay log position"))?;
            let sql = self.dialect.remove_delay(&relay);
            self.exec(what, &sql).await?;
        }
        self.exec(what, self.dialect.start_sql_thread()).await?;
        self.wait_relay_applied(timeout).await
    }

    /// Replicates from `source` by GTID, starting from the end of this
    /// server's own binary log (a former primary whose last transactions
    /// are its own writes).
    pub async fn change_source_own_binlog(
        &mut self,
        source: &InstanceKey,
        repl: &Credentials,
    ) -> Result<(), MysqlError> {
        self.drop_leftover_detour().await?;
        let sql = self.dialect.change_source_gtid_own_binlog(source, repl);
        self.exec("changing the source", &sql).await
    }

    /// Points a server just provisioned by a physical copy at `source`,
    /// from the GTID position the copy carries: on MariaDB
    /// `gtid_slave_pos` is set to it first (a copy of the primary carries
    /// its stale `gtid_slave_pos`, and no binary log); on MySQL the
    /// copy's `gtid_executed` is the position already.
    pub async fn change_source_copied(
        &mut self,
        source: &InstanceKey,
        repl: &Credentials,
        gtid: &str,
    ) -> Result<(), MysqlError> {
        let what = "setting the copy's GTID position";
        if let Some(sql) = self
            .dialect
            .set_copied_position(gtid)
            .map_err(|detail| self.answer(what, detail))?
        {
            self.exec(what, &sql).await?;
        }
        self.change_source_gtid(source, repl).await
    }

    /// The default channel's replica status, `None` on a server that
    /// replicates from nothing.
    async fn replica_status(&mut self) -> Result<Option<ReplicaStatus>, MysqlError> {
        let rows = self
            .rows("reading replica status", self.dialect.replica_status())
            .await?;
        parse::replica_status(&rows).map_err(|source| MysqlError::Parse {
            key: self.key.clone(),
            source,
        })
    }

    pub async fn wait_relay_applied(&mut self, timeout: Duration) -> Result<(), MysqlError> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(r) = self.replica_status().await? else {
                return Ok(());
            };
            let executed = self.applied_gtids().await?;
            if r.relay_applied(executed.as_ref()) {
                return Ok(());
            }
            if !r.sql_running {
                return Err(self.answer(
                    "waiting for the relay log",
                    format!(
                        "the SQL thread is stopped ({} {})",
                        r.last_sql_errno, r.last_sql_error
                    ),
                ));
            }
            if Instant::now() >= deadline {
                return Err(self.answer(
                    "waiting for the relay log",
                    format!("not applied within {timeout:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until both replication threads run, at most `timeout`.
    pub async fn wait_replicating(&mut self, timeout: Duration) -> Result<(), MysqlError> {
        let deadline = Instant::now() + timeout;
        let status_sql = self.dialect.replica_status();
        loop {
            let rows = self.rows("reading replica status", status_sql).await?;
            let status = parse::replica_status(&rows).map_err(|source| MysqlError::Parse {
                key: self.key.clone(),
                source,
            })?;
            match status {
                Some(r) if r.is_replicating() => return Ok(()),
                Some(r) if r.last_sql_errno != 0 => {
                    return Err(self.answer(
                        "waiting for replication",
                        format!("SQL error {}: {}", r.last_sql_errno, r.last_sql_error),
                    ));
                }
                other if Instant::now() >= deadline => {
                    let detail = match other {
                        Some(r) => format!(
                            "IO thread {} ({}), SQL thread {} within {timeout:?}",
                            r.io_running,
                            r.last_io_error,
                            if r.sql_running { "Yes" } else { "No" }
                        ),
                        None => "not a replica".into(),
                    };
                    return Err(self.answer("waiting for replication", detail));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Runs the statements of an account ([`Dialect::replication_account`],
    /// [`Dialect::app_account`]) in order. On MySQL a `super_read_only`
    /// that is on (it refuses even orca's account) is cleared first;
    /// `read_only` stays as it is, so no client writes because of it.
    pub async fn ensure_account(
        &mut self,
        what: &'static str,
        statements: &[String],
    ) -> Result<(), MysqlError> {
        if self.dialect.flavor == Flavor::MySql {
            let on = self
                .scalar("reading super_read_only", "SELECT @@GLOBAL.super_read_only")
                .await?;
            if on.as_deref() == Some("1") {
                self.exec(
                    "clearing super_read_only",
                    "SET GLOBAL super_read_only = OFF",
                )
                .await?;
            }
        }
        for sql in statements {
            self.exec(what, sql).await?;
        }
        Ok(())
    }

    /// Whether the server's semi-sync plugins use the source/replica names
    /// (MySQL 8.0.26+ ships both plugin pairs: which one is installed
    /// decides, not the version).
    async fn semi_sync_new_names(&mut self) -> Result<bool, MysqlError> {
        let rows = self
            .rows(
                "reading semi-sync variables",
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
                 ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_replica_enabled')",
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// The semi-sync variable names of this server (one query on MySQL:
    /// which plugin is installed).
    async fn semi_sync_names(&mut self) -> Result<super::dialect::SemiSyncNames, MysqlError> {
        let new_plugin = self.dialect.flavor == Flavor::MySql && self.semi_sync_new_names().await?;
        Ok(self.dialect.semi_sync_names(new_plugin))
    }

    /// Semi-sync on the primary side (MariaDB has it built in; MySQL needs
    /// the plugin). `wait_count` is MySQL's; MariaDB always waits for one.
    pub async fn set_semi_sync_primary(
        &mut self,
        on: bool,
        wait_count: u32,
    ) -> Result<(), MysqlError> {
        let names = self.semi_sync_names().await?;
        let v = if on { "ON" } else { "OFF" };
        if on {
            // Never fall back to asynchronous replication (see
            // `semi_sync_timeout_max_ms`).
            let max = super::dialect::semi_sync_timeout_max_ms(self.dialect.flavor);
            self.exec(
                "setting the semi-sync timeout",
                &format!("SET GLOBAL {} = {max}", names.primary_timeout),
            )
            .await?;
        }
        if let Some(count) = names.wait_count {
            self.exec(
                "setting semi-sync wait count",
                &format!("SET GLOBAL {count} = {wait_count}"),
            )
            .await?;
        }
        self.exec(
            "setting semi-sync",
            &format!("SET GLOBAL {} = {v}", names.primary_enabled),
        )
        .await
    }

    /// Semi-sync on the replica side; takes effect when the IO thread
    /// reconnects.
    pub async fn set_semi_sync_replica(&mut self, on: bool) -> Result<(), MysqlError> {
        let v = if on { "ON" } else { "OFF" };
        let names = self.semi_sync_names().await?;
        self.exec(
            "setting semi-sync",
            &format!("SET GLOBAL {} = {v}", names.replica_enabled),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::waits_for_a_lock;

    #[test]
    fn lock_waits_are_told_from_other_states() {
        for (state, waits) in [
            ("Waiting for backup lock", true),
            ("Waiting for global read lock", true),
            ("Waiting for commit lock", true),
            ("Waiting for table metadata lock", false),
            ("User sleep", false),
            ("", false),
            ("Sending data", false),
        ] {
            assert_eq!(waits_for_a_lock(state), waits, "{state:?}");
        }
        for (state, waits) in [
            ("Waiting for semi-sync ACK from slave", true),
            ("Waiting for semi-sync ACK from replica", true),
            ("Commit", false),
            ("Waiting for prior transaction to commit", false),
        ] {
            assert_eq!(
                super::waits_for_an_acknowledgement(state),
                waits,
                "{state:?}"
            );
        }
    }
}
