//! The HTTP API of `orca operator`, two replicas against the sandbox:
//! callers are ServiceAccounts whose tokens the API server reviews and
//! whose rights RBAC grants; a follower answers reads from status and
//! names the leader for operations; the leader answers a dry run with the
//! plan and carries out a graceful takeover asked through the API as the
//! annotation would (status, an Event), answering with its record, with
//! every acknowledged write surviving.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::api::{ApiClient, account, token};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);

fn error(status: u16, body: &Value, want: u16) -> String {
    assert_eq!(status, want, "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_api_reviews_callers_and_carries_out_operations_through_the_leader() {
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    for id in ["orca-a", "orca-b"] {
        sb.start_operator_with(id, &[("ORCA_LISTEN", "127.0.0.1:0")]);
    }
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    sb.kubectl()
        .apply(&account("alice", &["get", "list", "update"], &[]));
    sb.kubectl().apply(&account("bob", &[], &["get"]));
    let (alice, bob) = (token(&sb, "alice"), token(&sb, "bob"));
    let a = ApiClient::new(sb.operator_api("orca-a").await, Some(&alice));
    let b = ApiClient::new(sb.operator_api("orca-b").await, Some(&alice));

    // Who leads, as both replicas say.
    let (s, la) = a.get("/api/v1/leader").await;
    assert_eq!(s, 200, "{la}");
    let (_, lb) = b.get("/api/v1/leader").await;
    let leading = la["leader"].as_str().unwrap().to_string();
    assert_eq!(lb["leader"], leading.as_str(), "{la} {lb}");
    let (leader, follower) = if leading == "orca-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };

    // Reads, on both: the follower from status, the leader from its
    // worker (with snapshots).
    let primary_ip = sb.pod_ip(&primary).await.to_string();
    for (api, snapshots) in [(leader, true), (follower, false)] {
        let view = eventually(Duration::from_secs(30), "the cluster's view", || async {
            let (s, v) = api.get("/api/v1/clusters/default/db").await;
            (s == 200 && v["primary"] == primary_ip.as_str()).then_some(v)
        })
        .await;
        let instances = view["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 3, "{view}");
        assert!(
            instances.iter().any(|i| i["pod"] == primary.as_str()),
            "{view}"
        );
        assert_eq!(instances[0]["snapshot"].is_object(), snapshots, "{view}");
        let (s, list) = api.get("/api/v1/clusters").await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(list["items"][0]["name"], "db");
    }

    // Authentication and RBAC.
    let (s, body) = leader.anonymous().get("/api/v1/clusters").await;
    error(s, &body, 401);
    let (s, body) = leader
        .with_token("not-a-token")
        .get("/api/v1/clusters")
        .await;
    error(s, &body, 401);
    let bob_api = leader.with_token(&bob);
    let (s, _) = bob_api.get("/api/v1/clusters/default/db").await;
    assert_eq!(s, 200, "bob may get the cluster");
    let (s, body) = bob_api.get("/api/v1/clusters").await;
    let why = error(s, &body, 403);
    assert!(
        why.contains("system:serviceaccount:default:bob") && why.contains("list"),
        "{why}"
    );
    let ops = "/api/v1/clusters/default/db/operations";
    let replica = if primary == "db-0" { "db-1" } else { "db-0" };
    let takeover = json!({"kind": "graceful-takeover", "target": replica});
    let (s, body) = bob_api.post(ops, &takeover).await;
    let why = error(s, &body, 403);
    assert!(why.contains("update"), "{why}");

    // A follower names the leader.
    let (s, body) = follower.post(ops, &takeover).await;
    error(s, &body, 503);
    assert_eq!(body["leader"], leading.as_str(), "{body}");

    // The leader: a dry run changes nothing; a refused target says why.
    let mut dry = takeover.clone();
    dry["dryRun"] = json!(true);
    let (s, plan) = leader.post(ops, &dry).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["outcome"], "planned", "{plan}");
    assert_eq!(
        plan["plan"]["successor"],
        sb.pod_ip(replica).await.to_string()
    );
    assert_eq!(sb.primary("db").await, primary);
    let (s, body) = leader
        .post(ops, &json!({"kind": "force-takeover", "target": "db-9"}))
        .await;
    error(s, &body, 409);

    // The real one, under writes as the application account.
    let pkey = sb.primary_endpoint("db", None).await;
    let app = sb.app("db").await;
    let w = Writer::start_as(pkey.clone(), app.clone()).await;
    w.wait_acked(30).await;
    let (s, done) = leader.post(ops, &takeover).await;
    assert_eq!(s, 200, "{done}");
    // The answer waits for the worker's record.
    assert_eq!(done["outcome"], "succeeded", "{done}");
    assert!(
        done["id"]
            .as_str()
            .is_some_and(|i| i.contains("graceful-takeover")),
        "{done}"
    );
    assert!(
        !done["record"]["steps"].as_array().unwrap().is_empty(),
        "{done}"
    );
    sb.wait_succeeded("db", "GracefulTakeover", Duration::from_secs(60))
        .await;
    let acked = w.finish().await;
    assert_eq!(sb.primary("db").await, replica);
    let new_key = sb.pod_ip(replica).await;
    assert_acked(&new_key, &app, &acked).await;
    assert!(sb.event_reasons("db").contains("GracefulTakeover"));
    // The annotations it wrote are consumed.
    let c = sb.mysql_cluster("db").await;
    let annotations = c.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("orca.dev/graceful-takeover")
            && !annotations.contains_key("orca.dev/requested-by"),
        "{annotations:?}"
    );
    // The leader's view follows.
    let new_ip = new_key.to_string();
    eventually(
        Duration::from_secs(30),
        "the new primary in the view",
        || async {
            let (_, v) = leader.get("/api/v1/clusters/default/db").await;
            (v["primary"] == new_ip.as_str()).then_some(())
        },
    )
    .await;
    // A refactoring through the API: the third pod below the old primary,
    // as `orca.dev/operation` asks the worker.
    let third = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|p| *p != primary && *p != replica)
        .unwrap();
    let relocate = json!({"kind": "relocate", "target": third, "destination": primary});
    let (s, done) = leader.post(ops, &relocate).await;
    assert_eq!((s, &done["outcome"]), (200, &json!("succeeded")), "{done}");
    assert_eq!(done["record"]["kind"], "relocate", "{done}");
    sb.wait_succeeded("db", "Operation", Duration::from_secs(60))
        .await;
    sb.wait_source("db", third, &primary).await;
    let (s, body) = leader
        .post(ops, &json!({"kind": "move-up", "target": replica}))
        .await;
    error(s, &body, 409);
    // A downtime is the pod's annotation.
    let (s, body) = leader
        .post(
            ops,
            &json!({"kind": "begin-downtime", "target": primary, "duration": "10m"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let pod = sb.kubectl().json(&["get", "pod", &primary, "-o", "json"]);
    assert!(
        pod["metadata"]["annotations"]["orca.dev/downtime"].is_string(),
        "{pod}"
    );
}
