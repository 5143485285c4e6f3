//! The store's reads, for the HTTP API: paged, newest first. Every read
//! is bounded in time (a connection from a small pool, then the query).

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Row, Value};
use serde::Serialize;

use super::record::{AuditRow, Door, InstanceRow, RecoveryRow, StepRow};
use super::{Store, StoreError, bounded};

/// A page of a list: `size` rows (1 to [`Page::MAX`]) after skipping
/// `number` pages, counted from the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    pub const MAX: u32 = 500;

    pub fn new(number: u32, size: u32) -> Page {
        Page { number, size }
    }

    pub fn first(size: u32) -> Page {
        Page::new(0, size)
    }

    /// `(LIMIT, OFFSET)`, the size brought within 1 to [`Page::MAX`].
    pub fn limit_offset(self) -> (u64, u64) {
        let size = u64::from(self.size.clamp(1, Page::MAX));
        (size, size * u64::from(self.number))
    }
}

impl Default for Page {
    fn default() -> Page {
        Page::first(50)
    }
}

/// An operation as read back: its row (without steps: see
/// [`Store::recovery_steps`]) and its acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecovery {
    #[serde(flatten)]
    pub recovery: RecoveryRow,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    pub acknowledged_comment: Option<String>,
}

/// One finding with its active period, as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFinding {
    pub id: String,
    pub cluster: String,
    pub code: String,
    pub severity: String,
    pub instance: String,
    pub replicas: String,
    pub description: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// `None` while it is active.
    pub ended_ms: Option<i64>,
}

/// Column `i` of `row`.
fn col<T: FromValue>(row: &mut Row, i: usize, what: &'static str) -> Result<T, StoreError> {
    match row.take_opt::<Value, _>(i) {
        Some(Ok(v)) => mysql_async::from_value_opt::<T>(v).map_err(|e| StoreError::Value {
            what,
            detail: format!("column {i}: {e}"),
        }),
        Some(Err(e)) => Err(StoreError::Value {
            what,
            detail: format!("column {i}: {e}"),
        }),
        None => Err(StoreError::Value {
            what,
            detail: format!("no column {i}"),
        }),
    }
}

impl Store {
    async fn rows(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        let t = self.config().timeouts;
        let mut last = None;
        // A pooled connection may have died with a store that restarted
        // since: one more try on a fresh one.
        for _ in 0..2 {
            let r = async {
                let mut conn = bounded(t.connect, "connecting", self.pool().get_conn()).await?;
                bounded(t.query, what, conn.exec(sql, params.clone())).await
            }
            .await;
            match r {
                Err(e @ StoreError::Sql { .. }) if e.server_code().is_none() => last = Some(e),
                r => return r,
            }
        }
        Err(last.unwrap_or(StoreError::Value {
            what,
            detail: "no attempt".into(),
        }))
    }

    /// The operations of `cluster`, newest first.
    pub async fn recoveries(
        &self,
        cluster: &str,
        page: Page,
    ) -> Result<Vec<StoredRecovery>, StoreError> {
        let (limit, offset) = page.limit_offset();
        let what = "reading recoveries";
        let rows = self
            .rows(
                what,
                "SELECT id, cluster, kind, trigger_name, failed_instance, successor, lost_replicas, lost_gtids, lost_count,
                        outcome, outcome_detail, notes, hook_errors, epoch, started_ms, ended_ms,
                        acknowledged_by, acknowledged_ms, acknowledged_comment
                 FROM recoveries WHERE cluster = ? ORDER BY started_ms DESC, id DESC LIMIT ? OFFSET ?",
                vec![cluster.into(), limit.into(), offset.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                let r = &mut r;
                Ok(StoredRecovery {
                    recovery: RecoveryRow {
                        id: col(r, 0, what)?,
                        cluster: col(r, 1, what)?,
                        kind: col(r, 2, what)?,
                        trigger: col(r, 3, what)?,
                        failed_instance: col(r, 4, what)?,
                        successor: col(r, 5, what)?,
                        lost_replicas: col(r, 6, what)?,
                        lost_gtids: col(r, 7, what)?,
                        lost_count: col(r, 8, what)?,
                        outcome: col(r, 9, what)?,
                        outcome_detail: col(r, 10, what)?,
                        notes: col(r, 11, what)?,
                        hook_errors: col(r, 12, what)?,
                        epoch: col(r, 13, what)?,
                        started_ms: col(r, 14, what)?,
                        ended_ms: col(r, 15, what)?,
                        steps: Vec::new(),
                    },
                    acknowledged_by: col(r, 16, what)?,
                    acknowledged_ms: col(r, 17, what)?,
                    acknowledged_comment: col(r, 18, what)?,
                })
            })
            .collect()
    }

    /// The steps of one operation, in the order they ran (its steps, then
    /// its rollback).
    pub async fn recovery_steps(&self, id: &str) -> Result<Vec<StepRow>, StoreError> {
        self.steps_where(id, None).await
    }

    /// The steps of the recovery `id` if it is one of `cluster`'s (else
    /// none).
    pub async fn cluster_recovery_steps(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<Vec<StepRow>, StoreError> {
        self.steps_where(id, Some(cluster)).await
    }

    async fn steps_where(
        &self,
        id: &str,
        cluster: Option<&str>,
    ) -> Result<Vec<StepRow>, StoreError> {
        let what = "reading recovery steps";
        let rows = self
            .rows(
                what,
                "SELECT phase, idx, description, step, started_ms, duration_ms, outcome, detail
                 FROM recovery_steps WHERE recovery_id = ?
                   AND (? IS NULL OR recovery_id IN (SELECT id FROM recoveries WHERE cluster = ?))
                 ORDER BY phase = 'rollback', idx",
                vec![id.into(), cluster.into(), cluster.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                let r = &mut r;
                Ok(StepRow {
                    phase: col(r, 0, what)?,
                    index: col(r, 1, what)?,
                    description: col(r, 2, what)?,
                    step: col(r, 3, what)?,
                    started_ms: col(r, 4, what)?,
                    duration_ms: col(r, 5, what)?,
                    outcome: col(r, 6, what)?,
                    detail: col(r, 7, what)?,
                })
            })
            .collect()
    }

    /// The operations asked for in `cluster`, newest first.
    pub async fn audit(&self, cluster: &str, page: Page) -> Result<Vec<AuditRow>, StoreError> {
        let (limit, offset) = page.limit_offset();
        let what = "reading the audit";
        let rows = self
            .rows(
                what,
                "SELECT id, at_ms, cluster, action, target, requested_by, door, detail
                 FROM audit WHERE cluster = ? ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?",
                vec![cluster.into(), limit.into(), offset.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                let r = &mut r;
                let door: String = col(r, 6, what)?;
                Ok(AuditRow {
                    id: col(r, 0, what)?,
                    at_ms: col(r, 1, what)?,
                    cluster: col(r, 2, what)?,
                    action: col(r, 3, what)?,
                    target: col(r, 4, what)?,
                    requested_by: col(r, 5, what)?,
                    door: Door::parse(&door).ok_or_else(|| StoreError::Value {
                        what,
                        detail: format!("door {door:?}"),
                    })?,
                    detail: col(r, 7, what)?,
                })
            })
            .collect()
    }

    /// The latest snapshot of every instance of `cluster`, by address.
    pub async fn instances(&self, cluster: &str) -> Result<Vec<InstanceRow>, StoreError> {
        let what = "reading instances";
        let rows = self
            .rows(
                what,
                "SELECT cluster, instance, role, source, reachable, read_only, flavor, version, server_id,
                        gtid_executed, lag_ms, error, snapshot, seen_at_ms
                 FROM instances WHERE cluster = ? ORDER BY instance",
                vec![cluster.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                let r = &mut r;
                Ok(InstanceRow {
                    cluster: col(r, 0, what)?,
                    instance: col(r, 1, what)?,
                    role: col(r, 2, what)?,
                    source: col(r, 3, what)?,
                    reachable: col(r, 4, what)?,
                    read_only: col(r, 5, what)?,
                    flavor: col(r, 6, what)?,
                    version: col(r, 7, what)?,
                    server_id: col(r, 8, what)?,
                    gtid_executed: col(r, 9, what)?,
                    lag_ms: col(r, 10, what)?,
                    error: col(r, 11, what)?,
                    snapshot: col(r, 12, what)?,
                    seen_at_ms: col(r, 13, what)?,
                })
            })
            .collect()
    }

    /// The findings of `cluster`, newest first.
    pub async fn findings(
        &self,
        cluster: &str,
        page: Page,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let (limit, offset) = page.limit_offset();
        let what = "reading findings";
        let rows = self
            .rows(
                what,
                "SELECT id, cluster, code, severity, instance, replicas, description, first_seen_ms, last_seen_ms, ended_ms
                 FROM findings WHERE cluster = ? ORDER BY first_seen_ms DESC, id DESC LIMIT ? OFFSET ?",
                vec![cluster.into(), limit.into(), offset.into()],
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                let r = &mut r;
                Ok(StoredFinding {
                    id: col(r, 0, what)?,
                    cluster: col(r, 1, what)?,
                    code: col(r, 2, what)?,
                    severity: col(r, 3, what)?,
                    instance: col(r, 4, what)?,
                    replicas: col(r, 5, what)?,
                    description: col(r, 6, what)?,
                    first_seen_ms: col(r, 7, what)?,
                    last_seen_ms: col(r, 8, what)?,
                    ended_ms: col(r, 9, what)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        // (number, size, limit, offset)
        let cases = [
            (0, 50, 50, 0),
            (2, 10, 10, 20),
            (0, 0, 1, 0),
            (1, 10_000, 500, 500),
        ];
        for (number, size, limit, offset) in cases {
            assert_eq!(
                Page::new(number, size).limit_offset(),
                (limit, offset),
                "{number} {size}"
            );
        }
    }
}
