//! What is wrong, in orchestrator's vocabulary, from a topology alone. Pure:
//! no I/O. Today it names the problems of each instance; the cluster-wide
//! failure analysis (dead primary and its kin) builds on it.

pub mod codes;
pub mod instance;

pub use codes::Problem;
pub use instance::{Thresholds, instance_problems};
