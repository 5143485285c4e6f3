//! Graceful takeover under load, on real mariadbd topologies, semi-sync
//! and asynchronous: under 60 s transactions on the primary, the takeover
//! does not wait for them (their connections are killed before read_only)
//! and their uncommitted work is nowhere committed; towards a throttled
//! target (its SQL thread held behind a backup's global read lock), the
//! takeover is rolled back within a bound set by its catch-up timeout,
//! the primary is writable again and its writers go on, and once the
//! throttle is gone a second takeover to the same target succeeds.
//!
//! Writers are persistent pools of application connections (never root):
//! every write acknowledged to them must be on the final primary, and no
//! former primary acknowledges a write after the new primary's first.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use orca::engine::ClusterEngine;
use orca::engine::executor::{OperationMeta, OperationRecord, Outcome, StepOutcome};
use orca::mysql::conn::Timeouts;
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::plan::{PlanKind, Step};
use orca::topology::InstanceKey;
use orca_sandbox::LocalCluster;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};
use support::writer::{Writer, assert_acked, assert_acked_replicated, ids_on};
use support::*;

/// The takeover's bound on waiting for its target to catch up.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Room for the takeover's other steps (each statement is limited to 3 s,
/// and they take milliseconds when nothing blocks them).
const MARGIN: Duration = Duration::from_secs(10);

/// How long the primary's long transactions and statements would last.
const LONG: Duration = Duration::from_secs(60);

fn options() -> TakeoverOptions {
    TakeoverOptions {
        catch_up_timeout: CATCH_UP,
        ..TakeoverOptions::default()
    }
}

/// A graceful takeover of `primary` by `target`, planned from a fresh
/// round, and how long it took.
async fn takeover(
    e: &mut ClusterEngine,
    primary: &InstanceKey,
    target: &InstanceKey,
) -> (OperationRecord, Duration) {
    e.round().await;
    let plan = graceful_takeover(e.topology(), primary, Some(target), &options())
        .unwrap_or_else(|err| panic!("no takeover plan: {err}"));
    let meta = OperationMeta {
        id: format!("takeover-{}", target),
        cluster: "test".into(),
        trigger: PlanKind::GracefulTakeover.name().into(),
    };
    let started = Instant::now();
    let record = e.executor.execute(&plan, &meta).await;
    let took = started.elapsed();
    eprintln!(
        "takeover of {primary} by {target}: {:?} in {} ms; steps: {}; rollback: {}",
        record.outcome,
        took.as_millis(),
        durations(&record.steps),
        durations(&record.rollback)
    );
    (record, took)
}

fn durations(steps: &[orca::engine::executor::StepRecord]) -> String {
    steps
        .iter()
        .map(|s| format!("{} ({} ms)", s.description, s.duration_ms))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The correctness bound of a takeover: its configured wait plus room for
/// its other statements. A takeover that waited for a client's 60 s
/// transaction, or for a throttled target beyond its catch-up timeout,
/// breaks it.
fn assert_bounded(took: Duration, record: &OperationRecord) {
    assert!(
        took < CATCH_UP + MARGIN,
        "the takeover took {took:?}, more than its catch-up timeout {CATCH_UP:?} \
         plus {MARGIN:?}: {record:#?}"
    );
}

/// Waits until `w` has a write acknowledged after `t`; returns when.
async fn acked_after(w: &Writer, t: Instant, what: &str) -> Instant {
    eventually(Duration::from_secs(20), what, || async {
        (!w.acked_after(t).is_empty()).then(Instant::now)
    })
    .await
}

/// A client of the primary, as the application account, whose work would
/// last [`LONG`] before it commits.
struct LongClient {
    what: &'static str,
    /// The row it inserts.
    id: u64,
    /// Tells an idle transaction to commit now.
    commit_now: Option<tokio::sync::oneshot::Sender<()>>,
    /// Ok when its commit was acknowledged; the error otherwise.
    task: tokio::task::JoinHandle<Result<(), String>>,
}

#[derive(Clone, Copy)]
enum Work {
    /// `BEGIN; INSERT` (a row lock held), then a 60 s statement in the
    /// transaction, then `COMMIT`.
    StatementInTransaction,
    /// One autocommit `INSERT ... SELECT SLEEP(60)`: a write statement
    /// running for 60 s, which read_only must wait for.
    InsertSelectSleep,
    /// `BEGIN; INSERT`, then nothing for 60 s (or until told), then
    /// `COMMIT`.
    IdleInTransaction,
}

impl LongClient {
    async fn start(key: &InstanceKey, kind: Work, id: u64) -> LongClient {
        let mut conn = orca::mysql::connect(key, &app_credentials(), Timeouts::default())
            .await
            .unwrap_or_else(|e| panic!("connect to {key} as the application: {e}"));
        let secs = LONG.as_secs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (what, commit_now) = match kind {
            Work::StatementInTransaction => ("a 60 s statement in a transaction", None),
            Work::InsertSelectSleep => ("a 60 s INSERT ... SELECT SLEEP", None),
            Work::IdleInTransaction => ("a transaction idle for 60 s", Some(tx)),
        };
        if !matches!(kind, Work::InsertSelectSleep) {
            conn.query_drop("BEGIN").await.expect("BEGIN");
            conn.query_drop(format!("INSERT INTO app.w (id) VALUES ({id})"))
                .await
                .expect("the long transaction's INSERT");
        }
        let task = tokio::spawn(async move {
            let work = async {
                match kind {
                    Work::StatementInTransaction => {
                        conn.query_drop(format!("SELECT SLEEP({secs})")).await?;
                        conn.query_drop("COMMIT").await
                    }
                    Work::InsertSelectSleep => {
                        conn.query_drop(format!(
                            "INSERT INTO app.w (id) SELECT {id} FROM (SELECT SLEEP({secs}) AS s) AS t"
                        ))
                        .await
                    }
                    Work::IdleInTransaction => {
                        tokio::select! {
                            _ = rx => {}
                            _ = tokio::time::sleep(LONG) => {}
                        }
                        conn.query_drop("COMMIT").await
                    }
                }
            };
            work.await.map_err(|e| e.to_string())
        });
        LongClient {
            what,
            id,
            commit_now,
            task,
        }
    }

    /// Its outcome: whether its commit was acknowledged. It must have one
    /// within `limit`: the takeover ended its connection, it was not left
    /// to run for 60 s.
    async fn outcome(mut self, limit: Duration) -> (&'static str, u64, Result<(), String>) {
        if let Some(tx) = self.commit_now.take() {
            let _ = tx.send(());
        }
        let what = self.what;
        match tokio::time::timeout(limit, self.task).await {
            Ok(r) => (what, self.id, r.unwrap_or_else(|e| Err(e.to_string()))),
            Err(_) => panic!("{what} still running {limit:?} after the takeover"),
        }
    }
}

/// The statements of the long clients running on `key`.
async fn long_statements(key: &InstanceKey) -> u64 {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap();
    let n: Option<u64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = 'app' AND INFO LIKE '%SLEEP({})%'",
            LONG.as_secs()
        ))
        .await
        .unwrap();
    let _ = conn.disconnect().await;
    n.unwrap_or(0)
}

/// After a takeover of `old` by `new`: `new` is a writable primary taking
/// writes, `old` no longer acknowledges any, every write acknowledged to
/// either is on `new`, and `old` and `sibling` replicate from it with
/// every one of them. Returns every acknowledged write.
async fn handed_over(
    old: &InstanceKey,
    new: &InstanceKey,
    sibling: &InstanceKey,
    old_writer: Writer,
) -> Vec<u64> {
    let s = snapshot(new).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    assert!(snapshot(old).await.is_read_only());
    let w = Writer::persistent(new.clone(), app_credentials()).await;
    w.wait_acked(20).await;
    let first = w.first_ack().expect("a write on the new primary");
    let late = old_writer.acked_after(first);
    assert!(
        late.is_empty(),
        "{old} acknowledged {} writes after {new} acknowledged its first: {:?}",
        late.len(),
        &late[..late.len().min(20)]
    );
    let mut acked = old_writer.finish().await;
    acked.extend(w.finish().await);
    assert_acked(new, &admin_credentials(), &acked).await;
    wait_replicating_from(old, new).await;
    wait_replicating_from(sibling, new).await;
    assert_acked_replicated(old, &admin_credentials(), &acked).await;
    assert_acked_replicated(sibling, &admin_credentials(), &acked).await;
    acked
}

/// Scenario 1: a takeover asked for while the primary runs three 60 s
/// transactions of the application and its writers write.
async fn takeover_under_a_60s_transaction(c: LocalCluster) {
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let (primary, target, sibling) = (&keys[0], &keys[1], &keys[2]);
    let mut e = engine(&c);
    let w = Writer::persistent(primary.clone(), app_credentials()).await;
    w.wait_acked(20).await;
    // Ids far from the writers' blocks.
    let base = 900_000_000_000;
    let clients = vec![
        LongClient::start(primary, Work::StatementInTransaction, base + 1).await,
        LongClient::start(primary, Work::InsertSelectSleep, base + 2).await,
        LongClient::start(primary, Work::IdleInTransaction, base + 3).await,
    ];
    // Both 60 s statements run when the takeover is asked for.
    eventually(Duration::from_secs(10), "the 60 s statements", || async {
        (long_statements(primary).await == 2).then_some(())
    })
    .await;
    // The premise: the 60 s INSERT holds what read_only waits for, so a
    // takeover that left it running would wait for it.
    let mut admin = orca::mysql::connect(primary, &admin_credentials(), Timeouts::default())
        .await
        .unwrap();
    admin
        .query_drop("SET SESSION lock_wait_timeout = 1")
        .await
        .unwrap();
    let blocked = admin.query_drop("SET GLOBAL read_only = ON").await;
    assert!(
        matches!(&blocked, Err(mysql_async::Error::Server(s)) if s.code == 1205),
        "read_only did not wait for the 60 s INSERT: {blocked:?}"
    );
    let _ = admin.disconnect().await;
    let n = w.count();
    w.wait_acked(n + 20).await;

    let (record, took) = takeover(&mut e, primary, target).await;
    let done = Instant::now();
    // It did not wait for the 60 s transactions.
    assert_bounded(took, &record);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.push(client.outcome(Duration::from_secs(5)).await);
    }
    eprintln!("long clients: {outcomes:?}");
    let new = match &record.outcome {
        Outcome::Succeeded => target.clone(),
        Outcome::RolledBack(_) => {
            // The primary is writable again and its writers go on.
            let s = snapshot(primary).await;
            assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
            acked_after(&w, done, "writes acknowledged after the rollback").await;
            primary.clone()
        }
        other => panic!("the takeover neither completed nor rolled back: {other:?}"),
    };
    if new == *primary {
        let acked = w.finish().await;
        assert_acked(primary, &admin_credentials(), &acked).await;
    } else {
        handed_over(primary, &new, sibling, w).await;
    }
    // A long transaction's row is committed exactly when its client was
    // told it was: on the final primary and on the former one.
    for k in [&new, primary] {
        let have = ids_on(k, &admin_credentials()).await;
        for (what, id, committed) in &outcomes {
            assert_eq!(
                have.contains(id),
                committed.is_ok(),
                "{what} (row {id}) on {k}: commit {committed:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn semi_sync_takeover_under_a_60s_transaction() {
    takeover_under_a_60s_transaction(semi_sync_cluster(2).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn async_takeover_under_a_60s_transaction() {
    takeover_under_a_60s_transaction(primary_and_two_replicas().await.0).await;
}

/// Scenario 2: the target's SQL thread is held behind a backup's global
/// read lock (`FLUSH TABLES WITH READ LOCK` on the target) while the
/// primary takes writes: it receives them but cannot apply them within the
/// takeover's catch-up timeout.
async fn takeover_by_a_throttled_target(c: LocalCluster) {
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let (primary, target, sibling) = (&keys[0], &keys[1], &keys[2]);
    let mut e = engine(&c);
    let since = Instant::now();
    let w = Writer::persistent(primary.clone(), app_credentials()).await;
    w.wait_acked(20).await;
    let mut backup = orca::mysql::connect(target, &admin_credentials(), Timeouts::default())
        .await
        .unwrap();
    backup
        .query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .unwrap();
    let n = w.count();
    w.wait_acked(n + 20).await;

    let (record, took) = takeover(&mut e, primary, target).await;
    let done = Instant::now();
    // Rolled back because the target did not catch up, within the bound
    // its catch-up timeout sets.
    assert!(
        matches!(&record.outcome, Outcome::RolledBack(why) if why.contains("not executed within")),
        "{record:#?}"
    );
    let failed = record.steps.last().expect("steps");
    assert!(
        matches!(&failed.step, Step::WaitCaughtUp { on, .. } if on == target),
        "{record:#?}"
    );
    assert!(
        !record.steps.iter().any(|s| matches!(
            s.step,
            Step::StopReplica { .. } | Step::ResetReplicaAll { .. }
        )),
        "{record:#?}"
    );
    assert!(
        !record.rollback.is_empty()
            && record
                .rollback
                .iter()
                .all(|s| s.outcome == StepOutcome::Done),
        "{record:#?}"
    );
    assert_bounded(took, &record);
    // The primary is writable again and its writers go on.
    let s = snapshot(primary).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    let resumed = acked_after(&w, done, "writes acknowledged after the rollback").await;
    eprintln!(
        "writes acknowledged again {} ms after the takeover was asked for",
        (resumed - (done - took)).as_millis()
    );
    // The target is still a read-only replica of the primary, both threads
    // running, never writable.
    let s = snapshot(target).await;
    assert!(s.is_read_only(), "{s:#?}");
    assert!(
        s.replica
            .as_ref()
            .is_some_and(|r| &r.source == primary && r.is_replicating()),
        "{s:#?}"
    );

    // The throttle is removed: the target catches up with every write
    // acknowledged so far (all of them after `since`).
    backup.query_drop("UNLOCK TABLES").await.unwrap();
    let _ = backup.disconnect().await;
    assert_acked_replicated(target, &admin_credentials(), &w.acked_after(since)).await;
    wait_replicating_from(target, primary).await;

    // A second takeover to the same target succeeds.
    let (record, took) = takeover(&mut e, primary, target).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_bounded(took, &record);
    handed_over(primary, target, sibling, w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn semi_sync_takeover_by_a_throttled_target() {
    takeover_by_a_throttled_target(semi_sync_cluster(2).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn async_takeover_by_a_throttled_target() {
    takeover_by_a_throttled_target(primary_and_two_replicas().await.0).await;
}
