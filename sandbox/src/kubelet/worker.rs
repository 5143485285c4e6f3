//! One pod on the sandbox node: its address, directory, volumes and
//! containers, probes, restarts, faults, status and graceful deletion. A
//! worker is a task fed the latest version of its pod.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, Pod, Probe,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use orca::k8s::time;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::env::{Lookup, PodFacts, container_env, expand_all};
use super::image::{self, Layout};
use super::init;
use super::probe::{self, Outcome, Target};
use super::rootfs;
use super::spawn::Spec;
use super::volumes::{self, Mounts};
use super::{FAULT_ANNOTATION, Shared, now_string};
use crate::loopback::{self, Lease};
use crate::mysqld;

#[derive(Debug, Clone)]
struct Term {
    exit_code: i32,
    signal: Option<i32>,
    reason: String,
    message: Option<String>,
    started: String,
    finished: String,
    id: String,
}

impl Term {
    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started,
            "finishedAt": self.finished,
        });
        if !self.id.is_empty() {
            t["containerID"] = json!(self.id);
        }
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if let Some(m) = &self.message {
            t["message"] = json!(m);
        }
        json!({ "terminated": t })
    }
}

#[derive(Debug, Clone)]
enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        since: String,
    },
    Terminated(Term),
}

#[derive(Debug, Clone)]
struct ProbeState {
    spec: Option<Probe>,
    next: Instant,
    successes: i32,
    failures: i32,
}

impl ProbeState {
    fn new(spec: Option<Probe>) -> ProbeState {
        ProbeState {
            spec,
            next: Instant::now(),
            successes: 0,
            failures: 0,
        }
    }

    fn reset(&mut self, now: Instant) {
        let delay = self
            .spec
            .as_ref()
            .and_then(|p| p.initial_delay_seconds)
            .unwrap_or(0)
            .max(0) as u64;
        self.next = now + Duration::from_secs(delay);
        self.successes = 0;
        self.failures = 0;
    }

    fn period(&self) -> Duration {
        let s = self
            .spec
            .as_ref()
            .and_then(|p| p.period_seconds)
            .unwrap_or(10)
            .max(1);
        Duration::from_secs(s as u64)
    }

    fn failure_threshold(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|p| p.failure_threshold)
            .unwrap_or(3)
            .max(1)
    }

    fn success_threshold(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|p| p.success_threshold)
            .unwrap_or(1)
            .max(1)
    }
}

struct Ctr {
    spec: Container,
    /// One of `spec.initContainers` (see [`init`]).
    init: bool,
    db: bool,
    /// Of the orca image: runs the orca binary in a root of its own.
    orca: bool,
    /// The log of the instance before was moved aside for the next one.
    rotated: bool,
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    id: String,
    state: State,
    last: Option<Term>,
    restarts: i32,
    ever_started: bool,
    ready: bool,
    started: bool,
    readiness: ProbeState,
    liveness: ProbeState,
    startup: ProbeState,
    next_start: Instant,
    backoff: Option<Duration>,
    running_since: Option<Instant>,
    kill_at: Option<Instant>,
    done: bool,
    hung: bool,
    init_pending: Option<PathBuf>,
    env: Vec<(String, String)>,
    /// A placeholder (not a database image) that counts as running.
    placeholder_running: bool,
}

impl Ctr {
    /// A container not started yet: waiting with `reason`, counting on
    /// from `previous` (its restart count, when the pod's status says it
    /// has started before: the kubelet restarted).
    fn new(spec: Container, init: bool, reason: &str, previous: Option<i32>) -> Ctr {
        // probes are not run on init containers
        let probe = |p: &Option<Probe>| if init { None } else { p.clone() };
        Ctr {
            init,
            db: spec.image.as_deref().is_some_and(image::is_database_image),
            orca: spec.image.as_deref().is_some_and(rootfs::is_orca_image),
            readiness: ProbeState::new(probe(&spec.readiness_probe)),
            liveness: ProbeState::new(probe(&spec.liveness_probe)),
            startup: ProbeState::new(probe(&spec.startup_probe)),
            spec,
            child: None,
            pid: None,
            id: String::new(),
            state: State::Waiting {
                reason: reason.into(),
                message: None,
            },
            last: None,
            restarts: previous.unwrap_or(0),
            ever_started: previous.is_some(),
            ready: false,
            started: false,
            next_start: Instant::now(),
            backoff: None,
            running_since: None,
            kill_at: None,
            done: false,
            hung: false,
            init_pending: None,
            env: Vec::new(),
            placeholder_running: false,
            rotated: false,
        }
    }

    fn running(&self) -> bool {
        self.child.is_some() || self.placeholder_running
    }

    /// The container's place in the pod's spec, as Events name it.
    fn field(&self) -> String {
        let list = if self.init {
            "initContainers"
        } else {
            "containers"
        };
        format!("spec.{list}{{{}}}", self.spec.name)
    }

    /// Where an init container stands.
    fn standing(&self) -> init::Standing {
        match &self.state {
            State::Terminated(t) if self.done && t.exit_code == 0 => init::Standing::Completed,
            State::Terminated(_) if self.done => init::Standing::Failed,
            _ => init::Standing::Pending,
        }
    }
}

impl Term {
    /// A terminated state a status recorded.
    fn of(t: &ContainerStateTerminated) -> Term {
        let at = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.map(|t| time::rfc3339(t.0)).unwrap_or_else(now_string)
        };
        Term {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone(),
            started: at(t.started_at.as_ref()),
            finished: at(t.finished_at.as_ref()),
            id: t.container_id.clone().unwrap_or_default(),
        }
    }
}

/// Go's formatting of whole and sub-second durations (`10s`, `1m20s`,
/// `200ms`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        if ms.is_multiple_of(1000) {
            format!("{s}s")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        }
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

fn container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(crate) struct Worker {
    k: Arc<Shared>,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    stop: watch::Receiver<bool>,
    node_ready: watch::Receiver<bool>,
    pod: Arc<Pod>,
    uid: String,
    ns: String,
    name: String,
    dir: PathBuf,
    lease: Option<Lease>,
    ip: String,
    start_time: String,
    /// The init containers first, in their order, then the app containers.
    containers: Vec<Ctr>,
    volumes: Option<HashMap<String, PathBuf>>,
    mount_error: Option<String>,
    next_volume_refresh: Instant,
    /// The ServiceAccount tokens of projected volumes.
    tokens: volumes::Tokens,
    last_status: Option<Value>,
    transitions: HashMap<String, (String, String)>,
    terminating: bool,
    handled_fault: Option<String>,
}

async fn wait_any(cs: &mut [Ctr]) -> (usize, std::io::Result<ExitStatus>) {
    let futs: Vec<_> = cs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| {
            c.child
                .as_mut()
                .map(|ch| Box::pin(async move { (i, ch.wait().await) }))
        })
        .collect();
    if futs.is_empty() {
        std::future::pending().await
    } else {
        futures::future::select_all(futs).await.0
    }
}

impl Worker {
    pub(crate) fn new(
        k: Arc<Shared>,
        pod: Arc<Pod>,
        rx: watch::Receiver<Option<Arc<Pod>>>,
    ) -> Worker {
        let uid = pod.uid().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        let inits = spec.init_containers.unwrap_or_default();
        let reason = init::waiting_reason(!inits.is_empty());
        // what the pod's status says of containers that started before
        // (the kubelet restarted): they count on
        let before = |list: &Option<Vec<ContainerStatus>>| -> HashMap<String, ContainerStatus> {
            list.iter()
                .flatten()
                .filter(|s| s.container_id.is_some())
                .map(|s| (s.name.clone(), s.clone()))
                .collect()
        };
        let (init_before, app_before) = (
            before(&status.init_container_statuses),
            before(&status.container_statuses),
        );
        let dir = k.opts.root.join("pods").join(&uid);
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let mut containers = Vec::new();
        for c in inits {
            let previous = init_before.get(&c.name);
            let mut ctr = Ctr::new(c, true, reason, previous.map(|s| s.restart_count));
            // one that completed (or failed for good) does not run again
            if let Some(s) = previous
                && init::standing_before(s, policy) != init::Standing::Pending
                && let Some(t) = s.state.as_ref().and_then(|s| s.terminated.as_ref())
            {
                ctr.state = State::Terminated(Term::of(t));
                ctr.last = s
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(Term::of);
                ctr.id = s.container_id.clone().unwrap_or_default();
                ctr.done = true;
                // its log stays readable
                k.logs.started(&ns, &name, &dir, &ctr.spec.name);
                k.logs.ended(&ns, &name, &ctr.spec.name);
            }
            containers.push(ctr);
        }
        for c in spec.containers {
            let previous = app_before.get(&c.name).map(|s| s.restart_count);
            containers.push(Ctr::new(c, false, reason, previous));
        }
        let mut transitions = HashMap::new();
        for c in status.conditions.iter().flatten() {
            if let Some(t) = &c.last_transition_time {
                transitions.insert(c.type_.clone(), (c.status.clone(), time::rfc3339(t.0)));
            }
        }
        Worker {
            stop: k.stop.subscribe(),
            node_ready: k.node_ready.subscribe(),
            dir,
            ns,
            name,
            start_time: status
                .start_time
                .map(|t| time::rfc3339(t.0))
                .unwrap_or_else(now_string),
            uid,
            k,
            rx,
            pod,
            lease: None,
            ip: String::new(),
            containers,
            volumes: None,
            mount_error: None,
            next_volume_refresh: Instant::now(),
            tokens: volumes::Tokens::new(),
            last_status: None,
            transitions,
            terminating: false,
            handled_fault: None,
        }
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn grace_period(&self) -> Duration {
        let s = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(s as u64)
    }

    fn event(&self, kind: &str, reason: &str, message: String, field: Option<&str>) {
        let mut involved = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.name,
            "namespace": self.ns,
            "uid": self.uid,
        });
        if let Some(f) = field {
            involved["fieldPath"] = json!(f);
        }
        super::record_event(&self.k, &self.ns, involved, kind, reason, message);
    }

    fn take_address(&mut self) -> std::io::Result<()> {
        let net = self.k.opts.ip_net;
        // a pod that had an address (the kubelet restarted) tries it first
        let start = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            .filter(|ip| ip.octets()[1] == net)
            .map(|ip| {
                let o = ip.octets();
                (u16::from(o[2]) * 254 + u16::from(o[3]).saturating_sub(1)) % (256 * 254 - 1)
            })
            .unwrap_or_else(|| {
                let h = self
                    .uid
                    .bytes()
                    .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
                (h % (256 * 254)) as u16
            });
        let lease = loopback::take(&mysqld::local_root(), net, start)?;
        self.ip = lease.ip.to_string();
        self.lease = Some(lease);
        Ok(())
    }

    pub(crate) async fn run(mut self) {
        if self.pod.metadata.deletion_timestamp.is_none() {
            if let Err(e) = self.take_address() {
                tracing::error!("pod {}/{}: no address: {e}", self.ns, self.name);
            }
            if let Err(e) = std::fs::create_dir_all(&self.dir) {
                tracing::error!("pod {}/{}: {e}", self.ns, self.name);
            }
        }
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate().await;
                return;
            }
            self.handle_fault().await;
            self.sync().await;
            let wake = self.next_wake();
            tokio::select! {
                r = self.rx.changed() => {
                    if r.is_err() {
                        self.shutdown().await;
                        return;
                    }
                    let latest = self.rx.borrow_and_update().clone();
                    match latest {
                        None => {
                            self.gone().await;
                            return;
                        }
                        Some(p) => self.pod = p,
                    }
                }
                (i, st) = wait_any(&mut self.containers) => self.on_exit(i, st),
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.node_ready.changed() => {}
                _ = self.stop.changed() => {
                    self.shutdown().await;
                    return;
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        if self.volumes.is_none() {
            return now + Duration::from_millis(500);
        }
        for c in &self.containers {
            if !c.running() && !c.done && c.next_start > now {
                wake = wake.min(c.next_start);
            }
            if let Some(k) = c.kill_at {
                wake = wake.min(k);
            }
            if c.child.is_some() {
                for p in [&c.readiness, &c.liveness, &c.startup] {
                    if p.spec.is_some() {
                        wake = wake.min(p.next);
                    }
                }
            }
        }
        wake.max(now + Duration::from_millis(20))
    }

    /// Rewrites the hosts file of each orca-image container: the pod's own
    /// names and every Service with a ready endpoint (see
    /// [`rootfs::hosts_file`]).
    async fn refresh_hosts(&self) {
        use k8s_openapi::api::core::v1::Endpoints;
        if !self.containers.iter().any(|c| c.orca) {
            return;
        }
        let api: Api<Endpoints> = Api::all(self.k.client.clone());
        let listed = tokio::time::timeout(
            Duration::from_secs(5),
            api.list(&kube::api::ListParams::default()),
        )
        .await;
        let Ok(Ok(list)) = listed else {
            return;
        };
        let mut services = Vec::new();
        for ep in &list.items {
            let mut ips = super::endpoint_ips(ep);
            ips.sort();
            if let Some(ip) = ips.into_iter().next() {
                let ns = ep.namespace().unwrap_or_default();
                services.push(rootfs::ServiceHost {
                    names: rootfs::service_names(&ep.name_any(), &ns, &self.ns),
                    ip,
                });
            }
        }
        let content = rootfs::hosts_file(&self.ip, &self.name, &services);
        for c in self.containers.iter().filter(|c| c.orca) {
            let dir = self.dir.join("rootfs").join(&c.spec.name);
            if dir.join("etc").is_dir()
                && let Err(e) = rootfs::write_hosts(&dir, &content)
            {
                tracing::warn!(pod = %self.name, error = %e, "writing the container's hosts file");
            }
        }
    }

    async fn refresh_volumes(&mut self) {
        let mut lookup = Lookup::new(self.k.client.clone(), &self.ns);
        let facts = PodFacts {
            pod: &self.pod,
            node: &self.k.opts.node_name,
            pod_ip: &self.ip,
            host_ip: &self.k.host_ip,
        };
        match volumes::prepare(
            &mut lookup,
            &facts,
            &self.dir,
            &self.k.opts.root,
            &mut self.tokens,
        )
        .await
        {
            Ok(v) => {
                self.volumes = Some(v);
                self.mount_error = None;
                self.next_volume_refresh = Instant::now() + self.k.opts.volume_refresh;
            }
            Err(e) => {
                if self.mount_error.as_ref() != Some(&e.0) {
                    self.event("Warning", "FailedMount", e.0.clone(), None);
                }
                self.mount_error = Some(e.0);
                self.next_volume_refresh = Instant::now() + Duration::from_secs(1);
            }
        }
    }

    async fn sync(&mut self) {
        if self.lease.is_none() {
            return;
        }
        let now = Instant::now();
        if self.volumes.is_none() || now >= self.next_volume_refresh {
            self.refresh_volumes().await;
            self.refresh_hosts().await;
        }
        if self.volumes.is_some() {
            // an init container that completes at once lets the next start
            loop {
                let stage = self.init_stage();
                for i in self.due() {
                    self.start_container(i).await;
                }
                if self.init_stage() == stage {
                    break;
                }
            }
        }
        let now = Instant::now();
        for c in &mut self.containers {
            if let Some(at) = c.kill_at
                && now >= at
                && let Some(child) = c.child.as_mut()
            {
                let _ = child.start_kill();
                c.kill_at = None;
            }
        }
        self.run_probes().await;
        self.write_status().await;
    }

    /// Where the pod's init containers stand.
    fn init_stage(&self) -> init::Stage {
        init::stage(self.containers.iter().filter(|c| c.init).map(Ctr::standing))
    }

    /// The containers to start now: the next init container until every
    /// one has completed, then the app containers.
    fn due(&self) -> Vec<usize> {
        let now = Instant::now();
        let startable = |c: &Ctr| !c.running() && !c.done && now >= c.next_start;
        match self.init_stage() {
            // the init containers come first: `i` is its place in both
            init::Stage::Running(i) => [i]
                .into_iter()
                .filter(|&i| startable(&self.containers[i]))
                .collect(),
            init::Stage::Failed => Vec::new(),
            init::Stage::Done => (0..self.containers.len())
                .filter(|&i| !self.containers[i].init && startable(&self.containers[i]))
                .collect(),
        }
    }

    fn container_log(&self, c: &Container) -> PathBuf {
        super::logs::current_log(&self.dir, &c.name)
    }

    fn append_log(&self, c: &Container, lines: &[String]) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.container_log(c))
        {
            for l in lines {
                let _ = writeln!(f, "{l}");
            }
        }
    }

    fn layout(&self, c: &Container, datadir: PathBuf) -> Layout {
        let mut socket = self.dir.join(format!("{}.sock", c.name));
        if socket.as_os_str().len() > 100 {
            socket = std::env::temp_dir().join(format!(
                "orca-{}-{}.sock",
                &self.uid[..self.uid.len().min(13)],
                c.name
            ));
        }
        Layout {
            datadir,
            socket,
            pid_file: self.dir.join(format!("{}.pid", c.name)),
            error_log: self.dir.join(format!("{}-error.log", c.name)),
            defaults_file: self.dir.join(format!("{}.cnf", c.name)),
        }
    }

    /// Records a container that could not start, or exited at once, as the
    /// runtime would (then restart policy and back-off apply).
    fn fail_start(&mut self, i: usize, code: i32, reason: &str, message: Option<String>) {
        let now = now_string();
        let id = container_id();
        let c = &mut self.containers[i];
        c.id = id.clone();
        if c.ever_started {
            c.restarts += 1;
        }
        c.ever_started = true;
        let term = Term {
            exit_code: code,
            signal: None,
            reason: reason.to_string(),
            message,
            started: now.clone(),
            finished: now,
            id,
        };
        c.running_since = Some(Instant::now());
        self.record_exit(i, term);
    }

    async fn start_container(&mut self, i: usize) {
        let spec = self.containers[i].spec.clone();
        if self.containers[i].ever_started && !self.containers[i].rotated {
            // the instance before keeps its output as the previous log
            super::logs::rotate(&self.dir, &spec.name);
            self.containers[i].rotated = true;
        }
        let mut lookup = Lookup::new(self.k.client.clone(), &self.ns);
        let facts = PodFacts {
            pod: &self.pod,
            node: &self.k.opts.node_name,
            pod_ip: &self.ip,
            host_ip: &self.k.host_ip,
        };
        let env = match container_env(&mut lookup, &facts, &spec).await {
            Ok(e) => e,
            Err(e) => {
                let c = &mut self.containers[i];
                let changed = !matches!(&c.state, State::Waiting { reason, message }
                    if reason == "CreateContainerConfigError" && message.as_deref() == Some(e.0.as_str()));
                c.state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.0.clone()),
                };
                c.next_start = Instant::now() + Duration::from_secs(1);
                if changed {
                    let field = c.field();
                    self.event("Warning", "Failed", format!("Error: {}", e.0), Some(&field));
                }
                return;
            }
        };
        let image_name = spec.image.clone().unwrap_or_default();
        let field = self.containers[i].field();
        if !self.containers[i].ever_started {
            self.event(
                "Normal",
                "Pulled",
                format!("Container image \"{image_name}\" already present on machine"),
                Some(&field),
            );
        }
        if self.containers[i].orca {
            self.start_orca(i, env).await;
            return;
        }
        if self.containers[i].init {
            // an init container of another image has nothing to run
            self.complete_at_once(i, env);
            return;
        }
        if !self.containers[i].db {
            let c = &mut self.containers[i];
            if c.ever_started {
                c.restarts += 1;
            }
            c.ever_started = true;
            c.id = container_id();
            c.placeholder_running = true;
            c.rotated = false;
            self.k
                .logs
                .started(&self.ns, &self.name, &self.dir, &spec.name);
            c.state = State::Running {
                since: now_string(),
            };
            c.running_since = Some(Instant::now());
            c.started = true;
            c.ready = true;
            c.env = env;
            self.event(
                "Normal",
                "Started",
                format!("Started container {}", spec.name),
                Some(&field),
            );
            return;
        }
        let vols = self.volumes.clone().unwrap_or_default();
        let mut mounts = Mounts::of(&spec, &vols);
        if mounts.host_path(image::DATADIR).is_none() {
            // the image declares /var/lib/mysql a volume: it lives with the pod
            let anon = self.dir.join("image-volumes").join("var-lib-mysql");
            mounts.add(image::DATADIR, anon);
        }
        let Some(datadir) = mounts.host_path(image::DATADIR) else {
            return;
        };
        if let Err(e) = std::fs::create_dir_all(&datadir) {
            self.fail_start(
                i,
                128,
                "StartError",
                Some(format!("creating the datadir: {e}")),
            );
            return;
        }
        let command = expand_all(spec.command.as_deref().unwrap_or_default(), &env);
        let args = expand_all(spec.args.as_deref().unwrap_or_default(), &env);
        let user_args = match image::mariadbd_args(&command, &args) {
            Ok(a) => image::translate_args(&a, &mounts),
            Err(m) => {
                self.fail_start(i, 128, "StartError", Some(m));
                return;
            }
        };
        let init_file = datadir.join(image::INIT_FILE);
        if image::needs_init(&datadir) {
            match image::init_plan(&env, &mounts) {
                Err(msg) => {
                    self.append_log(&spec, &[msg]);
                    self.fail_start(i, 1, "Error", None);
                    return;
                }
                Ok(plan) => {
                    let prepared = tokio::task::spawn_blocking({
                        let datadir = datadir.clone();
                        let init_file = init_file.clone();
                        move || -> Result<(), String> {
                            let template = mysqld::image_template(&mysqld::local_root())
                                .map_err(|e| e.to_string())?;
                            mysqld::copy_dir(&template, &datadir).map_err(|e| e.to_string())?;
                            orca::agent::write_private(&init_file, plan.sql.as_bytes())
                                .map_err(|e| e.to_string())
                        }
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                    if let Err(e) = prepared {
                        self.fail_start(
                            i,
                            128,
                            "StartError",
                            Some(format!("initialising the data directory: {e}")),
                        );
                        return;
                    }
                    let mut lines = vec![format!(
                        "[Note] [Entrypoint]: Initializing database files (from the sandbox's template)"
                    )];
                    lines.extend(plan.log);
                    self.append_log(&spec, &lines);
                }
            }
        }
        let init = init_file.exists().then(|| init_file.clone());
        let layout = self.layout(&spec, datadir);
        let cnf = image::defaults_file(&layout, &self.ip, &mounts);
        if let Err(e) = std::fs::write(&layout.defaults_file, cnf) {
            self.fail_start(
                i,
                128,
                "StartError",
                Some(format!("writing the config: {e}")),
            );
            return;
        }
        let program = match mysqld::find_binary("mariadbd") {
            Ok(p) => p,
            Err(e) => {
                self.fail_start(i, 128, "StartError", Some(e.to_string()));
                return;
            }
        };
        let mut proc_env = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOSTNAME".to_string(), self.name.clone()),
        ];
        proc_env.extend(env.iter().cloned());
        let run = Spec {
            program,
            args: image::command_line(&layout, &self.ip, &user_args, init.as_deref()),
            env: proc_env,
            cwd: Some(self.dir.clone()),
            log: Some(self.container_log(&spec)),
            root: None,
        };
        let child = match self.k.spawner.spawn(run).await {
            Ok(c) => c,
            Err(e) => {
                self.fail_start(i, 128, "StartError", Some(e.to_string()));
                return;
            }
        };
        self.launched(i, child, env, init);
    }

    /// An init container with nothing to run: created, started and
    /// completed (exit 0) at once.
    fn complete_at_once(&mut self, i: usize, env: Vec<(String, String)>) {
        let now = now_string();
        let c = &mut self.containers[i];
        if c.ever_started {
            c.restarts += 1;
        }
        c.ever_started = true;
        c.id = container_id();
        c.rotated = false;
        c.env = env;
        let (name, field, id) = (c.spec.name.clone(), c.field(), c.id.clone());
        self.k.logs.started(&self.ns, &self.name, &self.dir, &name);
        self.event(
            "Normal",
            "Created",
            format!("Created container: {name}"),
            Some(&field),
        );
        self.event(
            "Normal",
            "Started",
            format!("Started container {name}"),
            Some(&field),
        );
        let term = Term {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started: now.clone(),
            finished: now,
            id,
        };
        self.record_exit(i, term);
    }

    /// Starts a container of the orca image: the orca binary in a root of
    /// its own (see [`rootfs`]).
    async fn start_orca(&mut self, i: usize, env: Vec<(String, String)>) {
        let spec = self.containers[i].spec.clone();
        let binary = match rootfs::orca_binary() {
            Ok(b) => b,
            Err(e) => {
                self.fail_start(i, 128, "StartError", Some(e.to_string()));
                return;
            }
        };
        let command = expand_all(spec.command.as_deref().unwrap_or_default(), &env);
        let args = expand_all(spec.args.as_deref().unwrap_or_default(), &env);
        let argv = match rootfs::argv(&command, &args) {
            Ok(a) => a,
            Err(m) => {
                self.fail_start(i, 128, "StartError", Some(m));
                return;
            }
        };
        let pod_sc = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.clone());
        let sc = spec.security_context.clone().unwrap_or_default();
        let uid = sc
            .run_as_user
            .or(pod_sc.as_ref().and_then(|p| p.run_as_user))
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(rootfs::IMAGE_USER);
        let gid = sc
            .run_as_group
            .or(pod_sc.as_ref().and_then(|p| p.run_as_group))
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(rootfs::IMAGE_USER);
        let non_root = sc
            .run_as_non_root
            .or(pod_sc.as_ref().and_then(|p| p.run_as_non_root))
            .unwrap_or(false);
        if non_root && uid == 0 {
            let c = &mut self.containers[i];
            c.state = State::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: Some("Error: container's runAsUser breaks non-root policy".into()),
            };
            c.next_start = Instant::now() + Duration::from_secs(1);
            return;
        }
        let vols = self.volumes.clone().unwrap_or_default();
        let mut mounts = Vec::new();
        for m in spec.volume_mounts.iter().flatten() {
            let Some(dir) = vols.get(&m.name) else {
                continue;
            };
            let host = match m.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => dir.join(sub.trim_start_matches('/')),
                None => dir.clone(),
            };
            let ro = m.read_only.unwrap_or(false);
            // The sandbox's mariadbd runs on the host: the datadir it
            // reports (which mariadb-backup goes by) is the volume's host
            // path, so the data volume is there too.
            if m.mount_path.trim_end_matches('/') == image::DATADIR {
                mounts.push((host.display().to_string(), host.clone(), ro));
            }
            mounts.push((m.mount_path.clone(), host, ro));
        }
        let layout = rootfs::Layout {
            dir: self.dir.join("rootfs").join(&spec.name),
            binary: &binary,
            mounts,
            hostname: &self.name,
            pod_ip: &self.ip,
            read_only: sc.read_only_root_filesystem.unwrap_or(false),
            uid,
            gid,
            workdir: spec.working_dir.clone(),
        };
        let root = match rootfs::prepare(&layout) {
            Ok(r) => r,
            Err(e) => {
                self.fail_start(
                    i,
                    128,
                    "StartError",
                    Some(format!("making the container's root: {e}")),
                );
                return;
            }
        };
        self.refresh_hosts().await;
        let mut proc_env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("HOSTNAME".to_string(), self.name.clone()),
            (
                "HOME".to_string(),
                if uid == 0 { "/root" } else { "/home/nonroot" }.to_string(),
            ),
        ];
        if let Some(api) = self.k.opts.api_service {
            let (host, port) = (api.ip().to_string(), api.port().to_string());
            proc_env.extend([
                ("KUBERNETES_SERVICE_HOST".to_string(), host.clone()),
                ("KUBERNETES_SERVICE_PORT".to_string(), port.clone()),
                ("KUBERNETES_SERVICE_PORT_HTTPS".to_string(), port.clone()),
                ("KUBERNETES_PORT".to_string(), format!("tcp://{api}")),
                (
                    format!("KUBERNETES_PORT_{port}_TCP"),
                    format!("tcp://{api}"),
                ),
                (
                    format!("KUBERNETES_PORT_{port}_TCP_PROTO"),
                    "tcp".to_string(),
                ),
                (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.clone()),
                (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host),
            ]);
        }
        proc_env.extend(env.iter().cloned());
        let run = Spec {
            program: PathBuf::from(rootfs::BINARY),
            args: argv,
            env: proc_env,
            cwd: None,
            log: Some(self.container_log(&spec)),
            root: Some(root),
        };
        match self.k.spawner.spawn(run).await {
            Ok(child) => self.launched(i, child, env, None),
            Err(e) => self.fail_start(i, 128, "StartError", Some(e.to_string())),
        }
    }

    /// Records a container process just started.
    fn launched(
        &mut self,
        i: usize,
        child: tokio::process::Child,
        env: Vec<(String, String)>,
        init: Option<PathBuf>,
    ) {
        let spec = self.containers[i].spec.clone();
        let field = self.containers[i].field();
        self.containers[i].rotated = false;
        self.k
            .logs
            .started(&self.ns, &self.name, &self.dir, &spec.name);
        let pid = child.id();
        if let Some(p) = pid {
            self.k
                .pids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p);
        }
        let now = Instant::now();
        let c = &mut self.containers[i];
        if c.ever_started {
            c.restarts += 1;
        }
        c.ever_started = true;
        c.child = Some(child);
        c.pid = pid;
        c.id = container_id();
        c.state = State::Running {
            since: now_string(),
        };
        c.running_since = Some(now);
        c.started = c.startup.spec.is_none();
        c.ready = false;
        c.readiness.reset(now);
        c.liveness.reset(now);
        c.startup.reset(now);
        c.kill_at = None;
        c.hung = false;
        c.init_pending = init;
        c.env = env;
        tracing::info!(
            "pod {}/{}: started {} (pid {:?}) on {}",
            self.ns,
            self.name,
            spec.name,
            pid,
            self.ip
        );
        self.event(
            "Normal",
            "Created",
            format!("Created container: {}", spec.name),
            Some(&field),
        );
        self.event(
            "Normal",
            "Started",
            format!("Started container {}", spec.name),
            Some(&field),
        );
    }

    fn on_exit(&mut self, i: usize, st: std::io::Result<ExitStatus>) {
        let c = &mut self.containers[i];
        c.child = None;
        if let Some(p) = c.pid.take() {
            self.k
                .pids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&p);
        }
        let (code, signal) = match st {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(sig)) => (128 + sig, Some(sig)),
                (None, None) => (-1, None),
            },
            Err(_) => (-1, None),
        };
        let started = match &c.state {
            State::Running { since } => since.clone(),
            _ => now_string(),
        };
        let term = Term {
            exit_code: code,
            signal,
            reason: if code == 0 { "Completed" } else { "Error" }.to_string(),
            message: None,
            started,
            finished: now_string(),
            id: c.id.clone(),
        };
        tracing::info!(
            "pod {}/{}: container {} exited with {code}",
            self.ns,
            self.name,
            c.spec.name
        );
        self.record_exit(i, term);
    }

    fn record_exit(&mut self, i: usize, term: Term) {
        self.k
            .logs
            .ended(&self.ns, &self.name, &self.containers[i].spec.name);
        let policy = self.restart_policy().to_string();
        let opts_initial = self.k.opts.restart_backoff_initial;
        let opts_first = self.k.opts.first_restart_delay;
        let opts_max = self.k.opts.restart_backoff_max;
        let terminating = self.terminating;
        let pod_label = format!("{}_{}({})", self.name, self.ns, self.uid);
        let c = &mut self.containers[i];
        c.ready = false;
        c.started = false;
        c.kill_at = None;
        c.hung = false;
        c.placeholder_running = false;
        let restart = !terminating
            && match policy.as_str() {
                _ if c.init => init::runs_again(&policy, term.exit_code),
                "Never" => false,
                "OnFailure" => term.exit_code != 0,
                _ => true,
            };
        c.state = State::Terminated(term.clone());
        if !restart {
            c.done = true;
            return;
        }
        c.last = Some(term);
        let now = Instant::now();
        // a container that ran long enough starts over without back-off
        if c.running_since
            .is_some_and(|s| now.duration_since(s) >= opts_max * 2)
        {
            c.backoff = None;
        }
        let delay = c.backoff.unwrap_or(opts_first);
        c.backoff = Some(match c.backoff {
            None => opts_initial,
            Some(d) => (d * 2).min(opts_max),
        });
        c.next_start = now + delay;
        if !delay.is_zero() {
            let (name, field) = (c.spec.name.clone(), c.field());
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {} restarting failed container={name} pod={pod_label}",
                    go_duration(delay)
                )),
            };
            self.event(
                "Warning",
                "BackOff",
                "Back-off restarting failed container".to_string()
                    + &format!(" {name} in pod {pod_label}"),
                Some(&field),
            );
        }
    }

    /// Starts stopping a container for a failed probe: SIGTERM now, SIGKILL
    /// after the grace period.
    fn begin_kill(&mut self, i: usize, probe_grace: Option<i64>) {
        let grace = probe_grace
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or_else(|| self.grace_period());
        let c = &mut self.containers[i];
        if let Some(pid) = c.pid {
            let _ = super::signal(pid, Signal::SIGTERM);
        }
        c.kill_at = Some(Instant::now() + grace);
        c.ready = false;
    }

    async fn run_probes(&mut self) {
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            if c.init || c.child.is_none() || c.kill_at.is_some() {
                continue;
            }
            let now = Instant::now();
            // the server has run its initialisation once it greets
            if let Some(f) = c.init_pending.clone()
                && probe::mysql_alive(&self.ip, 3306, Duration::from_millis(200)).await
                    == Outcome::Success
            {
                let _ = std::fs::remove_file(&f);
                self.containers[i].init_pending = None;
            }
            let c = &self.containers[i];
            let field = c.field();
            if !c.started {
                if c.startup.spec.is_none() {
                    self.containers[i].started = true;
                } else if now >= c.startup.next {
                    let outcome = self.probe(i, 0).await;
                    let c = &mut self.containers[i];
                    c.startup.next = Instant::now() + c.startup.period();
                    match outcome {
                        Outcome::Success => {
                            c.started = true;
                            c.readiness.reset(Instant::now());
                            c.liveness.reset(Instant::now());
                        }
                        Outcome::Failure(m) => {
                            c.startup.failures += 1;
                            let over = c.startup.failures >= c.startup.failure_threshold();
                            let grace = c
                                .startup
                                .spec
                                .as_ref()
                                .and_then(|p| p.termination_grace_period_seconds);
                            self.event(
                                "Warning",
                                "Unhealthy",
                                format!("Startup probe failed: {m}"),
                                Some(&field),
                            );
                            if over {
                                self.event(
                                    "Normal",
                                    "Killing",
                                    format!(
                                        "Container {} failed startup probe, will be restarted",
                                        self.containers[i].spec.name
                                    ),
                                    Some(&field),
                                );
                                self.begin_kill(i, grace);
                            }
                        }
                    }
                }
                continue;
            }
            if c.liveness.spec.is_some() && now >= c.liveness.next {
                let outcome = self.probe(i, 1).await;
                let c = &mut self.containers[i];
                c.liveness.next = Instant::now() + c.liveness.period();
                match outcome {
                    Outcome::Success => c.liveness.failures = 0,
                    Outcome::Failure(m) => {
                        c.liveness.failures += 1;
                        let over = c.liveness.failures >= c.liveness.failure_threshold();
                        let grace = c
                            .liveness
                            .spec
                            .as_ref()
                            .and_then(|p| p.termination_grace_period_seconds);
                        self.event(
                            "Warning",
                            "Unhealthy",
                            format!("Liveness probe failed: {m}"),
                            Some(&field),
                        );
                        if over {
                            self.event(
                                "Normal",
                                "Killing",
                                format!(
                                    "Container {} failed liveness probe, will be restarted",
                                    self.containers[i].spec.name
                                ),
                                Some(&field),
                            );
                            self.begin_kill(i, grace);
                            continue;
                        }
                    }
                }
            }
            let c = &self.containers[i];
            if c.readiness.spec.is_none() {
                self.containers[i].ready = true;
            } else if now >= c.readiness.next {
                let outcome = self.probe(i, 2).await;
                let c = &mut self.containers[i];
                c.readiness.next = Instant::now() + c.readiness.period();
                match outcome {
                    Outcome::Success => {
                        c.readiness.failures = 0;
                        c.readiness.successes += 1;
                        if c.readiness.successes >= c.readiness.success_threshold() {
                            c.ready = true;
                        }
                    }
                    Outcome::Failure(m) => {
                        c.readiness.successes = 0;
                        c.readiness.failures += 1;
                        let was_ready = c.ready;
                        if c.readiness.failures >= c.readiness.failure_threshold() {
                            c.ready = false;
                        }
                        if was_ready || c.readiness.failures == 1 {
                            self.event(
                                "Warning",
                                "Unhealthy",
                                format!("Readiness probe failed: {m}"),
                                Some(&field),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Runs probe `which` (0 startup, 1 liveness, 2 readiness) of container `i`.
    async fn probe(&self, i: usize, which: u8) -> Outcome {
        let c = &self.containers[i];
        let spec = match which {
            0 => c.startup.spec.as_ref(),
            1 => c.liveness.spec.as_ref(),
            _ => c.readiness.spec.as_ref(),
        };
        let Some(spec) = spec else {
            return Outcome::Success;
        };
        let target = Target {
            pod_ip: &self.ip,
            container: &c.spec,
            env: &c.env,
            spawner: &self.k.spawner,
            cwd: self.dir.clone(),
        };
        probe::run(&target, spec).await
    }

    async fn handle_fault(&mut self) {
        let Some(fault) = self.pod.annotations().get(FAULT_ANNOTATION).cloned() else {
            return;
        };
        let rv = self.pod.resource_version().unwrap_or_default();
        if self.handled_fault.as_deref() == Some(rv.as_str()) {
            return;
        }
        self.handled_fault = Some(rv);
        let mut done = Vec::new();
        for i in 0..self.containers.len() {
            let c = &mut self.containers[i];
            let name = c.spec.name.clone();
            match fault.as_str() {
                "crash" => {
                    if let Some(child) = c.child.as_mut() {
                        let _ = child.start_kill();
                        done.push(format!("killed container {name} (SIGKILL)"));
                    } else if c.placeholder_running {
                        let started = match &c.state {
                            State::Running { since } => since.clone(),
                            _ => now_string(),
                        };
                        let term = Term {
                            exit_code: 137,
                            signal: Some(9),
                            reason: "Error".into(),
                            message: None,
                            started,
                            finished: now_string(),
                            id: c.id.clone(),
                        };
                        self.record_exit(i, term);
                        done.push(format!("killed container {name} (SIGKILL)"));
                    }
                }
                "hang" => {
                    if let Some(pid) = c.pid {
                        let _ = super::signal(pid, Signal::SIGSTOP);
                        c.hung = true;
                        done.push(format!("stopped container {name} (SIGSTOP)"));
                    }
                }
                "resume" => {
                    if let Some(pid) = c.pid {
                        let _ = super::signal(pid, Signal::SIGCONT);
                        c.hung = false;
                        done.push(format!("resumed container {name} (SIGCONT)"));
                    }
                }
                _ => {}
            }
        }
        let message = match (fault.as_str(), done.is_empty()) {
            ("crash" | "hang" | "resume", false) => {
                format!("Sandbox fault {fault:?}: {}", done.join(", "))
            }
            ("crash" | "hang" | "resume", true) => {
                format!("Sandbox fault {fault:?}: no running container")
            }
            _ => format!("Sandbox fault {fault:?} is unknown (use crash, hang or resume)"),
        };
        tracing::info!("pod {}/{}: {message}", self.ns, self.name);
        self.event("Warning", "SandboxFault", message, None);
        let pods: Api<Pod> = Api::namespaced(self.k.client.clone(), &self.ns);
        let patch = json!({"metadata": {"uid": self.uid, "annotations": {FAULT_ANNOTATION: null}}});
        if let Err(e) = pods
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::warn!(
                "pod {}/{}: removing the fault annotation: {e}",
                self.ns,
                self.name
            );
        }
    }

    fn condition(
        &mut self,
        kind: &str,
        ok: bool,
        reason: Option<&str>,
        message: Option<String>,
    ) -> Value {
        let status = if ok { "True" } else { "False" };
        let entry = self
            .transitions
            .entry(kind.to_string())
            .or_insert_with(|| (status.to_string(), now_string()));
        if entry.0 != status {
            *entry = (status.to_string(), now_string());
        }
        let mut c = json!({
            "type": kind,
            "status": status,
            "lastProbeTime": null,
            "lastTransitionTime": entry.1,
        });
        if !ok {
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(m) = message {
                c["message"] = json!(m);
            }
        }
        c
    }

    /// One container's entry in `containerStatuses` or
    /// `initContainerStatuses`.
    fn container_status(&self, c: &Ctr) -> Value {
        let image = c.spec.image.clone().unwrap_or_default();
        let state = match &c.state {
            State::Waiting { reason, message } => {
                let reason = match (&self.mount_error, reason.as_str()) {
                    (Some(_), "ContainerCreating") => "ContainerCreating",
                    (_, r) => r,
                };
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { since } => json!({"running": {"startedAt": since}}),
            State::Terminated(t) => t.to_json(),
        };
        // an init container is ready once it completed
        let ready = if c.init {
            c.standing() == init::Standing::Completed
        } else {
            c.ready && c.running()
        };
        let mut s = json!({
            "name": c.spec.name,
            "state": state,
            "lastState": c.last.as_ref().map(Term::to_json).unwrap_or_else(|| json!({})),
            "ready": ready,
            "restartCount": c.restarts,
            "image": image::normalize_image(&image),
            "imageID": if c.ever_started { image::image_id(&image) } else { String::new() },
            "started": c.running() && c.started,
        });
        if !c.id.is_empty() {
            s["containerID"] = json!(c.id);
        }
        s
    }

    fn status_json(&mut self) -> Value {
        let (inits, apps): (Vec<&Ctr>, Vec<&Ctr>) = self.containers.iter().partition(|c| c.init);
        let statuses: Vec<Value> = apps.iter().map(|c| self.container_status(c)).collect();
        let init_statuses: Vec<Value> = inits.iter().map(|c| self.container_status(c)).collect();
        let incomplete: Vec<String> = inits
            .iter()
            .filter(|c| c.standing() != init::Standing::Completed)
            .map(|c| c.spec.name.clone())
            .collect();
        let stage = self.init_stage();
        let all_done = !apps.is_empty() && apps.iter().all(|c| c.done);
        let phase = if stage == init::Stage::Failed {
            "Failed"
        } else if all_done {
            let ok = apps
                .iter()
                .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
            if ok { "Succeeded" } else { "Failed" }
        } else if stage != init::Stage::Done || apps.iter().any(|c| !c.ever_started) {
            "Pending"
        } else {
            "Running"
        };
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let unready: Vec<String> = apps
            .iter()
            .filter(|c| !(c.ready && c.running()))
            .map(|c| c.spec.name.clone())
            .collect();
        let containers_ready = unready.is_empty();
        let node_ready = *self.node_ready.borrow();
        let (reason, message) = if all_done {
            ("PodCompleted", None)
        } else {
            (
                "ContainersNotReady",
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        };
        let scheduled_at = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| time::rfc3339(t.0));
        let mut conditions = vec![
            self.condition(
                "PodReadyToStartContainers",
                !terminal && self.lease.is_some(),
                None,
                None,
            ),
            self.condition(
                "Initialized",
                stage == init::Stage::Done,
                Some("ContainersNotInitialized"),
                Some(init::incomplete_message(&incomplete)),
            ),
        ];
        let ready = if !node_ready && containers_ready {
            self.condition(
                "Ready",
                false,
                Some("NodeNotReady"),
                Some("the sandbox node is not ready".into()),
            )
        } else {
            self.condition("Ready", containers_ready, Some(reason), message.clone())
        };
        conditions.push(ready);
        conditions.push(self.condition("ContainersReady", containers_ready, Some(reason), message));
        let mut scheduled = self.condition("PodScheduled", true, None, None);
        if let Some(t) = scheduled_at {
            scheduled["lastTransitionTime"] = json!(t);
        }
        conditions.push(scheduled);
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.k.host_ip,
            "hostIPs": [{"ip": self.k.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": statuses,
        });
        if !self.ip.is_empty() {
            status["podIP"] = json!(self.ip);
            status["podIPs"] = json!([{"ip": self.ip}]);
        }
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        status
    }

    async fn write_status(&mut self) {
        let status = self.status_json();
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.k.client.clone(), &self.ns);
        // the uid in the patch is a precondition, as the kubelet's status
        // manager makes it: a pod recreated under the same name is another
        // worker's, and a stale worker's last status must not land on it
        let patch = json!({ "metadata": { "uid": self.uid }, "status": status });
        match pods
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                tracing::debug!(
                    "pod {}/{}: status: the pod is another one now",
                    self.ns,
                    self.name
                );
                self.last_status = Some(status);
            }
            Err(e) => tracing::debug!("pod {}/{}: status: {e}", self.ns, self.name),
        }
    }

    /// Deletion: preStop hooks, SIGTERM, the grace period, SIGKILL, a last
    /// status, then the zero-grace delete that removes the pod.
    async fn terminate(&mut self) {
        self.terminating = true;
        let grace_secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .map(|g| g.max(0) as u64)
            .unwrap_or_else(|| self.grace_period().as_secs());
        let mut deadline = Instant::now() + Duration::from_secs(grace_secs);
        for c in &self.containers {
            if c.running() {
                self.event(
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", c.spec.name),
                    Some(&c.field()),
                );
            }
        }
        // preStop hooks, concurrently, within the grace period
        {
            let limit = deadline.saturating_duration_since(Instant::now());
            let mut hooks = Vec::new();
            for c in &self.containers {
                if c.init || c.child.is_none() {
                    continue;
                }
                if let Some(h) = c.spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                    let target = Target {
                        pod_ip: &self.ip,
                        container: &c.spec,
                        env: &c.env,
                        spawner: &self.k.spawner,
                        cwd: self.dir.clone(),
                    };
                    hooks.push(async move {
                        let outcome = probe::run_hook(&target, h, limit).await;
                        (c.spec.name.clone(), outcome)
                    });
                }
            }
            let results = futures::future::join_all(hooks).await;
            for (name, outcome) in results {
                if let Outcome::Failure(m) = outcome {
                    self.event(
                        "Warning",
                        "FailedPreStopHook",
                        format!("PreStopHook failed: {m}"),
                        Some(&format!("spec.containers{{{name}}}")),
                    );
                }
            }
        }
        tracing::info!(
            "pod {}/{}: stopping its containers (SIGTERM)",
            self.ns,
            self.name
        );
        for i in 0..self.containers.len() {
            let c = &mut self.containers[i];
            if let Some(pid) = c.pid {
                let _ = super::signal(pid, Signal::SIGTERM);
            } else if c.placeholder_running {
                let started = match &c.state {
                    State::Running { since } => since.clone(),
                    _ => now_string(),
                };
                let term = Term {
                    exit_code: 0,
                    signal: None,
                    reason: "Completed".into(),
                    message: None,
                    started,
                    finished: now_string(),
                    id: c.id.clone(),
                };
                self.record_exit(i, term);
            }
        }
        let mut force = false;
        while self.containers.iter().any(|c| c.child.is_some()) {
            tokio::select! {
                (i, st) = wait_any(&mut self.containers) => self.on_exit(i, st),
                _ = tokio::time::sleep_until(deadline), if !force => {
                    force = true;
                    self.kill_all();
                }
                r = self.rx.changed() => {
                    let latest = if r.is_ok() { self.rx.borrow_and_update().clone() } else { None };
                    match latest {
                        None => {
                            tracing::info!(
                                "pod {}/{}: removed from the API while stopping: killing its containers",
                                self.ns,
                                self.name
                            );
                            force = true;
                            self.kill_all();
                        }
                        Some(p) => {
                            if let Some(g) = p.metadata.deletion_grace_period_seconds {
                                let d = Instant::now() + Duration::from_secs(g.max(0) as u64);
                                if d < deadline {
                                    deadline = d;
                                }
                            }
                            self.pod = p;
                        }
                    }
                }
                _ = self.stop.changed() => {
                    force = true;
                    self.kill_all();
                }
            }
        }
        // the app containers are over (an init container not run stays as
        // it was)
        for c in self.containers.iter_mut().filter(|c| !c.init) {
            c.done = true;
            if !matches!(c.state, State::Terminated(_)) {
                c.state = State::Terminated(Term {
                    exit_code: 0,
                    signal: None,
                    reason: "Completed".into(),
                    message: None,
                    started: now_string(),
                    finished: now_string(),
                    id: c.id.clone(),
                });
            }
        }
        if !*self.stop.borrow() {
            self.write_status().await;
            let pods: Api<Pod> = Api::namespaced(self.k.client.clone(), &self.ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&self.name, &dp).await {
                Ok(_) => tracing::info!("pod {}/{}: stopped and removed", self.ns, self.name),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => tracing::warn!("pod {}/{}: confirming deletion: {e}", self.ns, self.name),
            }
            self.cleanup();
        }
    }

    fn kill_all(&mut self) {
        for c in &mut self.containers {
            if let Some(child) = c.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }

    /// The pod vanished from the API (force deletion): kill at once.
    async fn gone(&mut self) {
        tracing::info!(
            "pod {}/{}: removed from the API: killing its containers",
            self.ns,
            self.name
        );
        self.terminating = true;
        self.kill_all();
        while self.containers.iter().any(|c| c.child.is_some()) {
            let (i, st) = wait_any(&mut self.containers).await;
            self.on_exit(i, st);
        }
        self.cleanup();
    }

    /// The kubelet stops: every process ends (SIGTERM, then SIGKILL after
    /// the kubelet's shutdown grace); the pod objects stay as they are.
    async fn shutdown(&mut self) {
        self.terminating = true;
        for c in &self.containers {
            if let Some(pid) = c.pid {
                let _ = super::signal(pid, Signal::SIGCONT);
                let _ = super::signal(pid, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.k.opts.shutdown_grace;
        while self.containers.iter().any(|c| c.child.is_some()) {
            tokio::select! {
                (i, st) = wait_any(&mut self.containers) => self.on_exit(i, st),
                _ = tokio::time::sleep_until(deadline) => self.kill_all(),
            }
        }
        self.lease = None;
    }

    fn cleanup(&mut self) {
        self.lease = None;
        self.k.logs.forget(&self.ns, &self.name);
        if std::env::var_os("ORCA_KEEP_LOCAL").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        for c in &self.containers {
            let sock = std::env::temp_dir().join(format!(
                "orca-{}-{}.sock",
                &self.uid[..self.uid.len().min(13)],
                c.spec.name
            ));
            let _ = std::fs::remove_file(sock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }
}
