//! Operations on one instance: start or stop its replication, make it
//! read only or writable, fix its errant transactions. Each is a plan
//! like a refactoring's, refused with a reason when it would do nothing
//! or break a rule (two writable instances, an instance made writable
//! while it replicates). None has a rollback: a failed step is reported
//! and the plan stops (point of no return 0).

use super::candidate::errant_of;
use super::error::PlanError;
use super::legality::Refusal;
use super::refactor::WAIT_REPLICATING;
use super::step::{Plan, PlanKind, SourcePosition, Step};
use crate::topology::instance::IoThreadState;
use crate::topology::{Flavor, GtidSet, InstanceKey, ReplicaStatus, Snapshot, Topology};

/// The most empty transactions one fix of errant GTIDs injects: more is
/// no repair but a rebuild (re-provision the replica).
pub const MAX_INJECTED_GTIDS: u64 = 10_000;

/// Starts both replication threads of a replica, and waits (bounded)
/// until they run.
pub fn start_replication(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let (_, replica) = replica(topo, instance)?;
    if replica.is_replicating() {
        return Err(PlanError::Invalid(format!(
            "{instance} already replicates from {}: nothing to do",
            replica.source
        )));
    }
    let mut plan = Plan::new(PlanKind::StartReplication);
    plan.steps = vec![
        Step::StartReplica {
            on: instance.clone(),
        },
        Step::WaitReplicating {
            on: instance.clone(),
            timeout: WAIT_REPLICATING,
        },
    ];
    plan.notes.push(format!(
        "{instance} starts replicating from {}",
        replica.source
    ));
    Ok(plan)
}

/// Stops both replication threads of a replica.
pub fn stop_replication(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let (_, replica) = replica(topo, instance)?;
    if replica.io_running == IoThreadState::No && !replica.sql_running {
        return Err(PlanError::Invalid(format!(
            "replication of {instance} is already stopped: nothing to do"
        )));
    }
    let mut plan = Plan::new(PlanKind::StopReplication);
    plan.steps = vec![Step::StopReplica {
        on: instance.clone(),
    }];
    plan.notes.push(format!(
        "{instance} stops replicating from {}: it falls behind until its replication is started again",
        replica.source
    ));
    let below = replicas_of(topo, instance);
    if !below.is_empty() {
        plan.notes.push(format!(
            "its replicas get nothing new meanwhile: {}",
            join(&below)
        ));
    }
    Ok(plan)
}

/// Makes an instance read only (`super_read_only` too on MySQL).
/// Allowed on the primary, with a note: the cluster then takes no writes.
pub fn set_read_only(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let snap = reachable(topo, instance)?;
    if fully_read_only(snap) {
        return Err(PlanError::Invalid(format!(
            "{instance} is already read only: nothing to do"
        )));
    }
    let mut plan = Plan::new(PlanKind::SetReadOnly);
    plan.steps = vec![Step::SetReadOnly {
        on: instance.clone(),
        read_only: true,
    }];
    if snap.read_only {
        plan.notes.push(format!(
            "{instance} has read_only on but not super_read_only: super_read_only is turned on"
        ));
    }
    let is_primary = !snap.is_replica()
        && topo.get(instance).is_some_and(|n| n.depth == 0)
        && !snap.is_read_only();
    if is_primary {
        plan.notes.push(format!(
            "{instance} is the writable primary: once read only, the cluster takes no writes until an instance is made writable"
        ));
    }
    Ok(plan)
}

/// Makes an instance writable: the epoch recorded on it first, then
/// `read_only` (and `super_read_only`) off. A write lock orca holds on
/// it is released by the executor at both steps. Refused on an instance
/// that replicates and while another instance is writable: orca never
/// makes a second writable instance.
pub fn set_writable(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let snap = reachable(topo, instance)?;
    let source = topo
        .get(instance)
        .and_then(|n| n.source.clone())
        .or_else(|| snap.replica.as_ref().map(|r| r.source.clone()));
    if let Some(source) = source {
        return Err(PlanError::Invalid(format!(
            "{instance} replicates from {source}: a writable replica takes writes its source never sees (make it a primary with a takeover instead)"
        )));
    }
    if !snap.is_read_only() {
        return Err(PlanError::Invalid(format!(
            "{instance} is already writable: nothing to do"
        )));
    }
    let writable: Vec<InstanceKey> = topo
        .nodes
        .values()
        .filter(|n| &n.key != instance)
        .filter(|n| n.snapshot.as_ref().is_some_and(|s| !s.is_read_only()))
        .map(|n| n.key.clone())
        .collect();
    if !writable.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{} already writable: {instance} would be a second writable instance",
            match writable.as_slice() {
                [one] => format!("{one} is"),
                many => format!("{} are", join(many)),
            }
        )));
    }
    let mut plan = Plan::new(PlanKind::SetWritable);
    plan.successor = Some(instance.clone());
    plan.steps = vec![
        Step::RecordEpoch {
            on: instance.clone(),
        },
        Step::SetReadOnly {
            on: instance.clone(),
            read_only: false,
        },
    ];
    let unreachable: Vec<InstanceKey> = topo
        .nodes
        .values()
        .filter(|n| !n.reachable())
        .map(|n| n.key.clone())
        .collect();
    if !unreachable.is_empty() {
        plan.notes.push(format!(
            "unreachable, not known to be read only: {}",
            join(&unreachable)
        ));
    }
    Ok(plan)
}

/// Fixes the errant transactions of a replica (those its source does not
/// have). MySQL: one empty transaction per errant GTID committed on the
/// primary of its tree, so every instance has them. MariaDB: the
/// replica's binary logs are deleted (they hold its own entries) and it
/// is pointed at its source again with `MASTER_USE_GTID=slave_pos`, so
/// the position it asks for and the state it logs under are those of
/// replication alone; refused while instances replicate from it.
pub fn fix_errant(topo: &Topology, instance: &InstanceKey) -> Result<Plan, PlanError> {
    let (snap, replica) = replica(topo, instance)?;
    let source = &replica.source;
    if let Some(s) = topo.get(source).and_then(|n| n.snapshot.as_ref())
        && s.flavor != snap.flavor
    {
        return Err(PlanError::Invalid(format!(
            "{instance} ({}) and its source {source} ({}) differ in flavor: their GTIDs cannot be compared",
            flavor_name(snap.flavor),
            flavor_name(s.flavor)
        )));
    }
    let Some(errant) = errant_of(topo, instance) else {
        return Err(PlanError::Invalid(format!(
            "{instance} has no errant GTIDs (or none that can be told against {source}): nothing to fix"
        )));
    };
    match snap.flavor {
        Flavor::MySql => inject_on_primary(topo, instance, &errant),
        Flavor::MariaDb => forget_own_binlog(topo, instance, source, &errant),
    }
}

/// The MariaDB fix: the replica's binary logs deleted, so that its
/// `gtid_binlog_state` no longer holds its own writes (which, in
/// `gtid_strict_mode`, keep it from logging the source's transactions of
/// the same sequence numbers), then pointed at its source again from
/// `gtid_slave_pos`, what replication applied. Refused when instances
/// replicate from it: they read the binary logs the fix deletes.
fn forget_own_binlog(
    topo: &Topology,
    instance: &InstanceKey,
    source: &InstanceKey,
    errant: &GtidSet,
) -> Result<Plan, PlanError> {
    let below = replicas_of(topo, instance);
    if !below.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{} replicate{} from {instance}, whose binary logs the fix deletes: move {} first",
            join(&below),
            if below.len() == 1 { "s" } else { "" },
            if below.len() == 1 { "it" } else { "them" }
        )));
    }
    let on = || instance.clone();
    let mut plan = Plan::new(PlanKind::FixErrant);
    plan.steps = vec![
        Step::StopReplica { on: on() },
        Step::ResetBinaryLogs { on: on() },
        Step::ChangeSource {
            on: on(),
            source: source.clone(),
            position: SourcePosition::Gtid,
        },
        Step::StartReplica { on: on() },
        Step::WaitReplicating {
            on: on(),
            timeout: WAIT_REPLICATING,
        },
    ];
    plan.notes.push(format!(
        "{instance} has errant GTIDs {errant}: its binary logs are deleted (their entries of its own server_id with them), then it replicates from {source} again from gtid_slave_pos (MASTER_USE_GTID=slave_pos)"
    ));
    plan.notes.push(format!(
        "the data {instance} wrote itself stays: only its GTID accounting is repaired"
    ));
    Ok(plan)
}

/// The MySQL fix: the errant set injected on the top of the replica's
/// tree.
fn inject_on_primary(
    topo: &Topology,
    instance: &InstanceKey,
    errant: &GtidSet,
) -> Result<Plan, PlanError> {
    let count = errant.as_mysql().map_or(0, |s| s.count());
    if count > MAX_INJECTED_GTIDS {
        return Err(PlanError::Invalid(format!(
            "{instance} has {count} errant transactions, more than the {MAX_INJECTED_GTIDS} orca injects: re-provision it instead"
        )));
    }
    let root = topo
        .root_of(instance)
        .filter(|n| &n.key != instance)
        .ok_or_else(|| {
            PlanError::Invalid(format!(
                "{instance} hangs from no primary orca knows: nowhere to inject its errant GTIDs"
            ))
        })?;
    let primary = root
        .snapshot
        .as_ref()
        .ok_or_else(|| PlanError::refused(instance, Refusal::Unreachable(root.key.clone())))?;
    if primary.is_replica() {
        return Err(PlanError::Invalid(format!(
            "{} replicates (a co-primary or a cycle): no single primary to inject on",
            root.key
        )));
    }
    if primary.super_read_only == Some(true) {
        return Err(PlanError::Invalid(format!(
            "the primary {} is super_read_only: empty transactions cannot be committed there",
            root.key
        )));
    }
    let mut plan = Plan::new(PlanKind::FixErrant);
    plan.steps = vec![Step::InjectEmptyTransactions {
        on: root.key.clone(),
        gtids: errant.to_string(),
    }];
    plan.notes.push(format!(
        "{instance} has {count} errant transaction{} {errant}: each is committed empty on the primary {}, which every replica then has",
        if count == 1 { "" } else { "s" },
        root.key
    ));
    Ok(plan)
}

/// The snapshot of a reachable instance.
fn reachable<'a>(topo: &'a Topology, instance: &InstanceKey) -> Result<&'a Snapshot, PlanError> {
    let node = topo
        .get(instance)
        .ok_or_else(|| PlanError::not_found(instance))?;
    node.snapshot
        .as_deref()
        .ok_or_else(|| PlanError::refused(instance, Refusal::Unreachable(instance.clone())))
}

/// A reachable replica (a source configured) and its replica status.
fn replica<'a>(
    topo: &'a Topology,
    instance: &InstanceKey,
) -> Result<(&'a Snapshot, &'a ReplicaStatus), PlanError> {
    let snap = reachable(topo, instance)?;
    let replica = snap.replica.as_ref().ok_or_else(|| {
        PlanError::Invalid(format!(
            "{instance} is not a replica: it has no source configured"
        ))
    })?;
    Ok((snap, replica))
}

/// Read only for every account orca can stop: `super_read_only` on
/// MySQL servers that have it, `read_only` elsewhere.
fn fully_read_only(s: &Snapshot) -> bool {
    s.super_read_only.unwrap_or(s.read_only)
}

fn replicas_of(topo: &Topology, instance: &InstanceKey) -> Vec<InstanceKey> {
    let mut out = topo
        .get(instance)
        .map(|n| n.replicas.clone())
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

fn join(keys: &[InstanceKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn flavor_name(f: Flavor) -> &'static str {
    match f {
        Flavor::MySql => "MySQL",
        Flavor::MariaDb => "MariaDB",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step::check_epoch_placement;
    use crate::topology::testing::{
        down, io_stopped, key, mariadb, mysql, mysql_replica_of, replica_of, sql_stopped, topology,
        with_gtid, with_mysql_gtid,
    };

    const P: &str = "11111111-1111-1111-1111-111111111111";
    const A: &str = "22222222-2222-2222-2222-222222222222";
    const R: &str = "33333333-3333-3333-3333-333333333333";

    type Op = fn(&Topology, &InstanceKey) -> Result<Plan, PlanError>;

    /// (name, topology, operation, instance, kind, steps)
    type PlanCase = (
        &'static str,
        Topology,
        Op,
        &'static str,
        PlanKind,
        Vec<String>,
    );

    fn r(host: &str, id: u32, source: &str, pos: &str) -> Snapshot {
        with_gtid(replica_of(host, id, source), pos)
    }

    fn stopped(s: Snapshot) -> Snapshot {
        sql_stopped(io_stopped(s))
    }

    fn read_only(mut s: Snapshot) -> Snapshot {
        s.read_only = true;
        if s.super_read_only.is_some() {
            s.super_read_only = Some(true);
        }
        s
    }

    /// MariaDB: p → a → b, and p → c (its replication stopped).
    fn maria() -> Topology {
        topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("a", 2, "p", "0-1-12"),
                r("b", 3, "a", "0-1-12"),
                stopped(r("c", 4, "p", "0-1-12")),
            ],
            vec![down("gone", Some("p"))],
        )
    }

    /// MySQL: p → a → b, and p → c (its replication stopped).
    fn my() -> Topology {
        let rep = |h: &str, id, uuid, src: &str, src_uuid| {
            with_mysql_gtid(
                mysql_replica_of(h, id, uuid, src, src_uuid),
                &format!("{P}:1-10"),
            )
        };
        topology(
            vec![
                with_mysql_gtid(mysql("p", 1, P), &format!("{P}:1-10")),
                rep("a", 2, A, "p", P),
                rep("b", 3, R, "a", A),
                stopped(rep("c", 4, "44444444-4444-4444-4444-444444444444", "p", P)),
            ],
            vec![],
        )
    }

    fn steps(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.to_string()).collect()
    }

    /// The shape every instance plan has: no rollback, no hooks, nothing
    /// to undo, every instance made writable with its epoch first.
    fn check_shape(name: &str, plan: &Plan) {
        assert_eq!(plan.point_of_no_return, 0, "{name}");
        assert!(plan.rollback.is_empty(), "{name}");
        assert!(plan.failed.is_none(), "{name}");
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::RunHooks { .. })),
            "{name}"
        );
        assert!(
            crate::plan::writable_without_epoch(&plan.steps).is_empty(),
            "{name}"
        );
    }

    #[test]
    fn plans_of_each_operation() {
        let wait = "wait until replicating (at most 10s)";
        let cases: Vec<PlanCase> = vec![
            (
                "start a stopped MariaDB replica",
                maria(),
                start_replication,
                "c",
                PlanKind::StartReplication,
                vec![
                    "c:3306: start replication".into(),
                    format!("c:3306: {wait}"),
                ],
            ),
            (
                "start a stopped MySQL replica",
                my(),
                start_replication,
                "c",
                PlanKind::StartReplication,
                vec![
                    "c:3306: start replication".into(),
                    format!("c:3306: {wait}"),
                ],
            ),
            (
                "stop a MariaDB intermediate",
                maria(),
                stop_replication,
                "a",
                PlanKind::StopReplication,
                vec!["a:3306: stop replication".into()],
            ),
            (
                "stop a MySQL leaf",
                my(),
                stop_replication,
                "b",
                PlanKind::StopReplication,
                vec!["b:3306: stop replication".into()],
            ),
            (
                "read only on the MariaDB primary",
                maria(),
                set_read_only,
                "p",
                PlanKind::SetReadOnly,
                vec!["p:3306: set read_only=ON".into()],
            ),
            (
                "read only on the MySQL primary",
                my(),
                set_read_only,
                "p",
                PlanKind::SetReadOnly,
                vec!["p:3306: set read_only=ON".into()],
            ),
        ];
        for (name, topo, op, on, kind, want) in cases {
            let plan = op(&topo, &key(on)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(plan.kind, kind, "{name}");
            assert_eq!(steps(&plan), want, "{name}");
            check_shape(name, &plan);
        }
        let plan = stop_replication(&maria(), &key("a")).unwrap();
        assert_eq!(
            plan.notes,
            vec![
                "a:3306 stops replicating from p:3306: it falls behind until its replication is started again",
                "its replicas get nothing new meanwhile: b:3306",
            ]
        );
        let plan = set_read_only(&maria(), &key("p")).unwrap();
        assert_eq!(
            plan.notes,
            vec![
                "p:3306 is the writable primary: once read only, the cluster takes no writes until an instance is made writable"
            ]
        );
        assert!(plan.to_string().starts_with("plan: set-read-only\n"));
    }

    #[test]
    fn a_stopped_thread_is_started_and_a_half_running_replica_stopped() {
        for (name, snap) in [
            ("io stopped", io_stopped(r("a", 2, "p", "0-1-12"))),
            ("sql stopped", sql_stopped(r("a", 2, "p", "0-1-12"))),
        ] {
            let topo = topology(vec![with_gtid(mariadb("p", 1), "0-1-12"), snap], vec![]);
            assert!(start_replication(&topo, &key("a")).is_ok(), "{name}");
            assert!(stop_replication(&topo, &key("a")).is_ok(), "{name}");
        }
    }

    #[test]
    fn refusals() {
        // A MySQL replica with read_only on but super_read_only off.
        let mut half = my();
        if let Some(s) = half
            .nodes
            .get_mut(&key("a"))
            .and_then(|n| n.snapshot.as_mut())
        {
            s.super_read_only = Some(false);
        }
        let cases: Vec<(&str, Topology, Op, &str, &str)> = vec![
            (
                "start a primary",
                maria(),
                start_replication,
                "p",
                "p:3306 is not a replica: it has no source configured",
            ),
            (
                "start a running replica",
                maria(),
                start_replication,
                "a",
                "a:3306 already replicates from p:3306: nothing to do",
            ),
            (
                "start a running MySQL replica",
                my(),
                start_replication,
                "b",
                "b:3306 already replicates from a:3306: nothing to do",
            ),
            (
                "stop a primary",
                my(),
                stop_replication,
                "p",
                "p:3306 is not a replica: it has no source configured",
            ),
            (
                "stop a stopped replica",
                maria(),
                stop_replication,
                "c",
                "replication of c:3306 is already stopped: nothing to do",
            ),
            (
                "read only twice (MariaDB)",
                maria(),
                set_read_only,
                "a",
                "a:3306 is already read only: nothing to do",
            ),
            (
                "read only twice (MySQL)",
                my(),
                set_read_only,
                "b",
                "b:3306 is already read only: nothing to do",
            ),
            (
                "writable replica (MariaDB)",
                maria(),
                set_writable,
                "a",
                "a:3306 replicates from p:3306: a writable replica takes writes its source never sees (make it a primary with a takeover instead)",
            ),
            (
                "writable stopped replica (MySQL)",
                my(),
                set_writable,
                "c",
                "c:3306 replicates from p:3306: a writable replica takes writes its source never sees (make it a primary with a takeover instead)",
            ),
            (
                "writable twice",
                my(),
                set_writable,
                "p",
                "p:3306 is already writable: nothing to do",
            ),
            (
                "missing",
                maria(),
                set_read_only,
                "zz",
                "zz:3306 is not in the topology",
            ),
            (
                "unreachable",
                maria(),
                stop_replication,
                "gone",
                "refused for gone:3306: gone:3306 did not answer the latest probe",
            ),
            (
                "nothing errant (MariaDB)",
                maria(),
                fix_errant,
                "b",
                "b:3306 has no errant GTIDs (or none that can be told against a:3306): nothing to fix",
            ),
            (
                "nothing errant (MySQL)",
                my(),
                fix_errant,
                "a",
                "a:3306 has no errant GTIDs (or none that can be told against p:3306): nothing to fix",
            ),
            (
                "fix errant on a primary",
                my(),
                fix_errant,
                "p",
                "p:3306 is not a replica: it has no source configured",
            ),
        ];
        for (name, topo, op, on, message) in cases {
            let err = op(&topo, &key(on)).expect_err(name);
            assert_eq!(err.to_string(), message, "{name}");
        }
        // read_only without super_read_only: turned fully read only.
        let plan = set_read_only(&half, &key("a")).unwrap();
        assert_eq!(steps(&plan), vec!["a:3306: set read_only=ON"]);
        assert_eq!(
            plan.notes,
            vec!["a:3306 has read_only on but not super_read_only: super_read_only is turned on"]
        );
    }

    #[test]
    fn writable_records_the_epoch_first_and_never_makes_two() {
        // A read-only primary (made so by hand, or fenced), for each flavor.
        let maria_ro = |extra: Vec<Snapshot>| {
            let mut snaps = vec![
                read_only(with_gtid(mariadb("p", 1), "0-1-12")),
                r("a", 2, "p", "0-1-12"),
            ];
            snaps.extend(extra);
            topology(snaps, vec![])
        };
        let my_ro = topology(
            vec![
                read_only(with_mysql_gtid(mysql("p", 1, P), &format!("{P}:1-10"))),
                with_mysql_gtid(mysql_replica_of("a", 2, A, "p", P), &format!("{P}:1-10")),
            ],
            vec![down("gone", None)],
        );
        for (name, topo) in [("MariaDB", maria_ro(vec![])), ("MySQL", my_ro)] {
            let plan = set_writable(&topo, &key("p")).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(plan.kind, PlanKind::SetWritable, "{name}");
            assert_eq!(
                plan.steps,
                vec![
                    Step::RecordEpoch { on: key("p") },
                    Step::SetReadOnly {
                        on: key("p"),
                        read_only: false
                    }
                ],
                "{name}"
            );
            assert_eq!(plan.successor, Some(key("p")), "{name}");
            check_shape(name, &plan);
            check_epoch_placement(&plan).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let plan = set_writable(&my_ro_with_gone(), &key("p")).unwrap();
        assert_eq!(
            plan.notes,
            vec!["unreachable, not known to be read only: gone:3306"]
        );
        // Another writable instance: a second tree's writable top.
        let topo = maria_ro(vec![mariadb("q", 9)]);
        assert_eq!(
            set_writable(&topo, &key("p")).unwrap_err().to_string(),
            "q:3306 is already writable: p:3306 would be a second writable instance"
        );
        // A writable replica counts too.
        let mut wr = r("b", 3, "p", "0-1-12");
        wr.read_only = false;
        let topo = maria_ro(vec![wr, mariadb("q", 9)]);
        assert_eq!(
            set_writable(&topo, &key("p")).unwrap_err().to_string(),
            "b:3306, q:3306 are already writable: p:3306 would be a second writable instance"
        );
    }

    fn my_ro_with_gone() -> Topology {
        topology(
            vec![read_only(with_mysql_gtid(
                mysql("p", 1, P),
                &format!("{P}:1-10"),
            ))],
            vec![down("gone", None)],
        )
    }

    /// MySQL p → a → b, b with `b_extra` executed besides p's 1-10.
    fn my_errant(b_extra: &str) -> Topology {
        topology(
            vec![
                with_mysql_gtid(mysql("p", 1, P), &format!("{P}:1-10")),
                with_mysql_gtid(mysql_replica_of("a", 2, A, "p", P), &format!("{P}:1-10")),
                with_mysql_gtid(
                    mysql_replica_of("b", 3, R, "a", A),
                    &format!("{P}:1-10,{b_extra}"),
                ),
            ],
            vec![],
        )
    }

    #[test]
    fn errant_gtids_injected_on_the_mysql_primary() {
        let plan = fix_errant(&my_errant(&format!("{R}:1-3")), &key("b")).unwrap();
        assert_eq!(plan.kind, PlanKind::FixErrant);
        assert_eq!(
            plan.steps,
            vec![Step::InjectEmptyTransactions {
                on: key("p"),
                gtids: format!("{R}:1-3"),
            }]
        );
        check_shape("mysql", &plan);
        assert_eq!(
            plan.notes,
            vec![format!(
                "b:3306 has 3 errant transactions {R}:1-3: each is committed empty on the primary p:3306, which every replica then has"
            )]
        );
        assert_eq!(
            steps(&plan),
            vec![format!(
                "p:3306: commit an empty transaction for each of {R}:1-3"
            )]
        );
        // At the cap, and above it.
        assert!(fix_errant(&my_errant(&format!("{R}:1-10000")), &key("b")).is_ok());
        assert_eq!(
            fix_errant(&my_errant(&format!("{R}:1-10001")), &key("b"))
                .unwrap_err()
                .to_string(),
            "b:3306 has 10001 errant transactions, more than the 10000 orca injects: re-provision it instead"
        );
        // A super_read_only primary takes no transaction.
        let mut topo = my_errant(&format!("{R}:1"));
        if let Some(s) = topo
            .nodes
            .get_mut(&key("p"))
            .and_then(|n| n.snapshot.as_mut())
        {
            s.read_only = true;
            s.super_read_only = Some(true);
        }
        assert_eq!(
            fix_errant(&topo, &key("b")).unwrap_err().to_string(),
            "the primary p:3306 is super_read_only: empty transactions cannot be committed there"
        );
    }

    #[test]
    fn errant_gtids_of_a_mariadb_replica_repointed_from_slave_pos() {
        // b wrote 0-3-13 itself, on top of what it replicated.
        let topo = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("a", 2, "p", "0-1-12"),
                r("b", 3, "a", "0-1-12,0-3-13"),
            ],
            vec![],
        );
        let plan = fix_errant(&topo, &key("b")).unwrap();
        assert_eq!(plan.kind, PlanKind::FixErrant);
        assert_eq!(
            plan.steps,
            vec![
                Step::StopReplica { on: key("b") },
                Step::ResetBinaryLogs { on: key("b") },
                Step::ChangeSource {
                    on: key("b"),
                    source: key("a"),
                    position: SourcePosition::Gtid,
                },
                Step::StartReplica { on: key("b") },
                Step::WaitReplicating {
                    on: key("b"),
                    timeout: WAIT_REPLICATING,
                },
            ]
        );
        check_shape("mariadb", &plan);
        assert_eq!(
            plan.notes,
            vec![
                "b:3306 has errant GTIDs 0-3-13: its binary logs are deleted (their entries of its own server_id with them), then it replicates from a:3306 again from gtid_slave_pos (MASTER_USE_GTID=slave_pos)",
                "the data b:3306 wrote itself stays: only its GTID accounting is repaired",
            ]
        );
        // An intermediate's binary logs feed its replicas: refused.
        let topo = topology(
            vec![
                with_gtid(mariadb("p", 1), "0-1-12"),
                r("a", 2, "p", "0-1-12,0-2-13"),
                r("b", 3, "a", "0-1-12,0-2-13"),
            ],
            vec![],
        );
        assert_eq!(
            fix_errant(&topo, &key("a")).unwrap_err().to_string(),
            "b:3306 replicates from a:3306, whose binary logs the fix deletes: move it first"
        );
        // A source of the other flavor: errant GTIDs cannot be told.
        let topo = topology(
            vec![
                with_mysql_gtid(mysql("p", 1, P), &format!("{P}:1-10")),
                r("b", 3, "p", "0-1-12,0-3-13"),
            ],
            vec![],
        );
        assert_eq!(
            fix_errant(&topo, &key("b")).unwrap_err().to_string(),
            "b:3306 (MariaDB) and its source p:3306 (MySQL) differ in flavor: their GTIDs cannot be compared"
        );
    }

    #[test]
    fn kinds_are_named_as_serde_writes_them() {
        for (kind, name) in [
            (PlanKind::StartReplication, "start-replication"),
            (PlanKind::StopReplication, "stop-replication"),
            (PlanKind::SetReadOnly, "set-read-only"),
            (PlanKind::SetWritable, "set-writable"),
            (PlanKind::FixErrant, "fix-errant"),
        ] {
            assert_eq!(kind.name(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
    }
}
