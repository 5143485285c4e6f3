//! High availability of the operator itself: which replica of orca may act,
//! and proof of it in every write it makes.
//!
//! This layer owns:
//! - [`lease`]: leader election on a `coordination.k8s.io/v1` Lease in the
//!   operator's namespace. Its `leaseTransitions` count is the fencing
//!   [`Epoch`]; the elector publishes its [`Leadership`] on a watch
//!   channel and releases the Lease on shutdown.
//! - [`epoch`]: the fencing rule — a replica acts only while it holds the
//!   Lease and its renew deadline is ahead of the step it is about to take
//!   ([`Fence::check`]) — and the two persistent guards that make an
//!   operator from an older epoch fail its next write instead of acting
//!   twice: the epoch recorded in a custom resource's status under a
//!   resourceVersion precondition ([`epoch_guarded_status_patch`]), and the
//!   epoch recorded on the primary in `orca_meta.epoch`
//!   ([`record_epoch`]).
//!
//! The rules themselves (expiry of a Lease, the next state of an elector,
//! the fence, the guards' checks) are pure functions taking the time as an
//! argument; the async parts are thin adapters around them.

pub mod epoch;
pub mod lease;

use std::fmt;

pub use epoch::{
    Fence, NotLeader, epoch_guarded_status_patch, fence_rule, read_epoch, record_epoch,
    record_epoch_at, record_epoch_sql,
};
pub use lease::{ElectorHandle, LeaderElector, Leadership, LeaseConfig};

use crate::mysql::MysqlError;

/// A fencing epoch: the Lease's `leaseTransitions` when a replica took it.
/// Every term of leadership has its own, higher than every earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

impl Epoch {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Everything that can go wrong in the HA layer.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("invalid lease configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: timed out after {millis} ms")]
    Timeout { what: String, millis: u128 },
    /// A newer epoch is already recorded: this replica's term is over.
    #[error("{place}: epoch {stored} is recorded, newer than ours ({ours}); refusing to act")]
    StaleEpoch {
        place: String,
        stored: i64,
        ours: i64,
    },
    /// The object changed since it was read (resourceVersion precondition).
    #[error("{place}: changed since it was read at resourceVersion {read}; read it again")]
    Conflict { place: String, read: String },
    #[error("{place}: {detail}")]
    Answer { place: String, detail: String },
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

impl HaError {
    /// True when the error says a newer leader exists: stop, do not retry.
    pub fn is_stale_epoch(&self) -> bool {
        matches!(self, HaError::StaleEpoch { .. })
    }

    /// True when the error is a resourceVersion conflict: read again, then
    /// decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, HaError::Conflict { .. })
    }
}

/// Runs a kube call with a deadline.
pub(crate) async fn bounded<T, F>(
    limit: std::time::Duration,
    what: &str,
    fut: F,
) -> Result<T, HaError>
where
    F: std::future::Future<Output = Result<T, kube::Error>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(HaError::Kube {
            what: what.to_string(),
            source,
        }),
        Err(_) => Err(HaError::Timeout {
            what: what.to_string(),
            millis: limit.as_millis(),
        }),
    }
}

/// The HTTP status code of an API error, if the server answered with one.
pub(crate) fn api_code(e: &HaError) -> Option<u16> {
    match e {
        HaError::Kube {
            source: kube::Error::Api(s),
            ..
        } => Some(s.code),
        _ => None,
    }
}
