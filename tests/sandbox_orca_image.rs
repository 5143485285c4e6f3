//! The sandbox kubelet runs pods of the orca image as a container runtime
//! runs the image: the orca binary in a root of its own (no shell, the
//! image's user, a read-only root when asked), the pod's volumes mounted
//! at their paths, the ServiceAccount token among them.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use orca_sandbox::kubelet::{Kubelet, KubeletOptions};
use support::sandbox::Sandbox;

const IMAGE: &str = "ghcr.io/orca-dev/orca:0.1.0";

/// Every container log the kubelet kept under `root`, for a failure's
/// message.
fn logs(root: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("rootfs") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    p.display(),
                    std::fs::read_to_string(&p).unwrap_or_default()
                ));
            }
        }
    }
    out
}

async fn wait_pod(
    pods: &Api<Pod>,
    root: &std::path::Path,
    name: &str,
    what: &str,
    ok: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(p) = pods.get(name).await
            && ok(&p)
        {
            return p;
        }
        if Instant::now() > deadline {
            let p = pods.get(name).await.ok();
            panic!(
                "pod {name}: {what} not seen within 60 s: {}\n{}",
                serde_json::to_string_pretty(&p.and_then(|p| p.status)).unwrap_or_default(),
                logs(root)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pid of the container process whose root is not the host's.
fn contained_pid(pids: &[u32]) -> u32 {
    *pids
        .iter()
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/root"))
                .is_ok_and(|r| r != std::path::Path::new("/"))
        })
        .unwrap_or_else(|| panic!("no container process in a root of its own among {pids:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_of_the_orca_image_run_orca_in_a_root_of_their_own() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let root = sb.dir.path().join("kubelet");
    let kubelet = Kubelet::start(
        client.clone(),
        KubeletOptions {
            root: root.clone(),
            ..KubeletOptions::default()
        },
    )
    .await
    .expect("start the kubelet");
    sb.install_crds().await;
    let k = sb.kubectl();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // The image's entrypoint with its arguments: `orca --version`, then
    // the container ends and the pod succeeds.
    k.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: version\nspec:\n  restartPolicy: Never\n  containers:\n  - name: orca\n    image: {IMAGE}\n    args: [\"--version\"]\n"
    ));
    let p = wait_pod(&pods, &root, "version", "Succeeded", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    let term = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(term, Some(0));

    // The image holds nothing but orca: a shell is not there to run.
    k.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\nspec:\n  restartPolicy: Never\n  containers:\n  - name: sh\n    image: {IMAGE}\n    command: [\"/bin/sh\", \"-c\", \"true\"]\n"
    ));
    let p = wait_pod(&pods, &root, "shell", "Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let text = serde_json::to_string(&p.status).unwrap_or_default();
    assert!(text.contains("no such file or directory"), "{text}");

    // The operator itself, as the chart runs it (its user, a read-only
    // root, its probes), reaching the API server with a kubeconfig from a
    // ConfigMap.
    let kubeconfig = std::fs::read_to_string(&sb.kubeconfig).expect("kubeconfig");
    let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube\ndata:\n  kubeconfig: |\n{indented}"
    ));
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: operator
  labels:
    app: operator
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
  containers:
  - name: operator
    image: {IMAGE}
    args: ["operator", "--kubeconfig=/etc/kube/kubeconfig", "--no-leader-election"]
    env:
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: ORCA_LISTEN
      value: "$(POD_IP):8080"
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: 1
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    volumeMounts:
    - name: kube
      mountPath: /etc/kube
      readOnly: true
    - name: tmp
      mountPath: /tmp
  volumes:
  - name: kube
    configMap:
      name: kube
  - name: tmp
    emptyDir: {{}}
"#
    ));
    wait_pod(&pods, &root, "operator", "Ready", ready).await;
    let pid = contained_pid(&kubelet.pids());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("65532"),
        "the operator runs as the image's user: {uid_line}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mount = |at: &str| {
        mounts
            .lines()
            .rfind(|l| l.split_whitespace().nth(4) == Some(at))
            .map(|l| l.split_whitespace().nth(5).unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("nothing mounted at {at} in the container:\n{mounts}"))
    };
    assert!(mount("/").starts_with("ro"), "the root is read only");
    assert!(
        mount("/etc/kube").starts_with("ro"),
        "a readOnly mount is read only"
    );
    assert!(mount("/tmp").starts_with("rw"), "the emptyDir is writable");
    assert!(mount("/usr/local/bin/orca").starts_with("ro"));

    // A Service's names resolve in the container to a ready endpoint (the
    // sandbox has no cluster DNS).
    k.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector:\n    app: operator\n  ports:\n  - port: 8080\n",
    );
    let hosts = format!("/proc/{pid}/root/etc/hosts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ip = pods
        .get("operator")
        .await
        .ok()
        .and_then(|p| p.status.and_then(|s| s.pod_ip))
        .expect("the pod's address");
    let want = format!("{ip}\tapi.default.svc.cluster.local api.default.svc api.default api\n");
    loop {
        let text = std::fs::read_to_string(&hosts).unwrap_or_default();
        if text.contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} in the container's /etc/hosts:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    kubelet.shutdown().await;
}

/// Runs kubectl, returning (success, stdout, stderr).
fn kubectl_out(k: &support::kubectl::Kubectl, args: &[&str]) -> (bool, String, String) {
    let o = k.run(args, None);
    (o.success(), o.stdout, o.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_reads_the_current_and_the_previous_container_and_follows() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let root = sb.dir.path().join("kubelet");
    let kubelet = Kubelet::start(
        client.clone(),
        KubeletOptions {
            root: root.clone(),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(2),
            ..KubeletOptions::default()
        },
    )
    .await
    .expect("start the kubelet");
    sb.install_crds().await;
    let k = sb.kubectl();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let kubeconfig = std::fs::read_to_string(&sb.kubeconfig).expect("kubeconfig");
    let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube\ndata:\n  kubeconfig: |\n{indented}"
    ));
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  containers:
  - name: operator
    image: {IMAGE}
    args: ["operator", "--kubeconfig=/etc/kube/kubeconfig", "--no-leader-election"]
    env:
    - name: ORCA_LOG
      value: info
    volumeMounts:
    - name: kube
      mountPath: /etc/kube
  volumes:
  - name: kube
    configMap:
      name: kube
"#
    ));
    let running = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    };
    wait_pod(&pods, &root, "chatty", "Running", running).await;
    let started = "orca operator started";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = kubectl_out(k, &["logs", "chatty"]);
        if ok && out.contains(started) {
            break;
        }
        assert!(Instant::now() < deadline, "kubectl logs: {out}{err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (ok, _, err) = kubectl_out(k, &["logs", "chatty", "--previous"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (BadRequest): previous terminated container \"operator\" in pod \"chatty\" not found"
    );
    let (ok, _, err) = kubectl_out(k, &["logs", "chatty", "-c", "nope"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        // kubectl checks the container itself, before asking
        "error: container nope is not valid for pod chatty"
    );
    let (ok, _, err) = kubectl_out(k, &["logs", "nobody"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: error from server (NotFound): pods \"nobody\" not found in namespace \"default\""
    );
    let (ok, out, _) = kubectl_out(k, &["logs", "chatty", "--tail=1"]);
    assert!(ok && out.lines().count() == 1, "{out}");

    // Follow: what the instance wrote, until it ends (the crash).
    let mut follow = k
        .command(&["logs", "-f", "chatty"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        follow.try_wait().expect("try_wait").is_none(),
        "kubectl logs -f ended while the container runs"
    );
    k.ok(&["annotate", "pod", "chatty", "sandbox.orca.dev/fault=crash"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = follow.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl logs -f did not end with the container"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = follow.wait_with_output().expect("output");
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(started));

    // The next instance runs; the one before is the previous log.
    wait_pod(&pods, &root, "chatty", "restarted and Running", |p| {
        running(p)
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    let (ok, out, err) = kubectl_out(k, &["logs", "chatty", "--previous"]);
    assert!(ok && out.contains(started), "{out}{err}");
    kubelet.shutdown().await;
}
