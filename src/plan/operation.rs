//! The operations a person can ask for, as data, and the plan of each.
//! One description shared by every door (the one-shot commands, the HTTP
//! API, the operator), so an operation asked through any of them is
//! planned the same way. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use super::recovery::{self, RecoveryOptions};
use super::takeover::{self, TakeoverOptions};
use super::{Plan, PlanError, instance, refactor};
use crate::analysis::Finding;
use crate::topology::InstanceKey;
use crate::topology::graph::Topology;

/// The kinds of operation orca carries out on request, by their names in
/// the API and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperationKind {
    GracefulTakeover,
    ForceFailover,
    ForceTakeover,
    Recover,
    Acknowledge,
    Relocate,
    MoveUp,
    MoveBelow,
    Repoint,
    TakeSiblings,
    RegroupReplicas,
    BeginDowntime,
    EndDowntime,
    StartReplication,
    StopReplication,
    SetReadOnly,
    SetWritable,
    FixErrant,
    /// Re-provision a replica by a physical copy of a healthy one (the
    /// operator's, through its agent).
    Reprovision,
}

impl OperationKind {
    pub const ALL: [OperationKind; 19] = [
        OperationKind::GracefulTakeover,
        OperationKind::ForceFailover,
        OperationKind::ForceTakeover,
        OperationKind::Recover,
        OperationKind::Acknowledge,
        OperationKind::Relocate,
        OperationKind::MoveUp,
        OperationKind::MoveBelow,
        OperationKind::Repoint,
        OperationKind::TakeSiblings,
        OperationKind::RegroupReplicas,
        OperationKind::BeginDowntime,
        OperationKind::EndDowntime,
        OperationKind::StartReplication,
        OperationKind::StopReplication,
        OperationKind::SetReadOnly,
        OperationKind::SetWritable,
        OperationKind::FixErrant,
        OperationKind::Reprovision,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OperationKind::GracefulTakeover => "graceful-takeover",
            OperationKind::ForceFailover => "force-failover",
            OperationKind::ForceTakeover => "force-takeover",
            OperationKind::Recover => "recover",
            OperationKind::Acknowledge => "acknowledge",
            OperationKind::Relocate => "relocate",
            OperationKind::MoveUp => "move-up",
            OperationKind::MoveBelow => "move-below",
            OperationKind::Repoint => "repoint",
            OperationKind::TakeSiblings => "take-siblings",
            OperationKind::RegroupReplicas => "regroup-replicas",
            OperationKind::BeginDowntime => "begin-downtime",
            OperationKind::EndDowntime => "end-downtime",
            OperationKind::StartReplication => "start-replication",
            OperationKind::StopReplication => "stop-replication",
            OperationKind::SetReadOnly => "set-read-only",
            OperationKind::SetWritable => "set-writable",
            OperationKind::FixErrant => "fix-errant",
            OperationKind::Reprovision => "reprovision",
        }
    }

    /// Whether the operation acts on one instance (`target` required).
    pub fn needs_target(self) -> bool {
        !matches!(
            self,
            OperationKind::GracefulTakeover
                | OperationKind::ForceFailover
                | OperationKind::Recover
                | OperationKind::Acknowledge
        )
    }

    /// Whether the operation needs a destination (`destination`).
    pub fn needs_destination(self) -> bool {
        matches!(self, OperationKind::Relocate | OperationKind::MoveBelow)
    }

    /// Whether the operation takes a destination at all.
    pub fn takes_destination(self) -> bool {
        self.needs_destination() || self == OperationKind::Repoint
    }

    /// Whether the plan comes from the topology alone ([`plan`]); the
    /// others are the engine's (recover: the failure found now;
    /// acknowledge and downtimes change no server).
    pub fn is_plan(self) -> bool {
        !matches!(
            self,
            OperationKind::Recover
                | OperationKind::Acknowledge
                | OperationKind::BeginDowntime
                | OperationKind::EndDowntime
                | OperationKind::Reprovision
        )
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OperationKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OperationKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = OperationKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown operation {s:?}: one of {}", names.join(", "))
            })
    }
}

/// An operation with its instances resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub kind: OperationKind,
    /// The instance acted on, or for a takeover the new primary.
    pub target: Option<InstanceKey>,
    /// Where it goes: the new source of a relocate, repoint or move-below.
    pub destination: Option<InstanceKey>,
}

impl Operation {
    /// Checks that the instances the kind needs are there and no other:
    /// the message names the field.
    pub fn new(
        kind: OperationKind,
        target: Option<InstanceKey>,
        destination: Option<InstanceKey>,
    ) -> Result<Operation, String> {
        if kind.needs_target() && target.is_none() {
            return Err(format!("{kind} needs a target instance"));
        }
        if kind == OperationKind::ForceTakeover && target.is_none() {
            return Err(format!("{kind} needs a target instance"));
        }
        if matches!(
            kind,
            OperationKind::ForceFailover | OperationKind::Recover | OperationKind::Acknowledge
        ) && target.is_some()
        {
            return Err(format!("{kind} takes no target"));
        }
        if kind.needs_destination() && destination.is_none() {
            return Err(format!("{kind} needs a destination instance"));
        }
        if !kind.takes_destination() && destination.is_some() {
            return Err(format!("{kind} takes no destination"));
        }
        Ok(Operation {
            kind,
            target,
            destination,
        })
    }
}

/// The plan of an operation on `topo`, whose primary (the root of the
/// tree the operation is about) is `primary`. Refused with the reason
/// when the move is illegal; [`OperationKind::is_plan`] kinds only.
pub fn plan(
    topo: &Topology,
    primary: Option<&InstanceKey>,
    op: &Operation,
    recovery: &RecoveryOptions,
    takeover: &TakeoverOptions,
) -> Result<Plan, PlanError> {
    let primary = || primary.ok_or_else(|| PlanError::invalid("the cluster has no primary"));
    let target = || {
        op.target
            .as_ref()
            .ok_or_else(|| PlanError::invalid(format!("{} needs a target instance", op.kind)))
    };
    let destination = || {
        op.destination
            .as_ref()
            .ok_or_else(|| PlanError::invalid(format!("{} needs a destination", op.kind)))
    };
    match op.kind {
        OperationKind::GracefulTakeover => {
            takeover::graceful_takeover(topo, primary()?, op.target.as_ref(), takeover)
        }
        OperationKind::ForceFailover => recovery::force_failover(topo, primary()?, recovery),
        OperationKind::ForceTakeover => {
            recovery::force_takeover(topo, primary()?, target()?, recovery)
        }
        OperationKind::Relocate => refactor::relocate(topo, target()?, destination()?),
        OperationKind::MoveUp => refactor::move_up(topo, target()?),
        OperationKind::MoveBelow => refactor::move_below(topo, target()?, destination()?),
        OperationKind::Repoint => refactor::repoint(topo, target()?, op.destination.as_ref()),
        OperationKind::TakeSiblings => refactor::take_siblings(topo, target()?),
        OperationKind::RegroupReplicas => {
            refactor::regroup_replicas(topo, target()?, &recovery.candidate)
        }
        OperationKind::StartReplication => instance::start_replication(topo, target()?),
        OperationKind::StopReplication => instance::stop_replication(topo, target()?),
        OperationKind::SetReadOnly => instance::set_read_only(topo, target()?),
        OperationKind::SetWritable => instance::set_writable(topo, target()?),
        OperationKind::FixErrant => instance::fix_errant(topo, target()?),
        OperationKind::Recover
        | OperationKind::Acknowledge
        | OperationKind::BeginDowntime
        | OperationKind::EndDowntime
        | OperationKind::Reprovision => Err(PlanError::invalid(format!(
            "{} is not planned from the topology alone",
            op.kind
        ))),
    }
}

/// The failure a `recover` asked for now would recover: the first the
/// analysis found, or why there is none (naming what was found).
pub fn failure_to_recover(findings: &[Finding]) -> Result<&Finding, String> {
    findings
        .iter()
        .find(|f| f.code.is_failure())
        .ok_or_else(|| {
            let found: Vec<String> = findings
                .iter()
                .map(|f| format!("{} ({})", f.code, f.instance))
                .collect();
            format!(
                "nothing to recover: no failure found{}",
                if found.is_empty() {
                    String::new()
                } else {
                    format!("; found {}", found.join(", "))
                }
            )
        })
}

/// The plan that recovers `failure` (what a dry run of `recover` shows).
pub fn recovery_plan(
    topo: &Topology,
    failure: &Finding,
    options: &RecoveryOptions,
) -> Result<Plan, PlanError> {
    if failure.code.is_intermediate() {
        recovery::dead_intermediate_primary(topo, &failure.instance, options)
    } else {
        recovery::dead_primary(topo, &failure.instance, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> InstanceKey {
        s.parse().unwrap()
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for kind in OperationKind::ALL {
            assert_eq!(kind.name().parse::<OperationKind>(), Ok(kind));
        }
        let e = "failover".parse::<OperationKind>().unwrap_err();
        assert!(
            e.contains("graceful-takeover") && e.contains("end-downtime"),
            "{e}"
        );
    }

    #[test]
    fn each_kind_says_what_it_needs() {
        use OperationKind::*;
        let a = Some(k("a:1"));
        let b = Some(k("b:1"));
        // (kind, target, destination, accepted)
        let table = [
            (GracefulTakeover, None, None, true),
            (GracefulTakeover, a.clone(), None, true),
            (GracefulTakeover, a.clone(), b.clone(), false),
            (ForceFailover, None, None, true),
            (ForceFailover, a.clone(), None, false),
            (ForceTakeover, None, None, false),
            (ForceTakeover, a.clone(), None, true),
            (Recover, a.clone(), None, false),
            (Acknowledge, None, None, true),
            (Relocate, a.clone(), None, false),
            (Relocate, a.clone(), b.clone(), true),
            (MoveUp, None, None, false),
            (MoveUp, a.clone(), b.clone(), false),
            (MoveBelow, a.clone(), b.clone(), true),
            (Repoint, a.clone(), None, true),
            (Repoint, a.clone(), b.clone(), true),
            (TakeSiblings, a.clone(), None, true),
            (RegroupReplicas, a.clone(), None, true),
            (BeginDowntime, None, None, false),
            (BeginDowntime, a.clone(), None, true),
            (EndDowntime, a.clone(), None, true),
            (StartReplication, None, None, false),
            (StopReplication, a.clone(), None, true),
            (SetWritable, a.clone(), b.clone(), false),
            (FixErrant, a.clone(), None, true),
        ];
        for (kind, t, d, ok) in table {
            let got = Operation::new(kind, t.clone(), d.clone());
            assert_eq!(got.is_ok(), ok, "{kind} {t:?} {d:?}: {got:?}");
        }
    }

    #[test]
    fn engine_kinds_have_no_plan_of_their_own() {
        let topo = Topology::default();
        for kind in OperationKind::ALL.into_iter().filter(|k| !k.is_plan()) {
            let op = Operation {
                kind,
                target: Some(k("a:1")),
                destination: None,
            };
            let e = plan(
                &topo,
                None,
                &op,
                &RecoveryOptions::default(),
                &TakeoverOptions::default(),
            )
            .unwrap_err();
            assert!(e.to_string().contains("not planned"), "{e}");
        }
        let op = Operation::new(OperationKind::ForceFailover, None, None).unwrap();
        let e = plan(
            &topo,
            None,
            &op,
            &RecoveryOptions::default(),
            &TakeoverOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the cluster has no primary");
    }
}
