//! The sandbox's Deployment and ReplicaSet controllers, driven with the
//! real `kubectl` as a user drives them: a rollout, a template change
//! rolled out to a new ReplicaSet, scaling, a deleted pod replaced, and
//! the Deployment's deletion taking its ReplicaSets and pods with it.

mod support;

use std::time::{Duration, Instant};

use orca_sandbox::deployment::DeploymentController;
use orca_sandbox::kubelet::{Kubelet, KubeletOptions};
use serde_json::Value;
use support::kubectl::Kubectl;
use support::sandbox::Sandbox;

fn deployment(replicas: u32, colour: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
        env:
        - {{name: COLOUR, value: {colour}}}
"#
    )
}

fn items(k: &Kubectl, kind: &str) -> Vec<Value> {
    k.json(&["get", kind, "-l", "app=web", "-o", "json"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `ok` holds of the pods and ReplicaSets of `web`.
fn wait(k: &Kubectl, what: &str, ok: impl Fn(&[Value], &[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = items(k, "pods");
        let sets = items(k, "replicasets");
        if ok(&pods, &sets) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not seen within 60 s\npods: {}\nreplicasets: {}",
                serde_json::to_string_pretty(&pods).unwrap_or_default(),
                serde_json::to_string_pretty(&sets).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn live(pods: &[Value]) -> Vec<&Value> {
    pods.iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn rolled_out(k: &Kubectl) -> String {
    let out = k.run(
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    );
    assert!(
        out.success(),
        "rollout status: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_roll_out_scale_replace_and_go_with_their_owner() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let kubelet = Kubelet::start(
        client.clone(),
        KubeletOptions {
            root: sb.dir.path().join("kubelet"),
            ..KubeletOptions::default()
        },
    )
    .await
    .expect("start the kubelet");
    let controller = DeploymentController::start(client.clone());
    let k = sb.kubectl();

    k.apply(&deployment(2, "blue"));
    let out = rolled_out(k);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let sets = items(k, "replicasets");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let first = sets[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let hash = sets[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(first, format!("web-{hash}"));
    assert_eq!(
        sets[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        sets[0]["metadata"]["ownerReferences"][0]["kind"],
        "Deployment"
    );
    let pods = items(k, "pods");
    assert_eq!(live(&pods).len(), 2, "{pods:?}");
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with(&format!("{first}-")), "{name}");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], first.as_str());
    }
    let d = k.json(&["get", "deployment", "web", "-o", "json"]);
    assert_eq!(d["status"]["readyReplicas"], 2, "{d}");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let table = k.ok(&["get", "deployment", "web"]);
    assert!(
        table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("2/2"),
        "{table}"
    );

    // A new template: a second ReplicaSet takes over, the first is left
    // with none.
    k.apply(&deployment(2, "green"));
    rolled_out(k);
    wait(k, "the old pods gone", |pods, _| {
        pods.iter().all(|p| {
            !p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{first}-"))
        })
    });
    let sets = items(k, "replicasets");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let second = sets
        .iter()
        .find(|s| s["metadata"]["name"] != first.as_str())
        .expect("a second ReplicaSet");
    assert_eq!(
        second["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(second["spec"]["replicas"], 2);
    let old = sets
        .iter()
        .find(|s| s["metadata"]["name"] == first.as_str())
        .expect("the first ReplicaSet");
    assert_eq!(old["spec"]["replicas"], 0);
    let pods = items(k, "pods");
    assert!(
        live(&pods)
            .iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "green"),
        "{pods:?}"
    );

    // Scaling.
    k.ok(&["scale", "deployment", "web", "--replicas=3"]);
    rolled_out(k);
    assert_eq!(live(&items(k, "pods")).len(), 3);

    // A deleted pod is replaced.
    let victim = live(&items(k, "pods"))[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    k.ok(&["delete", "pod", &victim, "--wait=false"]);
    wait(k, "the deleted pod replaced", |pods, _| {
        let l = live(pods);
        l.len() == 3 && l.iter().all(|p| p["metadata"]["name"] != victim.as_str())
    });
    rolled_out(k);

    // The Deployment's deletion takes its ReplicaSets and their pods.
    k.ok(&["delete", "deployment", "web"]);
    wait(k, "the ReplicaSets and pods gone", |pods, sets| {
        pods.is_empty() && sets.is_empty()
    });

    controller.shutdown().await;
    kubelet.shutdown().await;
}
