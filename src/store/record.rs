//! What the store keeps, as rows, and the pure rules that decide what to
//! write: which records a filling queue still admits, when an instance's
//! snapshot is worth writing, and which findings started or ended.
//! No I/O and no clock here: times are arguments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::analysis::{ClusterProblemCode, Finding};
use crate::engine::executor::{OperationRecord, Outcome, StepOutcome, StepRecord};
use crate::topology::InstanceKey;
use crate::topology::graph::Node;

/// One record for the store. Writing one twice is harmless: every write is
/// an upsert by the record's key, so a batch retried after a commit whose
/// answer was lost changes nothing.
#[derive(Debug, Clone)]
pub enum Record {
    /// The latest snapshot of an instance.
    Instance(InstanceRow),
    FindingStarted(FindingRow),
    /// A finding still active at `at_ms` (its last-seen time moves on).
    FindingSeen {
        id: String,
        at_ms: i64,
    },
    FindingEnded {
        id: String,
        at_ms: i64,
    },
    /// An operation (recovery, takeover, fence, ...) with its steps.
    Recovery(Box<RecoveryRow>),
    /// The acknowledgement of a recovery.
    Acknowledged {
        recovery_id: String,
        by: String,
        comment: String,
        at_ms: i64,
    },
    Audit(AuditRow),
    Downtime(DowntimeRow),
}

impl Record {
    /// A record the next one of its kind supersedes (a snapshot, a
    /// last-seen time): the first to go when the queue fills.
    pub fn volatile(&self) -> bool {
        matches!(self, Record::Instance(_) | Record::FindingSeen { .. })
    }

    /// The record's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Instance(_) => "instance",
            Record::FindingStarted(_) => "finding",
            Record::FindingSeen { .. } => "finding-seen",
            Record::FindingEnded { .. } => "finding-ended",
            Record::Recovery(_) => "recovery",
            Record::Acknowledged { .. } => "acknowledgement",
            Record::Audit(_) => "audit",
            Record::Downtime(_) => "downtime",
        }
    }
}

/// Whether a queue holding `pending` records out of `capacity` takes one
/// more. A full queue refuses the newest record (the one being offered),
/// never an older one: the oldest records are the history the store is
/// for — the recovery that ran while the store was down is written before
/// anything that came after it — and a tokio channel cannot take back
/// what it holds. Volatile records (snapshots, last-seen times: the next
/// one supersedes them) are only taken while the queue is less than half
/// full, so that recoveries, findings and audit records keep the other
/// half for themselves.
pub fn admits(volatile: bool, pending: usize, capacity: usize) -> bool {
    if volatile {
        pending < capacity / 2
    } else {
        pending < capacity
    }
}

/// Milliseconds since the Unix epoch, as the store keeps times.
pub type Millis = i64;

/// The latest snapshot of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub cluster: String,
    pub instance: String,
    pub role: String,
    pub source: Option<String>,
    pub reachable: bool,
    pub read_only: Option<bool>,
    pub flavor: Option<String>,
    pub version: Option<String>,
    pub server_id: Option<u32>,
    pub gtid_executed: Option<String>,
    pub lag_ms: Option<u64>,
    pub error: Option<String>,
    /// The probe's whole snapshot as JSON.
    pub snapshot: Option<String>,
    pub seen_at_ms: Millis,
}

impl InstanceRow {
    pub fn of(cluster: &str, node: &Node, seen_at_ms: Millis) -> InstanceRow {
        let s = node.snapshot.as_ref();
        InstanceRow {
            cluster: cluster.to_string(),
            instance: node.key.to_string(),
            role: node.role.to_string(),
            source: node.source.as_ref().map(|k| k.to_string()),
            reachable: node.reachable(),
            read_only: s.map(|s| s.is_read_only()),
            flavor: s.map(|s| s.flavor.to_string()),
            version: s.map(|s| s.version.raw.clone()),
            server_id: s.map(|s| s.server_id),
            gtid_executed: s
                .and_then(|s| s.gtid.executed.as_ref())
                .map(|g| g.to_string()),
            lag_ms: node.lag_ms,
            error: node.error.clone(),
            snapshot: None,
            seen_at_ms,
        }
    }

    /// The row with the probe's whole snapshot as JSON (made only for a
    /// row that is written).
    pub fn with_snapshot(mut self, node: &Node) -> InstanceRow {
        self.snapshot = node
            .snapshot
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok());
        self
    }

    /// What makes a new snapshot worth writing at once: the instance's
    /// place and state, not its moving positions (GTIDs, lag).
    pub fn shape(&self) -> Shape {
        Shape {
            role: self.role.clone(),
            source: self.source.clone(),
            reachable: self.reachable,
            read_only: self.read_only,
            version: self.version.clone(),
            server_id: self.server_id,
            failing: self.error.is_some(),
        }
    }
}

/// The part of an instance's snapshot whose change is written at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    role: String,
    source: Option<String>,
    reachable: bool,
    read_only: Option<bool>,
    version: Option<String>,
    server_id: Option<u32>,
    failing: bool,
}

/// Decides which instance snapshots to write: one whose shape changed at
/// once, otherwise at most one per instance every `interval` — the store
/// stays quiet while nothing happens.
#[derive(Debug)]
pub struct SnapshotThrottle {
    pub interval: Duration,
    last: BTreeMap<String, (Shape, Instant)>,
}

impl SnapshotThrottle {
    pub fn new(interval: Duration) -> Self {
        SnapshotThrottle {
            interval,
            last: BTreeMap::new(),
        }
    }

    /// Whether to write `row` now; remembers it when so.
    pub fn admit(&mut self, row: &InstanceRow, now: Instant) -> bool {
        let shape = row.shape();
        let due = match self.last.get(&row.instance) {
            None => true,
            Some((s, _)) if *s != shape => true,
            Some((_, at)) => now.saturating_duration_since(*at) >= self.interval,
        };
        if due {
            self.last.insert(row.instance.clone(), (shape, now));
        }
        due
    }

    /// Forgets a row's last write: the next one is written whatever it
    /// holds (a record the queue refused).
    pub fn forget(&mut self, instance: &str) {
        self.last.remove(instance);
    }
}

/// One finding, from its first sight.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: String,
    pub cluster: String,
    pub code: String,
    pub severity: String,
    pub instance: String,
    pub replicas: String,
    pub description: String,
    pub first_seen_ms: Millis,
}

struct Active {
    id: String,
    seen_written_ms: Millis,
}

/// The findings active in a cluster, with the store's id of each: turns
/// each round's findings into the records of findings that started, ended
/// or are still seen (at most every `refresh_ms` per finding).
pub struct FindingTracker {
    cluster: String,
    refresh_ms: Millis,
    active: BTreeMap<(ClusterProblemCode, InstanceKey), Active>,
}

impl FindingTracker {
    pub fn new(cluster: impl Into<String>, refresh: Duration) -> Self {
        FindingTracker {
            cluster: cluster.into(),
            refresh_ms: i64::try_from(refresh.as_millis()).unwrap_or(i64::MAX),
            active: BTreeMap::new(),
        }
    }

    /// The records for a round whose findings are `findings`, at `now_ms`;
    /// `new_id` names a finding that starts.
    pub fn round(
        &mut self,
        findings: &[Finding],
        now_ms: Millis,
        mut new_id: impl FnMut() -> String,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        let current: BTreeMap<(ClusterProblemCode, InstanceKey), &Finding> = findings
            .iter()
            .map(|f| ((f.code, f.instance.clone()), f))
            .collect();
        let ended: Vec<_> = self
            .active
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        for k in ended {
            if let Some(a) = self.active.remove(&k) {
                out.push(Record::FindingEnded {
                    id: a.id,
                    at_ms: now_ms,
                });
            }
        }
        for (k, f) in current {
            match self.active.get_mut(&k) {
                Some(a) => {
                    if now_ms - a.seen_written_ms >= self.refresh_ms {
                        a.seen_written_ms = now_ms;
                        out.push(Record::FindingSeen {
                            id: a.id.clone(),
                            at_ms: now_ms,
                        });
                    }
                }
                None => {
                    let id = new_id();
                    out.push(Record::FindingStarted(FindingRow {
                        id: id.clone(),
                        cluster: self.cluster.clone(),
                        code: f.code.to_string(),
                        severity: f.severity().to_string(),
                        instance: f.instance.to_string(),
                        replicas: f
                            .replicas
                            .iter()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        description: f.description.clone(),
                        first_seen_ms: now_ms,
                    }));
                    self.active.insert(
                        k,
                        Active {
                            id,
                            seen_written_ms: now_ms,
                        },
                    );
                }
            }
        }
        out
    }
}

/// One operation as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryRow {
    pub id: String,
    pub cluster: String,
    pub kind: String,
    pub trigger: String,
    pub failed_instance: Option<String>,
    pub successor: Option<String>,
    /// JSON: `[[instance, why], ...]`.
    pub lost_replicas: String,
    /// Possibly lost transactions (GTIDs in the flavor's notation).
    pub lost_gtids: Option<String>,
    pub lost_count: Option<u64>,
    /// `succeeded`, `vetoed`, `rolled_back`, `failed` or `deposed`.
    pub outcome: String,
    pub outcome_detail: Option<String>,
    /// JSON list.
    pub notes: String,
    /// JSON list.
    pub hook_errors: String,
    pub epoch: Option<i64>,
    pub started_ms: Millis,
    pub ended_ms: Millis,
    pub steps: Vec<StepRow>,
}

/// One step of an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    /// `step` or `rollback`.
    pub phase: String,
    pub index: u32,
    pub description: String,
    /// The step as JSON.
    pub step: String,
    /// Unix milliseconds when the step started.
    pub started_ms: Millis,
    pub duration_ms: u64,
    /// `done`, `failed` or `skipped`.
    pub outcome: String,
    pub detail: Option<String>,
}

fn ms(v: u64) -> Millis {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An outcome's name and detail.
pub fn outcome_parts(o: &Outcome) -> (&'static str, Option<String>) {
    match o {
        Outcome::Succeeded => ("succeeded", None),
        Outcome::Vetoed(d) => ("vetoed", Some(d.clone())),
        Outcome::RolledBack(d) => ("rolled_back", Some(d.clone())),
        Outcome::Failed(d) => ("failed", Some(d.clone())),
        Outcome::Deposed(s) => ("deposed", Some(s.to_string())),
    }
}

fn step_row(phase: &str, base_ms: Millis, s: &StepRecord) -> StepRow {
    let (outcome, detail) = match &s.outcome {
        StepOutcome::Done => ("done", None),
        StepOutcome::Failed(d) => ("failed", Some(d.clone())),
        StepOutcome::Skipped(d) => ("skipped", Some(d.clone())),
    };
    StepRow {
        phase: phase.to_string(),
        index: u32::try_from(s.index).unwrap_or(u32::MAX),
        description: s.description.clone(),
        step: serde_json::to_string(&s.step).unwrap_or_default(),
        started_ms: base_ms.saturating_add(ms(s.started_ms)),
        duration_ms: s.duration_ms,
        outcome: outcome.to_string(),
        detail,
    }
}

impl RecoveryRow {
    /// The row of `r`, run in `epoch` (with leader election).
    pub fn of(r: &OperationRecord, epoch: Option<i64>) -> RecoveryRow {
        let started_ms = ms(r.started_at).saturating_mul(1000);
        let (outcome, outcome_detail) = outcome_parts(&r.outcome);
        let lost: Vec<(String, String)> = r
            .lost_replicas
            .iter()
            .map(|(k, why)| (k.to_string(), why.clone()))
            .collect();
        let mut steps: Vec<StepRow> = r
            .steps
            .iter()
            .map(|s| step_row("step", started_ms, s))
            .collect();
        steps.extend(
            r.rollback
                .iter()
                .map(|s| step_row("rollback", started_ms, s)),
        );
        RecoveryRow {
            id: r.id.clone(),
            cluster: r.cluster.clone(),
            kind: r.kind.name().to_string(),
            trigger: r.trigger.clone(),
            failed_instance: r.failed.as_ref().map(|k| k.to_string()),
            successor: r.successor.as_ref().map(|k| k.to_string()),
            lost_replicas: json(&lost),
            lost_gtids: r.lost_transactions.as_ref().map(|l| l.gtids.clone()),
            lost_count: r.lost_transactions.as_ref().map(|l| l.count),
            outcome: outcome.to_string(),
            outcome_detail,
            notes: json(&r.notes),
            hook_errors: json(&r.hook_errors),
            epoch,
            started_ms,
            ended_ms: started_ms.saturating_add(ms(r.duration_ms)),
            steps,
        }
    }
}

/// A value as JSON text (an empty list on the error serde_json cannot
/// give for these types).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Through which door an operation was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// An annotation on a Kubernetes object.
    Annotation,
    /// The HTTP API.
    Api,
    /// The command line (a flag, a one-shot command).
    Cli,
    /// A Unix signal to the orca process (`orca standalone`'s SIGUSR1).
    Signal,
    /// orca itself: an automatic recovery.
    Engine,
}

impl Door {
    pub const ALL: [Door; 5] = [
        Door::Annotation,
        Door::Api,
        Door::Cli,
        Door::Signal,
        Door::Engine,
    ];

    pub fn parse(name: &str) -> Option<Door> {
        Door::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Door::Annotation => "annotation",
            Door::Api => "api",
            Door::Cli => "cli",
            Door::Signal => "signal",
            Door::Engine => "engine",
        }
    }
}

/// One operation asked for: who, what, through which door.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub id: String,
    pub at_ms: Millis,
    pub cluster: String,
    /// `recover`, `acknowledge`, `graceful-takeover`, ...
    pub action: String,
    /// The instance it is about, if any.
    pub target: Option<String>,
    pub requested_by: String,
    pub door: Door,
    pub detail: Option<String>,
}

/// A downtime: no automatic recovery of `instance` until `ends_ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DowntimeRow {
    pub id: String,
    pub cluster: String,
    pub instance: String,
    pub starts_ms: Millis,
    pub ends_ms: Millis,
    pub owner: String,
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanKind, Step};
    use crate::topology::testing::key;

    #[test]
    fn a_filling_queue_refuses_volatile_records_first_and_the_newest_always() {
        // (volatile, pending, capacity, admitted)
        let cases = [
            (false, 0, 4, true),
            (false, 3, 4, true),
            (false, 4, 4, false),
            (false, 9, 4, false),
            (true, 0, 4, true),
            (true, 1, 4, true),
            (true, 2, 4, false),
            (true, 3, 4, false),
            (true, 0, 1, false),
            (false, 0, 1, true),
            (false, 0, 0, false),
        ];
        for (volatile, pending, capacity, want) in cases {
            assert_eq!(
                admits(volatile, pending, capacity),
                want,
                "volatile {volatile}, {pending}/{capacity}"
            );
        }
    }

    fn row(role: &str, lag: Option<u64>, error: Option<&str>) -> InstanceRow {
        InstanceRow {
            cluster: "c".into(),
            instance: "10.0.0.1:3306".into(),
            role: role.into(),
            source: None,
            reachable: error.is_none(),
            read_only: Some(false),
            flavor: None,
            version: None,
            server_id: Some(1),
            gtid_executed: lag.map(|l| format!("0-1-{l}")),
            lag_ms: lag,
            error: error.map(String::from),
            snapshot: None,
            seen_at_ms: 0,
        }
    }

    #[test]
    fn snapshots_are_written_on_change_or_every_interval() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut th = SnapshotThrottle::new(Duration::from_secs(30));
        // (row, time, written)
        let steps = [
            (row("primary", Some(1), None), at(0), true),
            (row("primary", Some(2), None), at(1), false),
            (row("primary", Some(3), None), at(29), false),
            (row("primary", Some(4), None), at(30), true),
            (row("primary", Some(5), None), at(31), false),
            (row("unknown", None, Some("gone")), at(32), true),
            (row("unknown", None, Some("gone")), at(33), false),
            (row("replica", Some(0), None), at(34), true),
        ];
        for (i, (r, now, want)) in steps.iter().enumerate() {
            assert_eq!(th.admit(r, *now), *want, "step {i}");
        }
        th.forget("10.0.0.1:3306");
        assert!(th.admit(&row("replica", Some(0), None), at(35)));
    }

    fn finding(code: ClusterProblemCode, on: &str) -> Finding {
        Finding {
            code,
            instance: key(on),
            replicas: vec![key("r1"), key("r2")],
            description: format!("{code} on {on}"),
        }
    }

    #[test]
    fn findings_start_are_seen_and_end() {
        use ClusterProblemCode::*;
        let mut t = FindingTracker::new("c", Duration::from_secs(30));
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("f{n}")
        };
        let names = |rs: &[Record]| -> Vec<String> {
            rs.iter()
                .map(|r| match r {
                    Record::FindingStarted(f) => {
                        format!("start {} {} {}", f.id, f.code, f.instance)
                    }
                    Record::FindingSeen { id, at_ms } => format!("seen {id} {at_ms}"),
                    Record::FindingEnded { id, at_ms } => format!("end {id} {at_ms}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        let dead = finding(DeadPrimary, "p");
        let lag = finding(AllReplicasNotReplicating, "p");
        let r = t.round(std::slice::from_ref(&dead), 1_000, &mut ids);
        assert_eq!(names(&r), ["start f1 DeadPrimary p:3306"]);
        assert!(matches!(&r[0], Record::FindingStarted(f) if f.replicas == "r1:3306,r2:3306"));
        let r = t.round(&[dead.clone(), lag.clone()], 2_000, &mut ids);
        assert_eq!(names(&r), ["start f2 AllReplicasNotReplicating p:3306"]);
        let r = t.round(&[dead.clone(), lag.clone()], 31_000, &mut ids);
        assert_eq!(names(&r), ["seen f1 31000"]);
        let r = t.round(std::slice::from_ref(&lag), 32_500, &mut ids);
        assert_eq!(names(&r), ["end f1 32500", "seen f2 32500"]);
        let r = t.round(&[], 33_000, &mut ids);
        assert_eq!(names(&r), ["end f2 33000"]);
        // The same problem again is a new finding.
        let r = t.round(std::slice::from_ref(&dead), 34_000, &mut ids);
        assert_eq!(names(&r), ["start f3 DeadPrimary p:3306"]);
    }

    #[test]
    fn an_operation_record_becomes_a_row_with_its_steps() {
        let step = |index: usize, s: Step, started_ms: u64, outcome: StepOutcome| StepRecord {
            index,
            description: s.to_string(),
            step: s,
            started_ms,
            duration_ms: 5,
            outcome,
        };
        let r = OperationRecord {
            id: "c-recover-1".into(),
            cluster: "c".into(),
            kind: PlanKind::RecoverDeadPrimary,
            trigger: "DeadPrimary".into(),
            failed: Some(key("p")),
            successor: Some(key("r1")),
            lost_replicas: vec![(key("r2"), "behind".into())],
            lost_transactions: Some(crate::plan::loss::LostTransactions {
                gtids: "0-1-101..105".into(),
                count: 5,
            }),
            notes: vec!["a note".into()],
            started_at: 1_700_000_000,
            duration_ms: 40,
            steps: vec![
                step(
                    0,
                    Step::StopReplicaIo { on: key("r1") },
                    0,
                    StepOutcome::Done,
                ),
                step(
                    1,
                    Step::ResetReplicaAll { on: key("r1") },
                    10,
                    StepOutcome::Failed("boom".into()),
                ),
            ],
            rollback: vec![step(
                0,
                Step::StartReplica { on: key("r1") },
                20,
                StepOutcome::Skipped("nothing".into()),
            )],
            hook_errors: Vec::new(),
            outcome: Outcome::Failed("step 2 failed".into()),
        };
        let row = RecoveryRow::of(&r, Some(7));
        assert_eq!(row.kind, "recover-dead-primary");
        assert_eq!(row.failed_instance.as_deref(), Some("p:3306"));
        assert_eq!(row.successor.as_deref(), Some("r1:3306"));
        assert_eq!(row.lost_replicas, r#"[["r2:3306","behind"]]"#);
        assert_eq!(row.lost_gtids.as_deref(), Some("0-1-101..105"));
        assert_eq!(row.lost_count, Some(5));
        assert_eq!(row.outcome, "failed");
        assert_eq!(row.outcome_detail.as_deref(), Some("step 2 failed"));
        assert_eq!(row.epoch, Some(7));
        assert_eq!(row.started_ms, 1_700_000_000_000);
        assert_eq!(row.ended_ms, 1_700_000_000_040);
        let steps: Vec<(&str, u32, &str, i64, Option<&str>)> = row
            .steps
            .iter()
            .map(|s| {
                (
                    s.phase.as_str(),
                    s.index,
                    s.outcome.as_str(),
                    s.started_ms - row.started_ms,
                    s.detail.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("step", 0, "done", 0, None),
                ("step", 1, "failed", 10, Some("boom")),
                ("rollback", 0, "skipped", 20, Some("nothing")),
            ]
        );
        assert!(
            row.steps[0].step.contains("r1:3306"),
            "{}",
            row.steps[0].step
        );
    }
}
