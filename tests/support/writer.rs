//! The writer that records acknowledged writes, and the check that every
//! one of them survived.
//!
//! Writers connect as the application account, never as root: on MariaDB
//! read_only does not stop root (nor any account with SUPER or READ_ONLY
//! ADMIN), so a write as root could land on a fenced server and prove
//! nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::mysql::Credentials;
use orca::mysql::conn::Timeouts;
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};

/// The table writers fill, one row per acknowledged write.
const TABLE: &str = "app.w";

/// Writes rows into `app.w` through one address, one autocommit INSERT at
/// a time, and records every id whose INSERT the server acknowledged;
/// stops at the first error or when told.
pub struct Writer {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<String>,
}

async fn connect(key: &InstanceKey, creds: &Credentials) -> mysql_async::Conn {
    orca::mysql::connect(key, creds, Timeouts::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key} as {}: {e}", creds.user))
}

/// Creates `app.w` on `key` if needed.
async fn create_table(key: &InstanceKey, creds: &Credentials) {
    let mut conn = connect(key, creds).await;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .expect("create database app");
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY)"
    ))
    .await
    .expect("create table app.w");
    let _ = conn.disconnect().await;
}

impl Writer {
    /// Writes to a local server as the application account (the table is
    /// created with the admin account).
    pub async fn start(primary: &orca_sandbox::Mysqld) -> Writer {
        create_table(&primary.key(), &admin_credentials()).await;
        Writer::spawn(primary.key(), app_credentials()).await
    }

    /// Writes through `key` (a Service's endpoint, say) as `creds`, which
    /// also create the table.
    pub async fn start_as(key: InstanceKey, creds: Credentials) -> Writer {
        create_table(&key, &creds).await;
        Writer::spawn(key, creds).await
    }

    async fn spawn(key: InstanceKey, creds: Credentials) -> Writer {
        let mut conn = connect(&key, &creds).await;
        // Continue after whatever an earlier writer left.
        let mut id: u64 = conn
            .query_first(format!("SELECT COALESCE(MAX(id), 0) FROM {TABLE}"))
            .await
            .expect("the last id")
            .unwrap_or(0);
        let acked: Arc<Mutex<Vec<u64>>> = Default::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let record = acked.clone();
        let task = tokio::spawn(async move {
            loop {
                if *stopped.borrow() {
                    return "stopped".into();
                }
                id += 1;
                let insert = conn.query_drop(format!("INSERT INTO {TABLE} (id) VALUES ({id})"));
                tokio::select! {
                    r = tokio::time::timeout(Duration::from_secs(30), insert) => match r {
                        Ok(Ok(())) => record.lock().unwrap().push(id),
                        Ok(Err(e)) => return e.to_string(),
                        Err(_) => return "write timed out".into(),
                    },
                    _ = stopped.changed() => return "stopped".into(),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Writer { acked, stop, task }
    }

    /// How many writes were acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits (at most 20 s) until `n` writes are acknowledged.
    pub async fn wait_acked(&self, n: usize) {
        super::eventually(Duration::from_secs(20), "writes acknowledged", || async {
            (self.count() >= n).then_some(())
        })
        .await;
    }

    /// Stops writing; returns the acknowledged ids.
    pub async fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(true);
        let why = self.task.await.unwrap_or_else(|e| e.to_string());
        let acked = self.acked.lock().unwrap().clone();
        eprintln!(
            "writer: {} writes acknowledged; it ended: {why}",
            acked.len()
        );
        acked
    }
}

/// Ids present in `app.w` on an instance, read as `creds`; a table not
/// there yet (not replicated so far) reads as empty.
pub async fn ids_on(key: &InstanceKey, creds: &Credentials) -> BTreeSet<u64> {
    let mut conn = connect(key, creds).await;
    let ids: Vec<u64> = conn
        .query(format!("SELECT id FROM {TABLE}"))
        .await
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    ids.into_iter().collect()
}

/// Asserts that something was acknowledged and that every acknowledged id
/// is on `key` (read as `creds`).
pub async fn assert_acked(key: &InstanceKey, creds: &Credentials, acked: &[u64]) {
    assert!(
        !acked.is_empty(),
        "the writer wrote nothing: the test proves nothing"
    );
    let have = ids_on(key, creds).await;
    let missing: Vec<&u64> = acked.iter().filter(|id| !have.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing on {key}: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(20)]
    );
}

/// For a replica, which may still be catching up: waits (at most 30 s)
/// until every acknowledged id has arrived on `key`, then asserts it as
/// [`assert_acked`] does.
pub async fn assert_acked_replicated(key: &InstanceKey, creds: &Credentials, acked: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let have = ids_on(key, creds).await;
        if acked.iter().all(|id| have.contains(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_acked(key, creds, acked).await;
}
