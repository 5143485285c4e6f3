//! The sandbox cluster as a user runs it: the `orca-sandbox` binary (API
//! server, StatefulSet controller, kubelet, and the operator unless told
//! otherwise), `kubectl`, and helpers to read a MySQLCluster's state and
//! write through its primary Service.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Secret};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use mysql_async::prelude::Queryable;
use orca::k8s::crd::cluster::MySQLCluster;
use orca::mysql::Credentials;
use orca::mysql::conn::Timeouts;
use orca::topology::InstanceKey;

pub struct Sandbox {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub operator: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Sandbox {
    /// `orca-sandbox` with its own directory and port; `args` are added.
    pub async fn start(args: &[&str]) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("sandbox.log")).expect("log");
        let child = Command::new(super::sandbox_bin())
            .args(["--log", "orca=info,orca_sandbox=info", "--dir"])
            .arg(dir.path())
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start orca-sandbox");
        let kubeconfig = dir.path().join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            if kubeconfig.exists()
                && let Ok(kc) = Kubeconfig::read_from(&kubeconfig)
                && let Ok(cfg) =
                    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await
                && let Ok(c) = Client::try_from(cfg)
                && c.apiserver_version().await.is_ok()
            {
                break c;
            }
            assert!(Instant::now() < deadline, "the sandbox did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The operator installs the CRDs: wait for them.
        let sb = Sandbox {
            child,
            dir,
            kubeconfig,
            client,
            operator: None,
        };
        if !args.contains(&"--no-operator") {
            sb.wait_crds().await;
        }
        sb
    }

    pub async fn wait_crds(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.kubectl(&["get", "mysql"]).0 {
            assert!(Instant::now() < deadline, "the CRDs were not installed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the CRDs, installing them (with `orca crds`) when no
    /// operator in the sandbox does.
    pub async fn wait_crds_or_install(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_orca"))
            .arg("crds")
            .output()
            .expect("orca crds");
        let (ok, msg) = self.kubectl_in(
            &["apply", "--server-side", "-f", "-"],
            Some(&String::from_utf8_lossy(&out.stdout)),
        );
        assert!(ok, "{msg}");
        self.wait_crds().await;
    }

    /// A separate `orca operator` process against this sandbox.
    pub fn start_operator(&mut self, identity: &str) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("{identity}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_orca"))
            .args(["--log", "orca=info", "operator", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(["--identity", identity])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start orca operator");
        self.operator = Some(child);
    }

    /// Stops the separate operator with SIGTERM (it releases its lease).
    pub fn stop_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sandbox.log")).unwrap_or_default()
    }

    /// Runs kubectl with this sandbox's kubeconfig: (success, output).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        self.kubectl_in(args, None)
    }

    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is required: it ships with the machine");
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(stdin.unwrap_or("").as_bytes());
        }
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn apply(&self, yaml: &str) {
        let (ok, out) = self.kubectl_in(&["apply", "-f", "-"], Some(yaml));
        assert!(ok, "kubectl apply: {out}");
    }

    pub fn clusters(&self) -> Api<MySQLCluster> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn cluster(&self, name: &str) -> MySQLCluster {
        self.clusters()
            .get(name)
            .await
            .expect("get the MySQLCluster")
    }

    /// Waits until the cluster is Available and Healthy; returns its primary.
    pub async fn wait_healthy(&self, name: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.cluster(name).await;
            if let Some(s) = &c.status {
                let cond = |t: &str| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == t && c.status == "True")
                };
                if cond("Available")
                    && cond("Healthy")
                    && let Some(p) = &s.primary
                {
                    return p.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} not healthy: {:#?}\n{}",
                c.status,
                self.log()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until the last operation is of `kind` and finished.
    pub async fn wait_operation(
        &self,
        name: &str,
        kind: &str,
        limit: Duration,
    ) -> orca::k8s::crd::cluster::OperationStatus {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.cluster(name).await;
            if let Some(op) = c.status.as_ref().and_then(|s| s.last_operation.clone())
                && serde_json::to_value(op.kind).unwrap() == kind
                && op.phase.is_finished()
            {
                return op;
            }
            assert!(
                Instant::now() < deadline,
                "no finished {kind} on {name}: {:#?}\n{}",
                c.status,
                self.log()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The root credentials of a cluster (from its Secret).
    pub async fn root(&self, name: &str) -> Credentials {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "default");
        let s = secrets
            .get(&format!("{name}-credentials"))
            .await
            .expect("the credentials Secret");
        let pw =
            String::from_utf8(s.data.expect("data")["root-password"].0.clone()).expect("utf-8");
        Credentials::new("root", pw)
    }

    /// The addresses behind a Service.
    pub async fn endpoints(&self, service: &str) -> Vec<InstanceKey> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), "default");
        let Some(ep) = api.get_opt(service).await.expect("endpoints") else {
            return Vec::new();
        };
        ep.subsets
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .map(|a| InstanceKey::new(a.ip, 3306))
            .collect()
    }

    /// The single address of `<name>-primary`, waiting for it to be `not`
    /// something else.
    pub async fn primary_endpoint(&self, name: &str, not: Option<&InstanceKey>) -> InstanceKey {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let eps = self.endpoints(&format!("{name}-primary")).await;
            if eps.len() == 1 && Some(&eps[0]) != not {
                return eps[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{name}-primary endpoints: {eps:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn pod_ip(&self, pod: &str) -> InstanceKey {
        let api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), "default");
        let p = api.get(pod).await.expect("pod");
        InstanceKey::new(p.status.and_then(|s| s.pod_ip).expect("pod IP"), 3306)
    }

    pub async fn pod_role(&self, pod: &str) -> Option<String> {
        let api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), "default");
        api.get(pod)
            .await
            .ok()?
            .metadata
            .labels?
            .get("orca.dev/role")
            .cloned()
    }

    /// Event reasons recorded for a cluster.
    pub fn event_reasons(&self, name: &str) -> String {
        self.kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ])
        .1
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_operator();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MySQLCluster manifest.
pub fn cluster_yaml(name: &str, replicas: u32, semi_sync: bool) -> String {
    format!(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: {name}\nspec:\n  image: mariadb:10.11\n  replicas: {replicas}\n{}",
        if semi_sync {
            "  semiSync:\n    enabled: true\n    waitCount: 1\n"
        } else {
            ""
        }
    )
}

/// Writes rows, one autocommit INSERT at a time, through whatever address
/// `target` holds, remembering the ids the server acknowledged; stops at
/// the first error.
pub struct ServiceWriter {
    pub acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceWriter {
    pub async fn start(key: InstanceKey, creds: Credentials) -> ServiceWriter {
        let t = Timeouts::default();
        let mut conn = orca::mysql::connect(&key, &creds, t)
            .await
            .expect("connect");
        conn.query_drop("CREATE DATABASE IF NOT EXISTS app")
            .await
            .expect("db");
        conn.query_drop("CREATE TABLE IF NOT EXISTS app.w (id BIGINT PRIMARY KEY)")
            .await
            .expect("table");
        let start: u64 = conn
            .query_first("SELECT COALESCE(MAX(id), 0) FROM app.w")
            .await
            .expect("max")
            .unwrap_or(0);
        let acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>> = Default::default();
        let a = acked.clone();
        let task = tokio::spawn(async move {
            let mut id = start;
            loop {
                id += 1;
                let r = tokio::time::timeout(
                    Duration::from_secs(20),
                    conn.query_drop(format!("INSERT INTO app.w VALUES ({id})")),
                )
                .await;
                match r {
                    Ok(Ok(())) => a.lock().unwrap().push(id),
                    _ => return,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        ServiceWriter { acked, task }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub async fn finish(self) -> Vec<u64> {
        self.task.abort();
        let _ = self.task.await;
        self.acked.lock().unwrap().clone()
    }
}

/// Every acknowledged id is on `key`.
pub async fn assert_acked(key: &InstanceKey, creds: &Credentials, acked: &[u64]) {
    assert!(
        !acked.is_empty(),
        "nothing was written: the test proves nothing"
    );
    let mut conn = orca::mysql::connect(key, creds, Timeouts::default())
        .await
        .expect("connect");
    let ids: Vec<u64> = conn.query("SELECT id FROM app.w").await.expect("select");
    let have: std::collections::BTreeSet<u64> = ids.into_iter().collect();
    let missing: Vec<&u64> = acked.iter().filter(|i| !have.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes missing on {key}: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
