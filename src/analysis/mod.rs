//! What is wrong, in orchestrator's vocabulary, from a topology alone. Pure:
//! no I/O, no clock. `instance` names the problems of each instance;
//! `detect` the problems of each replication tree, failures first (dead
//! primary and its kin, decided holistically from the replicas' view).

pub mod cluster;
pub mod codes;
pub mod detect;
pub mod instance;

pub use cluster::{AnalysisContext, ExternalSignal, Finding};
pub use codes::{ClusterProblemCode, Problem, Severity};
pub use detect::{analyze, primary_and_former, writable_tops};
pub use instance::{Thresholds, instance_problems};
