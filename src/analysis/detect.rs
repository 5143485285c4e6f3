//! The cluster-wide analysis: from a topology (and what Kubernetes says
//! about the pods), the problems of each replication tree, in
//! orchestrator's vocabulary. Pure: no I/O, no clock.
//!
//! Failure detection is holistic. An instance orca cannot reach is dead
//! only when the instances replicating from it agree: every reachable one
//! has an IO thread that fails to connect to it. One replica still
//! connected makes it merely unreachable (re-check, do not fail over). A
//! replica whose IO thread was stopped without a connection error gives no
//! evidence and so does not agree, unless it is downtimed: a downtimed
//! replica with a stopped IO thread is left out of the vote (a connected
//! one still counts, since it proves the source alive).
//!
//! Co-primaries: a co-primary that orca cannot reach is judged like a
//! primary, its partner counting as one of its replicas (the partner
//! replicates from it). If it kept its last known source the cycle is
//! intact and both ends are roots; if not, the partner hangs below it. The
//! verdict is the same either way.

use std::collections::{BTreeMap, BTreeSet};

use super::cluster::{AnalysisContext, Finding};
use super::codes::ClusterProblemCode as Code;
use crate::plan::loss::AckQuorum;
use crate::topology::InstanceKey;
use crate::topology::graph::{Node, Role, Topology};
use crate::topology::instance::{IoThreadState, ReplicaStatus, Snapshot};

/// The problems of every tree in `topo`: failures first, then by instance,
/// then by code.
pub fn analyze(topo: &Topology, ctx: &AnalysisContext) -> Vec<Finding> {
    let mut out = Vec::new();
    for node in topo.nodes.values() {
        match node.snapshot.as_ref() {
            None => out.extend(unreachable_source(topo, ctx, node)),
            Some(snap) => {
                if matches!(node.role, Role::Primary | Role::CoPrimary) {
                    primary_checks(topo, node, snap, &mut out);
                }
                replica_checks(ctx, node, snap, &mut out);
            }
        }
    }
    for (root, members) in trees(topo) {
        structure_checks(topo, root, &members, &mut out);
    }
    writable_tops_check(topo, ctx, &mut out);
    out.sort_by(|a, b| {
        (!a.code.is_failure(), &a.instance, a.code).cmp(&(
            !b.code.is_failure(),
            &b.instance,
            b.code,
        ))
    });
    out
}

/// What the replicas of an unreachable instance say about it.
#[derive(Debug, Default)]
struct Vote {
    /// Every known replica.
    all: Vec<InstanceKey>,
    /// Replicas orca cannot reach either.
    unreachable: Vec<InstanceKey>,
    /// Replicas whose IO thread fails to connect to it.
    agree: Vec<InstanceKey>,
    /// Replicas whose IO thread is connected to it, with their lag beyond
    /// any configured delay.
    connected: Vec<(InstanceKey, Option<u64>)>,
    /// Replicas whose IO thread is stopped without a connection error (or
    /// that have no replica status at all): no evidence, so no agreement.
    silent: Vec<InstanceKey>,
    /// Downtimed replicas with a stopped IO thread, left out of the vote.
    excused: Vec<InstanceKey>,
}

impl Vote {
    fn of(topo: &Topology, ctx: &AnalysisContext, node: &Node) -> Vote {
        let mut v = Vote::default();
        let mut replicas = node.replicas.clone();
        replicas.sort();
        for k in replicas {
            v.all.push(k.clone());
            let Some(r) = topo.get(&k) else {
                v.unreachable.push(k);
                continue;
            };
            let Some(snap) = r.snapshot.as_ref() else {
                v.unreachable.push(k);
                continue;
            };
            match snap.replica.as_ref() {
                Some(st)
                    if st.source_unreachable() || ctx.is_stalled(&k, st.heartbeat_period_ms) =>
                {
                    v.agree.push(k)
                }
                Some(st) if st.io_running == IoThreadState::Yes => {
                    v.connected.push((k, excess_lag(r, snap)));
                }
                _ if ctx.is_downtimed(&k) => v.excused.push(k),
                _ => v.silent.push(k),
            }
        }
        v
    }

    fn reachable(&self) -> usize {
        self.agree.len() + self.connected.len() + self.silent.len() + self.excused.len()
    }

    /// Every voting replica fails to connect, and there is at least one.
    fn agreed(&self) -> bool {
        !self.agree.is_empty() && self.connected.is_empty() && self.silent.is_empty()
    }

    /// Every connected replica lags beyond the limit (and one is connected).
    fn connected_all_lag(&self, max_lag_ms: u64) -> bool {
        !self.connected.is_empty()
            && self
                .connected
                .iter()
                .all(|(_, lag)| lag.is_some_and(|l| l > max_lag_ms))
    }
}

/// A node's lag minus its configured `SQL_Delay`: a delayed replica is not
/// lagging when it is exactly as far behind as it was asked to be.
fn excess_lag(node: &Node, snap: &Snapshot) -> Option<u64> {
    let delay_ms = snap
        .replica
        .as_ref()
        .map_or(0, |r| r.sql_delay.saturating_mul(1000));
    node.lag_ms.map(|l| l.saturating_sub(delay_ms))
}

/// The verdict on an instance orca cannot reach, from its replicas' votes.
fn unreachable_source(topo: &Topology, ctx: &AnalysisContext, node: &Node) -> Option<Finding> {
    let vote = Vote::of(topo, ctx, node);
    let intermediate = node.depth > 0;
    let downtimed = ctx.is_downtimed(&node.key);
    let code = if intermediate {
        if vote.all.is_empty() {
            // An unreachable leaf: the per-instance problems cover it.
            return None;
        }
        if downtimed {
            Code::UnreachableIntermediatePrimary
        } else if vote.reachable() == 0 {
            Code::DeadIntermediatePrimaryAndReplicas
        } else if !vote.agreed() {
            Code::UnreachableIntermediatePrimary
        } else if vote.all.len() == 1 {
            Code::DeadIntermediatePrimaryWithSingleReplica
        } else if !vote.unreachable.is_empty() {
            Code::DeadIntermediatePrimaryAndSomeReplicas
        } else {
            Code::DeadIntermediatePrimary
        }
    } else if vote.all.is_empty() {
        Code::DeadPrimaryWithoutReplicas
    } else if vote.reachable() == 0 {
        Code::DeadPrimaryAndReplicas
    } else if vote.agreed() {
        if vote.unreachable.is_empty() {
            Code::DeadPrimary
        } else {
            Code::DeadPrimaryAndSomeReplicas
        }
    } else if vote.connected_all_lag(ctx.max_lag_ms) {
        Code::UnreachablePrimaryWithLaggingReplicas
    } else {
        Code::UnreachablePrimary
    };
    let code = match code {
        Code::DeadPrimary
        | Code::DeadPrimaryAndSomeReplicas
        | Code::DeadPrimaryAndReplicas
        | Code::DeadPrimaryWithoutReplicas
            if downtimed =>
        {
            Code::UnreachablePrimary
        }
        c => c,
    };
    Some(Finding {
        code,
        instance: node.key.clone(),
        replicas: vote.all.clone(),
        description: describe_unreachable(topo, ctx, node, &vote, intermediate, downtimed),
    })
}

fn describe_unreachable(
    topo: &Topology,
    ctx: &AnalysisContext,
    node: &Node,
    vote: &Vote,
    intermediate: bool,
    downtimed: bool,
) -> String {
    let mut s = if intermediate {
        match node.source.as_ref() {
            Some(src) => format!("intermediate primary {} (replica of {src})", node.key),
            None => format!("intermediate primary {}", node.key),
        }
    } else {
        node.key.to_string()
    };
    s.push_str(" is unreachable");
    let mut evidence: Vec<String> = node.error.iter().cloned().collect();
    evidence.extend(
        ctx.signals_of(&node.key)
            .into_iter()
            .map(|sig| sig.phrase().to_string()),
    );
    if !evidence.is_empty() {
        s.push_str(&format!(" ({})", evidence.join("; ")));
    }
    if vote.all.is_empty() {
        s.push_str(" and has no known replicas");
    } else if vote.reachable() == 0 {
        s.push_str(&format!(
            " and so {} {} ({})",
            if vote.all.len() == 1 { "is" } else { "are all" },
            its_replicas(vote.all.len()),
            list(&vote.all)
        ));
    } else if vote.agreed() {
        let whom = if vote.agree.len() == vote.all.len() {
            its_replicas(vote.agree.len())
        } else if vote.agree.len() == 1 {
            "its replica".to_string()
        } else {
            "its replicas".to_string()
        };
        s.push_str(&format!(
            " and {whom} {} cannot connect to it",
            list(&vote.agree)
        ));
        if !vote.unreachable.is_empty() {
            s.push_str(&format!(
                "; {} {} unreachable too",
                list(&vote.unreachable),
                is_are(vote.unreachable.len())
            ));
        }
        if !vote.excused.is_empty() {
            s.push_str(&format!(
                "; downtimed {} with a stopped IO thread left out",
                list(&vote.excused)
            ));
        }
        if !intermediate && !downtimed {
            s.push_str(&quorum_shortfall(topo, ctx, &node.key).unwrap_or_default());
        }
    } else {
        let mut parts = Vec::new();
        if !vote.connected.is_empty() {
            let keys: Vec<InstanceKey> = vote.connected.iter().map(|(k, _)| k.clone()).collect();
            let mut p = format!(
                "{} {} connected to it",
                list(&keys),
                if keys.len() == 1 {
                    "is still"
                } else {
                    "are still"
                }
            );
            if vote.connected_all_lag(ctx.max_lag_ms) {
                let worst = vote
                    .connected
                    .iter()
                    .filter_map(|(_, l)| *l)
                    .max()
                    .unwrap_or(0);
                p.push_str(&format!(
                    ", lagging up to {} (limit {}): it may be locked or overloaded",
                    secs(worst),
                    secs(ctx.max_lag_ms)
                ));
            }
            parts.push(p);
        }
        if !vote.silent.is_empty() {
            parts.push(format!(
                "{} {} IO thread stopped without a connection error, which is no evidence it is down",
                list(&vote.silent),
                if vote.silent.len() == 1 {
                    "has its"
                } else {
                    "have their"
                }
            ));
        }
        if !vote.agree.is_empty() {
            parts.push(format!("{} cannot connect to it", list(&vote.agree)));
        }
        if !vote.unreachable.is_empty() {
            parts.push(format!(
                "{} {} unreachable too",
                list(&vote.unreachable),
                is_are(vote.unreachable.len())
            ));
        }
        s.push_str(&format!(" but {}", parts.join("; ")));
    }
    if downtimed {
        s.push_str(": it is downtimed, so no recovery");
    } else if vote.all.is_empty() || vote.reachable() == 0 {
        s.push_str(if intermediate {
            ": no replica left to move"
        } else {
            ": nothing to promote"
        });
    } else if !vote.agreed() {
        s.push_str(if intermediate {
            ": not moving its replicas"
        } else {
            ": not failing over"
        });
    }
    s
}

/// Why a failover of the semi-sync primary `key` (dead, as its replicas
/// agree) would not be automatic, when the replicas orca reaches may miss
/// an acknowledged write: the quorum rule of [`crate::plan::loss`], from
/// the primary as last seen. Starts with "; ".
fn quorum_shortfall(topo: &Topology, ctx: &AnalysisContext, key: &InstanceKey) -> Option<String> {
    let last = ctx.last_seen.get(key).filter(|l| l.semi_sync)?;
    let (quorum, unreachable) = AckQuorum::of(topo, key, last.wait_count, &last.not_acknowledging);
    let why = quorum.shortfall(key)?;
    if unreachable.is_empty() {
        return Some(format!("; {why}, nothing done"));
    }
    Some(format!(
        "; {why}, nothing done; a force-failover may lose the acknowledged writes only {} {}",
        list(&unreachable),
        if unreachable.len() == 1 {
            "has"
        } else {
            "have"
        }
    ))
}

/// How long a commit waits for a semi-sync acknowledgement: the largest
/// timeout a server takes (MySQL's is 2^32 - 1 ms) is orca's "never fall
/// back".
fn stall(timeout_ms: u64) -> String {
    if timeout_ms >= u64::from(u32::MAX) {
        "until one connects (the timeout never falls back to asynchronous)".into()
    } else {
        format!("for up to {}", secs(timeout_ms))
    }
}

/// Checks of a reachable primary (or co-primary).
fn primary_checks(topo: &Topology, node: &Node, snap: &Snapshot, out: &mut Vec<Finding>) {
    let mut replicas = node.replicas.clone();
    replicas.sort();
    let ss = &snap.semi_sync;
    // A read-only one (a fenced former primary) takes no commits to stall.
    if ss.primary_enabled && ss.primary_active && ss.clients < ss.wait_count && !snap.is_read_only()
    {
        out.push(Finding {
            code: Code::LockedSemiSyncPrimary,
            instance: node.key.clone(),
            replicas: replicas.clone(),
            description: format!(
                "{} has semi-sync active and waits for {} replica acknowledgement{} but has {} semi-sync replica{} connected: commits stall {}",
                node.key,
                ss.wait_count,
                plural(ss.wait_count as usize),
                ss.clients,
                plural(ss.clients as usize),
                stall(ss.timeout_ms)
            ),
        });
    }

    let reachable: Vec<(&InstanceKey, &ReplicaStatus)> = replicas
        .iter()
        .filter_map(|k| {
            let st = topo.get(k)?.snapshot.as_ref()?.replica.as_ref()?;
            Some((k, st))
        })
        .collect();
    if !reachable.is_empty() && reachable.iter().all(|(_, st)| !st.is_replicating()) {
        let states: Vec<String> = reachable
            .iter()
            .map(|(k, st)| format!("{k} ({})", threads(st)))
            .collect();
        let (code, mut description) = if replicas.len() == 1 {
            (
                Code::PrimarySingleReplicaNotReplicating,
                format!(
                    "the only replica of {} does not replicate: {}",
                    node.key,
                    states.join(", ")
                ),
            )
        } else {
            (
                Code::AllReplicasNotReplicating,
                format!(
                    "none of the {} reachable replicas of {} replicates: {}",
                    reachable.len(),
                    node.key,
                    states.join(", ")
                ),
            )
        };
        let unreachable = replicas.len() - reachable.len();
        if unreachable > 0 {
            description.push_str(&format!(
                "; {unreachable} more {} unreachable",
                is_are(unreachable)
            ));
        }
        out.push(Finding {
            code,
            instance: node.key.clone(),
            replicas: replicas.clone(),
            description,
        });
    }

    if snap.is_read_only() && !replicas.is_empty() {
        if node.role == Role::CoPrimary {
            // The pair (or ring) has no writer only when every reachable
            // member is read only; reported once, on the first of them.
            let mut members: Vec<&Node> = topo
                .ancestors(&node.key)
                .iter()
                .filter_map(|k| topo.get(k))
                .filter(|n| n.role == Role::CoPrimary)
                .chain(std::iter::once(node))
                .filter(|n| n.reachable())
                .collect();
            members.sort_by(|a, b| a.key.cmp(&b.key));
            let all_read_only = members
                .iter()
                .all(|n| n.snapshot.as_ref().is_some_and(|s| s.is_read_only()));
            if all_read_only && members.first().is_some_and(|n| n.key == node.key) {
                let keys: Vec<InstanceKey> = members.iter().map(|n| n.key.clone()).collect();
                out.push(Finding {
                    code: Code::NoWritablePrimary,
                    instance: node.key.clone(),
                    replicas: replicas.clone(),
                    description: format!(
                        "co-primar{} {} {} read only: nothing takes writes",
                        if keys.len() == 1 { "y" } else { "ies" },
                        list(&keys),
                        if keys.len() == 1 { "is" } else { "are all" }
                    ),
                });
            }
        } else {
            out.push(Finding {
                code: Code::NoWritablePrimary,
                instance: node.key.clone(),
                replicas: replicas.clone(),
                description: format!(
                    "primary {} is read only{} and has {}: nothing takes writes",
                    node.key,
                    if snap.super_read_only == Some(true) {
                        " (super_read_only)"
                    } else {
                        ""
                    },
                    count(replicas.len(), "replica")
                ),
            });
        }
    }
}

/// The reachable, writable instances that replicate from nothing, in key
/// order (co-primaries, which replicate from each other, are not among
/// them).
pub fn writable_tops(topo: &Topology) -> Vec<&Node> {
    topo.nodes
        .values()
        .filter(|n| n.role == Role::Primary && n.source.is_none())
        .filter(|n| n.snapshot.as_ref().is_some_and(|s| !s.is_read_only()))
        .collect()
}

/// With more than one writable instance at the top: the primary (the one
/// with the most replicas, or on a tie the one orca knows as the primary)
/// and the former primaries beside it, to fence. `None` when there is at
/// most one writable top, or when nothing tells which is the primary.
pub fn primary_and_former(
    topo: &Topology,
    ctx: &AnalysisContext,
) -> Option<(InstanceKey, Vec<InstanceKey>)> {
    let tops = writable_tops(topo);
    if tops.len() < 2 {
        return None;
    }
    let most = tops.iter().map(|n| n.replicas.len()).max()?;
    let leaders: Vec<&&Node> = tops.iter().filter(|n| n.replicas.len() == most).collect();
    let primary = match leaders.as_slice() {
        [one] => one.key.clone(),
        _ => leaders
            .iter()
            .find(|n| ctx.primary.as_ref() == Some(&n.key))?
            .key
            .clone(),
    };
    let former = tops
        .iter()
        .filter(|n| n.key != primary)
        .map(|n| n.key.clone())
        .collect();
    Some((primary, former))
}

/// Two writable primaries: a finding on each former one (or, when nothing
/// tells which is the primary, one on the first of them).
fn writable_tops_check(topo: &Topology, ctx: &AnalysisContext, out: &mut Vec<Finding>) {
    let tops = writable_tops(topo);
    if tops.len() < 2 {
        return;
    }
    match primary_and_former(topo, ctx) {
        Some((primary, former)) => {
            for f in former {
                out.push(Finding {
                    code: Code::MultipleWritablePrimaries,
                    description: format!(
                        "{f} is writable beside the primary {primary}: two writable primaries; {f} (the former primary) is fenced"
                    ),
                    instance: f,
                    replicas: vec![primary.clone()],
                });
            }
        }
        None => {
            let keys: Vec<InstanceKey> = tops.iter().map(|n| n.key.clone()).collect();
            out.push(Finding {
                code: Code::MultipleWritablePrimaries,
                instance: keys[0].clone(),
                replicas: keys[1..].to_vec(),
                description: format!(
                    "{} are all writable and nothing tells which is the primary: fence the former ones by hand",
                    list(&keys)
                ),
            });
        }
    }
}

/// Per-replica findings: errant GTIDs and lag.
fn replica_checks(ctx: &AnalysisContext, node: &Node, snap: &Snapshot, out: &mut Vec<Finding>) {
    let source = node
        .source
        .as_ref()
        .map_or_else(|| "its source".to_string(), |s| s.to_string());
    if let Some(errant) = node.errant.as_ref().filter(|e| !e.is_empty()) {
        out.push(Finding {
            code: Code::ErrantGtid,
            instance: node.key.clone(),
            replicas: Vec::new(),
            description: format!(
                "{} has errant GTIDs {errant} that its source {source} does not have",
                node.key
            ),
        });
    }
    if let Some(lag) = excess_lag(node, snap).filter(|l| *l > ctx.max_lag_ms) {
        let delay = snap.replica.as_ref().map_or(0, |r| r.sql_delay);
        let delayed = if delay > 0 {
            format!(" beyond its configured delay of {delay} s")
        } else {
            String::new()
        };
        out.push(Finding {
            code: Code::ReplicaLagging,
            instance: node.key.clone(),
            replicas: Vec::new(),
            description: format!(
                "{} lags {}{delayed} behind {source} (limit {})",
                node.key,
                secs(lag),
                secs(ctx.max_lag_ms)
            ),
        });
    }
}

/// The trees of the topology, each with its members (the root first, then
/// the others in key order). A co-primary ring is one tree, anchored on
/// its first member.
fn trees(topo: &Topology) -> Vec<(&Node, Vec<&Node>)> {
    let mut seen: BTreeSet<Vec<InstanceKey>> = BTreeSet::new();
    let mut out = Vec::new();
    for root in topo.roots() {
        let mut members: BTreeMap<&InstanceKey, &Node> = BTreeMap::new();
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if members.insert(&n.key, n).is_some() {
                continue;
            }
            stack.extend(n.replicas.iter().filter_map(|k| topo.get(k)));
        }
        let keys: Vec<InstanceKey> = members.keys().map(|k| (*k).clone()).collect();
        if !seen.insert(keys) {
            continue;
        }
        let mut list = vec![root];
        list.extend(members.into_values().filter(|n| n.key != root.key));
        out.push((root, list));
    }
    out
}

/// Instances grouped by a value they disagree on.
type Groups = BTreeMap<String, Vec<InstanceKey>>;

fn group_by<'a>(
    members: &[&'a Node],
    value: impl Fn(&'a Node, &'a Snapshot) -> Option<String>,
) -> Groups {
    let mut g = Groups::new();
    for n in members {
        if let Some(s) = n.snapshot.as_ref()
            && let Some(v) = value(n, s)
        {
            g.entry(v).or_default().push(n.key.clone());
        }
    }
    for keys in g.values_mut() {
        keys.sort();
    }
    g
}

fn describe_groups(g: &Groups) -> String {
    g.iter()
        .map(|(v, keys)| format!("{v} on {}", list(keys)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every instance of the groups but the root, sorted.
fn involved(g: &[&Groups], root: &InstanceKey) -> Vec<InstanceKey> {
    let set: BTreeSet<&InstanceKey> = g
        .iter()
        .flat_map(|g| g.values().flatten())
        .filter(|k| *k != root)
        .collect();
    set.into_iter().cloned().collect()
}

/// Structure warnings for one tree, over its reachable members.
fn structure_checks(topo: &Topology, root: &Node, members: &[&Node], out: &mut Vec<Finding>) {
    let formats = group_by(members, |_, s| {
        (s.log_bin && !s.binlog_format.is_empty()).then(|| s.binlog_format.to_ascii_uppercase())
    });
    if formats.len() > 1 {
        out.push(Finding {
            code: Code::DifferentBinlogFormats,
            instance: root.key.clone(),
            replicas: involved(&[&formats], &root.key),
            description: format!(
                "the tree of {} mixes binlog formats: {}",
                root.key,
                describe_groups(&formats)
            ),
        });
    }

    let versions = group_by(members, |_, s| {
        Some(format!(
            "{} {}.{}",
            s.flavor, s.version.major, s.version.minor
        ))
    });
    if versions.len() > 1 {
        out.push(Finding {
            code: Code::DifferentMajorVersions,
            instance: root.key.clone(),
            replicas: involved(&[&versions], &root.key),
            description: format!(
                "the tree of {} mixes major versions: {}",
                root.key,
                describe_groups(&versions)
            ),
        });
    }

    let direct: Vec<&Snapshot> = root
        .replicas
        .iter()
        .filter_map(|k| topo.get(k)?.snapshot.as_deref())
        .collect();
    if !direct.is_empty() && !direct.iter().any(|s| s.log_bin && s.log_replica_updates) {
        let mut keys: Vec<InstanceKey> = direct.iter().map(|s| s.key.clone()).collect();
        keys.sort();
        out.push(Finding {
            code: Code::NoLoggingReplicas,
            instance: root.key.clone(),
            description: format!(
                "none of the replicas of {} ({}) has both log_bin and log_replica_updates: none could be promoted",
                root.key,
                list(&keys)
            ),
            replicas: keys,
        });
    }

    let channels = group_by(members, |_, s| {
        s.replica.as_ref().map(|r| {
            if r.gtid_mode.uses_gtid() {
                "GTID".to_string()
            } else {
                "file/position".to_string()
            }
        })
    });
    let modes = group_by(members, |_, s| {
        (s.flavor == crate::topology::Flavor::MySql)
            .then(|| s.gtid.mode.as_ref().map(|m| m.to_ascii_uppercase()))
            .flatten()
    });
    if channels.len() > 1 || modes.len() > 1 {
        let mut what = Vec::new();
        if channels.len() > 1 {
            what.push(format!(
                "replication channels mix {}",
                describe_groups(&channels)
            ));
        }
        if modes.len() > 1 {
            what.push(format!("gtid_mode differs: {}", describe_groups(&modes)));
        }
        let groups: Vec<&Groups> = [&channels, &modes]
            .into_iter()
            .filter(|g| g.len() > 1)
            .collect();
        out.push(Finding {
            code: Code::DifferentGtidModes,
            instance: root.key.clone(),
            replicas: involved(&groups, &root.key),
            description: format!("in the tree of {}, {}", root.key, what.join("; ")),
        });
    }
}

fn threads(st: &ReplicaStatus) -> String {
    let mut s = format!("IO {}", st.io_running);
    if st.last_io_errno != 0 {
        s.push_str(&format!(" error {}", st.last_io_errno));
    }
    s.push_str(if st.sql_running {
        ", SQL Yes"
    } else {
        ", SQL No"
    });
    if st.last_sql_errno != 0 {
        s.push_str(&format!(" error {}", st.last_sql_errno));
    }
    s
}

fn list(keys: &[InstanceKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", plural(n))
}

fn its_replicas(n: usize) -> String {
    if n == 1 {
        "its replica".to_string()
    } else {
        format!("its {n} replicas")
    }
}

fn is_are(n: usize) -> &'static str {
    if n == 1 { "is" } else { "are" }
}

/// Milliseconds as seconds: `12 s`, `1.5 s`.
fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cluster::ExternalSignal;
    use crate::topology::graph::Unreached;
    use crate::topology::instance::GtidChannelMode;
    use crate::topology::testing::{
        behind, down, io_stopped, key, mariadb, replica_of, source_down, sql_stopped, with_gtid,
    };
    use crate::topology::{Snapshot, Version};

    fn run(snaps: Vec<Snapshot>, unreached: Vec<Unreached>, ctx: &AnalysisContext) -> Vec<Finding> {
        analyze(&Topology::build(snaps, unreached), ctx)
    }

    fn codes(found: &[Finding]) -> Vec<(Code, String)> {
        let mut v: Vec<(Code, String)> = found
            .iter()
            .map(|f| (f.code, f.instance.host.clone()))
            .collect();
        v.sort();
        v
    }

    fn downtimed(hosts: &[&str]) -> AnalysisContext {
        AnalysisContext {
            downtimed: hosts.iter().map(|h| key(h)).collect(),
            ..AnalysisContext::default()
        }
    }

    struct Case {
        name: &'static str,
        snaps: Vec<Snapshot>,
        down: Vec<Unreached>,
        expect: Vec<(Code, &'static str)>,
    }

    fn case(
        name: &'static str,
        snaps: Vec<Snapshot>,
        down: Vec<Unreached>,
        expect: &[(Code, &'static str)],
    ) -> Case {
        Case {
            name,
            snaps,
            down,
            expect: expect.to_vec(),
        }
    }

    fn table() -> Vec<Case> {
        use Code::*;
        let mut locked = mariadb("p", 1);
        locked.semi_sync.primary_enabled = true;
        locked.semi_sync.primary_active = true;
        locked.semi_sync.wait_count = 1;
        locked.semi_sync.clients = 0;
        locked.semi_sync.timeout_ms = 10_000;
        let mut fenced_locked = locked.clone();
        fenced_locked.read_only = true;
        let mut read_only = mariadb("p", 1);
        read_only.read_only = true;
        let mut statement = replica_of("r2", 3, "p");
        statement.binlog_format = "STATEMENT".into();
        let mut newer = replica_of("r2", 3, "p");
        newer.version = Version::parse("11.4.2-MariaDB").unwrap();
        let mut quiet1 = replica_of("r1", 2, "p");
        quiet1.log_replica_updates = false;
        let mut quiet2 = replica_of("r2", 3, "p");
        quiet2.log_bin = false;
        let mut file_pos = replica_of("r2", 3, "p");
        file_pos.replica.as_mut().unwrap().gtid_mode = GtidChannelMode::No;
        vec![
            case(
                "dead primary",
                vec![
                    source_down(replica_of("r1", 2, "p")),
                    source_down(replica_of("r2", 3, "p")),
                ],
                vec![down("p", None)],
                &[(DeadPrimary, "p")],
            ),
            case(
                "dead primary and some replicas",
                vec![source_down(replica_of("r1", 2, "p"))],
                vec![down("p", None), down("r2", Some("p"))],
                &[(DeadPrimaryAndSomeReplicas, "p")],
            ),
            case(
                "dead primary and replicas",
                vec![],
                vec![
                    down("p", None),
                    down("r1", Some("p")),
                    down("r2", Some("p")),
                ],
                &[(DeadPrimaryAndReplicas, "p")],
            ),
            case(
                "dead primary without replicas",
                vec![],
                vec![down("p", None)],
                &[(DeadPrimaryWithoutReplicas, "p")],
            ),
            case(
                "unreachable primary, one replica still connected",
                vec![
                    source_down(replica_of("r1", 2, "p")),
                    replica_of("r2", 3, "p"),
                ],
                vec![down("p", None)],
                &[(UnreachablePrimary, "p")],
            ),
            case(
                "unreachable primary with lagging replicas",
                vec![
                    behind(replica_of("r1", 2, "p"), 60),
                    source_down(replica_of("r2", 3, "p")),
                ],
                vec![down("p", None)],
                &[
                    (UnreachablePrimaryWithLaggingReplicas, "p"),
                    (ReplicaLagging, "r1"),
                ],
            ),
            case(
                "a read-only primary with semi-sync and no replica takes no commits to stall",
                vec![fenced_locked],
                vec![],
                &[],
            ),
            case(
                "locked semi-sync primary",
                vec![locked, replica_of("r1", 2, "p")],
                vec![],
                &[(LockedSemiSyncPrimary, "p")],
            ),
            case(
                "all replicas not replicating",
                vec![
                    mariadb("p", 1),
                    sql_stopped(replica_of("r1", 2, "p")),
                    io_stopped(replica_of("r2", 3, "p")),
                ],
                vec![],
                &[(AllReplicasNotReplicating, "p")],
            ),
            case(
                "primary single replica not replicating",
                vec![mariadb("p", 1), sql_stopped(replica_of("r1", 2, "p"))],
                vec![],
                &[(PrimarySingleReplicaNotReplicating, "p")],
            ),
            case(
                "dead intermediate primary",
                vec![
                    mariadb("p", 1),
                    source_down(replica_of("l1", 3, "mid")),
                    source_down(replica_of("l2", 4, "mid")),
                ],
                vec![down("mid", Some("p"))],
                &[(DeadIntermediatePrimary, "mid")],
            ),
            case(
                "dead intermediate primary and some replicas",
                vec![mariadb("p", 1), source_down(replica_of("l1", 3, "mid"))],
                vec![down("mid", Some("p")), down("l2", Some("mid"))],
                &[(DeadIntermediatePrimaryAndSomeReplicas, "mid")],
            ),
            case(
                "dead intermediate primary with single replica",
                vec![mariadb("p", 1), source_down(replica_of("l1", 3, "mid"))],
                vec![down("mid", Some("p"))],
                &[(DeadIntermediatePrimaryWithSingleReplica, "mid")],
            ),
            case(
                "dead intermediate primary and replicas",
                vec![mariadb("p", 1)],
                vec![
                    down("mid", Some("p")),
                    down("l1", Some("mid")),
                    down("l2", Some("mid")),
                ],
                &[(DeadIntermediatePrimaryAndReplicas, "mid")],
            ),
            case(
                "unreachable intermediate primary",
                vec![
                    mariadb("p", 1),
                    source_down(replica_of("l1", 3, "mid")),
                    replica_of("l2", 4, "mid"),
                ],
                vec![down("mid", Some("p"))],
                &[(UnreachableIntermediatePrimary, "mid")],
            ),
            case(
                "no writable primary",
                vec![read_only, replica_of("r1", 2, "p")],
                vec![],
                &[(NoWritablePrimary, "p")],
            ),
            case(
                "multiple writable primaries",
                vec![mariadb("old", 1), mariadb("p", 2), replica_of("r1", 3, "p")],
                vec![],
                &[(MultipleWritablePrimaries, "old")],
            ),
            case(
                "errant gtid",
                vec![
                    with_gtid(mariadb("p", 1), "0-1-10"),
                    with_gtid(replica_of("r1", 2, "p"), "0-1-10"),
                    with_gtid(replica_of("r2", 3, "p"), "0-1-10,0-3-11"),
                ],
                vec![],
                &[(ErrantGtid, "r2")],
            ),
            case(
                "replica lagging",
                vec![
                    mariadb("p", 1),
                    behind(replica_of("r1", 2, "p"), 60),
                    replica_of("r2", 3, "p"),
                ],
                vec![],
                &[(ReplicaLagging, "r1")],
            ),
            case(
                "different binlog formats",
                vec![mariadb("p", 1), replica_of("r1", 2, "p"), statement],
                vec![],
                &[(DifferentBinlogFormats, "p")],
            ),
            case(
                "different major versions",
                vec![mariadb("p", 1), replica_of("r1", 2, "p"), newer],
                vec![],
                &[(DifferentMajorVersions, "p")],
            ),
            case(
                "no logging replicas",
                vec![mariadb("p", 1), quiet1, quiet2],
                vec![],
                &[(NoLoggingReplicas, "p")],
            ),
            case(
                "different gtid modes",
                vec![mariadb("p", 1), replica_of("r1", 2, "p"), file_pos],
                vec![],
                &[(DifferentGtidModes, "p")],
            ),
        ]
    }

    #[test]
    fn one_case_per_code() {
        let mut covered = BTreeSet::new();
        for c in table() {
            let got = codes(&run(c.snaps, c.down, &AnalysisContext::default()));
            let mut want: Vec<(Code, String)> = c
                .expect
                .iter()
                .map(|(code, h)| (*code, h.to_string()))
                .collect();
            want.sort();
            assert_eq!(got, want, "case {:?}", c.name);
            covered.extend(c.expect.iter().map(|(code, _)| *code));
        }
        for code in Code::ALL {
            assert!(covered.contains(&code), "no table case for {code}");
        }
    }

    #[test]
    fn healthy_topology_has_no_findings() {
        let got = run(
            vec![
                with_gtid(mariadb("p", 1), "0-1-10"),
                with_gtid(replica_of("mid", 2, "p"), "0-1-10"),
                with_gtid(replica_of("r1", 3, "mid"), "0-1-10"),
                with_gtid(replica_of("r2", 4, "p"), "0-1-10"),
            ],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(got, vec![]);
    }

    #[test]
    fn sql_stopped_under_a_healthy_primary_is_no_failure() {
        let got = run(
            vec![
                mariadb("p", 1),
                sql_stopped(replica_of("r1", 2, "p")),
                replica_of("r2", 3, "p"),
            ],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(got, vec![]);
        let got = run(
            vec![mariadb("p", 1), sql_stopped(replica_of("r1", 2, "p"))],
            vec![],
            &AnalysisContext::default(),
        );
        assert!(got.iter().all(|f| !f.is_failure()), "{got:?}");
        assert_eq!(
            got[0].description,
            "the only replica of p:3306 does not replicate: r1:3306 (IO Yes, SQL No)"
        );
    }

    #[test]
    fn dead_primary_description_names_the_evidence() {
        let ctx = AnalysisContext {
            signals: BTreeMap::from([(key("p"), vec![ExternalSignal::NodeNotReady])]),
            ..AnalysisContext::default()
        };
        let got = run(
            vec![
                source_down(replica_of("r1", 2, "p")),
                source_down(replica_of("r2", 3, "p")),
            ],
            vec![down("p", None)],
            &ctx,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code, Code::DeadPrimary);
        assert_eq!(got[0].replicas, vec![key("r1"), key("r2")]);
        assert_eq!(
            got[0].description,
            "p:3306 is unreachable (connection refused; its node is not ready) and its 2 replicas \
             r1:3306, r2:3306 cannot connect to it"
        );
    }

    #[test]
    fn a_dead_semi_sync_primary_says_when_the_reachable_replicas_may_miss_an_acknowledged_write() {
        use crate::plan::loss::LastSeenPrimary;
        use std::collections::BTreeSet;
        // cut off, not acknowledging, wait count, last seen as semi-sync,
        // downtimed: the explanation expected, if any
        type Row = (
            &'static [&'static str],
            &'static [&'static str],
            u32,
            bool,
            bool,
            Option<&'static str>,
        );
        let table: &[Row] = &[
            (
                &["r1"],
                &[],
                1,
                true,
                false,
                Some(
                    "; semi-sync: 2 of the 3 replicas of p:3306 that acknowledge writes are reachable, \
                     and with waitCount 1 every acknowledged write is on a reachable one only when 3 are \
                     (replicas - waitCount + 1); an acknowledged write may be only on the unreachable \
                     ones, or p:3306 may still be committing with them (a partition): no automatic \
                     failover, nothing done; a force-failover may lose the acknowledged writes only \
                     r1:3306 has",
                ),
            ),
            // enough replicas reachable: nothing to explain
            (&["r1"], &[], 2, true, false, None),
            (&[], &[], 1, true, false, None),
            // the cut-off replica does not acknowledge
            (&["r1"], &["r1"], 1, true, false, None),
            (
                &["r1", "r2"],
                &["r1"],
                1,
                true,
                false,
                Some("only r2:3306 has"),
            ),
            // not semi-sync: the loss is reported by the recovery instead
            (&["r1"], &[], 1, false, false, None),
            // downtimed: no recovery either way, and it says so
            (&["r1"], &[], 1, true, true, None),
        ];
        for &(cut, silent, wait, semi_sync, downtime, want) in table {
            let mut snaps = Vec::new();
            let mut unreached = vec![down("p", None)];
            for (i, r) in ["r1", "r2", "r3"].into_iter().enumerate() {
                if cut.contains(&r) {
                    unreached.push(down(r, Some("p")));
                } else {
                    snaps.push(source_down(replica_of(r, 2 + i as u32, "p")));
                }
            }
            let mut ctx = if downtime {
                downtimed(&["p"])
            } else {
                AnalysisContext::default()
            };
            ctx.last_seen.insert(
                key("p"),
                LastSeenPrimary {
                    key: key("p"),
                    semi_sync,
                    wait_count: wait,
                    executed: None,
                    not_acknowledging: silent.iter().map(|h| key(h)).collect::<BTreeSet<_>>(),
                },
            );
            let got = run(snaps, unreached, &ctx);
            let f = got
                .iter()
                .find(|f| f.instance == key("p"))
                .unwrap_or_else(|| panic!("{cut:?}: {got:?}"));
            let case = format!("{cut:?} {silent:?} wait {wait} semi-sync {semi_sync}");
            assert_eq!(f.is_failure(), !downtime, "{case}: {f}");
            match want {
                Some(why) => {
                    assert!(f.description.contains(why), "{case}: {}", f.description);
                    assert!(f.description.contains("no automatic failover"), "{case}");
                }
                None => assert!(
                    !f.description.contains("semi-sync"),
                    "{case}: {}",
                    f.description
                ),
            }
        }
        // The full sentence of the first row.
        let mut ctx = AnalysisContext::default();
        ctx.last_seen.insert(
            key("p"),
            LastSeenPrimary {
                key: key("p"),
                semi_sync: true,
                wait_count: 1,
                executed: None,
                not_acknowledging: BTreeSet::new(),
            },
        );
        let got = run(
            vec![
                source_down(replica_of("r2", 3, "p")),
                source_down(replica_of("r3", 4, "p")),
            ],
            vec![down("p", None), down("r1", Some("p"))],
            &ctx,
        );
        assert_eq!(got[0].code, Code::DeadPrimaryAndSomeReplicas);
        assert!(
            got[0].description.starts_with(
                "p:3306 is unreachable (connection refused) and its replicas r2:3306, r3:3306 \
                 cannot connect to it; r1:3306 is unreachable too; semi-sync: 2 of the 3"
            ),
            "{}",
            got[0].description
        );
    }

    #[test]
    fn a_signal_never_replaces_the_replicas_agreement() {
        for signal in [
            ExternalSignal::Deleted,
            ExternalSignal::ContainerRestarting,
            ExternalSignal::NotReady,
            ExternalSignal::NodeNotReady,
        ] {
            let ctx = AnalysisContext {
                signals: BTreeMap::from([(key("p"), vec![signal])]),
                ..AnalysisContext::default()
            };
            let got = run(
                vec![
                    source_down(replica_of("r1", 2, "p")),
                    replica_of("r2", 3, "p"),
                ],
                vec![down("p", None)],
                &ctx,
            );
            assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
            assert!(got[0].description.contains(signal.phrase()));
            // A reachable primary stays healthy whatever Kubernetes says.
            let got = run(
                vec![mariadb("p", 1), replica_of("r1", 2, "p")],
                vec![],
                &ctx,
            );
            assert_eq!(got, vec![]);
        }
    }

    #[test]
    fn one_connected_replica_prevents_failover() {
        let got = run(
            vec![
                source_down(replica_of("r1", 2, "p")),
                source_down(replica_of("r2", 3, "p")),
                replica_of("r3", 4, "p"),
            ],
            vec![down("p", None), down("r4", Some("p"))],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        assert!(!got[0].is_failure());
        assert_eq!(
            got[0].description,
            "p:3306 is unreachable (connection refused) but r3:3306 is still connected to it; \
             r1:3306, r2:3306 cannot connect to it; r4:3306 is unreachable too: not failing over"
        );
    }

    #[test]
    fn an_operator_stopped_io_thread_is_no_agreement() {
        // One replica fails to connect, the other was stopped by hand.
        let got = run(
            vec![
                source_down(replica_of("r1", 2, "p")),
                io_stopped(replica_of("r2", 3, "p")),
            ],
            vec![down("p", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        assert!(
            got[0]
                .description
                .contains("r2:3306 has its IO thread stopped without a connection error")
        );
        // All stopped by hand: no evidence at all.
        let got = run(
            vec![
                io_stopped(replica_of("r1", 2, "p")),
                io_stopped(replica_of("r2", 3, "p")),
            ],
            vec![down("p", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        // The same under an intermediate primary.
        let got = run(
            vec![
                mariadb("p", 1),
                source_down(replica_of("l1", 3, "mid")),
                io_stopped(replica_of("l2", 4, "mid")),
            ],
            vec![down("mid", Some("p"))],
            &AnalysisContext::default(),
        );
        assert_eq!(
            codes(&got),
            vec![(Code::UnreachableIntermediatePrimary, "mid".into())]
        );
        // A stopped IO thread with a connection error does agree.
        let mut r2 = io_stopped(replica_of("r2", 3, "p"));
        r2.replica.as_mut().unwrap().last_io_errno = 2013;
        let got = run(
            vec![source_down(replica_of("r1", 2, "p")), r2],
            vec![down("p", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::DeadPrimary, "p".into())]);
    }

    #[test]
    fn downtimed_dead_primary_is_not_a_failure() {
        let snaps = || {
            vec![
                source_down(replica_of("r1", 2, "p")),
                source_down(replica_of("r2", 3, "p")),
            ]
        };
        let got = run(snaps(), vec![down("p", None)], &downtimed(&["p"]));
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        assert!(
            got[0]
                .description
                .ends_with("it is downtimed, so no recovery")
        );
        for down_set in [
            vec![down("p", None)],
            vec![down("p", None), down("r1", Some("p"))],
        ] {
            let snaps = vec![source_down(replica_of("r2", 3, "p"))];
            let got = run(snaps, down_set, &downtimed(&["p"]));
            assert!(got.iter().all(|f| !f.is_failure()), "{got:?}");
        }
        let got = run(vec![], vec![down("p", None)], &downtimed(&["p"]));
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        let got = run(
            vec![mariadb("p", 1), source_down(replica_of("l1", 3, "mid"))],
            vec![down("mid", Some("p"))],
            &downtimed(&["mid"]),
        );
        assert_eq!(
            codes(&got),
            vec![(Code::UnreachableIntermediatePrimary, "mid".into())]
        );
    }

    #[test]
    fn downtimed_replicas_with_stopped_io_do_not_vote() {
        let snaps = || {
            vec![
                source_down(replica_of("r1", 2, "p")),
                io_stopped(replica_of("r2", 3, "p")),
            ]
        };
        let got = run(snaps(), vec![down("p", None)], &downtimed(&["r2"]));
        assert_eq!(codes(&got), vec![(Code::DeadPrimary, "p".into())]);
        assert!(got[0].description.contains("downtimed r2:3306"));
        // A connected replica proves the primary alive, downtimed or not.
        let got = run(
            vec![
                source_down(replica_of("r1", 2, "p")),
                replica_of("r2", 3, "p"),
            ],
            vec![down("p", None)],
            &downtimed(&["r2"]),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
        // Nobody left to vote: no verdict of death.
        let got = run(
            vec![io_stopped(replica_of("r2", 3, "p"))],
            vec![down("p", None)],
            &downtimed(&["r2"]),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "p".into())]);
    }

    #[test]
    fn connected_replicas_must_all_lag() {
        let got = run(
            vec![
                behind(replica_of("r1", 2, "p"), 60),
                source_down(replica_of("r2", 3, "p")),
            ],
            vec![down("p", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(
            got[0].description,
            "p:3306 is unreachable (connection refused) but r1:3306 is still connected to it, \
             lagging up to 60 s (limit 10 s): it may be locked or overloaded; r2:3306 cannot \
             connect to it: not failing over"
        );
        let got = run(
            vec![
                behind(replica_of("r1", 2, "p"), 60),
                replica_of("r2", 3, "p"),
            ],
            vec![down("p", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(
            codes(&got),
            vec![
                (Code::UnreachablePrimary, "p".into()),
                (Code::ReplicaLagging, "r1".into())
            ]
        );
    }

    #[test]
    fn a_delayed_replica_lags_only_beyond_its_delay() {
        let mut delayed = behind(replica_of("r1", 2, "p"), 3_600);
        delayed.replica.as_mut().unwrap().sql_delay = 3_600;
        let mut late = behind(replica_of("r2", 3, "p"), 3_700);
        late.replica.as_mut().unwrap().sql_delay = 3_600;
        let got = run(
            vec![mariadb("p", 1), delayed, late],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::ReplicaLagging, "r2".into())]);
        assert_eq!(
            got[0].description,
            "r2:3306 lags 100 s beyond its configured delay of 3600 s behind p:3306 (limit 10 s)"
        );
    }

    #[test]
    fn dead_co_primary() {
        // The dead one kept its last source: the cycle stays whole.
        let mut b = source_down(replica_of("b", 2, "a"));
        b.read_only = false;
        let got = run(
            vec![b.clone(), source_down(replica_of("r", 3, "a"))],
            vec![down("a", Some("b"))],
            &AnalysisContext::default(),
        );
        let t = Topology::build(
            vec![b.clone(), source_down(replica_of("r", 3, "a"))],
            vec![down("a", Some("b"))],
        );
        assert_eq!(t.get(&key("a")).unwrap().role, Role::CoPrimary);
        assert_eq!(codes(&got), vec![(Code::DeadPrimary, "a".into())]);
        assert_eq!(got[0].replicas, vec![key("b"), key("r")]);
        // It did not: its partner hangs below it, same verdict.
        let got = run(
            vec![b.clone(), source_down(replica_of("r", 3, "a"))],
            vec![down("a", None)],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::DeadPrimary, "a".into())]);
        // The partner still replicates from it: unreachable only.
        let mut b = replica_of("b", 2, "a");
        b.read_only = false;
        let got = run(
            vec![b, source_down(replica_of("r", 3, "a"))],
            vec![down("a", Some("b"))],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::UnreachablePrimary, "a".into())]);
    }

    #[test]
    fn co_primaries_need_one_writer() {
        let mut a = replica_of("a", 1, "b");
        a.read_only = false;
        let b = replica_of("b", 2, "a");
        let got = run(
            vec![a.clone(), b.clone(), replica_of("r", 3, "a")],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(got, vec![]);
        a.read_only = true;
        let got = run(
            vec![a, b, replica_of("r", 3, "a")],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(codes(&got), vec![(Code::NoWritablePrimary, "a".into())]);
        assert_eq!(
            got[0].description,
            "co-primaries a:3306, b:3306 are all read only: nothing takes writes"
        );
    }

    #[test]
    fn which_of_two_writable_primaries_is_the_former() {
        let ro = |mut s: Snapshot| {
            s.read_only = true;
            s
        };
        let hint = |h: &str| AnalysisContext {
            primary: Some(key(h)),
            ..AnalysisContext::default()
        };
        // (case, snapshots, orca's primary, primary and former ones)
        type Want = Option<(&'static str, Vec<&'static str>)>;
        let cases: Vec<(&str, Vec<Snapshot>, AnalysisContext, Want)> = vec![
            (
                "the one with replicas is the primary",
                vec![mariadb("a", 1), mariadb("b", 2), replica_of("r", 3, "b")],
                hint("a"),
                Some(("b", vec!["a"])),
            ),
            (
                "a tie: orca's primary",
                vec![mariadb("a", 1), mariadb("b", 2)],
                hint("b"),
                Some(("b", vec!["a"])),
            ),
            (
                "a tie and no hint: nothing tells",
                vec![mariadb("a", 1), mariadb("b", 2)],
                AnalysisContext::default(),
                None,
            ),
            (
                "three: two former",
                vec![
                    mariadb("a", 1),
                    mariadb("b", 2),
                    mariadb("c", 3),
                    replica_of("r", 4, "c"),
                ],
                AnalysisContext::default(),
                Some(("c", vec!["a", "b"])),
            ),
            (
                "a read-only one is no primary",
                vec![ro(mariadb("a", 1)), mariadb("b", 2)],
                AnalysisContext::default(),
                None,
            ),
        ];
        for (name, snaps, ctx, want) in cases {
            let t = Topology::build(snaps, vec![]);
            let got = primary_and_former(&t, &ctx);
            let want = want.map(|(p, f)| (key(p), f.into_iter().map(key).collect::<Vec<_>>()));
            assert_eq!(got, want, "{name}");
            let found: Vec<Finding> = analyze(&t, &ctx)
                .into_iter()
                .filter(|f| f.code == Code::MultipleWritablePrimaries)
                .collect();
            match &got {
                Some((p, former)) => {
                    let on: Vec<InstanceKey> = found.iter().map(|f| f.instance.clone()).collect();
                    assert_eq!(&on, former, "{name}");
                    assert!(
                        found.iter().all(|f| f.replicas == vec![p.clone()]),
                        "{name}"
                    );
                }
                None if name.starts_with("a tie") => {
                    assert_eq!(found.len(), 1, "{name}");
                    assert!(
                        found[0]
                            .description
                            .contains("fence the former ones by hand")
                    );
                }
                None => assert!(found.is_empty(), "{name}: {found:?}"),
            }
        }
        let t = Topology::build(
            vec![mariadb("a", 1), mariadb("p", 2), replica_of("r", 3, "p")],
            vec![],
        );
        let f = analyze(&t, &AnalysisContext::default());
        assert_eq!(
            f[0].description,
            "a:3306 is writable beside the primary p:3306: two writable primaries; a:3306 (the former primary) is fenced"
        );
    }

    #[test]
    fn structure_warnings_span_the_whole_tree() {
        // The odd one out sits two levels down, below a dead intermediate.
        let mut deep = source_down(replica_of("leaf", 4, "mid"));
        deep.binlog_format = "MIXED".into();
        deep.version = Version::parse("10.6.18-MariaDB").unwrap();
        let got = run(
            vec![mariadb("p", 1), replica_of("r", 2, "p"), deep],
            vec![down("mid", Some("p"))],
            &AnalysisContext::default(),
        );
        assert_eq!(
            codes(&got),
            vec![
                (Code::DeadIntermediatePrimaryWithSingleReplica, "mid".into()),
                (Code::DifferentBinlogFormats, "p".into()),
                (Code::DifferentMajorVersions, "p".into()),
            ]
        );
        let formats = got
            .iter()
            .find(|f| f.code == Code::DifferentBinlogFormats)
            .unwrap();
        assert_eq!(
            formats.description,
            "the tree of p:3306 mixes binlog formats: MIXED on leaf:3306; ROW on p:3306, r:3306"
        );
        assert_eq!(formats.replicas, vec![key("leaf"), key("r")]);
        // A co-primary ring is one tree: one warning, not one per member.
        let mut odd = replica_of("r", 3, "a");
        odd.binlog_format = "STATEMENT".into();
        let mut a = replica_of("a", 1, "b");
        a.read_only = false;
        let got = run(
            vec![a, replica_of("b", 2, "a"), odd],
            vec![],
            &AnalysisContext::default(),
        );
        assert_eq!(
            codes(&got),
            vec![(Code::DifferentBinlogFormats, "a".into())]
        );
    }

    #[test]
    fn mysql_gtid_modes_differ() {
        let mut p = mariadb("p", 1);
        p.flavor = crate::topology::Flavor::MySql;
        p.version = Version::parse("8.0.36").unwrap();
        p.gtid.mode = Some("ON".into());
        let mut r = replica_of("r", 2, "p");
        r.flavor = p.flavor;
        r.version = p.version.clone();
        r.gtid.mode = Some("ON_PERMISSIVE".into());
        r.replica.as_mut().unwrap().gtid_mode = GtidChannelMode::AutoPosition;
        let got = run(vec![p, r], vec![], &AnalysisContext::default());
        assert_eq!(codes(&got), vec![(Code::DifferentGtidModes, "p".into())]);
        assert_eq!(
            got[0].description,
            "in the tree of p:3306, gtid_mode differs: ON on p:3306; ON_PERMISSIVE on r:3306"
        );
    }

    #[test]
    fn failures_come_first() {
        let got = run(
            vec![
                mariadb("a", 1),
                behind(replica_of("b", 2, "a"), 60),
                source_down(replica_of("l1", 4, "z")),
                source_down(replica_of("l2", 5, "z")),
            ],
            vec![down("z", Some("a"))],
            &AnalysisContext::default(),
        );
        let order: Vec<(Code, String)> = got
            .iter()
            .map(|f| (f.code, f.instance.host.clone()))
            .collect();
        assert_eq!(
            order,
            vec![
                (Code::DeadIntermediatePrimary, "z".into()),
                (Code::ReplicaLagging, "b".into()),
            ]
        );
    }

    #[test]
    fn a_semi_sync_timeout_that_never_falls_back_reads_as_such() {
        assert_eq!(stall(10_000), format!("for up to {}", secs(10_000)));
        let never = stall(crate::mysql::dialect::semi_sync_timeout_max_ms(
            crate::topology::Flavor::MariaDb,
        ));
        assert!(never.starts_with("until one connects"), "{never}");
        let never = stall(crate::mysql::dialect::semi_sync_timeout_max_ms(
            crate::topology::Flavor::MySql,
        ));
        assert!(never.starts_with("until one connects"), "{never}");
    }

    #[test]
    fn vocabulary() {
        let failures: Vec<Code> = Code::ALL.into_iter().filter(|c| c.is_failure()).collect();
        assert_eq!(
            failures,
            vec![
                Code::DeadPrimary,
                Code::DeadPrimaryAndSomeReplicas,
                Code::DeadIntermediatePrimary,
                Code::DeadIntermediatePrimaryAndSomeReplicas,
                Code::DeadIntermediatePrimaryWithSingleReplica,
            ]
        );
        for c in Code::ALL {
            assert_eq!(c.name(), format!("{c:?}"));
            assert_eq!(c.to_string(), c.name());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
            if c.is_failure() {
                assert_eq!(c.severity(), crate::analysis::Severity::Critical);
            }
        }
        let f = Finding {
            code: Code::DeadPrimary,
            instance: key("p"),
            replicas: vec![key("r")],
            description: "d".into(),
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({
                "code": "DeadPrimary",
                "instance": "p:3306",
                "replicas": ["r:3306"],
                "description": "d",
            })
        );
    }

    /// A hung primary keeps its replicas' connections open: their streams'
    /// silence, against the heartbeat period each replica was promised,
    /// is the evidence. (silence of r1, of r2, their period) → finding.
    #[test]
    fn stalled_streams_count_against_their_heartbeat_period() {
        let table: &[(&str, u64, u64, Option<u64>, Code)] = &[
            (
                "both past two periods",
                1_000,
                1_200,
                Some(500),
                Code::DeadPrimary,
            ),
            (
                "one short of two periods",
                1_000,
                999,
                Some(500),
                Code::UnreachablePrimary,
            ),
            (
                "the period orca points replicas with, two of them",
                500,
                520,
                Some(250),
                Code::DeadPrimary,
            ),
            (
                "the period orca points replicas with, one short",
                500,
                499,
                Some(250),
                Code::UnreachablePrimary,
            ),
            (
                "unknown period: the threshold",
                500,
                500,
                None,
                Code::DeadPrimary,
            ),
            (
                "unknown period, under it",
                499,
                500,
                None,
                Code::UnreachablePrimary,
            ),
            (
                "a long period: 5 s is no stall",
                5_000,
                5_000,
                Some(30_000),
                Code::UnreachablePrimary,
            ),
            (
                "a long period, two of them",
                60_000,
                60_000,
                Some(30_000),
                Code::DeadPrimary,
            ),
            (
                "a short period: the threshold still",
                450,
                450,
                Some(100),
                Code::UnreachablePrimary,
            ),
            (
                "heartbeats off: silence is no evidence",
                600_000,
                600_000,
                Some(0),
                Code::UnreachablePrimary,
            ),
        ];
        for (name, r1, r2, period, want) in table {
            let mut snaps = vec![replica_of("r1", 2, "p"), replica_of("r2", 3, "p")];
            for s in &mut snaps {
                if let Some(r) = s.replica.as_mut() {
                    r.received_heartbeats = Some(7);
                    r.heartbeat_period_ms = *period;
                }
            }
            let ctx = AnalysisContext {
                stalled_ms: BTreeMap::from([(key("r1"), *r1), (key("r2"), *r2)]),
                ..AnalysisContext::default()
            };
            let got = run(snaps, vec![down("p", None)], &ctx);
            let codes: Vec<Code> = got.iter().map(|f| f.code).collect();
            assert_eq!(codes, vec![*want], "{name}");
        }
    }
}
