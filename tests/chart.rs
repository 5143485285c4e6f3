//! The Helm chart (charts/orca) with real Helm, through its library:
//! lint clean, rendered with the defaults and with every documented
//! option, each rendering accepted by the sandbox API server
//! (`kubectl apply --dry-run=server`); the refusals say why; the CRDs and
//! `deploy/` are what the code and the chart make; and an install,
//! upgrade and uninstall against the sandbox as a user runs them.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::helm::{chart_dir, helm, release, template, template_fails, uninstall};
use support::sandbox::Sandbox;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Every documented option, each in a rendering of its own (a name and
/// its values), and the namespace it installs into.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        (
            "external-store-dsn",
            json!({"store": {"dsn": "mysql://orca@db.example.com:3306/orca", "existingSecret": "orca-db", "passwordKey": "pw"}}),
        ),
        (
            "external-store-secret",
            json!({"store": {"existingSecret": "orca-db", "dsnKey": "url", "passwordKey": "pw"}}),
        ),
        ("no-store", json!({"store": {"enabled": false}})),
        (
            "store-cluster-tuned",
            json!({"store": {"cluster": {"name": "history", "image": "mariadb:10.11", "replicas": 3,
                "storage": {"size": "5Gi", "storageClassName": "fast"},
                "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}}}),
        ),
        ("watch-own-namespace", json!({"watchNamespace": "orca"})),
        (
            "watch-other-namespace",
            json!({"watchNamespace": "apps", "store": {"enabled": false}}),
        ),
        (
            "service-monitor",
            json!({"serviceMonitor": {"enabled": true, "interval": "15s", "scrapeTimeout": "5s", "labels": {"release": "prometheus"}}}),
        ),
        (
            "single-replica",
            json!({"replicaCount": 1, "leaderElection": {"enabled": false}, "podDisruptionBudget": {"enabled": false}}),
        ),
        (
            "own-account-no-rbac",
            json!({"serviceAccount": {"create": false, "name": "ops"}, "rbac": {"create": false}}),
        ),
        (
            "everything-else",
            json!({
                "image": {"repository": "registry.example.com/orca", "tag": "0.1.0-test", "pullPolicy": "Always"},
                "imagePullSecrets": [{"name": "regcred"}],
                "replicaCount": 3,
                "leaderElection": {"enabled": true, "leaseName": "orca-leader"},
                "logLevel": "orca=debug,info", "logJson": true,
                "api": {"port": 9090, "openReads": true},
                "service": {"type": "NodePort", "port": 9090, "annotations": {"a": "b"}},
                "podDisruptionBudget": {"enabled": true, "minAvailable": 2},
                "serviceAccount": {"create": true, "name": "orca-sa", "annotations": {"x": "y"}},
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                "podAnnotations": {"p": "q"}, "podLabels": {"team": "db"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
                "priorityClassName": "system-cluster-critical",
                "terminationGracePeriodSeconds": 60
            }),
        ),
    ]
}

#[test]
fn the_chart_lints_clean_and_every_rendering_is_accepted_by_the_api_server() {
    let chart = chart_dir();
    let lint = helm(&["lint", &chart.to_string_lossy()]);
    assert!(lint.ok, "helm lint: {}", lint.stderr);
    assert_eq!(
        lint.json,
        json!({"messages": [], "errors": []}),
        "helm lint (strict) is not clean"
    );

    let sb = Sandbox::api_server();
    let k = sb.kubectl();
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        &chart.join("crds").to_string_lossy(),
    ]);
    k.ok(&[
        "apply",
        "-f",
        &repo("tests/fixtures/servicemonitor-crd.yaml").to_string_lossy(),
    ]);
    for ns in ["orca", "apps"] {
        k.ok(&["create", "namespace", ns]);
    }
    for (name, values) in cases() {
        let out = sb.dir.path().join(format!("{name}.yaml"));
        let text = template("orca", "orca", &values, &out);
        let applied = k.run(
            &["apply", "--dry-run=server", "-f", &out.to_string_lossy()],
            None,
        );
        assert!(
            applied.success(),
            "{name}: the API server refused the rendering:\n{}\n{text}",
            applied.stderr
        );
        // What each option is for shows in the rendering.
        let has = |s: &str| text.contains(s);
        let expect: &[&str] = match name {
            "defaults" => &[
                "kind: MySQLCluster",
                "name: orca-store",
                "mysql://app@orca-store-primary.orca.svc:3306/orca",
                "secretName: orca-store-credentials",
                "kind: ClusterRole",
                "kind: PodDisruptionBudget",
                "replicas: 2",
                "readOnlyRootFilesystem: true",
                "runAsNonRoot: true",
                "allowPrivilegeEscalation: false",
                "drop: [\"ALL\"]",
                "path: /healthz",
                "path: /readyz",
            ],
            "external-store-dsn" => &[
                "mysql://orca@db.example.com:3306/orca",
                "secretName: orca-db",
                "key: pw",
            ],
            "external-store-secret" => &["secretKeyRef:", "key: url", "key: pw"],
            "watch-own-namespace" => &["kind: Role\n", "ORCA_WATCH_NAMESPACE"],
            "watch-other-namespace" => &["namespace: apps", "ORCA_WATCH_NAMESPACE"],
            "service-monitor" => &[
                "kind: ServiceMonitor",
                "interval: 15s",
                "release: prometheus",
            ],
            "single-replica" => &["--no-leader-election", "replicas: 1"],
            "own-account-no-rbac" => &["serviceAccountName: ops"],
            "everything-else" => &[
                "registry.example.com/orca:0.1.0-test",
                "--lease-name=orca-leader",
                "ORCA_API_OPEN_READS",
                "ORCA_LOG_JSON",
                "containerPort: 9090",
                "type: NodePort",
                "minAvailable: 2",
                "priorityClassName: system-cluster-critical",
                "regcred",
            ],
            _ => &[],
        };
        for e in expect {
            assert!(has(e), "{name}: the rendering lacks {e:?}:\n{text}");
        }
        let absent: &[&str] = match name {
            "no-store" => &["ORCA_STORE_DSN", "kind: MySQLCluster", "store-password"],
            "external-store-dsn" | "external-store-secret" => &["kind: MySQLCluster"],
            "watch-own-namespace" | "watch-other-namespace" => {
                &["kind: ClusterRole\nmetadata:\n  name: orca-manager"]
            }
            "single-replica" => &["kind: PodDisruptionBudget"],
            "own-account-no-rbac" => &["kind: ServiceAccount", "kind: ClusterRole", "kind: Role"],
            "defaults" => &["kind: ServiceMonitor", "ORCA_WATCH_NAMESPACE"],
            _ => &[],
        };
        for a in absent {
            assert!(!has(a), "{name}: the rendering has {a:?}:\n{text}");
        }
    }

    // The refusals say what is wrong.
    let out = sb.dir.path().join("refused.yaml");
    for (values, says) in [
        (
            json!({"replicaCount": 2, "leaderElection": {"enabled": false}}),
            "leaderElection.enabled=false needs replicaCount 1",
        ),
        (
            json!({"store": {"dsn": "mysql://orca@db/orca"}}),
            "store.dsn needs store.existingSecret",
        ),
        (
            json!({"watchNamespace": "apps"}),
            "with watchNamespace set, orca manages that namespace only",
        ),
        (json!({"replicaCount": 0}), "replicaCount"),
        (
            json!({"store": {"dsn": "mysql://orca:pa55word@db/orca", "existingSecret": "s"}}),
            "store.dsn must not hold the password",
        ),
        (
            json!({"unknown": true}),
            "additional properties 'unknown' not allowed",
        ),
    ] {
        let msg = template_fails(&values, &out);
        assert!(msg.contains(says), "{values}: {msg}");
        assert!(
            !msg.contains("pa55word"),
            "the refusal shows the password: {msg}"
        );
    }
}

#[test]
fn the_charts_crds_and_deploy_are_what_the_code_and_the_chart_make() {
    let chart = chart_dir();
    for (name, generated) in orca::k8s::crd::crd_yaml_files() {
        let committed = std::fs::read_to_string(chart.join("crds").join(name))
            .unwrap_or_else(|e| panic!("charts/orca/crds/{name}: {e}"));
        assert!(
            committed == generated,
            "charts/orca/crds/{name} differs from the generated CRD: run `make crds`"
        );
        let deployed = std::fs::read_to_string(repo("deploy/crds").join(name))
            .unwrap_or_else(|e| panic!("deploy/crds/{name}: {e}"));
        assert!(
            deployed == generated,
            "deploy/crds/{name} is stale: run `make deploy`"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("orca.yaml");
    let rendered = template("orca", "orca", &json!({}), &out);
    let committed = std::fs::read_to_string(repo("deploy/orca.yaml")).expect("deploy/orca.yaml");
    let body = committed
        .split_once("\n---\n")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    assert!(
        body == rendered,
        "deploy/orca.yaml is not the chart's defaults rendered: run `make deploy`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn install_upgrade_and_uninstall_with_helm() {
    let sb = Sandbox::api_server();
    let k = sb.kubectl();
    let kc = sb.kubeconfig.clone();
    let r = release("install", "orca", "orca", &json!({}), &kc);
    assert_eq!(r["status"], "deployed", "{r}");
    assert_eq!(r["version"], 1, "{r}");
    // Helm installed the CRDs from crds/ first, then the rest.
    k.ok(&[
        "get",
        "crd",
        "mysqlclusters.orca.dev",
        "failoverpolicies.orca.dev",
    ]);
    let d = k.json(&["get", "deployment", "orca", "-n", "orca"]);
    assert_eq!(d["spec"]["replicas"], 2);
    for what in [
        vec!["serviceaccount", "orca"],
        vec!["service", "orca"],
        vec!["poddisruptionbudget", "orca"],
        vec!["role", "orca-leader"],
        vec!["rolebinding", "orca-leader"],
        vec!["mysqlcluster", "orca-store"],
    ] {
        let mut args = vec!["get"];
        args.extend(what.iter().copied());
        args.extend(["-n", "orca"]);
        k.ok(&args);
    }
    k.ok(&["get", "clusterrole", "orca-manager", "orca-reviewer"]);
    k.ok(&["get", "clusterrolebinding", "orca-manager", "orca-reviewer"]);

    let r = release(
        "upgrade",
        "orca",
        "orca",
        &json!({"replicaCount": 3, "logLevel": "debug"}),
        &kc,
    );
    assert_eq!(r["version"], 2, "{r}");
    assert_eq!(r["status"], "deployed", "{r}");
    let d = k.json(&["get", "deployment", "orca", "-n", "orca"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().is_some_and(|e| e
            .iter()
            .any(|v| v["name"] == "ORCA_LOG" && v["value"] == "debug")),
        "{env}"
    );

    uninstall("orca", "orca", &kc);
    let gone = k.run(&["get", "deployment", "orca", "-n", "orca"], None);
    assert!(
        !gone.success() && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    let gone = k.run(&["get", "clusterrole", "orca-manager"], None);
    assert!(!gone.success(), "the ClusterRole outlived the release");
    // The store's cluster holds the history: kept, as its annotation says.
    k.ok(&["get", "mysqlcluster", "orca-store", "-n", "orca"]);
}
