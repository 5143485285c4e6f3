//! Kubernetes adapter: orca's custom resources, the objects it owns, the
//! controller and its per-cluster workers, failover policies, and what
//! they and the sandbox share: the client (with timeouts), timestamps and
//! pod ordinals.

pub mod annotations;
mod client;
pub mod crd;
pub mod objects;
pub mod operator;
pub mod ordinal;
pub mod policy;
pub mod time;
pub mod worker;

pub use client::{CONNECT_TIMEOUT, READ_TIMEOUT, WRITE_TIMEOUT, client};
