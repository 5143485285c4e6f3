//! The epoch enforced by the executor on real mariadbd topologies: with a
//! valid fence a graceful takeover records the leader's epoch on the new
//! primary before it takes writes; a fence that closes partway stops the
//! operation at the next step boundary, runs nothing after it (no
//! rollback either) and names the step; a newer epoch already recorded
//! on the candidate stops the failover before the candidate is writable.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orca::engine::ClusterEngine;
use orca::engine::executor::{
    LeaderFence, OperationMeta, OperationRecord, Outcome, StepOutcome, Stopped,
};
use orca::ha::{Epoch, Fence, Leadership, NotLeader, read_epoch, record_epoch_at};
use orca::mysql::conn::{Timeouts, connect};
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::plan::{PlanKind, Step};
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::admin_credentials;
use support::*;
use tokio::sync::watch;

/// The state an elector publishes while it leads in `epoch` for a long
/// term.
fn leading(epoch: i64) -> Leadership {
    Leadership::Leader {
        epoch,
        valid_until: Instant::now() + Duration::from_secs(600),
    }
}

/// A real fence on a watch channel whose elector loses the Lease (it
/// publishes a follower) once `valid` checks have been answered: the
/// executor's next check finds it deposed.
struct LosesAfter {
    fence: Fence,
    tx: watch::Sender<Leadership>,
    valid: usize,
    asked: AtomicUsize,
}

impl LosesAfter {
    fn new(epoch: i64, valid: usize) -> Arc<LosesAfter> {
        let (tx, rx) = watch::channel(leading(epoch));
        Arc::new(LosesAfter {
            fence: Fence::new(rx),
            tx,
            valid,
            asked: AtomicUsize::new(0),
        })
    }
}

impl LeaderFence for LosesAfter {
    fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
        if self.asked.fetch_add(1, Ordering::SeqCst) == self.valid {
            self.tx.send_replace(Leadership::Follower {
                holder: Some("orca-1".into()),
            });
        }
        self.fence.check(needed)
    }
}

const DEPOSED: &str = "not the leader (the lease is held by orca-1)";

async fn epoch_on(key: &InstanceKey) -> Option<i64> {
    let mut conn = connect(key, &admin_credentials(), Timeouts::default())
        .await
        .expect("connect");
    let e = read_epoch(&mut conn, key, Duration::from_secs(3))
        .await
        .expect("read the epoch");
    let _ = conn.disconnect().await;
    e
}

fn meta(kind: PlanKind) -> OperationMeta {
    OperationMeta {
        id: format!("test-{}", kind.name()),
        cluster: "test".into(),
        trigger: kind.name().into(),
    }
}

/// A graceful takeover of `primary` by `target` planned from a fresh
/// round, and its plan's steps.
async fn takeover(
    e: &mut ClusterEngine,
    primary: &InstanceKey,
    target: &InstanceKey,
) -> (OperationRecord, Vec<Step>) {
    e.round().await;
    let plan = graceful_takeover(
        e.topology(),
        primary,
        Some(target),
        &TakeoverOptions::default(),
    )
    .unwrap_or_else(|err| panic!("no takeover plan: {err}"));
    let record = e
        .executor
        .execute(&plan, &meta(PlanKind::GracefulTakeover))
        .await;
    (record, plan.steps)
}

fn position(steps: &[Step], want: &Step) -> usize {
    steps
        .iter()
        .position(|s| s == want)
        .unwrap_or_else(|| panic!("no step {want} in {steps:#?}"))
}

/// How many checks the fence answers before `steps[upto]`: one per step
/// that changes something.
fn checks_before(steps: &[Step], upto: usize) -> usize {
    steps[..upto].iter().filter(|s| s.mutates()).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_records_the_leaders_epoch_on_the_new_primary() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);
    let (tx, rx) = watch::channel(leading(7));
    e.executor.set_fence(Some(Fence::new(rx)));
    let (record, steps) = takeover(&mut e, &p, &r1).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(epoch_on(&r1).await, Some(7));
    let recorded = record
        .steps
        .iter()
        .find(|s| matches!(&s.step, Step::RecordEpoch { on } if on == &r1))
        .expect("the epoch step");
    assert_eq!(recorded.outcome, StepOutcome::Done);
    // Recorded before the new primary took writes.
    let at = position(&steps, &Step::RecordEpoch { on: r1.clone() });
    let writable = position(
        &steps,
        &Step::SetReadOnly {
            on: r1.clone(),
            read_only: false,
        },
    );
    assert!(at < writable);
    // The epoch write replicates like any other.
    wait_replicating_from(&r2, &r1).await;
    wait_replicating_from(&p, &r1).await;
    for k in [&p, &r2] {
        eventually(Duration::from_secs(10), "the epoch replicated", || async {
            (epoch_on(k).await == Some(7)).then_some(())
        })
        .await;
    }

    // A later leader records its own, higher epoch.
    tx.send_replace(leading(8));
    let (record, _) = takeover(&mut e, &r1, &r2).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(epoch_on(&r2).await, Some(8));

    // Without leader election there is no epoch: the step is skipped and
    // says so, and what is stored stays.
    e.executor.set_fence(None);
    let (record, _) = takeover(&mut e, &r2, &p).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let skipped = record
        .steps
        .iter()
        .find(|s| matches!(s.step, Step::RecordEpoch { .. }))
        .expect("the epoch step");
    assert_eq!(
        skipped.outcome,
        StepOutcome::Skipped("no leader election: no epoch to record".into())
    );
    assert_eq!(epoch_on(&p).await, Some(8));
    assert!(!snapshot(&p).await.is_read_only());
}

/// Deposed before the point of no return: the primary stays fenced (a
/// rollback would have made it writable again), the target still
/// replicates from it, the record names the step the fence refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_deposed_takeover_stops_at_the_next_step_without_rollback() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);
    e.round().await;
    let plan =
        graceful_takeover(e.topology(), &p, Some(&r1), &TakeoverOptions::default()).expect("plan");
    // Lost once the primary is fenced and the target caught up: the
    // target's StopReplica is refused.
    let stop = position(&plan.steps, &Step::StopReplica { on: r1.clone() });
    assert!(stop < plan.point_of_no_return, "{plan}");
    assert!(!plan.rollback.is_empty(), "{plan}");
    let fence = LosesAfter::new(3, checks_before(&plan.steps, stop));
    e.executor.fence = Some(fence.clone());
    let record = e
        .executor
        .execute(&plan, &meta(PlanKind::GracefulTakeover))
        .await;
    assert_eq!(
        record.outcome,
        Outcome::Deposed(Stopped {
            index: stop,
            rollback: false,
            step: format!("{r1}: stop replication"),
            reason: DEPOSED.into(),
        }),
        "{record:#?}"
    );
    // Every step before ran, nothing from the refused one on.
    assert_eq!(record.steps.len(), stop, "{record:#?}");
    assert!(
        record.steps.iter().all(|s| s.outcome == StepOutcome::Done),
        "{record:#?}"
    );
    assert!(record.rollback.is_empty(), "no rollback: {record:#?}");
    assert_eq!(
        fence.asked.load(Ordering::SeqCst),
        checks_before(&plan.steps, stop) + 1,
        "one check per step that changes something, none after the refusal"
    );
    // On the servers: the primary fenced as the steps left it (no rollback
    // made it writable), the target and its sibling still its replicas.
    let old = snapshot(&p).await;
    assert!(old.is_read_only() && old.replica.is_none(), "{old:#?}");
    assert!(e.executor.write_locks.holds(&p));
    for k in [&r1, &r2] {
        let s = snapshot(k).await;
        assert!(s.is_read_only(), "{s:#?}");
        let source = s.replica.as_ref().expect("still a replica");
        assert_eq!(&source.source, &p);
        assert!(source.is_replicating(), "{s:#?}");
    }
    assert_eq!(epoch_on(&r1).await, None);
}

/// Deposed after the point of no return: the target was reset but the
/// epoch step is refused, so it is never made writable; the other replica
/// is not repointed.
#[tokio::test(flavor = "multi_thread")]
async fn a_deposed_takeover_never_makes_the_target_writable() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let mut e = engine(&c);
    e.round().await;
    let plan =
        graceful_takeover(e.topology(), &p, Some(&r1), &TakeoverOptions::default()).expect("plan");
    let at = position(&plan.steps, &Step::RecordEpoch { on: r1.clone() });
    assert!(at >= plan.point_of_no_return, "{plan}");
    let fence = LosesAfter::new(3, checks_before(&plan.steps, at));
    e.executor.fence = Some(fence.clone());
    let record = e
        .executor
        .execute(&plan, &meta(PlanKind::GracefulTakeover))
        .await;
    match &record.outcome {
        Outcome::Deposed(s) => {
            assert_eq!((s.index, s.rollback), (at, false), "{record:#?}");
            assert!(matches!(&plan.steps[s.index], Step::RecordEpoch { on } if on == &r1));
            assert_eq!(s.reason, DEPOSED);
        }
        other => panic!("not deposed: {other:?}\n{record:#?}"),
    }
    assert_eq!(record.steps.len(), at);
    assert!(matches!(
        record.steps.last().map(|s| &s.step),
        Some(Step::ResetReplicaAll { on }) if on == &r1
    ));
    assert!(record.rollback.is_empty());
    let t = snapshot(&r1).await;
    assert!(t.is_read_only() && t.replica.is_none(), "{t:#?}");
    assert_eq!(epoch_on(&r1).await, None);
    let sibling = snapshot(&r2).await;
    assert_eq!(
        sibling.replica.as_ref().map(|r| &r.source),
        Some(&p),
        "not repointed"
    );
    assert!(snapshot(&p).await.is_read_only());
}

/// A newer epoch on the candidate (recorded by a later leader) makes the
/// failover of a dead semi-sync primary stop at its epoch step: the
/// candidate stays read only, the other replica is not moved, no hook of
/// a failed failover runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_newer_epoch_on_the_candidate_stops_the_failover() {
    let mut c = semi_sync_cluster(2).await;
    let [p, r1, r2] = [0, 1, 2].map(|i| c.instances[i].key());
    // Recorded on the primary, it reaches both replicas.
    record_epoch_at(&p, &admin_credentials(), Timeouts::default(), Epoch(9))
        .await
        .expect("record epoch 9");
    for k in [&r1, &r2] {
        eventually(Duration::from_secs(10), "the epoch replicated", || async {
            (epoch_on(k).await == Some(9)).then_some(())
        })
        .await;
    }
    let dir = std::env::temp_dir().join(format!("orca-epoch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let failed_hook = dir.join("failed");
    let mut hooks = orca::engine::hooks::Hooks::default();
    hooks.add(
        orca::plan::HookEvent::FailedFailover,
        orca::engine::hooks::HookTarget::Command {
            command: format!("touch {}", failed_hook.display()),
            timeout: Duration::from_secs(5),
        },
    );
    let mut e = engine_with(&c, hooks, |_| {});
    let (_tx, rx) = watch::channel(leading(5));
    e.executor.set_fence(Some(Fence::new(rx)));
    let first = e.round().await;
    assert!(first.findings.is_empty(), "{:?}", first.findings);
    c.instances[0].kill().expect("kill the primary");
    let record = rounds_until(&mut e, Duration::from_secs(30), "a recovery", |r| {
        r.recovery.clone()
    })
    .await;
    let Outcome::Deposed(stopped) = &record.outcome else {
        panic!("not stopped: {record:#?}");
    };
    assert!(!stopped.rollback);
    assert!(
        stopped
            .reason
            .contains("epoch 9 is recorded, newer than ours (5); refusing to act"),
        "{stopped:?}"
    );
    // The record names the epoch step (counted across the failover's
    // phases), which ran and failed; nothing after it ran.
    let candidate = record.successor.clone().expect("a candidate");
    assert!(candidate == r1 || candidate == r2);
    let last = record.steps.last().expect("steps");
    assert_eq!(last.index, stopped.index, "{record:#?}");
    assert!(matches!(&last.step, Step::RecordEpoch { on } if on == &candidate));
    assert!(matches!(&last.outcome, StepOutcome::Failed(e) if e.contains("epoch 9")));
    assert!(record.rollback.is_empty());
    let s = snapshot(&candidate).await;
    assert!(s.is_read_only(), "never made writable: {s:#?}");
    assert_eq!(epoch_on(&candidate).await, Some(9));
    let other = if candidate == r1 { &r2 } else { &r1 };
    let o = snapshot(other).await;
    assert_eq!(
        o.replica.as_ref().map(|r| &r.source),
        Some(&p),
        "not repointed: {o:#?}"
    );
    assert!(
        !failed_hook.exists(),
        "no failed-failover hook when deposed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
