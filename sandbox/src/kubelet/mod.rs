//! The sandbox's node: a kubelet (with the scheduler's and the volume
//! provisioner's small parts) that runs as an ordinary kube-rs client of
//! the API server.
//!
//! - registers the Node `sandbox-node` (Ready, heartbeats on its status and
//!   its Lease in `kube-node-lease`);
//! - schedules pending pods onto it through `pods/binding` once their
//!   claims are bound and the node is ready and schedulable;
//! - binds PersistentVolumeClaims at once (a directory per claim under the
//!   kubelet's root, `pvc-<uid>`, kept while the claim exists, removed with
//!   it; the `kubernetes.io/pvc-protection` finalizer holds a claim a pod
//!   still uses);
//! - runs each pod bound to it ([`worker`]): a loopback address
//!   (`127.20.x.y` by default), volumes, init containers first ([`init`]),
//!   a real `mariadbd` for each container of a MariaDB or MySQL image
//!   (emulating the official image), probes, restarts with back-off,
//!   graceful deletion, status;
//! - fault injection through annotations (`sandbox.orca.dev/fault`): on a
//!   pod `crash`, `hang`, `resume`; on the node `not-ready`, `ready`.
//!
//! Processes are signalled only by the pids it started, and every one of
//! them is stopped when the kubelet stops (or killed by the kernel if the
//! process running the kubelet dies).

pub mod env;
pub mod image;
mod init;
pub mod logs;
pub mod probe;
pub mod rootfs;
pub mod spawn;
pub mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease as NodeLease;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use spawn::Spawner;
use worker::Worker;

/// The annotation that injects faults, on a pod (`crash`, `hang`,
/// `resume`) or on the node (`not-ready`, `ready`).
pub const FAULT_ANNOTATION: &str = "sandbox.orca.dev/fault";
/// The sandbox's one node.
pub const NODE_NAME: &str = "sandbox-node";
const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// The ready addresses of an Endpoints object, in its order.
pub fn endpoint_ips(ep: &k8s_openapi::api::core::v1::Endpoints) -> Vec<String> {
    ep.subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| a.ip.clone())
        .collect()
}

/// Tunables of the kubelet.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// The Node's name.
    pub node_name: String,
    /// Where pod directories (`pods/<uid>`) and claim directories
    /// (`volumes/pvc-<uid>`) live.
    pub root: PathBuf,
    /// The second octet of pod addresses (`127.<net>.x.y`).
    pub ip_net: u8,
    /// The first restart of a crashed container waits this long (the real
    /// kubelet: no wait; a demo or a test may want the crash to last).
    pub first_restart_delay: Duration,
    /// The next restart waits this long, doubling up to
    /// `restart_backoff_max`.
    pub restart_backoff_initial: Duration,
    pub restart_backoff_max: Duration,
    /// How often the Node's status and Lease are renewed.
    pub heartbeat_interval: Duration,
    /// How long the kubelet's own shutdown waits after SIGTERM before it
    /// kills containers.
    pub shutdown_grace: Duration,
    /// How often ConfigMap, Secret and downward API volumes are refreshed.
    pub volume_refresh: Duration,
    /// Where pods reach the API server (`KUBERNETES_SERVICE_HOST` and
    /// `_PORT` in their environment, as the `kubernetes` Service gives
    /// them): its HTTPS address.
    pub api_service: Option<std::net::SocketAddr>,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            node_name: NODE_NAME.to_string(),
            root: crate::mysqld::local_root().join("kubelet"),
            ip_net: 20,
            first_restart_delay: Duration::ZERO,
            restart_backoff_initial: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            volume_refresh: Duration::from_secs(10),
            api_service: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("registering the node: {0}")]
    Register(#[source] kube::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the kubelet's tasks share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) opts: KubeletOptions,
    pub(crate) host_ip: String,
    pub(crate) spawner: Spawner,
    pub(crate) node_ready: watch::Sender<bool>,
    pub(crate) stop: watch::Sender<bool>,
    /// Pids of running containers, for the last-resort kill on drop.
    pub(crate) pids: Mutex<HashSet<u32>>,
    /// Events to record, in order, by one task.
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<(String, Event)>,
    /// Where the containers' logs are, for the log endpoint.
    pub(crate) logs: Arc<logs::LogRegistry>,
    /// The port of the log endpoint (the Node's kubelet endpoint).
    pub(crate) log_port: u16,
}

pub(crate) fn signal(pid: u32, sig: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), sig)
}

/// Now, as the API writes times (RFC 3339, whole seconds).
pub(crate) use orca::k8s::time::now_string;

/// Records a core Event (fire and forget).
pub(crate) fn record_event(
    k: &Shared,
    ns: &str,
    involved: Value,
    kind: &str,
    reason: &str,
    message: String,
) {
    let name = format!(
        "{}.{}",
        involved["name"].as_str().unwrap_or("object"),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let now = now_string();
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "kubelet", "host": k.opts.node_name},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": "kubelet",
        "reportingInstance": k.opts.node_name,
    });
    if let Ok(ev) = serde_json::from_value::<Event>(ev) {
        let _ = k.events.send((ns.to_string(), ev));
    }
}

/// Records queued events one after the other, so that they keep their
/// order.
async fn post_events(
    client: Client,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(String, Event)>,
) {
    while let Some((ns, ev)) = rx.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!("recording an event: {e}");
        }
    }
}

/// A running kubelet. [`Kubelet::shutdown`] stops every container
/// gracefully; dropping it kills them.
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    /// Serves the containers' logs while the kubelet runs.
    _log_server: logs::LogServer,
}

struct WorkerHandle {
    tx: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Registers the node and starts the kubelet on the current runtime.
    pub async fn start(client: Client, opts: KubeletOptions) -> Result<Kubelet, KubeletError> {
        std::fs::create_dir_all(opts.root.join("pods")).map_err(|source| KubeletError::Io {
            what: format!("creating {}", opts.root.display()),
            source,
        })?;
        std::fs::create_dir_all(opts.root.join("volumes")).map_err(|source| KubeletError::Io {
            what: format!("creating {}", opts.root.display()),
            source,
        })?;
        let spawner = Spawner::start().map_err(|source| KubeletError::Io {
            what: "starting the spawner thread".into(),
            source,
        })?;
        let (node_ready, _) = watch::channel(true);
        let (stop, _) = watch::channel(false);
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let host_ip = "127.0.0.1".to_string();
        let registry = Arc::new(logs::LogRegistry::default());
        let log_server = logs::LogServer::start(&host_ip, registry.clone())
            .await
            .map_err(|source| KubeletError::Io {
                what: "starting the log endpoint".into(),
                source,
            })?;
        let events_task = tokio::spawn(post_events(client.clone(), events_rx));
        let shared = Arc::new(Shared {
            client,
            opts,
            host_ip,
            spawner,
            node_ready,
            stop,
            pids: Mutex::new(HashSet::new()),
            events,
            logs: registry,
            log_port: log_server.port,
        });
        register_node(&shared)
            .await
            .map_err(KubeletError::Register)?;
        let workers: Arc<Mutex<HashMap<String, WorkerHandle>>> =
            Arc::new(Mutex::new(HashMap::new()));
        let tasks = vec![
            events_task,
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(watch_node(shared.clone())),
            tokio::spawn(dispatch(shared.clone(), workers.clone())),
            tokio::spawn(provision(shared.clone())),
        ];
        Ok(Kubelet {
            shared,
            tasks,
            workers,
            _log_server: log_server,
        })
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.opts.node_name
    }

    /// Pids of the container processes running now.
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// Stops every container (SIGTERM, then SIGKILL after the shutdown
    /// grace) and the kubelet's tasks. Pod objects stay as they are.
    pub async fn shutdown(mut self) {
        let _ = self.shared.stop.send(true);
        let handles: Vec<JoinHandle<()>> = {
            let mut w = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            w.drain().map(|(_, h)| h.task).collect()
        };
        for t in &self.tasks {
            t.abort();
        }
        for h in handles {
            let _ = h.await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.shared.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        let pids: Vec<u32> = self
            .shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for pid in pids {
            let _ = signal(pid, Signal::SIGKILL);
        }
        let mut w = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (_, h) in w.drain() {
            h.task.abort();
        }
    }
}

fn node_conditions(ready: bool, now: &str, since: &str) -> Value {
    let pressure = |t: &str, reason: &str, msg: &str| {
        json!({"type": t, "status": "False", "lastHeartbeatTime": now,
               "lastTransitionTime": since, "reason": reason, "message": msg})
    };
    json!([
        pressure(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        pressure(
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        pressure(
            "PIDPressure",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            json!({"type": "Ready", "status": "True", "lastHeartbeatTime": now,
                   "lastTransitionTime": since, "reason": "KubeletReady",
                   "message": "kubelet is posting ready status"})
        } else {
            json!({"type": "Ready", "status": "False", "lastHeartbeatTime": now,
                   "lastTransitionTime": since, "reason": "KubeletNotReady",
                   "message": "sandbox fault: the node was made not ready"})
        }
    ])
}

async fn register_node(k: &Shared) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(k.client.clone());
    let name = &k.opts.node_name;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "beta.kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
    });
    match nodes.get_opt(name).await? {
        Some(_) => {}
        None => {
            let n: Node = serde_json::from_value(node).map_err(kube::Error::SerdeError)?;
            match nodes.create(&PostParams::default(), &n).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    // a restarted kubelet's node is ready again: its not-ready taint goes
    let now = now_string();
    if let Some(n) = nodes.get_opt(name).await? {
        let taints: Vec<Value> = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.key != NOT_READY_TAINT)
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        let taints = if taints.is_empty() {
            Value::Null
        } else {
            json!(taints)
        };
        nodes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": taints}})),
            )
            .await?;
    }
    let status = json!({"status": {
        "conditions": node_conditions(true, &now, &now),
        "addresses": [
            {"type": "InternalIP", "address": k.host_ip},
            {"type": "Hostname", "address": name},
        ],
        "capacity": {"cpu": cpus.to_string(), "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": cpus.to_string(), "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": k.log_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": kernel_version(),
            "osImage": "orca sandbox",
            "containerRuntimeVersion": "orca-sandbox://0.1.0",
            "kubeletVersion": crate::apiserver::GIT_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Renews the Node's conditions and its Lease.
async fn heartbeat(k: Arc<Shared>) {
    let nodes: Api<Node> = Api::all(k.client.clone());
    let leases: Api<NodeLease> = Api::namespaced(k.client.clone(), "kube-node-lease");
    let name = k.opts.node_name.clone();
    let mut ready_rx = k.node_ready.subscribe();
    let mut since = now_string();
    let mut last_ready = *ready_rx.borrow();
    loop {
        let ready = *ready_rx.borrow_and_update();
        let now = now_string();
        if ready != last_ready {
            since = now.clone();
            last_ready = ready;
        }
        let status = json!({"status": {"conditions": node_conditions(ready, &now, &since)}});
        if let Err(e) = nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            tracing::debug!("node heartbeat: {e}");
        }
        let micro = orca::k8s::time::now_micros();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro},
        });
        let pp = PatchParams::apply("kubelet").force();
        if let Err(e) = leases.patch(&name, &pp, &Patch::Apply(lease)).await {
            tracing::debug!("node lease: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(k.opts.heartbeat_interval) => {}
            _ = ready_rx.changed() => {}
        }
    }
}

/// Watches the Node for fault annotations (and cordoning).
async fn watch_node(k: Arc<Shared>) {
    let nodes: Api<Node> = Api::all(k.client.clone());
    let name = k.opts.node_name.clone();
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(nodes.clone(), cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(ev) = stream.next().await {
        let Ok(node) = ev else {
            continue;
        };
        let Some(fault) = node.annotations().get(FAULT_ANNOTATION).cloned() else {
            continue;
        };
        let ready = match fault.as_str() {
            "not-ready" => Some(false),
            "ready" => Some(true),
            _ => None,
        };
        let message = match ready {
            Some(r) => {
                let _ = k.node_ready.send(r);
                // the node's other taints stay
                let mut taints: Vec<Value> = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|t| t.key != NOT_READY_TAINT)
                    .filter_map(|t| serde_json::to_value(t).ok())
                    .collect();
                if !r {
                    taints.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule",
                                       "timeAdded": now_string()}));
                }
                let taints = if taints.is_empty() {
                    Value::Null
                } else {
                    json!(taints)
                };
                let _ = nodes
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"taints": taints}})),
                    )
                    .await;
                format!(
                    "Sandbox fault {fault:?}: node {name} is now {}",
                    if r { "Ready" } else { "NotReady" }
                )
            }
            None => format!("Sandbox fault {fault:?} is unknown (use not-ready or ready)"),
        };
        tracing::info!("{message}");
        let involved = json!({"apiVersion": "v1", "kind": "Node", "name": name, "uid": name});
        record_event(&k, "default", involved, "Warning", "SandboxFault", message);
        let patch = json!({"metadata": {"annotations": {FAULT_ANNOTATION: null}}});
        if let Err(e) = nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::warn!("removing the node's fault annotation: {e}");
        }
    }
}

/// Watches pods: schedules pending ones, feeds the workers of the node's.
async fn dispatch(k: Arc<Shared>, workers: Arc<Mutex<HashMap<String, WorkerHandle>>>) {
    let pods: Api<Pod> = Api::all(k.client.clone());
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut pending: HashMap<String, Arc<Pod>> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ready_rx = k.node_ready.subscribe();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(ev)) => Some(ev),
                Some(Err(e)) => {
                    tracing::debug!("pod watch: {e}");
                    continue;
                }
                None => return,
            },
            _ = tick.tick() => None,
            _ = ready_rx.changed() => None,
        };
        // forget finished workers
        {
            let mut w = workers.lock().unwrap_or_else(|e| e.into_inner());
            let done: Vec<String> = w
                .iter()
                .filter(|(_, h)| h.task.is_finished())
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in done {
                w.remove(&uid);
                finished.insert(uid);
            }
        }
        match ev {
            Some(watcher::Event::Init) => seen.clear(),
            Some(watcher::Event::InitApply(p)) => {
                seen.insert(p.uid().unwrap_or_default());
                handle_pod(&k, &workers, &mut pending, &finished, p);
            }
            Some(watcher::Event::InitDone) => {
                let w = workers.lock().unwrap_or_else(|e| e.into_inner());
                for (uid, h) in w.iter() {
                    if !seen.contains(uid) {
                        let _ = h.tx.send(None);
                    }
                }
                pending.retain(|uid, _| seen.contains(uid));
            }
            Some(watcher::Event::Apply(p)) => {
                handle_pod(&k, &workers, &mut pending, &finished, p);
            }
            Some(watcher::Event::Delete(p)) => {
                let uid = p.uid().unwrap_or_default();
                pending.remove(&uid);
                let w = workers.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(h) = w.get(&uid) {
                    let _ = h.tx.send(None);
                }
            }
            None => {
                let ready = *ready_rx.borrow_and_update();
                if ready {
                    let todo: Vec<Arc<Pod>> = pending.values().cloned().collect();
                    for p in todo {
                        if schedule(&k, &p).await {
                            pending.remove(&p.uid().unwrap_or_default());
                        }
                    }
                }
            }
        }
    }
}

fn handle_pod(
    k: &Arc<Shared>,
    workers: &Arc<Mutex<HashMap<String, WorkerHandle>>>,
    pending: &mut HashMap<String, Arc<Pod>>,
    finished: &HashSet<String>,
    pod: Pod,
) {
    let uid = pod.uid().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let pod = Arc::new(pod);
    if node.is_empty() {
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        if scheduler == "default-scheduler" && pod.metadata.deletion_timestamp.is_none() {
            pending.insert(uid, pod);
        } else {
            pending.remove(&uid);
        }
        return;
    }
    pending.remove(&uid);
    if node != k.opts.node_name || finished.contains(&uid) {
        return;
    }
    let mut w = workers.lock().unwrap_or_else(|e| e.into_inner());
    match w.get(&uid) {
        Some(h) => {
            let _ = h.tx.send(Some(pod));
        }
        None => {
            if *k.stop.borrow() {
                return;
            }
            let (tx, rx) = watch::channel(Some(pod.clone()));
            let worker = Worker::new(k.clone(), pod, rx);
            let task = tokio::spawn(worker.run());
            w.insert(uid, WorkerHandle { tx, task });
        }
    }
}

/// Binds a pending pod to the node when it can run there; marks it
/// unschedulable otherwise. Returns whether it was bound.
async fn schedule(k: &Arc<Shared>, pod: &Pod) -> bool {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
    let nodes: Api<Node> = Api::all(k.client.clone());
    let unschedulable = match nodes.get_opt(&k.opts.node_name).await {
        Ok(Some(n)) => n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        _ => true,
    };
    let mut reason: Option<String> = None;
    if unschedulable {
        reason = Some("0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.".into());
    }
    if reason.is_none() {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(k.client.clone(), &ns);
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            let Some(c) = &v.persistent_volume_claim else {
                continue;
            };
            let bound = match claims.get_opt(&c.claim_name).await {
                Ok(Some(pvc)) => {
                    pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                        && pvc.metadata.deletion_timestamp.is_none()
                }
                _ => false,
            };
            if !bound {
                reason = Some(format!(
                    "0/1 nodes are available: persistentvolumeclaim \"{}\" not found or not bound. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
                    c.claim_name
                ));
                break;
            }
        }
    }
    if let Some(message) = reason {
        let already = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message.as_str()));
        if !already {
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": null, "lastTransitionTime": now_string(),
            }]}});
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
            let involved = json!({"apiVersion": "v1", "kind": "Pod", "name": name,
                                  "namespace": ns, "uid": pod.uid()});
            record_scheduler_event(k, &ns, involved, "Warning", "FailedScheduling", message);
        }
        return false;
    }
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": k.opts.node_name},
    });
    match pods
        .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => {
            let involved = json!({"apiVersion": "v1", "kind": "Pod", "name": name,
                                  "namespace": ns, "uid": pod.uid()});
            record_scheduler_event(
                k,
                &ns,
                involved,
                "Normal",
                "Scheduled",
                format!("Successfully assigned {ns}/{name} to {}", k.opts.node_name),
            );
            true
        }
        // already bound, or gone
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => true,
        Err(e) => {
            tracing::debug!("binding {ns}/{name}: {e}");
            false
        }
    }
}

fn record_scheduler_event(
    k: &Shared,
    ns: &str,
    involved: Value,
    kind: &str,
    reason: &str,
    message: String,
) {
    let name = format!(
        "{}.{}",
        involved["name"].as_str().unwrap_or("object"),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let now = now_string();
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "default-scheduler"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": "default-scheduler",
    });
    if let Ok(ev) = serde_json::from_value::<Event>(ev) {
        let _ = k.events.send((ns.to_string(), ev));
    }
}

/// Binds claims, releases deleted ones nothing uses, and removes the
/// directories of claims that are gone.
async fn provision(k: Arc<Shared>) {
    let api: Api<PersistentVolumeClaim> = Api::all(k.client.clone());
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = stream.next() => if ev.is_none() { return },
            _ = tick.tick() => {}
        }
        if let Err(e) = provision_pass(&k).await {
            tracing::debug!("claims: {e}");
        }
    }
}

async fn provision_pass(k: &Shared) -> Result<(), kube::Error> {
    let all: Api<PersistentVolumeClaim> = Api::all(k.client.clone());
    let claims = all.list(&ListParams::default()).await?.items;
    let pods: Api<Pod> = Api::all(k.client.clone());
    let pods = pods.list(&ListParams::default()).await?.items;
    let in_use: HashSet<(String, String)> = pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .flat_map(|p| {
            let ns = p.namespace().unwrap_or_default();
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |v| {
                    v.persistent_volume_claim
                        .map(|c| (ns.clone(), c.claim_name))
                })
        })
        .collect();
    let mut uids: HashSet<String> = HashSet::new();
    for c in &claims {
        let ns = c.namespace().unwrap_or_default();
        let name = c.name_any();
        let uid = c.uid().unwrap_or_default();
        uids.insert(uid.clone());
        let api: Api<PersistentVolumeClaim> = Api::namespaced(k.client.clone(), &ns);
        let mut finalizers = c.finalizers().to_vec();
        if c.metadata.deletion_timestamp.is_some() {
            if finalizers.iter().any(|f| f == PVC_FINALIZER)
                && !in_use.contains(&(ns.clone(), name.clone()))
            {
                finalizers.retain(|f| f != PVC_FINALIZER);
                let patch = json!({"metadata": {"finalizers": finalizers,
                                   "resourceVersion": c.resource_version()}});
                let _ = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
            continue;
        }
        let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Bound") {
            continue;
        }
        let dir = volumes::claim_dir(&k.opts.root, &uid);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!("claim {ns}/{name}: {e}");
            continue;
        }
        if !finalizers.iter().any(|f| f == PVC_FINALIZER) {
            finalizers.push(PVC_FINALIZER.to_string());
        }
        let volume = format!("pvc-{uid}");
        let patch = json!({
            "metadata": {
                "finalizers": finalizers,
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.kubernetes.io/storage-provisioner": "sandbox.orca.dev/local",
                    "volume.kubernetes.io/selected-node": k.opts.node_name,
                },
            },
            "spec": {"volumeName": volume},
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        let spec = c.spec.clone().unwrap_or_default();
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "1Gi".into());
        let status = json!({"status": {
            "phase": "Bound",
            "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "capacity": {"storage": storage},
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
        tracing::info!("claim {ns}/{name} bound to {}", dir.display());
    }
    // directories of claims that no longer exist
    if let Ok(entries) = std::fs::read_dir(k.opts.root.join("volumes")) {
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(uid) = file.to_str().and_then(|n| n.strip_prefix("pvc-")) else {
                continue;
            };
            if !uids.contains(uid) {
                tracing::info!("removing the volume of deleted claim {uid}");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}
