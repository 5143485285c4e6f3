//! `orca-sandbox bench idle`: what idle clusters cost the API server.
//! Starts the sandbox cluster with the operator (this binary, as a child
//! process with its own directory and port), creates N three-pod
//! MySQLClusters of real mariadbd, waits until every one is Healthy,
//! resets the API server's request log, waits M minutes, and prints the
//! requests per minute by client, verb and resource, leader election's
//! Lease renewals apart. Not a test: the figures go to
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::apiserver::requests::{RequestKey, RequestLog};
use orca::cli::{EXIT_FAILED, EXIT_OK};
use orca::k8s::crd::cluster::MySQLCluster;

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// How many three-pod clusters.
    #[arg(long, default_value_t = 1)]
    pub clusters: usize,
    /// How long to count, once every cluster is Healthy.
    #[arg(long, default_value_t = 3.0)]
    pub minutes: f64,
    /// How long the clusters may take to become Healthy.
    #[arg(long, default_value_t = 600)]
    pub boot_seconds: u64,
    /// Keep the sandbox's directory (its log) afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub(super) struct Sandbox {
    child: Child,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep {
            eprintln!("the sandbox's directory: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}

/// The sandbox cluster with its operator, as a child process of this
/// binary with `extra` arguments, in a directory of its own; its client.
pub(super) async fn start(keep: bool, extra: &[&str]) -> Result<(Sandbox, Client), String> {
    let dir = std::env::temp_dir().join(format!("orca-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = std::fs::File::create(dir.join("sandbox.log")).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let child = Command::new(exe)
        .args(["--log", "orca=info,orca_sandbox=info", "--dir"])
        .arg(&dir)
        .args(["--addr", &addr])
        .args(extra)
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the sandbox: {e}"))?;
    let sb = Sandbox { child, dir, keep };
    let kubeconfig = sb.dir.join("kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if kubeconfig.exists()
            && let Ok(c) = orca::k8s::client_as(Some(&kubeconfig), "orca-bench").await
            && c.apiserver_version().await.is_ok()
        {
            // The operator installs the CRDs.
            let api: Api<MySQLCluster> = Api::namespaced(c.clone(), "default");
            if api.list(&Default::default()).await.is_ok() {
                return Ok((sb, c));
            }
        }
        if Instant::now() > deadline {
            return Err("the sandbox did not come up within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cluster(name: &str) -> Result<MySQLCluster, String> {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  image: mariadb:10.11\n  replicas: 3\n"
    ))
    .map_err(|e| e.to_string())
}

pub(super) fn healthy(c: &MySQLCluster) -> bool {
    c.status.as_ref().is_some_and(|s| {
        ["Available", "Healthy"].iter().all(|t| {
            s.conditions
                .iter()
                .any(|c| c.type_ == *t && c.status == "True")
        })
    })
}

/// The log as a table of requests per minute: (client, verb, resource)
/// → count, Leases apart.
pub fn table(log: &RequestLog, minutes: f64) -> String {
    let name = |k: &RequestKey| {
        let mut r = if k.group.is_empty() {
            k.resource.clone()
        } else {
            format!("{}.{}", k.resource, k.group)
        };
        if !k.subresource.is_empty() {
            r = format!("{r}/{}", k.subresource);
        }
        r
    };
    let mut rows: BTreeMap<(bool, String, String, String), u64> = BTreeMap::new();
    for r in &log.requests {
        *rows
            .entry((
                r.key.is_lease(),
                r.key.agent.clone(),
                r.key.verb.clone(),
                name(&r.key),
            ))
            .or_default() += r.count;
    }
    let per_minute = |n: u64| n as f64 / minutes;
    let mut out = String::from(
        "| client | verb | resource | requests | per minute |\n|---|---|---|---|---|\n",
    );
    for lease in [false, true] {
        for ((l, agent, verb, resource), n) in rows.iter().filter(|((l, ..), _)| *l == lease) {
            let _ = l;
            out.push_str(&format!(
                "| {agent} | {verb} | {resource} | {n} | {:.2} |\n",
                per_minute(*n)
            ));
        }
    }
    let sum = |f: &dyn Fn(&RequestKey) -> bool| log.count(f);
    let operator = |k: &RequestKey| k.agent == orca::k8s::OPERATOR_AGENT;
    out.push_str(&format!(
        "\n- the operator, beyond Leases: {:.2} requests/minute ({} writes: {:.2}/minute)\n",
        per_minute(sum(&|k| operator(k) && !k.is_lease())),
        sum(&|k| operator(k) && !k.is_lease() && k.is_write()),
        per_minute(sum(&|k| operator(k) && !k.is_lease() && k.is_write())),
    ));
    out.push_str(&format!(
        "- the operator's Lease requests: {:.2}/minute\n",
        per_minute(sum(&|k| operator(k) && k.is_lease()))
    ));
    out.push_str(&format!(
        "- every client, beyond Leases: {:.2}/minute (the sandbox's own StatefulSet controller and kubelet included)\n",
        per_minute(sum(&|k| !k.is_lease()))
    ));
    out
}

async fn measure(args: &IdleArgs, client: &Client) -> Result<String, String> {
    let api: Api<MySQLCluster> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = (0..args.clusters).map(|i| format!("idle{i}")).collect();
    for n in &names {
        api.create(&PostParams::default(), &cluster(n)?)
            .await
            .map_err(|e| format!("creating {n}: {e}"))?;
    }
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.boot_seconds);
    loop {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let up = list.items.iter().filter(|c| healthy(c)).count();
        if up == names.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{up} of {} clusters Healthy after {} s",
                names.len(),
                args.boot_seconds
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "{} clusters Healthy after {} s; counting for {} minutes",
        names.len(),
        t0.elapsed().as_secs(),
        args.minutes
    );
    // Let the last writes of the boot settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    RequestLog::reset(client).await.map_err(|e| e.to_string())?;
    let window = Duration::from_secs_f64(args.minutes * 60.0);
    tokio::time::sleep(window).await;
    let log = RequestLog::fetch(client).await.map_err(|e| e.to_string())?;
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let still = list.items.iter().filter(|c| healthy(c)).count();
    let mut out = format!(
        "{} idle clusters of 3 pods, {} minutes ({} Healthy at the end):\n\n",
        names.len(),
        args.minutes,
        still
    );
    out.push_str(&table(&log, args.minutes));
    Ok(out)
}

pub async fn run(args: IdleArgs) -> u8 {
    let (sb, client) = match start(args.keep, &[]).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("orca-sandbox bench idle: {e}");
            return EXIT_FAILED;
        }
    };
    let r = measure(&args, &client).await;
    drop(sb);
    match r {
        Ok(table) => {
            println!("{table}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("orca-sandbox bench idle: {e}");
            EXIT_FAILED
        }
    }
}
