//! One round of probes: every known instance concurrently, then whatever
//! their answers name (sources, registered replicas) until nothing new
//! turns up. Instances that stop answering stay known, with their last
//! snapshot, so a dead primary is still in the picture with its replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::future::join_all;

use crate::mysql::Credentials;
use crate::mysql::conn::Timeouts;
use crate::mysql::probe::probe;
use crate::topology::graph::{Topology, Unreached};
use crate::topology::{InstanceKey, Snapshot};

/// What orca remembers of one instance across rounds.
#[derive(Debug, Clone)]
pub struct Known {
    pub last_snapshot: Option<Snapshot>,
    pub last_seen: Option<Instant>,
    /// Failures in a row.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// The instances of one cluster, as far as orca knows them.
#[derive(Debug, Default)]
pub struct Inventory {
    pub known: BTreeMap<InstanceKey, Known>,
}

impl Inventory {
    pub fn new(seeds: impl IntoIterator<Item = InstanceKey>) -> Self {
        let mut inv = Inventory::default();
        for s in seeds {
            inv.add(s);
        }
        inv
    }

    pub fn add(&mut self, key: InstanceKey) -> bool {
        if self.known.contains_key(&key) {
            return false;
        }
        self.known.insert(
            key,
            Known {
                last_snapshot: None,
                last_seen: None,
                failures: 0,
                last_error: None,
            },
        );
        true
    }

    /// Forgets an instance (removed from the cluster).
    pub fn remove(&mut self, key: &InstanceKey) {
        self.known.remove(key);
    }

    /// Probes every known instance and crawls to new ones. Returns the
    /// topology of this round and the instances that answered last round
    /// but not this one.
    pub async fn probe_round(&mut self, creds: &Credentials, timeouts: Timeouts) -> Round {
        let mut todo: Vec<InstanceKey> = self.known.keys().cloned().collect();
        let mut done: BTreeSet<InstanceKey> = BTreeSet::new();
        let mut snapshots = Vec::new();
        let mut unreached = Vec::new();
        let mut newly_failed = Vec::new();
        while !todo.is_empty() {
            let wave: Vec<InstanceKey> = std::mem::take(&mut todo)
                .into_iter()
                .filter(|k| done.insert(k.clone()))
                .collect();
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
                            if self.add(n.clone()) {
                                todo.push(n);
                            }
                        }
                        if let Some(k) = self.known.get_mut(&key) {
                            k.last_snapshot = Some(snap.clone());
                            k.last_seen = Some(Instant::now());
                            k.failures = 0;
                            k.last_error = None;
                        }
                        snapshots.push(snap);
                    }
                    Err(e) => {
                        let error = e.to_string();
                        if let Some(k) = self.known.get_mut(&key) {
                            if k.failures == 0 && k.last_seen.is_some() {
                                newly_failed.push(key.clone());
                            }
                            k.failures += 1;
                            k.last_error = Some(error.clone());
                            unreached.push(Unreached {
                                key: key.clone(),
                                error,
                                last_source: k
                                    .last_snapshot
                                    .as_ref()
                                    .and_then(|s| s.replica.as_ref())
                                    .map(|r| r.source.clone()),
                            });
                        }
                    }
                }
            }
        }
        Round {
            topology: Topology::build(snapshots, unreached),
            newly_failed,
        }
    }
}

/// The result of one round.
#[derive(Debug, Clone)]
pub struct Round {
    pub topology: Topology,
    /// Instances that answered before and did not answer now.
    pub newly_failed: Vec<InstanceKey>,
}
