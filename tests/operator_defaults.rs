//! Safe defaults of the operator, end to end in the sandbox: what orca
//! cannot read never reads as permission. A FailoverPolicy orca cannot
//! read stops every action (no failover while it lasts), and a malformed
//! promotion rule on a pod (`must-not` for `must_not`) makes that pod
//! unpromotable, each with an Event. Writes go as the application account
//! and must all survive.

mod support;

use std::time::Duration;

use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked, assert_acked_replicated};

const BOOT: Duration = Duration::from_secs(90);

/// The lines of `db`'s Events whose reason is `reason`.
fn events_of(sb: &Sandbox, reason: &str) -> Vec<String> {
    sb.event_reasons("db")
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(reason))
        .map(String::from)
        .collect()
}

/// Waits for `db`'s condition `type_` to be True with `reason`; returns
/// its message.
async fn wait_condition(sb: &Sandbox, type_: &str, reason: &str) -> String {
    eventually(
        Duration::from_secs(30),
        &format!("condition {type_} True ({reason})"),
        || async {
            let c = sb.mysql_cluster("db").await;
            c.status?
                .conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == "True" && c.reason == reason)
                .map(|c| c.message.clone())
        },
    )
    .await
}

/// Writes as the application account through the primary Service until
/// `n` writes are acknowledged, stops, and waits until both replicas have
/// them; returns the acknowledged ids.
async fn write_and_replicate(sb: &Sandbox, n: usize, replicas: &[&str]) -> Vec<u64> {
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = Writer::start_as(pkey, app.clone()).await;
    w.wait_acked(n).await;
    let acked = w.finish().await;
    for r in replicas {
        assert_acked_replicated(&sb.pod_ip(r).await, &app, &acked).await;
    }
    acked
}

#[tokio::test(flavor = "multi_thread")]
async fn a_must_not_typo_is_never_promoted() {
    let sb = Sandbox::cluster(&["--restart-delay", "120s"]).await;
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    let primary = sb.wait_healthy("db", BOOT).await;
    assert_eq!(primary, "db-0");
    // db-1 would be the candidate: db-2 is prefer_not, db-1 is
    // neutral... unless its typo reads as the most restrictive rule.
    sb.kubectl().ok(&[
        "annotate",
        "pod",
        "db-2",
        "orca.dev/promotion-rule=prefer_not",
    ]);
    sb.kubectl().ok(&[
        "annotate",
        "pod",
        "db-1",
        "orca.dev/promotion-rule=must-not",
    ]);
    let invalid = eventually(Duration::from_secs(20), "InvalidAnnotation", || async {
        let e = events_of(&sb, "InvalidAnnotation");
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        invalid[0].contains("db-1") && invalid[0].contains("must-not"),
        "{invalid:?}"
    );
    let degraded = wait_condition(&sb, "Degraded", "InvalidAnnotation").await;
    assert!(degraded.contains("db-1"), "{degraded}");
    // The pod cannot be chosen by hand either.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/graceful-takeover=db-1"]);
    let op = sb
        .wait_operation("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    assert_eq!(serde_json::to_value(op.phase).unwrap(), "Failed", "{op:?}");
    assert!(
        op.message
            .as_deref()
            .unwrap_or_default()
            .contains("must_not"),
        "{op:?}"
    );
    assert_eq!(sb.primary("db").await, "db-0");

    let acked = write_and_replicate(&sb, 30, &["db-1", "db-2"]).await;
    sb.kubectl()
        .ok(&["annotate", "pod", "db-0", "sandbox.orca.dev/fault=crash"]);
    sb.wait_succeeded("db", "Failover", Duration::from_secs(60))
        .await;
    assert_eq!(
        sb.primary("db").await,
        "db-2",
        "the typo'd pod was promoted"
    );
    let new_key = sb.primary_endpoint("db", None).await;
    assert_eq!(new_key, sb.pod_ip("db-2").await);
    assert_acked(&new_key, &sb.app("db").await, &acked).await;
    // One Event for the pod and value, however many rounds saw it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let invalid = events_of(&sb, "InvalidAnnotation");
    assert_eq!(
        invalid.iter().filter(|l| l.contains("db-1")).count(),
        1,
        "{invalid:?}"
    );
    // Fixed, the annotation means what it says and the condition clears.
    sb.kubectl().ok(&[
        "annotate",
        "pod",
        "db-1",
        "orca.dev/promotion-rule=neutral",
        "--overwrite",
    ]);
    eventually(
        Duration::from_secs(20),
        "the annotation gone from Degraded",
        || async {
            let c = sb.mysql_cluster("db").await;
            c.status?
                .conditions
                .iter()
                .find(|c| {
                    c.type_ == "Degraded"
                        && c.reason != "InvalidAnnotation"
                        && !c.message.contains("orca.dev/promotion-rule")
                })
                .map(|_| ())
        },
    )
    .await;
}

/// A policy the API server holds but orca cannot decode: its Job
/// template (free-form in the CRD's schema) has a string where a Job's
/// spec takes a number. A read that fails says nothing about the policy:
/// it is not "no policy" (automatic failover, no veto).
const UNREADABLE_POLICY: &str = "apiVersion: orca.dev/v1alpha1
kind: FailoverPolicy
metadata:
  name: default
spec:
  hooks:
    preFailover:
    - job:
        template:
          spec:
            parallelism: many
";

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_policy_stops_failover_until_it_reads() {
    let sb = Sandbox::cluster(&["--restart-delay", "120s"]).await;
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    let primary = sb.wait_healthy("db", BOOT).await;
    let acked = write_and_replicate(
        &sb,
        30,
        &["db-0", "db-1", "db-2"]
            .into_iter()
            .filter(|p| *p != primary)
            .collect::<Vec<_>>(),
    )
    .await;
    let pkey = sb.primary_endpoint("db", None).await;

    sb.kubectl().apply(UNREADABLE_POLICY);
    let unreadable = eventually(Duration::from_secs(20), "PolicyUnreadable", || async {
        let e = events_of(&sb, "PolicyUnreadable");
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        unreadable[0].contains("FailoverPolicy default cannot be decoded"),
        "{unreadable:?}"
    );
    let failed = wait_condition(&sb, "Failed", "PolicyUnreadable").await;
    assert!(failed.contains("no failover"), "{failed}");
    // The primary dies: nothing moves while the policy cannot be read.
    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=crash"]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let c = sb.mysql_cluster("db").await;
    let status = c.status.unwrap();
    assert_eq!(status.primary.as_deref(), Some(primary.as_str()));
    assert!(
        status.last_operation.is_none(),
        "{:?}",
        status.last_operation
    );
    assert!(events_of(&sb, "Failover").is_empty());
    assert!(events_of(&sb, "DeadPrimary").is_empty());
    // One Event for the whole time it could not be read.
    assert_eq!(events_of(&sb, "PolicyUnreadable").len(), 1);
    // The policy goes (none means the documented defaults): orca reads,
    // finds the dead primary and fails over.
    sb.kubectl().ok(&["delete", "failoverpolicy", "default"]);
    sb.wait_succeeded("db", "Failover", Duration::from_secs(60))
        .await;
    assert!(!events_of(&sb, "PolicyReadable").is_empty());
    let new_key = sb.primary_endpoint("db", Some(&pkey)).await;
    assert_ne!(sb.primary("db").await, primary);
    assert_acked(&new_key, &sb.app("db").await, &acked).await;
}
