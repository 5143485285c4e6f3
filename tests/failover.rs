//! Automatic recovery on real mariadbd topologies, each test proving that
//! every acknowledged write is on the new primary.

mod support;

use std::time::Duration;

use orca::engine::executor::Outcome;
use orca::engine::hooks::{HookTarget, Hooks};
use orca::plan::HookEvent;
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{LocalCluster, Shape};
use support::writer::{Writer, assert_acked, ids_on};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_primary() {
    let mut c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    let first = e.round().await;
    assert!(first.findings.is_empty(), "{:?}", first.findings);
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(50).await;
    c.instances[0].kill().unwrap();
    let before = listing(&c.instances[0].data_dir());
    let record = rounds_until(&mut e, Duration::from_secs(30), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.failed.as_ref(), Some(&keys[0]));
    let new = record.successor.clone().expect("successor");
    assert!(new == keys[1] || new == keys[2]);
    let other = if new == keys[1] { &keys[2] } else { &keys[1] };
    let acked = w.finish().await;
    let s = snapshot(&new).await;
    assert!(
        !s.is_read_only() && s.replica.is_none(),
        "new primary writable, no replication left"
    );
    wait_replicating_from(other, &new).await;
    assert_acked(&new, &admin_credentials(), &acked).await;
    // Writes on the new primary reach the other replica.
    c.instances
        .iter()
        .find(|m| m.key() == new)
        .unwrap()
        .exec("INSERT INTO app.w VALUES (1000000)")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "new write replicated", || async {
        ids_on(other, &admin_credentials())
            .await
            .contains(&1_000_000)
            .then_some(())
    })
    .await;
    assert_eq!(
        listing(&c.instances[0].data_dir()),
        before,
        "the old primary's data directory was touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigstop_of_the_primary() {
    let c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(50).await;
    c.instances[0].pause().unwrap();
    let record = rounds_until(&mut e, Duration::from_secs(40), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let new = record.successor.clone().unwrap();
    let acked = w.finish().await;
    assert_acked(&new, &admin_credentials(), &acked).await;
    // The hung primary comes back: orca fences it (read only) and says so.
    c.instances[0].resume().unwrap();
    rounds_until(
        &mut e,
        Duration::from_secs(20),
        "the old primary fenced",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    let old = snapshot(&keys[0]).await;
    assert!(
        old.is_read_only(),
        "the returned primary must not accept writes"
    );
    use mysql_async::prelude::Queryable;
    let app = orca_sandbox::mysqld::app_credentials();
    let mut conn = orca::mysql::connect(&keys[0], &app, Default::default())
        .await
        .unwrap();
    let refused = conn.query_drop("INSERT INTO app.w VALUES (2000000)").await;
    assert!(
        refused.is_err(),
        "a write on the returned primary was accepted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_intermediate_primary() {
    let mut c = LocalCluster::start(Shape::parse("-,0,1,1").unwrap())
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine(&c);
    e.round().await;
    c.instances[0].exec("CREATE DATABASE app; CREATE TABLE app.w (id BIGINT PRIMARY KEY); INSERT INTO app.w VALUES (1),(2)").await.unwrap();
    eventually(Duration::from_secs(10), "leaves caught up", || async {
        (ids_on(&keys[2], &admin_credentials()).await.len() == 2
            && ids_on(&keys[3], &admin_credentials()).await.len() == 2)
            .then_some(())
    })
    .await;
    c.instances[1].kill().unwrap();
    let record = rounds_until(&mut e, Duration::from_secs(30), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.failed.as_ref(), Some(&keys[1]));
    for leaf in [&keys[2], &keys[3]] {
        let s = snapshot(leaf).await;
        let src = s.replica.as_ref().unwrap().source.clone();
        assert!(
            src == keys[0] || src == keys[2] || src == keys[3],
            "{leaf} replicates from {src}"
        );
    }
    c.instances[0]
        .exec("INSERT INTO app.w VALUES (3)")
        .await
        .unwrap();
    for leaf in [&keys[2], &keys[3]] {
        eventually(
            Duration::from_secs(10),
            "write after recovery replicated",
            || async {
                (ids_on(leaf, &admin_credentials()).await == [1, 2, 3].into_iter().collect())
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anti_flapping_blocks_a_second_recovery_until_acknowledged() {
    let mut c = semi_sync_cluster(3).await;
    let mut e = engine(&c);
    e.round().await;
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(20).await;
    c.instances[0].kill().unwrap();
    let first = rounds_until(&mut e, Duration::from_secs(30), "the first recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(first.outcome, Outcome::Succeeded, "{first:#?}");
    let acked = w.finish().await;
    let new = first.successor.clone().unwrap();
    assert_acked(&new, &admin_credentials(), &acked).await;
    // Let the survivors settle under the new primary.
    for m in c.instances.iter().skip(1).filter(|m| m.key() != new) {
        wait_replicating_from(&m.key(), &new).await;
    }
    let idx = c.instances.iter().position(|m| m.key() == new).unwrap();
    let w2 = Writer::start(&c.instances[idx]).await;
    w2.wait_acked(20).await;
    c.instances[idx].kill().unwrap();
    let why = rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the second failure blocked",
        |r| {
            assert!(
                r.recovery.is_none(),
                "a second recovery ran within the anti-flap period"
            );
            r.blocked.clone()
        },
    )
    .await;
    assert!(why.contains("anti-flap"), "{why}");
    e.acknowledge();
    let second = rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the second recovery",
        |r| r.recovery.clone(),
    )
    .await;
    assert_eq!(second.outcome, Outcome::Succeeded, "{second:#?}");
    let acked2 = w2.finish().await;
    let newest = second
        .successor
        .clone()
        .unwrap_or_else(|| panic!("{second:#?}"));
    assert_acked(&newest, &admin_credentials(), &acked).await;
    assert_acked(&newest, &admin_credentials(), &acked2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_failover_hook_vetoes_and_post_hooks_get_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("post.json");
    let env_file = dir.path().join("post.env");
    let veto_flag = dir.path().join("veto");
    std::fs::write(&veto_flag, b"").unwrap();
    let cmd = |c: String| HookTarget::Command {
        command: c,
        timeout: Duration::from_secs(5),
    };
    let mut hooks = Hooks::default();
    // Vetoes while the flag file exists.
    hooks.add(
        HookEvent::PreFailover,
        cmd(format!("test ! -e {}", veto_flag.display())),
    );
    hooks.add(
        HookEvent::PostFailover,
        cmd(format!(
            "cat > {}; echo \"$ORCA_EVENT|$ORCA_FAILURE_TYPE|$ORCA_FAILED|$ORCA_SUCCESSOR|$ORCA_RECOVERY_ID\" > {}",
            payload.display(),
            env_file.display()
        )),
    );
    let mut c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let mut e = engine_with(&c, hooks, |_| {});
    e.round().await;
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(20).await;
    c.instances[0].kill().unwrap();
    let vetoed = rounds_until(&mut e, Duration::from_secs(30), "a vetoed recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert!(matches!(vetoed.outcome, Outcome::Vetoed(_)), "{vetoed:#?}");
    for k in &keys[1..] {
        let s = snapshot(k).await;
        assert_eq!(
            s.replica.as_ref().map(|r| &r.source),
            Some(&keys[0]),
            "nothing moved after a veto"
        );
        assert!(s.is_read_only());
    }
    assert!(!payload.exists(), "post-failover hooks ran after a veto");
    // Lift the veto; acknowledge the vetoed attempt; the recovery goes on.
    std::fs::remove_file(&veto_flag).unwrap();
    e.acknowledge();
    let record = rounds_until(&mut e, Duration::from_secs(30), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let acked = w.finish().await;
    let new = record.successor.clone().unwrap();
    assert_acked(&new, &admin_credentials(), &acked).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&payload).unwrap()).unwrap();
    assert_eq!(json["event"], "postFailover");
    assert_eq!(json["cluster"], "test");
    assert_eq!(json["failureType"], "DeadPrimary");
    assert_eq!(json["failed"], keys[0].to_string());
    assert_eq!(json["successor"], new.to_string());
    assert_eq!(json["recoveryId"], record.id);
    assert!(json["lostReplicas"].as_array().unwrap().is_empty());
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(
        env.trim(),
        format!("postFailover|DeadPrimary|{}|{new}|{}", keys[0], record.id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_with_errant_gtids_is_never_chosen() {
    let mut c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    c.instances[0].exec("CREATE DATABASE app; CREATE TABLE app.w (id BIGINT PRIMARY KEY); INSERT INTO app.w VALUES (1)").await.unwrap();
    eventually(Duration::from_secs(10), "replicas caught up", || async {
        (ids_on(&keys[1], &admin_credentials()).await.len() == 1
            && ids_on(&keys[2], &admin_credentials()).await.len() == 1)
            .then_some(())
    })
    .await;
    // Replica 1 takes an errant write, and is otherwise as advanced.
    c.instances[1].exec("CREATE DATABASE stray").await.unwrap();
    let mut e = engine(&c);
    let r = e.round().await;
    assert!(
        r.findings
            .iter()
            .any(|f| f.code.to_string() == "ErrantGtid" && f.instance == keys[1]),
        "{:?}",
        r.findings
    );
    c.instances[0].kill().unwrap();
    let record = rounds_until(&mut e, Duration::from_secs(30), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    assert_eq!(record.successor.as_ref(), Some(&keys[2]), "{record:#?}");
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_acked(&keys[2], &admin_credentials(), &[1]).await;
}
