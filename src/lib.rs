//! orca: replication topology management for MySQL and MariaDB, as a
//! Kubernetes operator and as a command-line tool.
//!
//! Layers (see `docs/architecture.md`):
//! - pure core, no I/O: [`topology`], [`analysis`], [`plan`];
//! - adapters: [`mysql`] (probes, discovery crawl), [`k8s`] (custom resources);
//! - runtime: [`cli`], [`engine`], [`ha`] (leader election and fencing);
//!   store and API arrive with later work;
//! - [`sandbox`]: local `mariadbd` servers (and later a local cluster) for
//!   development, demos and tests.

pub mod analysis;
pub mod cli;
pub mod engine;
pub mod ha;
pub mod k8s;
pub mod mysql;
pub mod plan;
pub mod sandbox;
pub mod topology;
