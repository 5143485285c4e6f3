//! The operator at steady state, in the sandbox with real mariadbd: an
//! idle Healthy cluster costs the API server (almost) nothing — no
//! object applied again, no label or Service patched, status written only
//! for its volatile figures, nothing read by GET or LIST (the workers and
//! the reconciler read from watch caches) — and a change is reconciled
//! from its watch event, not from a periodic pass. The API server's
//! request log (`/debug/requests`) counts what the operator sends (its
//! User-Agent is `orca-operator`).

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use orca::k8s::OPERATOR_AGENT;
use orca_sandbox::apiserver::requests::{RequestCount, RequestKey, RequestLog};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;

const BOOT: Duration = Duration::from_secs(90);

/// Longer than the period of the volatile figures (30 s), so that a
/// status written every round would show many times over.
const WINDOW: Duration = Duration::from_secs(40);

fn operator(k: &RequestKey) -> bool {
    k.agent == OPERATOR_AGENT && !k.is_lease()
}

fn show(lines: &[RequestCount]) -> String {
    lines
        .iter()
        .map(|r| {
            format!(
                "{} {} {}/{} ×{}",
                r.key.verb, r.key.group, r.key.resource, r.key.subresource, r.count
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_cluster_is_quiet_and_changes_come_from_watch_events() {
    let sb = Sandbox::cluster(&[]).await;
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    let primary = sb.wait_healthy("db", BOOT).await;
    let client = sb.client().await;
    // The writes that end the boot (the replicas' roles, the last status).
    tokio::time::sleep(Duration::from_secs(5)).await;

    RequestLog::reset(&client)
        .await
        .expect("reset the request log");
    tokio::time::sleep(WINDOW).await;
    let log = RequestLog::fetch(&client).await.expect("the request log");
    let everything = show(&log.lines(operator));

    // Writes: at most the status's volatile figures, once per 30 s.
    let writes = log.lines(|k| operator(k) && k.is_write());
    let status_writes = log.count(|k| {
        operator(k) && k.is_write() && k.resource == "mysqlclusters" && k.subresource == "status"
    });
    assert!(
        writes
            .iter()
            .all(|r| r.key.resource == "mysqlclusters" && r.key.subresource == "status"),
        "the operator wrote more than status while the cluster was idle:\n{everything}"
    );
    assert!(
        status_writes <= 2,
        "status written {status_writes} times in {WINDOW:?} of idleness:\n{everything}"
    );
    // Reads: from the watch caches, never one GET or LIST per round.
    let reads = log.lines(|k| operator(k) && matches!(k.verb.as_str(), "get" | "list"));
    assert!(
        reads.is_empty(),
        "the operator read from the API server while the cluster was idle:\n{everything}"
    );
    // The cluster stayed Healthy meanwhile: quiet is not stuck.
    assert_eq!(sb.wait_healthy("db", Duration::from_secs(5)).await, primary);

    // A deleted primary Service: the watch of Services reconciles the
    // cluster at once (the periodic resync is minutes away) and the
    // reconciler creates it again, pinned to the primary.
    RequestLog::reset(&client)
        .await
        .expect("reset the request log");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    sb.kubectl().ok(&["delete", "service", "db-primary"]);
    let pkey = sb.pod_ip(&primary).await;
    let back = sb.primary_endpoint("db", None).await;
    assert_eq!(back, pkey, "the primary Service selects the primary again");
    let svc = services.get("db-primary").await.expect("db-primary");
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    assert_eq!(
        selector
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some(primary.as_str()),
        "{selector:?}"
    );
    let log = RequestLog::fetch(&client).await.expect("the request log");
    assert!(
        log.count(|k| operator(k) && k.verb == "create" && k.resource == "services") >= 1,
        "{}",
        show(&log.lines(operator))
    );

    // A deleted replicas Service: applied again, with the hash of what
    // orca applies.
    sb.kubectl().ok(&["delete", "service", "db-replicas"]);
    let again = eventually(
        Duration::from_secs(20),
        "db-replicas applied again",
        || async { services.get_opt("db-replicas").await.ok().flatten() },
    )
    .await;
    assert!(
        again
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(orca::k8s::operator::APPLIED_HASH)
    );
    // A spec edited: the StatefulSet follows from the cluster's watch
    // event, well before any periodic pass.
    sb.kubectl().ok(&[
        "patch",
        "mysql/db",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(20),
        "the StatefulSet scaled to 4",
        || async {
            let s = sts.get("db").await.ok()?;
            (s.spec?.replicas == Some(4)).then_some(())
        },
    )
    .await;
}
