//! The orca agent: the `orca` binary in `agent` mode, in every database
//! pod, doing what only a process in the pod can.
//!
//! - `orca agent serve`, a sidecar beside `mysqld`: its state, the
//!   physical backup of the local server as a stream
//!   (`mariadb-backup --backup --stream=mbstream`) for a replica being
//!   re-provisioned, and the arming of its own re-provisioning.
//! - `orca agent init`, the pod's init container, before `mysqld` starts:
//!   when armed, it fills the data directory from another pod's backup
//!   stream (`mbstream -x`, then `mariadb-backup --prepare`) into a
//!   staging directory, and swaps it in only once the copy is whole and
//!   prepared: `mysqld` never starts on a half-copied directory.
//!
//! Every request carries the cluster's agent token (the `agent-token` key
//! of the credentials Secret) as a bearer token; every call has a
//! timeout. What the agent keeps lives in the data directory, in files
//! whose names begin with `.orca-` (files, not directories, which the
//! server would take for databases), so that they share the volume's
//! fate: the arming ([`MARKER`]), the last copy's progress ([`PROGRESS`])
//! and its result ([`PROVISIONED`]).

pub mod client;
pub mod copy;
pub mod init;
pub mod serve;
pub mod tail;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The agent's port (`agent` in the pod's ports).
pub const PORT: u16 = 3309;
/// The request header of the agent token.
pub const TOKEN_ENV: &str = "ORCA_AGENT_TOKEN";
/// The arming of a re-provisioning: the init container copies when it
/// finds this file.
pub const MARKER: &str = ".orca-provision.json";
/// The progress of the copy under way or the last one.
pub const PROGRESS: &str = ".orca-copy.json";
/// The result of the last copy, until the operator has joined the
/// replica from its position.
pub const PROVISIONED: &str = ".orca-provisioned.json";
/// Where a copy is received and prepared before it is swapped in.
pub const STAGING: &str = ".orca-incoming";
/// Where the data directory's previous content goes during the swap.
pub const OLD: &str = ".orca-previous";
/// How long an arming waits for the pod to restart before it lapses:
/// a marker the operator left behind (it was deposed before it deleted
/// the pod) must not wipe the replica at some later restart.
pub const ARMING_LIFETIME: Duration = Duration::from_secs(600);
/// The response header with the source's estimate of the stream's size.
pub const SIZE_HEADER: &str = "x-orca-estimated-bytes";

/// A re-provisioning asked for: from where (in order: the next is tried
/// when one fails) and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arming {
    /// The operation's id, in the operator's records.
    pub id: String,
    /// `host:port` of the agents to copy from, best first.
    pub sources: Vec<String>,
    /// Seconds since the epoch after which an arming not yet begun
    /// lapses.
    pub expires_at: u64,
    /// The copy's time limit, all attempts together.
    pub timeout_seconds: u64,
    /// Set by the init container when it begins: a begun copy does not
    /// lapse (the directory may be half swapped), it is finished.
    #[serde(default)]
    pub begun_at: Option<u64>,
}

impl Arming {
    /// Whether the arming is still to be carried out at `now`.
    pub fn live(&self, now: u64) -> bool {
        self.begun_at.is_some() || now <= self.expires_at
    }
}

/// Where a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CopyPhase {
    Streaming,
    Preparing,
    Swapping,
    Done,
    Failed,
}

/// A copy's progress, as the init container writes it and the agent
/// reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyProgress {
    pub id: String,
    pub phase: CopyPhase,
    /// The source of the attempt under way (or the last one).
    pub source: String,
    /// Attempts so far, this one included.
    pub attempt: u32,
    /// Bytes received in this attempt.
    pub bytes: u64,
    /// The source's estimate of the whole, when it gave one.
    #[serde(default)]
    pub estimated_bytes: Option<u64>,
    /// Bytes per second over this attempt so far.
    pub rate: u64,
    pub started_at: u64,
    pub updated_at: u64,
    /// Why the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// What a finished copy carries: the GTID position its data ends at,
/// from which the operator joins the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    pub id: String,
    pub source: String,
    /// The GTID position of the copy (MariaDB: `gtid_binlog_pos` of the
    /// source when the copy was consistent).
    pub gtid: String,
    pub bytes: u64,
    pub seconds: f64,
    pub finished_at: u64,
}

/// What `GET /v1/state` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// `serve` (the sidecar) or `init` (a copy under way, `mysqld` not
    /// started).
    pub mode: String,
    #[serde(default)]
    pub armed: Option<Arming>,
    #[serde(default)]
    pub copy: Option<CopyProgress>,
    #[serde(default)]
    pub provisioned: Option<Provisioned>,
}

/// Errors of the agent and of its client.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Copy(String),
    #[error("the agent at {at}: {why}")]
    Call { at: String, why: String },
    #[error("{0}")]
    Config(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Io { what, source }
}

/// An HTTP client builder, with the TLS crypto provider installed (once
/// for the process).
pub(crate) fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The agent's files in a data directory.
#[derive(Debug, Clone)]
pub struct Files {
    pub datadir: PathBuf,
}

impl Files {
    pub fn new(datadir: impl Into<PathBuf>) -> Files {
        Files {
            datadir: datadir.into(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.datadir.join(name)
    }

    /// Reads one of the JSON files; `None` when absent or unreadable (a
    /// torn write reads as absent: each is written whole by a rename).
    pub fn read<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let text = std::fs::read(self.path(name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes one of the JSON files whole: a temporary file renamed over
    /// it, private to the owner.
    pub fn write<T: Serialize>(&self, name: &str, value: &T) -> Result<(), AgentError> {
        let path = self.path(name);
        let tmp = self.path(&format!("{name}.tmp"));
        let text = serde_json::to_vec_pretty(value)
            .map_err(|e| AgentError::Copy(format!("encoding {name}: {e}")))?;
        write_private(&tmp, &text).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("renaming to {}", path.display())))
    }

    pub fn remove(&self, name: &str) -> Result<(), AgentError> {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {name}"))(e)),
        }
    }

    pub fn state(&self, mode: &str) -> AgentState {
        AgentState {
            mode: mode.to_string(),
            armed: self.read(MARKER),
            copy: self.read(PROGRESS),
            provisioned: self.read(PROVISIONED),
        }
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

pub(crate) use crate::api::auth::constant_time_eq;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arming_lapses_unless_begun() {
        let a = Arming {
            id: "x".into(),
            sources: vec![],
            expires_at: 100,
            timeout_seconds: 60,
            begun_at: None,
        };
        assert!(a.live(100));
        assert!(!a.live(101));
        let begun = Arming {
            begun_at: Some(99),
            ..a
        };
        assert!(begun.live(10_000));
    }

    #[test]
    fn files_are_written_whole_and_private() {
        let dir = tempdir();
        let f = Files::new(&dir);
        assert!(f.read::<Provisioned>(PROVISIONED).is_none());
        let p = Provisioned {
            id: "op".into(),
            source: "10.0.0.1:3309".into(),
            gtid: "0-1-5".into(),
            bytes: 10,
            seconds: 0.5,
            finished_at: 7,
        };
        f.write(PROVISIONED, &p).expect("write");
        assert_eq!(f.read::<Provisioned>(PROVISIONED), Some(p));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.path(PROVISIONED))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        f.remove(PROVISIONED).expect("remove");
        f.remove(PROVISIONED).expect("removing twice is fine");
        let _ = std::fs::remove_dir_all(&dir);
    }

    pub(crate) fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("orca-agent-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).expect("tempdir");
        d
    }
}
