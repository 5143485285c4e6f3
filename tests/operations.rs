//! The one-shot commands on real mariadbd topologies: graceful takeover
//! (named target, auto, refusals), force takeover, recover, and every
//! refactoring with its refusals.

mod support;

use std::time::Duration;

use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{LocalCluster, MysqldOptions, Shape};
use support::writer::{Writer, assert_acked, ids_on};
use support::*;

fn op(args: &[&str]) -> (i32, String, String) {
    orca(args)
}

fn seeds(keys: &[InstanceKey]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| ["--seed".to_string(), k.to_string()])
        .collect()
}

fn run(cmd: &str, keys: &[InstanceKey], extra: &[&str]) -> (i32, String, String) {
    let s = seeds(keys);
    let mut args: Vec<&str> = vec![cmd];
    args.extend(s.iter().map(String::as_str));
    args.extend_from_slice(extra);
    op(&args)
}

async fn semi_sync(shape: Shape) -> LocalCluster {
    LocalCluster::start_with(shape, |_, o: MysqldOptions| o.with_semi_sync())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_takeover_to_a_named_replica_and_back_to_auto() {
    let c = semi_sync(Shape::primary_with_replicas(2)).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(31).await;

    // Dry run: a plan, nothing done.
    let (code, out, err) = run(
        "graceful-takeover",
        &keys[..1],
        &["--to", &keys[2].to_string(), "--dry-run"],
    );
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("plan: graceful-takeover"), "{out}");
    assert!(
        out.contains(&format!("{}: set read_only=ON", keys[0])),
        "{out}"
    );
    assert!(!snapshot(&keys[0]).await.is_read_only());

    let (code, out, err) = run(
        "graceful-takeover",
        &keys[..1],
        &["--to", &keys[2].to_string()],
    );
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("succeeded"), "{out}");
    let acked = w.finish().await;
    let s = snapshot(&keys[2]).await;
    assert!(!s.is_read_only() && s.replica.is_none());
    assert_acked(&keys[2], &admin_credentials(), &acked).await;
    // The old primary is a read-only replica of the new one; so is the sibling.
    wait_replicating_from(&keys[0], &keys[2]).await;
    wait_replicating_from(&keys[1], &keys[2]).await;
    assert!(snapshot(&keys[0]).await.is_read_only());

    // Auto: the best candidate among the new primary's replicas.
    let w2 = Writer::start(&c.instances[2]).await;
    w2.wait_acked(31).await;
    let (code, out, err) = run("graceful-takeover", &keys[2..3], &["--json"]);
    assert_eq!(code, 0, "{err}{out}");
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["outcome"]["result"], "succeeded", "{record:#}");
    let new: InstanceKey = record["successor"].as_str().unwrap().parse().unwrap();
    assert!(new == keys[0] || new == keys[1]);
    let acked2 = w2.finish().await;
    assert_acked(&new, &admin_credentials(), &acked).await;
    assert_acked(&new, &admin_credentials(), &acked2).await;
    wait_replicating_from(&keys[2], &new).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_takeover_refusals() {
    let c = LocalCluster::start(Shape::primary_with_replicas(2))
        .await
        .unwrap();
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    // must_not target.
    let (code, out, err) = run(
        "graceful-takeover",
        &keys[..1],
        &[
            "--to",
            &keys[1].to_string(),
            "--promotion-rule",
            &format!("{}=must_not", keys[1]),
        ],
    );
    assert_eq!(code, 3, "{err}{out}");
    assert!(err.contains("must_not"), "{err}");
    // A lagging target: replica 2 applies with a delay.
    c.instances[2]
        .exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=120; START SLAVE")
        .await
        .unwrap();
    c.instances[0].exec("CREATE DATABASE app").await.unwrap();
    eventually(Duration::from_secs(20), "replica 2 lagging", || async {
        let s = snapshot(&keys[2]).await;
        s.replica
            .as_ref()
            .and_then(|r| r.seconds_behind)
            .filter(|l| *l >= 2)
            .map(|_| ())
    })
    .await;
    let (code, out, err) = run(
        "graceful-takeover",
        &keys[..1],
        &["--to", &keys[2].to_string(), "--max-lag", "1s"],
    );
    assert_eq!(code, 3, "{err}{out}");
    assert!(err.to_lowercase().contains("lag"), "{err}");
    // Nothing changed: the primary is still writable.
    assert!(!snapshot(&keys[0]).await.is_read_only());
    // A target that is not a replica of the primary, and bad input.
    let (code, _, err) = run("graceful-takeover", &keys[..1], &["--to", "127.9.9.9:3306"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run(
        "graceful-takeover",
        &keys[..1],
        &["--to", "not an address:x"],
    );
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn force_takeover_and_recover() {
    let mut c = semi_sync(Shape::primary_with_replicas(2)).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(21).await;
    let acked = w.finish().await;
    let (code, out, err) = run(
        "force-takeover",
        &keys[..1],
        &["--to", &keys[1].to_string()],
    );
    assert_eq!(code, 0, "{err}{out}");
    assert_acked(&keys[1], &admin_credentials(), &acked).await;
    wait_replicating_from(&keys[2], &keys[1]).await;
    assert!(
        snapshot(&keys[0]).await.is_read_only(),
        "the discarded primary is fenced"
    );

    // recover: nothing to do while healthy.
    let (code, _, err) = run("recover", &keys[1..], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nothing to recover"), "{err}");
    // The new primary dies; `recover` with every instance named fails over.
    let w = Writer::start(&c.instances[1]).await;
    w.wait_acked(21).await;
    c.instances[1].kill().unwrap();
    let acked = w.finish().await;
    let (code, out, err) = run("recover", &[keys[1].clone(), keys[2].clone()], &[]);
    assert_eq!(code, 0, "{err}{out}");
    assert!(
        out.contains(&format!("{} is the new source", keys[2])),
        "{out}"
    );
    assert_acked(&keys[2], &admin_credentials(), &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refactorings_on_four_instances() {
    // 0 primary; 1, 2, 3 its replicas.
    let c = LocalCluster::start(Shape::primary_with_replicas(3))
        .await
        .unwrap();
    let k: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let s = |i: usize| k[i].to_string();
    c.instances[0]
        .exec("CREATE DATABASE app; CREATE TABLE app.w (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();

    // relocate 3 below 1 (dry run first).
    let (code, out, err) = run("relocate", &k[..1], &[&s(3), "--below", &s(1), "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{}: replicate from {}", k[3], k[1])),
        "{out}"
    );
    let (code, out, err) = run("relocate", &k[..1], &[&s(3), "--below", &s(1)]);
    assert_eq!(code, 0, "{err}{out}");
    wait_replicating_from(&k[3], &k[1]).await;
    // move-up 3: back below 0.
    let (code, out, err) = run("move-up", &k[..1], &[&s(3)]);
    assert_eq!(code, 0, "{err}{out}");
    wait_replicating_from(&k[3], &k[0]).await;
    // move-below 3 sibling 2.
    let (code, out, err) = run("move-below", &k[..1], &[&s(3), "--sibling", &s(2)]);
    assert_eq!(code, 0, "{err}{out}");
    wait_replicating_from(&k[3], &k[2]).await;
    // repoint 3 to 0.
    let (code, out, err) = run("repoint", &k[..1], &[&s(3), "--to", &s(0)]);
    assert_eq!(code, 0, "{err}{out}");
    wait_replicating_from(&k[3], &k[0]).await;
    // take-siblings 1: 2 and 3 go below 1.
    let (code, out, err) = run("take-siblings", &k[..1], &[&s(1)]);
    assert_eq!(code, 0, "{err}{out}");
    wait_replicating_from(&k[2], &k[1]).await;
    wait_replicating_from(&k[3], &k[1]).await;
    // regroup-replicas 1: one of 2, 3 becomes the source of the other.
    let (code, out, err) = run("regroup-replicas", &k[..1], &[&s(1)]);
    assert_eq!(code, 0, "{err}{out}");
    let (a, b) = (snapshot(&k[2]).await, snapshot(&k[3]).await);
    let sources = [a.replica.unwrap().source, b.replica.unwrap().source];
    assert!(
        (sources[0] == k[1] && sources[1] == k[2]) || (sources[0] == k[3] && sources[1] == k[1]),
        "{sources:?}"
    );
    // Replication still carries writes down the tree.
    c.instances[0]
        .exec("INSERT INTO app.w VALUES (7)")
        .await
        .unwrap();
    for replica in &k[1..4] {
        eventually(Duration::from_secs(10), "write replicated", || async {
            ids_on(replica, &admin_credentials())
                .await
                .contains(&7)
                .then_some(())
        })
        .await;
    }

    // Refusals, each with its reason and exit code 3.
    let refusals: Vec<(Vec<String>, &str)> = vec![
        (vec![s(1), "--below".into(), s(1)], "itself"),
        (vec![s(0), "--below".into(), s(1)], "not a replica"),
        (vec![s(1), "--below".into(), s(2)], "cycle"),
        (
            vec![s(1), "--below".into(), "127.9.9.9:3306".into()],
            "127.9.9.9:3306",
        ),
    ];
    for (args, reason) in refusals {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run("relocate", &k[..1], &a);
        assert_eq!(code, 3, "relocate {args:?}: {err}{out}");
        assert!(
            err.to_lowercase().contains(reason),
            "relocate {args:?}: {err}"
        );
    }
    let (code, _, err) = run("move-up", &k[..1], &[&s(1)]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run("move-below", &k[..1], &[&s(1), "--sibling", &s(0)]);
    assert_eq!(code, 3, "{err}");
    // A stopped replica may not take others.
    c.instances[1].exec("STOP SLAVE").await.unwrap();
    let (code, _, err) = run("relocate", &k, &[&s(2), "--below", &s(1)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.to_lowercase().contains("replicat"), "{err}");
}
