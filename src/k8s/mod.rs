//! The Kubernetes adapter: orca's custom resources ([`crd`]), the objects
//! of a cluster built from its spec ([`objects`], pure), annotations
//! ([`annotations`], pure), the application account ([`accounts`], pure),
//! the FailoverPolicy in force ([`policy`]), and the controller
//! ([`operator`]) with one [`worker::Worker`] per cluster that feeds pods
//! to the engine and writes labels, the primary Service, status and
//! Events; and what they and the sandbox share: the client with its
//! timeouts ([`client`]), Kubernetes timestamps ([`time`]) and pod
//! ordinals ([`ordinal`]).

pub mod accounts;
pub mod annotations;
pub mod api;
pub mod cache;
mod client;
pub mod crd;
pub mod journal;
pub mod objects;
pub mod operator;
pub mod ordinal;
pub mod policy;
pub mod time;
pub mod worker;

pub use client::{
    AGENT, CONNECT_TIMEOUT, OPERATOR_AGENT, READ_TIMEOUT, WRITE_TIMEOUT, client, client_as,
};
