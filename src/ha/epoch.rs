//! The fencing rule and the two persistent guards.
//!
//! - [`Fence::check`]: a replica acts only while it holds the Lease and its
//!   term lasts at least as long as the step it is about to take.
//! - [`epoch_guarded_status_patch`]: an operation records its epoch in the
//!   status of the custom resource it acts on, under the resourceVersion it
//!   read; a newer epoch already there, or any change since the read,
//!   refuses the write.
//! - [`record_epoch`]: the epoch in `orca_meta.epoch` on the primary,
//!   written only when the stored one is not newer; a newer one fails the
//!   write.
//!
//! Together they make an operator from an older epoch (paused, cut off,
//! slow to notice it lost the Lease) fail its next write instead of acting
//! twice. The rules are pure functions ([`fence_rule`],
//! [`check_not_stale`], [`guarded_status_patch_body`],
//! [`record_epoch_sql`], [`check_recorded`]); the async functions only
//! carry them to the servers.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use mysql_async::Conn;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::lease::Leadership;
use super::{Epoch, HaError, api_code, bounded};
use crate::mysql::conn::{Timeouts, connect, exec, query_rows};
use crate::mysql::heartbeat::SCHEMA;
use crate::mysql::{Credentials, MysqlError};
use crate::topology::InstanceKey;

/// Why this replica may not act now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    #[error("not the leader (the lease is held by {})", holder.as_deref().unwrap_or("nobody this replica knows of"))]
    Follower { holder: Option<String> },
    #[error("the term of epoch {epoch} has ended without a renew")]
    Expired { epoch: i64 },
    #[error(
        "the term of epoch {epoch} has {} ms left, the step needs {} ms",
        remaining.as_millis(),
        needed.as_millis()
    )]
    TooShort {
        epoch: i64,
        remaining: Duration,
        needed: Duration,
    },
    #[error("leader election has stopped")]
    Stopped,
}

/// The fencing rule: `Ok(epoch)` only when `state` is a term that lasts at
/// least `needed` beyond `now`.
pub fn fence_rule(state: &Leadership, now: Instant, needed: Duration) -> Result<Epoch, NotLeader> {
    match state {
        Leadership::Follower { holder } => Err(NotLeader::Follower {
            holder: holder.clone(),
        }),
        Leadership::Leader { epoch, valid_until } => {
            let epoch = *epoch;
            if now >= *valid_until {
                return Err(NotLeader::Expired { epoch });
            }
            let remaining = valid_until.duration_since(now);
            if remaining >= needed {
                Ok(Epoch(epoch))
            } else {
                Err(NotLeader::TooShort {
                    epoch,
                    remaining,
                    needed,
                })
            }
        }
    }
}

/// The fencing rule on an elector's published state. Cheap to clone; hand
/// one to everything that acts.
#[derive(Debug, Clone)]
pub struct Fence {
    rx: watch::Receiver<Leadership>,
}

impl Fence {
    /// A fence on the state an elector publishes (see
    /// [`LeaderElector::fence`](super::LeaderElector::fence)).
    pub fn new(rx: watch::Receiver<Leadership>) -> Self {
        Fence { rx }
    }

    /// `Ok(epoch)` while this replica holds the Lease and its term lasts at
    /// least `needed` more: a step about to take `needed` finishes within
    /// the term. Judged by the clock, not by the elector's last word, so a
    /// stuck elector cannot keep it open.
    pub fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
        self.check_at(Instant::now(), needed)
    }

    /// [`check`](Self::check) at a given time.
    pub fn check_at(&self, now: Instant, needed: Duration) -> Result<Epoch, NotLeader> {
        if self.rx.has_changed().is_err() {
            return Err(NotLeader::Stopped);
        }
        fence_rule(&self.rx.borrow(), now, needed)
    }

    /// The published state.
    pub fn leadership(&self) -> Leadership {
        self.rx.borrow().clone()
    }
}

/// The guard's rule: acting in `ours` is refused when `stored` is newer.
pub fn check_not_stale(stored: Option<i64>, ours: Epoch, place: &str) -> Result<(), HaError> {
    match stored {
        Some(stored) if stored > ours.0 => Err(HaError::StaleEpoch {
            place: place.to_string(),
            stored,
            ours: ours.0,
        }),
        _ => Ok(()),
    }
}

/// The epoch a resource's status records (`.status.epoch`).
pub fn status_epoch(object: &Value) -> Option<i64> {
    object.pointer("/status/epoch").and_then(Value::as_i64)
}

/// The merge patch of a guarded status write: `status` (an object) with
/// `epoch` set to ours, and `metadata.resourceVersion` as the precondition.
pub fn guarded_status_patch_body(
    resource_version: &str,
    ours: Epoch,
    status: Value,
    place: &str,
) -> Result<Value, HaError> {
    let Value::Object(mut status) = status else {
        return Err(HaError::Answer {
            place: place.to_string(),
            detail: "a status patch must be a JSON object".into(),
        });
    };
    status.insert("epoch".into(), json!(ours.0));
    Ok(json!({
        "metadata": {"resourceVersion": resource_version},
        "status": status,
    }))
}

fn place_of(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{kind} {ns}/{name} status")
}

/// Writes `status` (a JSON object, merged into the stored status) and
/// `status.epoch = epoch` to the status subresource of `current`, the
/// object as the caller read it and decided on. Refused with
/// [`HaError::StaleEpoch`] when a newer epoch is recorded (in `current` or
/// by the time of the write), and with [`HaError::Conflict`] when the
/// object changed since `current` was read (its resourceVersion moved).
/// Each call to the API server is bounded by `limit`.
pub async fn epoch_guarded_status_patch<K>(
    api: &Api<K>,
    current: &K,
    epoch: Epoch,
    status: Value,
    limit: Duration,
) -> Result<K, HaError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Debug,
{
    let read = serde_json::to_value(current).map_err(|e| HaError::Answer {
        place: current.name_any(),
        detail: format!("cannot serialize the object: {e}"),
    })?;
    let place = place_of(&read);
    let name = current.meta().name.clone().ok_or_else(|| HaError::Answer {
        place: place.clone(),
        detail: "the object has no name".into(),
    })?;
    let rv = current
        .resource_version()
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| HaError::Answer {
            place: place.clone(),
            detail: "the object has no resourceVersion: read it from the API server first".into(),
        })?;
    check_not_stale(status_epoch(&read), epoch, &place)?;
    let body = guarded_status_patch_body(&rv, epoch, status, &place)?;
    let what = format!("writing {place}");
    let written = bounded(
        limit,
        &what,
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)),
    )
    .await;
    match written {
        Ok(obj) => Ok(obj),
        Err(e) if api_code(&e) == Some(409) => {
            // Tell a newer leader from any other change.
            let now = bounded(limit, &format!("reading {place}"), api.get(&name)).await?;
            let now = serde_json::to_value(&now).unwrap_or(Value::Null);
            check_not_stale(status_epoch(&now), epoch, &place)?;
            Err(HaError::Conflict { place, read: rv })
        }
        Err(e) => Err(e),
    }
}

/// The table holding the epoch on a primary.
pub const EPOCH_TABLE: &str = "epoch";

const ER_BAD_DB: u16 = 1049;
const ER_NO_SUCH_TABLE: u16 = 1146;

/// Statements creating `orca_meta.epoch` (one row, id 1).
pub fn create_epoch_table_sql() -> [String; 2] {
    [
        format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.{EPOCH_TABLE} (\
             id TINYINT UNSIGNED NOT NULL PRIMARY KEY, \
             epoch BIGINT NOT NULL, \
             recorded_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
        ),
    ]
}

/// One statement recording `epoch` unless a newer one is stored. The
/// assignments of `ON DUPLICATE KEY UPDATE` run left to right and see the
/// values already assigned, so `epoch` is assigned last. (`VALUES()` there
/// is deprecated in MySQL 8.0.20+ but still served, and is what MariaDB
/// speaks.)
pub fn record_epoch_sql(epoch: Epoch) -> String {
    let e = epoch.0;
    format!(
        "INSERT INTO {SCHEMA}.{EPOCH_TABLE} (id, epoch, recorded_at) VALUES (1, {e}, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE \
         recorded_at = IF(VALUES(epoch) >= epoch, VALUES(recorded_at), recorded_at), \
         epoch = IF(VALUES(epoch) >= epoch, VALUES(epoch), epoch)"
    )
}

/// The statement reading the stored epoch.
pub fn read_epoch_sql() -> String {
    format!("SELECT epoch FROM {SCHEMA}.{EPOCH_TABLE} WHERE id = 1")
}

/// After [`record_epoch_sql`]: ours is recorded when the stored epoch reads
/// back as ours; a newer one means this replica's term is over.
pub fn check_recorded(stored: Option<i64>, ours: Epoch, place: &str) -> Result<(), HaError> {
    check_not_stale(stored, ours, place)?;
    match stored {
        Some(s) if s == ours.0 => Ok(()),
        other => Err(HaError::Answer {
            place: place.to_string(),
            detail: format!(
                "epoch {ours} was written but {} reads back",
                other.map_or("nothing".to_string(), |s| s.to_string())
            ),
        }),
    }
}

/// The epoch recorded on an instance, `None` when none is.
pub async fn read_epoch(
    conn: &mut Conn,
    key: &InstanceKey,
    limit: Duration,
) -> Result<Option<i64>, MysqlError> {
    let rows = match query_rows(conn, key, limit, "reading the epoch", &read_epoch_sql()).await {
        Ok(rows) => rows,
        Err(e) if matches!(e.server_code(), Some(ER_BAD_DB | ER_NO_SUCH_TABLE)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(value) = rows.first().and_then(|r| r.get("epoch").cloned().flatten()) else {
        return Ok(None);
    };
    value
        .parse::<i64>()
        .map(Some)
        .map_err(|_| MysqlError::Answer {
            key: key.clone(),
            what: "reading the epoch",
            detail: format!("epoch {value:?} is not an integer"),
        })
}

/// Records `epoch` on the primary at `key` (creating `orca_meta.epoch`
/// when missing) and reads it back. Fails with [`HaError::StaleEpoch`]
/// when a newer epoch is recorded there. Each statement is bounded by
/// `limit`.
pub async fn record_epoch(
    conn: &mut Conn,
    key: &InstanceKey,
    limit: Duration,
    epoch: Epoch,
) -> Result<(), HaError> {
    let sql = record_epoch_sql(epoch);
    match exec(conn, key, limit, "recording the epoch", &sql).await {
        Ok(()) => {}
        Err(e) if matches!(e.server_code(), Some(ER_BAD_DB | ER_NO_SUCH_TABLE)) => {
            for create in create_epoch_table_sql() {
                exec(conn, key, limit, "creating the epoch table", &create).await?;
            }
            exec(conn, key, limit, "recording the epoch", &sql).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let stored = read_epoch(conn, key, limit).await?;
    check_recorded(stored, epoch, &format!("instance {key}"))
}

/// [`record_epoch`] on its own connection to `key`, opened and closed
/// within `timeouts`.
pub async fn record_epoch_at(
    key: &InstanceKey,
    creds: &Credentials,
    timeouts: Timeouts,
    epoch: Epoch,
) -> Result<(), HaError> {
    let mut conn = connect(key, creds, timeouts).await?;
    let r = record_epoch(&mut conn, key, timeouts.query, epoch).await;
    let _ = tokio::time::timeout(timeouts.query, conn.disconnect()).await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(epoch: i64, valid_until: Instant) -> Leadership {
        Leadership::Leader { epoch, valid_until }
    }

    #[test]
    fn the_fence_rule() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let state = leader(5, t0 + s(10));
        assert_eq!(fence_rule(&state, t0, s(0)), Ok(Epoch(5)));
        assert_eq!(
            fence_rule(&state, t0, s(10)),
            Ok(Epoch(5)),
            "exactly enough"
        );
        assert_eq!(
            fence_rule(&state, t0, s(11)),
            Err(NotLeader::TooShort {
                epoch: 5,
                remaining: s(10),
                needed: s(11)
            })
        );
        assert_eq!(fence_rule(&state, t0 + s(7), s(3)), Ok(Epoch(5)));
        assert!(matches!(
            fence_rule(&state, t0 + s(7), s(4)),
            Err(NotLeader::TooShort { epoch: 5, .. })
        ));
        // at and after the end of the term nothing is allowed, not even
        // an instant step
        assert_eq!(
            fence_rule(&state, t0 + s(10), s(0)),
            Err(NotLeader::Expired { epoch: 5 })
        );
        assert_eq!(
            fence_rule(&state, t0 + s(60), s(0)),
            Err(NotLeader::Expired { epoch: 5 })
        );
        let f = Leadership::Follower {
            holder: Some("b".into()),
        };
        assert_eq!(
            fence_rule(&f, t0, s(0)),
            Err(NotLeader::Follower {
                holder: Some("b".into())
            })
        );
    }

    #[test]
    fn a_fence_follows_the_channel_and_its_end() {
        let t0 = Instant::now();
        let (tx, rx) = watch::channel(Leadership::Follower { holder: None });
        let fence = Fence::new(rx);
        assert!(matches!(
            fence.check_at(t0, Duration::ZERO),
            Err(NotLeader::Follower { holder: None })
        ));
        tx.send_replace(leader(2, t0 + Duration::from_secs(10)));
        assert_eq!(fence.check_at(t0, Duration::from_secs(1)), Ok(Epoch(2)));
        let copy = fence.clone();
        // a stuck elector's last word does not keep the fence open
        assert_eq!(
            copy.check_at(t0 + Duration::from_secs(11), Duration::ZERO),
            Err(NotLeader::Expired { epoch: 2 })
        );
        // a stopped elector closes it even inside the term
        drop(tx);
        assert_eq!(fence.check_at(t0, Duration::ZERO), Err(NotLeader::Stopped));
    }

    #[test]
    fn stale_epochs_are_refused() {
        assert!(check_not_stale(None, Epoch(1), "x").is_ok());
        assert!(check_not_stale(Some(3), Epoch(3), "x").is_ok());
        assert!(check_not_stale(Some(2), Epoch(3), "x").is_ok());
        let e = check_not_stale(Some(4), Epoch(3), "x").unwrap_err();
        assert!(e.is_stale_epoch());
        assert!(!e.is_conflict());
        assert_eq!(
            e.to_string(),
            "x: epoch 4 is recorded, newer than ours (3); refusing to act"
        );
    }

    #[test]
    fn status_patch_body() {
        let body =
            guarded_status_patch_body("42", Epoch(7), json!({"primary": "db-1", "epoch": 1}), "x")
                .unwrap();
        assert_eq!(
            body,
            json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"primary": "db-1", "epoch": 7}
            })
        );
        assert!(guarded_status_patch_body("42", Epoch(7), json!([1]), "x").is_err());
        assert_eq!(status_epoch(&json!({"status": {"epoch": 9}})), Some(9));
        assert_eq!(status_epoch(&json!({"status": {}})), None);
        assert_eq!(status_epoch(&json!({})), None);
        assert_eq!(
            place_of(
                &json!({"kind": "MySQLCluster", "metadata": {"namespace": "db", "name": "c"}})
            ),
            "MySQLCluster db/c status"
        );
    }

    #[test]
    fn epoch_table_statements() {
        assert_eq!(
            record_epoch_sql(Epoch(3)),
            "INSERT INTO orca_meta.epoch (id, epoch, recorded_at) VALUES (1, 3, UTC_TIMESTAMP(6)) \
             ON DUPLICATE KEY UPDATE \
             recorded_at = IF(VALUES(epoch) >= epoch, VALUES(recorded_at), recorded_at), \
             epoch = IF(VALUES(epoch) >= epoch, VALUES(epoch), epoch)"
        );
        let [db, table] = create_epoch_table_sql();
        assert_eq!(db, "CREATE DATABASE IF NOT EXISTS orca_meta");
        assert!(table.starts_with("CREATE TABLE IF NOT EXISTS orca_meta.epoch ("));
        assert_eq!(
            read_epoch_sql(),
            "SELECT epoch FROM orca_meta.epoch WHERE id = 1"
        );
    }

    #[test]
    fn reading_back_the_epoch() {
        assert!(check_recorded(Some(3), Epoch(3), "i").is_ok());
        assert!(
            check_recorded(Some(4), Epoch(3), "i")
                .unwrap_err()
                .is_stale_epoch()
        );
        let lost = check_recorded(Some(2), Epoch(3), "i").unwrap_err();
        assert!(!lost.is_stale_epoch());
        assert!(check_recorded(None, Epoch(3), "i").is_err());
    }
}
