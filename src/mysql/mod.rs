//! MySQL adapter: connections with timeouts, the dialect of each flavor and
//! version, probes that turn a server's answers into a
//! [`Snapshot`](crate::topology::Snapshot), the discovery crawl, and the
//! heartbeat writer. Parsing of server answers lives in [`parse`] and is
//! pure, so recorded outputs of servers we cannot run here are tested too.

pub mod actions;
pub mod clone;
pub mod conn;
pub mod crawl;
pub mod dialect;
pub mod heartbeat;
pub mod parse;
pub mod probe;
pub mod wire;

pub use conn::{Credentials, connect};
pub use dialect::Dialect;

use crate::topology::{InstanceKey, ParseError};

/// Everything that can go wrong talking to one instance.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("{key}: timed out after {millis} ms while {what}")]
    Timeout {
        key: InstanceKey,
        what: &'static str,
        millis: u128,
    },
    #[error("{key}: {what}: {source}")]
    Server {
        key: InstanceKey,
        what: &'static str,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{key}: unexpected answer to {what}: {detail}")]
    Answer {
        key: InstanceKey,
        what: &'static str,
        detail: String,
    },
    #[error("{key}: {source}")]
    Parse {
        key: InstanceKey,
        #[source]
        source: ParseError,
    },
}

impl MysqlError {
    /// The server error code, when the server answered with one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            MysqlError::Server {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// True when the instance could not be reached at all (as opposed to
    /// answering with an error).
    pub fn is_unreachable(&self) -> bool {
        match self {
            MysqlError::Timeout { .. } => true,
            MysqlError::Server { source, .. } => matches!(
                source,
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)
            ),
            _ => false,
        }
    }
}
