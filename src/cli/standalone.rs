//! `orca standalone`: discovery, analysis and automatic recovery of one
//! cluster, continuously, outside Kubernetes. Each problem and each
//! recovery step is logged. SIGUSR1 acknowledges the last recovery (so a
//! new failure within the anti-flap period may be recovered); Ctrl-C or
//! SIGTERM stops. With `--store-dsn`, instance snapshots, findings, every
//! operation with its steps and the audit of what was asked are written to
//! the store, behind the decision path (see [`crate::store`]).

use clap::Args;

use super::ops::OpArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::api::model::STANDALONE_NAMESPACE;
use crate::engine::executor::{Executor, ExecutorConfig};
use crate::engine::{ClusterEngine, EngineConfig};
use crate::k8s::crd::parse_duration;
use crate::store::feed::{Feed, local_user};
use crate::store::{Door, Store};

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    pub op: OpArgs,
    /// Only report problems; never recover.
    #[arg(long)]
    pub no_auto_recover: bool,
    /// Time between probe rounds (at least 100ms).
    #[arg(long, default_value = "1s")]
    pub probe_interval: String,
    /// No second automatic recovery within this period unless acknowledged.
    #[arg(long, default_value = "1h")]
    pub anti_flap: String,
    /// Do not write orca's heartbeat row on the primary.
    #[arg(long)]
    pub no_heartbeat: bool,
    #[command(flatten)]
    pub api: super::serve::ApiArgs,
}

/// How long a stopping `orca standalone` waits for the store to take the
/// records still queued.
const FLUSH_AT_STOP: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(args: StandaloneArgs) -> u8 {
    let s = match args.op.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca standalone: {e}");
            return EXIT_USAGE;
        }
    };
    let interval = match parse_duration(&args.probe_interval) {
        Ok(d) if d.as_millis() >= 100 => d,
        Ok(_) => {
            eprintln!("orca standalone: --probe-interval must be at least 100ms");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("orca standalone: --probe-interval: {e}");
            return EXIT_USAGE;
        }
    };
    let anti_flap = match parse_duration(&args.anti_flap) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("orca standalone: --anti-flap: {e}");
            return EXIT_USAGE;
        }
    };
    let cluster = args
        .op
        .cluster
        .clone()
        .unwrap_or_else(|| s.seeds[0].to_string());
    let store_config = match args.op.store.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca standalone: {e}");
            return EXIT_USAGE;
        }
    };
    let mut feed = match store_config {
        None => {
            tracing::info!(cluster = %cluster, "no store (--store-dsn): findings and operations are kept in this log only");
            None
        }
        Some(c) => match Store::open(c).await {
            Ok(store) => Some(Feed::new(store, cluster.clone())),
            // A schema newer than this orca knows: a store that does not
            // answer is no error (its records wait in the queue).
            Err(e) => {
                eprintln!("orca standalone: {e}");
                return EXIT_FAILED;
            }
        },
    };
    let mut config = EngineConfig::new(cluster.clone());
    config.probe_interval = interval;
    config.anti_flap = anti_flap;
    config.auto_recover = !(args.no_auto_recover || args.op.dry_run);
    config.heartbeat = !args.no_heartbeat;
    config.recovery = s.recovery.clone();
    config.max_lag_ms = s.takeover.max_lag_ms;
    let executor = Executor::new(
        ExecutorConfig {
            admin: s.admin.clone(),
            repl: s.repl.clone(),
            app: None,
            timeouts: s.timeouts,
        },
        s.hooks.clone(),
    );
    let mut engine = ClusterEngine::new(config, executor, s.seeds.iter().cloned());
    let metrics = match crate::metrics::Metrics::new() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("orca standalone: metrics: {e}");
            return EXIT_FAILED;
        }
    };
    if let Some(f) = &feed {
        metrics.watch_store(f.store().clone());
    }
    metrics.set_leader(true, None);
    let mut served = match super::serve::start(
        &args.api,
        &cluster,
        feed.as_ref().map(|f| f.store().clone()),
        Some(crate::metrics::request_hook(&metrics)),
        Some(crate::metrics::router(metrics.clone())),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca standalone: {e}");
            return EXIT_USAGE;
        }
    };
    let (mut usr1, mut term) = match (
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            eprintln!("orca standalone: cannot install signal handlers");
            return EXIT_FAILED;
        }
    };
    tracing::info!(cluster = %cluster, auto_recover = engine.config.auto_recover, "orca standalone started");
    let user = local_user();
    if let Some(f) = &feed {
        f.audit(
            "standalone",
            None,
            &user,
            Door::Cli,
            Some(format!("auto_recover={}", engine.config.auto_recover)),
        );
    }
    // Whether the failure now blocked by the anti-flap period was said to
    // wait for an acknowledgement (once per blocked failure).
    let mut told_blocked = false;
    loop {
        let report = engine.round().await;
        if let Some(f) = feed.as_mut() {
            f.round(engine.topology(), &report);
        }
        if let Some(api) = served.as_mut() {
            api.publish(&mut engine);
            metrics.observe_engine(STANDALONE_NAMESPACE, &cluster, &engine, &report);
        }
        if let Some(r) = &report.recovery {
            match serde_json::to_string(r) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    tracing::error!(cluster = %cluster, error = %e, "cannot print the recovery record")
                }
            }
        }
        match engine.blocked_by_anti_flap() {
            Some(why) if report.blocked.is_some() && engine.config.auto_recover => {
                if !told_blocked {
                    let pid = std::process::id();
                    tracing::warn!(
                        cluster = %cluster,
                        "automatic recovery waits for an acknowledgement: {why}; acknowledge the last recovery with SIGUSR1 (kill -USR1 {pid}), or recover by hand (orca recover)"
                    );
                    told_blocked = true;
                }
            }
            _ => told_blocked = false,
        }
        let asked = async {
            match served.as_mut() {
                Some(api) => api.asked.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(engine.next_delay()) => {}
            Some(asked) = asked => {
                if let Some(api) = served.as_mut() {
                    let ran = engine.records.len();
                    api.answer(&mut engine, &s.takeover, feed.as_ref(), asked).await;
                    for r in &engine.records[ran.min(engine.records.len())..] {
                        metrics.observe_operation(STANDALONE_NAMESPACE, &engine.config.cluster, r);
                    }
                }
            }
            _ = usr1.recv() => {
                engine.acknowledge();
                tracing::info!(cluster = %cluster, "last recovery acknowledged");
                if let Some(f) = &feed {
                    // Who sent the signal is not known; whose orca got it is.
                    let by = format!("SIGUSR1 to the orca of {user}");
                    let last = engine.records.last().map(|r| r.id.clone());
                    f.audit("acknowledge", last.clone(), &by, Door::Signal, None);
                    if let Some(id) = last {
                        f.acknowledged(&id, &by, "acknowledged with SIGUSR1");
                    }
                }
            }
            _ = term.recv() => return stop(feed.as_ref(), &cluster, &user, "SIGTERM").await,
            _ = tokio::signal::ctrl_c() => return stop(feed.as_ref(), &cluster, &user, "SIGINT").await,
        }
    }
}

/// Stops: the stop is audited, and the store is given a few seconds to
/// take what is still queued; what it did not take is said.
async fn stop(feed: Option<&Feed>, cluster: &str, user: &str, signal: &str) -> u8 {
    let Some(f) = feed else {
        return EXIT_OK;
    };
    f.audit("stop", None, user, Door::Signal, Some(signal.to_string()));
    let left = f.store().flush(FLUSH_AT_STOP).await;
    if left > 0 {
        tracing::warn!(
            cluster = %cluster,
            queue_depth = left,
            dropped = f.store().dropped(),
            "stopping with records the store did not take: they are lost"
        );
    }
    EXIT_OK
}
