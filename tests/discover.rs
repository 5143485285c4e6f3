//! `orca discover` against real mariadbd topologies on loopback.

mod support;

use std::time::Duration;

use orca_sandbox::{LocalCluster, Shape};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn primary_with_two_replicas() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    c.instances[0]
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1),(2)")
        .await
        .unwrap();
    // Seed from a replica: the crawl goes up to the primary and down again.
    let report = eventually(Duration::from_secs(10), "replicas caught up", || async {
        let r = discover_json(&r2);
        let gtid = |k| instance(&r, k)["gtid_executed"].clone();
        (gtid(&p) == gtid(&r1) && gtid(&p) == gtid(&r2) && gtid(&p) != "").then_some(r)
    })
    .await;
    assert_eq!(report["instances"].as_array().unwrap().len(), 3);
    let primary = instance(&report, &p);
    assert_eq!(primary["role"], "primary");
    assert_eq!(primary["read_only"], false);
    assert_eq!(primary["depth"], 0);
    assert_eq!(primary["flavor"], "mariadb");
    assert!(primary["version"].as_str().unwrap().starts_with("10."));
    // Listed in address order, whichever address each replica got.
    let mut replicas = vec![r1.to_string(), r2.to_string()];
    replicas.sort();
    assert_eq!(primary["replicas"], serde_json::json!(replicas));
    assert_eq!(problems(&report, &p), Vec::<String>::new());
    for r in [&r1, &r2] {
        let i = instance(&report, r);
        assert_eq!(i["role"], "replica");
        assert_eq!(i["source"], p.to_string());
        assert_eq!(i["depth"], 1);
        assert_eq!(i["read_only"], true);
        assert_eq!(i["io_thread"], "yes");
        assert_eq!(i["sql_thread"], true);
        assert!(i["lag_seconds"].as_f64().unwrap() < 5.0);
        assert!(i["errant_gtids"].is_null());
        assert_eq!(problems(&report, r), Vec::<String>::new());
    }
    // The primary wrote 3 transactions in domain 0 as server 1.
    assert_eq!(primary["gtid_executed"], "0-1-3");

    let tree = discover_tree(&p);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert!(lines[0].starts_with(&format!("{p} [primary]")), "{tree}");
    assert!(
        lines[0].contains(" rw ") && lines[0].contains("gtid:0-1-3"),
        "{tree}"
    );
    // Replicas in the order of their addresses, which the sandbox hands
    // out from whatever is free.
    let mut replicas = [r1.clone(), r2.clone()];
    replicas.sort();
    assert!(
        lines[1].starts_with(&format!("  └─ {} [replica]", replicas[0])),
        "{tree}"
    );
    assert!(
        lines[2].starts_with(&format!("  └─ {} [replica]", replicas[1])),
        "{tree}"
    );
    for l in &lines[1..] {
        assert!(l.contains(" ro io:Yes sql:Yes lag:"), "{tree}");
        assert!(!l.contains("problems:"), "{tree}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_with_intermediate_primary() {
    let c = LocalCluster::start(Shape::chain(3)).await.unwrap();
    let [p, mid, leaf] = [0, 1, 2].map(|i| c.instances[i].key());
    let report = discover_json(&leaf);
    assert_eq!(instance(&report, &p)["role"], "primary");
    let m = instance(&report, &mid);
    assert_eq!(m["role"], "intermediate-primary");
    assert_eq!(m["source"], p.to_string());
    assert_eq!(m["replicas"], serde_json::json!([leaf.to_string()]));
    assert_eq!(m["depth"], 1);
    let l = instance(&report, &leaf);
    assert_eq!(l["role"], "replica");
    assert_eq!(l["source"], mid.to_string());
    assert_eq!(l["depth"], 2);
    let tree = discover_tree(&p);
    assert!(
        line(&tree, &mid).starts_with(&format!("  └─ {mid} [intermediate-primary]")),
        "{tree}"
    );
    assert!(
        line(&tree, &leaf).starts_with(&format!("    └─ {leaf} [replica]")),
        "{tree}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_with_stopped_sql_thread() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    c.instances[1].exec("STOP SLAVE SQL_THREAD").await.unwrap();
    c.instances[0].exec("CREATE DATABASE app").await.unwrap();
    let report = discover_json(&p);
    let i = instance(&report, &r1);
    assert_eq!(i["io_thread"], "yes");
    assert_eq!(i["sql_thread"], false);
    assert!(
        i["lag_seconds"].is_null(),
        "no lag figure while the SQL thread is stopped"
    );
    assert_eq!(problems(&report, &r1), vec!["SqlThreadStopped"]);
    assert_eq!(problems(&report, &r2), Vec::<String>::new());
    let tree = discover_tree(&p);
    assert!(line(&tree, &r1).contains("io:Yes sql:No lag:- "), "{tree}");
    assert!(
        line(&tree, &r1).ends_with("problems:SqlThreadStopped"),
        "{tree}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_with_an_errant_write() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    c.instances[0]
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "replicas caught up", || async {
        let r = discover_json(&p);
        let gtid = |k| instance(&r, k)["gtid_executed"].clone();
        (gtid(&r1) == "0-1-2" && gtid(&r2) == "0-1-2").then_some(())
    })
    .await;
    // The admin account may write despite read_only: a classic errant write.
    c.instances[2].exec("CREATE DATABASE stray").await.unwrap();
    let report = eventually(Duration::from_secs(10), "errant GTID seen", || async {
        let r = discover_json(&p);
        (!instance(&r, &r2)["errant_gtids"].is_null()).then_some(r)
    })
    .await;
    // server_id 3 wrote its first transaction in domain 0 after the
    // primary's two.
    assert_eq!(
        instance(&report, &r2)["errant_gtids"],
        "0-3-3",
        "{report:#}"
    );
    assert_eq!(problems(&report, &r2), vec!["ErrantGtid"]);
    assert!(instance(&report, &r1)["errant_gtids"].is_null());
    assert!(instance(&report, &p)["errant_gtids"].is_null());
    let tree = discover_tree(&p);
    assert!(line(&tree, &r2).contains("errant:0-3-3"), "{tree}");
    assert!(line(&tree, &r2).contains("problems:ErrantGtid"), "{tree}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_whose_source_is_down() {
    let mut c = LocalCluster::start(Shape::chain(3)).await.unwrap();
    let (p, mid, leaf) = (
        c.instances[0].key(),
        c.instances[1].key(),
        c.instances[2].key(),
    );
    c.instances[1].kill().unwrap();
    // Seeded at the leaf, the crawl reaches the dead intermediate primary
    // and reports it; the primary is beyond it and cannot be found.
    let report = eventually(
        Duration::from_secs(15),
        "leaf notices its source is gone",
        || async {
            let r = discover_json(&leaf);
            problems(&r, &leaf)
                .contains(&"SourceUnreachable".to_string())
                .then_some(r)
        },
    )
    .await;
    let m = instance(&report, &mid);
    assert_eq!(m["reachable"], false);
    assert_eq!(m["role"], "unknown");
    assert!(m["error"].as_str().unwrap().contains(&mid.to_string()));
    assert_eq!(problems(&report, &mid), vec!["Unreachable"]);
    let l = instance(&report, &leaf);
    assert_eq!(l["source"], mid.to_string());
    assert_ne!(l["io_thread"], "yes");
    assert!(
        report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["address"] != p.to_string())
    );
    let tree = discover_tree(&leaf);
    assert!(line(&tree, &mid).contains("unreachable:"), "{tree}");
    assert!(
        line(&tree, &leaf).starts_with(&format!("  └─ {leaf} [replica]")),
        "{tree}"
    );
    // From the primary the dead intermediate is no longer registered, and
    // the primary stands alone without problems.
    let from_top = discover_json(&p);
    assert_eq!(instance(&from_top, &p)["role"], "primary");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_seed_exits_one() {
    // Nothing listens on this address (TEST-NET loopback range unused).
    let (code, _out, err) = orca(&[
        "discover",
        "--seed",
        "127.9.255.254:3306",
        "--timeout-ms",
        "500",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("did not answer"), "{err}");
    let (code, _out, err) = orca(&["discover", "--seed", "h:notaport"]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn co_primaries() {
    let c = LocalCluster::start(Shape::co_primaries(1)).await.unwrap();
    let (a, b, r) = (
        c.instances[0].key(),
        c.instances[1].key(),
        c.instances[2].key(),
    );
    let report = discover_json(&r);
    assert_eq!(instance(&report, &a)["role"], "co-primary");
    assert_eq!(instance(&report, &b)["role"], "co-primary");
    assert_eq!(instance(&report, &a)["source"], b.to_string());
    assert_eq!(instance(&report, &b)["source"], a.to_string());
    let rep = instance(&report, &r);
    assert_eq!(rep["role"], "replica");
    assert_eq!(rep["source"], a.to_string());
    for k in [&a, &b, &r] {
        assert_eq!(problems(&report, k), Vec::<String>::new(), "{report:#}");
    }
    let tree = discover_tree(&a);
    assert!(
        line(&tree, &a).starts_with(&format!("{a} [co-primary]")),
        "{tree}"
    );
    assert!(
        line(&tree, &b).starts_with(&format!("{b} [co-primary]")),
        "{tree}"
    );
    assert!(
        line(&tree, &r).starts_with(&format!("  └─ {r} [replica]")),
        "{tree}"
    );
}
