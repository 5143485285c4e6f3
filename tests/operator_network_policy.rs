//! The agent's NetworkPolicy (`<cluster>-orca-agent`), in the sandbox
//! (which stores policies, and enforces none): with the agent, the
//! operator makes it over the cluster's pods, mysqld's port open to all,
//! the agent's to the cluster's namespace and the operator's, owned by
//! the cluster; it makes it again when someone deletes it and puts it
//! back when someone loosens it, and otherwise leaves it alone; without
//! the agent there is none, and the one made before is deleted.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use serde_json::{Value, json};
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;

/// The image the sandbox runs the orca binary for.
const IMAGE: &str = "ghcr.io/orca-dev/orca:0.1.0";
/// The namespace the operator says it runs in.
const OPERATOR_NS: &str = "orca-system";
const LIMIT: Duration = Duration::from_secs(60);

fn policies(client: kube::Client) -> Api<NetworkPolicy> {
    Api::namespaced(client, "default")
}

/// The policy `name` as `kubectl get -o json` shows it, once there is one
/// that `accept` takes.
async fn wait_policy(
    sb: &Sandbox,
    name: &str,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    eventually(LIMIT, what, || async {
        let out = sb
            .kubectl()
            .run(&["get", "networkpolicy", name, "-o", "json"], None);
        if !out.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&out.stdout).expect("kubectl -o json");
        accept(&v).then_some(v)
    })
    .await
}

/// What orca applies: mysqld's port from anywhere, the agent's from the
/// namespace's pods and the operator's namespace.
fn expected_spec(cluster: &str) -> Value {
    json!({
        "podSelector": { "matchLabels": { "orca.dev/cluster": cluster } },
        "policyTypes": ["Ingress"],
        "ingress": [
            { "ports": [{ "protocol": "TCP", "port": 3306 }] },
            {
                "from": [
                    { "podSelector": {} },
                    { "namespaceSelector": { "matchLabels": {
                        "kubernetes.io/metadata.name": OPERATOR_NS,
                    } } },
                ],
                "ports": [{ "protocol": "TCP", "port": orca::agent::PORT }],
            },
        ],
    })
}

/// Waits `span` and asserts the policy was not written meanwhile.
async fn quiet(sb: &Sandbox, name: &str, span: Duration) {
    let api = policies(sb.client().await);
    let before = api.get(name).await.expect("the policy");
    tokio::time::sleep(span).await;
    let after = api.get(name).await.expect("the policy");
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "the operator wrote the policy at steady state:\n{}",
        sb.operator_log("only")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_agent_the_policy_guards_its_port_and_is_kept_so() {
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    // where the operator runs (and keeps its Lease)
    sb.kubectl().ok(&["create", "namespace", OPERATOR_NS]);
    sb.start_operator_with(
        "only",
        &[("ORCA_AGENT_IMAGE", IMAGE), ("POD_NAMESPACE", OPERATOR_NS)],
    );
    sb.kubectl().apply(&cluster_yaml("db", 1, false));
    let cluster = sb.mysql_cluster("db").await;
    let uid = cluster.metadata.uid.clone().expect("the cluster's uid");

    let v = wait_policy(&sb, "db-orca-agent", "the agent's NetworkPolicy", |_| true).await;
    assert_eq!(v["spec"], expected_spec("db"), "{v:#}");
    // over the StatefulSet's pods
    let sts: Api<StatefulSet> = Api::namespaced(sb.client().await, "default");
    let sts = sts.get("db").await.expect("the StatefulSet");
    let selector = serde_json::to_value(sts.spec.expect("spec").selector).expect("selector");
    assert_eq!(v["spec"]["podSelector"], selector);
    // owned by the cluster: it goes with it
    let owner = &v["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            &owner["kind"],
            &owner["name"],
            &owner["uid"],
            &owner["controller"]
        ),
        (
            &json!("MySQLCluster"),
            &json!("db"),
            &json!(uid),
            &json!(true)
        ),
        "{v:#}"
    );
    assert_eq!(v["metadata"]["labels"]["orca.dev/cluster"], "db");

    // As a user sees it.
    let table = sb.kubectl().ok(&["get", "networkpolicy"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("db-orca-agent "))
        .unwrap_or_else(|| panic!("no db-orca-agent row:\n{table}"));
    assert!(row.contains("orca.dev/cluster=db"), "{table}");

    // Left alone at steady state.
    quiet(&sb, "db-orca-agent", Duration::from_secs(3)).await;

    // Deleted: made again (a new object).
    let first_uid = v["metadata"]["uid"].clone();
    sb.kubectl()
        .ok(&["delete", "networkpolicy", "db-orca-agent", "--wait=true"]);
    let again = wait_policy(&sb, "db-orca-agent", "the policy made again", |v| {
        v["metadata"]["uid"] != first_uid
    })
    .await;
    assert_eq!(again["spec"], expected_spec("db"), "{again:#}");
    assert_eq!(again["metadata"]["ownerReferences"][0]["uid"], json!(uid));

    // Loosened by hand (the agent's port opened to everyone, a namespace
    // admitted as well): put back.
    for (what, patch) in [
        (
            "the agent's port opened to all",
            json!([{ "op": "remove", "path": "/spec/ingress/1/from" }]),
        ),
        (
            "every namespace admitted",
            json!([{ "op": "replace", "path": "/spec/ingress/1/from/1/namespaceSelector", "value": {} }]),
        ),
        (
            "the owner reference taken off",
            json!([{ "op": "remove", "path": "/metadata/ownerReferences" }]),
        ),
    ] {
        let edited = sb.kubectl().ok(&[
            "patch",
            "networkpolicy",
            "db-orca-agent",
            "--type=json",
            "-p",
            &patch.to_string(),
            "-o",
            "json",
        ]);
        let edited: Value = serde_json::from_str(&edited).expect("kubectl -o json");
        assert_ne!(
            (&edited["spec"], &edited["metadata"]["ownerReferences"]),
            (&again["spec"], &again["metadata"]["ownerReferences"]),
            "{what}: the patch changed nothing"
        );
        let rv = edited["metadata"]["resourceVersion"].clone();
        let fixed = wait_policy(&sb, "db-orca-agent", what, |v| {
            v["metadata"]["resourceVersion"] != rv
                && v["spec"] == expected_spec("db")
                && v["metadata"]["ownerReferences"][0]["uid"] == json!(uid)
        })
        .await;
        assert_eq!(fixed["metadata"]["uid"], again["metadata"]["uid"], "{what}");
        eprintln!("{what}: put back");
    }
    quiet(&sb, "db-orca-agent", Duration::from_secs(3)).await;

    // The cluster deleted: its policy goes with it (owner reference).
    sb.kubectl()
        .ok(&["delete", "mysql", "db", "--wait=true", "--timeout=60s"]);
    eventually(LIMIT, "the policy collected with its cluster", || async {
        let api = policies(sb.client().await);
        api.get_opt("db-orca-agent")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    sb.stop_operator();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agent_there_is_no_policy() {
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    // where the operator runs (and keeps its Lease)
    sb.kubectl().ok(&["create", "namespace", OPERATOR_NS]);
    // With the agent first: the policy is made.
    sb.start_operator_with(
        "only",
        &[("ORCA_AGENT_IMAGE", IMAGE), ("POD_NAMESPACE", OPERATOR_NS)],
    );
    sb.kubectl().apply(&cluster_yaml("db", 1, false));
    wait_policy(&sb, "db-orca-agent", "the agent's NetworkPolicy", |_| true).await;
    sb.stop_operator();

    // The operator started again without it: the pods lose the agent and
    // the policy goes.
    sb.start_operator_with("only", &[("POD_NAMESPACE", OPERATOR_NS)]);
    let sts: Api<StatefulSet> = Api::namespaced(sb.client().await, "default");
    eventually(LIMIT, "the StatefulSet without the agent", || async {
        let s = sts.get_opt("db").await.expect("get")?;
        let pod = s.spec?.template.spec?;
        (pod.containers.len() == 1).then_some(())
    })
    .await;
    let api = policies(sb.client().await);
    eventually(LIMIT, "the policy deleted", || async {
        api.get_opt("db-orca-agent")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // A new cluster gets its objects, and no policy.
    sb.kubectl().apply(&cluster_yaml("other", 1, false));
    eventually(LIMIT, "the new cluster's PodDisruptionBudget", || async {
        let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::namespaced(sb.client().await, "default");
        pdbs.get_opt("other").await.expect("get").map(|_| ())
    })
    .await;
    // the policy is applied right after the PodDisruptionBudget: a few
    // reconciles' time to be sure none comes
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = sb.kubectl().run(&["get", "networkpolicy", "-A"], None);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout.trim().is_empty() && out.stderr.contains("No resources found"),
        "a policy without the agent:\n{}{}",
        out.stdout,
        out.stderr
    );

    sb.stop_operator();
}
