//! The instance operations on real mariadbd topologies, each planned
//! from a probed topology and executed: stop and start replication, read
//! only and writable (refused on a replica), the errant GTIDs of a
//! replica fixed.

mod support;

use orca::analysis::ClusterProblemCode;
use orca::engine::ClusterEngine;
use orca::engine::executor::{OperationMeta, OperationRecord};
use orca::mysql::conn::{Timeouts, connect, exec};
use orca::plan::{
    Plan, PlanError, fix_errant, set_read_only, set_writable, start_replication, stop_replication,
};
use orca::topology::instance::{GtidChannelMode, IoThreadState};
use orca::topology::{InstanceKey, Topology};
use orca_sandbox::mysqld::app_credentials;
use std::time::Duration;
use support::*;

type Op = fn(&Topology, &InstanceKey) -> Result<Plan, PlanError>;

/// `op` on `on`, planned from a fresh probe and executed; it must
/// succeed.
async fn run(e: &mut ClusterEngine, op: Op, on: &InstanceKey) -> OperationRecord {
    let plan = op(e.observe().await, on).unwrap_or_else(|err| panic!("no plan for {on}: {err}"));
    let meta = OperationMeta {
        id: format!("test-{}", plan.kind.name()),
        cluster: "test".into(),
        trigger: plan.kind.name().into(),
    };
    let record = e.executor.execute(&plan, &meta).await;
    assert!(record.outcome.succeeded(), "{plan}{record:#?}");
    assert_eq!(record.steps.len(), plan.steps.len(), "every step reported");
    record
}

/// Why `op` on `on` is refused, from a fresh probe.
async fn refused(e: &mut ClusterEngine, op: Op, on: &InstanceKey) -> String {
    match op(e.observe().await, on) {
        Ok(plan) => panic!("{on}: a plan where a refusal was expected:\n{plan}"),
        Err(err) => err.to_string(),
    }
}

/// A write as the application account (which read_only stops).
async fn app_write(key: &InstanceKey, sql: &str) -> Result<(), String> {
    let t = Timeouts::default();
    let mut conn = connect(key, &app_credentials(), t)
        .await
        .map_err(|e| e.to_string())?;
    let r = exec(&mut conn, key, Duration::from_secs(5), "writing", sql)
        .await
        .map_err(|e| e.to_string());
    let _ = conn.disconnect().await;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_stopped_and_started() {
    let (c, [p, r1, _r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);

    run(&mut e, stop_replication, &r1).await;
    let s = snapshot(&r1).await;
    let r = s.replica.as_ref().expect("still a replica");
    assert_eq!(r.io_running, IoThreadState::No);
    assert!(!r.sql_running);
    assert_eq!(r.source, p);
    assert!(
        refused(&mut e, stop_replication, &r1)
            .await
            .ends_with("is already stopped: nothing to do")
    );

    // What the primary writes meanwhile arrives once it is started.
    c.instances[0]
        .exec("CREATE DATABASE while_stopped")
        .await
        .unwrap();
    run(&mut e, start_replication, &r1).await;
    wait_replicating_from(&r1, &p).await;
    assert!(
        refused(&mut e, start_replication, &r1)
            .await
            .ends_with("nothing to do")
    );
    assert!(
        refused(&mut e, start_replication, &p)
            .await
            .contains("is not a replica")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_writable() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);
    c.instances[0].exec("CREATE DATABASE app").await.unwrap();
    app_write(&p, "CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .unwrap();

    // A replica is read only already; it is never made writable.
    assert_eq!(
        refused(&mut e, set_read_only, &r1).await,
        format!("{r1} is already read only: nothing to do")
    );
    assert!(
        refused(&mut e, set_writable, &r1)
            .await
            .starts_with(&format!("{r1} replicates from {p}"))
    );
    // While the primary is writable, nothing else is made writable, nor
    // the primary twice.
    assert_eq!(
        refused(&mut e, set_writable, &p).await,
        format!("{p} is already writable: nothing to do")
    );

    // The primary made read only: no more writes.
    let record = run(&mut e, set_read_only, &p).await;
    assert!(
        record
            .notes
            .iter()
            .any(|n| n.contains("the cluster takes no writes")),
        "{:?}",
        record.notes
    );
    assert!(snapshot(&p).await.is_read_only());
    let err = app_write(&p, "INSERT INTO app.t VALUES (1)")
        .await
        .unwrap_err();
    assert!(err.contains("read-only") || err.contains("1290"), "{err}");
    // Still no replica made writable.
    assert!(
        refused(&mut e, set_writable, &r2)
            .await
            .starts_with(&format!("{r2} replicates from {p}"))
    );

    // Writable again: the writes go on, and replicate.
    run(&mut e, set_writable, &p).await;
    assert!(!snapshot(&p).await.is_read_only());
    app_write(&p, "INSERT INTO app.t VALUES (2)").await.unwrap();
    wait_replicating_from(&r1, &p).await;
    assert!(snapshot(&r1).await.is_read_only());
}

#[tokio::test(flavor = "multi_thread")]
async fn errant_gtids_of_a_mariadb_replica_fixed() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);
    c.instances[0].exec("CREATE DATABASE app").await.unwrap();
    caught_up(&p, &r1).await;
    assert_eq!(
        refused(&mut e, fix_errant, &r1).await,
        format!("{r1} has no errant GTIDs (or none that can be told against {p}): nothing to fix")
    );

    // A write made directly on the replica, in its binary log: with
    // gtid_strict_mode, the source's transaction of the same sequence
    // number can no longer be logged there.
    c.instances[1]
        .exec("SET SESSION sql_log_bin = 1; CREATE TABLE app.errant (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let topo = e.observe().await;
    let errant = topo
        .get(&r1)
        .and_then(|n| n.errant.clone())
        .expect("r1 has errant GTIDs");
    assert!(!errant.is_empty());
    assert!(topo.get(&r2).and_then(|n| n.errant.as_ref()).is_none());
    e.round().await;
    assert!(
        e.findings()
            .iter()
            .any(|f| f.code == ClusterProblemCode::ErrantGtid),
        "{:?}",
        e.findings()
    );

    // The primary's next transaction breaks its replication (1950: an
    // out-of-order sequence number in strict mode).
    c.instances[0]
        .exec("CREATE TABLE app.before (id INT PRIMARY KEY)")
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "r1 broken", || async {
        let s = snapshot(&r1).await;
        (s.replica.as_ref()?.last_sql_errno == 1950).then_some(())
    })
    .await;

    let record = run(&mut e, fix_errant, &r1).await;
    assert!(
        record
            .notes
            .iter()
            .any(|n| n.contains("MASTER_USE_GTID=slave_pos")),
        "{:?}",
        record.notes
    );
    wait_replicating_from(&r1, &p).await;
    let s = snapshot(&r1).await;
    assert_eq!(
        s.replica.as_ref().map(|r| r.gtid_mode),
        Some(GtidChannelMode::SlavePos)
    );
    // The primary's next writes replicate to it, and nothing is errant.
    c.instances[0]
        .exec("CREATE TABLE app.after (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up(&p, &r1).await;
    let topo = e.observe().await;
    assert_eq!(topo.get(&r1).and_then(|n| n.errant.clone()), None);
    e.round().await;
    assert!(
        !e.findings()
            .iter()
            .any(|f| f.code == ClusterProblemCode::ErrantGtid),
        "{:?}",
        e.findings()
    );
    assert_eq!(
        refused(&mut e, fix_errant, &r1).await,
        format!("{r1} has no errant GTIDs (or none that can be told against {p}): nothing to fix")
    );
}

/// Waits until `replica` replicates and has applied all `primary` logged.
async fn caught_up(primary: &InstanceKey, replica: &InstanceKey) {
    let logged = snapshot(primary).await.gtid.binlog_pos;
    eventually(
        Duration::from_secs(20),
        &format!("{replica} caught up with {primary}"),
        || async {
            let s = snapshot(replica).await;
            let r = s.replica.as_ref()?;
            (r.is_replicating() && s.gtid.slave_pos == logged).then_some(())
        },
    )
    .await;
}
