//! The store in the operator: an operator started with a store (its own
//! `mariadbd`, apart from the cluster) keeps there what it does to a
//! cluster: the instances, the operation an annotation asks for with its
//! steps in the leader's epoch, and the audit of the annotation.

mod support;

use std::time::Duration;

use orca::plan::PlanKind;
use orca::store::{Door, Page, Store};
use support::cluster::cluster_yaml;
use support::sandbox::Sandbox;
use support::store::StoreServer;
use support::{eventually, orca};

const BOOT: Duration = Duration::from_secs(90);
const DB: &str = "orca_operator";

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_keeps_instances_operations_and_their_audit_in_the_store() {
    let s = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    let (dsn, password) = (s.dsn(DB), s.password());
    // The password as Kubernetes gives it: a mounted Secret's file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let file = file.display().to_string();
    sb.start_operator_with(
        "orca-a",
        &[
            ("ORCA_STORE_DSN", dsn.as_str()),
            ("ORCA_STORE_PASSWORD_FILE", file.as_str()),
        ],
    );
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let store = Store::open(s.config(DB)).await.expect("open the store");
    let cluster = "default/db";

    // The instances, as the worker saw them.
    let instances = eventually(Duration::from_secs(30), "3 instance rows", || async {
        let rows = store.instances(cluster).await.ok()?;
        (rows.len() == 3).then_some(rows)
    })
    .await;
    assert_eq!(
        instances.iter().filter(|i| i.role == "primary").count(),
        1,
        "{instances:?}"
    );

    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/graceful-takeover=auto"]);
    sb.wait_succeeded("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    let new = sb.primary("db").await;
    assert_ne!(new, primary);

    // The operation, with its steps, in the leader's epoch.
    let takeover = eventually(Duration::from_secs(30), "the takeover's record", || async {
        let rs = store.recoveries(cluster, Page::default()).await.ok()?;
        rs.into_iter()
            .find(|r| r.recovery.kind == PlanKind::GracefulTakeover.name())
    })
    .await;
    let r = &takeover.recovery;
    assert_eq!(r.cluster, cluster);
    assert_eq!(r.outcome, "succeeded", "{r:?}");
    let epoch = r.epoch.expect("the leader's epoch");
    assert!(epoch >= 1, "{r:?}");
    let steps = store.recovery_steps(&r.id).await.expect("steps");
    assert!(!steps.is_empty(), "{r:?}");

    // The audit: asked for by annotation.
    let audit = store.audit(cluster, Page::default()).await.expect("audit");
    let asked = audit
        .iter()
        .find(|a| a.door == Door::Annotation)
        .unwrap_or_else(|| panic!("no annotation audit: {audit:?}"));
    assert_eq!(asked.action, "graceful-takeover");
    assert_eq!(asked.requested_by, "annotation on default/db");
    assert_eq!(
        asked.detail.as_deref(),
        Some("orca.dev/graceful-takeover=auto")
    );

    // The operator said it keeps a store, and never its password.
    let log = sb.operator_log("orca-a");
    assert!(!log.contains("no store (--store-dsn)"), "{log}");
    assert!(!log.contains(&password), "the password in the log");
}

#[test]
fn a_password_in_the_dsn_is_refused_and_without_a_store_the_operator_says_so_once() {
    let (code, out, err) = orca(&[
        "operator",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--store-dsn",
        "mysql://orca:hunter2@127.0.0.1/orca",
    ]);
    assert_eq!(code, 2, "{err}{out}");
    assert!(err.contains("--store-password-file"), "{err}");
    assert!(
        !err.contains("hunter2") && !out.contains("hunter2"),
        "{err}{out}"
    );

    // No store: said once at start (then no cluster to reach here).
    let (code, out, err) = orca(&[
        "--log",
        "orca=info",
        "operator",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(code, 1, "{err}{out}");
    let log = format!("{out}{err}");
    assert_eq!(log.matches("no store (--store-dsn)").count(), 1, "{log}");
}
