//! Flapping, with the real `orca standalone` on a real semi-sync cluster:
//! the primary is killed (kill -9) and recovered; the killed server comes
//! back (fenced: read only, out of replication, as standalone leaves a
//! returned former primary until an operator repoints or re-provisions
//! it); the new primary is killed within the anti-flap period, and the
//! failure is reported and not recovered, round after round, until the
//! last recovery is acknowledged the way a user does it (SIGUSR1); then the
//! second recovery runs. Every acknowledged write of both writer phases is
//! on the final primary.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::topology::InstanceKey;
use orca_sandbox::mysqld::{admin_credentials, app_credentials};
use support::standalone::Standalone;
use support::writer::{Writer, assert_acked};
use support::*;

fn key_of(v: &serde_json::Value) -> InstanceKey {
    v.as_str()
        .unwrap_or_else(|| panic!("not an address: {v}"))
        .parse()
        .unwrap()
}

fn assert_succeeded(record: &serde_json::Value) {
    assert_eq!(record["outcome"]["result"], "succeeded", "{record:#}");
}

/// Replica-status reads a server answered so far: every probe of a round
/// reads it once (over orca's kept connection, so new connections are no
/// count of rounds). Read with a SELECT, which counts as none.
async fn probes(conn: &mut mysql_async::Conn) -> u64 {
    let row: Option<String> = conn
        .query_first(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'COM_SHOW_SLAVE_STATUS'",
        )
        .await
        .unwrap();
    row.unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_crash_within_the_anti_flap_period_waits_for_an_acknowledgement() {
    let mut c = semi_sync_cluster(3).await;
    let keys: Vec<_> = c.instances.iter().map(|m| m.key()).collect();
    // The default anti-flap period (1h) outlasts the test.
    let orca = Standalone::start("flap", &keys);
    orca.logged("orca standalone started").await;
    // A round has seen the healthy topology once orca's heartbeat is on
    // the primary.
    eventually(Duration::from_secs(20), "orca's heartbeat", || async {
        let mut conn = orca::mysql::connect(&keys[0], &admin_credentials(), Default::default())
            .await
            .ok()?;
        let n: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM orca_meta.heartbeat")
            .await
            .ok()?;
        let _ = conn.disconnect().await;
        n.filter(|n| *n > 0)
    })
    .await;

    // Crash 1, recovery 1.
    let w1 = Writer::start(&c.instances[0]).await;
    w1.wait_acked(30).await;
    c.instances[0].kill().unwrap();
    let first = orca.record(1, "the first recovery").await;
    assert_succeeded(&first);
    assert_eq!(key_of(&first["failed"]), keys[0]);
    let new = key_of(&first["successor"]);
    assert!(keys[1..].contains(&new), "{first:#}");
    let acked1 = w1.finish().await;
    assert_acked(&new, &admin_credentials(), &acked1).await;

    // The killed server comes back: fenced, and it stays out of
    // replication (standalone does not rejoin it).
    c.instances[0].restart().await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the returned primary fenced",
        || async {
            orca.logs()
                .lines()
                .any(|l| {
                    l.contains("the former primary answers again")
                        && l.contains(&keys[0].to_string())
                })
                .then_some(())
        },
    )
    .await;
    let old = snapshot(&keys[0]).await;
    assert!(old.is_read_only() && old.replica.is_none(), "{old:#?}");
    let mut app = orca::mysql::connect(&keys[0], &app_credentials(), Default::default())
        .await
        .unwrap();
    assert!(
        app.query_drop("INSERT INTO app.w VALUES (3000000)")
            .await
            .is_err(),
        "the returned primary accepted an application write"
    );
    drop(app);
    let survivors: Vec<InstanceKey> = keys[1..].iter().filter(|k| **k != new).cloned().collect();
    for k in &survivors {
        wait_replicating_from(k, &new).await;
    }

    // Crash 2, within the anti-flap period: reported, not recovered.
    let idx = keys.iter().position(|k| *k == new).unwrap();
    let w2 = Writer::start(&c.instances[idx]).await;
    w2.wait_acked(30).await;
    c.instances[idx].kill().unwrap();
    orca.logged("automatic recovery waits for an acknowledgement")
        .await;
    let logs = orca.logs();
    assert!(
        logs.lines().any(|l| l.contains("DeadPrimary")
            && l.contains(&new.to_string())
            && l.contains("not recovering")
            && l.contains("anti-flap")),
        "{logs}"
    );
    // Round after round (each probes every server that answers: five more
    // replica-status reads on a survivor are five rounds at least), nothing is
    // recovered, nothing moves, and the wait is told once.
    let mut watch = orca::mysql::connect(&survivors[0], &admin_credentials(), Default::default())
        .await
        .unwrap();
    let before = probes(&mut watch).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while probes(&mut watch).await < before + 5 {
        assert!(std::time::Instant::now() < deadline, "orca stopped probing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(watch);
    assert_eq!(
        orca.records().len(),
        1,
        "a second recovery ran unacknowledged"
    );
    assert_eq!(
        orca.logs()
            .matches("automatic recovery waits for an acknowledgement")
            .count(),
        1,
        "{}",
        orca.logs()
    );
    for k in &survivors {
        let s = snapshot(k).await;
        assert!(s.is_read_only(), "{s:#?}");
        assert_eq!(s.replica.as_ref().map(|r| &r.source), Some(&new), "{s:#?}");
    }

    // The acknowledgement: recovery 2 proceeds.
    orca.acknowledge();
    orca.logged("last recovery acknowledged").await;
    let second = orca.record(2, "the second recovery").await;
    assert_succeeded(&second);
    assert_eq!(key_of(&second["failed"]), new);
    let newest = key_of(&second["successor"]);
    assert!(survivors.contains(&newest), "{second:#}");
    let acked2 = w2.finish().await;
    assert_acked(&newest, &admin_credentials(), &acked1).await;
    assert_acked(&newest, &admin_credentials(), &acked2).await;
    let last = survivors.iter().find(|k| **k != newest).unwrap();
    wait_replicating_from(last, &newest).await;
    // The first crashed server is still fenced and out of replication.
    let old = snapshot(&keys[0]).await;
    assert!(old.is_read_only() && old.replica.is_none(), "{old:#?}");
    for l in orca.logs().lines().filter(|l| {
        ["anti-flap", "acknowledg", "fenced", "recovery finished"]
            .iter()
            .any(|n| l.contains(n))
    }) {
        eprintln!("orca: {l}");
    }
    eprintln!(
        "first recovery {} ms, second {} ms; {} + {} writes acknowledged",
        first["duration_ms"],
        second["duration_ms"],
        acked1.len(),
        acked2.len()
    );
}
