//! Replicas that repair themselves, in the sandbox (real `mariadbd`, real
//! `mariadb-backup`, the orca agent in every pod): a replica with an
//! errant transaction and a replica its source cannot feed (a scale-up
//! after `PURGE BINARY LOGS`) are re-provisioned by a physical copy of a
//! healthy replica while writes go on at the primary, and replicate
//! again with every acknowledged write.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::k8s::crd::cluster::ReprovisionStatus;
use orca::mysql::Credentials;
use orca::mysql::conn::Timeouts;
use orca::topology::InstanceKey;
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::store::StoreServer;
use support::writer::{Writer, assert_acked, assert_acked_replicated};

/// The image the sandbox runs the orca binary for.
const IMAGE: &str = "ghcr.io/orca-dev/orca:0.1.0";
const BOOT: Duration = Duration::from_secs(180);
/// A copy of a small data directory, the pod's restart and the join.
const REPAIR: Duration = Duration::from_secs(300);

/// The operator with the agent, its records in `store`.
fn start_operator(sb: &mut Sandbox, store: &StoreServer) {
    let file = sb.dir.path().join("store-password");
    std::fs::write(&file, format!("{}\n", store.password())).expect("the password file");
    let dsn = store.dsn("orca");
    let file = file.display().to_string();
    sb.start_operator_with(
        "only",
        &[
            ("ORCA_AGENT_IMAGE", IMAGE),
            ("ORCA_STORE_DSN", dsn.as_str()),
            ("ORCA_STORE_PASSWORD_FILE", file.as_str()),
        ],
    );
}

async fn sql(key: &InstanceKey, creds: &Credentials, statement: &str) {
    let mut c = orca::mysql::connect(key, creds, Timeouts::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key}: {e}"));
    c.query_drop(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement} on {key}: {e}"));
    let _ = c.disconnect().await;
}

async fn string(key: &InstanceKey, creds: &Credentials, query: &str) -> String {
    let mut c = orca::mysql::connect(key, creds, Timeouts::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {key}: {e}"));
    let v: Option<String> = c
        .query_first(query)
        .await
        .unwrap_or_else(|e| panic!("{query} on {key}: {e}"));
    let _ = c.disconnect().await;
    v.unwrap_or_default()
}

/// Waits until the application account (made by the operator once the
/// primary is writable) connects at `key`.
async fn app_ready(sb: &Sandbox, key: &InstanceKey, app: &Credentials) {
    let limit = Duration::from_secs(60);
    let deadline = std::time::Instant::now() + limit;
    loop {
        match orca::mysql::connect(key, app, Timeouts::default()).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                return;
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the application account at {key}: {e}\n{}\n{}",
                sb.event_reasons("db"),
                sb.operator_log("only")
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the last re-provisioning of `pod` ended; returns it.
async fn reprovisioned(sb: &Sandbox, pod: &str) -> ReprovisionStatus {
    let r = eventually(REPAIR, "the re-provisioning to end", || async {
        let c = sb.mysql_cluster("db").await;
        c.status
            .and_then(|s| s.reprovision)
            .filter(|r| r.pod == pod && (r.phase == "Succeeded" || r.phase == "Failed"))
    })
    .await;
    assert_eq!(
        r.phase,
        "Succeeded",
        "{r:#?}\n{}\n{}",
        sb.event_reasons("db"),
        sb.operator_log("only")
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("re-provisioned: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errant_replica_is_recorded_then_reprovisioned_by_a_copy_and_replicates_again() {
    let store = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    start_operator(&mut sb, &store);
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    let primary = sb.wait_healthy("db", BOOT).await;
    let (root, app) = (sb.root("db").await, sb.app("db").await);
    let pkey = sb.primary_endpoint("db", None).await;
    app_ready(&sb, &pkey, &app).await;
    let writer = Writer::start_as(pkey, app.clone()).await;
    writer.wait_acked(50).await;

    // A transaction written on a replica directly, as root (read_only
    // does not stop root on MariaDB): errant.
    let target = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|p| *p != primary)
        .expect("a replica");
    let old = sb.pod_ip(target).await;
    let mut c = orca::mysql::connect(&old, &root, Timeouts::default())
        .await
        .expect("connect to the replica as root");
    c.query_drop("CREATE DATABASE orca_errant")
        .await
        .expect("the errant transaction");
    let errant: String = c
        .query_first("SELECT @@last_gtid")
        .await
        .expect("its GTID")
        .expect("a GTID");
    let _ = c.disconnect().await;
    assert!(!errant.is_empty(), "no GTID for the errant transaction");

    let r = reprovisioned(&sb, target).await;
    assert_eq!(r.reason, "ErrantTransactions", "{r:#?}");
    assert!(r.bytes > 0, "nothing copied: {r:#?}");
    assert_ne!(
        r.source.as_deref(),
        Some(primary.as_str()),
        "copied from the primary: {r:#?}"
    );

    // Recorded before anything was discarded: the Events, the store.
    let events = sb.event_reasons("db");
    for reason in ["ReprovisionStarted", "TailSaved", "ReplicaReprovisioned"] {
        assert!(events.contains(reason), "no {reason} Event:\n{events}");
    }
    let started = events
        .lines()
        .find(|l| l.starts_with("ReprovisionStarted"))
        .unwrap_or_default();
    assert!(
        started.contains(&errant),
        "the errant GTID {errant} is not in the Event: {started}"
    );
    let details = store
        .column(
            "orca",
            "SELECT detail FROM audit WHERE action = 'reprovision' ORDER BY at_ms",
        )
        .await;
    assert!(
        details
            .iter()
            .flatten()
            .any(|d| d.contains(&errant) && d.contains(&r.id)),
        "the errant GTID {errant} is not in the store's record: {details:?}"
    );

    // The copy replicates, without the errant transaction, with every
    // write acknowledged before, during and after the copy.
    let new = sb.pod_ip(target).await;
    sb.wait_source("db", target, &primary).await;
    let gone = string(
        &new,
        &root,
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'orca_errant'",
    )
    .await;
    assert_eq!(gone, "0", "the errant database survived the copy");
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    let pkey = sb.primary_endpoint("db", None).await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked_replicated(&new, &app, &acked).await;
    sb.wait_healthy("db", BOOT).await;
    sb.stop_operator();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_up_after_the_primary_purged_its_binary_logs_is_provisioned_by_a_copy() {
    let store = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    start_operator(&mut sb, &store);
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    let primary = sb.wait_healthy("db", BOOT).await;
    let (root, app) = (sb.root("db").await, sb.app("db").await);
    let pkey = sb.primary_endpoint("db", None).await;
    app_ready(&sb, &pkey, &app).await;
    let writer = Writer::start_as(pkey.clone(), app.clone()).await;
    writer.wait_acked(50).await;

    // The primary's binary logs no longer reach back to the start.
    sql(&pkey, &root, "FLUSH BINARY LOGS").await;
    let newest = {
        let mut c = orca::mysql::connect(&pkey, &root, Timeouts::default())
            .await
            .expect("connect to the primary");
        let row: Option<mysql_async::Row> =
            c.query_first("SHOW MASTER STATUS").await.expect("status");
        let _ = c.disconnect().await;
        row.and_then(|r| r.get::<String, _>(0))
            .expect("a binary log")
    };
    sql(&pkey, &root, &format!("PURGE BINARY LOGS TO '{newest}'")).await;
    writer.wait_acked(writer.count() + 20).await;

    let scaled = sb.kubectl().run(
        &[
            "patch",
            "mysqlcluster",
            "db",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":4}}"#,
        ],
        None,
    );
    assert_eq!(scaled.code, 0, "kubectl patch: {}", scaled.stderr);
    let r = reprovisioned(&sb, "db-3").await;
    assert_eq!(r.reason, "SourceCannotSend", "{r:#?}");
    assert!(r.bytes > 0, "nothing copied: {r:#?}");
    sb.wait_source("db", "db-3", &primary).await;
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked_replicated(&sb.pod_ip("db-3").await, &app, &acked).await;
    sb.stop_operator();
}
