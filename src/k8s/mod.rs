//! The Kubernetes adapter: orca's custom resources ([`crd`]), the objects
//! of a cluster built from its spec ([`objects`], pure), annotations
//! ([`annotations`], pure), the FailoverPolicy in force ([`policy`]), and
//! the controller ([`operator`]) with one [`worker::Worker`] per cluster
//! that feeds pods to the engine and writes labels, the primary Service,
//! status and Events.

pub mod annotations;
pub mod crd;
pub mod objects;
pub mod operator;
pub mod policy;
pub mod worker;
