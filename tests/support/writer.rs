//! The writer that records acknowledged writes, and the check that every
//! one of them survived.
//!
//! Writers connect as the application account, never as root: on MariaDB
//! read_only does not stop root (nor any account with SUPER or READ_ONLY
//! ADMIN), so a write as root could land on a fenced server and prove
//! nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use orca::mysql::Credentials;
use orca::mysql::conn::Timeouts;
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};

/// The table writers fill, one row per acknowledged write.
const TABLE: &str = "app.w";

/// How many connections a writer keeps open.
const POOL: usize = 4;

/// Writes rows into `app.w` through one address from a pool of long-lived
/// connections, one autocommit INSERT at a time on each, and records every
/// id whose INSERT the server acknowledged, with when. A plain writer's
/// connections each stop at their first error; a persistent one's
/// reconnect and go on, as an application's pool does.
pub struct Writer {
    acked: Arc<Mutex<Vec<(u64, Instant)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<String>>,
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
        Writer::spawn(primary.key(), app_credentials(), false).await
    }

    /// Writes through `key` (a Service's endpoint, say) as `creds`, which
    /// also create the table.
    pub async fn start_as(key: InstanceKey, creds: Credentials) -> Writer {
        create_table(&key, &creds).await;
        Writer::spawn(key, creds, false).await
    }

    /// Writes through `key` as `creds` and keeps going: after an error a
    /// connection reconnects (every 100 ms) and writes again, so every
    /// write the server at `key` accepts, at any time, is recorded. The
    /// table is created with the admin account.
    pub async fn persistent(key: InstanceKey, creds: Credentials) -> Writer {
        create_table(&key, &admin_credentials()).await;
        Writer::spawn(key, creds, true).await
    }

    /// [`Writer::persistent`] on a server where the table is there
    /// already (created through the primary, replicated): a replica, say,
    /// whose writes read_only refuses until it is promoted.
    pub async fn persistent_on(key: InstanceKey, creds: Credentials) -> Writer {
        Writer::spawn(key, creds, true).await
    }

    async fn spawn(key: InstanceKey, creds: Credentials, persistent: bool) -> Writer {
        // Continue after whatever an earlier writer left, far enough that
        // two writers never collide. A persistent writer tries again for a
        // while (a server being fenced kills its connections).
        let tries = if persistent { 20 } else { 1 };
        let mut last: Option<u64> = None;
        for attempt in 1..=tries {
            let read = async {
                let mut conn = orca::mysql::connect(&key, &creds, Timeouts::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let r: Result<Option<u64>, String> = conn
                    .query_first(format!("SELECT COALESCE(MAX(id), 0) FROM {TABLE}"))
                    .await
                    .map_err(|e| e.to_string());
                let _ = conn.disconnect().await;
                r
            };
            match read.await {
                Ok(v) => {
                    last = Some(v.unwrap_or(0));
                    break;
                }
                Err(e) if attempt == tries => panic!("the last id on {key}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let last = last.unwrap_or(0);
        let next = Arc::new(AtomicU64::new(
            last + 1 + NEXT_BLOCK.fetch_add(1_000_000, Ordering::SeqCst),
        ));
        let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Default::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = (0..POOL)
            .map(|_| {
                let (key, creds, next, record) =
                    (key.clone(), creds.clone(), next.clone(), acked.clone());
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut conn: Option<mysql_async::Conn> = None;
                    loop {
                        if *stopped.borrow() {
                            return "stopped".into();
                        }
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => {
                                let t = Timeouts {
                                    connect: Duration::from_secs(2),
                                    ..Timeouts::default()
                                };
                                match orca::mysql::connect(&key, &creds, t).await {
                                    Ok(c) => conn.insert(c),
                                    Err(_) if persistent => {
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                        continue;
                                    }
                                    Err(e) => return e.to_string(),
                                }
                            }
                        };
                        let id = next.fetch_add(1, Ordering::SeqCst);
                        let insert =
                            c.query_drop(format!("INSERT INTO {TABLE} (id) VALUES ({id})"));
                        let failed = tokio::select! {
                            r = tokio::time::timeout(Duration::from_secs(30), insert) => match r {
                                Ok(Ok(())) => {
                                    record.lock().unwrap().push((id, Instant::now()));
                                    None
                                }
                                Ok(Err(e)) => Some(e.to_string()),
                                Err(_) => Some("write timed out".to_string()),
                            },
                            _ = stopped.changed() => return "stopped".into(),
                        };
                        match failed {
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                            Some(_) if persistent => {
                                conn = None;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Some(why) => return why,
                        }
                    }
                })
            })
            .collect();
        Writer { acked, stop, tasks }
    }

    /// How many writes were acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// The ids acknowledged after `t`.
    pub fn acked_after(&self, t: Instant) -> Vec<u64> {
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .filter(|(_, at)| *at > t)
            .map(|(id, _)| *id)
            .collect()
    }

    /// When the first write after `t` was acknowledged, if one was.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| *at)
            .filter(|at| *at > t)
            .min()
    }

    /// The acknowledged ids so far, the writer going on.
    pub fn acked(&self) -> Vec<u64> {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    /// When the first write was acknowledged, if one was.
    pub fn first_ack(&self) -> Option<Instant> {
        self.acked.lock().unwrap().iter().map(|(_, at)| *at).min()
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
        let mut why = Vec::new();
        for t in self.tasks {
            why.push(t.await.unwrap_or_else(|e| e.to_string()));
        }
        let acked: Vec<u64> = self
            .acked
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect();
        eprintln!(
            "writer: {} writes acknowledged; its connections ended: {}",
            acked.len(),
            why.join("; ")
        );
        acked
    }
}

/// Each writer of a test process takes its ids from its own block.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

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
