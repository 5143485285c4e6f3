//! The prober keeps each instance's connection open from one probe to
//! the next (real `mariadbd` on loopback): the second probe goes over the
//! same connection in one round trip, a server that never had orca's
//! heartbeat answers the batch without it and keeps its connection, a
//! connection killed on the server is replaced within the probe, and a
//! restarted server is probed again over a new one.

use mysql_async::prelude::Queryable;
use orca::engine::prober::Inventory;
use orca::mysql::conn::Timeouts;
use orca::mysql::heartbeat;
use orca::mysql::probe::{KeptConn, probe_kept};
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{Mysqld, MysqldOptions};

fn timeouts() -> Timeouts {
    Timeouts {
        connect: std::time::Duration::from_secs(2),
        query: std::time::Duration::from_secs(5),
    }
}

fn id(k: &Option<KeptConn>) -> u32 {
    k.as_ref().expect("a connection kept").conn.id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_connection_is_kept_and_replaced_when_it_fails() {
    let mut server = Mysqld::start(MysqldOptions::new(31)).await.unwrap();
    let key = server.key();
    let admin = admin_credentials();

    // No heartbeat was ever written here: its statement, last of the
    // batch, fails, and the probe still answers and keeps the connection.
    let (first, kept) = probe_kept(&key, &admin, timeouts(), None).await;
    let first = first.unwrap();
    assert_eq!(first.server_id, 31);
    assert_eq!(first.heartbeat_age_ms, None);
    let conn_id = id(&kept);
    let (second, kept) = probe_kept(&key, &admin, timeouts(), kept).await;
    assert_eq!(second.unwrap().server_id, 31);
    assert_eq!(
        id(&kept),
        conn_id,
        "the second probe used the same connection"
    );

    // With the heartbeat there (written over another connection), its
    // age comes over the same connection.
    let mut root = orca::mysql::connect(&key, &admin, timeouts())
        .await
        .unwrap();
    let limit = timeouts().query;
    heartbeat::ensure_table(&mut root, &key, limit)
        .await
        .unwrap();
    heartbeat::write(&mut root, &key, limit).await.unwrap();
    let (third, kept) = probe_kept(&key, &admin, timeouts(), kept).await;
    assert!(third.unwrap().heartbeat_age_ms.is_some());
    assert_eq!(id(&kept), conn_id);

    // Killed on the server (as a fence kills every client): the probe
    // answers over a new connection.
    root.query_drop(format!("KILL CONNECTION {conn_id}"))
        .await
        .unwrap();
    let (fourth, kept) = probe_kept(&key, &admin, timeouts(), kept).await;
    assert_eq!(fourth.unwrap().server_id, 31);
    let new_id = id(&kept);
    assert_ne!(new_id, conn_id);
    let _ = root.disconnect().await;

    // A restarted server: the kept connection is gone with it, the probe
    // connects again.
    server.restart().await.unwrap();
    let (fifth, kept) = probe_kept(&key, &admin, timeouts(), kept).await;
    assert_eq!(fifth.unwrap().server_id, 31);
    assert!(kept.is_some());

    // Down: the probe fails and keeps nothing.
    server.kill().unwrap();
    let (down, kept) = probe_kept(&key, &admin, timeouts(), kept).await;
    assert!(down.is_err());
    assert!(kept.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_keeps_one_connection_per_instance_that_answers() {
    let mut server = Mysqld::start(MysqldOptions::new(32)).await.unwrap();
    let key = server.key();
    let admin = admin_credentials();
    let mut inv = Inventory::new([key.clone()]);
    for _ in 0..3 {
        let round = inv.probe_round(&admin, timeouts()).await;
        assert!(round.topology.get(&key).unwrap().snapshot.is_some());
        assert_eq!(inv.open_conns(), 1);
    }
    server.kill().unwrap();
    let round = inv.probe_round(&admin, timeouts()).await;
    assert_eq!(round.newly_failed, vec![key.clone()]);
    assert_eq!(inv.open_conns(), 0);
    inv.remove(&key);
    assert!(inv.known.is_empty());
}
