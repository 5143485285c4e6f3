//! The operation journal end to end: an operator killed (SIGKILL) in the
//! middle of an operation, and a new operator that finds the journal in
//! status and goes on — once, without starting the operation again, with
//! every acknowledged write kept: a failover killed right after its point
//! of no return is rolled forward, a graceful takeover killed right
//! before it is rolled back.

mod support;

use std::time::Duration;

use orca::k8s::crd::cluster::{OperationKind, OperationPhase};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);

/// The operator's own log line when it stops right after the point of no
/// return (a failover's epoch, a graceful takeover's reset).
const PAUSED: &str = "test pause after the point of no return";
/// ... and right before it.
const PAUSED_BEFORE: &str = "test pause before the point of no return";

/// The writable instances among the pods that answer.
async fn writable(sb: &Sandbox) -> Vec<String> {
    let root = sb.root("db").await;
    let mut writable = Vec::new();
    for pod in ["db-0", "db-1", "db-2"] {
        let key = sb.pod_ip(pod).await;
        if let Ok(s) = orca::mysql::probe::probe(&key, &root, Default::default()).await
            && !s.is_read_only()
        {
            writable.push(pod.to_string());
        }
    }
    writable
}

/// The Events of `db` as kubectl prints them, and their reasons.
fn reasons(sb: &Sandbox) -> (String, Vec<String>) {
    let events = sb.event_reasons("db");
    let reasons = events
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    (events, reasons)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_killed_past_the_point_of_no_return_is_rolled_forward() {
    // The crashed primary stays down long enough for the whole test.
    let mut sb = Sandbox::cluster(&["--no-operator", "--restart-delay", "60s"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator_with(
        "orca-a",
        &[("ORCA_TEST_PAUSE_AFTER_POINT_OF_NO_RETURN_MS", "300000")],
    );
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = Writer::start_as(pkey.clone(), app.clone()).await;
    w.wait_acked(50).await;

    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=crash"]);
    sb.wait_operator_line(
        "orca-a",
        PAUSED,
        "the first operator past the point of no return",
    )
    .await;
    // The journal it left: the failover, about to record (or having
    // recorded) the epoch on the successor, its point of no return, not
    // yet known to have passed it.
    let journal = sb.journal("db", "paused past the point of no return").await;
    assert_eq!(journal.kind, OperationKind::Failover, "{journal:?}");
    assert_eq!(
        journal.failed.as_deref(),
        Some(primary.as_str()),
        "{journal:?}"
    );
    assert!(!journal.point_of_no_return_passed, "{journal:?}");
    assert!(
        journal
            .step_name
            .as_deref()
            .is_some_and(|s| s.contains("record the leader's epoch")),
        "{journal:?}"
    );
    let target = journal.target.clone().expect("a successor");
    assert_ne!(target, primary);
    sb.kill_operator();
    let acked = w.finish().await;

    // A new operator: it leads once the old lease expires, and goes on.
    sb.start_operator("orca-b");
    let last = eventually(
        Duration::from_secs(90),
        "the failover rolled forward",
        || async {
            let s = sb.mysql_cluster("db").await.status?;
            let op = s.last_operation?;
            (s.operation.is_none() && op.phase.is_finished()).then_some(op)
        },
    )
    .await;
    assert_eq!(last.kind, OperationKind::Failover, "{last:?}");
    assert_eq!(last.phase, OperationPhase::Succeeded, "{last:?}");
    assert!(
        last.message
            .as_deref()
            .is_some_and(|m| m.contains("rolled forward")),
        "{last:?}"
    );
    // Status, the role label and the primary Service name the successor;
    // the old primary, still down, is kept as one to fence when it
    // answers.
    let status = sb.mysql_cluster("db").await.status.expect("a status");
    assert_eq!(status.primary.as_deref(), Some(target.as_str()));
    assert_eq!(status.pending_fences, vec![primary.clone()], "{status:?}");
    let target_key = sb.pod_ip(&target).await;
    eventually(Duration::from_secs(30), "the labels follow", || async {
        (sb.pod_role(&target).await.as_deref() == Some("primary")).then_some(())
    })
    .await;
    assert_eq!(sb.primary_endpoint("db", Some(&pkey)).await, target_key);
    assert_acked(&target_key, &app, &acked).await;
    // Exactly one writable instance among those that answer: the new
    // primary (the crashed one is still down).
    assert_eq!(writable(&sb).await, vec![target.clone()]);
    // The third pod replicates from the new primary.
    let other = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|p| *p != primary && *p != target)
        .expect("a third pod");
    eventually(
        Duration::from_secs(40),
        "the third pod under the new primary",
        || async {
            let c = sb.mysql_cluster("db").await;
            c.status?
                .topology
                .iter()
                .find(|i| i.pod == other && i.source.as_deref() == Some(target.as_str()))
                .map(|_| ())
        },
    )
    .await;
    // Resumed once, never run again.
    let (events, reasons) = reasons(&sb);
    assert_eq!(
        reasons.iter().filter(|r| *r == "OperationResumed").count(),
        1,
        "{events}"
    );
    assert!(
        !reasons.iter().any(|r| r == "Failover"),
        "a second failover: {events}"
    );
    let b = sb.operator_log("orca-b");
    assert!(!b.contains(PAUSED), "{b}");
    sb.stop_operator();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_killed_before_the_point_of_no_return_is_rolled_back() {
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator_with(
        "orca-a",
        &[("ORCA_TEST_PAUSE_BEFORE_POINT_OF_NO_RETURN_MS", "300000")],
    );
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = Writer::start_as(pkey.clone(), app.clone()).await;
    w.wait_acked(50).await;
    let target = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|p| *p != primary)
        .expect("a replica");
    sb.kubectl().ok(&[
        "annotate",
        "mysql/db",
        &format!("orca.dev/graceful-takeover={target}"),
    ]);
    sb.wait_operator_line(
        "orca-a",
        PAUSED_BEFORE,
        "the first operator right before the point of no return",
    )
    .await;
    let journal = sb
        .journal("db", "paused before the point of no return")
        .await;
    assert_eq!(journal.kind, OperationKind::GracefulTakeover, "{journal:?}");
    assert_eq!(journal.target.as_deref(), Some(target), "{journal:?}");
    assert_eq!(
        journal.failed.as_deref(),
        Some(primary.as_str()),
        "{journal:?}"
    );
    assert!(!journal.point_of_no_return_passed, "{journal:?}");
    // The old primary is fenced: nothing is writable.
    assert_eq!(writable(&sb).await, Vec::<String>::new());
    sb.kill_operator();
    let acked = w.finish().await;

    sb.start_operator("orca-b");
    let last = eventually(
        Duration::from_secs(90),
        "the takeover rolled back",
        || async {
            let s = sb.mysql_cluster("db").await.status?;
            let op = s.last_operation?;
            (s.operation.is_none() && op.phase.is_finished()).then_some(op)
        },
    )
    .await;
    assert_eq!(last.kind, OperationKind::GracefulTakeover, "{last:?}");
    assert_eq!(last.phase, OperationPhase::RolledBack, "{last:?}");
    // The old primary keeps the role, takes writes again, and is the
    // only writable instance; the target replicates from it again.
    let status = sb.mysql_cluster("db").await.status.expect("a status");
    assert_eq!(status.primary.as_deref(), Some(primary.as_str()));
    assert_eq!(sb.pod_role(&primary).await.as_deref(), Some("primary"));
    assert_eq!(sb.primary_endpoint("db", None).await, pkey);
    let again = Writer::start_as(pkey.clone(), app.clone()).await;
    again.wait_acked(20).await;
    let acked_again = again.finish().await;
    assert_acked(&pkey, &app, &acked).await;
    assert_acked(&pkey, &app, &acked_again).await;
    assert_eq!(writable(&sb).await, vec![primary.clone()]);
    eventually(
        Duration::from_secs(40),
        "the target under the old primary again",
        || async {
            let c = sb.mysql_cluster("db").await;
            c.status?
                .topology
                .iter()
                .find(|i| {
                    i.pod == target
                        && i.source.as_deref() == Some(primary.as_str())
                        && i.io_thread == Some(orca::k8s::crd::cluster::ThreadState::Running)
                })
                .map(|_| ())
        },
    )
    .await;
    // The request is consumed: the takeover is not run again.
    let c = sb.mysql_cluster("db").await;
    assert!(
        !c.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orca.dev/graceful-takeover"),
        "the annotation is still there"
    );
    let (events, reasons) = reasons(&sb);
    assert_eq!(
        reasons.iter().filter(|r| *r == "OperationResumed").count(),
        1,
        "{events}"
    );
    assert!(
        !reasons.iter().any(|r| r == "GracefulTakeover"),
        "the takeover ran again: {events}"
    );
    sb.stop_operator();
}
