//! Chaos around the fence of a failover, on real mariadbd: replicas that
//! cannot apply their relay log in time (a `MASTER_DELAY`, a stopped SQL
//! thread) must neither undo the fence nor stop the promotion, and the
//! operation never both restarts replication and promotes; afterwards the
//! former primary rejoins the new one.

mod support;

use std::time::Duration;

use orca::engine::executor::{Outcome, StepOutcome};
use orca::plan::Step;
use orca::topology::InstanceKey;
use orca::topology::instance::IoThreadState;
use orca_sandbox::mysqld::admin_credentials;
use support::writer::{Writer, assert_acked, ids_on};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_a_delayed_replica_and_a_stopped_sql_thread() {
    let mut c = semi_sync_cluster(3).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    // keys[2] is delayed by 30 s, keys[3] has its SQL thread stopped.
    c.instances[2]
        .exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=30; START SLAVE")
        .await
        .unwrap();
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(30).await;
    c.instances[3].exec("STOP SLAVE SQL_THREAD").await.unwrap();
    eventually(
        Duration::from_secs(20),
        "more writes acknowledged",
        || async { (w.count() >= 60).then_some(()) },
    )
    .await;
    let mut e = engine_with(&c, Default::default(), |cfg| {
        cfg.recovery.relay_apply_timeout = Duration::from_secs(5);
    });
    e.round().await;
    c.instances[0].kill().unwrap();
    let record = next_recovery(&mut e, Duration::from_secs(60)).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.failed.as_ref(), Some(&keys[0]));
    let new = record.successor.clone().expect("successor");
    // The one whose SQL thread was stopped is started again by the fence
    // (what it received must be applied), so it may be chosen as well as
    // keys[1]. The delayed replica only when no other can be (the others
    // lack a transaction it received, under writes from several
    // connections), and then with its relay log applied first.
    delayed_only_as_a_last_resort(&record, &keys[2]);
    // The fence was not undone on the way to the promotion.
    assert!(record.rollback.is_empty(), "rollback ran: {record:#?}");
    // The promotion begins with the epoch, the first write on the
    // successor.
    let promoted = record
        .steps
        .iter()
        .position(|s| matches!(s.step, Step::RecordEpoch { .. }))
        .expect("a promotion");
    assert!(
        !record.steps[..promoted]
            .iter()
            .any(|s| matches!(s.step, Step::StartReplica { .. })),
        "replication restarted before the promotion: {record:#?}"
    );
    // No relay wait for the delayed replica nor the stopped SQL thread.
    assert!(
        !record.steps.iter().any(|s| matches!(
            &s.step,
            Step::WaitRelayApplied { on, .. } if on == &keys[2] || on == &keys[3]
        )),
        "{record:#?}"
    );
    let acked = w.finish().await;
    let s = snapshot(&new).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    assert_acked(&new, &admin_credentials(), &acked).await;
    // Every other replica follows the new primary, without error 1236/1950.
    replicating_without_position_errors(&keys[1..], &new).await;
}

/// A former primary whose binary log holds its own last writes (all of
/// them replicated before it died) rejoins the new primary after the
/// failover without error 1236/1950: its replication position is where its
/// own binary log ends, not its stale `gtid_slave_pos`.
#[tokio::test(flavor = "multi_thread")]
async fn a_former_primary_rejoins_after_the_failover() {
    let mut c = semi_sync_cluster(2).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(40).await;
    let acked = w.finish().await;
    // Everything the primary wrote is replicated before it dies.
    for k in &keys[1..] {
        eventually(Duration::from_secs(20), "replicas caught up", || async {
            let ids = ids_on(k, &admin_credentials()).await;
            acked.iter().all(|id| ids.contains(id)).then_some(())
        })
        .await;
    }
    // No heartbeat: a write in flight when it dies would be a real
    // diverged tail, which must not rejoin.
    let mut e = engine_with(&c, Default::default(), |cfg| cfg.heartbeat = false);
    e.round().await;
    c.instances[0].kill().unwrap();
    let record = next_recovery(&mut e, Duration::from_secs(60)).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let new = record.successor.clone().expect("successor");
    c.instances[0].restart().await.unwrap();
    // The engine fences it when it answers again.
    rounds_until(&mut e, Duration::from_secs(30), "the fence", |r| {
        r.fenced.contains(&keys[0]).then_some(())
    })
    .await;
    // A round that sees it read only.
    e.round().await;
    let members = keys.iter().cloned().collect();
    let joining =
        orca::plan::membership::join_members(e.topology(), &new, &members, &Default::default());
    assert!(joining.unjoinable.is_empty(), "{:?}", joining.unjoinable);
    assert!(
        joining
            .plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::ChangeSource { on, .. } if on == &keys[0])),
        "{}",
        joining.plan
    );
    let meta = orca::engine::executor::OperationMeta {
        id: "join".into(),
        cluster: "test".into(),
        trigger: "Join".into(),
    };
    let joined = e.executor.execute(&joining.plan, &meta).await;
    assert_eq!(joined.outcome, Outcome::Succeeded, "{joined:#?}");
    c.instances
        .iter()
        .find(|m| m.key() == new)
        .unwrap()
        .exec("INSERT INTO app.w VALUES (2000000)")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the former primary replicates",
        || async {
            let s = snapshot(&keys[0]).await;
            let r = s.replica.as_ref()?;
            assert!(
                !matches!(r.last_io_errno, 1236 | 1950) && r.last_sql_errno == 0,
                "IO error {} {}, SQL error {} {}",
                r.last_io_errno,
                r.last_io_error,
                r.last_sql_errno,
                r.last_sql_error
            );
            let ids = ids_on(&keys[0], &admin_credentials()).await;
            (r.source == new && r.is_replicating() && ids.contains(&2_000_000)).then_some(())
        },
    )
    .await;
    assert_acked(&keys[0], &admin_credentials(), &acked).await;
}

/// When the only replica is delayed, it is promoted, having applied its
/// relay log first: every acknowledged write is on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_replica_alone_is_promoted_with_its_relay_log_applied() {
    let mut c = semi_sync_cluster(1).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    c.instances[1]
        .exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=30; START SLAVE")
        .await
        .unwrap();
    let w = Writer::start(&c.instances[0]).await;
    w.wait_acked(40).await;
    let mut e = engine(&c);
    e.round().await;
    c.instances[0].kill().unwrap();
    let record = next_recovery(&mut e, Duration::from_secs(60)).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    assert_eq!(record.successor.as_ref(), Some(&keys[1]));
    assert!(record.rollback.is_empty(), "{record:#?}");
    assert!(
        record
            .steps
            .iter()
            .any(|s| matches!(&s.step, Step::ApplyRelayNow { on, .. } if on == &keys[1])),
        "{record:#?}"
    );
    let acked = w.finish().await;
    let s = snapshot(&keys[1]).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    assert_acked(&keys[1], &admin_credentials(), &acked).await;
}

/// Waits until no replica of `keys` stops with error 1236/1950 and each
/// replicates from `new`.
async fn replicating_without_position_errors(keys: &[InstanceKey], new: &InstanceKey) {
    for k in keys.iter().filter(|k| *k != new) {
        eventually(
            Duration::from_secs(30),
            &format!("{k} connected to {new}"),
            || async {
                let s = snapshot(k).await;
                let r = s.replica.as_ref()?;
                assert!(
                    !matches!(r.last_io_errno, 1236 | 1950),
                    "{k}: IO error {} {}",
                    r.last_io_errno,
                    r.last_io_error
                );
                (r.source == *new && r.io_running == IoThreadState::Yes).then_some(())
            },
        )
        .await;
    }
}

/// SIGSTOP of the primary of a semi-sync cluster with one delayed replica
/// and one whose SQL thread is stopped; it resumes 2 s into the failover
/// (counted from the fence's first stopped IO thread). Every acknowledged
/// write is on the new primary, no replica stops with error 1236/1950,
/// and the resumed primary acknowledges no write after the new primary's
/// first: its writers, which keep reconnecting, are refused.
#[tokio::test(flavor = "multi_thread")]
async fn sigstop_with_a_delayed_replica_and_a_stopped_sql_thread_resumed_during_the_failover() {
    let c = semi_sync_cluster(3).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    c.instances[2]
        .exec("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=30; START SLAVE")
        .await
        .unwrap();
    let w = Writer::persistent(keys[0].clone(), orca_sandbox::mysqld::app_credentials()).await;
    w.wait_acked(30).await;
    c.instances[3].exec("STOP SLAVE SQL_THREAD").await.unwrap();
    w.wait_acked(60).await;
    let mut e = engine_with(&c, Default::default(), |cfg| {
        cfg.recovery.relay_apply_timeout = Duration::from_secs(5);
    });
    e.round().await;
    c.instances[0].pause().unwrap();
    // SIGCONT 2 s after the failover starts: once a replica's IO thread
    // is stopped (the fence) or it replicates from another source (the
    // failover went faster than this look), at the latest after 60 s.
    let pid = c.instances[0].pid().expect("the primary runs");
    let (watched, old) = (keys[1].clone(), keys[0].clone());
    let resumer = tokio::spawn(async move {
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < give_up {
            let s = snapshot(&watched).await;
            if s.replica
                .as_ref()
                .is_none_or(|r| r.io_running == IoThreadState::No || r.source != old)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGCONT,
        )
        .expect("SIGCONT");
    });
    let record = next_recovery(&mut e, Duration::from_secs(60)).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let new = record.successor.clone().expect("successor");
    delayed_only_as_a_last_resort(&record, &keys[2]);
    assert!(record.rollback.is_empty(), "rollback ran: {record:#?}");
    // The new primary's first write.
    let on_new = Writer::persistent(new.clone(), orca_sandbox::mysqld::app_credentials()).await;
    on_new.wait_acked(1).await;
    let first = on_new.first_ack().expect("a first write");
    resumer.await.unwrap();
    // The resumed primary is fenced once it answers.
    rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the resumed primary fenced",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    let fenced_at = std::time::Instant::now();
    // A few more rounds while the old primary's writers keep trying.
    rounds_for(&mut e, Duration::from_secs(3)).await;
    // A commit the replicas had acknowledged before the fence may reach
    // its client only once the primary resumes: such a late answer is for
    // a write the new primary has. A write the former primary took after
    // the new primary's first would not be there.
    let late = w.acked_after(first);
    let on_new_primary = ids_on(&new, &admin_credentials()).await;
    let diverged: Vec<&u64> = late
        .iter()
        .filter(|id| !on_new_primary.contains(id))
        .collect();
    if !diverged.is_empty() {
        let mut where_ = Vec::new();
        for k in &keys {
            let ids = ids_on(k, &admin_credentials()).await;
            let s = snapshot(k).await;
            where_.push(format!(
                "{k}: has {:?}, gtid {:?}, ro {}",
                diverged
                    .iter()
                    .filter(|id| ids.contains(id))
                    .collect::<Vec<_>>(),
                s.gtid,
                s.is_read_only()
            ));
        }
        {
            use mysql_async::prelude::Queryable;
            let mut conn = orca::mysql::connect(&keys[0], &admin_credentials(), Default::default())
                .await
                .unwrap();
            let st: Vec<(String, String)> = conn
                .query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master%'")
                .await
                .unwrap();
            let vars: Vec<(String, String)> = conn
                .query("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_master%'")
                .await
                .unwrap();
            eprintln!("old primary semi-sync: {st:?}\n{vars:?}");
        }
        panic!(
            "the former primary acknowledged {} writes after the new primary's first that the new primary ({new}) lacks: {diverged:?}\n{}\nold primary's log:\n{}\n{record:#?}",
            diverged.len(),
            where_.join("\n"),
            std::fs::read_to_string(c.instances[0].error_log_path())
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.contains("Aborted connection"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        w.acked_after(fenced_at).is_empty(),
        "the former primary acknowledged writes once fenced"
    );
    eprintln!(
        "late answers for writes the new primary has: {}",
        late.len()
    );
    let acked = w.finish().await;
    let acked_new = on_new.finish().await;
    let s = snapshot(&new).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    assert_acked(&new, &admin_credentials(), &acked).await;
    assert_acked(&new, &admin_credentials(), &acked_new).await;
    let old = snapshot(&keys[0]).await;
    assert!(old.is_read_only(), "the resumed primary is writable");
    replicating_without_position_errors(&keys[1..], &new).await;
}

/// A delayed replica is promoted only when no other replica can be (the
/// others lack a transaction it received, as writes from several
/// connections make likely), and then with its relay log applied first.
fn delayed_only_as_a_last_resort(
    record: &orca::engine::executor::OperationRecord,
    delayed: &InstanceKey,
) {
    if record.successor.as_ref() != Some(delayed) {
        return;
    }
    assert!(
        record
            .notes
            .iter()
            .any(|n| n.contains("is a delayed replica but no other replica can be promoted")),
        "the delayed replica was promoted while another could be: {record:#?}"
    );
    let applied = record
        .steps
        .iter()
        .position(|s| matches!(&s.step, Step::ApplyRelayNow { on, .. } if on == delayed));
    let reset = record
        .steps
        .iter()
        .position(|s| matches!(s.step, Step::ResetReplicaAll { .. }));
    assert!(
        applied.is_some() && applied < reset,
        "promoted without its relay log applied: {record:#?}"
    );
}

/// Every replication connection of `key` (`SHOW ALL SLAVES STATUS`): its
/// name, source, and IO thread.
async fn connections(key: &InstanceKey) -> Vec<(String, InstanceKey, IoThreadState)> {
    let mut conn = orca::mysql::connect(key, &admin_credentials(), Default::default())
        .await
        .unwrap();
    let rows = orca::mysql::conn::query_rows(
        &mut conn,
        key,
        Duration::from_secs(5),
        "reading replication",
        "SHOW ALL SLAVES STATUS",
    )
    .await
    .unwrap();
    let _ = conn.disconnect().await;
    orca::mysql::parse::replica_connections(&rows)
        .unwrap()
        .into_iter()
        .map(|(name, r)| (name, r.source, r.io_running))
        .collect()
}

/// Waits until `key` replicates from `source` through its default
/// connection, and has no other.
async fn only_the_default_connection(key: &InstanceKey, source: &InstanceKey) {
    let settled = eventually(
        Duration::from_secs(30),
        &format!("{key} connected"),
        || async {
            let conns = connections(key).await;
            let connecting = matches!(
                conns.as_slice(),
                [(name, _, IoThreadState::Connecting)] if name.is_empty()
            );
            (!connecting).then_some(conns)
        },
    )
    .await;
    assert_eq!(
        settled,
        vec![(String::new(), source.clone(), IoThreadState::Yes)],
        "{key}: its replication connections"
    );
}

/// SIGSTOP of a semi-sync primary, kept stopped through the failover:
/// the replicas' IO threads take `rpl_semi_sync_slave_kill_conn_timeout`
/// to stop against it, so the promotion runs beside those stops and a
/// replica to repoint follows the new primary through a second
/// connection until its stop has ended, then through its default one
/// again. Afterwards no second connection is left, every acknowledged
/// write is on the new primary, the new primary takes writes of the
/// application account (acknowledged by the replicas), and the former
/// primary, resumed, acknowledges no write the new primary lacks.
#[tokio::test(flavor = "multi_thread")]
async fn sigstop_of_a_semi_sync_primary_repoints_beside_the_io_threads_stopping() {
    let c = semi_sync_cluster(3).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    let app = orca_sandbox::mysqld::app_credentials();
    let w = Writer::persistent(keys[0].clone(), app.clone()).await;
    w.wait_acked(50).await;
    let mut e = engine(&c);
    e.round().await;
    c.instances[0].pause().unwrap();
    let record = next_recovery(&mut e, Duration::from_secs(60)).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    let new = record.successor.clone().expect("successor");
    // At least one replica went through the second connection, and each
    // that did was settled back into its default one.
    let detoured: Vec<&InstanceKey> = record
        .steps
        .iter()
        .filter_map(|s| match (&s.step, &s.outcome) {
            (Step::StopReplica { on }, StepOutcome::Skipped(why))
                if why.contains("second connection") =>
            {
                Some(on)
            }
            _ => None,
        })
        .collect();
    assert!(!detoured.is_empty(), "no detour: {record:#?}");
    for on in &detoured {
        assert!(
            record.steps.iter().any(|s| matches!(
                (&s.step, &s.outcome),
                (Step::SettleReplica { on: o }, StepOutcome::Done) if o == *on
            )),
            "{on} not settled: {record:#?}"
        );
    }
    for k in keys[1..].iter().filter(|k| **k != new) {
        only_the_default_connection(k, &new).await;
    }
    let s = snapshot(&new).await;
    assert!(!s.is_read_only() && s.replica.is_none(), "{s:#?}");
    // The new primary takes writes; semi-sync needs a replica's ack.
    let on_new = Writer::persistent(new.clone(), app.clone()).await;
    on_new.wait_acked(20).await;
    let first = on_new.first_ack().expect("a first write");
    // The former primary resumes, and is fenced once it answers.
    c.instances[0].resume().unwrap();
    rounds_until(
        &mut e,
        Duration::from_secs(30),
        "the resumed primary fenced",
        |r| r.fenced.contains(&keys[0]).then_some(()),
    )
    .await;
    rounds_for(&mut e, Duration::from_secs(2)).await;
    // A late answer of the former primary is for a write the replicas
    // had acknowledged, which the new primary has.
    let on_new_primary = ids_on(&new, &admin_credentials()).await;
    let diverged: Vec<u64> = w
        .acked_after(first)
        .into_iter()
        .filter(|id| !on_new_primary.contains(id))
        .collect();
    assert!(
        diverged.is_empty(),
        "the former primary acknowledged writes after the new primary's first that it lacks: {diverged:?}"
    );
    let acked = w.finish().await;
    let acked_new = on_new.finish().await;
    assert_acked(&new, &admin_credentials(), &acked).await;
    assert_acked(&new, &admin_credentials(), &acked_new).await;
    assert!(
        snapshot(&keys[0]).await.is_read_only(),
        "the resumed primary is writable"
    );
    replicating_without_position_errors(&keys[1..], &new).await;
}

/// A second connection an operator left (it stopped before folding it
/// back), to the source the replica is repointed to: the repoint forgets
/// it first, where MariaDB would refuse the default connection to the
/// same source; the replica ends with its default connection only.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_connection_left_over_is_forgotten_by_the_next_repoint() {
    use orca::engine::executor::OperationMeta;
    use orca::plan::{Plan, PlanKind, SourcePosition};
    let (c, [_p, r1, r2]) = primary_and_two_replicas().await;
    let repl = orca_sandbox::mysqld::repl_credentials();
    c.instances[2]
        .exec(&format!(
            "CHANGE MASTER 'orca_detour' TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='{}', \
             MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos; START SLAVE 'orca_detour'",
            r1.host,
            r1.port,
            repl.user,
            repl.password()
        ))
        .await
        .unwrap();
    assert_eq!(connections(&r2).await.len(), 2, "the second connection");
    let mut plan = Plan::new(PlanKind::MoveBelow);
    plan.successor = Some(r1.clone());
    plan.steps = vec![
        Step::StopReplica { on: r2.clone() },
        Step::ChangeSource {
            on: r2.clone(),
            source: r1.clone(),
            position: SourcePosition::Gtid,
        },
        Step::StartReplica { on: r2.clone() },
    ];
    plan.point_of_no_return = plan.steps.len();
    let e = engine(&c);
    let meta = OperationMeta {
        id: "test-leftover".into(),
        cluster: "test".into(),
        trigger: "test".into(),
    };
    let record = e.executor.execute(&plan, &meta).await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:#?}");
    only_the_default_connection(&r2, &r1).await;
}
