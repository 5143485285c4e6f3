//! `orca-sandbox bench`: measures failover and switchover on local mariadbd
//! topologies (one primary, two semi-sync replicas, default engine
//! settings), repeating each run on a fresh topology and printing the
//! median and the worst; `orca-sandbox bench idle` measures what idle
//! clusters cost the API server ([`super::idle`]). Not a test: the
//! figures go to `docs/benchmarks.md`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use mysql_async::prelude::Queryable;

use crate::mysqld::{admin_credentials, app_credentials, repl_credentials};
use crate::{LocalCluster, MysqldOptions, Shape};
use orca::cli::{EXIT_FAILED, EXIT_OK};
use orca::engine::executor::{Executor, ExecutorConfig, OperationMeta, operation_id};
use orca::engine::{ClusterEngine, EngineConfig};
use orca::mysql::conn::Timeouts;
use orca::mysql::probe::probe;
use orca::mysql::{Credentials, connect};
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::topology::InstanceKey;
use orca::topology::graph::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGKILL of the primary until a writable new primary with the other
    /// replica replicating from it.
    Kill,
    /// SIGSTOP (a hung primary), measured the same way.
    Stop,
    /// Graceful takeover: first write refused on the old primary to first
    /// write accepted on the new one.
    Takeover,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: Option<BenchCommand>,
    /// Which scenarios to run (all by default).
    #[arg(long, value_enum)]
    pub scenario: Vec<Scenario>,
    /// Runs per scenario.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Also write the results as markdown to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The API requests of idle Healthy clusters in the sandbox.
    Idle(super::idle::IdleArgs),
}

fn engine_for(c: &LocalCluster) -> ClusterEngine {
    let executor = Executor::new(
        ExecutorConfig {
            admin: admin_credentials(),
            repl: repl_credentials(),
            app: None,
            timeouts: Timeouts::default(),
        },
        Default::default(),
    );
    ClusterEngine::new(
        EngineConfig::new("bench"),
        executor,
        c.instances.iter().map(|m| m.key()),
    )
}

async fn writable(key: &InstanceKey, creds: &Credentials) -> bool {
    let t = Timeouts {
        connect: Duration::from_millis(200),
        query: Duration::from_millis(500),
    };
    let Ok(mut conn) = connect(key, creds, t).await else {
        return false;
    };
    let ok = tokio::time::timeout(t.query, conn.query_drop("INSERT INTO app.b VALUES ()"))
        .await
        .is_ok_and(|r| r.is_ok());
    let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
    ok
}

async fn replicates_from(replica: &InstanceKey, source: &InstanceKey) -> bool {
    let t = Timeouts {
        connect: Duration::from_millis(200),
        query: Duration::from_millis(500),
    };
    probe(replica, &admin_credentials(), t)
        .await
        .ok()
        .and_then(|s| s.replica)
        .is_some_and(|r| &r.source == source && r.is_replicating())
}

async fn prepare(c: &LocalCluster) -> Result<(), String> {
    c.instances[0]
        .exec("CREATE DATABASE app; CREATE TABLE app.b (id BIGINT AUTO_INCREMENT PRIMARY KEY)")
        .await
        .map_err(|e| e.to_string())?;
    // Let the replicas apply it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// One failover run: returns the time from the fault to a writable new
/// primary followed by the other replica.
async fn failover_run(stop: bool) -> Result<Duration, String> {
    let shape = Shape::primary_with_replicas(2);
    let mut c = LocalCluster::start_with(shape, |_, o: MysqldOptions| o.with_semi_sync())
        .await
        .map_err(|e| e.to_string())?;
    prepare(&c).await?;
    let mut engine = engine_for(&c);
    engine.round().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        engine
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let keys: Vec<InstanceKey> = c.instances.iter().map(|m| m.key()).collect();
    let t0 = Instant::now();
    if stop {
        c.instances[0].pause().map_err(|e| e.to_string())?;
    } else {
        c.instances[0].kill().map_err(|e| e.to_string())?;
    }
    let app = app_credentials();
    let result = loop {
        if t0.elapsed() > Duration::from_secs(60) {
            break Err("no new primary within 60 s".to_string());
        }
        let mut done = None;
        for (new, other) in [(&keys[1], &keys[2]), (&keys[2], &keys[1])] {
            if writable(new, &app).await && replicates_from(other, new).await {
                done = Some(t0.elapsed());
                break;
            }
        }
        if let Some(d) = done {
            break Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _ = tx.send(());
    let _ = task.await;
    if stop {
        let _ = c.instances[0].resume();
    }
    result
}

/// One graceful takeover: the write outage seen by a client that writes
/// to the old primary, then to the new one once refused.
async fn takeover_run() -> Result<Duration, String> {
    let c = LocalCluster::start_with(Shape::primary_with_replicas(2), |_, o: MysqldOptions| {
        o.with_semi_sync()
    })
    .await
    .map_err(|e| e.to_string())?;
    prepare(&c).await?;
    let keys: Vec<InstanceKey> = c.instances.iter().map(|m| m.key()).collect();
    let admin = admin_credentials();
    let snapshots =
        futures::future::join_all(keys.iter().map(|k| probe(k, &admin, Timeouts::default()))).await;
    let snapshots: Vec<_> = snapshots
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let topo = Topology::build(snapshots, Vec::new());
    let plan = graceful_takeover(&topo, &keys[0], Some(&keys[1]), &TakeoverOptions::default())
        .map_err(|e| e.to_string())?;
    let executor = Executor::new(
        ExecutorConfig {
            admin: admin_credentials(),
            repl: repl_credentials(),
            app: None,
            timeouts: Timeouts::default(),
        },
        Default::default(),
    );
    let (old, new) = (keys[0].clone(), keys[1].clone());
    let client = tokio::spawn(async move {
        let app = app_credentials();
        let mut first_refused: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if first_refused.is_none() {
                if !writable(&old, &app).await {
                    first_refused = Some(Instant::now());
                }
            } else if writable(&new, &app).await {
                return first_refused.map(|t| t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let meta = OperationMeta {
        id: operation_id("bench", plan.kind),
        cluster: "bench".into(),
        trigger: "bench".into(),
    };
    let record = executor.execute(&plan, &meta).await;
    if !record.outcome.succeeded() {
        return Err(format!("takeover failed: {:?}", record.outcome));
    }
    client
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the client never wrote to the new primary".to_string())
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let median = if v.is_empty() {
        Duration::ZERO
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    };
    (median, v.last().copied().unwrap_or_default())
}

pub async fn run(args: BenchArgs) -> u8 {
    if let Some(BenchCommand::Idle(a)) = args.what {
        return super::idle::run(a).await;
    }
    let scenarios = if args.scenario.is_empty() {
        vec![Scenario::Kill, Scenario::Stop, Scenario::Takeover]
    } else {
        args.scenario.clone()
    };
    let mut table = String::from(
        "| scenario | runs | median | worst | all runs (ms) |\n|---|---|---|---|---|\n",
    );
    for s in scenarios {
        let mut times = Vec::new();
        for i in 0..args.runs {
            let r = match s {
                Scenario::Kill => failover_run(false).await,
                Scenario::Stop => failover_run(true).await,
                Scenario::Takeover => takeover_run().await,
            };
            match r {
                Ok(d) => {
                    eprintln!("{s:?} run {}: {} ms", i + 1, d.as_millis());
                    times.push(d);
                }
                Err(e) => {
                    eprintln!("orca-sandbox bench: {s:?} run {}: {e}", i + 1);
                    return EXIT_FAILED;
                }
            }
        }
        let all: Vec<String> = times.iter().map(|d| d.as_millis().to_string()).collect();
        let (median, worst) = stats(times);
        let name = match s {
            Scenario::Kill => {
                "kill -9 of the primary → writable new primary, other replica following"
            }
            Scenario::Stop => {
                "SIGSTOP of the primary → writable new primary, other replica following"
            }
            Scenario::Takeover => {
                "graceful takeover: write outage (first refused → first accepted)"
            }
        };
        table.push_str(&format!(
            "| {name} | {} | {} ms | {} ms | {} |\n",
            all.len(),
            median.as_millis(),
            worst.as_millis(),
            all.join(", ")
        ));
    }
    println!("{table}");
    if let Some(path) = args.write
        && let Err(e) = std::fs::write(&path, &table)
    {
        eprintln!("orca-sandbox bench: cannot write {}: {e}", path.display());
        return EXIT_FAILED;
    }
    EXIT_OK
}
