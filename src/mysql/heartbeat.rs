//! orca's heartbeat: a row orca writes on the primary with the primary's
//! clock, replicated like any write. Each instance's heartbeat age (its own
//! clock minus the row's time) is read by the probe; a replica's lag is its
//! age minus its primary's age, so it resolves below a second and, unlike
//! `Seconds_Behind_Master`, keeps counting while replication is stuck.

use std::time::Duration;

use super::MysqlError;
use super::conn::Execute;
use crate::topology::InstanceKey;

pub const SCHEMA: &str = "orca_meta";

const ER_BAD_DB: u16 = 1049;
const ER_NO_SUCH_TABLE: u16 = 1146;

/// Creates the heartbeat table on a primary if it is missing.
pub async fn ensure_table(
    conn: &mut impl Execute,
    key: &InstanceKey,
    limit: Duration,
) -> Result<(), MysqlError> {
    conn.execute(
        key,
        limit,
        "creating the orca schema",
        &format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"),
    )
    .await?;
    conn.execute(
        key,
        limit,
        "creating the heartbeat table",
        &format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.heartbeat (\
             id TINYINT UNSIGNED NOT NULL PRIMARY KEY, \
             server_id INT UNSIGNED NOT NULL, \
             ts DATETIME(6) NOT NULL) ENGINE=InnoDB"
        ),
    )
    .await
}

/// Writes one heartbeat with the primary's current time.
pub async fn write(
    conn: &mut impl Execute,
    key: &InstanceKey,
    limit: Duration,
) -> Result<(), MysqlError> {
    conn.execute(
        key,
        limit,
        "writing the heartbeat",
        &format!("REPLACE INTO {SCHEMA}.heartbeat (id, server_id, ts) VALUES (1, @@server_id, UTC_TIMESTAMP(6))"),
    )
    .await
}

/// The statement that reads the age of the newest heartbeat an instance
/// holds, in microseconds by its own clock (the probe's last; it fails with
/// [`is_missing`] where orca never wrote one).
pub fn age_query() -> String {
    format!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) AS age_us FROM {SCHEMA}.heartbeat WHERE id = 1"
    )
}

/// The age in milliseconds from the rows of [`age_query`].
pub fn age_from_rows(rows: &[super::parse::TextRow]) -> Option<u64> {
    rows.first()
        .and_then(|r| r.get("age_us").cloned().flatten())
        .and_then(|v| v.parse::<i64>().ok())
        .map(|us| (us.max(0) / 1000) as u64)
}

/// Whether `e` says only that orca never wrote a heartbeat here (its
/// schema or table missing).
pub fn is_missing(e: &MysqlError) -> bool {
    matches!(e.server_code(), Some(ER_BAD_DB | ER_NO_SUCH_TABLE))
}
