//! The first primary of a cluster: which member it is, and the steps that
//! make it one. Pure.
//!
//! A member that already has replicas (replication set up before orca
//! came, or by an operator that restarted) is adopted as it is: the plan
//! changes nothing. Otherwise the first member (the shell orders them:
//! pod 0 first) becomes the primary: the accounts first (the replication
//! account replicas connect with, the application's), then the epoch
//! recorded, then the primary side of semi-sync on when the cluster asks
//! for it, and `read_only` off last, so that no client writes before
//! the rest is in place. The steps are the same for every flavor; the
//! executor speaks each step in the server's dialect (semi-sync variable
//! names, `super_read_only` on MySQL).
//!
//! The epoch comes before semi-sync, as in every plan
//! ([`Step::RecordEpoch`]): with the primary side on and no replica yet,
//! its write would wait for an acknowledgement nobody sends.

use super::error::PlanError;
use super::step::{Plan, PlanKind, Step};
use crate::topology::InstanceKey;
use crate::topology::graph::{Role, Topology};

/// What the cluster asks of its first primary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// The semi-sync wait count, when semi-sync is on.
    pub semi_sync: Option<u32>,
    /// The application account's databases, when there is an account to
    /// make (the executor holds its name and password).
    pub app_databases: Option<Vec<String>>,
}

/// The bootstrap decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The primary: adopted, or made.
    pub primary: InstanceKey,
    /// Whether replication existed and was adopted as it is.
    pub adopted: bool,
    /// Its steps (none when adopted).
    pub plan: Plan,
}

/// The bootstrap of a cluster whose members are `members` (reachable and
/// ready, in order of preference), from the topology of a round.
///
/// Refused when replication exists whose primary is no member (it is not
/// orca's to take over, nor to ignore), when several members have
/// replicas of their own, and when the first member did not answer the
/// round's probe.
pub fn bootstrap(
    topo: &Topology,
    members: &[InstanceKey],
    opts: &BootstrapOptions,
) -> Result<Bootstrap, PlanError> {
    let existing: Vec<&InstanceKey> = topo
        .nodes
        .values()
        .filter(|n| n.role == Role::Primary && !n.replicas.is_empty() && n.reachable())
        .map(|n| &n.key)
        .collect();
    if let Some(stranger) = existing.iter().find(|k| !members.contains(k)) {
        return Err(PlanError::invalid(format!(
            "{stranger} has replicas but is no member of the cluster: orca does not bootstrap over it"
        )));
    }
    let mut plan = Plan::new(PlanKind::Bootstrap);
    match existing.as_slice() {
        [] => {}
        [primary] => {
            let replicas = topo
                .get(primary)
                .map(|n| n.replicas.iter().map(|k| k.to_string()).collect::<Vec<_>>())
                .unwrap_or_default();
            plan.successor = Some((*primary).clone());
            plan.notes.push(format!(
                "replication exists: {primary} has replicas ({}); adopted as it is",
                replicas.join(", ")
            ));
            return Ok(Bootstrap {
                primary: (*primary).clone(),
                adopted: true,
                plan,
            });
        }
        several => {
            let names: Vec<String> = several.iter().map(|k| k.to_string()).collect();
            return Err(PlanError::invalid(format!(
                "several members have replicas ({}): orca does not choose between them",
                names.join(", ")
            )));
        }
    }
    let primary = members
        .first()
        .ok_or_else(|| PlanError::invalid("no member to bootstrap"))?;
    if !topo.get(primary).is_some_and(|n| n.reachable()) {
        return Err(PlanError::invalid(format!(
            "{primary} did not answer the probe: no bootstrap yet"
        )));
    }
    let on = || primary.clone();
    plan.successor = Some(on());
    plan.steps.push(Step::EnsureReplicationAccount { on: on() });
    if let Some(databases) = &opts.app_databases {
        plan.steps.push(Step::EnsureAppAccount {
            on: on(),
            databases: databases.clone(),
        });
    }
    plan.steps.push(Step::RecordEpoch { on: on() });
    if let Some(wait_count) = opts.semi_sync {
        plan.steps.push(Step::SetSemiSyncPrimary {
            on: on(),
            enabled: true,
            wait_count: wait_count.max(1),
        });
    }
    plan.steps.push(Step::SetReadOnly {
        on: on(),
        read_only: false,
    });
    plan.notes.push(format!(
        "no replication yet: {primary}, the first member, becomes the primary"
    ));
    Ok(Bootstrap {
        primary: on(),
        adopted: false,
        plan,
    })
}

/// The application account made, or brought up to date, on `primary`:
/// one step.
pub fn app_account(primary: &InstanceKey, databases: &[String]) -> Plan {
    let mut plan = Plan::new(PlanKind::Bootstrap);
    plan.successor = Some(primary.clone());
    plan.steps.push(Step::EnsureAppAccount {
        on: primary.clone(),
        databases: databases.to_vec(),
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step::check_epoch_placement;
    use crate::topology::Snapshot;
    use crate::topology::graph::Unreached;
    use crate::topology::testing::{key, mariadb, mysql, mysql_replica_of, replica_of};

    fn ro(mut s: Snapshot) -> Snapshot {
        s.read_only = true;
        if s.super_read_only.is_some() {
            s.super_read_only = Some(true);
        }
        s
    }

    fn keys(hosts: &[&str]) -> Vec<InstanceKey> {
        hosts.iter().map(|h| key(h)).collect()
    }

    fn accounts(on: &str, app: bool) -> Vec<Step> {
        let mut steps = vec![Step::EnsureReplicationAccount { on: key(on) }];
        if app {
            steps.push(Step::EnsureAppAccount {
                on: key(on),
                databases: vec!["app".into(), "shop".into()],
            });
        }
        steps
    }

    fn made_writable(on: &str, semi_sync: Option<u32>) -> Vec<Step> {
        let mut steps = vec![Step::RecordEpoch { on: key(on) }];
        if let Some(wait_count) = semi_sync {
            steps.push(Step::SetSemiSyncPrimary {
                on: key(on),
                enabled: true,
                wait_count,
            });
        }
        steps.push(Step::SetReadOnly {
            on: key(on),
            read_only: false,
        });
        steps
    }

    fn fresh_mariadb() -> Topology {
        Topology::build(
            vec![
                ro(mariadb("m0", 1)),
                ro(mariadb("m1", 2)),
                ro(mariadb("m2", 3)),
            ],
            vec![],
        )
    }

    fn fresh_mysql() -> Topology {
        Topology::build(
            vec![
                ro(mysql("m0", 1, "u0")),
                ro(mysql("m1", 2, "u1")),
                ro(mysql("m2", 3, "u2")),
            ],
            vec![],
        )
    }

    #[test]
    fn steps_of_a_new_primary() {
        let app = Some(vec!["app".to_string(), "shop".to_string()]);
        // (case, topology, members, semi-sync, app databases, primary, steps)
        type Case = (
            &'static str,
            Topology,
            Vec<InstanceKey>,
            Option<u32>,
            Option<Vec<String>>,
            &'static str,
            Vec<Step>,
        );
        let cases: Vec<Case> = vec![
            (
                "MariaDB, asynchronous, no application account",
                fresh_mariadb(),
                keys(&["m0", "m1", "m2"]),
                None,
                None,
                "m0",
                [accounts("m0", false), made_writable("m0", None)].concat(),
            ),
            (
                "MariaDB, semi-sync, an application account",
                fresh_mariadb(),
                keys(&["m0", "m1", "m2"]),
                Some(1),
                app.clone(),
                "m0",
                [accounts("m0", true), made_writable("m0", Some(1))].concat(),
            ),
            (
                "MySQL, asynchronous, an application account: the same steps",
                fresh_mysql(),
                keys(&["m0", "m1", "m2"]),
                None,
                app.clone(),
                "m0",
                [accounts("m0", true), made_writable("m0", None)].concat(),
            ),
            (
                "MySQL, semi-sync waiting for two",
                fresh_mysql(),
                keys(&["m0", "m1", "m2"]),
                Some(2),
                app.clone(),
                "m0",
                [accounts("m0", true), made_writable("m0", Some(2))].concat(),
            ),
            (
                "a wait count of 0 waits for one",
                fresh_mysql(),
                keys(&["m0"]),
                Some(0),
                None,
                "m0",
                [accounts("m0", false), made_writable("m0", Some(1))].concat(),
            ),
            (
                "the first member is the primary, whatever the address order",
                fresh_mariadb(),
                keys(&["m2", "m0", "m1"]),
                None,
                None,
                "m2",
                [accounts("m2", false), made_writable("m2", None)].concat(),
            ),
        ];
        for (name, topo, members, semi_sync, app_databases, primary, steps) in cases {
            let opts = BootstrapOptions {
                semi_sync,
                app_databases,
            };
            let b = bootstrap(&topo, &members, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(b.primary, key(primary), "{name}");
            assert!(!b.adopted, "{name}");
            assert_eq!(b.plan.kind, PlanKind::Bootstrap, "{name}");
            assert_eq!(b.plan.steps, steps, "{name}:\n{}", b.plan);
            assert_eq!(b.plan.successor.as_ref(), Some(&key(primary)), "{name}");
            // Nothing to undo: a step that fails stops the plan.
            assert!(b.plan.rollback.is_empty(), "{name}");
            assert!(b.plan.steps.iter().all(Step::mutates), "{name}");
            check_epoch_placement(&b.plan).unwrap_or_else(|e| panic!("{name}: {e}"));
            // read_only off is the last step, the accounts the first.
            assert!(
                matches!(
                    b.plan.steps.last(),
                    Some(Step::SetReadOnly {
                        read_only: false,
                        ..
                    })
                ),
                "{name}"
            );
            assert!(
                matches!(
                    b.plan.steps.first(),
                    Some(Step::EnsureReplicationAccount { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn existing_replication_is_adopted_or_refused() {
        let mariadb_tree = || {
            Topology::build(
                vec![
                    mariadb("m1", 2),
                    replica_of("m0", 1, "m1"),
                    replica_of("m2", 3, "m1"),
                ],
                vec![],
            )
        };
        let mysql_tree = Topology::build(
            vec![
                mysql("m0", 1, "u0"),
                mysql_replica_of("m1", 2, "u1", "m0", "u0"),
            ],
            vec![],
        );
        #[derive(Debug)]
        enum Want {
            Adopted(&'static str),
            New(&'static str),
            Refused(&'static str),
        }
        use Want::*;
        // (case, topology, members, what comes of it)
        let cases: Vec<(&str, Topology, Vec<InstanceKey>, Want)> = vec![
            (
                "MariaDB: a member with replicas is adopted, not pod 0",
                mariadb_tree(),
                keys(&["m0", "m1", "m2"]),
                Adopted("m1"),
            ),
            (
                "MySQL: adopted the same way",
                mysql_tree,
                keys(&["m0", "m1"]),
                Adopted("m0"),
            ),
            (
                "a primary with replicas that is no member",
                mariadb_tree(),
                keys(&["m0", "m2"]),
                Refused("m1:3306 has replicas but is no member"),
            ),
            (
                "two members with replicas of their own",
                Topology::build(
                    vec![
                        mariadb("a", 1),
                        replica_of("a1", 2, "a"),
                        mariadb("b", 3),
                        replica_of("b1", 4, "b"),
                    ],
                    vec![],
                ),
                keys(&["a", "a1", "b", "b1"]),
                Refused("several members have replicas (a:3306, b:3306)"),
            ),
            (
                "a replica of an unreachable primary is nothing to adopt",
                Topology::build(
                    vec![ro(mariadb("m0", 1)), replica_of("m1", 2, "gone")],
                    vec![Unreached::new(key("gone"), "refused")],
                ),
                keys(&["m0", "m1"]),
                New("m0"),
            ),
            (
                "the first member did not answer",
                Topology::build(
                    vec![ro(mariadb("m1", 2))],
                    vec![Unreached::new(key("m0"), "refused")],
                ),
                keys(&["m0", "m1"]),
                Refused("m0:3306 did not answer the probe"),
            ),
            ("no member", fresh_mariadb(), vec![], Refused("no member")),
        ];
        let opts = BootstrapOptions {
            semi_sync: Some(1),
            app_databases: Some(vec!["app".into()]),
        };
        for (name, topo, members, want) in cases {
            match (bootstrap(&topo, &members, &opts), want) {
                (Ok(b), Adopted(primary)) => {
                    assert!(b.adopted, "{name}");
                    assert_eq!(b.primary, key(primary), "{name}");
                    assert!(b.plan.steps.is_empty(), "{name}: {}", b.plan);
                    assert_eq!(b.plan.successor, Some(key(primary)), "{name}");
                    assert!(b.plan.notes[0].contains("adopted as it is"), "{name}");
                }
                (Err(e), Refused(part)) => {
                    assert!(e.to_string().contains(part), "{name}: {e}");
                }
                // An unreachable source leaves nothing to adopt: the first
                // member is bootstrapped (its replica is joined later).
                (Ok(b), New(primary)) => {
                    assert!(!b.adopted, "{name}");
                    assert_eq!(b.primary, key(primary), "{name}");
                    assert!(!b.plan.steps.is_empty(), "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_application_account_alone() {
        let plan = app_account(&key("p"), &["app".into()]);
        assert_eq!(plan.kind, PlanKind::Bootstrap);
        assert_eq!(
            plan.steps,
            vec![Step::EnsureAppAccount {
                on: key("p"),
                databases: vec!["app".into()],
            }]
        );
        // The step's text names no account and no password.
        assert_eq!(
            plan.steps[0].to_string(),
            "p:3306: ensure the application account (its password; every privilege on app and no other)"
        );
    }
}
