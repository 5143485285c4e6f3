//! Runs the sandbox API server alone, in the foreground, for poking at it
//! with `kubectl`:
//!
//! ```text
//! cargo run --example sandbox_apiserver -- [ADDR] [KUBECONFIG] [SNAPSHOT]
//! kubectl --kubeconfig .orca-sandbox/kubeconfig get ns
//! ```
//!
//! `RUST_LOG=orca::sandbox::apiserver=debug` logs every request.

use std::path::PathBuf;

use orca::sandbox::apiserver::{ApiServer, write_kubeconfig};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let kubeconfig = PathBuf::from(
        args.next()
            .unwrap_or_else(|| ".orca-sandbox/kubeconfig".into()),
    );
    let snapshot = args.next().map(PathBuf::from);
    let server = ApiServer::start(addr, snapshot)?;
    write_kubeconfig(&kubeconfig, &server.url())?;
    println!("API server on {}", server.url());
    println!("kubectl --kubeconfig {} get ns", kubeconfig.display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())?;
    server.shutdown()?;
    Ok(())
}
