//! A fenced former primary takes no write from any account. On MariaDB
//! `read_only` does not stop root (nor any account with `READ ONLY ADMIN`),
//! so the fence also holds a global read lock; these tests write as root
//! and as the application account side by side, through the former
//! primary's own address, as clients using a pod's name do.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use orca::engine::executor::{OperationMeta, Outcome};
use orca::plan::{Step, TakeoverOptions, graceful_takeover};
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};
use orca_sandbox::{LocalCluster, Shape};
use support::writer::{Writer, assert_acked, ids_on};
use support::*;

async fn rows_on(key: &InstanceKey) -> usize {
    ids_on(key, &admin_credentials()).await.len()
}

/// Asynchronous replication, the primary hangs, orca fails over, the old
/// primary resumes writable (nothing could fence it while it hung) and
/// takes writes until orca sees it: then neither writer gets another
/// acknowledgement from it, and its table stops growing. The lock is
/// taken again after orca's connection holding it is killed.
#[tokio::test(flavor = "multi_thread")]
async fn root_and_application_writers_are_both_stopped_on_a_fenced_former_primary() {
    let c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .expect("start a primary with two replicas");
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    let root = Writer::persistent(keys[0].clone(), admin_credentials()).await;
    let app = Writer::persistent(keys[0].clone(), app_credentials()).await;
    root.wait_acked(20).await;
    app.wait_acked(20).await;
    c.instances[0].pause().unwrap();
    let record = rounds_until(&mut e, Duration::from_secs(40), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let new = record.successor.clone().unwrap();
    assert_ne!(new, keys[0]);
    c.instances[0].resume().unwrap();
    rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the former primary fenced",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    let fenced_at = Instant::now();
    let rows = rows_on(&keys[0]).await;
    // Rounds go on; the writers keep trying, reconnecting after each error.
    rounds_for(&mut e, Duration::from_secs(4)).await;
    assert!(
        root.acked_after(fenced_at).is_empty(),
        "root got {} writes acknowledged by the fenced former primary",
        root.acked_after(fenced_at).len()
    );
    assert!(
        app.acked_after(fenced_at).is_empty(),
        "the application got writes acknowledged by the fenced former primary"
    );
    assert_eq!(
        rows_on(&keys[0]).await,
        rows,
        "the fenced server took writes"
    );
    assert!(e.executor.write_locks.holds(&keys[0]));

    // Someone kills orca's connection that holds the lock: the next round
    // fences it again.
    let id = e.executor.write_locks.connection_id(&keys[0]).unwrap();
    let mut conn = orca::mysql::connect(&keys[0], &admin_credentials(), Default::default())
        .await
        .unwrap();
    conn.query_drop(format!("KILL CONNECTION {id}"))
        .await
        .unwrap();
    drop(conn.disconnect().await);
    rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the former primary fenced again",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    let refenced_at = Instant::now();
    assert_ne!(e.executor.write_locks.connection_id(&keys[0]), Some(id));
    let rows = rows_on(&keys[0]).await;
    rounds_for(&mut e, Duration::from_secs(3)).await;
    assert!(root.acked_after(refenced_at).is_empty());
    assert!(app.acked_after(refenced_at).is_empty());
    assert_eq!(
        rows_on(&keys[0]).await,
        rows,
        "the fenced server took writes"
    );
    root.finish().await;
    app.finish().await;
}

/// A graceful takeover with a root writer and an application writer on the
/// old primary: every write either acknowledged before the takeover
/// ended is on the new primary (none taken by the old one while it was
/// fenced and not yet a replica), the old primary replicates from the new
/// one, and its write lock is gone.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_takeover_loses_no_root_write() {
    let c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .expect("start a primary with two replicas");
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    let root = Writer::persistent(keys[0].clone(), admin_credentials()).await;
    let app = Writer::start(&c.instances[0]).await;
    root.wait_acked(40).await;
    app.wait_acked(40).await;
    e.round().await;
    let plan = graceful_takeover(
        e.topology(),
        &keys[0],
        Some(&keys[1]),
        &TakeoverOptions::default(),
    )
    .unwrap();
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::LockWrites { on } if on == &keys[0])),
        "{plan}"
    );
    let meta = OperationMeta {
        id: "takeover".into(),
        cluster: "test".into(),
        trigger: "GracefulTakeover".into(),
    };
    let record = e.executor.execute(&plan, &meta).await;
    let ended = Instant::now();
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    // Writes after the end may land on the old primary, now a replica:
    // root can write on any replica, which is why applications use their
    // own account. Only those before count.
    let late = root.acked_after(ended);
    let root_acked: Vec<u64> = root
        .finish()
        .await
        .into_iter()
        .filter(|id| !late.contains(id))
        .collect();
    let app_acked = app.finish().await;
    assert_acked(&keys[1], &admin_credentials(), &root_acked).await;
    assert_acked(&keys[1], &admin_credentials(), &app_acked).await;
    assert!(!e.executor.write_locks.holds(&keys[0]));
    wait_replicating_from(&keys[0], &keys[1]).await;
    let s = snapshot(&keys[0]).await;
    assert!(s.is_read_only(), "{s:#?}");
}
