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
use serde_json::json;
use support::api::{ApiClient, account, token};
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

/// The operator with the agent, its records in `store`, its API on
/// loopback.
fn start_operator(sb: &mut Sandbox, store: &StoreServer) {
    let file = sb.dir.path().join("store-password");
    std::fs::write(&file, format!("{}\n", store.password())).expect("the password file");
    let dsn = store.dsn("orca");
    let file = file.display().to_string();
    sb.start_operator_with(
        "only",
        &[
            ("ORCA_AGENT_IMAGE", IMAGE),
            ("ORCA_LISTEN", "127.0.0.1:0"),
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

/// `SHOW SLAVE STATUS` at `key` (its replication fields), or why not.
async fn replica_status(key: &InstanceKey, root: &Credentials) -> String {
    let mut c = match orca::mysql::connect(key, root, Timeouts::default()).await {
        Ok(c) => c,
        Err(e) => return format!("connect: {e}"),
    };
    let row: Result<Option<mysql_async::Row>, _> = c.query_first("SHOW SLAVE STATUS").await;
    let _ = c.disconnect().await;
    match row {
        Ok(Some(row)) => {
            let fields = [
                "Master_Host",
                "Slave_IO_Running",
                "Slave_SQL_Running",
                "Last_IO_Errno",
                "Last_IO_Error",
                "Last_SQL_Error",
                "Gtid_IO_Pos",
                "Using_Gtid",
            ];
            fields
                .iter()
                .map(|f| {
                    let v: Option<String> = row.get_opt(*f).and_then(|v| v.ok());
                    format!("{f}={}", v.unwrap_or_default())
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        Ok(None) => "no replication".to_string(),
        Err(e) => format!("SHOW SLAVE STATUS: {e}"),
    }
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

/// A sandbox whose operator carries the agent (and a store), with the
/// cluster `db` of `yaml` healthy and the application account ready:
/// the store, the sandbox, the primary, root, the application account
/// and the primary Service's address.
type Booted = (
    StoreServer,
    Sandbox,
    String,
    Credentials,
    Credentials,
    InstanceKey,
);

async fn boot(yaml: &str) -> Booted {
    let store = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    start_operator(&mut sb, &store);
    sb.kubectl().apply(yaml);
    let primary = sb.wait_healthy("db", BOOT).await;
    let (root, app) = (sb.root("db").await, sb.app("db").await);
    let pkey = sb.primary_endpoint("db", None).await;
    app_ready(&sb, &pkey, &app).await;
    (store, sb, primary, root, app, pkey)
}

/// The primary's binary logs made to stop reaching back to the start.
/// The server keeps a log a replica's dump thread still reads (the one
/// just rotated, until the replicas reach its end): purged again until
/// the newest is the only one left.
async fn purge_binary_logs(pkey: &InstanceKey, root: &Credentials) {
    sql(pkey, root, "FLUSH BINARY LOGS").await;
    let mut c = orca::mysql::connect(pkey, root, Timeouts::default())
        .await
        .expect("connect to the primary");
    let row: Option<mysql_async::Row> = c.query_first("SHOW MASTER STATUS").await.expect("status");
    let newest = row
        .and_then(|r| r.get::<String, _>(0))
        .expect("a binary log");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        c.query_drop(format!("PURGE BINARY LOGS TO '{newest}'"))
            .await
            .expect("PURGE BINARY LOGS");
        let logs: Vec<String> = c
            .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
                row.get::<String, _>(0).unwrap_or_default()
            })
            .await
            .expect("SHOW BINARY LOGS");
        if logs == [newest.clone()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the primary keeps {logs:?} (purged to {newest})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.disconnect().await;
}

/// The operator's last 40 log lines, newest first, for a report.
fn operator_tail(sb: &Sandbox) -> String {
    sb.operator_log("only")
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the last re-provisioning of `pod` ended; returns it.
async fn reprovisioned(sb: &Sandbox, pod: &str, root: &Credentials) -> ReprovisionStatus {
    let ended = tokio::time::timeout(
        REPAIR,
        eventually(REPAIR * 2, "the re-provisioning to end", || async {
            let c = sb.mysql_cluster("db").await;
            c.status
                .and_then(|s| s.reprovision)
                .filter(|r| r.pod == pod && (r.phase == "Succeeded" || r.phase == "Failed"))
        }),
    )
    .await;
    let Ok(r) = ended else {
        // What the target's server says, for the report.
        let key = sb.pod_ip(pod).await;
        let replica = replica_status(&key, root).await;
        panic!(
            "timed out waiting for the re-provisioning of {pod} to end\n{pod}: {replica}\nstatus: {:#?}\nevents: {}\n{}",
            sb.mysql_cluster("db").await.status.map(|s| s.reprovision),
            sb.event_reasons("db"),
            operator_tail(sb)
        );
    };
    assert_eq!(
        r.phase,
        "Succeeded",
        "{r:#?}\n{}\n{}",
        sb.event_reasons("db"),
        operator_tail(sb)
    );
    eprintln!("re-provisioned: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errant_replica_is_recorded_then_reprovisioned_by_a_copy_and_replicates_again() {
    let (store, mut sb, primary, root, app, pkey) = boot(&cluster_yaml("db", 3, false)).await;
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

    let r = reprovisioned(&sb, target, &root).await;
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
    // The pod restarted for its copy is not taken for a dead primary.
    assert!(!events.contains("DeadPrimary"), "{events}");
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
    let (_store, mut sb, primary, root, app, pkey) = boot(&cluster_yaml("db", 3, false)).await;
    let writer = Writer::start_as(pkey.clone(), app.clone()).await;
    writer.wait_acked(50).await;

    // The primary's binary logs no longer reach back to the start.
    purge_binary_logs(&pkey, &root).await;
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
    let r = reprovisioned(&sb, "db-3", &root).await;
    // Its source cannot send what it needs. (Under writes it is probed
    // holding the primary's newest transactions before the primary's own
    // snapshot shows them: that is not errant.)
    assert_eq!(r.reason, "SourceCannotSend", "{r:#?}");
    assert!(r.bytes > 0, "nothing copied: {r:#?}");
    sb.wait_source("db", "db-3", &primary).await;
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked_replicated(&sb.pod_ip("db-3").await, &app, &acked).await;
    sb.stop_operator();
}

/// Fills `app.big` on the primary with `mb` rows of 1 MiB (as the
/// application), so that a copy takes long enough to be cut.
async fn fill(key: &InstanceKey, app: &Credentials, mb: u32) {
    let mut c = orca::mysql::connect(key, app, Timeouts::default())
        .await
        .expect("connect to the primary");
    c.query_drop("CREATE TABLE IF NOT EXISTS app.big (id INT PRIMARY KEY, b LONGBLOB)")
        .await
        .expect("create app.big");
    for i in 0..mb {
        c.query_drop(format!(
            "INSERT INTO app.big VALUES ({i}, REPEAT(SHA2('{i}', 256), 16384))"
        ))
        .await
        .expect("a 1 MiB row");
    }
    let _ = c.disconnect().await;
}

/// The restarts of `pod`'s database container.
async fn restarts(sb: &Sandbox, pod: &str) -> i32 {
    let p = sb.pods().await.get(pod).await.expect("pod");
    p.status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.name != orca::k8s::objects::AGENT_CONTAINER)
        .map(|c| c.restart_count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_killed_mid_stream_the_copy_is_taken_again_from_another_replica() {
    let (_store, mut sb, primary, root, app, pkey) = boot(&cluster_yaml("db", 4, false)).await;
    fill(&pkey, &app, 160).await;
    let writer = Writer::start_as(pkey.clone(), app.clone()).await;
    writer.wait_acked(50).await;

    let target = ["db-0", "db-1", "db-2", "db-3"]
        .into_iter()
        .find(|p| *p != primary)
        .expect("a replica");
    sql(
        &sb.pod_ip(target).await,
        &root,
        "CREATE DATABASE orca_errant",
    )
    .await;

    // The first source, once it streams, killed with its pod.
    let first = eventually(REPAIR, "the copy streaming", || async {
        let c = sb.mysql_cluster("db").await;
        c.status
            .and_then(|s| s.reprovision)
            .filter(|r| {
                r.pod == target && r.phase == "Copying" && r.attempt == 1 && r.bytes > 4 << 20
            })
            .and_then(|r| r.source)
    })
    .await;
    assert_ne!(first, primary, "copied from the primary");
    let killed = sb.kubectl().run(
        &["delete", "pod", &first, "--grace-period=0", "--force"],
        None,
    );
    assert_eq!(killed.code, 0, "kubectl delete pod: {}", killed.stderr);

    let r = reprovisioned(&sb, target, &root).await;
    assert!(r.attempt >= 2, "the copy was not taken again: {r:#?}");
    let second = r.source.clone().expect("a source");
    assert_ne!(second, first, "{r:#?}");
    assert_ne!(second, primary, "{r:#?}");
    let events = sb.event_reasons("db");
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("ReprovisionProgress") && l.contains("the last attempt failed")),
        "no Event of the failed attempt:\n{events}"
    );
    // The server started once, on the whole copy.
    assert_eq!(
        restarts(&sb, target).await,
        0,
        "the server started before the copy was whole"
    );
    let new = sb.pod_ip(target).await;
    sb.wait_source("db", target, &primary).await;
    let rows = string(&new, &root, "SELECT COUNT(*) FROM app.big").await;
    assert_eq!(rows, "160", "the copy lacks rows");
    let gone = string(
        &new,
        &root,
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'orca_errant'",
    )
    .await;
    assert_eq!(gone, "0", "the errant database survived the copy");
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked_replicated(&new, &app, &acked).await;
    sb.stop_operator();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_volume_was_lost_while_it_was_down_is_provisioned_by_a_copy() {
    let (_store, mut sb, primary, root, app, pkey) = boot(&cluster_yaml("db", 3, false)).await;
    let writer = Writer::start_as(pkey.clone(), app.clone()).await;
    writer.wait_acked(50).await;
    let target = ["db-0", "db-1", "db-2"]
        .into_iter()
        .rev()
        .find(|p| *p != primary)
        .expect("a replica");

    // The claim deleted (held by its pod until the pod is gone), then the
    // pod: it comes back on a new, empty volume. Meanwhile the primary's
    // binary logs stop reaching back to the start.
    let claim = format!("data-{target}");
    let deleted = sb
        .kubectl()
        .run(&["delete", "pvc", &claim, "--wait=false"], None);
    assert_eq!(deleted.code, 0, "kubectl delete pvc: {}", deleted.stderr);
    let uid = sb.pods().await.get(target).await.expect("pod").metadata.uid;
    let deleted = sb.kubectl().run(&["delete", "pod", target], None);
    assert_eq!(deleted.code, 0, "kubectl delete pod: {}", deleted.stderr);
    purge_binary_logs(&pkey, &root).await;
    // As on a real cluster, the pod made again at once still names the
    // claim being deleted, which it then holds: it is deleted again until
    // the claim is gone and a new one made.
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(sb.client().await, "default");
    let deadline = std::time::Instant::now() + BOOT;
    loop {
        let p = sb.pods().await.get_opt(target).await.expect("get pod");
        let c = claims.get_opt(&claim).await.expect("get claim");
        let renewed = c
            .as_ref()
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none());
        match (p, renewed) {
            (Some(p), true) if p.metadata.uid != uid => break,
            (Some(p), false)
                if p.metadata.uid != uid && p.metadata.deletion_timestamp.is_none() =>
            {
                sb.kubectl()
                    .run(&["delete", "pod", target, "--wait=false"], None);
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{target} is not back on a new claim:\n{}",
            sb.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let r = reprovisioned(&sb, target, &root).await;
    assert_eq!(r.reason, "SourceCannotSend", "{r:#?}");
    sb.wait_source("db", target, &primary).await;
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked_replicated(&sb.pod_ip(target).await, &app, &acked).await;
    sb.stop_operator();
}

/// Waits for an Event of `reason` that names `pod`; returns its message.
async fn event_for(sb: &Sandbox, reason: &str, pod: &str) -> String {
    eventually(Duration::from_secs(60), reason, || async {
        sb.event_reasons("db")
            .lines()
            .find(|l| l.starts_with(reason) && l.contains(pod))
            .map(str::to_string)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_manual_repair_a_copy_waits_for_the_annotation_or_the_apis_reprovision() {
    let (store, mut sb, primary, root, app, pkey) =
        boot(&cluster_yaml("db", 3, false).replace("spec:\n", "spec:\n  replicaRepair: manual\n"))
            .await;
    let writer = Writer::start_as(pkey.clone(), app.clone()).await;
    writer.wait_acked(50).await;
    let replicas: Vec<&str> = ["db-0", "db-1", "db-2"]
        .into_iter()
        .filter(|p| *p != primary)
        .collect();

    // Reported, not repaired.
    let (first, second) = (replicas[0], replicas[1]);
    sql(
        &sb.pod_ip(first).await,
        &root,
        "CREATE DATABASE orca_errant",
    )
    .await;
    let needed = event_for(&sb, "ReprovisionNeeded", first).await;
    assert!(needed.contains("orca.dev/reprovision"), "{needed}");
    let c = sb.mysql_cluster("db").await;
    assert!(
        c.status.and_then(|s| s.reprovision).is_none(),
        "a copy started under manual repair"
    );

    // Asked for by the annotation.
    let annotated = sb.kubectl().run(
        &[
            "annotate",
            "mysqlcluster",
            "db",
            &format!("orca.dev/reprovision={first}"),
        ],
        None,
    );
    assert_eq!(annotated.code, 0, "kubectl annotate: {}", annotated.stderr);
    let r = reprovisioned(&sb, first, &root).await;
    assert_eq!(r.reason, "Requested", "{r:#?}");
    // Asked for, what it discards is still recorded and saved first.
    let started = event_for(&sb, "ReprovisionStarted", first).await;
    assert!(
        started.contains("transactions the primary lacks"),
        "{started}"
    );
    event_for(&sb, "TailSaved", first).await;
    let c = sb.mysql_cluster("db").await;
    assert!(
        !c.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orca.dev/reprovision"),
        "the annotation was not consumed"
    );

    // Asked for through the API (a healthy replica, even: a person may).
    sb.kubectl()
        .apply(&account("alice", &["get", "list", "update"], &[]));
    let api = ApiClient::new(sb.operator_api("only").await, Some(&token(&sb, "alice")));
    let ops = "/api/v1/clusters/default/db/operations";
    let (s, dry) = api
        .post(
            ops,
            &json!({"kind": "reprovision", "target": second, "dryRun": true}),
        )
        .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["dryRun"], true, "{dry}");
    let (s, bad) = api
        .post(ops, &json!({"kind": "reprovision", "target": "db-9"}))
        .await;
    assert!((400..500).contains(&s), "{s} {bad}");
    let (s, asked) = api
        .post(ops, &json!({"kind": "reprovision", "target": second}))
        .await;
    assert_eq!(s, 200, "{asked}");
    assert_eq!(asked["outcome"], "accepted", "{asked}");
    let r = eventually(REPAIR, "the second re-provisioning", || async {
        let c = sb.mysql_cluster("db").await;
        c.status
            .and_then(|s| s.reprovision)
            .filter(|r| r.pod == second && r.phase == "Succeeded")
    })
    .await;
    assert_eq!(r.reason, "Requested", "{r:#?}");
    assert_eq!(r.source.as_deref(), Some(first), "{r:#?}");
    let by = store
        .column(
            "orca",
            &format!("SELECT requested_by FROM audit WHERE action = 'reprovision' AND target = '{second}'"),
        )
        .await;
    assert!(
        by.iter().flatten().any(|b| b.contains("alice")),
        "the API's caller is not in the record: {by:?}"
    );

    sb.wait_source("db", first, &primary).await;
    sb.wait_source("db", second, &primary).await;
    writer.wait_acked(writer.count() + 20).await;
    let acked = writer.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    for pod in [first, second] {
        assert_acked_replicated(&sb.pod_ip(pod).await, &app, &acked).await;
    }
    sb.stop_operator();
}

/// The files under `dir` whose name starts with `prefix`.
fn files_named(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_named(&p, prefix));
        } else if name.starts_with(prefix) {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_former_primary_has_its_tail_saved_then_is_reprovisioned() {
    let (store, mut sb, old, root, app, pkey) = boot(&cluster_yaml("db", 3, false)).await;
    let before = Writer::start_as(pkey.clone(), app.clone()).await;
    before.wait_acked(50).await;
    let before = before.finish().await;

    // The replicas stop receiving; the primary acknowledges writes that
    // never replicate: its tail. Then a forced failover discards them.
    for pod in ["db-0", "db-1", "db-2"].into_iter().filter(|p| *p != old) {
        let k = sb.pod_ip(pod).await;
        assert_acked_replicated(&k, &app, &before).await;
        sql(&k, &root, "STOP SLAVE IO_THREAD").await;
    }
    let tail: Vec<u64> = (900_001..=900_010).collect();
    for id in &tail {
        sql(
            &pkey,
            &app,
            &format!("INSERT INTO app.w (id) VALUES ({id})"),
        )
        .await;
    }
    // A writer at the former primary's own address through the failover.
    let stale = Writer::persistent_on(pkey.clone(), app.clone()).await;
    let forced = sb.kubectl().run(
        &[
            "annotate",
            "mysqlcluster",
            "db",
            "orca.dev/force-failover=true",
        ],
        None,
    );
    assert_eq!(forced.code, 0, "kubectl annotate: {}", forced.stderr);
    let new = eventually(Duration::from_secs(60), "a new primary", || async {
        let p = sb.mysql_cluster("db").await.status?.primary?;
        (p != old).then_some(p)
    })
    .await;

    // The former primary: its tail saved on its volume, named in the
    // record, then copied over from a replica.
    let r = reprovisioned(&sb, &old, &root).await;
    assert_eq!(r.reason, "ErrantTransactions", "{r:#?}");
    let saved = event_for(&sb, "TailSaved", &old).await;
    let records = files_named(sb.dir.path(), &format!(".orca-tail-{}.json", r.id));
    assert_eq!(records.len(), 1, "the tail's record: {records:?}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).expect("the record"))
            .expect("json");
    let gtids = record["gtids"].as_str().expect("gtids").to_string();
    assert!(
        !gtids.is_empty() && saved.contains(&gtids),
        "{saved} / {record}"
    );
    let sql_file = records[0].with_file_name(record["file"].as_str().expect("file"));
    let events = std::fs::read_to_string(&sql_file).expect("the tail's events");
    for id in &tail {
        assert!(
            events.contains(&format!("@1={id}")),
            "the discarded write {id} is not in the saved tail"
        );
    }
    let details = store
        .column(
            "orca",
            &format!("SELECT detail FROM audit WHERE action IN ('reprovision', 'save-tail') AND target = '{old}'"),
        )
        .await;
    assert!(
        details.iter().flatten().any(|d| d.contains(&gtids)),
        "the tail's GTIDs are not in the store's record: {details:?}"
    );

    // It replicates from the new primary with what the new primary has.
    sb.wait_source("db", &old, &new).await;
    let npkey = sb.primary_endpoint("db", Some(&pkey)).await;
    let after = Writer::start_as(npkey.clone(), app.clone()).await;
    after.wait_acked(50).await;
    let first = after
        .first_ack()
        .expect("the new primary acknowledged a write");
    let late = stale.acked_after(first);
    let _ = stale.finish().await;
    assert!(
        late.is_empty(),
        "the former primary acknowledged {} writes after the new primary's first: {late:?}",
        late.len()
    );
    let after = after.finish().await;
    let okey = sb.pod_ip(&old).await;
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert_acked(&npkey, &app, &all).await;
    assert_acked_replicated(&okey, &app, &all).await;
    let on_old = support::writer::ids_on(&okey, &app).await;
    assert!(
        tail.iter().all(|id| !on_old.contains(id)),
        "the discarded tail is still on the re-provisioned former primary"
    );
    sb.stop_operator();
}
