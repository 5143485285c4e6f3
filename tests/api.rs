//! The HTTP API of `orca standalone --listen`, on a real topology of
//! `mariadbd` with a real store: reads, the bearer token, dry runs that
//! change nothing, refusals with their reason, bad requests answered with
//! a 4xx and one line, operations carried out and found again in the
//! store's history and audit, and no secret in any answer.

mod support;

use std::time::Duration;

use orca_sandbox::mysqld::{admin_credentials, repl_credentials};
use serde_json::{Value, json};
use support::api::{ApiClient, TOKEN, listening, serve_standalone};
use support::standalone::Standalone;
use support::store::StoreServer;
use support::writer::{Writer, assert_acked};
use support::{eventually, primary_and_two_replicas, snapshot, wait_replicating_from};

const CLUSTER: &str = "/api/v1/clusters/standalone/shop";
const OPS: &str = "/api/v1/clusters/standalone/shop/operations";

fn no_secret(body: &str) {
    for secret in [
        admin_credentials().password(),
        repl_credentials().password(),
    ] {
        assert!(!body.contains(secret), "a password in an answer: {body}");
    }
    assert!(!body.contains(TOKEN), "the token in an answer: {body}");
}

/// One line, no server error.
fn one_line_error(status: u16, body: &Value, want: u16) -> String {
    assert_eq!(status, want, "{body}");
    let e = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
    e.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_operations_and_history_through_the_api() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let store = StoreServer::start().await;
    let served = serve_standalone(
        "shop",
        &[p.clone(), r1.clone(), r2.clone()],
        Some((&store, "orca_api")),
    )
    .await;
    let api = &served.api;

    // Probes need no token.
    let (s, body) = api.anonymous().get("/healthz").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));

    // Reads need the token.
    let (s, body) = api.anonymous().get("/api/v1/clusters").await;
    one_line_error(s, &body, 401);
    let (s, body) = api
        .with_token("not-the-token-at-all")
        .get("/api/v1/clusters")
        .await;
    one_line_error(s, &body, 403);

    let (s, list) = api.get("/api/v1/clusters").await;
    assert_eq!(s, 200, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["namespace"], "standalone");
    assert_eq!(item["name"], "shop");
    assert_eq!(item["primary"], p.to_string(), "{list}");
    assert_eq!(item["healthy"], true, "{list}");
    assert_eq!(item["instances"], 3);

    let (s, view) = api.get(CLUSTER).await;
    assert_eq!(s, 200, "{view}");
    let instances = view["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    for i in instances {
        assert_eq!(i["reachable"], true, "{i}");
        assert!(i["snapshot"]["server_id"].is_number(), "{i}");
        let want = if i["key"] == p.to_string() {
            "primary"
        } else {
            "replica"
        };
        assert_eq!(i["role"], want, "{i}");
    }
    no_secret(&view.to_string());

    let (s, one) = api.get(&format!("/api/v1/instances/{r2}")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["cluster"], "shop");
    assert_eq!(one["instance"]["source"], p.to_string());
    let (s, body) = api.get("/api/v1/instances/127.0.0.1:1").await;
    one_line_error(s, &body, 404);
    let (s, body) = api.get("/api/v1/instances/host:notaport").await;
    one_line_error(s, &body, 400);
    let (s, body) = api.get("/api/v1/clusters/standalone/other").await;
    one_line_error(s, &body, 404);
    let (s, body) = api.get("/api/v1/nothing").await;
    one_line_error(s, &body, 404);
    let (s, leader) = api.get("/api/v1/leader").await;
    assert_eq!((s, &leader["isLeader"]), (200, &json!(true)), "{leader}");

    // A dry run answers the plan and changes nothing.
    let relocate = json!({"kind": "relocate", "target": r2.to_string(), "destination": r1.to_string(), "dryRun": true});
    let (s, plan) = api.post(OPS, &relocate).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["outcome"], "planned");
    assert_eq!(plan["plan"]["kind"], "relocate");
    assert!(
        !plan["plan"]["steps"].as_array().unwrap().is_empty(),
        "{plan}"
    );
    let src = snapshot(&r2).await.replica.expect("replicates").source;
    assert_eq!(src, p, "a dry run moved {r2}");

    // Refused with the reason: the primary cannot move up.
    let (s, body) = api
        .post(OPS, &json!({"kind": "move-up", "target": r1.to_string()}))
        .await;
    let why = one_line_error(s, &body, 409);
    assert!(why.contains(&r1.to_string()), "{why}");

    // Bad requests: a 4xx and one line, never a 5xx.
    let mut bad = vec![
        (api.post_raw(OPS, "{not json".into()).await, 400),
        (api.post(OPS, &json!({"kind": "fly"})).await, 400),
        (
            api.post(OPS, &json!({"kind": "relocate", "target": r2.to_string()}))
                .await,
            400,
        ),
        (
            api.post(OPS, &json!({"kind": "move-up", "target": "host:notaport"}))
                .await,
            400,
        ),
        (
            api.post(OPS, &json!({"kind": "move-up", "target": "nowhere"}))
                .await,
            409,
        ),
        (
            api.post(OPS, &json!({"kind": "recover", "extra": 1})).await,
            422,
        ),
        // An array is no operation request, even one with its fields in
        // order.
        (api.post(OPS, &json!(["acknowledge"])).await, 422),
        (
            api.post_raw(OPS, format!("{{\"kind\": \"{}\"}}", "x".repeat(100_000)))
                .await,
            413,
        ),
        (api.anonymous().post(OPS, &relocate).await, 401),
        (
            api.post("/api/v1/clusters/standalone/other/operations", &relocate)
                .await,
            404,
        ),
        (
            api.get(&format!("{CLUSTER}/recoveries?pageSize=0")).await,
            400,
        ),
        (api.get(&format!("{CLUSTER}/recoveries?page=-1")).await, 400),
        (api.get(OPS).await, 405),
    ];
    // Nothing to recover on a healthy cluster.
    bad.push((
        api.post(OPS, &json!({"kind": "recover", "dryRun": true}))
            .await,
        409,
    ));
    for ((s, body), want) in bad {
        one_line_error(s, &body, want);
    }

    // Real operations: a relocate, then a graceful takeover under writes.
    let mut real = relocate.clone();
    real["dryRun"] = json!(false);
    let (s, done) = api.post(OPS, &real).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["outcome"], "succeeded", "{done}");
    let relocate_id = done["id"].as_str().unwrap().to_string();
    wait_replicating_from(&r2, &r1).await;

    // Instance operations: replication stopped and started again; a
    // replica is never made writable.
    let (s, done) = api
        .post(
            OPS,
            &json!({"kind": "stop-replication", "target": r2.to_string()}),
        )
        .await;
    assert_eq!((s, &done["outcome"]), (200, &json!("succeeded")), "{done}");
    let stopped = snapshot(&r2).await.replica.expect("still configured");
    assert!(!stopped.sql_running, "{stopped:?}");
    let (s, done) = api
        .post(
            OPS,
            &json!({"kind": "start-replication", "target": r2.to_string()}),
        )
        .await;
    assert_eq!((s, &done["outcome"]), (200, &json!("succeeded")), "{done}");
    wait_replicating_from(&r2, &r1).await;
    let (s, body) = api
        .post(
            OPS,
            &json!({"kind": "set-writable", "target": r2.to_string()}),
        )
        .await;
    one_line_error(s, &body, 409);
    assert!(snapshot(&r2).await.is_read_only());

    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(30).await;
    let (s, done) = api
        .post(
            OPS,
            &json!({"kind": "graceful-takeover", "target": r1.to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["outcome"], "succeeded", "{done}");
    assert_eq!(done["record"]["successor"], r1.to_string(), "{done}");
    let acked = w.finish().await;
    assert_acked(&r1, &admin_credentials(), &acked).await;
    assert!(!snapshot(&r1).await.is_read_only());
    wait_replicating_from(&p, &r1).await;
    no_secret(&done.to_string());
    let (_, view) = api.get(CLUSTER).await;
    assert_eq!(view["primary"], r1.to_string(), "{view}");
    let kinds: Vec<&str> = view["recentOperations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "relocate",
            "stop-replication",
            "start-replication",
            "graceful-takeover"
        ],
        "{view}"
    );

    // Downtime: the instance is never promoted while in it.
    let (s, body) = api
        .post(OPS, &json!({"kind": "begin-downtime", "target": p.to_string(), "duration": "10m", "comment": "disk swap"}))
        .await;
    assert_eq!((s, &body["outcome"]), (200, &json!("done")), "{body}");
    let (s, body) = api
        .post(
            OPS,
            &json!({"kind": "graceful-takeover", "target": p.to_string(), "dryRun": true}),
        )
        .await;
    let why = one_line_error(s, &body, 409);
    assert!(why.contains("must_not"), "{why}");
    let (s, body) = api
        .post(
            OPS,
            &json!({"kind": "end-downtime", "target": p.to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = api
        .post(
            OPS,
            &json!({"kind": "end-downtime", "target": p.to_string()}),
        )
        .await;
    one_line_error(s, &body, 409);
    let (s, body) = api.post(OPS, &json!({"kind": "acknowledge"})).await;
    assert_eq!(s, 200, "{body}");

    // The history, from the store, newest first, and who asked.
    let page = eventually(
        Duration::from_secs(30),
        "both operations in the store",
        || async {
            let (s, page) = api.get(&format!("{CLUSTER}/recoveries?pageSize=10")).await;
            assert_eq!(s, 200, "{page}");
            let ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] != "fence")
                .filter_map(|r| r["kind"].as_str().map(str::to_string))
                .collect();
            (ids.len() >= 2).then_some(page)
        },
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert!(
        items.iter().any(|r| r["id"] == relocate_id.as_str()),
        "{page}"
    );
    assert_eq!(page["pageSize"], 10);
    let audit = eventually(Duration::from_secs(30), "the audit", || async {
        let (s, page) = api.get(&format!("{CLUSTER}/audit")).await;
        assert_eq!(s, 200, "{page}");
        let rows = page["items"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .any(|r| r["action"] == "acknowledge")
            .then_some(rows)
    })
    .await;
    let relocated = audit
        .iter()
        .find(|r| {
            r["action"] == "relocate" && r["detail"].as_str().unwrap_or("").starts_with("succeeded")
        })
        .unwrap_or_else(|| panic!("no relocate in {audit:?}"));
    assert_eq!(relocated["door"], "api");
    assert_eq!(relocated["requested_by"], "token");
    assert_eq!(relocated["target"], r2.to_string());
    // Refusals are audited with their reason; a dry run asks for
    // nothing and is not.
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "move-up"
                && r["detail"].as_str().unwrap_or("").starts_with("409")),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|r| r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("point of no return")),
        "{audit:?}"
    );
    no_secret(&format!("{page}{audit:?}"));
    drop(served);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_or_a_store_the_api_says_why() {
    let (_c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut cmd = Standalone::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_orca")),
        "open",
        &[p.clone(), r1.clone(), r2.clone()],
    );
    cmd.args(["--listen", "127.0.0.1:0", "--api-open-reads"]);
    let orca = Standalone::spawn(cmd);
    let api = ApiClient::new(listening(&orca).await, None);
    let view = eventually(Duration::from_secs(30), "a view", || async {
        let (s, v) = api.get("/api/v1/clusters/standalone/open").await;
        (s == 200).then_some(v)
    })
    .await;
    assert_eq!(view["primary"], p.to_string());
    // No token configured: operations are refused, even a dry run.
    let (s, body) = api
        .post(
            "/api/v1/clusters/standalone/open/operations",
            &json!({"kind": "force-failover", "dryRun": true}),
        )
        .await;
    let why = one_line_error(s, &body, 403);
    assert!(why.contains("--api-token-file"), "{why}");
    // No store: no history.
    let (s, body) = api.get("/api/v1/clusters/standalone/open/recoveries").await;
    let why = one_line_error(s, &body, 503);
    assert!(why.contains("--store-dsn"), "{why}");
    // The OpenAPI document is served and lists the operations.
    let (s, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/clusters/{namespace}/{name}/operations"]["post"].is_object());
    // Nothing changed.
    assert!(!snapshot(&p).await.is_read_only());
}
