//! `kubectl orca` as users run it: the real `kubectl` finds
//! `kubectl-orca` (a symlink to the `orca` binary) on PATH and runs it
//! with a kubeconfig of a ServiceAccount that has a user's rights. The
//! plugin talks to the sandbox's API server only: annotations and status
//! for operations, the operator's API (its loopback address behind the
//! Service `orca/orca`, selectorless, port `http`) through the service
//! proxy for the topology, dry runs and the history.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::api::token;
use support::cluster::cluster_yaml;
use support::eventually;
use support::kubectl::Output;
use support::sandbox::Sandbox;
use support::store::StoreServer;
use support::writer::{Writer, assert_acked};

const BOOT: Duration = Duration::from_secs(90);

/// The user: a ServiceAccount with a token Secret, the MySQLCluster
/// rights the plugin needs (read, annotate; the operator's API asks for
/// get, list and update), the Events to read, and the operator's Service
/// proxy (`services/proxy` in namespace `orca`).
fn user_rbac(name: &str) -> String {
    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": "default"}]);
    let docs = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": format!("{name}-token"), "namespace": "default",
                            "annotations": {"kubernetes.io/service-account.name": name}}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": format!("{name}-orca")},
        "rules": [
            {"apiGroups": ["orca.dev"], "resources": ["mysqlclusters"], "verbs": ["get", "list", "watch", "update", "patch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": format!("{name}-orca")}, "subjects": subject,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{name}-orca")}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": format!("{name}-proxy"), "namespace": "orca"},
               "rules": [{"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["orca:http"], "verbs": ["get", "create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": format!("{name}-proxy"), "namespace": "orca"}, "subjects": subject,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{name}-proxy")}}),
    ];
    docs.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The operator's Service as the chart names it, pointing at its API on
/// loopback (`http://127.0.0.1:PORT`).
fn operator_service(api: &str) -> String {
    let port = api.rsplit(':').next().unwrap().parse().unwrap();
    support::api::loopback_service("orca", "orca", 8080, port)
}

/// The real `kubectl`, `kubectl-orca` on its PATH, as the user.
struct UserKubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
    bin: PathBuf,
}

impl UserKubectl {
    fn new(dir: &Path, server: &str, token: &str) -> UserKubectl {
        let kubeconfig = dir.join("user.kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\ncontexts:\n- name: user\n  context: {{cluster: sandbox, user: user, namespace: default}}\ncurrent-context: user\nusers:\n- name: user\n  user:\n    token: {token}\n"
            ),
        )
        .unwrap();
        let bin = dir.join("plugin-bin");
        let home = dir.join("user-home");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        for name in ["kubectl-orca", "kubectl_complete-orca"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_orca"), bin.join(name)).unwrap();
        }
        UserKubectl {
            kubeconfig,
            home,
            bin,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("kubectl")
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env_remove("ORCA_OPERATOR_NAMESPACE")
            .env_remove("ORCA_OPERATOR_SERVICE")
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl (is it on PATH? make deps): {e}"));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code, 0,
            "kubectl {args:?} failed:\n{}\n{}",
            o.stderr, o.stdout
        );
        o.stdout
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_orca_reads_plans_and_carries_out_operations_through_the_api_server() {
    let store = StoreServer::start().await;
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator_with_store("orca-a", &store, "orca_plugin");
    sb.kubectl().apply(&cluster_yaml("db", 3, true));
    let primary = sb.wait_healthy("db", BOOT).await;
    let api = sb.operator_api("orca-a").await;
    sb.kubectl().ok(&["create", "namespace", "orca"]);
    sb.kubectl().apply(&operator_service(&api));
    sb.kubectl().apply(&user_rbac("alice"));
    let user = UserKubectl::new(sb.dir.path(), &sb.url, &token(&sb, "alice"));

    // kubectl finds the plugin.
    let list = user.run(&["plugin", "list"]);
    assert!(
        list.stdout.contains("kubectl-orca"),
        "{}{}",
        list.stdout,
        list.stderr
    );

    // The topology, from the operator's view through the service proxy:
    // the primary and both replicas, by pod and address.
    let pods = ["db-0", "db-1", "db-2"];
    let replicas: Vec<&str> = pods.into_iter().filter(|p| *p != primary).collect();
    let mut ips = std::collections::BTreeMap::new();
    for p in pods {
        ips.insert(p, sb.pod_ip(p).await.to_string());
    }
    let tree = eventually(Duration::from_secs(30), "the topology", || async {
        let o = user.run(&["orca", "topology", "db", "-n", "default"]);
        (o.code == 0
            && o.stdout
                .contains(&format!("primary {}", ips[primary.as_str()])))
        .then_some(o.stdout)
    })
    .await;
    for p in pods {
        assert!(tree.contains(&ips[p]), "{p}:\n{tree}");
        let row = tree
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{p} ")))
            .unwrap_or_else(|| panic!("{p}:\n{tree}"));
        let role = if p == primary { "primary" } else { "replica" };
        assert!(row.contains(role), "{row}");
    }

    // A dry run: the plan, with its successor, and nothing changes.
    let plan = user.ok(&["orca", "switchover", "db", "--dry-run"]);
    assert!(plan.contains("plan: graceful-takeover"), "{plan}");
    let successor = replicas
        .iter()
        .find(|r| plan.contains(&format!("successor {}", ips[**r])));
    assert!(successor.is_some(), "{plan}");
    assert_eq!(sb.primary("db").await, primary);
    let c = sb.mysql_cluster("db").await;
    assert!(
        !c.metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .any(|k| k.starts_with("orca.dev/")),
        "a dry run annotates nothing"
    );
    // An illegal one is refused with the reason.
    let refused = user.run(&[
        "orca",
        "relocate",
        "db",
        &primary,
        "--below",
        replicas[0],
        "--dry-run",
    ]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.starts_with("kubectl orca: ") && refused.stderr.trim().len() > 20,
        "{}",
        refused.stderr
    );
    assert_eq!(sb.primary("db").await, primary);

    // A switchover to a named replica, under writes as the application.
    let to = replicas[1];
    let app = sb.app("db").await;
    let w = Writer::start_as(sb.primary_endpoint("db", None).await, app.clone()).await;
    w.wait_acked(30).await;
    let done = user.run(&["orca", "switchover", "db", "--to", to, "--timeout", "2m"]);
    assert_eq!(done.code, 0, "{}{}", done.stdout, done.stderr);
    assert!(
        done.stdout.contains("GracefulTakeover Succeeded"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains(&format!("primary: {to}")),
        "{}",
        done.stdout
    );
    let acked = w.finish().await;
    assert_eq!(sb.primary("db").await, to);
    assert_acked(&sb.pod_ip(to).await, &app, &acked).await;

    // The history lists it (the store is written behind the decisions).
    let history = eventually(
        Duration::from_secs(30),
        "the takeover in the history",
        || async {
            let o = user.run(&["orca", "history", "db"]);
            (o.code == 0 && o.stdout.contains("graceful-takeover")).then_some(o.stdout)
        },
    )
    .await;
    assert!(history.starts_with("ID"), "{history}");

    // Completion, and bad usage.
    let script = user.ok(&["orca", "completion", "bash"]);
    assert!(script.contains("complete -F"), "{script}");
    // kubectl's own completion of `kubectl orca sw<TAB>` asks
    // kubectl_complete-orca.
    let words = user.ok(&["__complete", "orca", "sw"]);
    assert_eq!(
        words.lines().collect::<Vec<_>>(),
        ["switchover", ":4"],
        "{words}"
    );
    let words = user.ok(&["__complete", "orca", "relocate", "db", "db-1", "--be"]);
    assert!(words.starts_with("--below\n"), "{words}");
    for bad in [&["orca", "fly"][..], &["orca", "takeover", "db"], &["orca"]] {
        let o = user.run(bad);
        assert_eq!(o.code, 2, "{bad:?}: {}{}", o.stdout, o.stderr);
    }

    // Without the proxy's right, the topology falls back to status.
    sb.kubectl()
        .ok(&["delete", "rolebinding", "alice-proxy", "-n", "orca"]);
    let o = user.run(&["orca", "topology", "db"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("not reachable") && o.stderr.contains("forbidden"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.contains(&format!("primary {to}")), "{}", o.stdout);
}

/// `orca kubectl ...` is the plugin too, with its exit codes.
#[test]
fn orca_kubectl_is_the_plugin() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_orca"))
            .arg("kubectl")
            .args(args)
            .output()
            .expect("run orca");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, script) = run(&["completion", "zsh"]);
    assert_eq!(code, 0);
    assert!(script.contains("kubectl-orca"), "{script}");
    let (code, help) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("Usage: kubectl orca"), "{help}");
    assert_eq!(run(&["switchover"]).0, 2);
    assert_eq!(run(&["relocate", "db", "db-1"]).0, 2);
}
