//! `orca operator`: runs the MySQLCluster controller against a cluster
//! (in-cluster configuration, `KUBECONFIG`, or `--kubeconfig`).

use std::path::PathBuf;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{EXIT_FAILED, EXIT_OK};
use crate::k8s::operator::{Context, run as run_controller};

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// A kubeconfig file (default: in-cluster, or KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This replica's name in Events and leader election.
    #[arg(long, env = "POD_NAME", default_value = "orca-operator")]
    pub identity: String,
}

pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| e.to_string())?,
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

pub async fn run(args: OperatorArgs) -> u8 {
    let client = match client(args.kubeconfig.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca operator: cannot reach the cluster: {e}");
            return EXIT_FAILED;
        }
    };
    let ctx = Context::new(client, &args.identity, None);
    tracing::info!(identity = %args.identity, "orca operator started");
    run_controller(ctx, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await;
    EXIT_OK
}
