//! NetworkPolicy (networking.k8s.io/v1) on the sandbox API server, as
//! against a real one: `kubectl apply`, typed kube-rs reads, `kubectl get`
//! columns, a watch seeing an update, every patch type, the real
//! validation messages, and delete. The sandbox stores policies; nothing
//! enforces them.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use support::sandbox::Sandbox;

/// Port 3306 from anywhere; 3309 from pods of this namespace and from
/// the namespace `orca-system`. policyTypes and the first port's protocol
/// are left to the server's defaults.
const MYSQL_POLICY: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: mysql
  labels:
    app.kubernetes.io/managed-by: orca
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: mysql
      app.kubernetes.io/instance: db
  ingress:
  - ports:
    - port: 3306
  - from:
    - podSelector: {}
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: orca-system
    ports:
    - protocol: TCP
      port: 3309
"#;

const INVALID_POLICY_TYPE: &str =
    r#"spec.policyTypes[0]: Unsupported value: "Foo": supported values: "Ingress", "Egress""#;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        end_port: None,
    }
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Columns of a table line.
fn cols(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn policies(client: &Client) -> Api<NetworkPolicy> {
    Api::namespaced(client.clone(), "default")
}

#[tokio::test]
async fn kubectl_apply_typed_read_table_watch_invalid_and_delete() {
    let sb = Sandbox::api_server();
    let kubectl = sb.kubectl();
    let api = policies(&sb.client().await);

    // discovery: kubectl finds the kind by its names
    let resources = kubectl.ok(&["api-resources", "--api-group=networking.k8s.io"]);
    assert!(
        resources.lines().any(|l| cols(l)
            == [
                "networkpolicies",
                "netpol",
                "networking.k8s.io/v1",
                "true",
                "NetworkPolicy"
            ]),
        "{resources}"
    );

    assert_eq!(
        kubectl.apply(MYSQL_POLICY),
        "networkpolicy.networking.k8s.io/mysql created\n"
    );

    // read back typed: every field survived, the server's defaults are in
    let np = api.get("mysql").await.expect("get mysql");
    assert_eq!(np.metadata.generation, Some(1));
    assert_eq!(
        np.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("orca")
    );
    let spec = np.spec.clone().expect("spec");
    assert_eq!(
        spec.pod_selector,
        Some(LabelSelector {
            match_labels: Some(labels(&[
                ("app.kubernetes.io/name", "mysql"),
                ("app.kubernetes.io/instance", "db"),
            ])),
            match_expressions: None,
        })
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    assert_eq!(spec.egress, None);
    let ingress = spec.ingress.expect("ingress");
    assert_eq!(ingress.len(), 2);
    assert_eq!(ingress[0].from, None, "3306 is open to every source");
    assert_eq!(ingress[0].ports, Some(vec![tcp(3306)]));
    assert_eq!(ingress[1].ports, Some(vec![tcp(3309)]));
    let from = ingress[1].from.clone().expect("3309's sources");
    assert_eq!(from.len(), 2);
    assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
    assert_eq!(from[0].namespace_selector, None);
    assert_eq!(from[1].pod_selector, None);
    assert_eq!(
        from[1]
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(labels(&[("kubernetes.io/metadata.name", "orca-system")]))
    );
    assert_eq!(from[1].ip_block, None);

    // a policy selecting every pod of the namespace
    assert_eq!(
        kubectl.apply(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"
        ),
        "networkpolicy.networking.k8s.io/deny-all created\n"
    );
    let out = kubectl.ok(&["get", "netpol"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(cols(lines[0]), ["NAME", "POD-SELECTOR", "AGE"], "{out}");
    assert_eq!(cols(lines[1])[..2], ["deny-all", "<none>"], "{out}");
    assert_eq!(
        cols(lines[2])[..2],
        [
            "mysql",
            "app.kubernetes.io/instance=db,app.kubernetes.io/name=mysql"
        ],
        "{out}"
    );
    let one = kubectl.ok(&["get", "networkpolicies", "mysql", "--no-headers"]);
    assert_eq!(
        cols(&one)[..2],
        [
            "mysql",
            "app.kubernetes.io/instance=db,app.kubernetes.io/name=mysql"
        ],
        "{one}"
    );

    // a watch from the read sees kubectl's update of the policy
    let rv = np.resource_version().expect("resourceVersion");
    let mut events = api
        .watch(&WatchParams::default().fields("metadata.name=mysql"), &rv)
        .await
        .expect("watch")
        .boxed();
    let updated = MYSQL_POLICY.replace("port: 3306", "port: 3307");
    assert_eq!(
        kubectl.apply(&updated),
        "networkpolicy.networking.k8s.io/mysql configured\n"
    );
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.try_next().await.expect("watch event") {
            match ev {
                WatchEvent::Modified(o) => return o,
                WatchEvent::Bookmark(_) => continue,
                other => panic!("unexpected watch event {other:?}"),
            }
        }
        panic!("the watch ended without an event");
    })
    .await
    .expect("a Modified event");
    let ports = seen
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_ref())
        .map(|r| r[0].ports.clone());
    assert_eq!(ports, Some(Some(vec![tcp(3307)])));
    assert_eq!(
        seen.metadata.generation,
        Some(2),
        "a spec change moves generation"
    );

    // an invalid policyType: 422 with the real message, from kubectl and kube-rs
    let bad = kubectl.fails(
        &["apply", "-f", "-"],
        Some(&MYSQL_POLICY.replace("  ingress:\n", "  policyTypes: [Foo]\n  ingress:\n")),
    );
    assert!(
        bad.stderr.contains(&format!(
            "The NetworkPolicy \"mysql\" is invalid: {INVALID_POLICY_TYPE}"
        )),
        "{}",
        bad.stderr
    );
    let mut invalid = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("bad".into()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Foo".into()]),
            ..Default::default()
        }),
    };
    let s = api_err(
        api.create(&PostParams::default(), &invalid)
            .await
            .expect_err("an invalid policyType"),
    );
    assert_eq!(s.code, 422);
    assert_eq!(s.reason, "Invalid");
    assert_eq!(
        s.message,
        format!("NetworkPolicy.networking.k8s.io \"bad\" is invalid: {INVALID_POLICY_TYPE}")
    );
    // a bad protocol and port, too
    invalid.spec = Some(NetworkPolicySpec {
        ingress: Some(vec![NetworkPolicyIngressRule {
            ports: Some(vec![NetworkPolicyPort {
                protocol: Some("ICMP".into()),
                port: Some(IntOrString::Int(0)),
                end_port: None,
            }]),
            from: None,
        }]),
        ..Default::default()
    });
    let s = api_err(
        api.create(&PostParams::default(), &invalid)
            .await
            .expect_err("a bad port"),
    );
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        "NetworkPolicy.networking.k8s.io \"bad\" is invalid: [spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\", spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive]"
    );
    // the refused writes changed nothing
    let kept = api.get("mysql").await.expect("get mysql");
    assert_eq!(kept.metadata.generation, Some(2));
    assert!(api.get_opt("bad").await.expect("get bad").is_none());

    // delete: gone, and the watch says so
    assert_eq!(
        kubectl.ok(&["delete", "netpol", "mysql"]),
        "networkpolicy.networking.k8s.io \"mysql\" deleted\n"
    );
    let deleted = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.try_next().await.expect("watch event") {
            match ev {
                WatchEvent::Deleted(o) => return o,
                WatchEvent::Bookmark(_) => continue,
                other => panic!("unexpected watch event {other:?}"),
            }
        }
        panic!("the watch ended without an event");
    })
    .await
    .expect("a Deleted event");
    assert_eq!(deleted.name_any(), "mysql");
    assert!(api.get_opt("mysql").await.expect("get mysql").is_none());
    let left = kubectl.ok(&["get", "netpol", "-o", "name"]);
    assert_eq!(left, "networkpolicy.networking.k8s.io/deny-all\n");
}

#[tokio::test]
async fn every_patch_type_and_server_side_apply() {
    let sb = Sandbox::api_server();
    let api = policies(&sb.client().await);

    // server-side apply creates, defaults filled in by the server
    let applied = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"ports": [{"port": 3306}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]
        }
    });
    let pp = PatchParams::apply("netpol-test");
    let np = api
        .patch("p", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply");
    let spec = np.spec.clone().expect("spec");
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_string(), "Egress".to_string()])
    );
    assert_eq!(
        spec.ingress.as_ref().and_then(|r| r[0].ports.clone()),
        Some(vec![tcp(3306)])
    );
    let rv = np.resource_version();
    // the same apply again changes nothing
    let again = api
        .patch("p", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply again");
    assert_eq!(again.resource_version(), rv);
    assert_eq!(again.metadata.generation, Some(1));

    // strategic merge: the rule lists are atomic, replaced whole
    let np = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ingress": [{"ports": [{"port": 3309}]}]}})),
        )
        .await
        .expect("strategic merge patch");
    let ingress = np.spec.as_ref().and_then(|s| s.ingress.clone());
    assert_eq!(
        ingress,
        Some(vec![NetworkPolicyIngressRule {
            ports: Some(vec![tcp(3309)]),
            from: None,
        }])
    );
    assert_eq!(np.metadata.generation, Some(2));

    // merge patch of the pod selector's labels
    let np = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"podSelector": {"matchLabels": {"tier": "sql"}}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        np.spec
            .as_ref()
            .and_then(|s| s.pod_selector.clone())
            .and_then(|s| s.match_labels),
        Some(labels(&[("app", "db"), ("tier", "sql")]))
    );

    // JSON patch: an except outside the cidr is refused as the real server does
    let bad: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/egress/0/to/0/ipBlock/except/0", "value": "192.168.0.0/16"}
    ]))
    .expect("json patch");
    let s = api_err(
        api.patch("p", &PatchParams::default(), &Patch::Json::<()>(bad))
            .await
            .expect_err("an except outside the cidr"),
    );
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        "NetworkPolicy.networking.k8s.io \"p\" is invalid: spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`"
    );
    let good: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/policyTypes", "value": ["Egress"]}
    ]))
    .expect("json patch");
    let np = api
        .patch("p", &PatchParams::default(), &Patch::Json::<()>(good))
        .await
        .expect("json patch");
    assert_eq!(
        np.spec.as_ref().and_then(|s| s.policy_types.clone()),
        Some(vec!["Egress".to_string()])
    );
}
