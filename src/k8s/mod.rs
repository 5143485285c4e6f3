//! Kubernetes adapter: custom resource types now; reconcilers, labels,
//! events and status later.

pub mod crd;
pub mod objects;
