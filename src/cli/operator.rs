//! `orca operator`: runs the MySQLCluster controller against a cluster
//! (in-cluster configuration, `KUBECONFIG`, or `--kubeconfig`). Several
//! replicas may run: one leads, by a Lease whose transitions count the
//! fencing epoch, and only the leader of the current epoch acts. With
//! `--store-dsn`, every cluster's snapshots, findings, operations (in the
//! leader's epoch) and the audit of what annotations ask go to the store
//! too (see [`crate::store`]); its password comes from a file (a mounted
//! Secret) or the environment, never a flag.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Args;
use kube::Client;
use tokio::sync::watch;

use super::store::StoreArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::api::{ApiState, LeaderView};
use crate::ha::{LeaderElector, Leadership, LeaseConfig};
use crate::k8s::api::{KubeAuthorizer, OperatorOps, Published, follow_status};
use crate::k8s::operator::{Context, run as run_controller};
use crate::k8s::{OPERATOR_AGENT, client_as};
use crate::metrics::Metrics;
use crate::store::Store;

/// How long a stopping operator waits for the store to take the records
/// still queued.
const FLUSH_AT_STOP: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// A kubeconfig file (default: in-cluster, or KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This replica's name in Events and leader election.
    #[arg(long, env = "POD_NAME", default_value = "orca-operator")]
    pub identity: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// The namespace the operator runs in: with the agent, each cluster's
    /// NetworkPolicy admits it (and the cluster's own) to the agent's
    /// port.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub operator_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "orca-operator")]
    pub lease_name: String,
    /// Act without leader election (a single replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Serve the HTTP API (and /metrics) on this address, e.g.
    /// 0.0.0.0:8080. Callers' tokens are checked with a TokenReview and
    /// their rights on mysqlclusters with a SubjectAccessReview.
    #[arg(long, env = "ORCA_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Answer reads without a token.
    #[arg(long, env = "ORCA_API_OPEN_READS")]
    pub api_open_reads: bool,
    /// Manage the MySQLClusters of this namespace only (default: every
    /// namespace), so that a namespaced Role is enough.
    #[arg(long, env = "ORCA_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// The orca image every database pod runs the orca agent from (its
    /// init container and sidecar; the chart sets the operator's own).
    /// Without it the pods carry no agent, and a replica that cannot
    /// rejoin is reported, not repaired.
    #[arg(long, env = "ORCA_AGENT_IMAGE", value_name = "IMAGE")]
    pub agent_image: Option<String>,
}

/// Resolves when Ctrl-C or SIGTERM arrives.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Serves the HTTP API on `args.listen` (nothing without it): the views
/// workers publish and, on a follower, those of the clusters' status.
async fn start_api(
    client: &Client,
    args: &OperatorArgs,
    store: Option<Store>,
    leader: watch::Receiver<LeaderView>,
) -> Result<Option<(Published, Metrics)>, String> {
    let Some(addr) = args.listen else {
        return Ok(None);
    };
    let listener = crate::api::bind(addr).await?;
    let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    if let Some(s) = &store {
        metrics.watch_store(s.clone());
    }
    // The leader gauges follow the leadership.
    let mut told = leader.clone();
    let m = metrics.clone();
    tokio::spawn(async move {
        loop {
            let l = told.borrow_and_update().clone();
            m.set_leader(l.is_leader, l.epoch);
            if told.changed().await.is_err() {
                return;
            }
        }
    });
    let published = Published::default();
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(follow_status(
        client.clone(),
        published.clone(),
        leader.clone(),
        ready.clone(),
        args.watch_namespace.clone(),
    ));
    let state = ApiState {
        model: published.model.clone(),
        store,
        operations: Arc::new(OperatorOps {
            client: client.clone(),
            published: published.clone(),
            leader: leader.clone(),
        }),
        auth: Arc::new(KubeAuthorizer {
            client: client.clone(),
            open_reads: args.api_open_reads,
        }),
        leader,
        ready,
        on_request: Some(crate::metrics::request_hook(&metrics)),
    };
    let router = crate::api::router(state).merge(crate::metrics::router(metrics.clone()));
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = crate::api::serve(listener, router, std::future::pending()).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
    tracing::info!(address = %bound, "API listening");
    Ok(Some((published, metrics)))
}

/// This replica's leadership as the API tells it.
fn leader_view(identity: &str, l: &Leadership) -> LeaderView {
    match l {
        Leadership::Leader { epoch, .. } => LeaderView {
            leader: Some(identity.to_string()),
            identity: identity.to_string(),
            is_leader: true,
            epoch: Some(*epoch),
            leader_url: None,
        },
        Leadership::Follower { holder } => LeaderView {
            leader: holder.clone(),
            identity: identity.to_string(),
            is_leader: false,
            epoch: None,
            leader_url: None,
        },
    }
}

/// Runs the operator until `stop` turns true.
pub async fn serve(
    client: Client,
    args: &OperatorArgs,
    store: Option<Store>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let (leader_tx, leader_rx) = watch::channel(leader_view(
        &args.identity,
        &Leadership::Follower { holder: None },
    ));
    let published = start_api(&client, args, store.clone(), leader_rx).await?;
    let with_api = |ctx: Arc<Context>| {
        if let Some(ns) = &args.watch_namespace {
            let _ = ctx.scope.set(ns.clone());
        }
        let _ = ctx.namespace.set(args.operator_namespace.clone());
        if let Some(image) = &args.agent_image {
            let _ = ctx.agent.set(crate::k8s::objects::AgentSpec {
                image: image.clone(),
            });
        }
        if let Some((p, m)) = &published {
            let _ = ctx.published.set(p.clone());
            let _ = ctx.metrics.set(m.clone());
        }
        ctx
    };
    if args.no_leader_election {
        // The only replica: it leads, without an epoch.
        leader_tx.send_replace(LeaderView {
            leader: Some(args.identity.clone()),
            identity: args.identity.clone(),
            is_leader: true,
            epoch: None,
            leader_url: None,
        });
        let ctx = with_api(Context::with_fence(
            client,
            &args.identity,
            None,
            None,
            store,
        ));
        run_controller(ctx, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
        return Ok(());
    }
    let elector = LeaderElector::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &args.identity,
        LeaseConfig::default(),
    )
    .map_err(|e| e.to_string())?
    .spawn();
    let mut leadership = elector.subscribe();
    let mut told = elector.subscribe();
    let identity = args.identity.clone();
    tokio::spawn(async move {
        loop {
            let view = leader_view(&identity, &told.borrow_and_update());
            leader_tx.send_replace(view);
            if told.changed().await.is_err() {
                return;
            }
        }
    });
    loop {
        let epoch = tokio::select! {
            r = leadership.wait_for(|l| matches!(l, Leadership::Leader { .. })) => match r {
                Ok(l) => match &*l {
                    Leadership::Leader { epoch, .. } => *epoch,
                    Leadership::Follower { .. } => continue,
                },
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        tracing::info!(identity = %args.identity, epoch, "leading");
        let ctx = with_api(Context::with_fence(
            client.clone(),
            &args.identity,
            Some(epoch),
            Some(elector.fence()),
            store.clone(),
        ));
        let mut lost = elector.subscribe();
        let mut stop2 = stop.clone();
        run_controller(ctx, async move {
            tokio::select! {
                _ = lost.wait_for(|l| !matches!(l, Leadership::Leader { .. })) => {}
                _ = stop2.wait_for(|s| *s) => {}
            }
        })
        .await;
        if *stop.borrow() {
            break;
        }
        tracing::warn!(identity = %args.identity, epoch, "leadership lost: stopped acting");
    }
    elector.shutdown().await.map_err(|e| e.to_string())
}

pub async fn run(args: OperatorArgs) -> u8 {
    let store = match args.store.config() {
        Ok(None) => {
            tracing::info!(
                "no store (--store-dsn): findings and operations are kept in this log and in status only"
            );
            None
        }
        Ok(Some(c)) => match Store::open(c).await {
            Ok(s) => Some(s),
            // A schema newer than this orca knows; a store that does not
            // answer is no error (its records wait in the queue).
            Err(e) => {
                eprintln!("orca operator: {e}");
                return EXIT_FAILED;
            }
        },
        Err(e) => {
            eprintln!("orca operator: {e}");
            return EXIT_USAGE;
        }
    };
    let client = match client_as(args.kubeconfig.as_ref(), OPERATOR_AGENT).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca operator: cannot reach the cluster: {e}");
            return EXIT_FAILED;
        }
    };
    tracing::info!(identity = %args.identity, "orca operator started");
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        terminated().await;
        let _ = tx.send(true);
    });
    let served = serve(client, &args, store.clone(), rx).await;
    if let Some(s) = &store {
        let left = s.flush(FLUSH_AT_STOP).await;
        if left > 0 {
            tracing::warn!(
                left,
                dropped = s.dropped(),
                "stopping with records the store did not take: they are lost"
            );
        }
    }
    match served {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("orca operator: {e}");
            EXIT_FAILED
        }
    }
}
