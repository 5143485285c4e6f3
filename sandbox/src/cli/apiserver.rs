//! `orca-sandbox apiserver`: the sandbox API server alone, in the
//! foreground, for poking at it with `kubectl`, until Ctrl-C:
//!
//! ```text
//! orca-sandbox apiserver --addr 127.0.0.1:6443 --kubeconfig .orca-sandbox/kubeconfig
//! kubectl --kubeconfig .orca-sandbox/kubeconfig get ns
//! ```
//!
//! `--log orca_sandbox::apiserver=debug` logs every request.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use orca::cli::{EXIT_FAILED, EXIT_OK};

use crate::apiserver::{ApiServer, write_kubeconfig};

#[derive(Debug, Args)]
pub struct ApiServerArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Where to write the kubeconfig for `kubectl`.
    #[arg(long, default_value = ".orca-sandbox/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// A file to load the stored objects from and save them to at exit.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
}

pub async fn run(args: ApiServerArgs) -> u8 {
    let server = match ApiServer::start(args.addr, args.snapshot) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox apiserver: {e}");
            return EXIT_FAILED;
        }
    };
    if let Err(e) = write_kubeconfig(&args.kubeconfig, &server.url()) {
        eprintln!(
            "orca-sandbox apiserver: writing {}: {e}",
            args.kubeconfig.display()
        );
        return EXIT_FAILED;
    }
    println!("API server on {}", server.url());
    println!("kubectl --kubeconfig {} get ns", args.kubeconfig.display());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("orca-sandbox apiserver: {e}");
    }
    match server.shutdown() {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("orca-sandbox apiserver: {e}");
            EXIT_FAILED
        }
    }
}
