//! `orca agent serve` (the database pod's sidecar) and `orca agent init`
//! (its init container): see [`crate::agent`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::agent::{self, PORT, TOKEN_ENV};

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serve the pod's state and the local server's backup stream.
    Serve(ServeArgs),
    /// Before mysqld starts: carry out an armed re-provisioning (copy,
    /// prepare, swap in), else exit at once.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// The data directory (the data volume's mount).
    #[arg(long, default_value = "/var/lib/mysql")]
    pub datadir: PathBuf,
    /// Where to listen; default the pod's address (`POD_IP`), port 3309.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// `mariadb-backup`.
    #[arg(long, default_value = "mariadb-backup")]
    pub backup_tool: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The local server's port.
    #[arg(long, default_value_t = 3306)]
    pub mysql_port: u16,
    /// The account the backups are taken as (its password in
    /// `MARIADB_ROOT_PASSWORD`).
    #[arg(long, default_value = "root")]
    pub mysql_user: String,
    /// `mariadb-binlog`, which saves a diverged server's tail.
    #[arg(long, default_value = "mariadb-binlog")]
    pub binlog_tool: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub common: Common,
    /// `mbstream`.
    #[arg(long, default_value = "mbstream")]
    pub mbstream: PathBuf,
    /// How long the stream may stall before the source is given up.
    #[arg(long, default_value = "30s", value_parser = humantime_secs)]
    pub stall: Duration,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    n.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a number of seconds (such as 30s)"))
}

fn pod_ip() -> Option<std::net::IpAddr> {
    std::env::var("POD_IP").ok().and_then(|v| v.parse().ok())
}

fn listen(c: &Common) -> SocketAddr {
    c.listen.unwrap_or_else(|| {
        SocketAddr::new(
            pod_ip().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            PORT,
        )
    })
}

fn token() -> Result<String, String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!(
                "{TOKEN_ENV} is not set: the agent takes no request without the cluster's token"
            )
        })
}

pub async fn run(a: AgentArgs) -> u8 {
    let r = match a.command {
        AgentCommand::Serve(s) => serve(s).await,
        AgentCommand::Init(i) => init(i).await,
    };
    match r {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            eprintln!("orca agent: {e}");
            tracing::error!("{e}");
            super::EXIT_FAILED
        }
    }
}

async fn serve(s: ServeArgs) -> Result<(), String> {
    let token = token()?;
    let password = std::env::var("MARIADB_ROOT_PASSWORD")
        .or_else(|_| std::env::var("MYSQL_ROOT_PASSWORD"))
        .map_err(|_| {
            "MARIADB_ROOT_PASSWORD is not set: the agent cannot read the local server".to_string()
        })?;
    let host = pod_ip()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    agent::serve::run(agent::serve::ServeConfig {
        listen: listen(&s.common),
        datadir: s.common.datadir,
        token,
        server: agent::serve::LocalServer {
            host,
            port: s.mysql_port,
            user: s.mysql_user,
            password,
        },
        backup_tool: s.common.backup_tool,
        binlog_tool: s.binlog_tool,
    })
    .await
    .map_err(|e| e.to_string())
}

async fn init(i: InitArgs) -> Result<(), String> {
    let token = token()?;
    agent::init::run(agent::init::InitConfig {
        listen: listen(&i.common),
        datadir: i.common.datadir,
        token,
        backup_tool: i.common.backup_tool,
        mbstream: i.mbstream,
        stall: i.stall,
    })
    .await
    .map_err(|e| e.to_string())
}
