//! The operation journal end to end: an operator killed (SIGKILL) in the
//! middle of a failover, right after its point of no return, and a new
//! operator that finds the journal in status and rolls the failover
//! forward — once, without starting it again, with every acknowledged
//! write on the new primary.

mod support;

use std::time::Duration;

use orca::k8s::crd::cluster::{OperationKind, OperationPhase};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);

/// The operator's own log line when it stops right after the reset.
const PAUSED: &str = "test pause after the point of no return";

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
    eventually(
        Duration::from_secs(60),
        "the first operator past the point of no return",
        || async { sb.operator_log("orca-a").contains(PAUSED).then_some(()) },
    )
    .await;
    // The journal it left: the failover, about to run (or having run) the
    // successor's reset, not yet known to have passed it.
    let journal = sb
        .mysql_cluster("db")
        .await
        .status
        .and_then(|s| s.operation)
        .expect("a journal in status");
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
            .is_some_and(|s| s.contains("reset all replication settings")),
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
    assert_eq!(writable, vec![target.clone()]);
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
    let events = sb.event_reasons("db");
    let reasons: Vec<&str> = events
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "OperationResumed").count(),
        1,
        "{events}"
    );
    assert!(
        !reasons.contains(&"Failover"),
        "a second failover: {events}"
    );
    let b = sb.operator_log("orca-b");
    assert!(!b.contains(PAUSED), "{b}");
    sb.stop_operator();
}
