//! The store's schema and its versioned migrations. Migrations run at
//! start, under a named server lock (`GET_LOCK`), so that two orca
//! processes starting at once apply each one once: the second waits for
//! the first, then finds nothing left to do. DDL is not transactional in
//! MySQL, so every statement is idempotent too (`IF NOT EXISTS`): a
//! migration cut short by a crash is run again whole. A schema newer than
//! this binary knows is refused, naming both versions.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::StoreError;

/// The lock every migrator takes, on the store's server.
pub const LOCK: &str = "orca.store.migrations";

/// The table of applied versions (not itself a migration: it is what tells
/// which have run).
pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL,
    applied_by VARCHAR(64) NOT NULL
) ENGINE=InnoDB";

/// One migration: its version (from 1, consecutive) and its statements.
pub struct Migration {
    pub version: u32,
    pub what: &'static str,
    pub statements: &'static [&'static str],
}

/// Every migration this binary knows, in order. Times are Unix
/// milliseconds (`*_ms`, UTC by construction); instances are `host:port`.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    what: "instances, findings, recoveries and their steps, audit, downtimes",
    statements: &[
        "CREATE TABLE IF NOT EXISTS instances (
            cluster VARCHAR(128) NOT NULL,
            instance VARCHAR(255) NOT NULL,
            role VARCHAR(32) NOT NULL,
            source VARCHAR(255) NULL,
            reachable BOOL NOT NULL,
            read_only BOOL NULL,
            flavor VARCHAR(16) NULL,
            version VARCHAR(128) NULL,
            server_id INT UNSIGNED NULL,
            gtid_executed TEXT NULL,
            lag_ms BIGINT UNSIGNED NULL,
            error TEXT NULL,
            snapshot LONGTEXT NULL,
            seen_at_ms BIGINT NOT NULL,
            PRIMARY KEY (cluster, instance)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS findings (
            id CHAR(36) NOT NULL PRIMARY KEY,
            cluster VARCHAR(128) NOT NULL,
            code VARCHAR(64) NOT NULL,
            severity VARCHAR(16) NOT NULL,
            instance VARCHAR(255) NOT NULL,
            replicas TEXT NOT NULL,
            description TEXT NOT NULL,
            first_seen_ms BIGINT NOT NULL,
            last_seen_ms BIGINT NOT NULL,
            ended_ms BIGINT NULL,
            KEY findings_by_cluster (cluster, first_seen_ms)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS recoveries (
            id VARCHAR(191) NOT NULL PRIMARY KEY,
            cluster VARCHAR(128) NOT NULL,
            kind VARCHAR(64) NOT NULL,
            trigger_name VARCHAR(128) NOT NULL,
            failed_instance VARCHAR(255) NULL,
            successor VARCHAR(255) NULL,
            lost_replicas LONGTEXT NOT NULL,
            lost_gtids TEXT NULL,
            lost_count BIGINT UNSIGNED NULL,
            outcome VARCHAR(32) NOT NULL,
            outcome_detail TEXT NULL,
            notes LONGTEXT NOT NULL,
            hook_errors LONGTEXT NOT NULL,
            epoch BIGINT NULL,
            started_ms BIGINT NOT NULL,
            ended_ms BIGINT NOT NULL,
            acknowledged_by VARCHAR(255) NULL,
            acknowledged_ms BIGINT NULL,
            acknowledged_comment TEXT NULL,
            KEY recoveries_by_cluster (cluster, started_ms)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS recovery_steps (
            recovery_id VARCHAR(191) NOT NULL,
            phase VARCHAR(16) NOT NULL,
            idx INT UNSIGNED NOT NULL,
            description TEXT NOT NULL,
            step LONGTEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            duration_ms BIGINT UNSIGNED NOT NULL,
            outcome VARCHAR(16) NOT NULL,
            detail TEXT NULL,
            PRIMARY KEY (recovery_id, phase, idx)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS audit (
            id CHAR(36) NOT NULL PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            cluster VARCHAR(128) NOT NULL,
            action VARCHAR(64) NOT NULL,
            target VARCHAR(255) NULL,
            requested_by VARCHAR(255) NOT NULL,
            door VARCHAR(16) NOT NULL,
            detail TEXT NULL,
            KEY audit_by_cluster (cluster, at_ms)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS downtimes (
            id CHAR(36) NOT NULL PRIMARY KEY,
            cluster VARCHAR(128) NOT NULL,
            instance VARCHAR(255) NOT NULL,
            starts_ms BIGINT NOT NULL,
            ends_ms BIGINT NOT NULL,
            owner VARCHAR(255) NOT NULL,
            reason TEXT NULL,
            KEY downtimes_by_instance (cluster, instance, ends_ms)
        ) ENGINE=InnoDB",
    ],
}];

/// The newest version this binary knows.
pub fn known_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Which migrations to apply to a store whose applied versions are
/// `applied`, when this binary knows up to `known`: the versions above the
/// highest applied, or a refusal when the store is newer than `known`.
/// A gap (version 3 applied, 2 not) is not filled: versions are applied in
/// order, so the highest one says what the schema is.
pub fn plan(applied: &[u32], known: u32) -> Result<Vec<u32>, StoreError> {
    let current = applied.iter().copied().max().unwrap_or(0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    Ok((current + 1..=known).collect())
}

fn now_ms() -> i64 {
    super::now_ms()
}

/// Applies the missing migrations on `conn` (connected to the store's
/// database), under [`LOCK`]; returns the schema version after it.
/// `limit` bounds every statement, and the wait for the lock.
pub async fn migrate(conn: &mut Conn, limit: Duration) -> Result<u32, StoreError> {
    let got: Option<Option<i64>> = super::bounded(
        limit + limit,
        "taking the migration lock",
        conn.exec_first("SELECT GET_LOCK(?, ?)", (LOCK, limit.as_secs().max(1))),
    )
    .await?;
    if got.flatten() != Some(1) {
        return Err(StoreError::Lock(format!(
            "another orca held the migration lock {LOCK} for more than {limit:?}"
        )));
    }
    let r = apply(conn, limit).await;
    let released = super::bounded(
        limit,
        "releasing the migration lock",
        conn.exec_drop("DO RELEASE_LOCK(?)", (LOCK,)),
    )
    .await;
    let v = r?;
    released?;
    Ok(v)
}

async fn apply(conn: &mut Conn, limit: Duration) -> Result<u32, StoreError> {
    super::bounded(
        limit,
        "creating schema_version",
        conn.query_drop(VERSION_TABLE),
    )
    .await?;
    let applied: Vec<u32> = super::bounded(
        limit,
        "reading schema_version",
        conn.query("SELECT version FROM schema_version"),
    )
    .await?;
    let known = known_version();
    let todo = plan(&applied, known)?;
    let by = format!("orca {}", env!("CARGO_PKG_VERSION"));
    for v in &todo {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == *v) else {
            return Err(StoreError::Lock(format!("migration {v} is missing")));
        };
        for sql in m.statements {
            super::bounded(limit, "applying a migration", conn.query_drop(*sql)).await?;
        }
        super::bounded(
            limit,
            "recording a migration",
            conn.exec_drop(
                "INSERT INTO schema_version (version, applied_at_ms, applied_by) VALUES (?, ?, ?)",
                (m.version, now_ms(), by.as_str()),
            ),
        )
        .await?;
        tracing::info!(version = m.version, "store: migration applied: {}", m.what);
    }
    Ok(known.max(applied.iter().copied().max().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions to apply, or (found, known) when refused.
    type Planned = Result<Vec<u32>, (u32, u32)>;

    #[test]
    fn plans() {
        let cases: Vec<(&[u32], u32, Planned)> = vec![
            (&[], 1, Ok(vec![1])),
            (&[], 3, Ok(vec![1, 2, 3])),
            (&[1], 1, Ok(vec![])),
            (&[1, 2], 4, Ok(vec![3, 4])),
            (&[2, 1], 2, Ok(vec![])),
            (&[1, 2, 3], 2, Err((3, 2))),
            (&[7], 1, Err((7, 1))),
        ];
        for (applied, known, want) in cases {
            let got = plan(applied, known).map_err(|e| match e {
                StoreError::SchemaTooNew { found, known } => (found, known),
                other => panic!("{other}"),
            });
            assert_eq!(got, want, "{applied:?} known {known}");
        }
    }

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.what);
            for s in m.statements {
                assert!(s.contains("IF NOT EXISTS"), "not idempotent: {s}");
            }
        }
    }

    #[test]
    fn a_newer_schema_names_both_versions() {
        let e = plan(&[5], 1).unwrap_err().to_string();
        assert!(e.contains('5') && e.contains('1'), "{e}");
    }
}
