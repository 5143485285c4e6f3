//! The sandbox fixture: a temporary directory with a kubeconfig, a kube
//! client and `kubectl` for it, and behind it either the API server alone,
//! in-process ([`Sandbox::api_server`]), or the whole sandbox cluster as a
//! user runs it, the `orca-sandbox` binary as a child process (API server,
//! StatefulSet controller, kubelet with real `mariadbd`, and the operator
//! unless told otherwise: [`Sandbox::cluster`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::Client;
use orca_sandbox::apiserver::{ApiServer, RunningApiServer, write_kubeconfig};

use super::kubectl::Kubectl;

pub struct Sandbox {
    pub kubeconfig: PathBuf,
    /// The API server's URL.
    pub url: String,
    kubectl: Kubectl,
    client: OnceLock<Client>,
    /// The in-process API server ([`Sandbox::api_server`]).
    server: Option<RunningApiServer>,
    /// The `orca-sandbox` process ([`Sandbox::cluster`]).
    process: Option<Child>,
    /// The separate `orca operator` processes by identity
    /// ([`Sandbox::start_operator`]).
    operators: BTreeMap<String, Child>,
    /// Last, so that it goes after what runs in it.
    pub dir: tempfile::TempDir,
}

/// A kube client for a kubeconfig, built as the operator builds its own.
pub async fn client_for(kubeconfig: &Path) -> Client {
    orca::k8s::client(Some(kubeconfig))
        .await
        .unwrap_or_else(|e| panic!("kube client: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// SIGTERM, then waits up to `limit` for the exit; `None` if it had to
/// be killed.
fn terminate(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Sandbox {
    fn new(dir: tempfile::TempDir) -> Sandbox {
        let kubeconfig = dir.path().join("kubeconfig");
        Sandbox {
            kubectl: Kubectl::new(&kubeconfig, dir.path()),
            kubeconfig,
            url: String::new(),
            client: OnceLock::new(),
            server: None,
            process: None,
            operators: BTreeMap::new(),
            dir,
        }
    }

    /// The API server alone, in-process, on a free loopback port.
    pub fn api_server() -> Sandbox {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = ApiServer::start(addr, None).expect("start the API server");
        let mut sb = Sandbox::new(tempfile::tempdir().expect("tempdir"));
        sb.url = server.url();
        write_kubeconfig(&sb.kubeconfig, &sb.url).expect("write kubeconfig");
        sb.server = Some(server);
        sb
    }

    /// `orca-sandbox` with its own directory and port, `args` added;
    /// returns once the API server answers and, with the operator in it,
    /// the CRDs are installed.
    pub async fn cluster(args: &[&str]) -> Sandbox {
        let mut sb = Sandbox::new(tempfile::tempdir().expect("tempdir"));
        let addr = format!("127.0.0.1:{}", free_port());
        sb.url = format!("http://{addr}");
        let log = std::fs::File::create(sb.dir.path().join("sandbox.log")).expect("log");
        let child = Command::new(super::sandbox_bin())
            .args(["--log", "orca=info,orca_sandbox=info", "--dir"])
            .arg(sb.dir.path())
            .args(["--addr", &addr])
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start orca-sandbox");
        sb.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            if sb.kubeconfig.exists()
                && let Ok(c) = orca::k8s::client(Some(&sb.kubeconfig)).await
                && c.apiserver_version().await.is_ok()
            {
                break c;
            }
            let exited = sb.process.as_mut().map(|c| c.try_wait().expect("try_wait"));
            assert!(
                matches!(exited, Some(None)),
                "orca-sandbox exited:\n{}",
                sb.log()
            );
            assert!(Instant::now() < deadline, "the sandbox did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let _ = sb.client.set(client);
        // The operator installs the CRDs: wait for them.
        if !args.contains(&"--no-operator") {
            sb.wait_crds().await;
        }
        sb
    }

    /// `kubectl` for this sandbox.
    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    /// A kube client for this sandbox (one, made on first use).
    pub async fn client(&self) -> Client {
        if let Some(c) = self.client.get() {
            return c.clone();
        }
        let c = client_for(&self.kubeconfig).await;
        self.client.get_or_init(|| c).clone()
    }

    /// The in-process API server, for its test levers.
    pub fn server(&self) -> &RunningApiServer {
        self.server
            .as_ref()
            .expect("an in-process API server (Sandbox::api_server)")
    }

    /// Stops the sandbox: the in-process API server writes its snapshot;
    /// the process stops as [`Sandbox::terminate`] says.
    pub fn shutdown(mut self) {
        self.stop_operator();
        if let Some(server) = self.server.take() {
            server.shutdown().expect("API server shutdown");
        }
        if self.process.is_some() {
            self.terminate();
        }
    }

    /// SIGTERM to `orca-sandbox`, which must stop within a minute;
    /// returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.process.take().expect("an orca-sandbox process");
        terminate(&mut child, Duration::from_secs(60))
            .expect("orca-sandbox did not stop on SIGTERM")
    }

    /// What `orca-sandbox` printed (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sandbox.log")).unwrap_or_default()
    }

    /// The last `n` lines of [`Sandbox::log`].
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Installs orca's CRDs through the API.
    pub async fn install_crds(&self) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: kube::Api<CustomResourceDefinition> = kube::Api::all(self.client().await);
        for crd in orca::k8s::crd::all_crds() {
            api.create(&Default::default(), &crd)
                .await
                .expect("create CRD");
        }
    }

    /// Waits until the MySQLCluster kind is served.
    pub async fn wait_crds(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.kubectl.run(&["get", "mysql"], None).success() {
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
        self.kubectl.ok_in(
            &["apply", "--server-side", "-f", "-"],
            Some(&String::from_utf8_lossy(&out.stdout)),
        );
        self.wait_crds().await;
    }

    /// A separate `orca operator` process against this sandbox. Several
    /// may run, one per identity; they compete for the Lease.
    pub fn start_operator(&mut self, identity: &str) {
        self.start_operator_with(identity, &[]);
    }

    /// [`Sandbox::start_operator`] with environment variables set.
    pub fn start_operator_with(&mut self, identity: &str, env: &[(&str, &str)]) {
        let kubeconfig = self.kubeconfig.clone();
        self.start_operator_via(identity, &kubeconfig, env);
    }

    /// [`Sandbox::start_operator_with`] with its own kubeconfig (one that
    /// goes through a proxy, say).
    pub fn start_operator_via(&mut self, identity: &str, kubeconfig: &Path, env: &[(&str, &str)]) {
        // Appends: an identity started again keeps one log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{identity}.log")))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_orca"))
            // ORCA_TEST_LOG (say `orca=debug`) for a closer look at a run.
            .arg("--log")
            .arg(std::env::var("ORCA_TEST_LOG").unwrap_or_else(|_| "orca=info".to_string()))
            .args(["operator", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--identity", identity])
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start orca operator");
        if let Some(mut old) = self.operators.insert(identity.to_string(), child) {
            let _ = old.kill();
            let _ = old.wait();
        }
    }

    /// [`Sandbox::start_operator_with`] serving its API on loopback and
    /// keeping its records in `store`'s database `db`, the password in a
    /// file as a mounted Secret gives it.
    pub fn start_operator_with_store(
        &mut self,
        identity: &str,
        store: &super::store::StoreServer,
        db: &str,
    ) {
        let file = self.dir.path().join(format!("{identity}-store-password"));
        std::fs::write(&file, format!("{}\n", store.password())).expect("the password file");
        let (dsn, file) = (store.dsn(db), file.display().to_string());
        self.start_operator_with(
            identity,
            &[
                ("ORCA_LISTEN", "127.0.0.1:0"),
                ("ORCA_STORE_DSN", dsn.as_str()),
                ("ORCA_STORE_PASSWORD_FILE", file.as_str()),
            ],
        );
    }

    /// The address (`http://127.0.0.1:PORT`) the API of the separate
    /// operator `identity` listens on, once it says so.
    pub async fn operator_api(&self, identity: &str) -> String {
        self.wait_operator_line(identity, "API listening", "the operator's API")
            .await;
        super::api::api_address(&self.operator_log(identity)).expect("the API's address")
    }

    /// What the separate operator `identity` printed.
    pub fn operator_log(&self, identity: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{identity}.log"))).unwrap_or_default()
    }

    /// Waits (up to 60 s) until the separate operator `identity` printed
    /// `line`: a test pause reached, a step taken.
    pub async fn wait_operator_line(&self, identity: &str, line: &str, what: &str) {
        super::eventually(Duration::from_secs(60), what, || async {
            self.operator_log(identity).contains(line).then_some(())
        })
        .await;
    }

    /// The identities of the separate operators running.
    pub fn operators(&self) -> Vec<String> {
        self.operators.keys().cloned().collect()
    }

    /// Kills every separate operator with SIGKILL: no cleanup, the lease
    /// stays held until it expires.
    pub fn kill_operator(&mut self) {
        for id in self.operators() {
            self.kill_operator_named(&id);
        }
    }

    /// Kills the separate operator `identity` with SIGKILL.
    pub fn kill_operator_named(&mut self, identity: &str) {
        if let Some(mut c) = self.operators.remove(identity) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the separate operator
    /// `identity`.
    pub fn signal_operator(&self, identity: &str, signal: nix::sys::signal::Signal) {
        let c = self
            .operators
            .get(identity)
            .unwrap_or_else(|| panic!("no operator {identity}"));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), signal)
            .unwrap_or_else(|e| panic!("signal {signal} to {identity}: {e}"));
    }

    /// Stops every separate operator with SIGTERM (each releases its
    /// lease).
    pub fn stop_operator(&mut self) {
        for id in self.operators() {
            self.stop_operator_named(&id);
        }
    }

    /// Stops the separate operator `identity` with SIGTERM.
    pub fn stop_operator_named(&mut self, identity: &str) {
        if let Some(mut c) = self.operators.remove(identity) {
            terminate(&mut c, Duration::from_secs(15));
        }
    }

    /// The holder of the operators' Lease (`default/orca-operator`) and
    /// its transitions (the epoch), if it is held.
    pub async fn lease_holder(&self) -> Option<(String, i32)> {
        use k8s_openapi::api::coordination::v1::Lease;
        let api: kube::Api<Lease> = kube::Api::namespaced(self.client().await, "default");
        let lease = api.get_opt("orca-operator").await.ok()??;
        let spec = lease.spec?;
        let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
        Some((holder, spec.lease_transitions.unwrap_or(0)))
    }

    /// Waits (at most `limit`) until `identity` holds the Lease; returns
    /// the epoch.
    pub async fn wait_leader(&self, identity: &str, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            let holder = self.lease_holder().await;
            if let Some((h, epoch)) = &holder
                && h == identity
                && self.operator_log(identity).contains("leading")
            {
                return *epoch;
            }
            assert!(
                Instant::now() < deadline,
                "{identity} does not lead: the Lease is held by {holder:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A failing test leaves its logs behind, named in its output.
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!(
                "orca-failed-{}-{}",
                std::process::id(),
                self.dir
                    .path()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            if std::fs::create_dir_all(&keep).is_ok() {
                for e in std::fs::read_dir(self.dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if e.path().extension().is_some_and(|x| x == "log") {
                        let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                    }
                }
                eprintln!("the sandbox's logs are kept in {}", keep.display());
            }
        }
        self.stop_operator();
        if let Some(mut c) = self.process.take() {
            terminate(&mut c, Duration::from_secs(20));
        }
    }
}
