//! Least privilege, proven: the chart installs the operator as a pod of
//! the orca image under its ServiceAccount, with the chart's RBAC; with
//! every rule it manages a cluster and nothing is refused; then each rule
//! is removed in turn and a named behaviour that needs it is refused with
//! a 403 (the sandbox API server lists what RBAC refused at
//! `/debug/forbidden`). No rule is unused.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::api::ApiClient;
use support::helm::release;
use support::kubectl::Kubectl;
use support::sandbox::Sandbox;

const NS: &str = "orca";
const USER: &str = "system:serviceaccount:orca:orca";

fn cluster(name: &str, replicas: u32, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("  failoverPolicyRef: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  image: mariadb:11.4\n  replicas: {replicas}\n{policy}"
    )
}

/// A policy whose graceful takeovers first run a Job.
const HOOKED: &str = "apiVersion: orca.dev/v1alpha1\nkind: FailoverPolicy\nmetadata:\n  name: hooked\n  namespace: default\nspec:\n  hooks:\n    preGracefulTakeover:\n    - job:\n        template:\n          spec:\n            template:\n              spec:\n                restartPolicy: Never\n                containers:\n                - name: check\n                  image: busybox\n                  command: [sh, -c, 'true']\n";

fn forbidden(k: &Kubectl) -> Vec<Value> {
    let raw = k.ok(&["get", "--raw", "/debug/forbidden"]);
    serde_json::from_str::<Value>(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["user"] == USER)
        .collect()
}

fn clear_forbidden(k: &Kubectl) {
    k.ok(&["delete", "--raw", "/debug/forbidden"]);
}

fn wait_healthy(k: &Kubectl, name: &str) {
    let out = k.run(
        &[
            "wait",
            &format!("mysql/{name}"),
            "--for=condition=Healthy",
            "--timeout=180s",
        ],
        None,
    );
    assert!(
        out.success(),
        "{name} not Healthy: {}{}\n{}",
        out.stdout,
        out.stderr,
        k.run(&["-n", NS, "logs", "deploy/orca", "--tail=40"], None)
            .stdout
    );
}

/// Replaces the operator's pod; with `ready`, waits for the new one to be
/// Ready (without a rule it may never be: its caches cannot fill).
fn restart_operator(k: &Kubectl, ready: bool) {
    k.ok(&[
        "-n",
        NS,
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/component=operator",
        "--wait=true",
        "--timeout=60s",
    ]);
    if ready {
        k.ok(&[
            "-n",
            NS,
            "rollout",
            "status",
            "deployment/orca",
            "--timeout=120s",
        ]);
    }
}

/// The operator's API, at its pod's address.
fn api_base(k: &Kubectl) -> String {
    let pods = k.json(&[
        "-n",
        NS,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=operator",
        "-o",
        "json",
    ]);
    let ip = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["metadata"]["deletionTimestamp"].is_null())
        .and_then(|p| p["status"]["podIP"].as_str())
        .unwrap_or_else(|| panic!("no operator pod with an IP: {pods}"))
        .to_string();
    format!("http://{ip}:8080")
}

/// A dry run of a graceful takeover of `base`, asked of the operator's API
/// with the sandbox admin's token (reviewed by the operator's
/// TokenReview and SubjectAccessReview).
async fn dry_run_takeover(k: &Kubectl) -> (u16, Value) {
    ApiClient::new(
        api_base(k),
        Some(orca_sandbox::apiserver::authz::ADMIN_TOKEN),
    )
    .post(
        "/api/v1/clusters/default/base/operations",
        &json!({"kind": "graceful-takeover", "dryRun": true}),
    )
    .await
}

/// What sets a rule's behaviour going once it is removed.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The operator starts again (its caches list and watch, it elects).
    Restart,
    /// The operator starts again with no Lease there (it must create one).
    RestartWithoutLease,
    /// A new MySQLCluster to set up.
    NewCluster,
    /// A graceful takeover of a cluster whose policy runs a Job hook first.
    HookedTakeover,
    /// An operation asked through the HTTP API with a bearer token.
    ApiOperation,
}

struct Rule {
    /// The RBAC object holding the rule: (kind, namespace).
    object: (&'static str, &'static str),
    /// The rule's resources, as the chart writes them.
    resources: &'static [&'static str],
    /// The behaviour that needs it.
    behaviour: &'static str,
    trigger: Trigger,
    /// The refusal: (resource of the refused request, text in its message).
    refused: (&'static str, &'static str),
}

fn rules() -> Vec<Rule> {
    let manager = ("clusterrole/orca-manager", "");
    let r = |object, resources, behaviour, trigger, refused| Rule {
        object,
        resources,
        behaviour,
        trigger,
        refused,
    };
    vec![
        r(
            manager,
            &["mysqlclusters"],
            "the MySQLClusters are watched",
            Trigger::Restart,
            ("mysqlclusters", "mysqlclusters"),
        ),
        r(
            manager,
            &["mysqlclusters/status"],
            "a cluster's status is written",
            Trigger::NewCluster,
            ("mysqlclusters", "mysqlclusters/status"),
        ),
        r(
            manager,
            &["failoverpolicies"],
            "the FailoverPolicies are watched",
            Trigger::Restart,
            ("failoverpolicies", "failoverpolicies"),
        ),
        r(
            manager,
            &["pods"],
            "the cluster's pods are watched and labelled",
            Trigger::Restart,
            ("pods", "pods"),
        ),
        r(
            manager,
            &["services"],
            "the cluster's Services are watched and made",
            Trigger::Restart,
            ("services", "services"),
        ),
        r(
            manager,
            &["configmaps"],
            "the cluster's ConfigMap is watched and applied",
            Trigger::Restart,
            ("configmaps", "configmaps"),
        ),
        r(
            manager,
            &["secrets"],
            "the credentials Secrets are watched and made",
            Trigger::Restart,
            ("secrets", "secrets"),
        ),
        r(
            manager,
            &["statefulsets"],
            "the StatefulSets are watched and applied",
            Trigger::Restart,
            ("statefulsets", "statefulsets"),
        ),
        r(
            manager,
            &["poddisruptionbudgets"],
            "the PodDisruptionBudgets are watched and applied",
            Trigger::Restart,
            ("poddisruptionbudgets", "poddisruptionbudgets"),
        ),
        r(
            manager,
            &["networkpolicies"],
            "the agent's NetworkPolicies are watched and applied",
            Trigger::Restart,
            ("networkpolicies", "networkpolicies"),
        ),
        r(
            manager,
            &["jobs"],
            "a Job hook runs",
            Trigger::HookedTakeover,
            ("jobs", "jobs"),
        ),
        r(
            manager,
            &["events"],
            "Events are recorded",
            Trigger::NewCluster,
            ("events", "events"),
        ),
        r(
            ("clusterrole/orca-reviewer", ""),
            &["tokenreviews"],
            "the API checks its caller's token",
            Trigger::ApiOperation,
            ("tokenreviews", "tokenreviews"),
        ),
        r(
            ("clusterrole/orca-reviewer", ""),
            &["subjectaccessreviews"],
            "the API checks its caller's right",
            Trigger::ApiOperation,
            ("subjectaccessreviews", "subjectaccessreviews"),
        ),
        r(
            ("role/orca-leader", NS),
            &["leases#create"],
            "a replica creates the Lease",
            Trigger::RestartWithoutLease,
            ("leases", "cannot create resource \"leases\""),
        ),
        r(
            ("role/orca-leader", NS),
            &["leases#orca-operator"],
            "a replica takes and renews the Lease",
            Trigger::Restart,
            ("leases", "leases"),
        ),
    ]
}

/// The index of the rule in `rules` that `resources` names (`leases#create`:
/// the leases rule with the create verb; `leases#NAME`: the one limited to
/// that name).
fn find_rule(rules: &[Value], resources: &[&str]) -> usize {
    rules
        .iter()
        .position(|r| {
            let res: Vec<&str> = r["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match resources[0].split_once('#') {
                Some((plural, "create")) => {
                    res == [plural] && r["verbs"].to_string().contains("\"create\"")
                }
                Some((plural, name)) => {
                    res == [plural] && r["resourceNames"].to_string().contains(name)
                }
                None => res == resources,
            }
        })
        .unwrap_or_else(|| panic!("no rule for {resources:?} in {rules:?}"))
}

fn get_object(k: &Kubectl, object: (&str, &str)) -> Value {
    let mut args = vec!["get", object.0, "-o", "json"];
    if !object.1.is_empty() {
        args.extend(["-n", object.1]);
    }
    k.json(&args)
}

fn put_rules(k: &Kubectl, object: (&str, &str), rules: &[Value]) {
    let patch = json!([{ "op": "replace", "path": "/rules", "value": rules }]).to_string();
    let mut args = vec!["patch", object.0, "--type=json", "-p", &patch];
    if !object.1.is_empty() {
        args.extend(["-n", object.1]);
    }
    k.ok(&args);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_of_the_chart_is_needed_and_enough() {
    let sb = Sandbox::cluster(&["--no-operator"]).await;
    let k = sb.kubectl();
    let r = release(
        "install",
        "orca",
        NS,
        &json!({"replicaCount": 1, "store": {"enabled": false}}),
        &sb.kubeconfig,
    );
    assert_eq!(r["status"], "deployed", "{r}");
    k.ok(&[
        "-n",
        NS,
        "rollout",
        "status",
        "deployment/orca",
        "--timeout=180s",
    ]);

    // With every rule: a cluster is set up and becomes Healthy, an API
    // operation is checked and planned, and RBAC refuses nothing.
    k.apply(HOOKED);
    k.apply(&cluster("base", 2, Some("hooked")));
    wait_healthy(k, "base");
    let (code, body) = dry_run_takeover(k).await;
    assert_eq!(code, 200, "{body}");
    let refused = forbidden(k);
    assert!(
        refused.is_empty(),
        "with the chart's RBAC, the operator was refused: {refused:#?}"
    );

    // Each rule removed in turn: its behaviour is refused with a 403.
    for (i, rule) in rules().iter().enumerate() {
        let original = get_object(k, rule.object)["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let at = find_rule(&original, rule.resources);
        let mut fewer = original.clone();
        fewer.remove(at);
        clear_forbidden(k);
        put_rules(k, rule.object, &fewer);
        let fresh = format!("fresh-{i}");
        match rule.trigger {
            Trigger::Restart => restart_operator(k, false),
            Trigger::RestartWithoutLease => {
                k.ok(&["-n", NS, "scale", "deployment/orca", "--replicas=0"]);
                k.ok(&[
                    "-n",
                    NS,
                    "wait",
                    "pod",
                    "-l",
                    "app.kubernetes.io/component=operator",
                    "--for=delete",
                    "--timeout=60s",
                ]);
                k.ok(&["-n", NS, "delete", "lease", "orca-operator"]);
                k.ok(&["-n", NS, "scale", "deployment/orca", "--replicas=1"]);
            }
            Trigger::NewCluster => {
                k.apply(&cluster(&fresh, 1, None));
            }
            Trigger::HookedTakeover => {
                k.ok(&[
                    "annotate",
                    "mysql/base",
                    "orca.dev/graceful-takeover=auto",
                    "--overwrite",
                ]);
            }
            Trigger::ApiOperation => {
                let (code, body) = dry_run_takeover(k).await;
                assert!(
                    code >= 400,
                    "without {:?} the API still answered {code}: {body}",
                    rule.resources
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        let seen = loop {
            let hit = forbidden(k).into_iter().find(|f| {
                (rule.refused.0.is_empty() || f["resource"] == rule.refused.0)
                    && f["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(rule.refused.1))
            });
            if let Some(h) = hit {
                break h;
            }
            assert!(
                Instant::now() < deadline,
                "without the rule for {:?}, {} was not refused within 90 s; refused: {:#?}\n{}",
                rule.resources,
                rule.behaviour,
                forbidden(k),
                k.run(&["-n", NS, "logs", "deploy/orca", "--tail=30"], None)
                    .stdout
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let message = seen["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("is forbidden: ") && message.contains(USER),
            "{message}"
        );
        eprintln!(
            "without {:?}: {} refused: {message}",
            rule.resources, rule.behaviour
        );

        // Put the rule back; a new operator pod manages again.
        put_rules(k, rule.object, &original);
        restart_operator(k, true);
        if matches!(rule.trigger, Trigger::NewCluster) {
            k.ok(&["delete", "mysql", &fresh, "--wait=false"]);
        }
        if matches!(rule.trigger, Trigger::HookedTakeover) {
            // the operator may have taken it off already
            let _ = k.run(
                &["annotate", "mysql/base", "orca.dev/graceful-takeover-"],
                None,
            );
        }
    }

    // With the rules back, the operator still manages: a last cluster
    // becomes Healthy and nothing more is refused.
    clear_forbidden(k);
    k.apply(&cluster("last", 1, None));
    wait_healthy(k, "last");
    let refused = forbidden(k);
    assert!(refused.is_empty(), "{refused:#?}");
}
