//! The executor's journal on real mariadbd topologies: told before every
//! step that changes something, after the fence check of that step, with
//! where the plan stands; a journal that cannot be written stops the
//! operation before that step (and runs no rollback), as a lost
//! leadership does.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orca::engine::executor::{
    Journal, JournalPoint, LeaderFence, OperationMeta, Outcome, StepOutcome,
};
use orca::ha::{Epoch, Fence, Leadership, NotLeader};
use orca::plan::takeover::{TakeoverOptions, graceful_takeover};
use orca::plan::{PlanKind, Step};
use support::*;
use tokio::sync::watch;

/// What the fence and the journal were asked, in order.
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Fence,
    Journal {
        index: usize,
        rollback: bool,
        past: bool,
        epoch: Option<i64>,
    },
}

type Log = Arc<Mutex<Vec<Asked>>>;

/// A real fence leading in epoch 5 that logs each check.
struct Logged {
    fence: Fence,
    _tx: watch::Sender<Leadership>,
    log: Log,
}

impl LeaderFence for Logged {
    fn check(&self, needed: Duration) -> Result<Epoch, NotLeader> {
        self.log.lock().unwrap().push(Asked::Fence);
        self.fence.check(needed)
    }
}

/// A journal that logs each call and fails the call numbered `fail_at`
/// (from 0), if any.
struct Recorder {
    log: Log,
    calls: Mutex<usize>,
    fail_at: Option<usize>,
}

impl Journal for Recorder {
    fn record<'a>(
        &'a self,
        point: JournalPoint<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            assert!(
                point.step().is_some_and(Step::mutates),
                "{:?}",
                point.step()
            );
            self.log.lock().unwrap().push(Asked::Journal {
                index: point.index,
                rollback: point.rollback,
                past: point.past_point_of_no_return,
                epoch: point.epoch.map(|e| e.get()),
            });
            let mut n = self.calls.lock().unwrap();
            let this = *n;
            *n += 1;
            if Some(this) == self.fail_at {
                Err("the API server refused the write".into())
            } else {
                Ok(())
            }
        })
    }
}

fn meta() -> OperationMeta {
    OperationMeta {
        id: "test-journal".into(),
        cluster: "test".into(),
        trigger: PlanKind::GracefulTakeover.name().into(),
    }
}

/// An engine on `c` whose executor has the logged fence and a recorder
/// failing at `fail_at`.
fn journaled(
    c: &orca_sandbox::LocalCluster,
    fail_at: Option<usize>,
) -> (orca::engine::ClusterEngine, Log) {
    let log: Log = Arc::default();
    let (tx, rx) = watch::channel(Leadership::Leader {
        epoch: 5,
        valid_until: Instant::now() + Duration::from_secs(600),
    });
    let mut e = engine(c);
    e.executor.fence = Some(Arc::new(Logged {
        fence: Fence::new(rx),
        _tx: tx,
        log: log.clone(),
    }));
    e.executor.set_journal(Some(Arc::new(Recorder {
        log: log.clone(),
        calls: Mutex::new(0),
        fail_at,
    })));
    (e, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_is_told_before_each_step_that_changes_something() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let (mut e, log) = journaled(&c, None);
    e.round().await;
    let plan =
        graceful_takeover(e.topology(), &p, Some(&r1), &TakeoverOptions::default()).expect("plan");
    log.lock().unwrap().clear();
    let record = e.executor.execute(&plan, &meta()).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    // Each step that changes something: the fence check, then the
    // journal, with the step's index and whether the reset ran.
    let want: Vec<Asked> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.mutates())
        .flat_map(|(index, _)| {
            [
                Asked::Fence,
                Asked::Journal {
                    index,
                    rollback: false,
                    past: index > plan.point_of_no_return,
                    epoch: Some(5),
                },
            ]
        })
        .collect();
    assert_eq!(*log.lock().unwrap(), want);
    // The reset is journaled as not yet passed, the step after it as
    // passed.
    let reset = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::ResetReplicaAll { on } if on == &r1))
        .expect("the reset");
    assert_eq!(reset, plan.point_of_no_return);
    wait_replicating_from(&r2, &r1).await;
    wait_replicating_from(&p, &r1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_that_cannot_be_written_stops_the_plan_before_its_step() {
    let (c, [p, r1, r2]) = primary_and_two_replicas().await;
    let (mut probe, _) = journaled(&c, None);
    probe.round().await;
    let plan = graceful_takeover(probe.topology(), &p, Some(&r1), &TakeoverOptions::default())
        .expect("plan");
    drop(probe);
    // The journal refuses the write before the reset (the point of no
    // return): the call for it is the one after those of the steps before.
    let reset = plan.point_of_no_return;
    let before = plan.steps[..reset].iter().filter(|s| s.mutates()).count();
    let (e, log) = journaled(&c, Some(before));
    let record = e.executor.execute(&plan, &meta()).await;
    let Outcome::Deposed(stopped) = &record.outcome else {
        panic!("not stopped: {record:#?}");
    };
    assert_eq!(stopped.index, reset, "{record:#?}");
    assert!(!stopped.rollback);
    assert!(
        stopped.reason.contains("the API server refused the write"),
        "{stopped:?}"
    );
    // Every step before ran, the refused one did not, and no rollback.
    assert_eq!(record.steps.len(), reset, "{record:#?}");
    assert!(record.steps.iter().all(|s| s.outcome == StepOutcome::Done));
    assert!(record.rollback.is_empty(), "{record:#?}");
    let journaled_calls = log
        .lock()
        .unwrap()
        .iter()
        .filter(|a| matches!(a, Asked::Journal { .. }))
        .count();
    assert_eq!(
        journaled_calls,
        before + 1,
        "nothing asked after the refusal"
    );
    // The target was not reset: it still replicates from the primary.
    let s = snapshot(&r1).await;
    let source = s.replica.as_ref().expect("the target still replicates");
    assert_eq!(source.source, p);
    assert!(s.is_read_only());
    let other = snapshot(&r2).await;
    assert_eq!(other.replica.as_ref().map(|r| &r.source), Some(&p));
}
