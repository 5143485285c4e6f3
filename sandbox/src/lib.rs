//! Local infrastructure for development, demos, tests and benchmarks: real
//! `mariadbd` servers on loopback addresses wired into replication
//! topologies, and the sandbox cluster's Kubernetes API server
//! ([`apiserver`]).

pub mod apiserver;
pub mod cli;
pub mod deployment;
pub mod kubelet;
pub mod loopback;
pub mod mysqld;
pub mod mysqlsim;
pub mod replication;
pub mod statefulset;

pub use mysqld::{Mysqld, MysqldError, MysqldOptions};
pub use replication::{LocalCluster, Shape};
