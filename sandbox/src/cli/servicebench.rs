//! `orca-sandbox bench service`: failover as an application sees it
//! through Kubernetes. Starts the sandbox cluster with the operator (a
//! child process of this binary), creates a three-pod MySQLCluster of
//! real mariadbd, and writes without pause as the application account
//! to whatever address the primary Service's Endpoints name, following
//! them as kube-proxy does; then crashes (SIGKILL, the pod kept down)
//! or hangs (SIGSTOP) the primary's containers. Reports, from the fault,
//! when the Endpoints named the new primary and when the first write
//! was accepted there. Not a test: the figures go to
//! `docs/benchmarks.md`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use mysql_async::prelude::Queryable;
use tokio::sync::watch;

use crate::kubelet::FAULT_ANNOTATION;
use orca::cli::{EXIT_FAILED, EXIT_OK};
use orca::k8s::crd::cluster::MySQLCluster;
use orca::mysql::Credentials;
use orca::mysql::conn::{Timeouts, connect};
use orca::topology::InstanceKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceScenario {
    /// SIGKILL of the primary's containers, the pod kept down (its
    /// restart waits 120 s), semi-sync replicas.
    Crash,
    /// SIGSTOP of the primary's containers, semi-sync replicas.
    Hang,
    /// SIGSTOP with asynchronous replicas.
    HangAsync,
}

impl ServiceScenario {
    fn semi_sync(self) -> bool {
        !matches!(self, ServiceScenario::HangAsync)
    }

    fn fault(self) -> &'static str {
        match self {
            ServiceScenario::Crash => "crash",
            _ => "hang",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ServiceScenario::Crash => "kill -9 of the primary, pod kept down, semi-sync",
            ServiceScenario::Hang => "SIGSTOP of the primary, semi-sync",
            ServiceScenario::HangAsync => "SIGSTOP of the primary, asynchronous replicas",
        }
    }
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Which faults (all by default).
    #[arg(long, value_enum)]
    pub scenario: Vec<ServiceScenario>,
    /// Runs per scenario (each on a fresh sandbox).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also write the results as markdown to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Keep each sandbox's directory (its log) afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Bounds every API call of the bench.
const API: Duration = Duration::from_secs(10);
const NS: &str = "default";
const NAME: &str = "db";

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(API, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {} s", API.as_secs())),
    }
}

fn cluster(semi_sync: bool) -> Result<MySQLCluster, String> {
    let semi = if semi_sync {
        "  semiSync:\n    enabled: true\n    waitCount: 1\n"
    } else {
        ""
    };
    serde_yaml_ng::from_str(&format!(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: {NAME}\n  namespace: {NS}\nspec:\n  image: mariadb:10.11\n  replicas: 3\n{semi}"
    ))
    .map_err(|e| e.to_string())
}

/// The one address of the primary Service's Endpoints, if one.
fn endpoint(ep: &Endpoints) -> Option<InstanceKey> {
    match crate::kubelet::endpoint_ips(ep).as_slice() {
        [ip] => Some(InstanceKey::new(ip.clone(), 3306)),
        _ => None,
    }
}

/// Follows the primary Service's Endpoints, as kube-proxy does: the
/// address they name (none while they name none or several), and when
/// each change was seen.
/// When the Endpoints were seen naming what (none: no single address).
type Moves = Arc<Mutex<Vec<(Instant, Option<InstanceKey>)>>>;

fn follow(client: Client, moves: Moves) -> (watch::Receiver<Option<InstanceKey>>, Abort) {
    let (tx, rx) = watch::channel(None);
    let api: Api<Endpoints> = Api::namespaced(client, NS);
    let service = format!("{NAME}-primary");
    let task = tokio::spawn(async move {
        let cfg = watcher::Config::default()
            .fields(&format!("metadata.name={service}"))
            .timeout(30);
        let mut events = std::pin::pin!(watcher(api, cfg));
        while let Some(e) = events.next().await {
            let eps: Vec<Endpoints> = match e {
                Ok(watcher::Event::Apply(ep)) | Ok(watcher::Event::InitApply(ep)) => vec![ep],
                Ok(watcher::Event::Delete(_)) => {
                    tx.send_if_modified(|v| v.take().is_some());
                    continue;
                }
                _ => continue,
            };
            for ep in eps {
                let at = endpoint(&ep);
                if tx.send_if_modified(|v| {
                    let changed = *v != at;
                    *v = at.clone();
                    changed
                }) && let Ok(mut m) = moves.lock()
                {
                    m.push((Instant::now(), at));
                }
            }
        }
    });
    (rx, Abort(task.abort_handle()))
}

/// Ends a task when dropped (before the sandbox it talks to goes).
struct Abort(tokio::task::AbortHandle);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every write acknowledged: when, and by which address.
type Acks = Arc<Mutex<Vec<(Instant, InstanceKey)>>>;

/// Writes one row at a time to the address the Endpoints name, as
/// `creds`; a write under way is given up when they name another (a
/// client of a Service reaches the new pod with its next connection).
fn write_on(
    mut target: watch::Receiver<Option<InstanceKey>>,
    creds: Credentials,
    acks: Acks,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let t = Timeouts {
        connect: Duration::from_millis(200),
        query: Duration::from_millis(500),
    };
    tokio::spawn(async move {
        let mut conn: Option<(InstanceKey, mysql_async::Conn)> = None;
        while !*stop.borrow() {
            let Some(at) = target.borrow_and_update().clone() else {
                conn = None;
                tokio::select! {
                    _ = target.changed() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                continue;
            };
            let attempt = async {
                let mut c = match conn.take() {
                    Some((k, c)) if k == at => c,
                    _ => connect(&at, &creds, t).await.map_err(|e| e.to_string())?,
                };
                match tokio::time::timeout(
                    t.query,
                    c.query_drop("INSERT INTO app.service_bench (at) VALUES (NOW(6))"),
                )
                .await
                {
                    Ok(Ok(())) => Ok(c),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            };
            tokio::select! {
                r = attempt => match r {
                    Ok(c) => {
                        if let Ok(mut a) = acks.lock() {
                            a.push((Instant::now(), at.clone()));
                        }
                        conn = Some((at, c));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                _ = target.changed() => {}
                _ = stop.changed() => {}
            }
        }
    })
}

async fn secret_value(client: &Client, key: &str) -> Result<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    let s = bounded(
        "the credentials Secret",
        api.get(&format!("{NAME}-credentials")),
    )
    .await?;
    let v = s
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| format!("the credentials Secret has no {key}"))?;
    String::from_utf8(v.0).map_err(|e| e.to_string())
}

struct Figures {
    /// Fault → the Endpoints name the new primary.
    moved: Duration,
    /// Fault → the first write accepted there.
    outage: Duration,
    /// Writes the old primary acknowledged after the new one's first.
    late: usize,
}

async fn one(s: ServiceScenario, keep: bool) -> Result<Figures, String> {
    let (sb, client) = super::idle::start(keep, &["--restart-delay", "120s"]).await?;
    let r = measure(s, &client).await;
    drop(sb);
    r
}

async fn measure(s: ServiceScenario, client: &Client) -> Result<Figures, String> {
    let clusters: Api<MySQLCluster> = Api::namespaced(client.clone(), NS);
    bounded(
        "creating the cluster",
        clusters.create(&PostParams::default(), &cluster(s.semi_sync())?),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let primary = loop {
        let c = bounded("reading the cluster", clusters.get(NAME)).await?;
        if super::idle::healthy(&c)
            && let Some(p) = c.status.and_then(|s| s.primary)
        {
            break p;
        }
        if Instant::now() > deadline {
            return Err("the cluster was not Healthy within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let creds = Credentials::new(
        secret_value(client, "app-username").await?,
        secret_value(client, "app-password").await?,
    );
    let moves = Arc::new(Mutex::new(Vec::new()));
    let (mut target, _follow) = follow(client.clone(), moves.clone());
    let old = loop {
        if let Some(k) = target.borrow_and_update().clone() {
            break k;
        }
        if Instant::now() > deadline {
            return Err("the primary Service names no endpoint".into());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), target.changed()).await;
    };
    // The application's table, made by the application account.
    let table = async {
        let mut c = connect(&old, &creds, Timeouts::default()).await?;
        c.query_drop("CREATE DATABASE IF NOT EXISTS app").await?;
        c.query_drop(
            "CREATE TABLE IF NOT EXISTS app.service_bench (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
        )
        .await?;
        let _ = c.disconnect().await;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    bounded("creating the table", table).await?;
    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let writer = write_on(target.clone(), creds.clone(), acks.clone(), stop_rx);
    let _writer = Abort(writer.abort_handle());
    let warm = Instant::now() + Duration::from_secs(20);
    while acks.lock().map(|a| a.len()).unwrap_or(0) < 200 {
        if Instant::now() > warm {
            return Err("the writer made no progress before the fault".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let patch = Patch::Merge(serde_json::json!({
        "metadata": {"annotations": {FAULT_ANNOTATION: s.fault()}}
    }));
    let t0 = Instant::now();
    bounded(
        "the fault",
        pods.patch(&primary, &PatchParams::default(), &patch),
    )
    .await?;
    let limit = t0 + Duration::from_secs(60);
    let first_new = loop {
        let first = acks
            .lock()
            .ok()
            .and_then(|a| a.iter().find(|(t, k)| *t > t0 && *k != old).cloned());
        if let Some(f) = first {
            break f;
        }
        if Instant::now() > limit {
            return Err("no write was accepted by a new primary within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A little longer, to see whether the old primary acknowledges more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let moved = moves
        .lock()
        .ok()
        .and_then(|m| {
            m.iter()
                .find(|(t, k)| *t > t0 && k.as_ref() == Some(&first_new.1))
                .map(|(t, _)| *t)
        })
        .unwrap_or(first_new.0);
    let late = acks
        .lock()
        .map(|a| {
            a.iter()
                .filter(|(t, k)| *t > first_new.0 && *k == old)
                .count()
        })
        .unwrap_or(0);
    if s.fault() == "hang" {
        let resume = Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {FAULT_ANNOTATION: "resume"}}
        }));
        let _ = bounded(
            "resuming",
            pods.patch(&primary, &PatchParams::default(), &resume),
        )
        .await;
    }
    Ok(Figures {
        moved: moved.saturating_duration_since(t0),
        outage: first_new.0.saturating_duration_since(t0),
        late,
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

pub async fn run(a: ServiceArgs) -> u8 {
    let scenarios = if a.scenario.is_empty() {
        vec![
            ServiceScenario::Crash,
            ServiceScenario::Hang,
            ServiceScenario::HangAsync,
        ]
    } else {
        a.scenario.clone()
    };
    let mut table = String::from(
        "| fault (through the primary Service) | runs | Endpoints moved, median | write outage, median | worst | all runs (ms) | late writes on the old primary |\n|---|---|---|---|---|---|---|\n",
    );
    for s in scenarios {
        let mut all = Vec::new();
        for i in 0..a.runs {
            match one(s, a.keep).await {
                Ok(f) => {
                    eprintln!(
                        "{} run {}: Endpoints moved at {} ms, first write accepted at {} ms, {} late",
                        s.describe(),
                        i + 1,
                        ms(f.moved),
                        ms(f.outage),
                        f.late
                    );
                    all.push(f);
                }
                Err(e) => {
                    eprintln!(
                        "orca-sandbox bench service: {} run {}: {e}",
                        s.describe(),
                        i + 1
                    );
                    return EXIT_FAILED;
                }
            }
        }
        let outages: Vec<Duration> = all.iter().map(|f| f.outage).collect();
        let worst = outages.iter().max().copied().unwrap_or_default();
        table.push_str(&format!(
            "| {} | {} | {} ms | {} ms | {} ms | {} | {} |\n",
            s.describe(),
            all.len(),
            ms(median(all.iter().map(|f| f.moved).collect())),
            ms(median(outages.clone())),
            ms(worst),
            outages
                .iter()
                .map(|d| ms(*d).to_string())
                .collect::<Vec<_>>()
                .join(", "),
            all.iter().map(|f| f.late).sum::<usize>()
        ));
    }
    println!("{table}");
    if let Some(path) = a.write
        && let Err(e) = std::fs::write(&path, &table)
    {
        eprintln!(
            "orca-sandbox bench service: cannot write {}: {e}",
            path.display()
        );
        return EXIT_FAILED;
    }
    EXIT_OK
}
