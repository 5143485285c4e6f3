//! The `orca` command line: one file per command group (`discover`,
//! `crds`, `standalone`, `ops` for the one-shot operations, `operator`).
//! Each command returns an exit code a script can rely on: 0 done, 1 the
//! work failed (say, the seed did not answer, or an operation rolled back),
//! 2 bad input, 3 refused (an illegal move, with the reason), 4 vetoed by a
//! hook ([`ops::EXIT_REFUSED`], [`ops::EXIT_VETOED`]).

pub mod agent;
pub mod client;
pub mod crds;
pub mod credentials;
pub mod discover;
pub mod operator;
pub mod ops;
pub mod plugin;
pub mod serve;
pub mod standalone;
pub mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orca",
    version,
    about = "Replication topology management for MySQL and MariaDB"
)]
pub struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `orca=debug`.
    #[arg(long, global = true, env = "ORCA_LOG", default_value = "warn")]
    pub log: String,
    /// Log as JSON lines (one object per event, with its fields).
    #[arg(long, global = true, env = "ORCA_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl a replication topology from one instance and print it.
    Discover(discover::DiscoverArgs),
    /// Print (or write) the CustomResourceDefinitions.
    Crds(crds::CrdsArgs),
    /// Discover, analyse and recover one cluster continuously.
    Standalone(standalone::StandaloneArgs),
    #[command(flatten)]
    Op(ops::Op),
    /// Run the Kubernetes operator.
    Operator(operator::OperatorArgs),
    /// The database pod's agent: its sidecar (`serve`) and its init
    /// container (`init`).
    Agent(agent::AgentArgs),
    /// List the clusters a running orca knows (through its API).
    Clusters(client::ClustersArgs),
    /// Show a cluster's topology as a running orca sees it (through its
    /// API).
    Topology(client::TopologyArgs),
    /// A cluster's operations, or the audit of what was asked, from a
    /// running orca's store (through its API).
    History(client::HistoryArgs),
    /// Acknowledge a cluster's last recovery (through a running orca's
    /// API).
    Acknowledge(client::AcknowledgeArgs),
    /// Begin or end an instance's downtime (through a running orca's API).
    Downtime(client::DowntimeArgs),
}

/// Exit codes (3 and 4 are the operations': [`ops::EXIT_REFUSED`],
/// [`ops::EXIT_VETOED`]).
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    run_async(&cli.log, cli.log_json, async move {
        match cli.command {
            Command::Discover(a) => discover::run(a).await,
            Command::Crds(a) => crds::run(a),
            Command::Standalone(a) => standalone::run(a).await,
            Command::Op(op) => ops::run(op).await,
            Command::Operator(a) => operator::run(a).await,
            Command::Agent(a) => agent::run(a).await,
            Command::Clusters(a) => client::clusters(a).await,
            Command::Topology(a) => client::topology(a).await,
            Command::History(a) => client::history(a).await,
            Command::Acknowledge(a) => client::acknowledge(a).await,
            Command::Downtime(a) => client::downtime(a).await,
        }
    })
}

/// Sets up logging (`filter` in tracing's env-filter syntax, JSON lines
/// when `json`) and runs `command` on a multi-threaded runtime; its exit
/// code becomes the process's.
pub fn run_async(
    filter: &str,
    json: bool,
    command: impl std::future::Future<Output = u8>,
) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal only, not in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orca: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(command))
}
