//! The runtime that makes orca an orchestrator: it probes every instance on
//! an interval, reruns the analysis on every change, and executes plans
//! step by step with timeouts and a record of every step. It does not know
//! Kubernetes: instances come from a topology source.

pub mod background;
pub mod cluster;
pub mod executor;
pub mod fence;
pub mod hooks;
pub mod prober;

pub use cluster::{ClusterEngine, EngineConfig, RoundReport};
