//! Init containers in the sandbox kubelet, as a kubelet runs them: in
//! order, each to completion, before the app containers; a failed one
//! again with back-off (the pod held in Pending, or Failed under
//! `restartPolicy: Never`); never again once completed, not when an app
//! container restarts nor when the kubelet restarts, but again in a new
//! pod; stopped when the pod is deleted. Orca-image init containers run
//! the orca binary in their own root, which holds the image's database
//! tools.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use orca_sandbox::kubelet::{Kubelet, KubeletOptions, rootfs};
use support::eventually;
use support::sandbox::Sandbox;

const ORCA: &str = "ghcr.io/orca-dev/orca:0.1.0";

/// A kubelet on `root` that retries quickly.
async fn kubelet(client: &Client, root: &Path) -> Kubelet {
    Kubelet::start(
        client.clone(),
        KubeletOptions {
            root: root.to_path_buf(),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(2),
            ..KubeletOptions::default()
        },
    )
    .await
    .expect("start the kubelet")
}

/// Waits (at most `limit`) until pod `name` is as `ok` says.
async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Pod) -> bool,
) -> Pod {
    let what = format!("pod {name}: {what}");
    eventually(limit, &what, || async {
        pods.get_opt(name).await.ok().flatten().filter(|p| ok(p))
    })
    .await
}

fn statuses(p: &Pod, init: bool) -> Vec<ContainerStatus> {
    let s = p.status.clone().unwrap_or_default();
    if init {
        s.init_container_statuses.unwrap_or_default()
    } else {
        s.container_statuses.unwrap_or_default()
    }
}

fn find(p: &Pod, init: bool, name: &str) -> Option<ContainerStatus> {
    statuses(p, init).into_iter().find(|s| s.name == name)
}

fn status_of(p: &Pod, init: bool, name: &str) -> ContainerStatus {
    find(p, init, name).unwrap_or_else(|| panic!("no status of {name}: {:#?}", p.status))
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn condition(p: &Pod, kind: &str) -> Option<(String, Option<String>, Option<String>)> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn ready(p: &Pod) -> bool {
    phase(p) == "Running" && condition(p, "Ready").is_some_and(|c| c.0 == "True")
}

fn waiting_reason(s: &ContainerStatus) -> Option<String> {
    s.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

fn completed(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0 && t.reason.as_deref() == Some("Completed"))
}

/// The pod's Events (of its uid), in the order they were recorded.
async fn events(client: &Client, p: &Pod) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut v: Vec<Event> = api
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.uid == p.uid())
        .collect();
    v.sort_by_key(|e| {
        e.resource_version()
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    });
    v
}

/// The field paths of the pod's Events of `reason`, in order.
async fn fields(client: &Client, p: &Pod, reason: &str) -> Vec<String> {
    events(client, p)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.involved_object.field_path.unwrap_or_default())
        .collect()
}

fn is_mariadbd(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("mariadbd"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().unwrap_or("").split_whitespace().next() != Some("Z"))
}

/// A pod of two orca-image init containers (`orca --version`), one of
/// another image, and a MariaDB container.
fn database_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  initContainers:
  - name: first
    image: {ORCA}
    args: ["--version"]
    volumeMounts:
    - name: data
      mountPath: /var/lib/mysql
  - name: second
    image: {ORCA}
    args: ["--version"]
  - name: other
    image: busybox:1.36
    command: ["sh", "-c", "true"]
  containers:
  - name: mariadb
    image: mariadb:10.11
    env:
    - name: MARIADB_ROOT_PASSWORD
      value: s3cret
    readinessProbe:
      tcpSocket:
        port: 3306
      periodSeconds: 1
    volumeMounts:
    - name: data
      mountPath: /var/lib/mysql
  volumes:
  - name: data
    emptyDir: {{}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_run_in_order_once_before_the_database() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let root = sb.dir.path().join("kubelet");
    let mut node = kubelet(&client, &root).await;
    let k = sb.kubectl();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let inits = ["first", "second", "other"];

    k.apply(&database_pod("db"));
    let p = wait_pod(&pods, "db", Duration::from_secs(90), "Ready", ready).await;
    for name in inits {
        let s = status_of(&p, true, name);
        assert!(completed(&s), "{name}: {s:#?}");
        assert!(s.ready, "{name} completed is ready");
        assert_eq!(s.restart_count, 0, "{name}");
        assert!(s.container_id.is_some(), "{name}");
    }
    assert_eq!(
        condition(&p, "Initialized").map(|c| c.0).as_deref(),
        Some("True")
    );

    // In order: each init container started once, after the one before
    // ended, and the database after them all.
    let started = fields(&client, &p, "Started").await;
    assert_eq!(
        started,
        [
            "spec.initContainers{first}",
            "spec.initContainers{second}",
            "spec.initContainers{other}",
            "spec.containers{mariadb}",
        ],
        "Started events in order"
    );
    let times = |name: &str| {
        let s = status_of(&p, true, name);
        let t = s
            .state
            .and_then(|s| s.terminated)
            .expect("terminated init container");
        (
            t.started_at.expect("startedAt").0,
            t.finished_at.expect("finishedAt").0,
        )
    };
    let app_started = status_of(&p, false, "mariadb")
        .state
        .and_then(|s| s.running)
        .and_then(|r| r.started_at)
        .expect("mariadb running")
        .0;
    let (_, first_done) = times("first");
    let (second_start, second_done) = times("second");
    let (other_start, other_done) = times("other");
    assert!(first_done <= second_start && second_done <= other_start);
    assert!(other_done <= app_started);
    // their output, through the log machinery
    let out = k.ok(&["logs", "db", "-c", "first"]);
    assert!(out.contains("orca "), "kubectl logs -c first: {out:?}");
    let table = k.ok(&["get", "pod", "db"]);
    assert!(
        table.contains("1/1") && table.contains("Running"),
        "{table}"
    );
    let inits_before = statuses(&p, true);

    // A crashed mariadbd restarts alone: the init containers do not run again.
    let pids = node.pids();
    assert_eq!(pids.len(), 1, "only mariadbd runs: {pids:?}");
    assert!(is_mariadbd(pids[0]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL mariadbd");
    let p = wait_pod(
        &pods,
        "db",
        Duration::from_secs(60),
        "mariadb restarted and Ready",
        |p| ready(p) && find(p, false, "mariadb").is_some_and(|s| s.restart_count == 1),
    )
    .await;
    assert_eq!(
        statuses(&p, true),
        inits_before,
        "init containers unchanged"
    );
    assert_eq!(fields(&client, &p, "Started").await.len(), 4 + 1);

    // Nor when the kubelet restarts on the pod: its status says they completed.
    node.shutdown().await;
    node = kubelet(&client, &root).await;
    let p = wait_pod(
        &pods,
        "db",
        Duration::from_secs(60),
        "mariadb started by the new kubelet and Ready",
        |p| ready(p) && find(p, false, "mariadb").is_some_and(|s| s.restart_count == 2),
    )
    .await;
    assert_eq!(
        statuses(&p, true),
        inits_before,
        "init containers unchanged"
    );
    let started = fields(&client, &p, "Started").await;
    assert_eq!(
        started
            .iter()
            .filter(|f| f.starts_with("spec.initContainers"))
            .count(),
        3,
        "{started:?}"
    );
    let out = k.ok(&["logs", "db", "-c", "second"]);
    assert!(out.contains("orca "), "kubectl logs -c second: {out:?}");

    // A new pod of the same name (a new uid) runs them again.
    let old_uid = p.uid();
    k.ok(&["delete", "pod", "db", "--grace-period=1"]);
    k.apply(&database_pod("db"));
    let p = wait_pod(
        &pods,
        "db",
        Duration::from_secs(90),
        "the new pod Ready",
        |p| p.uid() != old_uid && ready(p),
    )
    .await;
    for (name, before) in inits.iter().zip(&inits_before) {
        let s = status_of(&p, true, name);
        assert!(completed(&s), "{name}: {s:#?}");
        assert_ne!(s.container_id, before.container_id, "{name} ran again");
    }
    assert_eq!(fields(&client, &p, "Started").await.len(), 4);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_init_container_holds_the_pod_back() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let root = sb.dir.path().join("kubelet");
    let node = kubelet(&client, &root).await;
    let k = sb.kubectl();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let manifest = |name: &str, policy: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  initContainers:
  - name: bad
    image: {ORCA}
    args: ["no-such-command"]
  containers:
  - name: mariadb
    image: mariadb:10.11
    env:
    - name: MARIADB_ROOT_PASSWORD
      value: s3cret
"#
        )
    };

    // Restarted with back-off; the pod stays Pending, the database waits.
    k.apply(&manifest("stuck", "Always"));
    wait_pod(
        &pods,
        "stuck",
        Duration::from_secs(60),
        "CrashLoopBackOff",
        |p| {
            find(p, true, "bad")
                .and_then(|s| waiting_reason(&s))
                .as_deref()
                == Some("CrashLoopBackOff")
        },
    )
    .await;
    let p = wait_pod(
        &pods,
        "stuck",
        Duration::from_secs(60),
        "restartCount 3",
        |p| find(p, true, "bad").is_some_and(|s| s.restart_count >= 3),
    )
    .await;
    assert_eq!(phase(&p), "Pending");
    let bad = status_of(&p, true, "bad");
    let last = bad
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    assert!(!bad.ready);
    let app = status_of(&p, false, "mariadb");
    assert_eq!(waiting_reason(&app).as_deref(), Some("PodInitializing"));
    assert_eq!((app.container_id, app.restart_count), (None, 0));
    let (status, reason, message) = condition(&p, "Initialized").expect("Initialized");
    assert_eq!(status, "False");
    assert_eq!(reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        message.as_deref(),
        Some("containers with incomplete status: [bad]")
    );
    assert!(
        node.pids().iter().all(|&p| !is_mariadbd(p)),
        "the database never starts"
    );
    let backoff = fields(&client, &p, "BackOff").await;
    assert!(
        backoff.iter().any(|f| f == "spec.initContainers{bad}"),
        "{backoff:?}"
    );
    assert!(
        fields(&client, &p, "Started")
            .await
            .iter()
            .all(|f| f == "spec.initContainers{bad}")
    );
    let table = k.ok(&["get", "pod", "stuck"]);
    assert!(table.contains("Init:"), "{table}");
    // its error output, the current instance's (once it wrote it) and the
    // one before's
    let error = "unrecognized subcommand 'no-such-command'";
    eventually(Duration::from_secs(20), "kubectl logs -c bad", || async {
        k.ok(&["logs", "stuck", "-c", "bad"])
            .contains(error)
            .then_some(())
    })
    .await;
    let out = k.ok(&["logs", "stuck", "-c", "bad", "--previous"]);
    assert!(
        out.contains(error),
        "kubectl logs -c bad --previous: {out:?}"
    );

    // Under restartPolicy Never the pod fails.
    k.apply(&manifest("failed", "Never"));
    let p = wait_pod(&pods, "failed", Duration::from_secs(60), "Failed", |p| {
        phase(p) == "Failed"
    })
    .await;
    let bad = status_of(&p, true, "bad");
    assert_eq!(bad.restart_count, 0);
    let t = bad
        .state
        .and_then(|s| s.terminated)
        .expect("terminated init container");
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    let app = status_of(&p, false, "mariadb");
    assert_eq!(waiting_reason(&app).as_deref(), Some("PodInitializing"));
    assert_eq!(app.container_id, None);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_init_container_has_the_tools_and_stops_with_its_pod() {
    let sb = Sandbox::api_server();
    let client = sb.client().await;
    let root = sb.dir.path().join("kubelet");
    let node = kubelet(&client, &root).await;
    sb.install_crds().await;
    let k = sb.kubectl();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let kubeconfig = std::fs::read_to_string(&sb.kubeconfig).expect("kubeconfig");
    let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube\ndata:\n  kubeconfig: |\n{indented}"
    ));
    // An init container that does not end: the operator.
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: waits
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: operator
    image: {ORCA}
    args: ["operator", "--kubeconfig=/etc/kube/kubeconfig", "--no-leader-election"]
    securityContext:
      readOnlyRootFilesystem: true
    volumeMounts:
    - name: kube
      mountPath: /etc/kube
      readOnly: true
    - name: tmp
      mountPath: /tmp
  containers:
  - name: app
    image: busybox:1.36
  volumes:
  - name: kube
    configMap:
      name: kube
  - name: tmp
    emptyDir: {{}}
"#
    ));
    let p = wait_pod(
        &pods,
        "waits",
        Duration::from_secs(60),
        "the init container running",
        |p| {
            find(p, true, "operator")
                .and_then(|s| s.state)
                .is_some_and(|s| s.running.is_some())
        },
    )
    .await;
    assert_eq!(phase(&p), "Pending");
    let app = status_of(&p, false, "app");
    assert_eq!(waiting_reason(&app).as_deref(), Some("PodInitializing"));
    let table = k.ok(&["get", "pod", "waits"]);
    assert!(table.contains("Init:0/1"), "{table}");

    // The image's database tools, the host's real files, read only.
    let pids = node.pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let tools = rootfs::host_tools(Path::new("/"));
    assert!(
        !tools.is_empty(),
        "the host has MariaDB's tools (mariadb-backup)"
    );
    for (host, at) in &tools {
        let opts = mounts
            .lines()
            .rfind(|l| l.split_whitespace().nth(4) == Some(*at))
            .and_then(|l| l.split_whitespace().nth(5))
            .unwrap_or_else(|| panic!("nothing mounted at {at}:\n{mounts}"));
        assert!(opts.starts_with("ro"), "{at}: {opts}");
        let inside = PathBuf::from(format!("/proc/{pid}/root{at}"));
        let (a, b) = (
            std::fs::metadata(&inside).expect("the tool in the container"),
            std::fs::metadata(host).expect("the host's tool"),
        );
        assert!(a.len() == b.len() && a.len() > 0, "{at}");
    }

    // Deleted: the init container is stopped, the pod goes.
    k.ok(&["delete", "pod", "waits", "--wait=false"]);
    eventually(Duration::from_secs(30), "the pod gone", || async {
        pods.get_opt("waits")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    assert!(!alive(pid), "the init container's process is gone");
    assert!(node.pids().is_empty());
    assert!(
        fields(&client, &p, "Killing")
            .await
            .iter()
            .any(|f| f == "spec.initContainers{operator}")
    );
    node.shutdown().await;
}
