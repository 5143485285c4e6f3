//! `orca-sandbox` (no subcommand): the sandbox cluster in the foreground —
//! the API server, the StatefulSet controller, the kubelet that runs real
//! `mariadbd`, and the orca operator — with a kubeconfig for `kubectl`,
//! until Ctrl-C or SIGTERM, which stop every process it started.
//! `orca-sandbox fault` injects faults through the API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::apiserver::{ApiServer, write_kubeconfig};
use crate::deployment::DeploymentController;
use crate::kubelet::{FAULT_ANNOTATION, Kubelet, KubeletOptions};
use crate::statefulset::StatefulSetController;
use orca::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address of the API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub addr: SocketAddr,
    /// Directory of the kubeconfig, the saved cluster state and the
    /// kubelet's files (pods, volumes).
    #[arg(long, default_value = ".orca-sandbox")]
    pub dir: PathBuf,
    /// Start from an empty cluster: forget the saved state and volumes.
    #[arg(long)]
    pub fresh: bool,
    /// How long the first restart of a crashed container waits (a real
    /// kubelet restarts at once; a longer wait lets a crash be watched).
    #[arg(long, default_value = "0s")]
    pub restart_delay: String,
    /// Do not run the operator (only the cluster).
    #[arg(long)]
    pub no_operator: bool,
    /// Where the operator serves its HTTP API and /metrics, e.g.
    /// 127.0.0.1:8080 (none by default).
    #[arg(long, value_name = "ADDR")]
    pub operator_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The pod (or the node, for not-ready and ready).
    pub target: String,
    /// crash | hang | resume | not-ready | ready
    pub action: String,
    /// The pod's namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// The sandbox's directory (its kubeconfig is used).
    #[arg(long, default_value = ".orca-sandbox")]
    pub dir: PathBuf,
    /// A kubeconfig to use instead of the sandbox's.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn fault(args: FaultArgs) -> u8 {
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.dir.join("kubeconfig"));
    let client = match orca::k8s::client(Some(&kubeconfig)).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca-sandbox fault: {e}");
            return EXIT_FAILED;
        }
    };
    let patch = Patch::Merge(json!({"metadata": {"annotations": {FAULT_ANNOTATION: args.action}}}));
    let pp = PatchParams::default();
    let result = match args.action.as_str() {
        "crash" | "hang" | "resume" => {
            let pods: Api<Pod> = Api::namespaced(client, &args.namespace);
            pods.patch(&args.target, &pp, &patch)
                .await
                .map(|_| format!("pod {}/{}", args.namespace, args.target))
        }
        "not-ready" | "ready" => {
            let nodes: Api<Node> = Api::all(client);
            nodes
                .patch(&args.target, &pp, &patch)
                .await
                .map(|_| format!("node {}", args.target))
        }
        other => {
            eprintln!(
                "orca-sandbox fault: unknown fault {other:?} (crash, hang, resume for a pod; not-ready, ready for the node)"
            );
            return EXIT_USAGE;
        }
    };
    match result {
        Ok(what) => {
            println!(
                "{what}: {FAULT_ANNOTATION}={} (the kubelet acts on it and records an Event)",
                args.action
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("orca-sandbox fault: {e}");
            EXIT_FAILED
        }
    }
}

/// Creates or updates orca's CustomResourceDefinitions.
async fn install_crds(client: &Client) -> Result<(), kube::Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in orca::k8s::crd::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("orca-sandbox").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    Ok(())
}

pub async fn serve(args: RunArgs) -> u8 {
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("orca-sandbox: creating {}: {e}", args.dir.display());
        return EXIT_FAILED;
    }
    let dir = match std::fs::canonicalize(&args.dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("orca-sandbox: {}: {e}", args.dir.display());
            return EXIT_FAILED;
        }
    };
    let state = dir.join("state.json");
    let kubelet_root = dir.join("kubelet");
    if args.fresh {
        let _ = std::fs::remove_file(&state);
        let _ = std::fs::remove_dir_all(&kubelet_root);
    }
    let server = match ApiServer::start(args.addr, Some(state.clone())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox: {e}");
            return EXIT_FAILED;
        }
    };
    let kubeconfig = dir.join("kubeconfig");
    if let Err(e) = write_kubeconfig(&kubeconfig, &server.url()) {
        eprintln!("orca-sandbox: writing {}: {e}", kubeconfig.display());
        return EXIT_FAILED;
    }
    let client = match orca::k8s::client_as(Some(&kubeconfig), "orca-sandbox").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca-sandbox: {e}");
            return EXIT_FAILED;
        }
    };
    // The operator's own client, so that its requests are told apart.
    let op_client = match orca::k8s::client_as(Some(&kubeconfig), orca::k8s::OPERATOR_AGENT).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca-sandbox: {e}");
            return EXIT_FAILED;
        }
    };
    let first_restart_delay = match orca::k8s::crd::parse_duration(&args.restart_delay) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("orca-sandbox: --restart-delay: {e}");
            return EXIT_USAGE;
        }
    };
    let opts = KubeletOptions {
        root: kubelet_root,
        first_restart_delay,
        api_service: Some(server.https_addr()),
        ..KubeletOptions::default()
    };
    let kubelet = match Kubelet::start(client.clone(), opts).await {
        Ok(k) => k,
        Err(e) => {
            eprintln!("orca-sandbox: starting the kubelet: {e}");
            return EXIT_FAILED;
        }
    };
    let sts = StatefulSetController::start(client.clone());
    let deployments = DeploymentController::start(client.clone());
    let (stop_operator, operator_stopped) = tokio::sync::watch::channel(false);
    let operator = if args.no_operator {
        None
    } else {
        if let Err(e) = install_crds(&client).await {
            eprintln!("orca-sandbox: installing the CRDs: {e}");
            return EXIT_FAILED;
        }
        let op_args = orca::cli::operator::OperatorArgs {
            kubeconfig: None,
            identity: "orca-sandbox".into(),
            lease_namespace: "default".into(),
            operator_namespace: "default".into(),
            lease_name: "orca-operator".into(),
            no_leader_election: false,
            store: Default::default(),
            listen: args.operator_listen,
            api_open_reads: false,
            watch_namespace: None,
            agent_image: None,
        };
        let op_client = op_client.clone();
        Some(tokio::spawn(async move {
            if let Err(e) =
                orca::cli::operator::serve(op_client, &op_args, None, operator_stopped).await
            {
                eprintln!("orca-sandbox: the operator stopped: {e}");
            }
        }))
    };
    println!(
        "orca-sandbox is up: API server {}, node {}{}",
        server.url(),
        kubelet.node_name(),
        if args.no_operator {
            ""
        } else {
            ", the orca operator"
        }
    );
    println!(
        "state in {} (start with --fresh to forget it)",
        dir.display()
    );
    println!();
    println!("from another shell:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get pods -A -o wide");
    if !args.no_operator {
        println!("  kubectl apply -f examples/mysqlcluster-minimal.yaml");
        println!("  kubectl get mysql -o wide");
    }
    println!(
        "  orca-sandbox fault POD crash|hang|resume [-n NAMESPACE] --dir {}",
        dir.display()
    );
    println!(
        "  orca-sandbox fault {} not-ready|ready --dir {}",
        kubelet.node_name(),
        dir.display()
    );
    println!();
    println!("Ctrl-C stops the sandbox and every mariadbd it started.");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox: cannot handle SIGTERM: {e}");
            return EXIT_FAILED;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping the sandbox");
    let _ = stop_operator.send(true);
    if let Some(op) = operator {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), op).await;
    }
    sts.shutdown().await;
    deployments.shutdown().await;
    kubelet.shutdown().await;
    if let Err(e) = server.shutdown() {
        eprintln!("orca-sandbox: {e}");
        return EXIT_FAILED;
    }
    EXIT_OK
}
