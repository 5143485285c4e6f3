//! orca: replication topology management for MySQL and MariaDB, as a
//! Kubernetes operator and as a command-line tool.
//!
//! Layers (see `docs/architecture.md`):
//! - pure core, no I/O: [`topology`], [`analysis`], [`plan`];
//! - adapters: [`mysql`] (probes, actions, the discovery crawl), [`k8s`]
//!   (custom resources, the objects of a cluster, the controller);
//! - runtime: [`engine`] (probe loops, executor, hooks), [`ha`] (leader
//!   election and fencing), [`store`] (the backing database, written
//!   behind the decision path), [`cli`] (the `orca` command).
//!
//! The sandbox cluster, the local `mariadbd` topologies and the benchmarks
//! are the workspace's other crate, `orca-sandbox`: none of it is in this
//! one.

pub mod agent;
pub mod analysis;
pub mod api;
pub mod cli;
pub mod engine;
pub mod ha;
pub mod k8s;
pub mod metrics;
pub mod mysql;
pub mod plan;
pub mod store;
pub mod topology;
