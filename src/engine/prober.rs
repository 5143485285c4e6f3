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
    /// What the replication stream had brought at the last probe that saw
    /// it move (heartbeats received, read position), and when.
    progress: Option<(Option<u64>, Option<String>, Instant)>,
    /// How long the last probe took, answered or not (milliseconds).
    pub probe_ms: Option<u64>,
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
                progress: None,
                probe_ms: None,
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
        self.probe_round_except(creds, timeouts, &BTreeSet::new())
            .await
    }

    /// Like [`Inventory::probe_round`], but the instances in `skip` are not
    /// probed and count as unreachable (an instance being failed over,
    /// which a hung server would make every probe wait for).
    pub async fn probe_round_except(
        &mut self,
        creds: &Credentials,
        timeouts: Timeouts,
        skip: &BTreeSet<InstanceKey>,
    ) -> Round {
        let mut todo: Vec<InstanceKey> = self
            .known
            .keys()
            .filter(|k| !skip.contains(*k))
            .cloned()
            .collect();
        let mut done: BTreeSet<InstanceKey> = BTreeSet::new();
        let mut snapshots = Vec::new();
        let mut unreached = Vec::new();
        let mut newly_failed = Vec::new();
        let mut stalled_ms = BTreeMap::new();
        for key in skip {
            if let Some(k) = self.known.get(key) {
                unreached.push(Unreached {
                    key: key.clone(),
                    error: "not probed while being replaced".into(),
                    last_source: k
                        .last_snapshot
                        .as_ref()
                        .and_then(|s| s.replica.as_ref())
                        .map(|r| r.source.clone()),
                });
            }
        }
        while !todo.is_empty() {
            let wave: Vec<InstanceKey> = std::mem::take(&mut todo)
                .into_iter()
                .filter(|k| !skip.contains(k) && done.insert(k.clone()))
                .collect();
            let results = join_all(wave.iter().map(|k| async move {
                let started = Instant::now();
                let r = probe(k, creds, timeouts).await;
                (r, started.elapsed().as_millis() as u64)
            }))
            .await;
            for (key, (result, took)) in wave.into_iter().zip(results) {
                if let Some(k) = self.known.get_mut(&key) {
                    k.probe_ms = Some(took);
                }
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
                            if let Some(r) = snap.replica.as_ref() {
                                let now_mark = (
                                    r.received_heartbeats,
                                    r.read_source.as_ref().map(|c| c.to_string()),
                                );
                                let since = match &k.progress {
                                    Some((h, pos, at))
                                        if (h, pos) == (&now_mark.0, &now_mark.1) =>
                                    {
                                        *at
                                    }
                                    _ => Instant::now(),
                                };
                                // Only a stream that should be flowing can stall.
                                if r.io_running == crate::topology::instance::IoThreadState::Yes
                                    && r.received_heartbeats.is_some()
                                {
                                    stalled_ms
                                        .insert(key.clone(), since.elapsed().as_millis() as u64);
                                }
                                k.progress = Some((now_mark.0, now_mark.1, since));
                            } else {
                                k.progress = None;
                            }
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
            stalled_ms,
        }
    }
}

/// The result of one round.
#[derive(Debug, Clone)]
pub struct Round {
    pub topology: Topology,
    /// Instances that answered before and did not answer now.
    pub newly_failed: Vec<InstanceKey>,
    /// Replicas whose stream brought nothing since their last probe that
    /// saw it move, with how long, in milliseconds.
    pub stalled_ms: BTreeMap<InstanceKey, u64>,
}
