//! Write locks orca holds on fenced former primaries.
//!
//! On MariaDB `read_only` does not stop accounts with `READ ONLY ADMIN`
//! (root, and any account granted `ALL`): a former primary made read only
//! still takes their writes, which no replica will ever have. So a fence
//! also takes the global read lock (`FLUSH TABLES WITH READ LOCK`) on a
//! connection orca keeps open, which stops every account's writes while
//! reads go on, and the server stays up and inspectable, ready to rejoin.
//! Shutting the server down instead would not hold in Kubernetes: the
//! container restarts it, writable again for those accounts.
//!
//! The lock lives as long as its connection: each engine round checks the
//! connections (and kills clients stuck waiting on the lock, so they get an
//! error rather than a late answer), and an instance whose lock was lost
//! (the server restarted, someone killed orca's connection) is fenced
//! again. It is released when the instance has a role again: once it
//! replicates, or right before it is made writable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mysql_async::Conn;

use crate::mysql::actions::Session;
use crate::mysql::{Dialect, MysqlError};
use crate::topology::InstanceKey;

/// One held lock: the connection that holds it, and its server's dialect.
struct Held {
    conn: Conn,
    dialect: Dialect,
}

/// The write locks held, by instance; clones share them (an engine and
/// the executors it makes for fences hold the same set).
#[derive(Clone, Default)]
pub struct WriteLocks {
    held: Arc<Mutex<BTreeMap<InstanceKey, Held>>>,
}

impl std::fmt::Debug for WriteLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys()).finish()
    }
}

impl WriteLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<InstanceKey, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instances whose writes are locked.
    pub fn keys(&self) -> Vec<InstanceKey> {
        self.map().keys().cloned().collect()
    }

    pub fn holds(&self, key: &InstanceKey) -> bool {
        self.map().contains_key(key)
    }

    /// The connection id of the lock on `key`, if one is held: a fence's
    /// killing of client connections spares it.
    pub fn connection_id(&self, key: &InstanceKey) -> Option<u32> {
        self.map().get(key).map(|h| h.conn.id())
    }

    /// Keeps `conn`, which holds the global read lock on `key`. A lock
    /// already held there is let go after the new one is kept.
    pub async fn keep(&self, key: &InstanceKey, conn: Conn, dialect: Dialect) {
        let old = self.map().insert(key.clone(), Held { conn, dialect });
        if let Some(old) = old {
            let _ = tokio::time::timeout(Duration::from_secs(1), old.conn.disconnect()).await;
        }
    }

    /// Releases the lock on `key`, if one is held. With `kill_clients`,
    /// every client connection is killed first, from the holding
    /// connection: a write that waited on the lock gets an error, not an
    /// acknowledgement from a server that is now a replica. The lock goes
    /// with its connection even if a statement fails.
    pub async fn release(
        &self,
        key: &InstanceKey,
        kill_clients: bool,
        limit: Duration,
    ) -> Result<(), MysqlError> {
        let Some(mut held) = self.map().remove(key) else {
            return Ok(());
        };
        let mut s = Session {
            conn: &mut held.conn,
            key,
            dialect: &held.dialect,
            limit,
        };
        let killed = if kill_clients {
            s.kill_clients(&[], false).await.map(|_| ())
        } else {
            Ok(())
        };
        let unlocked = s.unlock_writes().await;
        let _ = tokio::time::timeout(limit, held.conn.disconnect()).await;
        killed.and(unlocked)
    }

    /// Drops the lock on `key` without a word to the server (its address
    /// is gone): the connection closes.
    pub fn forget(&self, key: &InstanceKey) {
        self.map().remove(key);
    }

    /// Checks every held lock: kills the clients waiting on it, so they
    /// get an error; returns the instances whose lock was lost with its
    /// connection, to be fenced again.
    pub async fn check(&self, limit: Duration) -> Vec<InstanceKey> {
        let taken: Vec<(InstanceKey, Held)> =
            std::mem::take(&mut *self.map()).into_iter().collect();
        let mut lost = Vec::new();
        for (key, mut held) in taken {
            let mut s = Session {
                conn: &mut held.conn,
                key: &key,
                dialect: &held.dialect,
                limit,
            };
            match s.kill_clients(&[], true).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(instance = %key, killed = n, "clients waiting on the write lock of a fenced former primary disconnected");
                    }
                    let mut map = self.map();
                    // A lock taken again meanwhile replaces this one.
                    if let std::collections::btree_map::Entry::Vacant(v) = map.entry(key) {
                        v.insert(held);
                    }
                }
                Err(e) => {
                    tracing::warn!(instance = %key, error = %e, "the write lock on a fenced former primary was lost: fencing it again");
                    lost.push(key);
                }
            }
        }
        lost
    }
}
