//! The `orca-sandbox` command line: the sandbox cluster (no subcommand),
//! and the bench's tools: fault injection, a bare local topology, the
//! failover benchmarks and the API server alone. Exit codes as `orca`'s:
//! 0 done, 1 the work failed, 2 bad input.

pub mod apiserver;
pub mod bench;
pub mod cluster;
pub mod copybench;
pub mod idle;
pub mod local;
pub mod probebench;
pub mod servicebench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orca-sandbox",
    version,
    about = "orca's test bench: a local Kubernetes cluster of real mariadbd pods running the orca operator, and the tools around it",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or
    /// `orca=debug,orca_sandbox=debug`.
    #[arg(long, global = true, env = "ORCA_LOG", default_value = "warn")]
    pub log: String,
    /// Log as JSON lines (one object per event, with its fields).
    #[arg(long, global = true, env = "ORCA_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: run the sandbox cluster in the foreground.
    #[command(flatten)]
    pub run: cluster::RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inject a fault: `crash`, `hang` or `resume` a pod's containers, or
    /// make the node `not-ready` or `ready` again.
    Fault(cluster::FaultArgs),
    /// Run a local replication topology of real mariadbd servers.
    Local(local::LocalArgs),
    /// Measure failover and switchover times on local servers.
    Bench(bench::BenchArgs),
    /// Run the sandbox API server alone.
    Apiserver(apiserver::ApiServerArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    orca::cli::run_async(&cli.log, cli.log_json, async move {
        match cli.command {
            None => cluster::serve(cli.run).await,
            Some(Command::Fault(a)) => cluster::fault(a).await,
            Some(Command::Local(a)) => local::run(a).await,
            Some(Command::Bench(a)) => bench::run(a).await,
            Some(Command::Apiserver(a)) => apiserver::run(a).await,
        }
    })
}
