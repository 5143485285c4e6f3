//! The sandbox cluster end to end: the API server, the StatefulSet
//! controller and the kubelet running real `mariadbd`, driven through
//! kube-rs and the real `kubectl` as a user (or the operator) would.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use mysql_async::prelude::Queryable;
use orca_sandbox::kubelet::{FAULT_ANNOTATION, Kubelet, KubeletOptions};
use orca_sandbox::statefulset::StatefulSetController;
use serde_json::json;
use tokio::sync::Semaphore;

use support::kubectl::Kubectl;
use support::sandbox::Sandbox;

/// At most two clusters at a time: each runs several mariadbd.
static SLOTS: Semaphore = Semaphore::const_new(2);

const ROOT_PASSWORD: &str = "s3cret-root";

struct Cluster {
    sb: Sandbox,
    client: Client,
    kubelet: Option<Kubelet>,
    sts: Option<StatefulSetController>,
    root: PathBuf,
}

impl Cluster {
    async fn start(tune: impl FnOnce(&mut KubeletOptions)) -> Cluster {
        let sb = Sandbox::api_server();
        let client = sb.client().await;
        let root = sb.dir.path().join("kubelet");
        let mut opts = KubeletOptions {
            root: root.clone(),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(4),
            heartbeat_interval: Duration::from_secs(2),
            ..KubeletOptions::default()
        };
        tune(&mut opts);
        let kubelet = Kubelet::start(client.clone(), opts)
            .await
            .expect("start the kubelet");
        let sts = StatefulSetController::start(client.clone());
        Cluster {
            sb,
            client,
            kubelet: Some(kubelet),
            sts: Some(sts),
            root,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.sts.take() {
            s.shutdown().await;
        }
        if let Some(k) = self.kubelet.take() {
            let pids = k.pids();
            k.shutdown().await;
            for pid in pids {
                assert!(!alive(pid), "mariadbd {pid} survived the kubelet");
            }
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn kubectl(&self) -> &Kubectl {
        self.sb.kubectl()
    }

    /// Applies the operator-shaped manifests of `name` and waits until
    /// its `replicas` pods are ready.
    async fn deploy(&self, name: &str, replicas: i32, cnf: &str, readiness: &str) -> StatefulSet {
        self.kubectl()
            .apply(&operator_manifests(name, replicas, cnf, readiness));
        self.wait_ready(name, replicas, Duration::from_secs(120))
            .await
    }

    /// Sets the sandbox's fault annotation on a pod or node.
    fn fault(&self, kind: &str, name: &str, fault: &str) {
        self.kubectl().ok(&[
            "annotate",
            kind,
            name,
            &format!("{FAULT_ANNOTATION}={fault}"),
        ]);
    }

    async fn wait_ready(&self, name: &str, replicas: i32, limit: Duration) -> StatefulSet {
        let sets = self.sets();
        let deadline = Instant::now() + limit;
        loop {
            let s = sets.get(name).await.expect("get statefulset");
            let st = s.status.clone().unwrap_or_default();
            let pods = self
                .pods()
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .expect("list pods");
            if st.ready_replicas.unwrap_or(0) == replicas
                && st.replicas == replicas
                && pods.items.len() as i32 == replicas
                && pods.items.iter().all(is_ready)
                && st.current_revision == st.update_revision
                && st.observed_generation == s.metadata.generation
            {
                return s;
            }
            if Instant::now() > deadline {
                let summary: Vec<String> = pods
                    .items
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {:?}",
                            p.name_any(),
                            serde_json::to_string(&p.status).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!(
                    "statefulset {name} not ready with {replicas} replicas: {:?}\n{}\n{}",
                    st,
                    summary.join("\n"),
                    self.error_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every container's error log (for failure messages).
    fn error_logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dirs) = std::fs::read_dir(self.root.join("pods")) {
            for d in dirs.flatten() {
                if let Ok(files) = std::fs::read_dir(d.path()) {
                    for f in files.flatten() {
                        let name = f.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".log") {
                            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                            let tail: Vec<&str> = text.lines().rev().take(15).collect();
                            out.push_str(&format!(
                                "--- {} ---\n{}\n",
                                f.path().display(),
                                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    async fn pod(&self, name: &str) -> Pod {
        self.pods().get(name).await.expect("get pod")
    }

    async fn wait_pod(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        f: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(p)) = self.pods().get_opt(name).await
                && f(&p)
            {
                return p;
            }
            if Instant::now() > deadline {
                let p = self.pods().get_opt(name).await.ok().flatten();
                panic!(
                    "pod {name}: {what} did not happen within {limit:?}; pod: {}\n{}",
                    serde_json::to_string_pretty(&p.map(|p| p.status)).unwrap_or_default(),
                    self.error_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.error_logs());
        }
    }
}

fn alive(pid: u32) -> bool {
    // a zombie or a reused pid is not the mariadbd that was started
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z")
        })
        .unwrap_or(false)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("mariadbd"))
            .unwrap_or(false)
}

fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP")
}

/// The status of the pod's (first) container.
fn container(p: &Pod) -> ContainerStatus {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .cloned()
        .expect("a container status")
}

fn restart_count(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

async fn connect(ip: &str, timeout: Duration) -> Result<mysql_async::Conn, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ip)
        .tcp_port(3306)
        .user(Some("root"))
        .pass(Some(ROOT_PASSWORD))
        .prefer_socket(false);
    match tokio::time::timeout(timeout, mysql_async::Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Connects, retrying until `limit` (a server that was just declared ready
/// may still be initialising).
async fn connect_retry(ip: &str, limit: Duration) -> mysql_async::Conn {
    let deadline = Instant::now() + limit;
    loop {
        match connect(ip, Duration::from_secs(3)).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connecting to {ip}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The server at `ip` answers a query (retrying while it starts).
async fn assert_answers(ip: &str) {
    let mut conn = connect_retry(ip, Duration::from_secs(30)).await;
    let one: Option<u8> = conn.query_first("SELECT 1").await.expect("select");
    assert_eq!(one, Some(1));
    let _ = conn.disconnect().await;
}

/// The cluster shape the operator creates: a Secret with the root password,
/// a ConfigMap with my.cnf mounted at /etc/mysql/conf.d, a headless
/// Service, and the StatefulSet with the `data` claim template.
fn operator_manifests(name: &str, replicas: i32, cnf: &str, readiness: &str) -> String {
    let cnf_indented: String = cnf.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: {name}-root
stringData:
  password: {ROOT_PASSWORD}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  my.cnf: |
{cnf_indented}---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  clusterIP: None
  selector:
    app: {name}
  ports:
  - name: mysql
    port: 3306
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: mysqld
        image: mariadb:10.11
        args:
        - --server-id=1$(POD_INDEX)
        - --report-host=$(POD_IP)
        env:
        - name: POD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: MARIADB_ROOT_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {name}-root
              key: password
        ports:
        - name: mysql
          containerPort: 3306
        readinessProbe:
{readiness}
          periodSeconds: 1
          failureThreshold: 1
        volumeMounts:
        - name: data
          mountPath: /var/lib/mysql
        - name: config
          mountPath: /etc/mysql/conf.d
      volumes:
      - name: config
        configMap:
          name: {name}-config
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#
    )
}

const TCP_READINESS: &str = "          tcpSocket:\n            port: 3306";
const PING_READINESS: &str = "          exec:\n            command: [\"mariadb-admin\", \"ping\", \"-uroot\", \"-p$(MARIADB_ROOT_PASSWORD)\"]\n          timeoutSeconds: 1";
const PLAIN_CNF: &str = "[mariadbd]\nlog-bin = mysql-bin\nbinlog-format = ROW\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_statefulset_runs_three_real_mariadbd() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    let cnf = "[mariadbd]\nread_only = ON\nlog-bin = mysql-bin\nbinlog-format = ROW\nlog-slave-updates = ON\ngtid-strict-mode = ON\n";
    let set = c.deploy("db", 3, cnf, TCP_READINESS).await;
    let st = set.status.expect("status");
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(3));
    assert_eq!(st.observed_generation, set.metadata.generation);
    let revision = st.update_revision.expect("update revision");
    assert!(revision.starts_with("db-"), "{revision}");

    let mut ips = Vec::new();
    for i in 0..3 {
        let name = format!("db-{i}");
        let p = c.pod(&name).await;
        let labels = p.labels();
        assert_eq!(
            labels.get("apps.kubernetes.io/pod-index"),
            Some(&i.to_string())
        );
        assert_eq!(
            labels.get("statefulset.kubernetes.io/pod-name"),
            Some(&name)
        );
        assert_eq!(labels.get("controller-revision-hash"), Some(&revision));
        let spec = p.spec.clone().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        assert_eq!(spec.node_name.as_deref(), Some("sandbox-node"));
        let owner = &p.owner_references()[0];
        assert_eq!(owner.kind, "StatefulSet");
        assert_eq!(owner.controller, Some(true));
        let status = p.status.clone().expect("status");
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        let ip = pod_ip(&p);
        assert!(ip.starts_with("127.20."), "{ip}");
        let cs = &status.container_statuses.expect("container statuses")[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        assert!(
            cs.container_id
                .as_deref()
                .unwrap_or("")
                .starts_with("containerd://")
        );
        assert_eq!(cs.image, "docker.io/library/mariadb:10.11");

        let mut conn = connect_retry(&ip, Duration::from_secs(30)).await;
        let row: (u32, String, u8, String) = conn
            .query_first("SELECT @@server_id, @@report_host, @@read_only, @@version")
            .await
            .expect("query")
            .expect("row");
        assert_eq!(row.0, 10 + i, "server id from $(POD_INDEX)");
        assert_eq!(row.1, ip, "report host from $(POD_IP)");
        assert_eq!(row.2, 1, "read_only from the ConfigMap's my.cnf");
        assert!(row.3.contains("MariaDB"), "{}", row.3);
        // the image's accounts: root@localhost, root@'%', mariadb.sys only
        let users: Vec<(String, String)> = conn
            .query("SELECT User, Host FROM mysql.user ORDER BY User, Host")
            .await
            .expect("users");
        assert_eq!(
            users,
            vec![
                ("mariadb.sys".to_string(), "localhost".to_string()),
                ("root".to_string(), "%".to_string()),
                ("root".to_string(), "localhost".to_string()),
            ]
        );
        let _ = conn.disconnect().await;
        ips.push(ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "distinct pod IPs");

    // claims: one per pod, bound
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    for i in 0..3 {
        let pvc = claims.get(&format!("data-db-{i}")).await.expect("claim");
        assert_eq!(pvc.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    }
    // the headless Service's Endpoints list the ready pods with hostnames
    let eps = c.kubectl().ok(&["get", "endpoints", "db", "-o", "json"]);
    let eps: serde_json::Value = serde_json::from_str(&eps).expect("endpoints json");
    assert_eq!(
        eps["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(3),
        "{eps}"
    );

    // kubectl shows them Running and Ready, with their IPs and node
    let wide = c.kubectl().ok(&["get", "pods", "-o", "wide"]);
    for (i, line) in wide.lines().skip(1).enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], format!("db-{i}"), "{wide}");
        assert_eq!(cols[1], "1/1", "{wide}");
        assert_eq!(cols[2], "Running", "{wide}");
        assert!(cols[5].starts_with("127.20."), "{wide}");
        assert_eq!(cols[6], "sandbox-node", "{wide}");
    }
    let sts = c.kubectl().ok(&["get", "statefulset", "db"]);
    assert!(sts.contains("3/3"), "{sts}");
    let nodes = c.kubectl().ok(&["get", "nodes"]);
    assert!(
        nodes.contains("sandbox-node") && nodes.contains("Ready"),
        "{nodes}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pod_comes_back_with_its_data() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    c.deploy("keep", 2, PLAIN_CNF, TCP_READINESS).await;
    let before = c.pod("keep-1").await;
    let old_uid = before.uid().expect("uid");
    let ip = pod_ip(&before);
    let mut conn = connect_retry(&ip, Duration::from_secs(30)).await;
    conn.query_drop("CREATE DATABASE app")
        .await
        .expect("create database");
    conn.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .expect("create table");
    conn.query_drop("INSERT INTO app.t VALUES (1, 'kept')")
        .await
        .expect("insert");
    let _ = conn.disconnect().await;

    c.pods()
        .delete("keep-1", &DeleteParams::default())
        .await
        .expect("delete pod");
    let after = c
        .wait_pod("keep-1", Duration::from_secs(60), "recreation", |p| {
            p.uid().as_deref() != Some(old_uid.as_str()) && is_ready(p)
        })
        .await;
    assert_eq!(restart_count(&after), 0, "a new pod starts its count at 0");
    let mut conn = connect_retry(&pod_ip(&after), Duration::from_secs(30)).await;
    let v: Option<String> = conn
        .query_first("SELECT v FROM app.t WHERE id = 1")
        .await
        .expect("select");
    assert_eq!(v.as_deref(), Some("kept"), "the claim kept the data");
    let _ = conn.disconnect().await;
    // the deletion went through the kubelet: the events say so
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let killing = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("Killing")
                && e.involved_object.uid.as_deref() == Some(old_uid.as_str())
        });
    assert!(killing, "a Killing event for the old pod");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_container_restarts_with_back_off_and_is_counted() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|o| {
        o.restart_backoff_initial = Duration::from_secs(2);
        o.restart_backoff_max = Duration::from_secs(8);
    })
    .await;
    c.deploy("crash", 1, PLAIN_CNF, TCP_READINESS).await;
    let pids_before = c.kubelet.as_ref().expect("kubelet").pids();
    assert_eq!(pids_before.len(), 1);

    // first crash: restarted at once
    c.fault("pod", "crash-0", "crash");
    let p = c
        .wait_pod(
            "crash-0",
            Duration::from_secs(30),
            "restart after a crash",
            |p| restart_count(p) == 1 && is_ready(p),
        )
        .await;
    assert!(!alive(pids_before[0]), "the old process is gone");
    assert!(
        !p.annotations().contains_key(FAULT_ANNOTATION),
        "annotation removed"
    );
    let cs = &container(&p);
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last state terminated");
    assert_eq!(last.exit_code, 137);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_answers(&pod_ip(&p)).await;

    // second crash: CrashLoopBackOff for the back-off, then running again
    c.fault("pod", "crash-0", "crash");
    c.wait_pod(
        "crash-0",
        Duration::from_secs(30),
        "CrashLoopBackOff",
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs[0].state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
        },
    )
    .await;
    let table = c.kubectl().ok(&["get", "pod", "crash-0"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    c.wait_pod("crash-0", Duration::from_secs(30), "second restart", |p| {
        restart_count(p) == 2 && is_ready(p)
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "SandboxFault"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "BackOff"), "{reasons:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_and_resume() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    c.deploy("hang", 1, PLAIN_CNF, PING_READINESS).await;
    let ip = pod_ip(&c.pod("hang-0").await);
    connect_retry(&ip, Duration::from_secs(30))
        .await
        .disconnect()
        .await
        .expect("disconnect");
    c.fault("pod", "hang-0", "hang");
    // the ping probe (mariadb-admin ping) fails: the pod is not ready
    let p = c
        .wait_pod(
            "hang-0",
            Duration::from_secs(30),
            "not ready while hung",
            |p| !is_ready(p) && !p.annotations().contains_key(FAULT_ANNOTATION),
        )
        .await;
    assert_eq!(restart_count(&p), 0, "a hung container is not restarted");
    let err = connect(&ip, Duration::from_secs(2)).await;
    assert!(err.is_err(), "a hung server does not answer");
    c.fault("pod", "hang-0", "resume");
    c.wait_pod(
        "hang-0",
        Duration::from_secs(30),
        "ready after resume",
        is_ready,
    )
    .await;
    assert_answers(&ip).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_not_ready_flips_pod_readiness() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    c.deploy("nr", 2, PLAIN_CNF, TCP_READINESS).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node_ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True")
            .unwrap_or(false)
    };
    assert!(node_ready(&nodes.get("sandbox-node").await.expect("node")));
    c.fault("node", "sandbox-node", "not-ready");
    for name in ["nr-0", "nr-1"] {
        c.wait_pod(
            name,
            Duration::from_secs(20),
            "not ready with the node",
            |p| !is_ready(p),
        )
        .await;
    }
    let n = nodes.get("sandbox-node").await.expect("node");
    assert!(!node_ready(&n), "the node is NotReady");
    assert!(!n.annotations().contains_key(FAULT_ANNOTATION));
    let table = c.kubectl().ok(&["get", "nodes"]);
    assert!(table.contains("NotReady"), "{table}");
    // the processes keep running
    let ip = pod_ip(&c.pod("nr-0").await);
    connect_retry(&ip, Duration::from_secs(10))
        .await
        .disconnect()
        .await
        .expect("disconnect");
    c.fault("node", "sandbox-node", "ready");
    for name in ["nr-0", "nr-1"] {
        c.wait_pod(name, Duration::from_secs(20), "ready again", is_ready)
            .await;
    }
    assert!(node_ready(&nodes.get("sandbox-node").await.expect("node")));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_and_down_keeps_claims() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    c.deploy("sc", 3, PLAIN_CNF, TCP_READINESS).await;
    c.kubectl()
        .ok(&["scale", "statefulset", "sc", "--replicas=5"]);
    c.wait_ready("sc", 5, Duration::from_secs(120)).await;
    // scale down, watching the order pods go in
    let pods = c.pods();
    let mut deletions = watcher(pods.clone(), watcher::Config::default().labels("app=sc")).boxed();
    let order = tokio::spawn(async move {
        let mut gone = Vec::new();
        while let Some(ev) = deletions.next().await {
            if let Ok(watcher::Event::Delete(p)) = ev {
                gone.push(p.name_any());
                if gone.len() == 3 {
                    break;
                }
            }
        }
        gone
    });
    c.kubectl()
        .ok(&["scale", "statefulset", "sc", "--replicas=2"]);
    c.wait_ready("sc", 2, Duration::from_secs(120)).await;
    let gone = tokio::time::timeout(Duration::from_secs(10), order)
        .await
        .expect("deletions seen")
        .expect("watch task");
    assert_eq!(gone, vec!["sc-4", "sc-3", "sc-2"], "highest ordinal first");
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app=sc"))
        .await
        .expect("pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(names, vec!["sc-0", "sc-1"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let mut claim_names: Vec<String> = claims
        .list(&ListParams::default())
        .await
        .expect("claims")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    claim_names.sort();
    assert_eq!(
        claim_names,
        (0..5).map(|i| format!("data-sc-{i}")).collect::<Vec<_>>(),
        "claims stay after scale-down"
    );
    assert_eq!(c.kubelet.as_ref().expect("kubelet").pids().len(), 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_goes_from_the_highest_ordinal() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    let before = c.deploy("ru", 3, PLAIN_CNF, TCP_READINESS).await;
    let old_rev = before
        .status
        .and_then(|s| s.update_revision)
        .expect("revision");
    let pods = c.pods();
    let first_rev = old_rev.clone();
    let mut stream = watcher(pods.clone(), watcher::Config::default().labels("app=ru")).boxed();
    let order = tokio::spawn(async move {
        let mut updated: Vec<String> = Vec::new();
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(p)) = ev {
                let rev = p.labels().get("controller-revision-hash").cloned();
                let name = p.name_any();
                if rev.as_deref() != Some(old_rev.as_str()) && !updated.contains(&name) {
                    updated.push(name);
                    if updated.len() == 3 {
                        break;
                    }
                }
            }
        }
        updated
    });
    c.sets()
        .patch(
            "ru",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}),
            ),
        )
        .await
        .expect("patch template");
    let after = c.wait_ready("ru", 3, Duration::from_secs(180)).await;
    let st = after.status.expect("status");
    assert_ne!(st.update_revision.as_deref(), Some(first_rev.as_str()));
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(st.updated_replicas, Some(3));
    let order = tokio::time::timeout(Duration::from_secs(10), order)
        .await
        .expect("updates seen")
        .expect("watch task");
    assert_eq!(order, vec!["ru-2", "ru-1", "ru-0"], "highest ordinal first");
    let revisions = c.kubectl().ok(&["get", "controllerrevisions"]);
    assert_eq!(revisions.lines().count(), 3, "two revisions:\n{revisions}");

    // a partition keeps the ordinals below it on the old revision
    c.sets()
        .patch(
            "ru",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "updateStrategy": {"rollingUpdate": {"partition": 2}},
                "template": {"metadata": {"annotations": {"rollout": "3"}}}}})),
        )
        .await
        .expect("patch template");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.sets().get("ru").await.expect("get");
        let st = s.status.clone().expect("status");
        // Between its deletion and its re-creation the pod is not there.
        let p2 = c.pods().get_opt("ru-2").await.expect("get pod");
        if let Some(p2) = p2
            && st.updated_replicas == Some(1)
            && p2.labels().get("controller-revision-hash") == st.update_revision.as_ref()
            && is_ready(&p2)
        {
            assert_ne!(st.current_revision, st.update_revision);
            let p0 = c.pod("ru-0").await;
            assert_eq!(
                p0.labels().get("controller-revision-hash"),
                st.current_revision.as_ref(),
                "ru-0 is below the partition"
            );
            break;
        }
        assert!(Instant::now() < deadline, "partitioned update: {st:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orca_sandbox_command_serves_kubectl_and_stops_everything() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let mut sb = Sandbox::cluster(&[]).await;
    let kubectl = sb.kubectl();
    let ns = kubectl.ok(&["get", "namespaces"]);
    assert!(ns.contains("default"), "{ns}");
    kubectl.apply(&operator_manifests("cli", 1, PLAIN_CNF, TCP_READINESS));
    let out = kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/cli-0",
        "--timeout=120s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let all = kubectl.ok(&["get", "pods", "-A", "-o", "wide"]);
    assert!(all.contains("cli-0") && all.contains("Running"), "{all}");
    // the pid the kubelet wrote for the container
    let uid = kubectl.ok(&["get", "pod", "cli-0", "-o", "jsonpath={.metadata.uid}"]);
    let pid_file = sb
        .dir
        .path()
        .join("kubelet/pods")
        .join(uid.trim())
        .join("mysqld.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid: u32 = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no pid file {}",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(alive(pid));
    // the fault convenience sets the annotation
    let out = Command::new(support::sandbox_bin())
        .args(["fault", "cli-0", "hang", "--dir"])
        .arg(sb.dir.path())
        .output()
        .expect("orca-sandbox fault");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if st
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            == Some("T")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container was not stopped: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM stops everything, hung servers included
    let status = sb.terminate();
    let printed = sb.log();
    assert!(status.success(), "orca-sandbox exit {status}: {printed}");
    assert!(printed.contains("export KUBECONFIG="), "{printed}");
    assert!(!alive(pid), "mariadbd {pid} survived orca-sandbox");
    let addr = sb.url.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "API server still up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_pod_gets_the_image_environment_probes_and_hooks() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    let flags = tempfile::tempdir().expect("flags dir");
    let sick = flags.path().join("sick");
    let stopped = flags.path().join("prestop-ran");
    let manifests = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-settings
data:
  MARIADB_DATABASE: shop
  MARIADB_USER: clerk
  server.cnf: |
    [mariadbd]
    max_connections = 77
  ignored.cnf: |
    [mariadbd]
    max_connections = 5
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
stringData:
  root: {ROOT_PASSWORD}
  clerk: clerk-pw
---
apiVersion: v1
kind: Pod
metadata:
  name: plain
  labels:
    tier: db
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: db
    image: docker.io/library/mariadb:10.11
    command: ["docker-entrypoint.sh"]
    args: ["mariadbd", "--max-allowed-packet=$(PACKET)"]
    envFrom:
    - configMapRef:
        name: app-settings
    env:
    - name: PACKET
      value: "33554432"
    - name: MARIADB_ROOT_PASSWORD
      valueFrom:
        secretKeyRef: {{name: app-secret, key: root}}
    - name: MARIADB_PASSWORD
      valueFrom:
        secretKeyRef: {{name: app-secret, key: clerk}}
    - name: TIER
      valueFrom:
        fieldRef: {{fieldPath: "metadata.labels['tier']"}}
    - name: SICK
      value: {sick}
    - name: STOPPED
      value: {stopped}
    startupProbe:
      exec:
        command: ["healthcheck.sh", "--connect", "--innodb_initialized"]
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec:
        command: ["sh", "-c", "test ! -e \"$SICK\""]
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      tcpSocket:
        port: mysql
      periodSeconds: 1
    ports:
    - name: mysql
      containerPort: 3306
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo $TIER > \"$STOPPED\""]
    volumeMounts:
    - name: conf
      mountPath: /etc/mysql/mariadb.conf.d
  volumes:
  - name: conf
    configMap:
      name: app-settings
      items:
      - key: server.cnf
        path: 50-server.cnf
"#,
        sick = sick.display(),
        stopped = stopped.display()
    );
    c.kubectl().apply(&manifests);
    let p = c
        .wait_pod("plain", Duration::from_secs(60), "ready", is_ready)
        .await;
    let cs = &container(&p);
    assert_eq!(cs.started, Some(true));
    let ip = pod_ip(&p);
    let mut conn = connect_retry(&ip, Duration::from_secs(30)).await;
    let row: (u32, u64) = conn
        .query_first("SELECT @@max_connections, @@max_allowed_packet")
        .await
        .expect("query")
        .expect("row");
    assert_eq!(row.0, 77, "only the projected item is configuration");
    assert_eq!(row.1, 33554432, "$(PACKET) expanded in the arguments");
    let _ = conn.disconnect().await;
    // MARIADB_USER / MARIADB_PASSWORD / MARIADB_DATABASE
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(ip.clone())
        .tcp_port(3306)
        .user(Some("clerk"))
        .pass(Some("clerk-pw"))
        .db_name(Some("shop"))
        .prefer_socket(false);
    let mut clerk = mysql_async::Conn::new(opts).await.expect("clerk connects");
    clerk
        .query_drop("CREATE TABLE items (id INT)")
        .await
        .expect("the user owns its database");
    let _ = clerk.disconnect().await;

    // a failing liveness probe (a command run with the container's env)
    // restarts the container
    std::fs::write(&sick, b"").expect("flag");
    c.wait_pod("plain", Duration::from_secs(60), "liveness restart", |p| {
        restart_count(p) >= 1
    })
    .await;
    std::fs::remove_file(&sick).expect("unflag");
    c.wait_pod("plain", Duration::from_secs(60), "ready again", is_ready)
        .await;

    // deletion runs the preStop hook with the container's env
    c.pods()
        .delete("plain", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.pods().get_opt("plain").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the pod was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&stopped)
            .expect("preStop ran")
            .trim(),
        "db"
    );
    assert!(c.kubelet.as_ref().expect("kubelet").pids().is_empty());

    // without a root password the entrypoint refuses: exit 1, and with
    // restartPolicy Never the pod fails
    let refused = r#"apiVersion: v1
kind: Pod
metadata:
  name: refused
spec:
  restartPolicy: Never
  containers:
  - name: db
    image: mariadb:10.11
"#;
    c.kubectl().apply(refused);
    let p = c
        .wait_pod("refused", Duration::from_secs(30), "failure", |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        })
        .await;
    let cs = &container(&p);
    let t = cs
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(t.exit_code, 1);
    assert_eq!(cs.restart_count, 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pods_and_on_delete_updates() {
    let _slot = SLOTS.acquire().await.expect("slot");
    let c = Cluster::start(|_| {}).await;
    let manifests = operator_manifests("par", 3, PLAIN_CNF, TCP_READINESS).replace(
        "  serviceName: par\n",
        "  serviceName: par\n  podManagementPolicy: Parallel\n  updateStrategy:\n    type: OnDelete\n",
    );
    c.kubectl().apply(&manifests);
    // Parallel: every pod is created without waiting for the others
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = c
            .pods()
            .list(&ListParams::default().labels("app=par"))
            .await
            .expect("pods")
            .items
            .len();
        if n == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "parallel creation: {n} pods");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = c.wait_ready("par", 3, Duration::from_secs(120)).await;
    let old_rev = before.status.and_then(|s| s.current_revision).expect("rev");
    c.sets()
        .patch(
            "par",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})),
        )
        .await
        .expect("patch");
    // OnDelete: nothing is replaced until a pod is deleted
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = c
        .sets()
        .get("par")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_ne!(s.update_revision.as_deref(), Some(old_rev.as_str()));
    assert_eq!(s.updated_replicas, Some(0));
    for i in 0..3 {
        let p = c.pod(&format!("par-{i}")).await;
        assert_eq!(p.labels().get("controller-revision-hash"), Some(&old_rev));
    }
    let old_uid = c.pod("par-1").await.uid().expect("uid");
    c.pods()
        .delete("par-1", &DeleteParams::default())
        .await
        .expect("delete");
    let update = s.update_revision.clone().expect("update revision");
    c.wait_pod(
        "par-1",
        Duration::from_secs(60),
        "replaced at the update revision",
        |p| {
            p.uid().as_deref() != Some(old_uid.as_str())
                && p.labels().get("controller-revision-hash") == Some(&update)
                && is_ready(p)
        },
    )
    .await;
    let p0 = c.pod("par-0").await;
    assert_eq!(p0.labels().get("controller-revision-hash"), Some(&old_rev));
    // deleting the set and its claims removes the claims' directories
    c.kubectl().ok(&["delete", "statefulset", "par"]);
    c.kubectl().ok(&["delete", "pvc", "--all"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = std::fs::read_dir(c.root.join("volumes"))
            .map(|d| d.count())
            .unwrap_or(0);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
        let n = claims
            .list(&ListParams::default())
            .await
            .expect("claims")
            .items
            .len();
        if left == 0 && n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} claim directories, {n} claims left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;
}
