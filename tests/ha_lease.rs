//! The operator's leader election and fencing against the sandbox API
//! server (the real protocol) and a real `mariadbd`: exactly one leader
//! among competing replicas, takeover after a crash (after expiry) and
//! after a release (at once), a paused leader's fence closing before its
//! successor takes over, and the epoch guards in a custom resource's
//! status and on the primary.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use orca::ha::{
    Epoch, HaError, LeaderElector, Leadership, LeaseConfig, NotLeader, epoch_guarded_status_patch,
    read_epoch, record_epoch, record_epoch_at,
};
use orca::k8s::crd::MySQLCluster;
use orca::mysql::conn::{Timeouts, connect};
use orca_sandbox::{Mysqld, MysqldOptions};
use serde_json::json;

use support::sandbox::Sandbox;

const NS: &str = "default";
const LEASE: &str = "orca-leader";

/// Short terms so that expiry fits in a test.
fn fast() -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
    }
}

fn elector(c: &Client, identity: &str, config: LeaseConfig) -> LeaderElector {
    LeaderElector::new(c.clone(), NS, LEASE, identity, config).expect("elector")
}

async fn lease(c: &Client) -> Lease {
    Api::<Lease>::namespaced(c.clone(), NS)
        .get(LEASE)
        .await
        .expect("read the lease")
}

fn holder(l: &Lease) -> Option<String> {
    l.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

fn transitions(l: &Lease) -> Option<i32> {
    l.spec.as_ref().and_then(|s| s.lease_transitions)
}

/// Serves the shipped MySQLCluster CRD and creates the minimal example
/// (`demo`) in it.
async fn demo_cluster(c: &Client) -> (Api<MySQLCluster>, MySQLCluster) {
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(include_str!("../crds/mysqlcluster.yaml")).expect("crd yaml");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create the CRD");
    let clusters: Api<MySQLCluster> = Api::namespaced(c.clone(), NS);
    let mut cluster: MySQLCluster =
        serde_yaml_ng::from_str(include_str!("../examples/mysqlcluster-minimal.yaml"))
            .expect("example");
    cluster.metadata.namespace = Some(NS.into());
    let created = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create the cluster");
    (clusters, created)
}

/// An epoch-guarded status patch naming `primary`, decided on `read`.
async fn set_primary(
    clusters: &Api<MySQLCluster>,
    read: &MySQLCluster,
    epoch: Epoch,
    primary: &str,
) -> Result<MySQLCluster, HaError> {
    let limit = Duration::from_secs(5);
    epoch_guarded_status_patch(clusters, read, epoch, json!({ "primary": primary }), limit).await
}

/// Waits until `rx` shows a leader; returns its epoch, its term's end and
/// when the test saw it.
async fn wait_leader(
    rx: &mut tokio::sync::watch::Receiver<Leadership>,
    limit: Duration,
) -> (i64, Instant, Instant) {
    let r = tokio::time::timeout(limit, rx.wait_for(|l| l.is_leader()))
        .await
        .expect("no leader in time")
        .expect("the elector stopped");
    match *r {
        Leadership::Leader { epoch, valid_until } => (epoch, valid_until, Instant::now()),
        Leadership::Follower { .. } => unreachable!(),
    }
}

/// Waits (at most 3 s) until `rx` follows `holder`.
async fn wait_following(rx: &mut tokio::sync::watch::Receiver<Leadership>, holder: &str) {
    tokio::time::timeout(
        Duration::from_secs(3),
        rx.wait_for(|l| {
            l == &Leadership::Follower {
                holder: Some(holder.into()),
            }
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("the follower does not see {holder} leading"))
    .expect("the follower runs");
}

/// Runs `n` electors at once for a few seconds, sampling their states:
/// never two leaders, one leader in the end, elected once (epoch 1).
async fn competing(n: usize) {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let handles: Vec<_> = (0..n)
        .map(|i| elector(&c, &format!("orca-{i}"), fast()).spawn())
        .collect();
    let fences: Vec<_> = handles.iter().map(|h| h.fence()).collect();
    let start = Instant::now();
    let mut samples = 0;
    let mut seen_leader: Option<(usize, i64)> = None;
    while start.elapsed() < Duration::from_secs(4) {
        let states: Vec<Leadership> = handles.iter().map(|h| h.leadership()).collect();
        let fenced: Vec<usize> = (0..n)
            .filter(|i| fences[*i].check(Duration::ZERO).is_ok())
            .collect();
        assert!(
            fenced.len() <= 1,
            "two replicas may act at once: {fenced:?} {states:?}"
        );
        let leaders: Vec<(usize, i64)> = states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.epoch().map(|e| (i, e)))
            .collect();
        assert!(leaders.len() <= 1, "two leaders: {states:?}");
        if let Some(&l) = leaders.first() {
            if let Some(prev) = seen_leader {
                assert_eq!(prev, l, "the leadership moved without a failure");
            }
            seen_leader = Some(l);
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(samples > 100, "too few samples: {samples}");
    let (winner, epoch) = seen_leader.expect("nobody was elected");
    assert_eq!(epoch, 1, "elected once");
    let states: Vec<Leadership> = handles.iter().map(|h| h.leadership()).collect();
    assert_eq!(
        states.iter().filter(|s| s.is_leader()).count(),
        1,
        "{states:?}"
    );
    let winner_name = format!("orca-{winner}");
    for (i, s) in states.iter().enumerate() {
        if i != winner {
            assert_eq!(
                s,
                &Leadership::Follower {
                    holder: Some(winner_name.clone())
                }
            );
        }
    }
    let l = lease(&c).await;
    assert_eq!(holder(&l).as_deref(), Some(winner_name.as_str()));
    assert_eq!(transitions(&l), Some(1));
    assert_eq!(
        l.spec.as_ref().and_then(|s| s.lease_duration_seconds),
        Some(3)
    );
    for h in handles {
        h.shutdown().await.expect("shutdown");
    }
    sb.shutdown();
}

#[tokio::test]
async fn two_electors_exactly_one_leader() {
    competing(2).await;
}

#[tokio::test]
async fn three_electors_exactly_one_leader() {
    competing(3).await;
}

#[tokio::test]
async fn crashed_leader_is_replaced_after_expiry_with_the_next_epoch() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let a = elector(&c, "a", fast()).spawn();
    let (epoch_a, _, _) = wait_leader(&mut a.subscribe(), Duration::from_secs(5)).await;
    assert_eq!(epoch_a, 1);
    let b = elector(&c, "b", fast()).spawn();
    let mut b_rx = b.subscribe();
    wait_following(&mut b_rx, "a").await;

    // a stops renewing without releasing, as a crash would
    let a_fence = a.fence();
    let stopped = Instant::now();
    a.abort();
    let (epoch_b, _, b_at) = wait_leader(&mut b_rx, Duration::from_secs(10)).await;
    let waited = b_at - stopped;
    assert_eq!(epoch_b, epoch_a + 1);
    // a's last renew was at most one retry period before the crash; b
    // waited out a lease duration from then
    assert!(
        waited >= fast().lease_duration - fast().retry_period,
        "b took over after {waited:?}, before the lease expired"
    );
    assert!(waited < Duration::from_secs(8), "b took {waited:?}");
    assert_eq!(a_fence.check(Duration::ZERO), Err(NotLeader::Stopped));
    let l = lease(&c).await;
    assert_eq!(holder(&l).as_deref(), Some("b"));
    assert_eq!(transitions(&l), Some(2));
    b.shutdown().await.expect("shutdown");
    sb.shutdown();
}

#[tokio::test]
async fn released_lease_is_taken_at_once_with_the_next_epoch() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    // a long lease: taking it over by expiry would take 10 s
    let config = LeaseConfig {
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(6),
        retry_period: Duration::from_millis(300),
    };
    let a = elector(&c, "a", config).spawn();
    let (epoch_a, _, _) = wait_leader(&mut a.subscribe(), Duration::from_secs(5)).await;
    let b = elector(&c, "b", config).spawn();
    let mut b_rx = b.subscribe();
    wait_following(&mut b_rx, "a").await;

    let a_fence = a.fence();
    let released = Instant::now();
    a.shutdown().await.expect("a releases");
    assert!(a_fence.check(Duration::ZERO).is_err());
    let (epoch_b, _, b_at) = wait_leader(&mut b_rx, Duration::from_secs(5)).await;
    assert_eq!(epoch_b, epoch_a + 1);
    assert!(
        b_at - released < Duration::from_secs(3),
        "b took {:?}: it waited for expiry",
        b_at - released
    );
    let l = lease(&c).await;
    assert_eq!(holder(&l).as_deref(), Some("b"));
    assert_eq!(transitions(&l), Some(2));

    // b releases too: the Lease names nobody and keeps its transitions
    b.shutdown().await.expect("b releases");
    let l = lease(&c).await;
    assert_eq!(holder(&l), None);
    assert_eq!(transitions(&l), Some(2));
    sb.shutdown();
}

#[tokio::test]
async fn paused_leader_fence_closes_before_the_successor_takes_over() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let config = fast();
    // a is driven by hand: not stepping it is a paused renew task
    let mut a = elector(&c, "a", config);
    let a_fence = a.fence();
    let state = a.step().await.expect("a steps");
    let Leadership::Leader {
        epoch: epoch_a,
        valid_until: a_until,
    } = state
    else {
        panic!("a did not take the free lease: {state:?}");
    };
    assert_eq!(a.leadership(), state);
    assert_eq!(
        a_fence.check(Duration::from_millis(500)),
        Ok(Epoch(epoch_a))
    );
    assert!(
        matches!(
            a_fence.check(config.renew_deadline + Duration::from_millis(1)),
            Err(NotLeader::TooShort { .. })
        ),
        "a step longer than the term is refused"
    );

    let b = elector(&c, "b", config).spawn();
    let mut b_rx = b.subscribe();
    let mut a_closed: Option<Instant> = None;
    let b_state = loop {
        let now = Instant::now();
        if a_closed.is_none() && a_fence.check_at(now, Duration::ZERO).is_err() {
            a_closed = Some(now);
        }
        let s = b_rx.borrow_and_update().clone();
        if s.is_leader() {
            break (s, now);
        }
        assert!(
            now < a_until + Duration::from_secs(10),
            "b never took over: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (
        Leadership::Leader {
            epoch: epoch_b,
            valid_until: b_until,
        },
        b_seen,
    ) = b_state
    else {
        unreachable!()
    };
    // b sent its acquire at the start of its term
    let b_sent = b_until - config.renew_deadline;
    let a_closed = a_closed.expect("a's fence never closed");
    assert!(
        a_closed < b_seen,
        "a's fence closed after b was seen leading"
    );
    assert!(
        a_until <= b_sent,
        "a's term ({a_until:?}) overlaps b's ({b_sent:?})"
    );
    assert_eq!(epoch_b, epoch_a + 1);
    // a's published state still says leader: the fence did not rely on it
    assert!(a.leadership().is_leader());
    assert_eq!(
        a_fence.check(Duration::ZERO),
        Err(NotLeader::Expired { epoch: epoch_a })
    );

    // a wakes up: its renew is late, it steps down and sees b
    let after = a.step().await.expect("a steps again");
    assert_eq!(
        after,
        Leadership::Follower {
            holder: Some("b".into())
        }
    );
    assert_eq!(
        a_fence.check(Duration::ZERO),
        Err(NotLeader::Follower {
            holder: Some("b".into())
        })
    );
    b.shutdown().await.expect("shutdown");
    sb.shutdown();
}

#[tokio::test]
async fn a_renew_refused_by_a_conflict_steps_down_at_once() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let mut a = elector(&c, "a", fast());
    assert!(a.step().await.expect("a steps").is_leader());
    // someone else writes the Lease: a's resourceVersion is stale
    let leases: Api<Lease> = Api::namespaced(c.clone(), NS);
    leases
        .patch(
            LEASE,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("touch the lease");
    let after = a.step().await.expect("a steps again");
    // a no longer leads; the Lease still names it, so it waits for expiry
    // before starting a new term
    assert_eq!(
        after,
        Leadership::Follower {
            holder: Some("a".into())
        }
    );
    assert!(a.fence().check(Duration::ZERO).is_err());
    let back = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            let s = a.step().await.expect("step");
            if s.is_leader() {
                return s;
            }
            tokio::time::sleep(fast().retry_period).await;
        }
    })
    .await
    .expect("a leads again after expiry");
    assert_eq!(back.epoch(), Some(2), "a new term, a new epoch");
    a.release().await.expect("release");
    sb.shutdown();
}

#[tokio::test]
async fn epoch_guarded_status_patch_refuses_a_stale_epoch() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let (clusters, created) = demo_cluster(&c).await;

    // the leader of epoch 3 records its operation
    let e3 = set_primary(&clusters, &created, Epoch(3), "demo-0")
        .await
        .expect("epoch 3 writes");
    let status = e3.status.clone().expect("status");
    assert_eq!(status.epoch, Some(3));
    assert_eq!(status.primary.as_deref(), Some("demo-0"));

    // epoch 2 with a fresh read: refused before any write
    let e = set_primary(&clusters, &e3, Epoch(2), "demo-1")
        .await
        .unwrap_err();
    assert!(e.is_stale_epoch(), "{e}");
    assert!(matches!(
        e,
        HaError::StaleEpoch {
            stored: 3,
            ours: 2,
            ..
        }
    ));

    // epoch 2 deciding on what it read before epoch 3 wrote: the write
    // meets the resourceVersion precondition, and the reason is the newer
    // epoch
    let e = set_primary(&clusters, &created, Epoch(2), "demo-1")
        .await
        .unwrap_err();
    assert!(e.is_stale_epoch(), "{e}");

    // epoch 3 itself on a stale read: a conflict, read again
    let e = set_primary(&clusters, &created, Epoch(3), "demo-2")
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");

    let now = clusters.get("demo").await.expect("read");
    assert_eq!(now.status.as_ref().and_then(|s| s.epoch), Some(3));
    assert_eq!(
        now.status.as_ref().and_then(|s| s.primary.as_deref()),
        Some("demo-0"),
        "no refused write landed"
    );

    // a newer epoch on a fresh read goes through
    let e4 = set_primary(&clusters, &now, Epoch(4), "demo-1")
        .await
        .expect("epoch 4 writes");
    assert_eq!(e4.status.as_ref().and_then(|s| s.epoch), Some(4));
    assert_eq!(
        e4.status.as_ref().and_then(|s| s.primary.as_deref()),
        Some("demo-1")
    );
    sb.shutdown();
}

#[tokio::test]
async fn status_writes_follow_the_elected_epochs() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let (clusters, _) = demo_cluster(&c).await;
    let step = Duration::from_millis(500);

    // a leads, checks its fence, reads, and (slowly) decides
    let mut a = elector(&c, "a", fast());
    assert!(a.step().await.expect("a steps").is_leader());
    let a_epoch = a.fence().check(step).expect("a may act");
    let a_read = clusters.get("demo").await.expect("read");

    // a hands over; b leads and writes first
    a.release().await.expect("a releases");
    let mut b = elector(&c, "b", fast());
    assert!(b.step().await.expect("b steps").is_leader());
    let b_epoch = b.fence().check(step).expect("b may act");
    assert_eq!(b_epoch, Epoch(a_epoch.get() + 1));
    let b_read = clusters.get("demo").await.expect("read");
    set_primary(&clusters, &b_read, b_epoch, "demo-1")
        .await
        .expect("b writes");

    // a's late write of its old decision is refused
    assert!(a.fence().check(step).is_err());
    let e = set_primary(&clusters, &a_read, a_epoch, "demo-2")
        .await
        .unwrap_err();
    assert!(e.is_stale_epoch(), "{e}");
    b.release().await.expect("b releases");
    sb.shutdown();
}

#[tokio::test]
async fn epoch_table_on_the_primary_refuses_older_epochs() {
    let server = Mysqld::start(MysqldOptions::new(1))
        .await
        .expect("start mariadbd");
    let key = server.key();
    let creds = orca_sandbox::mysqld::admin_credentials();
    let mut conn = connect(&key, &creds, Timeouts::default())
        .await
        .expect("connect");
    let limit = Duration::from_secs(5);

    assert_eq!(
        read_epoch(&mut conn, &key, limit).await.expect("read"),
        None
    );
    record_epoch(&mut conn, &key, limit, Epoch(3))
        .await
        .expect("record epoch 3 (creating the table)");
    assert_eq!(
        read_epoch(&mut conn, &key, limit).await.expect("read"),
        Some(3)
    );

    let e = record_epoch(&mut conn, &key, limit, Epoch(2))
        .await
        .unwrap_err();
    assert!(e.is_stale_epoch(), "{e}");
    assert!(matches!(
        e,
        HaError::StaleEpoch {
            stored: 3,
            ours: 2,
            ..
        }
    ));
    assert_eq!(
        read_epoch(&mut conn, &key, limit).await.expect("read"),
        Some(3)
    );

    // the same epoch again is fine (an operation of the same term)
    record_epoch(&mut conn, &key, limit, Epoch(3))
        .await
        .expect("record epoch 3 again");
    record_epoch(&mut conn, &key, limit, Epoch(4))
        .await
        .expect("record epoch 4");
    assert_eq!(
        read_epoch(&mut conn, &key, limit).await.expect("read"),
        Some(4)
    );

    // another operator replica, on its own connection, sees the same
    let e = record_epoch_at(&key, &creds, Timeouts::default(), Epoch(3))
        .await
        .unwrap_err();
    assert!(e.is_stale_epoch(), "{e}");
    record_epoch_at(&key, &creds, Timeouts::default(), Epoch(5))
        .await
        .expect("record epoch 5");
    assert_eq!(
        read_epoch(&mut conn, &key, limit).await.expect("read"),
        Some(5)
    );
    drop(conn);
}
