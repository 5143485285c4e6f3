//! `orca-sandbox bench`: measures failover and switchover on local mariadbd
//! topologies (one primary, two semi-sync replicas, default engine
//! settings), repeating each run on a fresh topology and printing the
//! median and the worst; the store: the records per second its writer
//! sustains, and the kill -9 failover with the store down; and
//! `orca-sandbox bench idle`: what idle clusters cost the API server
//! ([`super::idle`]); `orca-sandbox bench copy`: a physical copy under
//! writes ([`super::copybench`]); `orca-sandbox bench probe`: thousands of
//! simulated instances watched ([`super::probebench`]). Not a test: the
//! figures go to `docs/benchmarks.md`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use mysql_async::prelude::Queryable;

use crate::mysqld::{admin_credentials, app_credentials, repl_credentials};
use crate::{LocalCluster, Mysqld, MysqldOptions, Shape};
use orca::cli::{EXIT_FAILED, EXIT_OK};
use orca::engine::executor::{
    Executor, ExecutorConfig, OperationMeta, OperationRecord, Outcome, StepOutcome, StepRecord,
    operation_id,
};
use orca::engine::{ClusterEngine, EngineConfig};
use orca::mysql::conn::{Timeouts, query_rows};
use orca::mysql::parse;
use orca::mysql::probe::probe;
use orca::mysql::{Credentials, connect};
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::plan::{PlanKind, Step};
use orca::store::feed::Feed;
use orca::store::record::{AuditRow, Door, Record, RecoveryRow};
use orca::store::{Store, StoreConfig};
use orca::topology::InstanceKey;
use orca::topology::graph::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGKILL of the primary until a writable new primary with the other
    /// replica replicating from it.
    Kill,
    /// SIGSTOP (a hung primary), measured the same way.
    Stop,
    /// SIGSTOP with asynchronous replicas (no semi-sync): without the
    /// second a semi-sync replica's IO thread takes to stop.
    StopAsync,
    /// Graceful takeover: first write refused on the old primary to first
    /// write accepted on the new one.
    Takeover,
    /// kill -9 as `kill`, with the engine writing to a store that was
    /// killed (kill -9) just before the primary.
    KillStoreDown,
    /// Records per second the store's writer sustains (audit records).
    StoreAudit,
    /// Records per second the store's writer sustains (recoveries of 15
    /// steps each).
    StoreRecoveries,
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
    /// Records per run of `store-audit` (a tenth of it for
    /// `store-recoveries`).
    #[arg(long, default_value_t = 20_000)]
    pub store_records: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The API requests of idle Healthy clusters in the sandbox.
    Idle(super::idle::IdleArgs),
    /// A replica re-provisioned by the agent's physical copy while the
    /// primary takes writes.
    Copy(super::copybench::CopyArgs),
    /// Thousands of simulated instances watched by one process: probe
    /// rounds, CPU, memory, probe latency, and a real dead primary's
    /// recovery while they are watched.
    Probe(super::probebench::ProbeArgs),
    /// Failover as an application sees it through the primary Service:
    /// a crashed or hung primary's pod, writes following the Endpoints.
    Service(super::servicebench::ServiceArgs),
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

/// Whether `replica` replicates from `source` through any of its
/// connections: while a semi-sync replica's IO thread stops against a
/// hung source, orca has it follow the new primary through a second,
/// named connection (`SHOW ALL SLAVES STATUS` lists both).
async fn replicates_from(replica: &InstanceKey, source: &InstanceKey) -> bool {
    let t = Timeouts {
        connect: Duration::from_millis(200),
        query: Duration::from_millis(500),
    };
    let Ok(mut conn) = connect(replica, &admin_credentials(), t).await else {
        return false;
    };
    let rows = query_rows(
        &mut conn,
        replica,
        t.query,
        "reading replication",
        "SHOW ALL SLAVES STATUS",
    )
    .await;
    let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
    rows.ok()
        .and_then(|rows| parse::replica_connections(&rows).ok())
        .is_some_and(|conns| {
            conns
                .iter()
                .any(|(_, r)| &r.source == source && r.is_replicating())
        })
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
/// With `store_down`, the engine's rounds feed a store whose server is
/// killed (kill -9) right before the primary.
pub(crate) async fn failover_run(stop: bool, store_down: bool) -> Result<Duration, String> {
    failover_run_with(stop, store_down, true).await
}

/// [`failover_run`], with semi-sync replicas or asynchronous ones.
async fn failover_run_with(
    stop: bool,
    store_down: bool,
    semi_sync: bool,
) -> Result<Duration, String> {
    let shape = Shape::primary_with_replicas(2);
    let mut c = LocalCluster::start_with(
        shape,
        |_, o: MysqldOptions| {
            if semi_sync { o.with_semi_sync() } else { o }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    prepare(&c).await?;
    let mut store_server = None;
    let mut feed = None;
    if store_down {
        let (server, store) = start_store("orca_bench").await?;
        store_server = Some(server);
        feed = Some(Feed::new(store, "bench"));
    }
    let mut engine = engine_for(&c);
    engine.round().await;
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            let report = engine.round().await;
            if let Some(f) = feed.as_mut() {
                f.round(engine.topology(), &report);
            }
            tokio::select! {
                _ = &mut rx => return feed,
                _ = tokio::time::sleep(engine.next_delay()) => {}
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let keys: Vec<InstanceKey> = c.instances.iter().map(|m| m.key()).collect();
    if let Some(s) = store_server.as_mut() {
        s.kill().map_err(|e| e.to_string())?;
    }
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
    let feed = task.await.map_err(|e| e.to_string())?;
    if stop {
        let _ = c.instances[0].resume();
    }
    if let Some(f) = feed {
        eprintln!(
            "  store down: {} records waiting, {} failed writes",
            f.store().queue_depth(),
            f.store().write_failures()
        );
    }
    result
}

/// A store: its own mariadbd, and orca's handle on database `db` there.
async fn start_store(db: &str) -> Result<(Mysqld, Store), String> {
    let server = Mysqld::start(MysqldOptions::new(900))
        .await
        .map_err(|e| e.to_string())?;
    let admin = admin_credentials();
    let dsn = format!("mysql://{}@{}/{db}", admin.user, server.key());
    let mut config = StoreConfig::new(
        orca::store::Dsn::parse(&dsn).map_err(|e| e.to_string())?,
        admin.password(),
    );
    config.queue_capacity = 1_000_000;
    let store = Store::open(config).await.map_err(|e| e.to_string())?;
    Ok((server, store))
}

/// A recovery of 15 steps, as a dead primary's recovery records it.
fn recovery(n: usize) -> OperationRecord {
    let on = InstanceKey::new("10.0.0.2", 3306);
    OperationRecord {
        id: format!("bench-recover-{n}"),
        cluster: "bench".into(),
        kind: PlanKind::RecoverDeadPrimary,
        trigger: "DeadPrimary".into(),
        failed: Some(InstanceKey::new("10.0.0.1", 3306)),
        successor: Some(on.clone()),
        lost_replicas: Vec::new(),
        lost_transactions: None,
        notes: vec!["candidate chosen among 2".into()],
        started_at: 1_700_000_000 + n as u64,
        duration_ms: 80,
        steps: (0..15)
            .map(|index| {
                let step = Step::StopReplicaIo { on: on.clone() };
                StepRecord {
                    index,
                    description: step.to_string(),
                    step,
                    started_ms: index as u64 * 5,
                    duration_ms: 3,
                    outcome: StepOutcome::Done,
                }
            })
            .collect(),
        rollback: Vec::new(),
        hook_errors: Vec::new(),
        outcome: Outcome::Succeeded,
    }
}

/// Enqueues `n` records at once and waits until the writer has written
/// them: returns the time it took.
async fn store_run(recoveries: bool, n: usize) -> Result<Duration, String> {
    let (_server, store) = start_store("orca_bench").await?;
    let records: Vec<Record> = (0..n)
        .map(|i| {
            if recoveries {
                Record::Recovery(Box::new(RecoveryRow::of(&recovery(i), None)))
            } else {
                Record::Audit(AuditRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    at_ms: 1_700_000_000_000 + i as i64,
                    cluster: "bench".into(),
                    action: "graceful-takeover".into(),
                    target: Some("10.0.0.2:3306".into()),
                    requested_by: "bench".into(),
                    door: Door::Cli,
                    detail: None,
                })
            }
        })
        .collect();
    let t0 = Instant::now();
    for r in records {
        if !store.enqueue(r) {
            return Err("the queue refused a record".into());
        }
    }
    let left = store.flush(Duration::from_secs(600)).await;
    if left > 0 || store.write_failures() > 0 {
        return Err(format!(
            "{left} records not written, {} failed writes",
            store.write_failures()
        ));
    }
    Ok(t0.elapsed())
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

/// A table row of records per second: `per_run` records in each of `times`.
fn rate_row(s: Scenario, per_run: usize, times: Vec<Duration>) -> String {
    let rates: Vec<u64> = times
        .iter()
        .map(|d| (per_run as f64 / d.as_secs_f64().max(1e-9)) as u64)
        .collect();
    let mut sorted = rates.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let worst = sorted.first().copied().unwrap_or(0);
    let what = match s {
        Scenario::StoreRecoveries => "recoveries of 15 steps",
        _ => "audit records",
    };
    let all: Vec<String> = rates.iter().map(|r| format!("{r}/s")).collect();
    format!(
        "| store writer: {per_run} {what} queued at once, written (records/s) | {} | {median}/s | {worst}/s | {} |\n",
        rates.len(),
        all.join(", ")
    )
}

/// The median and the worst of `v` (zero when empty).
pub(crate) fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
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
    match args.what {
        Some(BenchCommand::Idle(a)) => return super::idle::run(a).await,
        Some(BenchCommand::Copy(a)) => return super::copybench::run(a).await,
        Some(BenchCommand::Probe(a)) => return super::probebench::run(a).await,
        Some(BenchCommand::Service(a)) => return super::servicebench::run(a).await,
        None => {}
    }
    let scenarios = if args.scenario.is_empty() {
        vec![
            Scenario::Kill,
            Scenario::Stop,
            Scenario::StopAsync,
            Scenario::Takeover,
        ]
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
                Scenario::Kill => failover_run(false, false).await,
                Scenario::Stop => failover_run(true, false).await,
                Scenario::StopAsync => failover_run_with(true, false, false).await,
                Scenario::KillStoreDown => failover_run(false, true).await,
                Scenario::Takeover => takeover_run().await,
                Scenario::StoreAudit => store_run(false, args.store_records).await,
                Scenario::StoreRecoveries => store_run(true, args.store_records / 10).await,
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
        if let Some(per_run) = match s {
            Scenario::StoreAudit => Some(args.store_records),
            Scenario::StoreRecoveries => Some(args.store_records / 10),
            _ => None,
        } {
            table.push_str(&rate_row(s, per_run, times));
            continue;
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
            Scenario::StopAsync => {
                "SIGSTOP of the primary, asynchronous replicas → writable new primary, other replica following"
            }
            Scenario::Takeover => {
                "graceful takeover: write outage (first refused → first accepted)"
            }
            Scenario::KillStoreDown => {
                "kill -9 of the primary, the store killed just before → writable new primary, other replica following"
            }
            // Rates, reported above.
            Scenario::StoreAudit | Scenario::StoreRecoveries => continue,
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
