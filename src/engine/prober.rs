//! One round of probes: every known instance concurrently, then whatever
//! their answers name (sources, registered replicas) until nothing new
//! turns up. Instances that stop answering stay known, with their last
//! snapshot, so a dead primary is still in the picture with its replicas.
//! Each instance's probe connection is kept open from one round to the
//! next (one per instance at most, dropped on any error and when the
//! instance is forgotten), so a steady round costs no connection set-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::mysql::Credentials;
use crate::mysql::conn::Timeouts;
use crate::mysql::probe::{KeptConn, probe_kept};
use crate::topology::graph::{Topology, Unreached};
use crate::topology::{InstanceKey, Snapshot};

/// What orca remembers of one instance across rounds.
#[derive(Debug, Clone)]
pub struct Known {
    pub last_snapshot: Option<Box<Snapshot>>,
    pub last_seen: Option<Instant>,
    /// Failures in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    /// What the replication stream had brought at the last probe that saw
    /// it move (heartbeats received, read position), and when.
    progress: Option<(Option<u64>, Option<String>, Instant)>,
    /// How long the last probe took, answered or not.
    pub probe_took: Option<Duration>,
}

/// The instances of one cluster, as far as orca knows them.
#[derive(Debug, Default)]
pub struct Inventory {
    pub known: BTreeMap<InstanceKey, Known>,
    /// The open connection each instance's last successful probe left.
    conns: BTreeMap<InstanceKey, KeptConn>,
}

/// See [`probe_timeouts`].
pub const FULL_PROBE_EVERY: u32 = 4;

/// The timeouts of one probe of an instance that failed `failures` times
/// in a row, with `failing` the bound on the probe of one that fails
/// (`None`: the round's timeouts). Its first failure had the whole
/// timeout; looking again at a server that hangs need not make the round
/// wait as long, and the round is what brings its replicas' streams into
/// view. Every [`FULL_PROBE_EVERY`]th probe in a row of failures has the
/// whole timeout again, so a server slower to answer than the bound is
/// not kept out for good.
pub fn probe_timeouts(timeouts: Timeouts, failing: Option<Duration>, failures: u32) -> Timeouts {
    match failing {
        Some(bound) if failures > 0 && !failures.is_multiple_of(FULL_PROBE_EVERY) => Timeouts {
            connect: timeouts.connect.min(bound),
            query: timeouts.query.min(bound),
        },
        _ => timeouts,
    }
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
                probe_took: None,
            },
        );
        true
    }

    /// Forgets an instance (removed from the cluster), and closes its
    /// probe connection.
    pub fn remove(&mut self, key: &InstanceKey) {
        self.known.remove(key);
        self.conns.remove(key);
    }

    /// Takes the probe connection kept for `key`, to use it for something
    /// else of the same account (the heartbeat); give it back with
    /// [`Inventory::keep_conn`] when it is still good.
    pub fn take_conn(&mut self, key: &InstanceKey) -> Option<KeptConn> {
        self.conns.remove(key)
    }

    /// Keeps `conn` as `key`'s probe connection (an instance still known).
    pub fn keep_conn(&mut self, key: &InstanceKey, conn: KeptConn) {
        if self.known.contains_key(key) {
            self.conns.insert(key.clone(), conn);
        }
    }

    /// How many probe connections are open.
    pub fn open_conns(&self) -> usize {
        self.conns.len()
    }

    /// Probes every known instance and crawls to new ones. Returns the
    /// topology of this round and the instances that answered last round
    /// but not this one.
    pub async fn probe_round(&mut self, creds: &Credentials, timeouts: Timeouts) -> Round {
        self.probe_round_except(creds, timeouts, None, &BTreeSet::new())
            .await
    }

    /// Like [`Inventory::probe_round`], but an instance whose last probe
    /// failed is probed under `failing` (see [`probe_timeouts`]), and the
    /// instances in `skip` are not probed and count as unreachable (an
    /// instance being failed over, which a hung server would make every
    /// probe wait for).
    pub async fn probe_round_except(
        &mut self,
        creds: &Credentials,
        timeouts: Timeouts,
        failing: Option<Duration>,
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
            let kept: Vec<(Option<KeptConn>, Timeouts)> = wave
                .iter()
                .map(|k| {
                    let failures = self.known.get(k).map_or(0, |k| k.failures);
                    let t = probe_timeouts(timeouts, failing, failures);
                    (self.conns.remove(k), t)
                })
                .collect();
            let results = join_all(wave.iter().zip(kept).map(|(k, (conn, t))| async move {
                let started = Instant::now();
                let (r, conn) = probe_kept(k, creds, t, conn).await;
                let answered = Instant::now();
                (r, conn, answered.duration_since(started), answered)
            }))
            .await;
            // `answered`: when this instance's answer came, not when the
            // slowest of the wave's did (a hung one takes its timeout):
            // the stream's silence counts from what each probe saw.
            for (key, (result, conn, took, answered)) in wave.into_iter().zip(results) {
                if let Some(k) = self.known.get_mut(&key) {
                    k.probe_took = Some(took);
                }
                if let Some(c) = conn {
                    self.keep_conn(&key, c);
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
                                    _ => answered,
                                };
                                // Only a stream that should be flowing can stall.
                                if r.io_running == crate::topology::instance::IoThreadState::Yes
                                    && r.received_heartbeats.is_some()
                                {
                                    let silent = answered.saturating_duration_since(since);
                                    stalled_ms.insert(key.clone(), silent.as_millis() as u64);
                                }
                                k.progress = Some((now_mark.0, now_mark.1, since));
                            } else {
                                k.progress = None;
                            }
                            k.last_snapshot = Some(Box::new(snap.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (failures in a row, bound) → the probe's connect and query bounds.
    #[test]
    fn a_failing_instance_is_looked_at_again_under_a_shorter_bound() {
        let full = Timeouts {
            connect: Duration::from_millis(500),
            query: Duration::from_millis(2000),
        };
        let ms = Duration::from_millis;
        let table: &[(u32, Option<u64>, (u64, u64))] = &[
            (0, Some(200), (500, 2000)),
            (1, Some(200), (200, 200)),
            (2, Some(200), (200, 200)),
            (3, Some(200), (200, 200)),
            (FULL_PROBE_EVERY, Some(200), (500, 2000)),
            (FULL_PROBE_EVERY + 1, Some(200), (200, 200)),
            (1, Some(1000), (500, 1000)),
            (1, None, (500, 2000)),
        ];
        for (failures, bound, (connect, query)) in table {
            let t = probe_timeouts(full, bound.map(ms), *failures);
            assert_eq!(
                (t.connect, t.query),
                (ms(*connect), ms(*query)),
                "{failures} failures, bound {bound:?}"
            );
        }
    }
}
