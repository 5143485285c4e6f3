//! Semi-sync and fencing under load, on real mariadbd topologies: the
//! candidate that received an acknowledged write others lack is promoted
//! after applying it; a fence or a graceful takeover gets read_only through
//! a client holding locks, and leaves no statement running on the server;
//! a former primary writable beside the primary is fenced at once.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::engine::executor::{OperationMeta, Outcome};
use orca::plan::PlanKind;
use orca::plan::recovery::{RecoveryOptions, force_failover};
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{LocalCluster, Shape};
use support::writer::{Writer, assert_acked, assert_acked_replicated};
use support::*;

fn meta(kind: PlanKind) -> OperationMeta {
    OperationMeta {
        id: format!("test-{}", kind.name()),
        cluster: "test".into(),
        trigger: kind.name().into(),
    }
}

/// `SET GLOBAL ... read_only` statements still running on `key`.
async fn read_only_statements(key: &InstanceKey) -> u64 {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap();
    let n: Option<u64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SET GLOBAL%read_only%'",
        )
        .await
        .unwrap();
    n.unwrap_or(0)
}

/// A root session on `key` holding `LOCK TABLES app.w WRITE`, kept open.
async fn lock_holder(key: &InstanceKey) -> mysql_async::Conn {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap();
    conn.query_drop("LOCK TABLES app.w WRITE").await.unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replica_that_received_most_is_promoted_after_applying_it() {
    let mut c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(20).await;
    // Replica 1 receives but no longer applies; then replica 2 no longer
    // receives: what follows is acknowledged by replica 1 alone.
    c.instances[1].exec("STOP SLAVE SQL_THREAD").await.unwrap();
    let n = w.count();
    w.wait_acked(n + 20).await;
    c.instances[2].exec("STOP SLAVE IO_THREAD").await.unwrap();
    let n = w.count();
    w.wait_acked(n + 20).await;
    c.instances[0].kill().unwrap();
    // Replica 2 tries its source again, and finds it dead.
    c.instances[2].exec("START SLAVE IO_THREAD").await.unwrap();
    let record = rounds_until(&mut e, Duration::from_secs(40), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.successor.as_ref(), Some(&keys[1]), "{record:#?}");
    let acked = w.finish().await;
    let s = snapshot(&keys[1]).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:?}");
    assert_acked(&keys[1], &admin_credentials(), &acked).await;
    wait_replicating_from(&keys[2], &keys[1]).await;
    assert_acked_replicated(&keys[2], &admin_credentials(), &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_takeover_gets_read_only_through_a_held_lock() {
    let c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(20).await;
    let acked = w.finish().await;
    let _held = lock_holder(&keys[0]).await;
    e.round().await;
    let plan = graceful_takeover(
        e.topology(),
        &keys[0],
        Some(&keys[1]),
        &TakeoverOptions::default(),
    )
    .unwrap();
    let record = e
        .executor
        .execute(&plan, &meta(PlanKind::GracefulTakeover))
        .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert!(snapshot(&keys[0]).await.is_read_only());
    assert!(!snapshot(&keys[1]).await.is_read_only());
    assert_eq!(read_only_statements(&keys[0]).await, 0);
    assert_acked(&keys[1], &admin_credentials(), &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fence_gets_read_only_through_a_held_lock() {
    let c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(20).await;
    let acked = w.finish().await;
    let _held = lock_holder(&keys[0]).await;
    e.round().await;
    let plan = force_failover(e.topology(), &keys[0], &RecoveryOptions::default()).unwrap();
    let record = e
        .executor
        .execute(&plan, &meta(PlanKind::ForceFailover))
        .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert!(snapshot(&keys[0]).await.is_read_only());
    assert_eq!(read_only_statements(&keys[0]).await, 0);
    let new = record.successor.clone().unwrap();
    assert_acked(&new, &admin_credentials(), &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writable_former_primary_beside_the_primary_is_fenced() {
    let c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    // Replica 2 leaves replication and takes writes, as a resumed former
    // primary would beside the promoted one.
    c.instances[2]
        .exec("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF")
        .await
        .unwrap();
    let r = rounds_until(&mut e, Duration::from_secs(20), "a fence", |r| {
        r.fenced.contains(&keys[2]).then(|| r.clone())
    })
    .await;
    assert!(
        r.findings
            .iter()
            .any(|f| f.code.name() == "MultipleWritablePrimaries" && f.instance == keys[2]),
        "{:?}",
        r.findings
    );
    assert!(snapshot(&keys[2]).await.is_read_only());
    assert!(!snapshot(&keys[0]).await.is_read_only());
}

/// A semi-sync primary whose commits wait for an acknowledgement no
/// replica sends (its only replica's IO thread stopped) still answers
/// orca's probe: writable, with its binlog position. (`SHOW MASTER
/// STATUS` blocks there, behind the commits waiting with `AFTER_SYNC`; a
/// probe that used it took such a primary for one that stopped
/// answering, and a failover away from it could follow.)
#[tokio::test(flavor = "multi_thread")]
async fn a_semi_sync_primary_waiting_for_an_acknowledgement_still_answers_the_probe() {
    let c = semi_sync_cluster(1).await;
    let p = c.instances[0].key();
    let r = c.instances[1].key();
    wait_replicating_from(&r, &p).await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS semi",
        "CREATE TABLE IF NOT EXISTS semi.wait (id INT PRIMARY KEY)",
    ] {
        c.instances[0].exec(sql).await.expect("a table");
    }
    c.instances[1]
        .exec("STOP SLAVE IO_THREAD")
        .await
        .expect("no acknowledgements");
    // Commits that wait, from several connections (a group commit).
    let mut waiting = Vec::new();
    for id in 0..4 {
        let key = p.clone();
        waiting.push(tokio::spawn(async move {
            let mut conn = orca::mysql::connect(&key, &admin_credentials(), Default::default())
                .await
                .expect("connect");
            let _ = tokio::time::timeout(
                Duration::from_secs(20),
                conn.query_drop(format!("INSERT INTO semi.wait VALUES ({id})")),
            )
            .await;
        }));
    }
    eventually(Duration::from_secs(10), "commits waiting", || async {
        let mut conn = orca::mysql::connect(&p, &admin_credentials(), Default::default())
            .await
            .ok()?;
        let n: Option<u64> = conn
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'INSERT INTO semi.wait%'",
            )
            .await
            .ok()?;
        (n? >= 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = orca::mysql::probe::probe(&p, &admin_credentials(), Default::default())
        .await
        .expect("the waiting primary answers the probe");
    assert!(!s.is_read_only());
    assert!(s.binlog.is_some(), "{s:?}");
    // The acknowledgements flow again: the commits end.
    c.instances[1]
        .exec("START SLAVE IO_THREAD")
        .await
        .expect("acknowledgements");
    for w in waiting {
        let _ = w.await;
    }
}
