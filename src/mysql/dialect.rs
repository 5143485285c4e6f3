//! The SQL each flavor and version speaks. MySQL 8.0.22 renamed the replica
//! statements (SHOW REPLICA STATUS, SHOW REPLICAS, CHANGE REPLICATION
//! SOURCE) and 8.4 removed the old names; 8.2 added SHOW BINARY LOG STATUS
//! and 8.4 removed SHOW MASTER STATUS. MariaDB keeps the old names.

use crate::topology::gtid::MySqlGtidSet;
use crate::topology::{BinlogCoordinates, Flavor, InstanceKey, ParseError, Version};

use super::Credentials;

/// The dialect of one server, from its `@@version` and
/// `@@version_comment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub flavor: Flavor,
    pub version: Version,
}

/// The semi-sync timeout orca sets wherever it turns the primary side on:
/// the largest the server takes, so a primary that loses its acknowledging
/// replicas blocks its writers instead of falling back to asynchronous
/// replication (a write a client saw committed is then always on a
/// replica). MariaDB 10.11 takes and keeps 2^64-1 ms (checked with
/// `SET GLOBAL` and read back; a commit then waits); MySQL documents
/// 4294967295 as the maximum of `rpl_semi_sync_source_timeout`.
pub const fn semi_sync_timeout_max_ms(flavor: Flavor) -> u64 {
    match flavor {
        Flavor::MariaDb => u64::MAX,
        Flavor::MySql => 4_294_967_295,
    }
}

/// The names of a server's semi-sync variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemiSyncNames {
    /// The primary side on or off.
    pub primary_enabled: &'static str,
    /// How long a commit waits for an acknowledgement (milliseconds).
    pub primary_timeout: &'static str,
    /// How many acknowledgements a commit waits for; MariaDB has none
    /// (it always waits for one).
    pub wait_count: Option<&'static str>,
    /// The replica side on or off.
    pub replica_enabled: &'static str,
}

/// The heartbeat period (seconds) orca points replicas with: an idle
/// source sends a heartbeat this often, so a stream silent for two of
/// them (with the source's own probe failing) is a hung source.
pub const HEARTBEAT_PERIOD: &str = "0.25";

/// The name of orca's second replication connection on MariaDB
/// (multi-source), used only while a replica's default connection
/// finishes stopping; it is folded back into the default connection
/// before the operation ends.
pub const DETOUR: &str = "orca_detour";

/// Global variables a probe reads, in one `SHOW GLOBAL VARIABLES` round
/// trip (names a server lacks are simply absent from the answer).
pub const PROBE_VARIABLES: &[&str] = &[
    "version",
    "version_comment",
    "server_id",
    "server_uuid",
    "read_only",
    "super_read_only",
    "log_bin",
    "log_slave_updates",
    "log_replica_updates",
    "binlog_format",
    "binlog_row_image",
    "gtid_mode",
    "gtid_executed",
    "gtid_purged",
    "gtid_binlog_pos",
    "gtid_binlog_state",
    "gtid_slave_pos",
    "gtid_current_pos",
    "gtid_strict_mode",
    "gtid_domain_id",
    "report_host",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_source_enabled",
    "rpl_semi_sync_slave_enabled",
    "rpl_semi_sync_replica_enabled",
    "rpl_semi_sync_master_wait_for_slave_count",
    "rpl_semi_sync_source_wait_for_replica_count",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_source_timeout",
];

/// Global status counters a probe reads.
pub const PROBE_STATUS: &[&str] = &[
    "Rpl_semi_sync_master_status",
    "Rpl_semi_sync_source_status",
    "Rpl_semi_sync_slave_status",
    "Rpl_semi_sync_replica_status",
    "Rpl_semi_sync_master_clients",
    "Rpl_semi_sync_source_clients",
    "Slave_received_heartbeats",
    "Slave_heartbeat_period",
    // MariaDB: the binlog position of the last commit, read where SHOW
    // MASTER STATUS would wait (see `parse::mariadb_binlog_status`).
    "Binlog_snapshot_file",
    "Binlog_snapshot_position",
];

fn in_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    quoted.join(",")
}

/// `SHOW GLOBAL VARIABLES` restricted to [`PROBE_VARIABLES`].
pub fn variables_query() -> String {
    format!(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})",
        in_list(PROBE_VARIABLES)
    )
}

/// `SHOW GLOBAL STATUS` restricted to [`PROBE_STATUS`].
pub fn status_query() -> String {
    format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        in_list(PROBE_STATUS)
    )
}

/// Quotes a string literal for SQL (single quotes, backslash and quote
/// escaped) — used only for values orca itself controls, such as host
/// names and generated passwords.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `db` as a database-level GRANT names it: quoted, and with `_`
/// escaped, since there `_` (like `%`) is a wildcard: `app_1` would also
/// cover `appX1`.
fn grant_target(db: &str) -> String {
    format!("`{}`.*", db.replace('_', "\\_"))
}

/// Why `db` cannot be named in a statement at all (the account's own
/// rules on names are its owner's: [`crate::k8s::accounts`]).
fn unquotable_database(db: &str) -> Option<String> {
    (db.is_empty() || db.contains(['`', '\\', '\0', '%']))
        .then(|| format!("{db:?} cannot be named as a database"))
}

impl Dialect {
    /// The statements that create the replication account replicas
    /// connect with, or bring its password and grants up to date, in
    /// order, each idempotent. They carry the password: whatever reports
    /// one of their errors redacts it.
    pub fn replication_account(&self, creds: &Credentials) -> Vec<String> {
        let account = format!("{}@'%'", quote(&creds.user));
        let pw = quote(creds.password());
        vec![
            format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {pw}"),
            format!("ALTER USER {account} IDENTIFIED BY {pw}"),
            format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}"),
        ]
    }

    /// The statements that create an application account or bring it up
    /// to date, in order, each idempotent: the databases, the account,
    /// its password, every privilege on each database and no other (no
    /// global privilege, none that bypasses `read_only`). Grants are only
    /// added: a database left out later keeps its grant until a person
    /// revokes it. They carry the password, as
    /// [`Dialect::replication_account`]'s do.
    pub fn app_account(
        &self,
        creds: &Credentials,
        databases: &[String],
    ) -> Result<Vec<String>, String> {
        if let Some(why) = databases.iter().find_map(|db| unquotable_database(db)) {
            return Err(why);
        }
        let account = format!("{}@'%'", quote(&creds.user));
        let pw = quote(creds.password());
        let mut out: Vec<String> = databases
            .iter()
            .map(|db| format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .collect();
        out.push(format!(
            "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {pw}"
        ));
        out.push(format!("ALTER USER {account} IDENTIFIED BY {pw}"));
        for db in databases {
            out.push(format!(
                "GRANT ALL PRIVILEGES ON {} TO {account}",
                grant_target(db)
            ));
        }
        Ok(out)
    }

    pub fn detect(version: &str, version_comment: Option<&str>) -> Result<Dialect, ParseError> {
        let flavor = if version.to_ascii_lowercase().contains("mariadb")
            || version_comment.is_some_and(|c| c.to_ascii_lowercase().contains("mariadb"))
        {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        Ok(Dialect {
            flavor,
            version: Version::parse(version)?,
        })
    }

    fn mysql_at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.flavor == Flavor::MySql && self.version.at_least(major, minor, patch)
    }

    /// The semi-sync variable names of this server. MariaDB (built in)
    /// and MySQL's old plugins say master and slave; MySQL 8.0.26+ ships
    /// the source/replica plugins too, and the one installed decides:
    /// `new_plugin` says whether the server has
    /// `rpl_semi_sync_source_enabled`.
    pub fn semi_sync_names(&self, new_plugin: bool) -> SemiSyncNames {
        match self.flavor {
            Flavor::MariaDb => SemiSyncNames {
                primary_enabled: "rpl_semi_sync_master_enabled",
                primary_timeout: "rpl_semi_sync_master_timeout",
                wait_count: None,
                replica_enabled: "rpl_semi_sync_slave_enabled",
            },
            Flavor::MySql if new_plugin && self.mysql_at_least(8, 0, 26) => SemiSyncNames {
                primary_enabled: "rpl_semi_sync_source_enabled",
                primary_timeout: "rpl_semi_sync_source_timeout",
                wait_count: Some("rpl_semi_sync_source_wait_for_replica_count"),
                replica_enabled: "rpl_semi_sync_replica_enabled",
            },
            Flavor::MySql => SemiSyncNames {
                primary_enabled: "rpl_semi_sync_master_enabled",
                primary_timeout: "rpl_semi_sync_master_timeout",
                wait_count: Some("rpl_semi_sync_master_wait_for_slave_count"),
                replica_enabled: "rpl_semi_sync_slave_enabled",
            },
        }
    }

    /// MySQL 8.0.22+ speaks of sources and replicas.
    pub fn new_terms(&self) -> bool {
        self.mysql_at_least(8, 0, 22)
    }

    pub fn replica_status(&self) -> &'static str {
        if self.new_terms() {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        }
    }

    pub fn binlog_status(&self) -> &'static str {
        if self.mysql_at_least(8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    pub fn replica_hosts(&self) -> &'static str {
        if self.new_terms() {
            "SHOW REPLICAS"
        } else {
            "SHOW SLAVE HOSTS"
        }
    }

    pub fn start_replica(&self) -> &'static str {
        if self.new_terms() {
            "START REPLICA"
        } else {
            "START SLAVE"
        }
    }

    pub fn stop_replica(&self) -> &'static str {
        if self.new_terms() {
            "STOP REPLICA"
        } else {
            "STOP SLAVE"
        }
    }

    pub fn stop_io_thread(&self) -> String {
        format!("{} IO_THREAD", self.stop_replica())
    }

    pub fn stop_sql_thread(&self) -> &'static str {
        if self.new_terms() {
            "STOP REPLICA SQL_THREAD"
        } else {
            "STOP SLAVE SQL_THREAD"
        }
    }

    pub fn start_sql_thread(&self) -> &'static str {
        if self.new_terms() {
            "START REPLICA SQL_THREAD"
        } else {
            "START SLAVE SQL_THREAD"
        }
    }

    /// Removes the replication delay of a replica whose SQL thread is
    /// stopped at `relay` (its position in its own relay log), keeping
    /// what it received: MariaDB's CHANGE MASTER discards the relay log
    /// unless it is told where to go on in it; MySQL keeps it when only
    /// the applier's options change.
    pub fn remove_delay(&self, relay: &BinlogCoordinates) -> String {
        match self.flavor {
            Flavor::MariaDb => format!(
                "CHANGE MASTER TO MASTER_DELAY=0, RELAY_LOG_FILE={}, RELAY_LOG_POS={}",
                quote(&relay.file),
                relay.pos
            ),
            Flavor::MySql if self.mysql_at_least(8, 0, 23) => {
                "CHANGE REPLICATION SOURCE TO SOURCE_DELAY=0".to_string()
            }
            Flavor::MySql => "CHANGE MASTER TO MASTER_DELAY=0".to_string(),
        }
    }

    /// Points this instance at `source` with GTID positioning
    /// (MariaDB `MASTER_USE_GTID=slave_pos`, MySQL auto-position), a
    /// connect retry of 1 s and a heartbeat every [`HEARTBEAT_PERIOD`]
    /// seconds so that a dead or hung source is noticed fast.
    pub fn change_source_gtid(&self, source: &InstanceKey, creds: &Credentials) -> String {
        self.change_source(source, creds, false)
    }

    /// Like [`Dialect::change_source_gtid`], but a MariaDB replica starts
    /// from where its own binary log ends (`MASTER_USE_GTID=current_pos`):
    /// a former primary's `gtid_slave_pos` predates its own writes.
    pub fn change_source_gtid_own_binlog(
        &self,
        source: &InstanceKey,
        creds: &Credentials,
    ) -> String {
        self.change_source(source, creds, true)
    }

    /// The statement that makes a server provisioned by a physical copy
    /// replicate from the copy's GTID position `gtid`: MariaDB's
    /// `SET GLOBAL gtid_slave_pos` (the position checked to be a MariaDB
    /// GTID list, so nothing else reaches the statement); none on MySQL,
    /// whose copy carries it as `gtid_executed`.
    pub fn set_copied_position(&self, gtid: &str) -> Result<Option<String>, String> {
        if self.flavor != Flavor::MariaDb {
            return Ok(None);
        }
        let gtid = gtid.trim();
        let valid = gtid.split(',').map(str::trim).all(|g| {
            let parts: Vec<&str> = g.split('-').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        });
        if !gtid.is_empty() && !valid {
            return Err(format!("{gtid:?} is no MariaDB GTID position"));
        }
        Ok(Some(format!("SET GLOBAL gtid_slave_pos = '{gtid}'")))
    }

    /// The statements that commit one empty transaction for each GTID of
    /// `gtids` (a MySQL GTID set as text), in order, on one connection:
    /// `SET gtid_next='uuid:n'`, `BEGIN`, `COMMIT` for each, then
    /// `SET gtid_next='AUTOMATIC'`. Refused on MariaDB (a GTID there is
    /// no name to commit under), for an empty set, a set that does not
    /// parse, and a set of more than `max` transactions.
    pub fn inject_empty_transactions(&self, gtids: &str, max: u64) -> Result<Vec<String>, String> {
        if self.flavor != Flavor::MySql {
            return Err("empty transactions are injected on MySQL only".into());
        }
        let set = MySqlGtidSet::parse(gtids).map_err(|e| e.to_string())?;
        let count = set.count();
        if count == 0 {
            return Err("no GTID to inject".into());
        }
        if count > max {
            return Err(format!(
                "{count} transactions to inject, more than the {max} orca injects at once"
            ));
        }
        let mut out = Vec::new();
        for (uuid, tag, first, last) in set.intervals() {
            for n in first..=last {
                let gtid = match tag {
                    Some(t) => format!("{uuid}:{t}:{n}"),
                    None => format!("{uuid}:{n}"),
                };
                out.push(format!("SET gtid_next={}", quote(&gtid)));
                out.push("BEGIN".to_string());
                out.push("COMMIT".to_string());
            }
        }
        out.push("SET gtid_next='AUTOMATIC'".to_string());
        Ok(out)
    }

    /// MariaDB only: the statement that points orca's second, named
    /// replication connection ([`DETOUR`]) at `source` with GTID
    /// positioning. It carries a replica while its default connection is
    /// still stopping (a semi-sync IO thread stopping against a hung
    /// source waits out `rpl_semi_sync_slave_kill_conn_timeout`).
    pub fn change_detour_gtid(&self, source: &InstanceKey, creds: &Credentials) -> Option<String> {
        (self.flavor == Flavor::MariaDb)
            .then(|| self.change_source_on(DETOUR, source, creds, false))
    }

    fn change_source(&self, source: &InstanceKey, creds: &Credentials, own: bool) -> String {
        self.change_source_on("", source, creds, own)
    }

    /// The change of source of the replication connection `name` (`""`:
    /// the default one; a named one is MariaDB's).
    fn change_source_on(
        &self,
        name: &str,
        source: &InstanceKey,
        creds: &Credentials,
        own: bool,
    ) -> String {
        let connection = if name.is_empty() {
            String::new()
        } else {
            format!("'{name}' ")
        };
        let use_gtid = if own { "current_pos" } else { "slave_pos" };
        let host = quote(&source.host);
        let user = quote(&creds.user);
        let pass = quote(creds.password());
        let port = source.port;
        match self.flavor {
            Flavor::MariaDb => format!(
                "CHANGE MASTER {connection}TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={pass}, MASTER_USE_GTID={use_gtid}, MASTER_CONNECT_RETRY=1, \
                 MASTER_HEARTBEAT_PERIOD={HEARTBEAT_PERIOD}"
            ),
            Flavor::MySql if self.mysql_at_least(8, 0, 23) => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, \
                 SOURCE_USER={user}, SOURCE_PASSWORD={pass}, SOURCE_AUTO_POSITION=1, \
                 SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD={HEARTBEAT_PERIOD}, GET_SOURCE_PUBLIC_KEY=1"
            ),
            Flavor::MySql => {
                // 8.0.4 made caching_sha2_password the default: without TLS
                // the replica must ask for the source's public key.
                let public_key = if self.mysql_at_least(8, 0, 4) {
                    ", GET_MASTER_PUBLIC_KEY=1"
                } else {
                    ""
                };
                format!(
                    "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                     MASTER_PASSWORD={pass}, MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1, \
                     MASTER_HEARTBEAT_PERIOD={HEARTBEAT_PERIOD}{public_key}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &str, c: &str) -> Dialect {
        Dialect::detect(v, Some(c)).unwrap()
    }

    #[test]
    fn statements_follow_flavor_and_version() {
        let maria = d("10.11.6-MariaDB-0+deb12u1", "Debian 12");
        assert_eq!(maria.flavor, Flavor::MariaDb);
        assert_eq!(maria.replica_status(), "SHOW SLAVE STATUS");
        assert_eq!(maria.binlog_status(), "SHOW MASTER STATUS");
        assert_eq!(maria.replica_hosts(), "SHOW SLAVE HOSTS");

        let old = d("8.0.21", "MySQL Community Server - GPL");
        assert_eq!(old.flavor, Flavor::MySql);
        assert_eq!(old.replica_status(), "SHOW SLAVE STATUS");
        assert_eq!(old.replica_hosts(), "SHOW SLAVE HOSTS");

        let m80 = d("8.0.36", "MySQL Community Server - GPL");
        assert_eq!(m80.replica_status(), "SHOW REPLICA STATUS");
        assert_eq!(m80.binlog_status(), "SHOW MASTER STATUS");
        assert_eq!(m80.replica_hosts(), "SHOW REPLICAS");

        let m84 = d("8.4.3", "MySQL Community Server - GPL");
        assert_eq!(m84.binlog_status(), "SHOW BINARY LOG STATUS");
        assert_eq!(m84.start_replica(), "START REPLICA");
    }

    #[test]
    fn a_copys_position_is_set_on_mariadb_only_and_only_when_it_is_one() {
        let maria = d("10.11.6-MariaDB-0+deb12u1", "Debian 12");
        let mysql = d("8.4.3", "MySQL Community Server - GPL");
        type Want = Result<Option<&'static str>, ()>;
        let table: [(&Dialect, &str, Want); 6] = [
            (
                &maria,
                "0-1-57",
                Ok(Some("SET GLOBAL gtid_slave_pos = '0-1-57'")),
            ),
            (
                &maria,
                "0-1-57,1-2-3",
                Ok(Some("SET GLOBAL gtid_slave_pos = '0-1-57,1-2-3'")),
            ),
            (&maria, "", Ok(Some("SET GLOBAL gtid_slave_pos = ''"))),
            (&maria, "0-1-57'; DROP TABLE t; --", Err(())),
            (&maria, "0-1", Err(())),
            (&mysql, "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", Ok(None)),
        ];
        for (dialect, gtid, want) in table {
            let got = dialect.set_copied_position(gtid);
            match want {
                Ok(w) => assert_eq!(
                    got.as_ref().ok().cloned(),
                    Some(w.map(String::from)),
                    "{gtid}"
                ),
                Err(()) => assert!(got.is_err(), "{gtid}: {got:?}"),
            }
        }
    }

    #[test]
    fn semi_sync_names_per_flavor_version_and_plugin() {
        let old = |replica| SemiSyncNames {
            primary_enabled: "rpl_semi_sync_master_enabled",
            primary_timeout: "rpl_semi_sync_master_timeout",
            wait_count: Some("rpl_semi_sync_master_wait_for_slave_count"),
            replica_enabled: replica,
        };
        let maria = SemiSyncNames {
            wait_count: None,
            ..old("rpl_semi_sync_slave_enabled")
        };
        let new = SemiSyncNames {
            primary_enabled: "rpl_semi_sync_source_enabled",
            primary_timeout: "rpl_semi_sync_source_timeout",
            wait_count: Some("rpl_semi_sync_source_wait_for_replica_count"),
            replica_enabled: "rpl_semi_sync_replica_enabled",
        };
        // (server, whether it has the source/replica plugin, names)
        let cases = [
            (d("10.11.6-MariaDB", ""), false, maria),
            // MariaDB has one set of names, whatever is asked.
            (d("11.4.2-MariaDB", ""), true, maria),
            (
                d("5.7.44-log", "MySQL"),
                false,
                old("rpl_semi_sync_slave_enabled"),
            ),
            (
                d("8.0.25", "MySQL"),
                true,
                old("rpl_semi_sync_slave_enabled"),
            ),
            (
                d("8.0.26", "MySQL"),
                false,
                old("rpl_semi_sync_slave_enabled"),
            ),
            (d("8.0.26", "MySQL"), true, new),
            (d("8.4.3", "MySQL"), true, new),
            (
                d("8.4.3", "MySQL"),
                false,
                old("rpl_semi_sync_slave_enabled"),
            ),
        ];
        for (dialect, plugin, want) in cases {
            assert_eq!(
                dialect.semi_sync_names(plugin),
                want,
                "{dialect:?} {plugin}"
            );
        }
    }

    #[test]
    fn account_statements() {
        let repl = Credentials::new("orca_repl", "r'p");
        let app = Credentials::new("app", "pw'x");
        let dbs = vec!["app".to_string(), "shop_2".to_string()];
        // (dialect, its statements: the same SQL on every flavor)
        for dialect in [
            d("10.11.6-MariaDB", ""),
            d("8.0.36", "MySQL Community Server - GPL"),
            d("8.4.3", "MySQL Community Server - GPL"),
        ] {
            assert_eq!(
                dialect.replication_account(&repl),
                vec![
                    r"CREATE USER IF NOT EXISTS 'orca_repl'@'%' IDENTIFIED BY 'r\'p'",
                    r"ALTER USER 'orca_repl'@'%' IDENTIFIED BY 'r\'p'",
                    "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'orca_repl'@'%'",
                ],
                "{dialect:?}"
            );
            let sql = dialect.app_account(&app, &dbs).unwrap();
            assert_eq!(
                sql,
                vec![
                    "CREATE DATABASE IF NOT EXISTS `app`",
                    "CREATE DATABASE IF NOT EXISTS `shop_2`",
                    r"CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'pw\'x'",
                    r"ALTER USER 'app'@'%' IDENTIFIED BY 'pw\'x'",
                    "GRANT ALL PRIVILEGES ON `app`.* TO 'app'@'%'",
                    r"GRANT ALL PRIVILEGES ON `shop\_2`.* TO 'app'@'%'",
                ],
                "{dialect:?}"
            );
            // Never a global grant for the application.
            assert!(sql.iter().all(|s| !s.contains("*.*")));
            assert_eq!(dialect.app_account(&app, &[]).unwrap().len(), 2);
            for bad in ["", "a`b", "a%", "a\\b"] {
                assert!(
                    dialect.app_account(&app, &[bad.to_string()]).is_err(),
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn change_source_per_dialect() {
        let creds = Credentials::new("repl", "p'w");
        let src = InstanceKey::new("10.0.0.1", 3306);
        let maria = d("10.11.6-MariaDB", "").change_source_gtid(&src, &creds);
        assert!(maria.contains("MASTER_USE_GTID=slave_pos"));
        assert!(maria.contains("MASTER_PASSWORD='p\\'w'"));
        let own = d("10.11.6-MariaDB", "").change_source_gtid_own_binlog(&src, &creds);
        assert!(own.contains("MASTER_USE_GTID=current_pos"), "{own}");
        let m84_own = d("8.4.3", "MySQL").change_source_gtid_own_binlog(&src, &creds);
        assert_eq!(
            m84_own,
            d("8.4.3", "MySQL").change_source_gtid(&src, &creds)
        );
        let m84 = d("8.4.3", "MySQL").change_source_gtid(&src, &creds);
        assert!(m84.starts_with("CHANGE REPLICATION SOURCE TO"));
        assert!(m84.contains("SOURCE_AUTO_POSITION=1"));
        let relay = BinlogCoordinates {
            file: "relay-bin.000002".into(),
            pos: 627,
        };
        assert_eq!(
            d("10.11.6-MariaDB", "").remove_delay(&relay),
            "CHANGE MASTER TO MASTER_DELAY=0, RELAY_LOG_FILE='relay-bin.000002', RELAY_LOG_POS=627"
        );
        assert_eq!(
            d("8.4.3", "MySQL").remove_delay(&relay),
            "CHANGE REPLICATION SOURCE TO SOURCE_DELAY=0"
        );
        assert_eq!(
            d("8.4.3", "MySQL").stop_sql_thread(),
            "STOP REPLICA SQL_THREAD"
        );
        let m57 = d("5.7.44-log", "MySQL").change_source_gtid(&src, &creds);
        assert!(m57.contains("MASTER_AUTO_POSITION=1"));
    }

    #[test]
    fn empty_transactions_for_each_gtid() {
        const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let m84 = d("8.4.3", "MySQL Community Server - GPL");
        let one = |g: &str| {
            vec![
                format!("SET gtid_next='{g}'"),
                "BEGIN".to_string(),
                "COMMIT".to_string(),
            ]
        };
        let auto = "SET gtid_next='AUTOMATIC'".to_string();
        // (set as text, the statements)
        let cases: Vec<(String, Vec<String>)> = vec![
            (
                format!("{A}:7"),
                [one(&format!("{A}:7")), vec![auto.clone()]].concat(),
            ),
            (
                format!("{B}:1-2,{A}:5"),
                [
                    one(&format!("{A}:5")),
                    one(&format!("{B}:1")),
                    one(&format!("{B}:2")),
                    vec![auto.clone()],
                ]
                .concat(),
            ),
            (
                format!("{A}:3:tag:9"),
                [
                    one(&format!("{A}:3")),
                    one(&format!("{A}:tag:9")),
                    vec![auto.clone()],
                ]
                .concat(),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                m84.inject_empty_transactions(&text, 10_000).unwrap(),
                want,
                "{text}"
            );
            // Old MySQL speaks the same.
            assert_eq!(
                d("5.7.44-log", "MySQL")
                    .inject_empty_transactions(&text, 10_000)
                    .unwrap(),
                want
            );
        }
        // Refusals: MariaDB, nothing to inject, too many, not a set.
        let refusals = [
            (
                d("10.11.6-MariaDB", ""),
                format!("{A}:1"),
                "empty transactions are injected on MySQL only".to_string(),
            ),
            (m84.clone(), String::new(), "no GTID to inject".to_string()),
            (
                m84.clone(),
                format!("{A}:1-10001"),
                "10001 transactions to inject, more than the 10000 orca injects at once"
                    .to_string(),
            ),
        ];
        for (dialect, text, why) in refusals {
            assert_eq!(
                dialect.inject_empty_transactions(&text, 10_000),
                Err(why),
                "{text}"
            );
        }
        assert!(m84.inject_empty_transactions("0-1-5", 10_000).is_err());
        // Exactly the cap is fine: 3 statements each, and the reset.
        assert_eq!(
            m84.inject_empty_transactions(&format!("{A}:1-10000"), 10_000)
                .unwrap()
                .len(),
            30_001
        );
    }

    #[test]
    fn the_second_connection_is_a_mariadb_one() {
        let creds = Credentials::new("repl", "pw");
        let src = InstanceKey::new("db-1", 3306);
        let maria = d("10.11.6-MariaDB-0+deb12u1", "Debian 12");
        let sql = maria.change_detour_gtid(&src, &creds).unwrap();
        assert!(
            sql.starts_with("CHANGE MASTER 'orca_detour' TO MASTER_HOST='db-1'"),
            "{sql}"
        );
        assert_eq!(
            sql.replacen("'orca_detour' ", "", 1),
            maria.change_source_gtid(&src, &creds)
        );
        let mysql = d("8.0.36", "MySQL Community Server - GPL");
        assert_eq!(mysql.change_detour_gtid(&src, &creds), None);
    }
}
