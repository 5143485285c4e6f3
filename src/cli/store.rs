//! The store's command-line settings, shared by the commands that write
//! there (`orca standalone`, `orca operator`, the one-shot operations).
//! The password is read from a file or the environment, never from a
//! flag; a DSN with a password is refused.

use std::path::PathBuf;

use clap::Args;

use crate::k8s::crd::parse_duration;
use crate::store::StoreConfig;

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The MySQL/MariaDB database orca keeps its records in:
    /// mysql://USER@HOST[:PORT]/DATABASE (no password here). Without it,
    /// nothing is kept beyond the log.
    #[arg(long, env = "ORCA_STORE_DSN", value_name = "DSN")]
    pub store_dsn: Option<String>,
    /// File holding the store's password (first line), such as a mounted
    /// Kubernetes Secret; otherwise the ORCA_STORE_PASSWORD environment
    /// variable is read.
    #[arg(long, env = "ORCA_STORE_PASSWORD_FILE", value_name = "FILE")]
    pub store_password_file: Option<PathBuf>,
    /// Records waiting for the store, at most (the newest are dropped
    /// beyond, and counted).
    #[arg(long, default_value_t = StoreConfig::DEFAULT_QUEUE)]
    pub store_queue: usize,
    /// An instance's snapshot is written when it changes, otherwise at most
    /// this often.
    #[arg(long, default_value = "30s")]
    pub store_snapshot_interval: String,
}

impl Default for StoreArgs {
    /// No store, the rest at the flags' defaults.
    fn default() -> StoreArgs {
        StoreArgs {
            store_dsn: None,
            store_password_file: None,
            store_queue: StoreConfig::DEFAULT_QUEUE,
            store_snapshot_interval: "30s".into(),
        }
    }
}

impl StoreArgs {
    /// The store's configuration, `None` without `--store-dsn`.
    pub fn config(&self) -> Result<Option<StoreConfig>, String> {
        let Some(dsn) = &self.store_dsn else {
            return Ok(None);
        };
        let mut c = StoreConfig::from_parts(dsn, self.store_password_file.as_deref())
            .map_err(|e| e.to_string())?;
        if self.store_queue == 0 {
            return Err("--store-queue must be at least 1".into());
        }
        c.queue_capacity = self.store_queue;
        c.snapshot_interval = parse_duration(&self.store_snapshot_interval)
            .map_err(|e| format!("--store-snapshot-interval: {e}"))?;
        Ok(Some(c))
    }
}
