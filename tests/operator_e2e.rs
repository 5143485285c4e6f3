//! The operator end to end in the sandbox: real mariadbd in pods, the real
//! kubectl, writes through the primary Service's endpoint, each test
//! checking that every acknowledged write survived.

mod support;

use std::time::Duration;

use orca::mysql::Credentials;
use orca::topology::InstanceKey;
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked, assert_acked_replicated};

const BOOT: Duration = Duration::from_secs(90);

/// Writes through `key` (the primary Service's endpoint) as `creds` until
/// `n` writes are acknowledged.
async fn write_through(key: &InstanceKey, creds: &Credentials, n: usize) -> Writer {
    let w = Writer::start_as(key.clone(), creds.clone()).await;
    w.wait_acked(n).await;
    w
}

/// Writes through the primary Service's current endpoint until `n` writes
/// are acknowledged; returns the endpoint, the credentials written with
/// and the writer. The writes go as the application account from the
/// cluster's Secret, never as root, whom read_only does not stop on
/// MariaDB: a write as root could land on a replica or a fenced server
/// and prove nothing.
async fn write_through_primary(sb: &Sandbox, n: usize) -> (InstanceKey, Credentials, Writer) {
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = write_through(&pkey, &app, n).await;
    (pkey, app, w)
}

/// The application account from the Secret has privileges on its own
/// database only (nothing on `*.*` but USAGE), and `replica` refuses its
/// writes: read_only stops it, as it does not stop root.
async fn app_account_is_confined(sb: &Sandbox, replica: &str) {
    use mysql_async::prelude::Queryable;
    let app = sb.app("db").await;
    assert_eq!(app.user, "app");
    let pkey = sb.primary_endpoint("db", None).await;
    let mut conn = orca::mysql::connect(&pkey, &app, Default::default())
        .await
        .expect("the application account connects to the primary");
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.expect("SHOW GRANTS");
    let _ = conn.disconnect().await;
    assert!(
        grants
            .iter()
            .any(|g| g.starts_with("GRANT ALL PRIVILEGES ON `app`.*")),
        "{grants:?}"
    );
    assert!(
        grants
            .iter()
            .all(|g| g.starts_with("GRANT USAGE ON *.*") || g.contains(" ON `app`.*")),
        "{grants:?}"
    );
    let rkey = sb.pod_ip(replica).await;
    let mut conn = orca::mysql::connect(&rkey, &app, Default::default())
        .await
        .expect("the application account connects to a replica");
    let refused = conn
        .query_drop("INSERT INTO app.w (id) VALUES (999999999999)")
        .await
        .expect_err("a replica takes no write from the application account");
    let _ = conn.disconnect().await;
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

/// Applies a three-pod cluster `db` and waits until it is healthy;
/// returns its primary.
async fn boot(sb: &Sandbox, semi_sync: bool) -> String {
    sb.kubectl().apply(&cluster_yaml("db", 3, semi_sync));
    sb.wait_healthy("db", BOOT).await
}

/// Sets the replicas of `db`.
fn scale(sb: &Sandbox, replicas: u32) {
    let patch = format!(r#"{{"spec":{{"replicas":{replicas}}}}}"#);
    sb.kubectl()
        .ok(&["patch", "mysql/db", "--type=merge", "-p", &patch]);
}

/// The new primary of `db` after it moved from `primary` (at `pkey`):
/// its pod and the primary Service's endpoint, which is that pod.
async fn moved(sb: &Sandbox, primary: &str, pkey: &InstanceKey) -> (String, InstanceKey) {
    let new = sb.primary("db").await;
    assert_ne!(new, primary);
    let new_key = sb.primary_endpoint("db", Some(pkey)).await;
    assert_eq!(new_key, sb.pod_ip(&new).await);
    (new, new_key)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_then_a_graceful_takeover_by_annotation() {
    let sb = Sandbox::cluster(&[]).await;
    let primary = boot(&sb, false).await;
    let pods = ["db-0", "db-1", "db-2"];
    let c = sb.mysql_cluster("db").await;
    let status = c.status.clone().unwrap();
    assert_eq!(status.ready_replicas, 3);
    for p in pods {
        let want = if p == primary { "primary" } else { "replica" };
        assert_eq!(sb.pod_role(p).await.as_deref(), Some(want), "{p}");
        if p != primary {
            sb.wait_source("db", p, &primary).await;
        }
    }
    // Services select the right pods.
    let pkey = sb.primary_endpoint("db", None).await;
    assert_eq!(pkey, sb.pod_ip(&primary).await);
    let mut replicas = sb.endpoints("db-replicas").await;
    replicas.sort();
    let mut want = Vec::new();
    for p in pods.iter().filter(|p| **p != primary) {
        want.push(sb.pod_ip(p).await);
    }
    want.sort();
    assert_eq!(replicas, want);
    let out = sb.kubectl().ok(&["get", "mysql", "-o", "wide"]);
    assert!(out.contains(&primary) && out.contains("True"), "{out}");

    let (_, app, w) = write_through_primary(&sb, 30).await;
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/graceful-takeover=auto"]);
    sb.wait_succeeded("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    let acked = w.finish().await;
    let (new, new_key) = moved(&sb, &primary, &pkey).await;
    assert_acked(&new_key, &app, &acked).await;
    sb.wait_source("db", &primary, &new).await;
    app_account_is_confined(&sb, &primary).await;
    assert_eq!(sb.pod_role(&primary).await.as_deref(), Some("replica"));
    assert_eq!(sb.pod_role(&new).await.as_deref(), Some("primary"));
    let c = sb.mysql_cluster("db").await;
    assert!(
        !c.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orca.dev/graceful-takeover"),
        "annotation consumed"
    );
    let events = sb.event_reasons("db");
    assert!(events.contains("GracefulTakeover"), "{events}");
    // A malformed annotation is refused with an Event, not ignored.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/force-failover=maybe"]);
    eventually(
        Duration::from_secs(20),
        "InvalidAnnotation event",
        || async {
            sb.event_reasons("db")
                .contains("InvalidAnnotation")
                .then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(10), "annotation removed", || async {
        let c = sb.mysql_cluster("db").await;
        (!c.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("orca.dev/force-failover"))
        .then_some(())
    })
    .await;
    assert_eq!(sb.primary("db").await, new, "nothing moved");
}

async fn failover_case(fault: &str) {
    let sb = Sandbox::cluster(&["--restart-delay", "20s"]).await;
    let primary = boot(&sb, true).await;
    let (pkey, app, w) = write_through_primary(&sb, 50).await;
    sb.kubectl().ok(&[
        "annotate",
        "pod",
        &primary,
        &format!("sandbox.orca.dev/fault={fault}"),
    ]);
    sb.wait_succeeded("db", "Failover", Duration::from_secs(60))
        .await;
    let acked = w.finish().await;
    let (new, new_key) = moved(&sb, &primary, &pkey).await;
    assert_eq!(sb.pod_role(&new).await.as_deref(), Some("primary"));
    assert_eq!(sb.pod_role(&primary).await.as_deref(), Some("replica"));
    assert_acked(&new_key, &app, &acked).await;
    let other = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|p| *p != primary && *p != new)
        .unwrap();
    sb.wait_source("db", other, &new).await;
    if fault == "hang" {
        sb.kubectl().ok(&[
            "annotate",
            "pod",
            &primary,
            "sandbox.orca.dev/fault=resume",
            "--overwrite",
        ]);
    }
    // The old primary returns (restarted, or resumed): fenced, then it
    // rejoins as a replica of the new one — or is reported if it cannot.
    eventually(
        Duration::from_secs(60),
        "the old primary back as a replica or reported",
        || async {
            let c = sb.mysql_cluster("db").await;
            let joined = c.status.as_ref()?.topology.iter().any(|i| {
                i.pod == primary
                    && i.source.as_deref() == Some(new.as_str())
                    && i.io_thread == Some(orca::k8s::crd::cluster::ThreadState::Running)
            });
            (joined || sb.event_reasons("db").contains("CannotRejoin")).then_some(())
        },
    )
    .await;
    let events = sb.event_reasons("db");
    assert!(events.contains("Failover"), "{events}");
    assert!(events.contains("DeadPrimary"), "{events}");
    // The returned primary never takes writes.
    let old_key = sb.pod_ip(&primary).await;
    let s = orca::mysql::probe::probe(&old_key, &sb.root("db").await, Default::default())
        .await
        .unwrap();
    assert!(s.is_read_only());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_primary_fails_over() {
    failover_case("crash").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigstop_of_the_primary_fails_over() {
    failover_case("hang").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_primary_pod_is_a_graceful_takeover() {
    let sb = Sandbox::cluster(&[]).await;
    let primary = boot(&sb, true).await;
    let (pkey, app, w) = write_through_primary(&sb, 30).await;
    sb.kubectl()
        .ok(&["delete", "pod", &primary, "--wait=false"]);
    sb.wait_succeeded("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    let acked = w.finish().await;
    let (new, new_key) = moved(&sb, &primary, &pkey).await;
    assert_acked(&new_key, &app, &acked).await;
    let events = sb.event_reasons("db");
    assert!(events.contains("PrimaryLeaving"), "{events}");
    assert!(
        !events.contains("DeadPrimary"),
        "a deletion became a failover: {events}"
    );
    // The pod comes back and rejoins as a replica.
    sb.wait_source("db", &primary, &new).await;
    sb.wait_healthy("db", Duration::from_secs(60)).await;

    // Draining the node of the new primary's pod (through the eviction
    // API, as kubectl drain does) is a graceful takeover too.
    let key = sb.primary_endpoint("db", None).await;
    let w = write_through(&key, &app, 20).await;
    sb.kubectl().ok(&[
        "drain",
        "sandbox-node",
        "--pod-selector",
        &format!("statefulset.kubernetes.io/pod-name={new}"),
        "--timeout=60s",
    ]);
    eventually(
        Duration::from_secs(60),
        "a second graceful takeover",
        || async {
            let p = sb.mysql_cluster("db").await.status?.primary?;
            (p != new).then_some(())
        },
    )
    .await;
    sb.wait_succeeded("db", "GracefulTakeover", Duration::from_secs(30))
        .await;
    let acked = w.finish().await;
    sb.kubectl().ok(&["uncordon", "sandbox-node"]);
    let newest = sb.primary_endpoint("db", Some(&key)).await;
    assert_acked(&newest, &app, &acked).await;
    let events = sb.event_reasons("db");
    let reasons: Vec<&str> = events
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        !reasons.contains(&"DeadPrimary") && !reasons.contains(&"Failover"),
        "a drain became a failover: {events}"
    );
    sb.wait_healthy("db", Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_three_to_five_to_three() {
    let sb = Sandbox::cluster(&[]).await;
    let primary = boot(&sb, false).await;
    let (_, app, w) = write_through_primary(&sb, 20).await;
    let acked = w.finish().await;
    scale(&sb, 5);
    eventually(BOOT, "5 ready", || async {
        let c = sb.mysql_cluster("db").await;
        (c.status?.ready_replicas == 5).then_some(())
    })
    .await;
    for p in ["db-3", "db-4"] {
        sb.wait_source("db", p, &primary).await;
        assert_acked(&sb.pod_ip(p).await, &app, &acked).await;
    }
    // Hand the primary role to the last pod, then scale it away: orca
    // moves the role before the pod goes.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/graceful-takeover=db-4"]);
    sb.wait_operation("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    assert_eq!(sb.primary("db").await, "db-4");
    scale(&sb, 3);
    eventually(
        Duration::from_secs(90),
        "back to 3 pods with a primary among them",
        || async {
            let c = sb.mysql_cluster("db").await;
            let s = c.status?;
            let p = s.primary?;
            let out = sb.kubectl().run(&["get", "pods", "-o", "name"], None);
            (out.success()
                && !out.stdout.contains("db-3")
                && !out.stdout.contains("db-4")
                && ["db-0", "db-1", "db-2"].contains(&p.as_str())
                && s.ready_replicas == 3)
                .then_some(())
        },
    )
    .await;
    let new_key = sb.primary_endpoint("db", None).await;
    assert_acked(&new_key, &app, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_restarts_in_steady_state_and_while_degraded() {
    let mut sb = Sandbox::cluster(&["--no-operator", "--restart-delay", "60s"]).await;
    sb.start_operator("op-a");
    sb.wait_crds_or_install().await;
    let primary = boot(&sb, true).await;
    let before = sb.mysql_cluster("db").await.status.unwrap();
    // Restart in steady state: nothing changes.
    sb.stop_operator();
    sb.start_operator("op-b");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = sb.mysql_cluster("db").await.status.unwrap();
    assert_eq!(after.primary, before.primary);
    assert_eq!(after.last_operation, before.last_operation);
    assert!(!sb.event_reasons("db").contains("Failover"));
    let (pkey, app, w) = write_through_primary(&sb, 20).await;
    // Stop it, break the cluster, start it again: it resumes and recovers.
    sb.stop_operator();
    sb.kubectl()
        .ok(&["annotate", "pod", &primary, "sandbox.orca.dev/fault=crash"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked = w.finish().await;
    sb.start_operator("op-c");
    sb.wait_succeeded("db", "Failover", Duration::from_secs(90))
        .await;
    let new_key = sb.primary_endpoint("db", Some(&pkey)).await;
    assert_acked(&new_key, &app, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_policy_manual_recovery_and_hooks() {
    let sb = Sandbox::cluster(&["--restart-delay", "120s"]).await;
    let (url, calls) = support::webhook::start(Duration::ZERO).await;
    sb.kubectl().apply(&format!(
        "apiVersion: orca.dev/v1alpha1\nkind: FailoverPolicy\nmetadata:\n  name: default\nspec:\n  autoFailover: false\n  promotionRules:\n  - pod: db-1\n    rule: must_not\n  hooks:\n    postFailover:\n    - webhook:\n        url: {url}\n"
    ));
    let primary = boot(&sb, true).await;
    assert_eq!(primary, "db-0");
    let (pkey, app, w) = write_through_primary(&sb, 30).await;
    // The writes settle on both replicas before the crash: this test is
    // about the policy. With a write in flight, db-1 (must_not) may hold
    // one db-2 lacks, and the recovery is then refused rather than lose
    // it (the chaos suite covers writes in flight).
    let acked = w.finish().await;
    for pod in ["db-1", "db-2"] {
        assert_acked_replicated(&sb.pod_ip(pod).await, &app, &acked).await;
    }
    sb.kubectl()
        .ok(&["annotate", "pod", "db-0", "sandbox.orca.dev/fault=crash"]);
    // Automatic failover is off: the failure is reported, nothing moves.
    eventually(Duration::from_secs(30), "a Failed condition", || async {
        let c = sb.mysql_cluster("db").await;
        c.status?
            .conditions
            .iter()
            .find(|c| {
                c.type_ == "Failed"
                    && c.status == "True"
                    && c.message.contains("automatic failover is off")
            })
            .map(|_| ())
    })
    .await;
    assert_eq!(sb.primary("db").await, "db-0");
    // A manual recovery, which the policy's rules still shape: db-1 must
    // not be promoted.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/recover=true"]);
    sb.wait_succeeded("db", "Recover", Duration::from_secs(60))
        .await;
    assert_eq!(sb.primary("db").await, "db-2");
    let new_key = sb.primary_endpoint("db", Some(&pkey)).await;
    assert_acked(&new_key, &app, &acked).await;
    // The post-failover webhook got the documented payload.
    let body = eventually(Duration::from_secs(10), "the webhook", || async {
        support::webhook::bodies(&calls).first().cloned()
    })
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["event"], "postFailover");
    assert_eq!(json["failed"], pkey.to_string());
    assert_eq!(json["successor"], new_key.to_string());
    // Acknowledging is consumed and recorded.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/acknowledge=checked"]);
    eventually(Duration::from_secs(20), "Acknowledged event", || async {
        sb.event_reasons("db")
            .contains("Acknowledged")
            .then_some(())
    })
    .await;
    // A force takeover to a named replica.
    sb.kubectl()
        .ok(&["annotate", "mysql/db", "orca.dev/force-takeover=db-1"]);
    let op = sb
        .wait_operation("db", "ForceTakeover", Duration::from_secs(60))
        .await;
    // db-1 is must_not in the policy: the takeover is refused, with the reason.
    assert_eq!(serde_json::to_value(op.phase).unwrap(), "Failed", "{op:?}");
    assert!(op.message.unwrap_or_default().contains("must_not"));
    assert_eq!(sb.primary("db").await, "db-2");
}
