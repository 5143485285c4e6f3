//! Credentials from flags, the environment or a file. The password is
//! never echoed; a flag for it is deliberately absent (it would show in
//! `ps`).

use std::path::PathBuf;

use clap::Args;

use crate::mysql::Credentials;

#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    /// MySQL user orca connects as.
    #[arg(long, env = "ORCA_USER", default_value = "orca")]
    pub user: String,
    /// File holding the password (first line; trailing newline ignored).
    /// Otherwise the ORCA_PASSWORD environment variable is read.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl CredentialArgs {
    pub fn resolve(&self) -> Result<Credentials, String> {
        let password = match &self.password_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => std::env::var("ORCA_PASSWORD").unwrap_or_default(),
        };
        Ok(Credentials::new(self.user.clone(), password))
    }
}
