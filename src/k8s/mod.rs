//! Kubernetes adapter: custom resource types now; reconcilers, labels,
//! events and status later.

pub mod annotations;
pub mod crd;
pub mod objects;
pub mod operator;
pub mod ordinal;
pub mod policy;
pub mod time;
pub mod worker;
