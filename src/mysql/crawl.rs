//! Discovery from one seed: probe it, then follow every edge the answers
//! name — up through the replica status to its source, down through the
//! registered replicas — until no new instance turns up.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::Credentials;
use super::conn::Timeouts;
use super::probe::probe;
use crate::topology::{InstanceKey, Snapshot};

/// The most instances one crawl visits: a guard against a runaway crawl of
/// a misconfigured estate.
pub const MAX_INSTANCES: usize = 1024;

/// An instance that was named by another but did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    pub key: InstanceKey,
    pub error: String,
}

/// What one crawl found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Discovery {
    pub snapshots: Vec<Snapshot>,
    pub unreachable: Vec<Unreachable>,
}

/// Crawls the topology around `seed`; instances are probed a wave at a
/// time, each wave concurrently.
pub async fn crawl(seed: &InstanceKey, creds: &Credentials, timeouts: Timeouts) -> Discovery {
    let mut seen: BTreeSet<InstanceKey> = BTreeSet::new();
    let mut frontier = vec![seed.clone()];
    seen.insert(seed.clone());
    let mut snapshots = BTreeMap::new();
    let mut unreachable = Vec::new();
    while !frontier.is_empty() {
        let wave = std::mem::take(&mut frontier);
        let results = join_all(wave.iter().map(|k| probe(k, creds, timeouts))).await;
        for (key, result) in wave.into_iter().zip(results) {
            match result {
                Ok(snap) => {
                    let neighbours = snap
                        .replica
                        .as_ref()
                        .map(|r| r.source.clone())
                        .into_iter()
                        .chain(snap.registered_replicas.iter().cloned());
                    for n in neighbours {
                        if seen.len() < MAX_INSTANCES && seen.insert(n.clone()) {
                            frontier.push(n);
                        }
                    }
                    snapshots.insert(key, snap);
                }
                Err(e) => {
                    tracing::debug!(instance = %key, error = %e, "probe failed");
                    unreachable.push(Unreachable {
                        key,
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    Discovery {
        snapshots: snapshots.into_values().collect(),
        unreachable,
    }
}
