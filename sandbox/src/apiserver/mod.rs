//! The sandbox's Kubernetes API server: the real REST protocol on plain
//! HTTP over loopback, in memory, with an optional JSON snapshot on disk.
//! kube-rs clients and the real `kubectl` use it as they use a real
//! cluster: discovery, CRUD with resourceVersion preconditions, status and
//! scale subresources, merge / JSON / strategic / server-side apply
//! patches, label and field selectors, paging, watches with bookmarks and
//! 410 Gone, finalizers, owner-reference garbage collection, namespace
//! lifecycle, CRDs with schema validation, defaulting and pruning,
//! Endpoints maintained from Services and ready pods, and Tables for
//! `kubectl get`. `docs/sandbox.md` lists what it implements and where it
//! differs from a real API server on purpose.
//!
//! Controllers (the StatefulSet controller, the pod runner) are meant to
//! run as ordinary kube-rs clients against [`RunningApiServer::url`];
//! [`ApiHandle`] gives tests a few in-process levers.

pub mod authz;
mod builtin;
mod controllers;
pub mod error;
mod http;
pub mod jsonpath;
mod managed;
mod networkpolicy;
mod ops;
mod patch;
mod podlog;
mod protobuf;
mod proxy;
pub mod requests;
pub mod schema;
pub mod selector;
mod store;
pub mod structural;
mod table;
mod time;
pub mod tls;
mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

pub use error::{ApiError, FieldError};
pub use http::GIT_VERSION;

use http::Shared;
use ops::{STORAGE_ENDPOINTS, STORAGE_NAMESPACES, STORAGE_SERVICES, State};

/// Errors starting or stopping the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("{0}")]
    Tls(tls::TlsError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the snapshot {path}: {source}")]
    ReadSnapshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the snapshot {path} is not valid JSON: {source}")]
    ParseSnapshot {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the snapshot {path}: {source}")]
    WriteSnapshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the server thread: {0}")]
    Thread(std::io::Error),
    #[error("building the server runtime: {0}")]
    Runtime(std::io::Error),
}

/// Tunables; the defaults suit tests and the sandbox.
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// Changes kept for watches to resume from; older resourceVersions
    /// get 410 Gone.
    pub history: usize,
    /// How often open watches that asked for them get a bookmark.
    pub bookmark_interval: Duration,
    /// How often the snapshot is rewritten when something changed.
    pub snapshot_interval: Duration,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            history: 10_000,
            bookmark_interval: Duration::from_secs(10),
            snapshot_interval: Duration::from_secs(1),
        }
    }
}

/// The API server.
pub struct ApiServer;

impl ApiServer {
    /// Starts a server on `addr` (port 0 picks a free port) in its own
    /// thread, loading `snapshot` when the file exists and saving to it
    /// while running and on shutdown.
    pub fn start(
        addr: SocketAddr,
        snapshot: Option<PathBuf>,
    ) -> Result<RunningApiServer, ApiServerError> {
        Self::start_with(addr, snapshot, ApiServerOptions::default())
    }

    pub fn start_with(
        addr: SocketAddr,
        snapshot: Option<PathBuf>,
        options: ApiServerOptions,
    ) -> Result<RunningApiServer, ApiServerError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let https_listener = std::net::TcpListener::bind(SocketAddr::new(local.ip(), 0))
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let https = https_listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        https_listener
            .set_nonblocking(true)
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let authority = tls::Authority::new(local.ip()).map_err(ApiServerError::Tls)?;
        let mut state = State::new(options.history);
        state.root_ca = Some(authority.ca_pem.clone());
        let loaded = match &snapshot {
            Some(path) if path.exists() => {
                let raw = std::fs::read(path).map_err(|source| ApiServerError::ReadSnapshot {
                    path: path.clone(),
                    source,
                })?;
                let v: Value = serde_json::from_slice(&raw).map_err(|source| {
                    ApiServerError::ParseSnapshot {
                        path: path.clone(),
                        source,
                    }
                })?;
                state.store.load(&v);
                state.register_stored_crds();
                true
            }
            _ => false,
        };
        bootstrap(&mut state, https, loaded);
        state.settle();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            address: local.to_string(),
            requests: Mutex::new(requests::Counter::new(time::now_string())),
            forbidden: Mutex::new(Default::default()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("orca-apiserver")
            .enable_all()
            .build()
            .map_err(ApiServerError::Runtime)?;
        let thread_shared = shared.clone();
        let tls_config = authority.config.clone();
        let thread_snapshot = snapshot.clone();
        let thread = std::thread::Builder::new()
            .name("orca-apiserver".into())
            .spawn(move || {
                runtime.block_on(serve(
                    listener,
                    https_listener,
                    tls_config,
                    thread_shared,
                    stop_rx,
                    thread_snapshot,
                    options,
                ));
            })
            .map_err(ApiServerError::Thread)?;
        Ok(RunningApiServer {
            addr: local,
            https,
            ca_pem: authority.ca_pem,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
            snapshot,
        })
    }
}

async fn serve(
    listener: std::net::TcpListener,
    https_listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Receiver<()>,
    snapshot: Option<PathBuf>,
    options: ApiServerOptions,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("sandbox API server cannot listen: {e}");
            return;
        }
    };
    let app = axum::Router::new()
        .fallback(http::handle)
        .with_state(shared.clone());
    // The HTTPS face: the same answers, for clients in pods.
    let (https_stop, mut https_stopped) = tokio::sync::watch::channel(false);
    let https_task = match tokio::net::TcpListener::from_std(https_listener)
        .and_then(|l| tls::TlsListener::new(l, tls_config))
    {
        Ok(l) => {
            let app = app.clone().layer(axum::Extension(http::Https));
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = https_stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stopped).await {
                    tracing::error!("sandbox API server (https) stopped: {e}");
                }
            }))
        }
        Err(e) => {
            tracing::error!("sandbox API server cannot listen for https: {e}");
            None
        }
    };
    let ticker_shared = shared.clone();
    let ticker = tokio::spawn(async move {
        let mut t = tokio::time::interval(options.bookmark_interval);
        loop {
            t.tick().await;
            ticker_shared.lock().store.progress();
        }
    });
    let saver = snapshot.clone().map(|path| {
        let s = shared.clone();
        tokio::spawn(async move {
            let mut saved = u64::MAX;
            let mut t = tokio::time::interval(options.snapshot_interval);
            loop {
                t.tick().await;
                let (generation, dump) = {
                    let state = s.lock();
                    if state.store.generation == saved {
                        continue;
                    }
                    (state.store.generation, state.store.dump())
                };
                match write_snapshot(&path, &dump) {
                    Ok(()) => saved = generation,
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        })
    });
    let stopping = shared.clone();
    let shutdown = async move {
        let _ = stop.await;
        let _ = https_stop.send(true);
        // ends every open watch so that the server can stop
        stopping.lock().store.shutdown();
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("sandbox API server stopped: {e}");
    }
    ticker.abort();
    if let Some(t) = https_task {
        t.abort();
    }
    if let Some(s) = saver {
        s.abort();
    }
}

fn write_snapshot(path: &Path, dump: &Value) -> Result<(), ApiServerError> {
    let err = |source| ApiServerError::WriteSnapshot {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(dump).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// What a fresh cluster has: the system namespaces, their default
/// ServiceAccounts, and the `kubernetes` Service pointing at this server.
fn bootstrap(state: &mut State, addr: SocketAddr, loaded: bool) {
    let now = time::now_string();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if state.store.get(STORAGE_NAMESPACES, "", ns).is_none() {
            state.create_internal(
                STORAGE_NAMESPACES,
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}}),
            );
        }
        state.ensure_default_service_account(ns);
    }
    if state
        .store
        .get(STORAGE_SERVICES, "default", "kubernetes")
        .is_none()
    {
        state.create_internal(
            STORAGE_SERVICES,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": addr.port()}]},
                "status": {"loadBalancer": {}}}),
        );
    }
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}, "creationTimestamp": now},
        "subsets": [{"addresses": [{"ip": addr.ip().to_string()}],
                     "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]}]});
    match state
        .store
        .get(STORAGE_ENDPOINTS, "default", "kubernetes")
        .cloned()
    {
        None => state.create_internal(STORAGE_ENDPOINTS, ep),
        Some(mut cur) if loaded => {
            cur["subsets"] = ep["subsets"].clone();
            state.update_internal(STORAGE_ENDPOINTS, cur);
        }
        Some(_) => {}
    }
}

/// A running server.
pub struct RunningApiServer {
    addr: SocketAddr,
    https: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    snapshot: Option<PathBuf>,
}

impl RunningApiServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS face's address (what pods reach as the `kubernetes`
    /// Service).
    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    /// `https://127.0.0.1:PORT`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.https)
    }

    /// The CA (PEM) that signed the HTTPS face's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// In-process levers for tests.
    pub fn handle(&self) -> ApiHandle {
        ApiHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops the server (open watches end) and writes the snapshot.
    pub fn shutdown(mut self) -> Result<(), ApiServerError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ApiServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(path) = self.snapshot.take() {
            let dump = self.shared.lock().store.dump();
            write_snapshot(&path, &dump)?;
        }
        Ok(())
    }
}

impl Drop for RunningApiServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!("{e}");
        }
    }
}

/// In-process access to a running server's state.
#[derive(Clone)]
pub struct ApiHandle {
    shared: Arc<Shared>,
}

impl ApiHandle {
    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.rv()
    }

    /// Forgets the change history, as an etcd compaction does: a watch
    /// from an older resourceVersion gets `410 Gone` (reason Expired).
    pub fn compact(&self) {
        self.shared.lock().store.compact();
    }

    /// Every stored object, as the snapshot holds them.
    pub fn dump(&self) -> Value {
        self.shared.lock().store.dump()
    }
}

/// Writes a kubeconfig for `url` (no TLS, a bearer token) that `kubectl`
/// and kube-rs accept; its context's namespace is `default`.
pub fn write_kubeconfig(path: &Path, url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: orca-sandbox
  cluster:
    server: {url}
contexts:
- name: orca-sandbox
  context:
    cluster: orca-sandbox
    namespace: default
    user: orca-sandbox
current-context: orca-sandbox
preferences: {{}}
users:
- name: orca-sandbox
  user:
    token: {token}
",
        token = authz::ADMIN_TOKEN
    );
    std::fs::write(path, text)
}
