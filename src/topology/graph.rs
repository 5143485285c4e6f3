//! The replication graph built from snapshots: who replicates from whom,
//! primaries, intermediate primaries, co-primaries (cycles), orphans,
//! depth, lag and errant GTIDs per instance.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::errant::errant_gtids;
use super::gtid::GtidSet;
use super::instance::{InstanceKey, Snapshot};

/// The part an instance plays in its topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Replicates from nothing (or from nothing orca knows) and has
    /// replicas, or stands alone.
    Primary,
    /// One of two or more instances replicating from each other in a cycle.
    CoPrimary,
    /// Replicates from another instance and feeds replicas of its own.
    IntermediatePrimary,
    /// Replicates from another instance, feeds none.
    Replica,
    /// Configured to replicate from an instance orca does not know.
    Orphan,
    /// Did not answer; what it is was not seen.
    Unknown,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::CoPrimary => "co-primary",
            Role::IntermediatePrimary => "intermediate-primary",
            Role::Replica => "replica",
            Role::Orphan => "orphan",
            Role::Unknown => "unknown",
        })
    }
}

/// One instance in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub key: InstanceKey,
    /// The probe's snapshot; `None` when the instance did not answer.
    pub snapshot: Option<Box<Snapshot>>,
    /// Why the instance did not answer.
    pub error: Option<String>,
    /// The instance it replicates from, as its replica status says.
    pub source: Option<InstanceKey>,
    /// The instances that replicate from it (by their replica status).
    pub replicas: Vec<InstanceKey>,
    pub role: Role,
    /// Distance from the top of its tree (0 for primaries, co-primaries
    /// and orphans).
    pub depth: usize,
    /// Replication lag in milliseconds: heartbeat when both this instance
    /// and the top of its tree have one, else `Seconds_Behind_Master`.
    pub lag_ms: Option<u64>,
    /// Transactions this replica has that its source does not.
    pub errant: Option<GtidSet>,
}

impl Node {
    pub fn reachable(&self) -> bool {
        self.snapshot.is_some()
    }
}

/// An instance that did not answer the latest probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreached {
    pub key: InstanceKey,
    pub error: String,
    /// Its source when it last answered, if it was a replica then: keeps a
    /// dead intermediate primary in its place in the tree.
    pub last_source: Option<InstanceKey>,
}

impl Unreached {
    pub fn new(key: InstanceKey, error: impl Into<String>) -> Self {
        Unreached {
            key,
            error: error.into(),
            last_source: None,
        }
    }
}

/// A replication topology: every instance discovered, keyed by address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub nodes: BTreeMap<InstanceKey, Node>,
}

impl Topology {
    /// Builds the graph from the snapshots of reachable instances and the
    /// unreachable ones.
    pub fn build(snapshots: Vec<Snapshot>, unreachable: Vec<Unreached>) -> Topology {
        let mut nodes: BTreeMap<InstanceKey, Node> = BTreeMap::new();
        for snap in snapshots {
            let source = snap.replica.as_ref().map(|r| r.source.clone());
            nodes.insert(
                snap.key.clone(),
                Node {
                    key: snap.key.clone(),
                    snapshot: Some(Box::new(snap)),
                    error: None,
                    source,
                    replicas: Vec::new(),
                    role: Role::Unknown,
                    depth: 0,
                    lag_ms: None,
                    errant: None,
                },
            );
        }
        for u in unreachable {
            nodes.entry(u.key.clone()).or_insert(Node {
                key: u.key,
                snapshot: None,
                error: Some(u.error),
                source: u.last_source,
                replicas: Vec::new(),
                role: Role::Unknown,
                depth: 0,
                lag_ms: None,
                errant: None,
            });
        }
        let edges: Vec<(InstanceKey, InstanceKey)> = nodes
            .values()
            .filter_map(|n| n.source.clone().map(|s| (n.key.clone(), s)))
            .collect();
        for (replica, source) in edges {
            if let Some(src) = nodes.get_mut(&source) {
                src.replicas.push(replica);
            }
        }
        let mut topo = Topology { nodes };
        topo.assign_roles_and_depths();
        topo.compute_lag();
        topo.compute_errant();
        topo
    }

    pub fn get(&self, key: &InstanceKey) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// The chain of sources above `key`, nearest first, stopping at a
    /// cycle or at an instance orca does not know.
    pub fn ancestors(&self, key: &InstanceKey) -> Vec<InstanceKey> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([key.clone()]);
        let mut cur = self.nodes.get(key).and_then(|n| n.source.clone());
        while let Some(k) = cur {
            if !seen.insert(k.clone()) {
                break;
            }
            cur = self.nodes.get(&k).and_then(|n| n.source.clone());
            out.push(k);
        }
        out
    }

    /// Instances in a replication cycle.
    fn cycle_members(&self) -> BTreeSet<InstanceKey> {
        let mut members = BTreeSet::new();
        for key in self.nodes.keys() {
            let mut seen = vec![key.clone()];
            let mut cur = self.nodes.get(key).and_then(|n| n.source.clone());
            while let Some(k) = cur {
                if &k == key {
                    members.extend(seen);
                    break;
                }
                if seen.contains(&k) || !self.nodes.contains_key(&k) {
                    break;
                }
                seen.push(k.clone());
                cur = self.nodes.get(&k).and_then(|n| n.source.clone());
            }
        }
        members
    }

    /// The tops of the trees: primaries, co-primaries and orphans, in key
    /// order.
    pub fn roots(&self) -> Vec<&Node> {
        self.nodes.values().filter(|n| n.depth == 0).collect()
    }

    /// The instance a node's tree hangs from (itself for a root).
    pub fn root_of(&self, key: &InstanceKey) -> Option<&Node> {
        let node = self.nodes.get(key)?;
        if node.depth == 0 {
            return Some(node);
        }
        self.ancestors(key)
            .last()
            .and_then(|k| self.nodes.get(k))
            .filter(|n| n.depth == 0)
    }

    fn assign_roles_and_depths(&mut self) {
        let cycle = self.cycle_members();
        let keys: Vec<InstanceKey> = self.nodes.keys().cloned().collect();
        for key in &keys {
            let ancestors = self.ancestors(key);
            let (role, depth) = {
                let node = &self.nodes[key];
                let known_source = node.source.as_ref().filter(|s| self.nodes.contains_key(*s));
                if cycle.contains(key) {
                    (Role::CoPrimary, 0)
                } else if node.snapshot.is_none() {
                    let depth = match known_source {
                        Some(_) => depth_of(&ancestors, &cycle, &self.nodes),
                        None => 0,
                    };
                    (Role::Unknown, depth)
                } else if node.source.is_none() {
                    (Role::Primary, 0)
                } else if known_source.is_none() {
                    (Role::Orphan, 0)
                } else if node.replicas.is_empty() {
                    (Role::Replica, depth_of(&ancestors, &cycle, &self.nodes))
                } else {
                    (
                        Role::IntermediatePrimary,
                        depth_of(&ancestors, &cycle, &self.nodes),
                    )
                }
            };
            if let Some(n) = self.nodes.get_mut(key) {
                n.role = role;
                n.depth = depth;
            }
        }
    }

    fn compute_lag(&mut self) {
        let lags: Vec<(InstanceKey, Option<u64>)> = self
            .nodes
            .values()
            .map(|n| {
                let Some(snap) = n.snapshot.as_ref() else {
                    return (n.key.clone(), None);
                };
                let root_age = self
                    .root_of(&n.key)
                    .and_then(|r| r.snapshot.as_ref())
                    .filter(|_| n.depth > 0)
                    .and_then(|r| r.heartbeat_age_ms);
                let lag = match (snap.heartbeat_age_ms, root_age, snap.replica.as_ref()) {
                    (_, _, None) => None,
                    (Some(mine), Some(root), Some(_)) => Some(mine.saturating_sub(root)),
                    _ => snap.reported_lag_ms(),
                };
                (n.key.clone(), lag)
            })
            .collect();
        for (k, lag) in lags {
            if let Some(n) = self.nodes.get_mut(&k) {
                n.lag_ms = lag;
            }
        }
    }

    fn compute_errant(&mut self) {
        let found: Vec<(InstanceKey, Option<GtidSet>)> = self
            .nodes
            .values()
            .filter_map(|n| {
                let snap = n.snapshot.as_ref()?;
                let source = self.nodes.get(n.source.as_ref()?)?.snapshot.as_ref()?;
                let ancestors: Vec<&Snapshot> = self
                    .ancestors(&n.key)
                    .iter()
                    .skip(1)
                    .filter_map(|k| self.nodes.get(k)?.snapshot.as_deref())
                    .collect();
                Some((n.key.clone(), errant_gtids(snap, source, &ancestors)))
            })
            .collect();
        for (k, errant) in found {
            if let Some(n) = self.nodes.get_mut(&k) {
                n.errant = errant;
            }
        }
    }
}

/// Depth below the top of the tree: the number of ancestors up to (and
/// including) a root or a cycle member.
fn depth_of(
    ancestors: &[InstanceKey],
    cycle: &BTreeSet<InstanceKey>,
    nodes: &BTreeMap<InstanceKey, Node>,
) -> usize {
    let mut depth = 0;
    for a in ancestors {
        if !nodes.contains_key(a) {
            break;
        }
        depth += 1;
        if cycle.contains(a) {
            break;
        }
    }
    depth.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::testing::{key, mariadb, replica_of, with_gtid};

    fn build(snaps: Vec<Snapshot>, down: &[&str]) -> Topology {
        Topology::build(
            snaps,
            down.iter()
                .map(|h| Unreached::new(key(h), "connection refused"))
                .collect(),
        )
    }

    #[test]
    fn primary_with_replicas() {
        let t = build(
            vec![
                mariadb("p", 1),
                replica_of("r1", 2, "p"),
                replica_of("r2", 3, "p"),
            ],
            &[],
        );
        assert_eq!(t.get(&key("p")).unwrap().role, Role::Primary);
        assert_eq!(
            t.get(&key("p")).unwrap().replicas,
            vec![key("r1"), key("r2")]
        );
        for r in ["r1", "r2"] {
            let n = t.get(&key(r)).unwrap();
            assert_eq!((n.role, n.depth), (Role::Replica, 1));
            assert_eq!(n.lag_ms, Some(0));
        }
        assert_eq!(t.roots().len(), 1);
    }

    #[test]
    fn chains_cycles_orphans_and_unreachable() {
        let t = build(
            vec![
                mariadb("p", 1),
                replica_of("mid", 2, "p"),
                replica_of("leaf", 3, "mid"),
                replica_of("leaf2", 4, "leaf"),
                replica_of("a", 5, "b"),
                replica_of("b", 6, "a"),
                replica_of("under-a", 7, "a"),
                replica_of("lost", 8, "nowhere"),
                replica_of("under-dead", 9, "dead"),
            ],
            &["dead"],
        );
        let role = |h| t.get(&key(h)).unwrap().role;
        let depth = |h| t.get(&key(h)).unwrap().depth;
        assert_eq!(role("mid"), Role::IntermediatePrimary);
        assert_eq!(role("leaf"), Role::IntermediatePrimary);
        assert_eq!((role("leaf2"), depth("leaf2")), (Role::Replica, 3));
        assert_eq!((role("a"), depth("a")), (Role::CoPrimary, 0));
        assert_eq!((role("b"), depth("b")), (Role::CoPrimary, 0));
        assert_eq!((role("under-a"), depth("under-a")), (Role::Replica, 1));
        assert_eq!((role("lost"), depth("lost")), (Role::Orphan, 0));
        assert_eq!((role("dead"), depth("dead")), (Role::Unknown, 0));
        assert_eq!(
            (role("under-dead"), depth("under-dead")),
            (Role::Replica, 1)
        );
        assert_eq!(
            t.ancestors(&key("leaf2")),
            vec![key("leaf"), key("mid"), key("p")]
        );
        assert_eq!(t.root_of(&key("leaf2")).unwrap().key, key("p"));
        assert_eq!(t.ancestors(&key("a")), vec![key("b")]);
    }

    #[test]
    fn unreachable_intermediate_keeps_its_place() {
        let t = Topology::build(
            vec![mariadb("p", 1), replica_of("leaf", 3, "mid")],
            vec![Unreached {
                key: key("mid"),
                error: "refused".into(),
                last_source: Some(key("p")),
            }],
        );
        let mid = t.get(&key("mid")).unwrap();
        assert_eq!((mid.role, mid.depth), (Role::Unknown, 1));
        assert_eq!(t.get(&key("leaf")).unwrap().depth, 2);
        assert_eq!(t.get(&key("p")).unwrap().replicas, vec![key("mid")]);
    }

    #[test]
    fn heartbeat_lag_is_relative_to_the_top() {
        let mut p = mariadb("p", 1);
        p.heartbeat_age_ms = Some(300);
        let mut r1 = replica_of("r1", 2, "p");
        r1.heartbeat_age_ms = Some(1_550);
        let mut r2 = replica_of("r2", 3, "p");
        r2.heartbeat_age_ms = None;
        r2.replica.as_mut().unwrap().seconds_behind = Some(7);
        let mut r3 = replica_of("r3", 4, "p");
        r3.replica.as_mut().unwrap().seconds_behind = None;
        let t = build(vec![p, r1, r2, r3], &[]);
        assert_eq!(t.get(&key("p")).unwrap().lag_ms, None);
        assert_eq!(t.get(&key("r1")).unwrap().lag_ms, Some(1_250));
        assert_eq!(t.get(&key("r2")).unwrap().lag_ms, Some(7_000));
        assert_eq!(t.get(&key("r3")).unwrap().lag_ms, None);
    }

    #[test]
    fn errant_per_replica() {
        let t = build(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                with_gtid(replica_of("r1", 2, "p"), "0-1-10"),
                with_gtid(replica_of("r2", 3, "p"), "0-1-10,0-3-11"),
            ],
            &[],
        );
        assert_eq!(t.get(&key("r1")).unwrap().errant, None);
        assert_eq!(
            t.get(&key("r2"))
                .unwrap()
                .errant
                .as_ref()
                .map(|g| g.to_string()),
            Some("0-3-11".to_string())
        );
    }
}
