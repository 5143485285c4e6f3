//! The sandbox cluster end to end: the API server, the StatefulSet
//! controller and the kubelet running real `mariadbd`, driven through
//! kube-rs and the real `kubectl` as a user (or the operator) would.

#[path = "support/sandbox_api.rs"]
mod sandbox_api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use mysql_async::prelude::Queryable;
use orca::sandbox::kubelet::{FAULT_ANNOTATION, Kubelet, KubeletOptions};
use orca::sandbox::statefulset::StatefulSetController;
use serde_json::json;
use tokio::sync::Semaphore;

use sandbox_api::Sandbox;

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
        let sb = sandbox_api::start();
        let kc = Kubeconfig::read_from(&sb.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kube config");
        let client = Client::try_from(config).expect("client");
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

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        kubectl(&self.sb.kubeconfig, &self.sb.dir.path().join("cache"), args, stdin)
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

    async fn wait_pod(&self, name: &str, limit: Duration, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
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

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = Command::new("kubectl");
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl (is it on PATH?): {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
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
    c.kubectl(
        &["apply", "-f", "-"],
        Some(&operator_manifests("db", 3, cnf, TCP_READINESS)),
    );
    let set = c.wait_ready("db", 3, Duration::from_secs(120)).await;
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
        assert_eq!(labels.get("apps.kubernetes.io/pod-index"), Some(&i.to_string()));
        assert_eq!(labels.get("statefulset.kubernetes.io/pod-name"), Some(&name));
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
        assert!(cs.container_id.as_deref().unwrap_or("").starts_with("containerd://"));
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
        assert_eq!(
            pvc.status.and_then(|s| s.phase).as_deref(),
            Some("Bound")
        );
    }
    // the headless Service's Endpoints list the ready pods with hostnames
    let eps = c.kubectl(&["get", "endpoints", "db", "-o", "json"], None);
    let eps: serde_json::Value = serde_json::from_str(&eps).expect("endpoints json");
    assert_eq!(
        eps["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(3),
        "{eps}"
    );

    // kubectl shows them Running and Ready, with their IPs and node
    let wide = c.kubectl(&["get", "pods", "-o", "wide"], None);
    for (i, line) in wide.lines().skip(1).enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], format!("db-{i}"), "{wide}");
        assert_eq!(cols[1], "1/1", "{wide}");
        assert_eq!(cols[2], "Running", "{wide}");
        assert!(cols[5].starts_with("127.20."), "{wide}");
        assert_eq!(cols[6], "sandbox-node", "{wide}");
    }
    let sts = c.kubectl(&["get", "statefulset", "db"], None);
    assert!(sts.contains("3/3"), "{sts}");
    let nodes = c.kubectl(&["get", "nodes"], None);
    assert!(nodes.contains("sandbox-node") && nodes.contains("Ready"), "{nodes}");
    c.stop().await;
}
